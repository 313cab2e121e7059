/**
 * The longest Retry-After taken as said. A server's absurd one (years, or 400 digits, which is Infinity) would
 * make a delay Temporal cannot encode, which fails the worker, or a date that cannot be printed.
 */
export const RETRY_AFTER_MAX_MS = 24 * 3_600_000;

/**
 * Retry-After as milliseconds from `now`, at most RETRY_AFTER_MAX_MS: delta-seconds or an HTTP-date
 * (RFC 9110 §10.2.3).
 */
export function parseRetryAfterMs(header: string | undefined, now: number = Date.now()): number | undefined {
  if (header === undefined) return undefined;
  const value = header.trim();
  if (/^\d+$/.test(value)) return Math.min(Number(value) * 1000, RETRY_AFTER_MAX_MS);
  const date = Date.parse(value);
  if (Number.isNaN(date)) return undefined;
  return Math.min(Math.max(0, date - now), RETRY_AFTER_MAX_MS);
}
