import {
  ActivityFailure,
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  TimeoutFailure,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  metricMeter,
  patched,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { RetryState, TimeoutType, type TemporalFailure } from '@temporalio/common';
import type { RecoveryActivities } from '../activities/recovery-activities.js';
import {
  BATCH_NOT_SETTLED,
  batchSettled,
  batchStatusPollerWorkflowId,
  getRecoveryReport,
  pauseRecovery,
  resumeRecovery,
  retryNow,
  updateRecoveryPolicy,
  watchBatch,
} from './definitions.js';
import {
  applyPolicyChange,
  parseRecoverBatchInput,
  parseWorkflowInput,
  type RecoverBatchInput,
  type RecoveryPolicy,
} from './input.js';
import {
  newReport,
  recordRound,
  recordSettledBatch,
  type BatchSnapshot,
  type RecoveryOutcome,
  type RecoveryReport,
} from './report.js';
import {
  anchorBatchIdKey,
  recoveryOutcomeKey,
  recoveryRoundsKey,
  retriedSessionsKey,
  stillFailedSessionsKey,
} from './search-attributes.js';

/** What one run hands the next across continue-as-new, so the report and the deadline are continuous. */
export interface CarriedRecovery {
  report: RecoveryReport;
}

const RETRY_ATTEMPT_TIMEOUT_MS = 60_000;
/** Recoveries from this change on wait for the task queue's batch status poller, when it runs. */
const WAIT_FOR_POLLER_PATCH = 'wait-for-batch-status-poller';
/** A poller that lost its state (terminated and restarted) learns the batch again this often, in poll maximum intervals. */
const REWATCH_AFTER_POLL_INTERVALS = 15;

function countRecovery(outcome: RecoveryOutcome | 'failed'): void {
  metricMeter.createCounter('anchor_recoveries', 'recoveries', 'Recoveries ended, by outcome').add(1, { outcome });
}

/** Thrown when the batch reaches the deadline while the workflow waits on an activity. */
class DeadlineReached extends Error {}

function roundBackoffMs(policy: RecoveryPolicy, round: number): number {
  const { initialInterval, backoffCoefficient, maximumInterval } = policy.roundBackoff;
  return Math.min(initialInterval * backoffCoefficient ** (round - 1), maximumInterval);
}

/**
 * Recovers a batch's failed sessions: waits until the batch settles, retries
 * its failed sessions with backoff, round after round within maxRounds and the
 * deadline, and records every round in the report it returns.
 */
export async function recoverBatch(input: RecoverBatchInput, carried?: CarriedRecovery): Promise<RecoveryReport> {
  let policy = parseWorkflowInput(parseRecoverBatchInput, input, 'InvalidRecoveryInput');
  const { batchId } = policy;
  // The deadline counts from the start of the whole chain, so continue-as-new does not extend it.
  const { startTime, workflowId } = workflowInfo();
  const report =
    carried?.report ??
    newReport(batchId, workflowId, startTime, new Date(startTime.getTime() + policy.deadline), policy.maxRounds);
  const deadlineAt = Date.parse(report.deadlineAt);
  const remainingMs = () => deadlineAt - Date.now();

  let retryNowRequested = false;
  let policyChanged = false;
  let settleNoticed = false;
  setHandler(getRecoveryReport, () => report);
  setHandler(batchSettled, () => {
    settleNoticed = true;
  });
  setHandler(retryNow, () => {
    retryNowRequested = true;
  });
  setHandler(pauseRecovery, () => {
    report.paused = true;
  });
  setHandler(resumeRecovery, () => {
    report.paused = false;
  });
  setHandler(
    updateRecoveryPolicy,
    (change) => {
      policy = applyPolicyChange(policy, change);
      report.maxRounds = policy.maxRounds;
      policyChanged = true;
      return report;
    },
    {
      validator: (change) => {
        applyPolicyChange(policy, change);
      },
    },
  );

  let published = '';
  const publishProgress = () => {
    const values = {
      outcome: report.outcome ?? (report.failure ? 'failed' : 'running'),
      rounds: report.rounds.length,
      retried: report.totals.retriedSessions,
      stillFailed: report.totals.stillFailed,
    };
    // Each upsert is a history event: only write when something changed.
    if (JSON.stringify(values) === published) return;
    published = JSON.stringify(values);
    upsertSearchAttributes([
      { key: anchorBatchIdKey, value: batchId },
      { key: recoveryOutcomeKey, value: values.outcome },
      { key: recoveryRoundsKey, value: values.rounds },
      { key: retriedSessionsKey, value: values.retried },
      { key: stillFailedSessionsKey, value: values.stillFailed },
    ]);
  };

  const untilDeadline = async <T>(activity: () => Promise<T>): Promise<T> => {
    try {
      return await activity();
    } catch (err) {
      const deadlinePassed =
        err instanceof ActivityFailure &&
        (err.retryState === RetryState.TIMEOUT ||
          (err.cause instanceof TimeoutFailure && err.cause.timeoutType === TimeoutType.SCHEDULE_TO_CLOSE));
      if (deadlinePassed) {
        // Keep why the time ran out: hours of 5xx answers are not a batch that never settled.
        // A schedule-to-close timeout carries the last attempt's failure only in its raw form.
        const cause = err.cause as TemporalFailure | undefined;
        const last = cause instanceof TimeoutFailure ? cause.failure?.cause : cause?.failure;
        const type = last?.applicationFailureInfo?.type;
        if (last && type !== BATCH_NOT_SETTLED) {
          report.lastError = { type: type ?? 'unknown', message: last.message ?? '', at: new Date().toISOString() };
        }
        throw new DeadlineReached();
      }
      throw err;
    }
  };

  /**
   * Leaves the polling to the task queue's batch status poller, which reads the list endpoint for
   * every waiting recovery at once and wakes this one when its batch has settled. Returns at once
   * when no poller runs: the recovery then polls its batch on its own.
   */
  const waitForPoller = async (): Promise<void> => {
    const poller = getExternalWorkflowHandle(batchStatusPollerWorkflowId(workflowInfo().taskQueue));
    settleNoticed = false;
    while (!settleNoticed) {
      try {
        await poller.signal(watchBatch, { batchId, workflowId, pollIntervalMs: policy.poll.initialInterval });
      } catch (err) {
        if (isCancellation(err)) throw err;
        return;
      }
      const waitMs = Math.min(remainingMs(), REWATCH_AFTER_POLL_INTERVALS * policy.poll.maximumInterval);
      if (waitMs <= 0) return;
      await condition(() => settleNoticed, waitMs);
    }
  };

  const waitForSettledBatch = async (): Promise<BatchSnapshot> => {
    report.phase = 'waiting_for_batch';
    report.nextRetryAt = null;
    if (patched(WAIT_FOR_POLLER_PATCH)) await waitForPoller();
    // The poll schedule is the activity's retry policy: see awaitBatchSettled.
    const { awaitBatchSettled } = proxyActivities<RecoveryActivities>({
      startToCloseTimeout: '1m',
      scheduleToCloseTimeout: Math.max(1, remainingMs()),
      retry: policy.poll,
    });
    return untilDeadline(() => awaitBatchSettled(batchId));
  };

  /**
   * Waits the round backoff; operators can skip it (retryNow), hold it (pause) or change it (policy
   * update). A retryNow sent earlier (while the batch was in flight) skips this wait too.
   */
  const waitBeforeRetry = async (round: number): Promise<void> => {
    const waitStartedAt = Date.now();
    for (;;) {
      policyChanged = false;
      // A policy change may have used up the rounds: the caller ends the recovery.
      if (report.rounds.length >= policy.maxRounds) return;
      if (report.paused) {
        report.phase = 'paused';
        report.nextRetryAt = null;
        if (!(await condition(() => !report.paused, Math.max(1, remainingMs())))) throw new DeadlineReached();
        continue;
      }
      const retryAt = waitStartedAt + roundBackoffMs(policy, round);
      report.phase = 'backing_off';
      report.nextRetryAt = new Date(retryAt).toISOString();
      const waitMs = Math.min(retryAt, deadlineAt) - Date.now();
      if (waitMs > 0) {
        await condition(() => retryNowRequested || report.paused || policyChanged, waitMs);
        if (report.paused || (policyChanged && !retryNowRequested)) continue;
      }
      if (!retryNowRequested && retryAt > deadlineAt) throw new DeadlineReached();
      retryNowRequested = false;
      return;
    }
  };

  const retryRound = async (before: BatchSnapshot): Promise<void> => {
    const round = report.rounds.length + 1;
    report.phase = 'retrying';
    report.nextRetryAt = null;
    const startedAt = new Date().toISOString();
    // Transient API failures back off from the poll interval; the deadline bounds them, but never
    // below one attempt's time, so a call that started before the deadline is not cut off mid-flight.
    const { retryFailedSessions } = proxyActivities<RecoveryActivities>({
      startToCloseTimeout: RETRY_ATTEMPT_TIMEOUT_MS,
      heartbeatTimeout: '10s',
      scheduleToCloseTimeout: Math.max(RETRY_ATTEMPT_TIMEOUT_MS, remainingMs()),
      retry: {
        initialInterval: policy.poll.initialInterval,
        backoffCoefficient: 2,
        maximumInterval: policy.poll.maximumInterval,
      },
    });
    // A cancel waits for the call in flight, so a retry that was sent is always in the report.
    const result = await CancellationScope.nonCancellable(() =>
      untilDeadline(() =>
        retryFailedSessions({
          batchId,
          maxRetries: policy.maxRetries,
          retryFailedOnly: policy.retryFailedOnly,
          before: { failed: before.failed, retryCountTotal: before.retryCountTotal },
        }),
      ),
    );
    recordRound(report, {
      round,
      startedAt,
      ...result,
      failedBefore: before.failed,
      failedAfter: null,
      recovered: null,
    });
    log.info('Retry round sent', {
      batchId,
      round,
      retriedSessions: result.retriedSessions,
      reconciled: result.reconciled,
    });
    publishProgress();
  };

  const recover = async (): Promise<RecoveryOutcome> => {
    for (;;) {
      const snapshot = await waitForSettledBatch();
      recordSettledBatch(report, snapshot);
      publishProgress();
      if (snapshot.status === 'cancelled') return 'batch_cancelled';
      if (snapshot.failed === 0) return report.rounds.length === 0 ? 'clean' : 'recovered';
      if (report.rounds.length >= policy.maxRounds) return 'exhausted';
      const info = workflowInfo();
      if (info.historyLength >= policy.continueAsNewAfterEvents || info.continueAsNewSuggested) {
        await condition(allHandlersFinished);
        report.continuedAsNew += 1;
        return await continueAsNew<typeof recoverBatch>(policy, { report });
      }
      await waitBeforeRetry(report.rounds.length + 1);
      if (report.rounds.length >= policy.maxRounds) return 'exhausted';
      await retryRound(snapshot);
    }
  };

  const finish = (outcome: RecoveryOutcome): RecoveryReport => {
    report.outcome = outcome;
    report.phase = 'done';
    report.nextRetryAt = null;
    report.finishedAt = new Date().toISOString();
    publishProgress();
    countRecovery(outcome);
    log.info('Recovery finished', { batchId, outcome, rounds: report.rounds.length });
    return report;
  };

  publishProgress();
  try {
    return finish(await recover());
  } catch (err) {
    if (err instanceof DeadlineReached) return finish('deadline');
    // An operator's cancel ends the recovery with its report, not a bare failure.
    if (isCancellation(err)) return finish('operator_cancelled');
    if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) {
      report.phase = 'done';
      report.nextRetryAt = null;
      report.finishedAt = new Date().toISOString();
      report.failure = { type: err.cause.type ?? 'unknown', message: err.cause.message };
      publishProgress();
      countRecovery('failed');
      throw ApplicationFailure.create({
        type: err.cause.type ?? 'RecoveryFailed',
        message: `Recovery of batch ${batchId} stopped: ${err.cause.message}`,
        nonRetryable: true,
        details: [report],
      });
    }
    throw err;
  }
}
