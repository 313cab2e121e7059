import { ANCHOR_ENDPOINTS } from './endpoints.js';
import { MalformedResponseError } from './errors.js';
import type { BatchSessionItem, BatchStatus, BatchStatusDetail } from './schemas.js';

/*
 * The one place deciding which fields of a batch status the recovery cannot work without.
 * It needs the batch `status` and how many sessions failed, are pending and are processing:
 * either from the counters or, when any counter is missing, counted from `sessions`.
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
  /** Present only when the API sent it. */
  sessions: BatchSessionItem[] | undefined;
  detail: BatchStatusDetail;
}

export function requireRecoverableBatch(detail: BatchStatusDetail, batchId: string): RecoverableBatch {
  const missing = (problem: string) =>
    new MalformedResponseError({ endpoint: ANCHOR_ENDPOINTS.getBatch, batchId, problem, outcomeUnknown: false });

  if (detail.status === undefined) throw missing('data.status: required');

  const base = { batchId, status: detail.status, sessions: detail.sessions, detail };
  const { failed_requests: failed, pending_requests: pending, processing_requests: processing } = detail;
  if (failed !== undefined && pending !== undefined && processing !== undefined) {
    const total =
      detail.total_requests ??
      detail.sessions?.length ??
      sumDefined(detail.completed_requests, failed, pending, processing);
    const completed = detail.completed_requests ?? Math.max(0, total - failed - pending - processing);
    return { ...base, countsSource: 'counters', counts: { total, completed, failed, processing, pending } };
  }

  if (detail.sessions === undefined) {
    throw missing(
      'data.failed_requests, data.pending_requests and data.processing_requests, or data.sessions: required',
    );
  }
  return { ...base, countsSource: 'sessions', counts: countSessions(detail.sessions, missing) };
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

function sumDefined(...values: (number | undefined)[]): number {
  return values.reduce<number>((sum, value) => sum + (value ?? 0), 0);
}
