import { ApplicationFailure } from '@temporalio/common';
import { toActivityFailure } from '../../activities/failures.js';
import { ANCHOR_ENDPOINTS, RateLimitedError } from '../../anchor-api/index.js';

const rateLimited = (retryAfterMs: number | undefined) =>
  toActivityFailure(new RateLimitedError({ endpoint: ANCHOR_ENDPOINTS.getBatch, statusCode: 429, retryAfterMs }));

test("a 429's Retry-After becomes the next retry delay", () => {
  expect(rateLimited(7_000)).toMatchObject({ type: 'rate_limited', nextRetryDelay: 7_000 });
});

// The SDK throws while it encodes such a delay, and the worker stops.
test.each([Infinity, NaN, -1])('a delay of %s is left to the retry policy, not handed to the SDK', (retryAfterMs) => {
  const failure = rateLimited(retryAfterMs);
  expect(failure).toBeInstanceOf(ApplicationFailure);
  expect((failure as ApplicationFailure).nextRetryDelay).toBeUndefined();
});
