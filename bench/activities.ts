import type { AnchorApiClient } from '../anchor-api/index.js';
import { isSettled } from '../activities/batch-snapshot.js';

/** The baselines' activities: the naive workflow's real calls and the no-op's empty bodies. */
export function createBenchActivities(api: AnchorApiClient) {
  return {
    async readBatchStatus(batchId: string): Promise<{ settled: boolean; failed: number }> {
      const batch = await api.getRecoverableBatch(batchId);
      return { settled: isSettled(batch), failed: batch.counts.failed };
    },
    async sendRetry(batchId: string): Promise<number> {
      const answer = await api.retryFailedSessions(batchId, { retry_failed_only: true, max_retries: 1 });
      return answer.retried_sessions ?? 0;
    },
    async noopAwaitBatchSettled(_batchId: string): Promise<void> {},
    async noopReadRetrySnapshot(_batchId: string): Promise<void> {},
    async noopSendRetry(_batchId: string): Promise<void> {},
  };
}

export type BenchActivities = ReturnType<typeof createBenchActivities>;
