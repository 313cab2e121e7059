import { ApplicationFailure } from '@temporalio/common';
import { AnchorApiError, RateLimitedError } from '../anchor-api/index.js';

/** Failures no amount of retrying fixes: a wrong key must not retry for hours. */
const PERMANENT_KINDS = new Set<AnchorApiError['kind']>([
  'unauthorized',
  'batch_not_found',
  'malformed_response',
  'bad_request',
  'insufficient_credits',
  // Statuses the contract does not define (a redirect to a wrong base URL, say) will not fix themselves.
  'unexpected_status',
]);

/** An error no retry fixes: the recovery stops with a report instead. */
export function isPermanent(err: AnchorApiError): boolean {
  return PERMANENT_KINDS.has(err.kind);
}

/**
 * Turns an Anchor API error into the Temporal failure that makes the server do
 * the right thing: give up at once, wait what Retry-After says, or back off.
 * The failure type is the error's kind, so retry policies and alerts can key on it.
 */
export function toActivityFailure(err: unknown): unknown {
  if (!(err instanceof AnchorApiError)) return err;
  return ApplicationFailure.create({
    type: err.kind,
    message: err.message,
    nonRetryable: isPermanent(err),
    nextRetryDelay: err instanceof RateLimitedError ? encodableDelayMs(err.retryAfterMs) : undefined,
  });
}

/** A delay the SDK cannot encode (Infinity, NaN, negative) throws while the failure is sent, and fails the worker. */
function encodableDelayMs(delayMs: number | undefined): number | undefined {
  return delayMs !== undefined && Number.isFinite(delayMs) && delayMs >= 0 ? delayMs : undefined;
}
