import { activityInfo, cancellationSignal, heartbeat, log } from '@temporalio/activity';
import {
  AnchorApiError,
  MalformedResponseError,
  NoFailedSessionsError,
  RateLimitedError,
  cleanApiText,
  type AnchorApiClient,
  type RecoverableBatch,
} from '../anchor-api/index.js';
import { isInFlightBatchStatus } from '../anchor-api/batch-status.js';
import type { BatchSnapshot } from '../workflows/report.js';
import {
  SCHEDULED_BEFORE_RESET,
  type ReconcileRetryInput,
  type ReconcileRetryResult,
  type RetryEffect,
  type RetrySendAnnouncement,
  type RetrySnapshot,
  type SendRetryInput,
  type SendRetryResult,
} from '../workflows/retry-protocol.js';
import { toBatchSnapshot, toRetrySnapshot } from './batch-snapshot.js';
import { isPermanent, toActivityFailure } from './failures.js';
import { countApiError, countRetryCall } from './metrics.js';

/*
 * The retry round's three steps, sequenced by the workflow so that every decision is in its history
 * (docs/retry-protocol.md): a snapshot right before the call, the call itself, and, only when its
 * outcome is unknown, a comparison of the batch against that snapshot.
 */

/** Time kept between the end of the HTTP request and the end of the activity's heartbeat window. */
const SEND_MARGIN_MS = 2_000;
/** Longest wait for the server to record a call's announcement; past it the call is not sent. */
const ANNOUNCE_TIMEOUT_MS = 3_000;
/** A request left less of the heartbeat window than this is not sent. */
const MIN_REQUEST_MS = 1_000;
/**
 * Longest wait for the call's turn under the worker's share of the budget; past it the call is not sent. Short, and
 * taken out of the heartbeat window with the request's time, so the request still ends within the window.
 */
const SEND_TURN_TIMEOUT_MS = 3_000;
const HEARTBEAT_INTERVAL_MS = 2_000;

/**
 * What the batch says about a retry call sent after `before` was taken. Sessions in flight again, the batch back in
 * flight (the contract's one promise of an accepted call), fewer failed, or retry counts up mean it was applied. Only
 * unchanged retry counts of every session of the batch prove it was not: without them (counters only, a list that
 * leaves sessions out, or a session lacking retry_count) a retry whose sessions failed again at once leaves no trace.
 */
export function retryEffect(
  before: Pick<BatchSnapshot, 'failed' | 'retryCountTotal'> & Partial<Pick<BatchSnapshot, 'status'>>,
  now: Pick<RetrySnapshot, 'status' | 'failed' | 'pending' | 'processing' | 'retryCountTotal'>,
): RetryEffect {
  if (now.pending + now.processing > 0)
    return { effect: 'took_effect', reason: 'sessions are in flight again since the call' };
  // Counters may lag the status: the batch itself says it is in flight again.
  if (before.status !== undefined && !isInFlightBatchStatus(before.status) && isInFlightBatchStatus(now.status))
    return { effect: 'took_effect', reason: `the batch went from ${before.status} back to ${now.status}` };
  if (now.failed < before.failed)
    return { effect: 'took_effect', reason: `failed sessions went from ${before.failed} to ${now.failed}` };
  if (before.retryCountTotal === null || now.retryCountTotal === null)
    return {
      effect: 'unknown',
      reason: 'the API sent no retry count for every session, so the batch cannot show whether the call was applied',
    };
  if (now.retryCountTotal > before.retryCountTotal)
    return {
      effect: 'took_effect',
      reason: `retry counts went from ${before.retryCountTotal} to ${now.retryCountTotal}`,
    };
  return { effect: 'no_effect', reason: 'retry counts and failed sessions are unchanged since the call' };
}

/**
 * Heartbeats while `work` runs, so a worker that dies mid-call is noticed after the heartbeat timeout. Each heartbeat
 * carries `details`: the server keeps only the last one's.
 */
async function withHeartbeats<T>(work: Promise<T>, details?: RetrySendAnnouncement): Promise<T> {
  heartbeat(details);
  const timer = setInterval(() => heartbeat(details), HEARTBEAT_INTERVAL_MS);
  try {
    return await work;
  } finally {
    clearInterval(timer);
  }
}

/**
 * The text of an error that is no Anchor API error, for the result (history) and the worker's log: cut and cleaned as
 * the API's text is, since nothing did so before and it may run to any length or quote a URL or a token.
 */
function errorText(err: unknown): string {
  return cleanApiText(String(err));
}

function describeFailure(err: unknown): { errorType: string; reason: string } {
  if (err instanceof AnchorApiError) return { errorType: err.kind, reason: err.message };
  return { errorType: err instanceof Error ? err.name : 'unknown', reason: errorText(err) };
}

/**
 * The server's heartbeat as a call that answers once it is recorded, unlike the activity's own, which is sent later:
 * the worker's client (AsyncCompletionClient) is one.
 */
export interface RecordedHeartbeat {
  heartbeat(taskToken: Uint8Array, details: unknown): Promise<void>;
  withDeadline<R>(deadline: number, fn: () => Promise<R>): Promise<R>;
}

export function createRetryActivities(api: AnchorApiClient, recordedHeartbeat: RecordedHeartbeat) {
  /** Reads are safe to repeat: the server's retry policy retries their transient failures. */
  const read = async (batchId: string): Promise<RecoverableBatch> => {
    try {
      return await api.getRecoverableBatch(batchId, { signal: cancellationSignal() });
    } catch (err) {
      countApiError(err);
      throw toActivityFailure(err);
    }
  };

  /**
   * One retry call, never repeated here: the workflow schedules it with a single attempt and decides what follows from
   * the outcome this returns. The wait for its turn and the request must end before the heartbeat window does, so the
   * server never declares the attempt lost while its request is still in flight. That window is counted from
   * `windowStartedAt`, taken before the server last recorded a heartbeat of the attempt (its first, or the
   * announcement), so however long that took, the request ends within the server's window.
   */
  const send = async (
    input: SendRetryInput,
    windowStartedAt: number,
    announcement?: RetrySendAnnouncement,
  ): Promise<SendRetryResult> => {
    const { batchId, maxRetries, retryFailedOnly } = input;
    const { heartbeatTimeoutMs } = activityInfo();
    const turnStartedAt = performance.now();
    const timeoutMs = heartbeatTimeoutMs
      ? windowStartedAt + heartbeatTimeoutMs - SEND_MARGIN_MS - SEND_TURN_TIMEOUT_MS - turnStartedAt
      : undefined;
    if (timeoutMs !== undefined && timeoutMs < MIN_REQUEST_MS) {
      log.warn('Retry call not sent: too little of its heartbeat window left', { batchId, timeoutMs });
      return {
        kind: 'not_sent',
        errorType: 'no_time_to_send',
        reason: `the announcement left ${Math.round(timeoutMs)} ms for the request, less than ${MIN_REQUEST_MS} ms`,
        retryAfterMs: null,
      };
    }
    // Dated when the request leaves, after its turn: the reconcile read waits out the request from then.
    let sentAt: string | undefined;
    let sentAtMonotonic = 0;
    const onSend = () => {
      sentAt = new Date().toISOString();
      sentAtMonotonic = performance.now();
    };
    try {
      const answer = await withHeartbeats(
        api.retryFailedSessions(
          batchId,
          { retry_failed_only: retryFailedOnly, max_retries: maxRetries },
          {
            signal: cancellationSignal(),
            turnTimeoutMs: SEND_TURN_TIMEOUT_MS,
            // A request that leaves later than its turn allowed, after a stall, would end past the window.
            sendBy: turnStartedAt + SEND_TURN_TIMEOUT_MS,
            onSend,
            ...(timeoutMs === undefined ? {} : { timeoutMs }),
          },
        ),
        announcement,
      );
      countRetryCall(answer.retried_sessions ?? null, false);
      return {
        kind: 'applied',
        retriedSessions: answer.retried_sessions ?? null,
        apiMessage: answer.message === undefined ? null : cleanApiText(answer.message),
      };
    } catch (err) {
      // The batch settled with nothing to retry: a round that retried 0.
      if (err instanceof NoFailedSessionsError) {
        return { kind: 'nothing_to_retry', apiMessage: err.apiMessage ?? '' };
      }
      countApiError(err);
      // A 2xx whose body is unreadable: the API took the call.
      if (err instanceof MalformedResponseError && err.outcomeUnknown) {
        countRetryCall(null, false);
        return { kind: 'applied', retriedSessions: null, apiMessage: `answer unreadable (${err.problem})` };
      }
      // Refused for good, so nothing was applied. A permanent answer that may come after the API acted on the call (a
      // redirect) is an outcome unknown like any other: the workflow reconciles it, and stops rather than resend.
      const permanent = err instanceof AnchorApiError && isPermanent(err);
      if (permanent && !err.outcomeUnknown) throw toActivityFailure(err);
      const { errorType, reason } = describeFailure(err);
      if (err instanceof AnchorApiError && !err.outcomeUnknown) {
        log.info('Retry call not sent', { batchId, errorType });
        return {
          kind: 'not_sent',
          errorType,
          reason,
          retryAfterMs: err instanceof RateLimitedError ? (err.retryAfterMs ?? null) : null,
        };
      }
      log.warn('Retry call outcome unknown; the workflow reconciles before any new call', { batchId, errorType });
      // An answer (a 5xx) ended the request; otherwise it may have lasted until its timeout.
      const answered = err instanceof AnchorApiError && err.statusCode !== undefined;
      if (permanent) return { kind: 'unknown', errorType, reason, permanent };
      if (answered || sentAt === undefined) return { kind: 'unknown', errorType, reason };
      const requestTimeoutMs = Math.min(timeoutMs ?? Infinity, api.timeoutMs);
      return {
        kind: 'unknown',
        errorType,
        reason,
        // sentAt for workflows of the release before, which compare it with their own (the server's) clock.
        sentAt,
        requestTimeoutMs,
        requestMayLastMs: Math.max(0, Math.ceil(requestTimeoutMs - (performance.now() - sentAtMonotonic))),
      };
    }
  };

  /**
   * The attempt the server hands the run a reset began, of a call the run before scheduled and may have sent: sent
   * again, it could be applied twice. Its outcome is unknown, and the workflow reconciles once that run's attempt,
   * which the reset does not stop, is past its heartbeat window.
   */
  const scheduledBeforeReset = (input: SendRetryInput): SendRetryResult | undefined => {
    const { workflowExecution, heartbeatTimeoutMs } = activityInfo();
    if (input.scheduledByRunId === undefined || input.scheduledByRunId === workflowExecution?.runId) return undefined;
    log.warn('Retry call not sent: the recovery was reset while it was out', { batchId: input.batchId });
    return {
      kind: 'unknown',
      errorType: 'reset',
      reason: SCHEDULED_BEFORE_RESET,
      requestMayLastMs: heartbeatTimeoutMs ?? 0,
    };
  };

  return {
    /** The batch right before a retry call: the call is sent only from a settled batch with failures. */
    async readRetrySnapshot(batchId: string): Promise<RetrySnapshot> {
      return toRetrySnapshot(await read(batchId), new Date());
    },

    /**
     * The same read, failing sessions included, for a round whose settle came from the poller's list: it is
     * the first read to show them. An operator's cancel after such a settle reads them with it for the report.
     */
    async readBatchBeforeRetry(batchId: string): Promise<BatchSnapshot> {
      return toBatchSnapshot(await read(batchId), new Date());
    },

    /**
     * The retry call of recoveries from the announced send on (docs/retry-protocol.md): the request leaves only
     * once the server has recorded the announcement in the attempt's heartbeat details. An announcement the server
     * refuses (the attempt already timed out, the server unreachable) sends nothing.
     */
    async announceAndSendRetry(input: SendRetryInput): Promise<SendRetryResult> {
      const resetWhileOut = scheduledBeforeReset(input);
      if (resetWhileOut) return resetWhileOut;
      const windowStartedAt = performance.now();
      const announcement: RetrySendAnnouncement = { retryCallMayBeSent: true, announcedAt: new Date().toISOString() };
      try {
        await recordedHeartbeat.withDeadline(Date.now() + ANNOUNCE_TIMEOUT_MS, () =>
          recordedHeartbeat.heartbeat(activityInfo().taskToken, announcement),
        );
      } catch (err) {
        // Refused (the attempt timed out, or was cancelled, paused or reset) or not confirmed in time.
        const error = errorText(err);
        log.warn('Retry call not sent: its announcement was refused or not confirmed', {
          batchId: input.batchId,
          error,
        });
        return {
          kind: 'not_sent',
          errorType: 'announcement_refused',
          reason: `the call's announcement was refused or not confirmed (${error})`,
          retryAfterMs: null,
        };
      }
      return send(input, windowStartedAt, announcement);
    },

    /**
     * The retry call of recoveries started before the announced send, kept for the calls their histories schedule:
     * a timeout of it is always an unknown outcome.
     */
    sendRetry: async (input: SendRetryInput): Promise<SendRetryResult> =>
      scheduledBeforeReset(input) ?? send(input, performance.now()),

    /** After an unknown outcome: reads the batch and compares it with the snapshot taken before the call. */
    async reconcileRetry(input: ReconcileRetryInput): Promise<ReconcileRetryResult> {
      const now = toRetrySnapshot(await read(input.batchId), new Date());
      const verdict = retryEffect(input.before, now);
      // As the workflow records the round: a call that took effect retried the sessions that had failed before it.
      if (verdict.effect !== 'no_effect')
        countRetryCall(verdict.effect === 'took_effect' ? input.before.failed : null, true);
      return { ...verdict, snapshot: now };
    },
  };
}

export type RetryActivities = ReturnType<typeof createRetryActivities>;
