import type { BatchSnapshot } from './report.js';

/*
 * The messages of the retry round's protocol (docs/retry-protocol.md), shared by the workflow that
 * sequences it and the activities that carry out its steps. Types, and the one pick both sides make.
 */

/** What a reconciliation compares: small enough for history, enough to see a retry's effect. */
export type RetrySnapshot = Pick<
  BatchSnapshot,
  'status' | 'failed' | 'pending' | 'processing' | 'settled' | 'retryCountTotal' | 'observedAt'
>;

/** What a reconciliation compares of a full status read, and no more: the calls' inputs stay small. */
export function retrySnapshotOf(snapshot: BatchSnapshot): RetrySnapshot {
  const { status, failed, pending, processing, settled, retryCountTotal, observedAt } = snapshot;
  return { status, failed, pending, processing, settled, retryCountTotal, observedAt };
}

export interface SendRetryInput {
  batchId: string;
  maxRetries: number;
  retryFailedOnly: boolean;
}

/**
 * The outcome of one retry call, as a fact:
 * - `applied`: the API answered 2xx (`retriedSessions` null when the answer was unreadable);
 * - `nothing_to_retry`: the API answered 400, a round that retried 0;
 * - `not_sent`: the call provably did not reach the API or was refused before being handled
 *   (connection refused, DNS, connect timeout, 429): never a round, the call is sent again;
 * - `unknown`: the request may have been applied (timeout after sending, reset, 5xx): reconcile, never resend blindly.
 */
export type SendRetryResult =
  | { kind: 'applied'; retriedSessions: number | null; apiMessage: string | null }
  | { kind: 'nothing_to_retry'; apiMessage: string }
  | { kind: 'not_sent'; errorType: string; reason: string; retryAfterMs: number | null }
  | {
      kind: 'unknown';
      errorType: string;
      reason: string;
      /** When the request started and how long it could last; absent when the worker was lost mid-call. */
      sentAt?: string;
      requestTimeoutMs?: number;
    };

export interface RetryEffect {
  /** `no_effect` is the only verdict that allows a second call. */
  effect: 'took_effect' | 'no_effect' | 'unknown';
  reason: string;
}

export interface ReconcileRetryInput {
  batchId: string;
  before: RetrySnapshot;
}

export type ReconcileRetryResult = RetryEffect & { snapshot: RetrySnapshot };
