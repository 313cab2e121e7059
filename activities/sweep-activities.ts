import { createHash } from 'node:crypto';
import { activityInfo, cancellationSignal, heartbeat } from '@temporalio/activity';
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  WorkflowNotFoundError,
  WorkflowIdReusePolicy,
  type Client,
  type WorkflowExecutionDescription,
} from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { optionalTsToMs } from '@temporalio/common/lib/time.js';
import { isInFlightBatchStatus } from '../anchor-api/batch-status.js';
import { listHasNext, RateLimitedError, type AnchorApiClient } from '../anchor-api/index.js';
import {
  BATCH_FAILED_WITHOUT_FAILED_SESSIONS,
  RECOVER_BATCH_WORKFLOW,
  recoveryWorkflowId,
} from '../workflows/definitions.js';
import { isBatchId } from '../workflows/input-fields.js';
import type { RecoverBatchInput } from '../workflows/input.js';
import type { recoverBatch } from '../workflows/recover-batch.js';
import { recoveryStartOptions } from '../workflows/recovery-start.js';
import {
  leftCallOfUnknownOutcome,
  UNKNOWN_OUTCOME_HOLD_MS,
  type RecoveryReport,
  type RecoveryRound,
} from '../workflows/report.js';
import {
  completedSweepEnd,
  earlierDate,
  SWEEP_FAILED_BATCHES_WORKFLOW,
  type CompletedSweep,
  type RecoveryOverrides,
  type SweepStatus,
  SWEEP_RESULT_ITEMS,
} from '../workflows/sweep-input.js';
import { describeIfStarted } from '../worker/workflow-description.js';
import { toActivityFailure } from './failures.js';
import { countApiError } from './metrics.js';

/**
 * The longest Retry-After a list call waits out. Waiting longer holds the sweep running (up to 24 h an attempt, four
 * times), and the schedule, whose overlap policy is SKIP, skips every sweep due meanwhile; a sweep that stops lets the
 * next one try on time, with a window from its own start.
 */
const LIST_MAX_RETRY_AFTER_MS = 5 * 60_000;

/**
 * How far inside the namespace's retention a batch must have been created for the sweep to start its recovery. A
 * recovery closes after its batch was created and Temporal deletes it a retention later, so one of a batch created
 * within the retention is still there for startBatchRecovery to find; past it, a recovery that ended (exhausted, say)
 * may be gone, and a new one would send its retries again. The margin covers the clocks of the API, the workers and
 * the server, and the time from a page's read to the starts of its batches (seconds, unless no worker runs then).
 */
const RETENTION_MARGIN_MS = 10 * 60_000;

export interface ListFailedBatchesInput {
  statuses: SweepStatus[];
  createdAfter: string;
  createdBefore: string;
  pageSize: number;
  /** The first page to read (1-based). */
  fromPage: number;
  /**
   * Stop at the end of the page where this many batches with failed sessions were found (the result
   * holds up to pageSize - 1 more). 0 reads to the end of the list and only counts them, unless maxPages is 1: a
   * one-page task returns its page's ids also then, so that the run can tell a batch listed again.
   */
  maxBatchIds: number;
  /**
   * Pages this task reads at most. 1 makes each task exactly one Anchor call, so the queue's task rate
   * limit is the call budget; absent (sweeps that scheduled it before), it reads to maxBatchIds or the end.
   */
  maxPages?: number;
}

/** Counts of the pages read, and the ids of the batches with failed sessions: small however long the list is. */
export interface ListFailedBatchesResult {
  /**
   * Batches in a swept status with failed sessions, newest first. When only counting (maxBatchIds 0), those of a task
   * of one page (at most pageSize), so the sweep can tell a batch it took before; empty for a longer task.
   */
  batchIds: string[];
  /**
   * When each of batchIds was created (ISO), in the same order; null for one listed without a readable created_at.
   * The sweep records the oldest it leaves over_limit, start_failed or held. Absent from results of listings before it.
   */
  createdAt?: (string | null)[];
  /** How many batches with failed sessions the pages held. */
  failed: number;
  scanned: number;
  noFailedSessions: number;
  otherStatus: number;
  /**
   * Batches with failed sessions listed without a UUID for an id (none, or one that is not): no recovery can take
   * them. Absent from results of listings before this count.
   */
  invalidBatchIds?: number;
  /** Batches listed with a created_at outside the window asked for: an API that ignored the filter. */
  outsideWindow?: number;
  /** Repeats of a batch with failed sessions within this task's pages: taken once, its repeats counted here. */
  listedAgain?: number;
  /**
   * Batches with failed sessions created before the namespace's retention (less RETENTION_MARGIN_MS; the window's
   * start for one without a readable created_at): a recovery of theirs that ended may be gone from Temporal, so none
   * is started. Absent from results of listings before this count.
   */
  pastRetention?: number;
  /** The first SWEEP_RESULT_ITEMS of them, for the sweep's `skipped`; kept as batchIds are. */
  pastRetentionIds?: string[];
  /**
   * When the oldest batch the pages listed in the window still pending or processing was created (the window's start
   * for one without a readable created_at), or null for none; one past the retention as pastRetention reads it is
   * left out, as no sweep would start its recovery. Counted in otherStatus too. The sweep's next window reaches back
   * to it (SweepResult's oldestUnsettledCreatedAt). Absent from results of listings before it.
   */
  oldestUnsettledCreatedAt?: string | null;
  /** Where to go on, or null at the end of the list. */
  nextPage: number | null;
  /** The list's last page, when the API says: lets the sweep read the following pages side by side. */
  totalPages?: number;
  /**
   * For a task of one page (maxPages 1) that listed batches: a digest of their ids in order, so the sweep can tell
   * a page that repeats one it read (an API that ignores `page`) in 16 characters.
   */
  pageKey?: string;
}

export interface StartBatchRecoveryInput {
  batchId: string;
  recovery: RecoveryOverrides;
}

/**
 * Failures of an earlier recovery that a new one would repeat: the sweep skips such a batch instead of starting a
 * failing workflow every sweep. A wrong key or missing credits are not here: an operator fixes those, and the next
 * sweep should then recover the batch, at once unless the failed recovery left a retry call of unknown outcome (then
 * after REPEATING_FAILURE_HOLD_MS). InvalidRecoveryInput counts only for a recovery a sweep started
 * (skipAfterFailedRecovery).
 */
const REPEATING_FAILURES = new Set([
  'batch_not_found',
  'malformed_response',
  'bad_request',
  'unexpected_status',
  'InvalidRecoveryInput',
]);

/**
 * How long after a failed recovery closed the sweeps hold its batch (`held`) when a new one may start later: one that
 * sent no retry call that took effect and failed in a way a new one would repeat, as such a failure may come of a short
 * incident (a 404, a redirect or an HTML page from a proxy), which, remembered for good, left the batch unrecovered by
 * every later sweep; and one that failed on a wrong key or missing credits with a retry call of unknown outcome in its report,
 * as the API may still apply that call. Past it, a sweep starts a new recovery, which reads the batch again. A held
 * batch is left to a later sweep (the next of its schedule reaches back to it), so the hold cannot outlast its window;
 * a sweep run by hand reaches back to nothing, so run one again once the hold has passed.
 * A batch that keeps failing so costs a status read, and a failed recovery, every hold at most while it is in the
 * sweeps' window. A recovery that failed in a way a new one would repeat after a round that may have taken effect, or
 * left no report to read, is skipped for good: a call of its may have been applied, and a new recovery would send the
 * batch's retries again.
 */
export const REPEATING_FAILURE_HOLD_MS = UNKNOWN_OUTCOME_HOLD_MS;

/**
 * What a failed, terminated or timed-out recovery (its description) says of starting a new one: `permanently_failed`
 * for good, `held` until `holdMs` after it closed, or nothing (start one).
 */
async function skipAfterFailedRecovery(
  client: Client,
  description: WorkflowExecutionDescription | undefined,
  holdMs: number,
): Promise<'permanently_failed' | 'held' | undefined> {
  const heldLongEnough = description?.closeTime !== undefined && Date.now() - description.closeTime.getTime() >= holdMs;
  // Ended from outside: a call out then is in no report (its memo is written at rests only), and the API may still
  // apply it. Before, the next sweep redid it at once, as `recover` did.
  if (description?.status.name === 'TERMINATED' || description?.status.name === 'TIMED_OUT')
    return heldLongEnough ? undefined : 'held';
  if (description?.status.name !== 'FAILED') return undefined;
  const failure = await client.workflow
    .getHandle(description.workflowId, description.runId)
    .result()
    .then(
      () => undefined,
      (err: unknown) => {
        if (err instanceof WorkflowFailedError) return err.cause;
        // The failure could not be read (the server slow or unreachable): what it says of a new recovery is unknown,
        // and one started now could send the batch's retries again. Thrown, the batch is left start_failed, and a
        // later sweep reads it again. Before, it was taken as no failure, and a new recovery started.
        throw err;
      },
    );
  const type = failure instanceof ApplicationFailure ? failure.type : undefined;
  if (!type) return undefined;
  // Its batch failed as a whole, which no retry changes: a new recovery would read the same batch and tell it again.
  if (type === BATCH_FAILED_WITHOUT_FAILED_SESSIONS) return 'permanently_failed';
  // A wrong key or missing credits: redone once fixed, unless a retry call's outcome was left unknown (a key revoked
  // while the call's answer was lost, so the reconciling read was refused too), which the API may still apply.
  if (!REPEATING_FAILURES.has(type))
    return !heldLongEnough && leftCallOfUnknownOutcome(reportOf(failure)) ? 'held' : undefined;
  // A sweep starts with input its own run checked: an input refused at another start (the Web UI's form sent an empty
  // duration) says nothing of the sweep's. Before, such a batch was skipped by every sweep, and never recovered.
  if (
    type === 'InvalidRecoveryInput' &&
    (description.memo as Partial<SweepMemo> | undefined)?.startedBySweep === undefined
  )
    return undefined;
  if (!noRetryCallTookEffect(failure)) return 'permanently_failed';
  return heldLongEnough ? undefined : 'held';
}

/** The report a recovery's failure carries (stoppedFailure's details), unchecked: it may be of any release. */
const reportOf = (failure: unknown) =>
  failure instanceof ApplicationFailure ? (failure.details?.[0] as Partial<RecoveryReport> | undefined) : undefined;

/**
 * Whether a recovery's failure carries its report (stoppedFailure's details), and no retry call of it took effect: the
 * report holds no round, or only rounds the batch showed had no effect (a redirect to the call stops the recovery so,
 * since retry-round-stops-at-permanent-unknown; before, with no round, and a proxy's short incident left the batch to
 * no later sweep once it recorded one).
 */
function noRetryCallTookEffect(failure: unknown): boolean {
  const report = reportOf(failure);
  if (!Array.isArray(report?.rounds) || (report.omittedRounds?.count ?? 0) > 0) return false;
  return (report.rounds as (Partial<RecoveryRound> | null)[]).every((round) => round?.reconcileEffect === 'no_effect');
}

/**
 * What a recovery of the batch under another workflow id (an earlier release's, by the id in upper case) says of
 * starting one: the same as the id reuse policy and skipAfterFailedRecovery say of the batch's own id. Running, or
 * ended with an outcome (completed), it recovers or recovered the batch: a new one would send its retries again.
 */
async function otherRecoveryOutcome(
  client: Client,
  workflowId: string,
  holdMs: number,
): Promise<'already_running' | 'already_ended' | 'permanently_failed' | 'held' | undefined> {
  const description = await describeIfStarted(client, workflowId);
  if (description?.status.name === 'RUNNING') return 'already_running';
  if (description?.status.name === 'COMPLETED') return 'already_ended';
  return skipAfterFailedRecovery(client, description, holdMs);
}

/**
 * Completed sweeps of one schedule a lookup reads the close times of. Visibility lists closed runs newest first (SQL
 * and Elasticsearch alike); a few more than one guard against an order the store does not promise.
 */
const COMPLETED_SWEEPS_READ = 10;

/** A string literal of Temporal's visibility query language: a schedule id may hold a quote. */
const queryString = (text: string) => `'${text.replace(/[\\']/g, (char) => `\\${char}`)}'`;

export type StartBatchRecoveryResult =
  | { outcome: 'started'; workflowId: string }
  | { outcome: 'already_running' | 'already_ended' | 'permanently_failed' | 'held'; workflowId: string };

/** Memo on recoveries a sweep starts: which sweep run started it (also shown in the Web UI). */
interface SweepMemo {
  startedBySweep: string;
}

export interface SweepActivityOptions {
  /** REPEATING_FAILURE_HOLD_MS unless a test sets it shorter. */
  repeatingFailureHoldMs?: number;
}

export function createSweepActivities(
  api: AnchorApiClient,
  client: Client,
  { repeatingFailureHoldMs = REPEATING_FAILURE_HOLD_MS }: SweepActivityOptions = {},
) {
  return {
    /**
     * Pages through the batches created in the window, keeping only the ids of
     * those with failed sessions, so memory and the result stay small at
     * 100,000 batches. The list is read without a status filter: a batch's
     * creation time never changes, so with `createdBefore` pinning the window's
     * end the pages do not shift while recoveries change statuses. Progress is
     * heartbeated, so a retry after a crash resumes from the last page read.
     */
    async listFailedBatches(input: ListFailedBatchesInput): Promise<ListFailedBatchesResult> {
      const swept = new Set<string>(input.statuses);
      const resumed = activityInfo().heartbeatDetails as ListFailedBatchesResult | undefined;
      // A heartbeat of a worker before createdAt: its ids' creation times unknown, as the list had not given them.
      const createdAt = resumed ? (resumed.createdAt ?? resumed.batchIds.map(() => null)) : [];
      const result: ListFailedBatchesResult = resumed
        ? { ...resumed, createdAt }
        : {
            batchIds: [],
            createdAt,
            failed: 0,
            scanned: 0,
            noFailedSessions: 0,
            otherStatus: 0,
            invalidBatchIds: 0,
            outsideWindow: 0,
            listedAgain: 0,
            pastRetention: 0,
            pastRetentionIds: [],
            oldestUnsettledCreatedAt: null,
            nextPage: input.fromPage,
          };

      /** Lower case: the list may give one batch's UUID in either case, and its recovery is named by the lower. */
      const seen = new Set(result.batchIds.map((batchId) => batchId.toLowerCase()));
      const windowStart = Date.parse(input.createdAfter);
      const windowEnd = Date.parse(input.createdBefore);
      const pastRetentionIds = result.pastRetentionIds ?? [];
      result.pastRetentionIds = pastRetentionIds;
      const startableFrom = await startableSince(client);
      /** A batch without a readable created_at is taken as created at the window's start: the API filtered on it. */
      const pastRetention = (createdAt: string | undefined) =>
        Date.parse(isoDateOf(createdAt) ?? input.createdAfter) < startableFrom;
      /** Only when the API says when: a batch without created_at is taken as listed in the window. */
      const outsideWindow = (createdAt: string | undefined) => {
        const at = createdAt === undefined ? NaN : Date.parse(createdAt);
        return at < windowStart || at > windowEnd;
      };
      /**
       * Records a batch listed still pending or processing, by when it was created. A heartbeat of a worker before
       * the field carries none: the unsettled batches of the pages it read are not known, and only later ones count.
       */
      const noteUnsettled = (createdAt: string | undefined) => {
        result.oldestUnsettledCreatedAt = earlierDate(
          result.oldestUnsettledCreatedAt ?? null,
          isoDateOf(createdAt) ?? input.createdAfter,
        );
      };
      const lastPage = input.maxPages === undefined ? Infinity : input.fromPage + input.maxPages - 1;
      while (result.nextPage !== null && result.nextPage <= lastPage) {
        if (input.maxBatchIds > 0 && result.batchIds.length >= input.maxBatchIds) break;
        const page = result.nextPage;
        let answer;
        try {
          // Cancelled, the read ends at once: a stopping worker is not held past its grace by a list that stalls.
          answer = await api.listBatches(
            {
              page,
              limit: input.pageSize,
              created_after: input.createdAfter,
              created_before: input.createdBefore,
            },
            { signal: cancellationSignal() },
          );
        } catch (err) {
          // With no recovery running, only the sweep meets a revoked key: AnchorApiAuthErrors must see it here too.
          countApiError(err);
          if (err instanceof RateLimitedError && (err.retryAfterMs ?? 0) > LIST_MAX_RETRY_AFTER_MS) {
            throw ApplicationFailure.create({
              type: err.kind,
              message:
                `${err.message}: longer than a sweep waits for a page (${LIST_MAX_RETRY_AFTER_MS / 60_000} min), ` +
                'so it stops here; a later sweep reads the list again',
              nonRetryable: true,
            });
          }
          throw toActivityFailure(err);
        }
        const batches = answer.batches ?? [];
        if (input.maxPages === 1 && batches.length > 0) result.pageKey = pageKeyOf(batches);
        for (const batch of batches) {
          result.scanned += 1;
          // Counted, not handed on: an API that ignored created_after had the sweep recover batches of any age,
          // weeks past the lookback an operator set, and read the team's whole history.
          if (outsideWindow(batch.created_at)) result.outsideWindow = (result.outsideWindow ?? 0) + 1;
          else if (batch.status === undefined || !swept.has(batch.status)) {
            result.otherStatus += 1;
            // Before, a batch still running when it dropped out of every later window was never swept.
            if (isInFlightBatchStatus(batch.status) && !pastRetention(batch.created_at))
              noteUnsettled(batch.created_at);
          }
          // At most 0: the contract sets no minimum, and a negative count is no failed session to retry. A count the
          // list left out (the contract requires none) is not 0: the recovery reads the batch, and ends clean if none
          // failed (stops, if the batch is `failed`). Before, such a batch was counted as having none, and never
          // recovered. A batch listed `failed` with none failed failed as a whole: its recovery reads it and stops with
          // a report that says so, which notifies. Before, the sweep only counted it, and no one was told.
          else if (batch.failed_requests !== undefined && batch.failed_requests <= 0 && batch.status !== 'failed')
            result.noFailedSessions += 1;
          // Counted, not handed on: its start was refused five times over, took a start slot for 15 s and was
          // reported as start_failed, which a later sweep would repeat.
          else if (!isBatchId(batch.batch_id)) result.invalidBatchIds = (result.invalidBatchIds ?? 0) + 1;
          else if (seen.has(batch.batch_id.toLowerCase())) result.listedAgain = (result.listedAgain ?? 0) + 1;
          // Before, the only guard was the recovery's record: once retention deleted it, a sweep reaching that far
          // back (a 90-day lookback, a window pinned by a backlog) started a recovery of a batch recovered weeks ago.
          else if (pastRetention(batch.created_at)) {
            seen.add(batch.batch_id.toLowerCase());
            result.pastRetention = (result.pastRetention ?? 0) + 1;
            if ((input.maxBatchIds > 0 || input.maxPages === 1) && pastRetentionIds.length < SWEEP_RESULT_ITEMS)
              pastRetentionIds.push(batch.batch_id);
          } else {
            result.failed += 1;
            if (input.maxBatchIds > 0 || input.maxPages === 1) {
              seen.add(batch.batch_id.toLowerCase());
              result.batchIds.push(batch.batch_id);
              createdAt.push(isoDateOf(batch.created_at));
            }
          }
        }
        // An empty page ends the scan even if the API claims more, so a wrong has_next cannot loop forever.
        result.nextPage = listHasNext(answer.pagination, page, batches.length, input.pageSize) ? page + 1 : null;
        if (answer.pagination?.total_pages !== undefined) result.totalPages = answer.pagination.total_pages;
        heartbeat({
          ...result,
          batchIds: [...result.batchIds],
          createdAt: [...createdAt],
          pastRetentionIds: [...pastRetentionIds],
        });
      }
      return result;
    },

    /**
     * The schedule's last completed sweep whose window can be read, by close time, or null when none of its sweeps
     * completed (a new schedule, or one whose sweeps all failed: their windows are not known to be read). Only a
     * completed sweep read its whole window; one that failed or was terminated says nothing of the batches it did not
     * reach. Its windowEnd is where the window ended or, when earlier, just before the oldest batch it left
     * over_limit, start_failed or held, or listed still pending or processing, was created: before, a sweep that left
     * batches out counted as having covered its whole window, and a backlog over maxStarts for longer than the
     * lookback left them in no later window, as a batch still running when it dropped out of the lookback was. A sweep
     * gone from history, or whose result has no window (or no date where the oldest batch left out goes), is passed
     * over for the one before it; when every one listed is, the lookup fails rather than take the lookback alone for
     * a window that reached back.
     */
    async findLastCompletedSweep({ scheduleId }: { scheduleId: string }): Promise<CompletedSweep | null> {
      const query =
        `WorkflowType = ${queryString(SWEEP_FAILED_BATCHES_WORKFLOW)} AND ` +
        `TemporalScheduledById = ${queryString(scheduleId)} AND ExecutionStatus = 'Completed'`;
      const completed: { workflowId: string; runId: string; closedAt: number }[] = [];
      for await (const execution of client.workflow.list({ query, pageSize: COMPLETED_SWEEPS_READ })) {
        const { workflowId, runId } = execution;
        completed.push({ workflowId, runId, closedAt: execution.closeTime?.getTime() ?? 0 });
        if (completed.length >= COMPLETED_SWEEPS_READ) break;
      }
      completed.sort((a, b) => b.closedAt - a.closedAt);
      for (const { workflowId, runId } of completed) {
        const result: unknown = await client.workflow
          .getHandle(workflowId, runId)
          .result()
          .catch((err: unknown) => {
            // Deleted (retention, an operator) after visibility listed it: the one before it may still say.
            if (err instanceof WorkflowNotFoundError) return undefined;
            throw err;
          });
        const windowEnd = completedSweepEnd(result);
        if (windowEnd !== null) return { workflowId, windowEnd };
      }
      if (completed.length === 0) return null;
      throw ApplicationFailure.create({
        type: 'last_sweep_unreadable',
        message: `none of the ${completed.length} completed sweeps of schedule ${scheduleId} listed has a window to read`,
        nonRetryable: true,
      });
    },

    /**
     * Starts a batch's recovery through the Temporal client rather than as a
     * child of the sweep: a child's start cannot tell a running recovery from
     * one that already ended (both are "already exists"), and the sweep must
     * skip an ended one instead of retrying an exhausted batch every sweep.
     * A client start also gives the recovery the same shape as one started
     * from the CLI: no parent, so it outlives the sweep with nothing to configure.
     */
    async startBatchRecovery({ batchId, recovery }: StartBatchRecoveryInput): Promise<StartBatchRecoveryResult> {
      // As recoveryStartOptions names it: the API's ids are lower case, but the list is not ours to trust.
      const workflowId = recoveryWorkflowId(batchId.toLowerCase());
      const sweepRun = activityInfo().workflowExecution?.runId;
      const input: RecoverBatchInput = { ...recovery, batchId };
      const before = await describeIfStarted(client, workflowId);
      // Never a start beside a running recovery, counting on the server to refuse it: were that recovery to fail in
      // between, ALLOW_DUPLICATE_FAILED_ONLY would take the start, whatever its failure says of a new one.
      if (before?.status.name === 'RUNNING') return runningRecoveryOutcome(before, sweepRun);
      const skip = await skipAfterFailedRecovery(client, before, repeatingFailureHoldMs);
      if (skip) return { outcome: skip, workflowId };
      // A release before wave 35 named a recovery by the id as typed: one typed in upper case that still runs, or
      // that ended with an outcome, recovers or recovered the batch, and a lower-case one would send retries of the
      // same batch again. Before, the sweep started it after an ended one.
      const upperCaseId = recoveryWorkflowId(batchId.toUpperCase());
      const upperCaseOutcome =
        upperCaseId === workflowId
          ? undefined
          : await otherRecoveryOutcome(client, upperCaseId, repeatingFailureHoldMs);
      if (upperCaseOutcome) return { outcome: upperCaseOutcome, workflowId: upperCaseId };
      try {
        await client.workflow.start<typeof recoverBatch>(RECOVER_BATCH_WORKFLOW, {
          // The core's id rule: one recovery per batch, so overlapping sweeps never double up.
          ...recoveryStartOptions(input, activityInfo().taskQueue),
          // A recovery that ended with an outcome is not redone; one that failed or was terminated may be.
          workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
          ...(sweepRun !== undefined && { memo: { startedBySweep: sweepRun } satisfies SweepMemo }),
        });
        return { outcome: 'started', workflowId };
      } catch (err) {
        if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      }
      const description = await client.workflow.getHandle(workflowId).describe();
      if (description.status.name !== 'RUNNING') return { outcome: 'already_ended', workflowId };
      return runningRecoveryOutcome(description, sweepRun);
    },
  };
}

export type SweepActivities = ReturnType<typeof createSweepActivities>;

/** A running recovery of the batch: `started` when an earlier attempt of this sweep's activity started it. */
function runningRecoveryOutcome(
  description: WorkflowExecutionDescription,
  sweepRun: string | undefined,
): StartBatchRecoveryResult {
  // That attempt's answer was lost: the recovery is this sweep's own start.
  const memo = description.memo as Partial<SweepMemo> | undefined;
  return {
    outcome: sweepRun !== undefined && memo?.startedBySweep === sweepRun ? 'started' : 'already_running',
    workflowId: description.workflowId,
  };
}

/**
 * The earliest creation time of a batch whose recovery the sweep may start, from the namespace's retention as the
 * server says now (an operator may change it).
 */
async function startableSince(client: Client): Promise<number> {
  const { config } = await client.workflowService.describeNamespace({ namespace: client.options.namespace });
  const retentionMs = optionalTsToMs(config?.workflowExecutionRetentionTtl);
  // None would leave no bound: fail the task (retried) rather than start recoveries that may be repeats.
  if (retentionMs === undefined || retentionMs <= 0)
    throw ApplicationFailure.create({
      type: 'retention_unknown',
      message: `namespace ${client.options.namespace} has no retention the sweep can read`,
    });
  return Date.now() - retentionMs + RETENTION_MARGIN_MS;
}

function pageKeyOf(batches: { batch_id?: string }[]): string {
  const hash = createHash('sha256');
  for (const batch of batches) hash.update(`${batch.batch_id ?? ''}\n`);
  return hash.digest('hex').slice(0, 16);
}

/** A batch's created_at as an ISO date, or null when the list gave none that reads as a date. */
function isoDateOf(createdAt: string | undefined): string | null {
  const at = createdAt === undefined ? NaN : Date.parse(createdAt);
  return Number.isFinite(at) ? new Date(at).toISOString() : null;
}
