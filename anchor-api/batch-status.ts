/** The contract's batch statuses. Free of zod, so workflow code can check a value against them too. */
export const BATCH_STATUSES = ['pending', 'processing', 'completed', 'failed', 'cancelled'] as const;

/** The API has finished the batch, either way. */
export function isFinishedBatchStatus(status: string | undefined): boolean {
  return status === 'completed' || status === 'failed' || status === 'cancelled';
}

/** The API is still creating the batch's sessions, as a retry call it accepted makes it again. */
export function isInFlightBatchStatus(status: string | undefined): boolean {
  return status === 'pending' || status === 'processing';
}

/** Completed, failed and total requests, as the single-batch read, the list and a recovery's wake all carry them. */
export interface RequestCounters {
  total: number;
  completed: number;
  failed: number;
}

/**
 * The batch's counters account for every request. Counters all 0 account for none: a batch just created (the API
 * works asynchronously) lists them so while it is still `pending`. The settle rule of the single-batch read, the
 * poller's list and a recovery's wake, each from what it has beside the counters.
 */
export function countersAccountForAll({ total, completed, failed }: RequestCounters): boolean {
  return total > 0 && completed + failed >= total;
}
