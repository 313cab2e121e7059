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

/**
 * How long after the API dated a batch's completion its counters are taken to be catching up when they account for
 * fewer requests than it has: a finished batch is not settled until they account for all, or until this has passed.
 * Past it, they stay as they are (sessions in no counter: cancelled ones of a batch that finished otherwise), and
 * waiting on would hold its recovery until its deadline.
 */
export const COUNTERS_CATCH_UP_MS = 5 * 60_000;

/**
 * Whether a finished batch whose counters account for fewer requests than it has may still be catching up: completed
 * less than COUNTERS_CATCH_UP_MS before `now`, or not dated by the API (then nothing bounds the wait but the
 * recovery's deadline, which ends it with a report, where taking the counters as they are could end it `clean` with
 * sessions failing).
 */
export function countersMayCatchUp(completedAt: string | undefined, now: number): boolean {
  const at = completedAt === undefined ? NaN : Date.parse(completedAt);
  return Number.isNaN(at) || now - at < COUNTERS_CATCH_UP_MS;
}
