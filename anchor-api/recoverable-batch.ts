import { isFinishedBatchStatus, isInFlightBatchStatus } from './batch-status.js';
import { ANCHOR_ENDPOINTS } from './endpoints.js';
import { MalformedResponseError } from './errors.js';
import type { BatchSessionItem, BatchStatus, BatchStatusDetail } from './schemas.js';

/*
 * The one place deciding which fields of a batch status the recovery cannot work without.
 * It needs the batch `status` and how many sessions failed, are pending and are processing:
 * from the counters when they describe the batch, else counted from a `sessions` list of every request.
 */

export interface SessionCounts {
  total: number;
  completed: number;
  failed: number;
  processing: number;
  pending: number;
}

export interface RecoverableBatch {
  batchId: string;
  status: BatchStatus;
  counts: SessionCounts;
  /** Where the counts came from: the API's counters, or counted from the sessions array. */
  countsSource: 'counters' | 'sessions';
  /**
   * False when the API's counters, the only counts there are, do not account for every request (the contract:
   * "The counters describe it only once they account for every request"): a status of `completed` or `failed` then
   * says the batch ended before its counters caught up, and the failures they show may not be all of them.
   */
  countsDescribeBatch: boolean;
  /** Present only when the API sent it. */
  sessions: BatchSessionItem[] | undefined;
  detail: BatchStatusDetail;
}

export function requireRecoverableBatch(detail: BatchStatusDetail, batchId: string): RecoverableBatch {
  const missing = (problem: string) =>
    new MalformedResponseError({ endpoint: ANCHOR_ENDPOINTS.getBatch, batchId, problem, outcomeUnknown: false });

  if (detail.status === undefined) throw missing('data.status: required');

  const base = { batchId, status: detail.status, sessions: detail.sessions, detail };
  const counters = countersOf(detail);
  // A list of every request: as long as the API's total, or no total to measure it by. A shorter one leaves out
  // sessions, failed ones among them: counted, it took a failing batch for a clean one.
  const everySession =
    detail.sessions !== undefined && (counters.total === undefined || detail.sessions.length === counters.total);
  const fromCounters = countsFromCounters(counters, detail.sessions);
  if (fromCounters !== undefined && (fromCounters.accountForAll || !everySession)) {
    return {
      ...base,
      countsSource: 'counters',
      counts: fromCounters.counts,
      countsDescribeBatch: fromCounters.accountForAll,
    };
  }
  if (everySession) {
    return {
      ...base,
      countsSource: 'sessions',
      counts: countSessions(detail.sessions!, missing),
      countsDescribeBatch: true,
    };
  }
  if (detail.sessions !== undefined) {
    // Part of the list, and no counters to go by. While the batch runs it is not settled whatever the counts say, and
    // a cancelled one ends the recovery whatever failed: the counts of what the list shows do. A finished one needs
    // them all, and the API gives no way to them.
    if (detail.status === 'cancelled' || !isFinishedBatchStatus(detail.status)) {
      return {
        ...base,
        countsSource: 'sessions',
        counts: countSessions(detail.sessions, missing),
        countsDescribeBatch: false,
      };
    }
    throw missing(
      `data.sessions: lists ${detail.sessions.length} of the batch's ${counters.total} requests, and the counters ` +
        'do not give the failed, pending and processing ones',
    );
  }
  // In flight by its status, which alone says it is not settled (the contract: right after creation its counters may
  // all still be 0, and any may be absent). Refused, the read failed its recovery for good while the batch still ran.
  if (isInFlightBatchStatus(detail.status)) {
    return { ...base, countsSource: 'counters', counts: inFlightCounts(counters), countsDescribeBatch: false };
  }
  throw missing('data.failed_requests, data.pending_requests and data.processing_requests, or data.sessions: required');
}

/**
 * The counts of a batch in flight whose counters do not give them all: those sent, 0 for the others, and the requests
 * in none of them still processing, as the status says. Shown, and compared by a reconciliation, which takes a batch
 * back in flight after a call as the call's effect whatever its counts.
 */
function inFlightCounts(counters: Counters): SessionCounts {
  const { completed = 0, failed = 0, pending = 0 } = counters;
  const processing = counters.processing ?? Math.max(0, (counters.total ?? 0) - completed - failed - pending);
  return { total: counters.total ?? completed + failed + pending + processing, completed, failed, processing, pending };
}

type Counters = Partial<Record<'total' | 'completed' | 'failed' | 'pending' | 'processing', number>>;

/** The API's counters; a negative one, an API's "unknown", is taken as absent: as a count, -1 failed was a failure. */
function countersOf(detail: BatchStatusDetail): Counters {
  const counted = (value: number | undefined) => (value !== undefined && value >= 0 ? value : undefined);
  return {
    total: counted(detail.total_requests),
    completed: counted(detail.completed_requests),
    failed: counted(detail.failed_requests),
    pending: counted(detail.pending_requests),
    processing: counted(detail.processing_requests),
  };
}

/**
 * The counts the counters give, or undefined when they give no failed, pending and processing counts. An API may
 * leave out a counter at 0: those missing are 0 when the others account for every request. Whether they account for
 * all is known only with a total and a completed count; without, they are taken as they are. More than the total
 * (a session counted twice while it moves) accounts for all.
 */
function countsFromCounters(
  counters: Counters,
  sessions: BatchSessionItem[] | undefined,
): { counts: SessionCounts; accountForAll: boolean } | undefined {
  const { total, completed } = counters;
  let { failed, pending, processing } = counters;
  if (failed === undefined || pending === undefined || processing === undefined) {
    if (total === undefined || completed === undefined) return undefined;
    if (completed + (failed ?? 0) + (pending ?? 0) + (processing ?? 0) !== total) return undefined;
    failed ??= 0;
    pending ??= 0;
    processing ??= 0;
  }
  const knownTotal = total ?? sessions?.length ?? (completed ?? 0) + failed + pending + processing;
  const accountForAll =
    total === undefined || completed === undefined || completed + failed + pending + processing >= total;
  return {
    counts: {
      total: knownTotal,
      completed: completed ?? Math.max(0, knownTotal - failed - pending - processing),
      failed,
      processing,
      pending,
    },
    accountForAll,
  };
}

function countSessions(sessions: BatchSessionItem[], missing: (problem: string) => Error): SessionCounts {
  const counts: SessionCounts = { total: sessions.length, completed: 0, failed: 0, processing: 0, pending: 0 };
  sessions.forEach((session, index) => {
    switch (session.status) {
      case undefined:
        throw missing(`data.sessions[${index}].status: required when counters are missing`);
      case 'completed':
      case 'failed':
      case 'processing':
      case 'pending':
        counts[session.status] += 1;
        break;
      case 'cancelled':
        break;
    }
  });
  return counts;
}
