/*
 * Text the API wrote (session errors, error messages, field names in schema errors) is stored in Temporal
 * history, search attributes, logs and error messages. It is cut to a fixed length, so no answer can make a
 * payload grow past Temporal's limits, and cleaned of anything that hands over a session or an account: a
 * session's URLs (`cdp_url`, `live_view_url`) control a live browser, and free text could quote one, or a
 * token written some other way.
 */

/** Longest API text, in characters, that reaches history, search attributes, logs or an error message. */
export const API_TEXT_MAX_CHARS = 500;

const REDACTED = '[redacted]';

/** Names whose value is a credential when written `name=value`, `name: value` or `"name": "value"`. */
const SECRET_NAMES =
  'access[_-]?token|refresh[_-]?token|session[_-]?token|id[_-]?token|token|api[_-]?key|apikey|secret|client[_-]?secret|password|passwd|signature|sig|credentials?|authorization';

const SECRET_PATTERNS: [RegExp, string][] = [
  // Any URL: session URLs carry their token in the query string, and a path may hold one too. Quoted JSON may
  // escape its slashes (`wss:\/\/`, `\u002f`), a query string percent-encode them (once or more: `%253A`), a word
  // run into it (`proxy_wss://`). A DevTools front end (`devtools://…?ws=…`) carries a session's CDP URL.
  [/(?:wss?|https?|chrome-devtools|devtools)(?::|%(?:25)*3a)(?:\\*\/|\\u002f|%(?:25)*2f){2}\S+/gi, '[url removed]'],
  // A URL without its scheme: a host (a name with a dot and a top-level domain, an IPv4 address, localhost), maybe a
  // port, then a path or a query, its separator escaped or encoded as above. A session's URL quoted so
  // (`connect.anchorbrowser.io/devtools/browser/<id>`, by another session's error or an error message) still hands the
  // browser over. A host alone names a service, and stays; so does an address in an email. It ends at a quote, as
  // such text is often a JSON answer quoted whole, and this matches far more ordinary text than a URL with a scheme.
  [
    /(?<![\w.@%-])(?:(?:[a-z0-9-]+\.)+[a-z]{2,}|\d{1,3}(?:\.\d{1,3}){3}|localhost)(?::\d{1,5})?(?:[/?]|\\+\/|\\+u002f|%(?:25)*(?:2f|3f))[^\s"']+/gi,
    '[url removed]',
  ],
  // A CDP URL handed to a DevTools front end as its `ws=`/`wss=` query value, without a scheme.
  [/(?<![A-Za-z0-9])(wss?)=[^\s&"',;]+/gi, '$1=[url removed]'],
  // An authorization scheme and its credentials (a credential has a digit; "Basic setup" stays).
  [/\b(Bearer|Basic)\s+(?=[A-Za-z0-9._~+/=-]*\d)[A-Za-z0-9._~+/=-]{8,}/gi, `$1 ${REDACTED}`],
  // After any character but a letter: `\u0026token=…` (an `&` escaped in quoted JSON) and `my_token=…` included.
  [new RegExp(`(?<![A-Za-z])(${SECRET_NAMES})(["']?\\s*[=:]\\s*["']?)[^\\s&"',;}]+`, 'gi'), `$1$2${REDACTED}`],
  // JSON Web Tokens.
  [/\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g, REDACTED],
  // Prefixed keys such as sk-live-…, sk_test_….
  [/\b(?:sk|pk|rk)[-_](?:live|test)?[-_]?[A-Za-z0-9_-]{8,}/g, REDACTED],
];

/** Bare tokens: long runs of letters and digits, e.g. the 40 hex digits of a session token. UUIDs (ids) stay. */
const BARE_TOKEN = /\b[A-Za-z0-9_-]{24,}\b/g;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function isBareToken(word: string): boolean {
  if (UUID.test(word)) return false;
  // A token mixes digits and letters; a long word of letters (or a long number) is just text.
  return /\d/.test(word) && /[A-Za-z]/.test(word);
}

/** Removes URLs, `token=…`-style credentials, bearer tokens and bare tokens from text. */
export function redactSecrets(text: string): string {
  let cleaned = text;
  for (const [pattern, replacement] of SECRET_PATTERNS) cleaned = cleaned.replace(pattern, replacement);
  return cleaned.replace(BARE_TOKEN, (word) => (isBareToken(word) ? REDACTED : word));
}

/**
 * Where a quoted URL was taken out, until the patterns ran: one character no pattern stops at, so a URL around it
 * (`devtools://…?ws=<it>`) is still removed whole, not up to a `[url removed]` of its own.
 */
const QUOTED_URL_MARK = '\u{E000}';
/** Where a secret of a session URL was taken out: it goes as `[redacted]`, and a URL around it is still removed whole. */
const URL_SECRET_MARK = '\u{E001}';

/** Shorter quotes of a URL are left to the patterns: taking out every `a.io/x` would garble the text around it. */
const MIN_QUOTED_URL_CHARS = 12;

/**
 * `url` past its scheme, whole and as host and path. Undefined for a text that is no URL: a placeholder the API may send
 * instead ("not available") would take those words out of every error.
 */
function urlParts(
  url: string,
): { withoutScheme: string; hostAndPath: string | undefined; namesSession: boolean } | undefined {
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.exec(url)?.[0];
  if (scheme === undefined) return undefined;
  const withoutScheme = url.slice(scheme.length);
  return {
    withoutScheme,
    hostAndPath: /^[^/?#]+\/[^?#]+/.exec(withoutScheme)?.[0],
    // Only with a path or a query: a host alone names a service, not a session.
    namesSession: /^[^/?#]+[/?#]./.test(withoutScheme),
  };
}

/**
 * The ways a text may quote `url`: as is, without its scheme, as host and path (a query may follow it), and each of
 * those percent-encoded once or twice, in either case of hex digits.
 */
export function quotedFormsOf(url: string): string[] {
  const parts = urlParts(url);
  if (parts === undefined) return [];
  const { withoutScheme, namesSession, hostAndPath } = parts;
  const forms = new Set<string>();
  for (const form of [url, namesSession ? withoutScheme : undefined, hostAndPath]) {
    if (form === undefined) continue;
    const once = percentEncoded(form);
    const twice = once === undefined ? undefined : percentEncoded(once);
    for (const quoted of [form, once, twice]) {
      if (quoted === undefined) continue;
      forms.add(quoted);
      forms.add(quoted.replace(/%(?:25)*[0-9A-F]{2}/g, (hex) => hex.toLowerCase()));
    }
  }
  return [...forms].filter((form) => form.length >= MIN_QUOTED_URL_CHARS);
}

/**
 * Those of `urls` that `text` quotes in a form quotedFormsOf derives: their host and path (or, with no path, all but
 * their scheme), in the part of the text cleanApiText scans, as is or percent-encoded once or twice. Cleaning a text of
 * a few URLs' forms costs little; of every URL of a batch of thousands, a second.
 */
export function urlsQuotedIn(text: string, urls: Iterable<string | undefined>): string[] {
  const scanned = asciiLowerCase(text.slice(0, API_TEXT_SCAN_CHARS));
  const decodedOnce = percentDecoded(scanned);
  const readings = [scanned, decodedOnce, percentDecoded(decodedOnce)];
  const quoted: string[] = [];
  for (const url of urls) {
    const parts = url === undefined ? undefined : urlParts(url);
    if (url === undefined || parts === undefined) continue;
    // The shortest of quotedFormsOf's forms, which every longer one holds.
    const head = parts.hostAndPath ?? (parts.namesSession ? parts.withoutScheme : '');
    if (head.length < MIN_QUOTED_URL_CHARS) continue;
    const needle = asciiLowerCase(head.slice(0, API_TEXT_SCAN_CHARS));
    if (readings.some((reading) => reading.includes(needle))) quoted.push(url);
  }
  return quoted;
}

/** Each `%XX` as its byte's character: a URL's characters are ASCII, and a malformed sequence stays as it is. */
function percentDecoded(text: string): string {
  return text.replace(/%([0-9a-f]{2})/gi, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
}

/** Undefined for a text with a lone surrogate, which encodeURIComponent refuses. */
function percentEncoded(text: string): string | undefined {
  try {
    return encodeURIComponent(text);
  } catch {
    return undefined;
  }
}

/**
 * Lower-cased in ASCII only, so every character keeps its place: positions found in it cut the text itself, and a
 * character whose lower case is longer (`İ`) would shift them, keeping part of a secret and cutting text after it.
 */
function asciiLowerCase(text: string): string {
  return text.replace(/[A-Z]+/g, (upper) => upper.toLowerCase());
}

/** Redaction only shortens text, so a prefix somewhat longer than the limit is all that can survive. */
function scanCharsFor(maxChars: number): number {
  return maxChars * 2 + 200;
}
const API_TEXT_SCAN_CHARS = scanCharsFor(API_TEXT_MAX_CHARS);

/** Shortest run of a session URL taken as its secret: a browser id (a UUID has 36) or a token, not `devtools`. */
const URL_SECRET_RUN = /[A-Za-z0-9_-]{16,}/g;
const URL_SECRET_MIN_CHARS = 16;
/** How much of one URL is read for its secrets: the API writes the URL, and a longer one is no session's. */
const URL_SECRET_SCAN_CHARS = 2_048;

/**
 * The secrets of session URLs, lower-cased: each run of 16 or more letters, digits, `-` and `_` after the host (a
 * browser id, a token). No escaping changes such a run (percent-encoding, JSON, HTML entities leave its characters as
 * they are), so a text that quotes a URL in any form, whole or in pieces, holds it as it is. Made once per status read
 * from every session's URLs: another session's error may quote a live session's URL, which quotedFormsOf derives only
 * in a few forms, and at a cost per session.
 */
export class UrlSecrets {
  /** By their first URL_SECRET_MIN_CHARS characters: a text costs one lookup a position, however many there are. */
  private readonly byHead = new Map<string, string[]>();

  /**
   * Only the secrets whose first 16 characters one of `texts` holds, in the part of it cleanApiText scans: a batch of
   * thousands of sessions costs one pass over its URLs, and none when no text has 16 such characters in a row.
   */
  constructor(urls: Iterable<string | undefined>, texts: Iterable<string>) {
    const heads = new Set<string>();
    for (const text of texts) {
      for (const [run] of asciiLowerCase(text.slice(0, API_TEXT_SCAN_CHARS)).matchAll(URL_SECRET_RUN))
        for (let at = 0; at + URL_SECRET_MIN_CHARS <= run.length; at += 1)
          heads.add(run.slice(at, at + URL_SECRET_MIN_CHARS));
    }
    if (heads.size === 0) return;
    for (const url of urls) {
      // One match a URL, past its host: this runs over every session of a batch.
      const host = url === undefined ? undefined : /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/.exec(url)?.[0];
      if (url === undefined || host === undefined) continue;
      for (const [run] of url.slice(host.length, URL_SECRET_SCAN_CHARS).matchAll(URL_SECRET_RUN)) {
        const head = asciiLowerCase(run.slice(0, URL_SECRET_MIN_CHARS));
        if (!heads.has(head)) continue;
        const secret = asciiLowerCase(run);
        const same = this.byHead.get(head);
        if (same === undefined) this.byHead.set(head, [secret]);
        // Longest first: one may begin another (`<id>-1` and `<id>-19`), and the whole of it goes.
        else if (!same.includes(secret))
          same.splice(same.findIndex((other) => other.length < secret.length) >>> 0, 0, secret);
      }
    }
  }

  /** `text` with every secret in it, in either case and whatever runs into it, replaced by `mark`. */
  removeFrom(text: string, mark: string): string {
    if (this.byHead.size === 0 || text.length < URL_SECRET_MIN_CHARS) return text;
    const lower = asciiLowerCase(text);
    let cleaned = '';
    let copiedTo = 0;
    for (let at = 0; at + URL_SECRET_MIN_CHARS <= text.length; at += 1) {
      const candidates = this.byHead.get(lower.slice(at, at + URL_SECRET_MIN_CHARS));
      const secret = candidates?.find((candidate) => lower.startsWith(candidate, at));
      if (secret === undefined) continue;
      if (at >= copiedTo) cleaned += text.slice(copiedTo, at) + mark;
      copiedTo = Math.max(copiedTo, at + secret.length);
    }
    return cleaned + text.slice(copiedTo);
  }
}

/**
 * API text as it may be stored: cleaned of `quotedUrls` (the session's own URLs, in every form quotedFormsOf
 * derives) and of `urlSecrets` (the batch's session URLs', in any form), redacted, then cut to `maxChars`
 * (API_TEXT_MAX_CHARS by default) with a note of how much was cut. Only a bounded prefix is ever scanned, so a
 * multi-megabyte text costs little.
 */
export function cleanApiText(
  text: string,
  quotedUrls: readonly (string | undefined)[] = [],
  maxChars = API_TEXT_MAX_CHARS,
  urlSecrets?: UrlSecrets,
): string {
  const scanChars = scanCharsFor(maxChars);
  // A longer URL is matched by its head, which is all of it a scan can hold; the longest forms go first, as a
  // shorter one may be part of a longer.
  const forms = quotedUrls
    .flatMap((url) => (url === undefined ? [] : quotedFormsOf(url.slice(0, scanChars))))
    .sort((a, b) => b.length - a.length);
  let scanEnd = scanChars;
  for (const form of forms) {
    // A quote the scan's end would cut in half ends the scan where it starts: its head alone is no longer it.
    const from = Math.max(0, scanEnd - form.length + 1);
    const at = text.slice(from, scanEnd + form.length - 1).indexOf(form);
    if (at !== -1) scanEnd = from + at;
  }
  let prefix = text.slice(0, scanEnd);
  // A word cut short at the scan's end could be the remnant of a secret no pattern recognises any more: drop
  // it. A longer remnant still matches the patterns (a bare token is 24 characters or more).
  if (text.length > scanChars) prefix = prefix.replace(/(?<!\S)\S{1,63}$/, '');
  for (const form of forms) prefix = prefix.split(form).join(QUOTED_URL_MARK);
  if (urlSecrets !== undefined) prefix = urlSecrets.removeFrom(prefix, URL_SECRET_MARK);
  const cleaned = redactSecrets(prefix)
    .replaceAll(QUOTED_URL_MARK, '[url removed]')
    .replaceAll(URL_SECRET_MARK, REDACTED);
  if (cleaned.length <= maxChars && text.length <= scanChars) return cleaned;
  const note = ` … [cut at ${maxChars} of ${text.length} chars]`;
  return cleaned.slice(0, Math.max(0, maxChars - note.length)) + note;
}
