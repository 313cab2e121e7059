import { countersMayCatchUp, isFinishedBatchStatus } from '../anchor-api/batch-status.js';
import {
  API_TEXT_MAX_CHARS,
  cleanApiText,
  UrlSecrets,
  urlsQuotedIn,
  type RecoverableBatch,
} from '../anchor-api/index.js';
import { cutText, REPORT_LIMITS, type BatchSnapshot, type FailingSession } from '../workflows/report.js';
import { retrySnapshotOf, type RetrySnapshot } from '../workflows/retry-protocol.js';

/**
 * Enough to show an operator what fails without making history grow with the batch size; each error is
 * cut to REPORT_LIMITS.textChars (500) characters, so a status read's result stays small whatever the API sent.
 */
export const FAILING_SESSIONS_CAP = REPORT_LIMITS.failingSessions;

/**
 * The API calls the batch finished, either way. A `pending` or `processing` batch is in flight whatever its counters
 * say: the contract's one promise of an accepted retry call is the status going back to `processing`, and the counters
 * may lag it, still showing the failures the call is retrying (a second call would retry them twice). A status read
 * always has a status (requireRecoverableBatch).
 */
export function isSettled(batch: RecoverableBatch, now: number): boolean {
  if (!isFinishedBatchStatus(batch.status)) return false;
  // Ended before its counters caught up: the failures they show may not be all of them, and a recovery that took
  // them ended `clean` with sessions failing. A cancelled batch ends the recovery whatever its counters say.
  if (batch.status === 'cancelled' || batch.countsDescribeBatch) return true;
  return !countersMayCatchUp(batch.detail.actual_completion_time, now);
}

/**
 * Sum of the sessions' retry_count, or null when it cannot show a retry: no sessions sent, a list that leaves out
 * some of the batch's requests (or lists one twice), or a session without retry_count (counting a missing one as 0
 * would hide a retry whose sessions failed again at once). The contract never says `sessions` lists every session: summed over part of
 * them, an applied call whose retried sessions are not listed looks like no effect, and the call is sent again. The
 * list is measured against the API's total_requests, not counts.total, which is the list's own length without it.
 */
function retryCountTotalOf(batch: RecoverableBatch): number | null {
  const requests = batch.detail.total_requests;
  if (batch.sessions === undefined || requests === undefined || requests === 0) return null;
  if (batch.sessions.length !== requests) return null;
  let total = 0;
  const listed = new Set<number>();
  for (const session of batch.sessions) {
    if (session.retry_count === undefined) return null;
    // One session listed twice stands in for one left out, whose retry would not show.
    if (session.item_index !== undefined) {
      if (listed.has(session.item_index)) return null;
      listed.add(session.item_index);
    }
    total += session.retry_count;
  }
  return total;
}

/**
 * Copies only what the workflow needs. The API's sessions carry `cdp_url` and
 * `live_view_url`, which hand over a live browser: they must never reach history.
 */
export function toBatchSnapshot(batch: RecoverableBatch, observedAt: Date): BatchSnapshot {
  const sessions = batch.sessions ?? [];
  const failed = sessions.filter((session) => session.status === 'failed').slice(0, FAILING_SESSIONS_CAP);
  const batchError = errorOfBatchFailedAsAWhole(batch);
  // The API may quote a session's URLs in an error, its own or another's, written in ways no pattern recognises.
  const texts = [
    ...failed.flatMap((session) => session.error ?? []),
    ...(batchError === undefined ? [] : [batchError]),
  ];
  const urls = sessions.flatMap((session) => [session.cdp_url, session.live_view_url]);
  const urlSecrets = texts.length === 0 ? undefined : new UrlSecrets(urls, texts);
  const failing: FailingSession[] = failed.map((session) => ({
    itemIndex: session.item_index ?? -1,
    error:
      session.error === undefined
        ? null
        : cleanApiText(session.error, [session.cdp_url, session.live_view_url], API_TEXT_MAX_CHARS, urlSecrets),
    retryCount: session.retry_count ?? 0,
  }));
  return {
    status: batch.status,
    ...batch.counts,
    settled: isSettled(batch, observedAt.getTime()),
    percentage: batch.detail.progress?.percentage ?? null,
    retryCountTotal: retryCountTotalOf(batch),
    failing,
    observedAt: observedAt.toISOString(),
    ...settledAtOf(batch.detail.actual_completion_time),
    // Cut as the report cuts every text, so it costs the report no more than one.
    ...(batchError !== undefined && {
      batchError: cutText(cleanApiText(batchError, urlsQuotedIn(batchError, urls), API_TEXT_MAX_CHARS, urlSecrets)),
    }),
  };
}

/**
 * The API's `error` of a batch it calls failed with no failed session, for the report that stops such a recovery
 * (it ended `clean` before): why it failed as a whole. Only then: a batch with failed sessions says why in theirs.
 */
function errorOfBatchFailedAsAWhole(batch: RecoverableBatch): string | undefined {
  const { error } = batch.detail;
  return batch.status === 'failed' && batch.counts.failed === 0 ? error : undefined;
}

/** Re-printed from a parsed date, so whatever the API sent, what reaches history is one short timestamp. */
export function settledAtOf(actualCompletionTime: string | undefined): { settledAt?: string } {
  const time = actualCompletionTime === undefined ? NaN : Date.parse(actualCompletionTime);
  return Number.isNaN(time) ? {} : { settledAt: new Date(time).toISOString() };
}

/** The part of a status read that a retry round compares before and after its call. */
export function toRetrySnapshot(batch: RecoverableBatch, observedAt: Date): RetrySnapshot {
  return retrySnapshotOf(toBatchSnapshot(batch, observedAt));
}

export function describeProgress(snapshot: BatchSnapshot): string {
  const done = snapshot.completed + snapshot.failed;
  return (
    `batch ${snapshot.status}: ${done}/${snapshot.total} settled ` +
    `(${snapshot.completed} completed, ${snapshot.failed} failed, ${snapshot.processing} processing, ${snapshot.pending} pending)`
  );
}
