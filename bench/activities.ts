import { setTimeout as delay } from 'node:timers/promises';
import type { AnchorApiClient } from '../anchor-api/index.js';
import { isSettled } from '../activities/batch-snapshot.js';

/** The baselines' activities: the naive workflow's real calls and the no-op's empty bodies. */
export function createBenchActivities(api: AnchorApiClient) {
  return {
    async readBatchStatus(batchId: string): Promise<{ settled: boolean; failed: number }> {
      const batch = await api.getRecoverableBatch(batchId);
      return { settled: isSettled(batch, Date.now()), failed: batch.counts.failed };
    },
    async sendRetry(batchId: string): Promise<number> {
      const answer = await api.retryFailedSessions(batchId, { retry_failed_only: true, max_retries: 1 });
      return answer.retried_sessions ?? 0;
    },
    /** Waits, idle, until the batch's sessions end (epoch ms), as a wait for the batch to settle would. */
    async noopAwaitBatchSettled(settlesAt: number): Promise<void> {
      await delay(Math.max(0, settlesAt - Date.now()));
    },
    async noopReadRetrySnapshot(_batchId: string): Promise<void> {},
    /** Returns when the retried session would end (epoch ms). */
    noopSendRetry(sessionMs: number): Promise<number> {
      return Promise.resolve(Date.now() + sessionMs);
    },
  };
}

export type BenchActivities = ReturnType<typeof createBenchActivities>;
