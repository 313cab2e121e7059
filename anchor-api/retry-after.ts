/**
 * The longest Retry-After taken as said. A server's absurd one (years, or 400 digits, which is Infinity) would
 * make a delay Temporal cannot encode, which fails the worker, or a date that cannot be printed.
 */
export const RETRY_AFTER_MAX_MS = 24 * 3_600_000;

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const MONTH = `(?<month>${MONTHS.join('|')})`;
const TIME = '(?<hour>\\d{2}):(?<minute>\\d{2}):(?<second>\\d{2})';
const DAY_NAME = '(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)';
/** The three forms of an HTTP-date (RFC 9110 §5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`. */
const IMF_FIXDATE = new RegExp(`^${DAY_NAME}, (?<day>\\d{2}) ${MONTH} (?<year>\\d{4}) ${TIME} GMT$`);
/** Obsolete: `Sunday, 06-Nov-94 08:49:37 GMT`. */
const RFC850_DATE = new RegExp(
  `^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), (?<day>\\d{2})-${MONTH}-(?<year>\\d{2}) ${TIME} GMT$`,
);
/** Obsolete: `Sun Nov  6 08:49:37 1994`. */
const ASCTIME_DATE = new RegExp(`^${DAY_NAME} ${MONTH} (?<day>[ \\d]\\d) ${TIME} (?<year>\\d{4})$`);

/**
 * Retry-After as milliseconds from `now`, at most RETRY_AFTER_MAX_MS: delay-seconds or an HTTP-date
 * (RFC 9110 §10.2.3), undefined for anything else. Date.parse is not used: its loose parser reads "1.5" or "-1" as
 * dates long past, a wait of 0, where an unreadable header leaves the caller's own backoff.
 */
export function parseRetryAfterMs(header: string | undefined, now: number = Date.now()): number | undefined {
  if (header === undefined) return undefined;
  const value = header.trim();
  if (/^\d+$/.test(value)) return Math.min(Number(value) * 1000, RETRY_AFTER_MAX_MS);
  const date = parseHttpDate(value, now);
  if (date === undefined) return undefined;
  return Math.min(Math.max(0, date - now), RETRY_AFTER_MAX_MS);
}

/** An HTTP-date as epoch milliseconds, in any of its three forms; undefined for anything else. */
function parseHttpDate(value: string, now: number): number | undefined {
  const rfc850 = RFC850_DATE.exec(value)?.groups;
  const fields = IMF_FIXDATE.exec(value)?.groups ?? rfc850 ?? ASCTIME_DATE.exec(value)?.groups;
  if (fields === undefined) return undefined;
  let year = Number(fields.year);
  if (rfc850 !== undefined) {
    // A two-digit year more than 50 years ahead of now is the last year in the past with those digits (§5.6.7).
    const thisYear = new Date(now).getUTCFullYear();
    year += thisYear - (thisYear % 100);
    if (year > thisYear + 50) year -= 100;
  }
  const month = MONTHS.indexOf(fields.month ?? '');
  const day = Number(fields.day);
  const [hour, minute, second] = [Number(fields.hour), Number(fields.minute), Number(fields.second)];
  // Date.UTC would carry a 31 February into March, or a 25th hour into the next day. A second of 60 is a leap second.
  if (new Date(Date.UTC(year, month, day)).getUTCDate() !== day || hour > 23 || minute > 59 || second > 60) {
    return undefined;
  }
  return Date.UTC(year, month, day, hour, minute, second);
}
