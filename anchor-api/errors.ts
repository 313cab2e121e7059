import type { AnchorEndpoint } from './endpoints.js';
import { cleanApiText } from './redact.js';

/** Stable discriminants: safe to use as Temporal failure types and in alerts. */
export type AnchorApiErrorKind =
  | 'no_failed_sessions'
  | 'bad_request'
  | 'unauthorized'
  | 'insufficient_credits'
  | 'batch_not_found'
  | 'conflict'
  | 'rate_limited'
  | 'server_error'
  | 'unexpected_status'
  | 'timeout'
  | 'network'
  | 'malformed_response';

export interface AnchorApiErrorContext {
  endpoint: AnchorEndpoint;
  batchId?: string | undefined;
  statusCode?: number | undefined;
  /** Text the API wrote; stored cut and redacted (cleanApiText). */
  apiMessage?: string | undefined;
  /** Must never hold got's error or request options: they carry the API key header. */
  cause?: Error | undefined;
}

export abstract class AnchorApiError extends Error {
  abstract readonly kind: AnchorApiErrorKind;
  readonly endpoint: AnchorEndpoint;
  readonly batchId: string | undefined;
  readonly statusCode: number | undefined;
  /** The API's message, cut to API_TEXT_MAX_CHARS and redacted. */
  readonly apiMessage: string | undefined;
  /**
   * True when the request may have reached the server but no usable answer came back.
   * The retry endpoint is not idempotent, so the caller must reconcile (read the batch) instead of re-sending.
   */
  readonly outcomeUnknown: boolean;

  protected constructor(what: string, context: AnchorApiErrorContext, outcomeUnknown: boolean) {
    super(describe(what, context), context.cause === undefined ? undefined : { cause: context.cause });
    this.name = new.target.name;
    this.endpoint = context.endpoint;
    this.batchId = context.batchId;
    this.statusCode = context.statusCode;
    this.apiMessage = context.apiMessage === undefined ? undefined : cleanApiText(context.apiMessage);
    this.outcomeUnknown = outcomeUnknown;
  }
}

function describe(what: string, context: AnchorApiErrorContext): string {
  const status = context.statusCode === undefined ? '' : ` (HTTP ${context.statusCode})`;
  const batch = context.batchId === undefined ? '' : ` for batch ${context.batchId}`;
  // Error messages end up in Temporal history and logs: bounded, and no secret the API may have quoted.
  const apiMessage = context.apiMessage === undefined ? '' : `: ${cleanApiText(context.apiMessage)}`;
  return `${what}${status}${batch} on ${context.endpoint}${apiMessage}`;
}

/** 400 from the retry endpoint: the batch has nothing to retry (nothing failed, or it was cancelled). */
export class NoFailedSessionsError extends AnchorApiError {
  readonly kind = 'no_failed_sessions';
  constructor(context: AnchorApiErrorContext) {
    super('No failed sessions to retry', context, false);
  }
}

export class BadRequestError extends AnchorApiError {
  readonly kind = 'bad_request';
  constructor(context: AnchorApiErrorContext) {
    super('Anchor API rejected the request', context, false);
  }
}

/** 401 or 403: the API key is missing, wrong or lacks access. */
export class UnauthorizedError extends AnchorApiError {
  readonly kind = 'unauthorized';
  constructor(context: AnchorApiErrorContext) {
    super('Anchor API refused the API key', context, false);
  }
}

/** 402 from create: the team has run out of credits. */
export class InsufficientCreditsError extends AnchorApiError {
  readonly kind = 'insufficient_credits';
  constructor(context: AnchorApiErrorContext) {
    super('Anchor API reports insufficient credits', context, false);
  }
}

export class BatchNotFoundError extends AnchorApiError {
  readonly kind = 'batch_not_found';
  constructor(context: AnchorApiErrorContext) {
    super('Batch not found', context, false);
  }
}

/** 409 from cancel: the batch is already cancelled or completed. */
export class ConflictError extends AnchorApiError {
  readonly kind = 'conflict';
  constructor(context: AnchorApiErrorContext) {
    super('Batch is not in a state that allows this change', context, false);
  }
}

export class RateLimitedError extends AnchorApiError {
  readonly kind = 'rate_limited';
  /** From Retry-After (delta-seconds or HTTP-date); undefined when the header is absent or unreadable. */
  readonly retryAfterMs: number | undefined;
  constructor(context: AnchorApiErrorContext & { retryAfterMs: number | undefined }) {
    const hint = context.retryAfterMs === undefined ? '' : ` (retry after ${context.retryAfterMs} ms)`;
    super(`Anchor API rate limit hit${hint}`, context, false);
    this.retryAfterMs = context.retryAfterMs;
  }
}

export class ServerError extends AnchorApiError {
  readonly kind = 'server_error';
  constructor(context: AnchorApiErrorContext & { outcomeUnknown: boolean }) {
    super('Anchor API server error', context, context.outcomeUnknown);
  }
}

/**
 * A status the contract does not define for this endpoint (e.g. a 3xx or 418). A redirect or a 101 to a mutating call
 * comes from a server that read the request and may have acted on it (a 303 See Other says it did): its outcome is
 * unknown. A 4xx refuses the request.
 */
export class UnexpectedStatusError extends AnchorApiError {
  readonly kind = 'unexpected_status';
  constructor(context: AnchorApiErrorContext & { outcomeUnknown: boolean }) {
    super('Anchor API answered with an unexpected status', context, context.outcomeUnknown);
  }
}

export class AnchorTimeoutError extends AnchorApiError {
  readonly kind = 'timeout';
  readonly timeoutMs: number;
  /** The call waited `timeoutMs` for its turn under the call budget and was never sent. */
  readonly waitedForTurn: boolean;
  constructor(
    context: AnchorApiErrorContext & { timeoutMs: number; outcomeUnknown: boolean; waitedForTurn?: boolean },
  ) {
    super(
      context.waitedForTurn === true
        ? `Anchor API call not sent: its turn under the call budget did not come within ${context.timeoutMs} ms`
        : `Anchor API did not answer within ${context.timeoutMs} ms`,
      context,
      context.outcomeUnknown,
    );
    this.timeoutMs = context.timeoutMs;
    this.waitedForTurn = context.waitedForTurn === true;
  }
}

export class AnchorNetworkError extends AnchorApiError {
  readonly kind = 'network';
  constructor(context: AnchorApiErrorContext & { outcomeUnknown: boolean }) {
    super('Network failure talking to Anchor API', context, context.outcomeUnknown);
  }
}

/**
 * A 2xx whose body is not JSON, is not declared as JSON, breaks the schema, is too large, names another batch than the
 * one asked for or (after a mutating call) breaks off, or a batch lacking what recovery needs. For a mutating call a
 * 2xx means the server acted, yet we cannot tell what it did: outcome unknown.
 */
export class MalformedResponseError extends AnchorApiError {
  readonly kind = 'malformed_response';
  /** What is wrong; it may quote field names the API sent, so it is cut and redacted (cleanApiText). */
  readonly problem: string;
  constructor(context: AnchorApiErrorContext & { problem: string; outcomeUnknown: boolean }) {
    const problem = cleanApiText(context.problem);
    super(`Malformed Anchor API response (${problem})`, context, context.outcomeUnknown);
    this.problem = problem;
  }
}

/**
 * A body longer than the client's `maxResponseBytes`: the download was stopped there. After a 2xx
 * the server acted on a mutating call, so its outcome is unknown, as for any other unreadable answer.
 */
export class ResponseTooLargeError extends MalformedResponseError {
  readonly maxResponseBytes: number;
  constructor(context: AnchorApiErrorContext & { maxResponseBytes: number; outcomeUnknown: boolean }) {
    super({ ...context, problem: `body longer than ${context.maxResponseBytes} bytes, download stopped` });
    this.maxResponseBytes = context.maxResponseBytes;
  }
}
