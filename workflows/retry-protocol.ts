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
  /**
   * The run that scheduled the call. A reset of the recovery while the call is out leaves it scheduled in the history
   * it copies, and the server hands it to the run the reset began: that run's attempt sends nothing, as the attempt of
   * the run before may have sent it (SCHEDULED_BEFORE_RESET). Absent from the calls of recoveries before it.
   */
  scheduledByRunId?: string;
}

/**
 * What the call's activity has the server record, as a heartbeat it waits to see acknowledged, before its request may
 * leave the worker; every later heartbeat of the attempt repeats it, since each one replaces the details before it.
 * So an attempt lost to a timeout whose last heartbeat details lack it never sent its request: a worker killed, or
 * stalled past its heartbeat timeout, before the announcement left nothing at the API.
 */
export interface RetrySendAnnouncement {
  retryCallMayBeSent: true;
  announcedAt: string;
}

/** How a send lost with its worker is told in the report: the round's `apiMessage` or the recovery's `lastError`. */
export const LOST_BEFORE_ANNOUNCING = 'the worker was lost before announcing the call';
export const LOST_AFTER_ANNOUNCING = 'the worker was lost after announcing the call';
/**
 * How a call that the run a reset ended may have sent is told in the round's `apiMessage` (docs/retry-protocol.md,
 * "Reset"): past the reset point, which the history the reset copied does not hold (the new run's first call is
 * reconciled before it is sent); or while the call was out, which the history holds with no outcome (the server hands
 * it to the new run, whose attempt sends nothing).
 */
export const SENT_BEFORE_RESET = 'the recovery was reset: the run before may have sent a call past the reset point';
export const SCHEDULED_BEFORE_RESET = 'the recovery was reset while the call was out: the run before may have sent it';

export function isRetrySendAnnouncement(details: unknown): details is RetrySendAnnouncement {
  return (
    typeof details === 'object' &&
    details !== null &&
    (details as Partial<RetrySendAnnouncement>).retryCallMayBeSent === true
  );
}

/**
 * The outcome of one retry call, as a fact:
 * - `applied`: the API answered 2xx (`retriedSessions` null when the answer was unreadable);
 * - `nothing_to_retry`: the API answered 400, a round that retried 0;
 * - `not_sent`: the call provably did not reach the API or was refused before being handled
 *   (connection refused, DNS, connect timeout, 429, a worker lost before announcing it): never a round, the call is
 *   sent again;
 * - `unknown`: the request may have been applied (timeout after sending, reset, 5xx, a redirect): reconcile, never
 *   resend blindly.
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
      /**
       * How much longer the request could have lasted when the activity returned (its timeout less the time it took,
       * on the worker's monotonic clock); absent as sentAt is, and from workers before it. The workflow counts it from
       * the result, so no two machines' clocks are compared.
       */
      requestMayLastMs?: number;
      /**
       * The answer was one no resend fixes (a redirect, a 101): once the batch shows the call had no effect, the
       * recovery stops with it instead of sending the call again. Absent from workers before it.
       */
      permanent?: true;
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
