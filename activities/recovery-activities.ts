import { activityInfo, heartbeat, log } from '@temporalio/activity';
import { ApplicationFailure, ApplicationFailureCategory } from '@temporalio/common';
import { NoFailedSessionsError, type AnchorApiClient, type RecoverableBatch } from '../anchor-api/index.js';
import type { BatchSnapshot } from '../workflows/report.js';
import { describeProgress, toBatchSnapshot } from './batch-snapshot.js';
import { toActivityFailure } from './failures.js';
import { countApiError, countRetryCall } from './metrics.js';

/** The failure type the poll activity uses for "still in flight"; the workflow's retry policy retries it. */
export const BATCH_NOT_SETTLED = 'BatchNotSettled';

export interface RetryFailedSessionsInput {
  batchId: string;
  maxRetries: number;
  retryFailedOnly: boolean;
  /** The settled batch the round started from; a later attempt compares against it. */
  before: Pick<BatchSnapshot, 'failed' | 'retryCountTotal'>;
}

export interface RetryFailedSessionsResult {
  retriedSessions: number;
  apiStatus: number | null;
  apiMessage: string | null;
  reconciled: boolean;
}

/**
 * True when the batch shows a retry was applied since `before` was taken:
 * sessions are in flight again, fewer have failed, or retry counts went up.
 */
export function retryTookEffect(before: RetryFailedSessionsInput['before'], now: RecoverableBatch): boolean {
  const snapshot = toBatchSnapshot(now, new Date());
  if (snapshot.pending + snapshot.processing > 0) return true;
  if (snapshot.failed < before.failed) return true;
  return (
    before.retryCountTotal !== null &&
    snapshot.retryCountTotal !== null &&
    snapshot.retryCountTotal > before.retryCountTotal
  );
}

const HEARTBEAT_INTERVAL_MS = 2_000;

async function withHeartbeats<T>(work: Promise<T>): Promise<T> {
  heartbeat();
  const timer = setInterval(() => heartbeat(), HEARTBEAT_INTERVAL_MS);
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
        batch = await api.getRecoverableBatch(batchId);
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
     * One retry call. The endpoint is not idempotent: when an earlier attempt
     * may have reached the API (timeout, dropped connection, worker crash),
     * this attempt reads the batch first and does not send a second retry for
     * a round whose first one took effect.
     */
    async retryFailedSessions(input: RetryFailedSessionsInput): Promise<RetryFailedSessionsResult> {
      const { batchId, maxRetries, retryFailedOnly, before } = input;
      try {
        if (activityInfo().attempt > 1) {
          const now = await withHeartbeats(api.getRecoverableBatch(batchId));
          if (retryTookEffect(before, now)) {
            log.warn('Earlier retry attempt took effect; not sending another', {
              batchId,
              attempt: activityInfo().attempt,
            });
            countRetryCall(before.failed, true);
            return { retriedSessions: before.failed, apiStatus: null, apiMessage: null, reconciled: true };
          }
        }
        const answer = await withHeartbeats(
          api.retryFailedSessions(batchId, { retry_failed_only: retryFailedOnly, max_retries: maxRetries }),
        );
        countRetryCall(answer.retried_sessions ?? 0, false);
        return {
          retriedSessions: answer.retried_sessions ?? 0,
          apiStatus: 200,
          apiMessage: answer.message ?? null,
          reconciled: false,
        };
      } catch (err) {
        countApiError(err);
        // Not a failure: the batch settled with nothing to retry, so the round retried 0.
        if (err instanceof NoFailedSessionsError) {
          return { retriedSessions: 0, apiStatus: 400, apiMessage: err.apiMessage ?? null, reconciled: false };
        }
        throw toActivityFailure(err);
      }
    },
  };
}

export type RecoveryActivities = ReturnType<typeof createRecoveryActivities>;
