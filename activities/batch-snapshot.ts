import { cleanApiText, type RecoverableBatch } from '../anchor-api/index.js';
import type { BatchSnapshot, FailingSession } from '../workflows/report.js';

/** Enough to show an operator what fails without making history grow with the batch size. */
export const FAILING_SESSIONS_CAP = 25;

/** Nothing pending or processing, or the API calls the batch finished either way. */
export function isSettled(batch: RecoverableBatch): boolean {
  if (batch.status === 'completed' || batch.status === 'failed' || batch.status === 'cancelled') return true;
  return batch.counts.pending === 0 && batch.counts.processing === 0;
}

/**
 * Copies only what the workflow needs. The API's sessions carry `cdp_url` and
 * `live_view_url`, which hand over a live browser: they must never reach history.
 */
export function toBatchSnapshot(batch: RecoverableBatch, observedAt: Date): BatchSnapshot {
  const failing: FailingSession[] = [];
  let retryCountTotal: number | null = batch.sessions ? 0 : null;
  for (const session of batch.sessions ?? []) {
    if (retryCountTotal !== null) retryCountTotal += session.retry_count ?? 0;
    if (session.status === 'failed' && failing.length < FAILING_SESSIONS_CAP) {
      failing.push({
        itemIndex: session.item_index ?? -1,
        error: session.error === undefined ? null : cleanApiText(session.error),
        retryCount: session.retry_count ?? 0,
      });
    }
  }
  return {
    status: batch.status,
    ...batch.counts,
    settled: isSettled(batch),
    percentage: batch.detail.progress?.percentage ?? null,
    retryCountTotal,
    failing,
    observedAt: observedAt.toISOString(),
  };
}

export function describeProgress(snapshot: BatchSnapshot): string {
  const done = snapshot.completed + snapshot.failed;
  return (
    `batch ${snapshot.status}: ${done}/${snapshot.total} settled ` +
    `(${snapshot.completed} completed, ${snapshot.failed} failed, ${snapshot.processing} processing, ${snapshot.pending} pending)`
  );
}
