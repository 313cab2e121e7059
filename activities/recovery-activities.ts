import { activityInfo, cancellationSignal, heartbeat, log } from '@temporalio/activity';
import { ApplicationFailure, ApplicationFailureCategory } from '@temporalio/common';
import {
  MalformedResponseError,
  NoFailedSessionsError,
  cleanApiText,
  type AnchorApiClient,
  type RecoverableBatch,
} from '../anchor-api/index.js';
import { BATCH_NOT_SETTLED } from '../workflows/definitions.js';
import type { BatchSnapshot } from '../workflows/report.js';
import { describeProgress, toBatchSnapshot, toRetrySnapshot } from './batch-snapshot.js';
import { toActivityFailure } from './failures.js';
import { retryEffect } from './retry-activities.js';
import { countApiError, countRetryCall } from './metrics.js';

export interface RetryFailedSessionsInput {
  batchId: string;
  maxRetries: number;
  retryFailedOnly: boolean;
  /** The settled batch the round started from; used when no fresher snapshot was recorded. */
  before: LegacyRetrySnapshot;
}

/** What the reconciliation compares: enough to see a retry's effect, small enough for heartbeat details. */
type LegacyRetrySnapshot = Pick<BatchSnapshot, 'failed' | 'retryCountTotal'>;

export interface RetryFailedSessionsResult {
  retriedSessions: number;
  apiStatus: number | null;
  apiMessage: string | null;
  reconciled: boolean;
}

const HEARTBEAT_INTERVAL_MS = 2_000;

/**
 * Heartbeats while a call is in flight, so a worker that dies mid-call is
 * noticed after the heartbeat timeout (seconds) rather than the start-to-close
 * timeout, and the next attempt reconciles sooner.
 */
async function withHeartbeats<T>(work: Promise<T>, details?: unknown): Promise<T> {
  heartbeat(details);
  const timer = setInterval(() => heartbeat(details), HEARTBEAT_INTERVAL_MS);
  try {
    return await work;
  } finally {
    clearInterval(timer);
  }
}

export function createRecoveryActivities(api: AnchorApiClient) {
  return {
    /**
     * One status read. A batch still in flight fails with a benign, retryable
     * failure that carries the progress, so the server's retry policy does the
     * polling: no history events per poll, no worker slot held between polls,
     * and the progress shows on the pending activity in the UI and the CLI.
     */
    async awaitBatchSettled(batchId: string): Promise<BatchSnapshot> {
      let batch: RecoverableBatch;
      try {
        batch = await api.getRecoverableBatch(batchId, { signal: cancellationSignal() });
      } catch (err) {
        countApiError(err);
        throw toActivityFailure(err);
      }
      const snapshot = toBatchSnapshot(batch, new Date());
      if (snapshot.settled) return snapshot;
      const { failing, ...progress } = snapshot;
      throw ApplicationFailure.create({
        type: BATCH_NOT_SETTLED,
        message: `Not settled yet: ${describeProgress(snapshot)}`,
        details: [progress],
        category: ApplicationFailureCategory.BENIGN,
      });
    },

    /**
     * The retry round of recoveries started before the retry protocol (workflows/retry-protocol.ts):
     * kept registered so that a round they had already scheduled completes after an upgrade. New
     * rounds use createRetryActivities. One retry call. The endpoint is not idempotent: an attempt after one
     * whose outcome may be unknown (timeout, dropped connection, worker crash)
     * reads the batch first, and sends no second retry unless the batch proves
     * the first one had no effect.
     */
    async retryFailedSessions(input: RetryFailedSessionsInput): Promise<RetryFailedSessionsResult> {
      const { batchId, maxRetries, retryFailedOnly } = input;
      const { attempt } = activityInfo();
      const heartbeatDetails: unknown = activityInfo().heartbeatDetails;
      try {
        let before = input.before;
        if (attempt > 1) {
          // The snapshot the first attempt took right before its call, if its heartbeat got through:
          // fresher than the round's, which a manual retry during the backoff would have made stale.
          before = (heartbeatDetails as LegacyRetrySnapshot | undefined) ?? input.before;
          const now = toRetrySnapshot(await withHeartbeats(api.getRecoverableBatch(batchId)), new Date());
          const { effect } = retryEffect(before, now);
          if (effect !== 'no_effect') {
            log.warn('An earlier retry call may have taken effect; not sending another', { batchId, attempt, effect });
            countRetryCall(effect === 'took_effect' ? before.failed : null, true);
            return {
              // The API's answer was lost; what it would have said under retry_failed_only.
              retriedSessions: effect === 'took_effect' ? before.failed : 0,
              apiStatus: null,
              apiMessage:
                effect === 'took_effect'
                  ? 'answer lost; the batch shows the retry was applied'
                  : 'answer lost; the batch cannot show whether the retry was applied, so it was not sent again',
              reconciled: true,
            };
          }
        } else {
          const fresh = toBatchSnapshot(await withHeartbeats(api.getRecoverableBatch(batchId)), new Date());
          before = { failed: fresh.failed, retryCountTotal: fresh.retryCountTotal };
        }
        const answer = await withHeartbeats(
          api.retryFailedSessions(batchId, { retry_failed_only: retryFailedOnly, max_retries: maxRetries }),
          before,
        );
        countRetryCall(answer.retried_sessions ?? null, false);
        return {
          retriedSessions: answer.retried_sessions ?? 0,
          apiStatus: 200,
          apiMessage: answer.message === undefined ? null : cleanApiText(answer.message),
          reconciled: false,
        };
      } catch (err) {
        // Not a failure: the batch settled with nothing to retry, so the round retried 0.
        if (err instanceof NoFailedSessionsError) {
          return {
            retriedSessions: 0,
            apiStatus: 400,
            apiMessage: err.apiMessage ?? '',
            reconciled: false,
          };
        }
        countApiError(err);
        // The API took the call but its answer is unreadable: the retry happened, so the round did too.
        if (err instanceof MalformedResponseError && err.outcomeUnknown) {
          countRetryCall(input.before.failed, false);
          return {
            retriedSessions: input.before.failed,
            apiStatus: 200,
            apiMessage: `answer unreadable (${err.problem}); counted as retrying every failed session`,
            reconciled: false,
          };
        }
        throw toActivityFailure(err);
      }
    },
  };
}

export type RecoveryActivities = ReturnType<typeof createRecoveryActivities>;
