import { API_TEXT_MAX_CHARS, cleanApiText, redactSecrets, UrlSecrets } from '../../anchor-api/index.js';

// A session token as the simulator makes them (40 hex digits) and a session id (a UUID, kept: it is an id).
const TOKEN = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b';
const SESSION_ID = '3b241101-e2bb-4255-8caf-4136c566a962';

test.each([
  ['a session URL', `pod failed, see wss://connect.anchorbrowser.io?sessionId=${SESSION_ID}&token=${TOKEN}`],
  ['a live view URL', `view https://live.anchorbrowser.io/inspector.html?sessionId=${SESSION_ID}&token=${TOKEN}`],
  ['token=…', `connect failed (sessionId=${SESSION_ID}&token=${TOKEN})`],
  ['api_key=…', `rejected api_key=abc123secretvalue for team`],
  ['a JSON field', `bad answer {"access_token": "${TOKEN}"}`],
  ['a header', `anchor-api-key: ak_0f3e9c2d1b7a`],
  ['a bearer token', `Authorization failed for Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl`],
  ['a bare session token', `session ${SESSION_ID} token ${TOKEN} expired`],
  ['a bare base64url token', 'reuse of tok_Zx81mQp0aLk2JvT7sYwRb3Nc failed'],
  ['a prefixed key', 'key sk_live_51Habcdefghij rejected'],
])('removes %s', (_what, text) => {
  const cleaned = redactSecrets(text);
  expect(cleaned).not.toContain(TOKEN);
  expect(cleaned).not.toMatch(/abc123secretvalue|ak_0f3e9c2d1b7a|eyJhbGci|Zx81mQp0aLk2JvT7sYwRb3Nc|51Habcdefghij/);
  expect(cleaned).toMatch(/\[redacted\]|\[url removed\]/);
});

// A session id alone is kept as an id, so what hands the session over here is the URL around it.
test.each([
  [
    'JSON-escaped slashes',
    String.raw`said {"cdp_url":"wss:\/\/connect.anchorbrowser.io\/devtools\/browser\/${SESSION_ID}"}`,
  ],
  ['unicode-escaped slashes', String.raw`said wss:\u002f\u002fconnect.anchorbrowser.io\u002f${SESSION_ID}`],
  ['percent-encoding', `next=wss%3A%2F%2Fconnect.anchorbrowser.io%2Fdevtools%2Fbrowser%2F${SESSION_ID}`],
  ['a word run into it', `proxy_wss://connect.anchorbrowser.io/devtools/browser/${SESSION_ID}`],
  ['capitals', `see HTTPS://live.anchorbrowser.io/inspector.html?sessionId=${SESSION_ID}`],
  [
    'a DevTools front end',
    `debugger at devtools://devtools/bundled/inspector.html?ws=connect.anchorbrowser.io/devtools/browser/${SESSION_ID}`,
  ],
  [
    'a Chrome DevTools front end',
    `chrome-devtools://devtools/bundled/inspector.html?wss=connect.anchorbrowser.io/devtools/browser/${SESSION_ID}`,
  ],
  [
    'a ws= query value without a scheme',
    `open inspector.html?ws=connect.anchorbrowser.io/devtools/browser/${SESSION_ID}`,
  ],
  [
    'double percent-encoding',
    `next=wss%253A%252F%252Fconnect.anchorbrowser.io%252Fdevtools%252Fbrowser%252F${SESSION_ID}`,
  ],
])('removes a session URL written with %s', (_how, text) => {
  const cleaned = redactSecrets(text);
  expect(cleaned).not.toContain('anchorbrowser.io');
  expect(cleaned).not.toContain(SESSION_ID);
  expect(cleaned).toContain('[url removed]');
});

// Any session's URL, without its scheme: another session's quoted in an error, one under a field name the code does
// not know (`cdpUrl`), or one in an error message. Before wave 40 each of these stayed whole but for its scheme.
test.each([
  ['a host and path', `pod shared with connect.anchorbrowser.io/devtools/browser/${SESSION_ID} was evicted`],
  ['a host and query, its token short', `attach to connect.anchorbrowser.io?sessionId=${SESSION_ID}&t=Zx81mQp0aLk2`],
  ['a port', `upstream cdp.anchorbrowser.io:9222/devtools/browser/${SESSION_ID} unavailable`],
  ['an IPv4 address', `upstream 10.1.2.3:9222/devtools/browser/${SESSION_ID} unavailable`],
  ['localhost', `proxy to localhost:9222/devtools/browser/${SESSION_ID} refused`],
  ['a percent-encoded slash', `next=connect.anchorbrowser.io%2Fdevtools%2Fbrowser%2F${SESSION_ID}`],
  ['a slash encoded twice', `next=connect.anchorbrowser.io%252Fdevtools%252Fbrowser%252F${SESSION_ID}`],
  ['JSON-escaped slashes', String.raw`said {"at":"connect.anchorbrowser.io\/devtools\/browser\/${SESSION_ID}"}`],
])('removes a session URL without its scheme: %s', (_how, text) => {
  const cleaned = redactSecrets(text);
  expect(cleaned).not.toContain(SESSION_ID);
  expect(cleaned).not.toMatch(/devtools|Zx81mQp0aLk2/);
  expect(cleaned).toContain('[url removed]');
});

test('keeps a host alone, an email address, paths without a host and numbers with dots', () => {
  const text =
    'GET /v1/batch-sessions/{batch_id} answered 503: live.anchorbrowser.io is down, write to ops@anchorbrowser.io ' +
    'or retry in 1.5s/2.5s (v1.2/v1.3)';
  expect(redactSecrets(text)).toBe(text);
});

test('a URL without a scheme in a JSON answer quoted whole ends at its quote: the fields after it stay', () => {
  const text = `{"error":"quota exceeded for api.anchorbrowser.io/v1/batches","code":"E42","detail":"retry in 30 s"}`;
  expect(redactSecrets(text)).toBe(
    '{"error":"quota exceeded for [url removed]","code":"E42","detail":"retry in 30 s"}',
  );
});

test('a credential after an escaped ampersand goes too', () => {
  const cleaned = redactSecrets(String.raw`next hop said sessionId=${SESSION_ID}\u0026token=letterslettersletters`);
  expect(cleaned).not.toContain('letterslettersletters');
  expect(cleaned).toContain('token=[redacted]');
});

describe("a session's own URLs in its error", () => {
  const cdpUrl = `wss://connect.anchorbrowser.io/devtools/browser/${SESSION_ID}`;
  const liveViewUrl = `https://live.anchorbrowser.io/inspector.html?sessionId=${SESSION_ID}`;
  const clean = (text: string) => cleanApiText(text, [cdpUrl, liveViewUrl]);

  // Quoted as these, its own URLs go whole (before wave 40 no pattern knew a URL without a scheme).
  test.each([
    ['the CDP URL without its scheme', `connect.anchorbrowser.io/devtools/browser/${SESSION_ID}`],
    ['the live view URL without its scheme', `live.anchorbrowser.io/inspector.html?sessionId=${SESSION_ID}`],
    ['the live view URL as host and path', 'live.anchorbrowser.io/inspector.html'],
    ['percent-encoded once', encodeURIComponent(`connect.anchorbrowser.io/devtools/browser/${SESSION_ID}`)],
    ['percent-encoded twice', encodeURIComponent(encodeURIComponent(cdpUrl))],
    ['percent-encoded twice, lower case', encodeURIComponent(encodeURIComponent(cdpUrl)).toLowerCase()],
  ])('takes out %s and keeps the rest', (_how, quoted) => {
    expect(clean(`pod lost (${quoted}), retry later`)).toBe('pod lost ([url removed]), retry later');
  });

  test('a URL the scan would cut in half leaves no part of it', () => {
    const scanEnd = API_TEXT_MAX_CHARS * 2 + 200;
    // URLs shrink to a short marker, pulling into the kept text a quote of the CDP URL (no scheme) that starts 70
    // characters before the scan's end: a remnant too long to be dropped as a cut word.
    const urls = 'https://example.test/'.padEnd(120, 'p') + ' ';
    const quoted = `connect.anchorbrowser.io/devtools/browser/${SESSION_ID}`;
    const text = urls.repeat(9).padEnd(scanEnd - 70, ' ') + quoted + ' tail'.repeat(50);
    expect(clean(text)).not.toMatch(/connect|anchorbrowser/);
  });

  test('an empty or short URL takes nothing out', () => {
    expect(cleanApiText('pod x failed at step 2', ['', 'x', 'ws://x'])).toBe('pod x failed at step 2');
  });

  test('a placeholder instead of a URL, or a host alone, takes nothing out of the words', () => {
    const text = 'live view not available: live.anchorbrowser.io is down';
    expect(cleanApiText(text, ['live view not available', 'https://live.anchorbrowser.io'])).toBe(text);
  });
});

describe("another session's URLs, in any form", () => {
  // A live session's URLs, quoted in a failed session's error: a path that holds the browser's id, a query its token.
  const BROWSER_ID = '7d0f4f3c-6c0e-4a57-9b5e-0f1c2a3b4c5d';
  const cdpUrl = `wss://connect.anchorbrowser.io/devtools/browser/${BROWSER_ID}`;
  const liveViewUrl = `https://live.anchorbrowser.io/inspector.html?sessionId=${SESSION_ID}&token=${TOKEN}`;
  const urls = [cdpUrl, undefined, liveViewUrl, 'not a url'];
  const clean = (text: string) => cleanApiText(text, [], API_TEXT_MAX_CHARS, new UrlSecrets(urls, [text]));

  // Each passed every pattern before (the security review's cases), the session's own URLs not being these.
  test.each([
    ['percent-encoded, after an encoded space', `Could%20not%20attach%20to%20${encodeURIComponent(cdpUrl.slice(6))}`],
    ['run into a word', `proxy_connect.anchorbrowser.io/devtools/browser/${BROWSER_ID} reset`],
    ['with HTML-escaped slashes', cdpUrl.replaceAll('/', '&#x2F;')],
    ['its id in upper case', `browser ${BROWSER_ID.toUpperCase()} is gone`],
    ['as host and path in two fields', `{"host":"connect.anchorbrowser.io","path":"/devtools/browser/${BROWSER_ID}"}`],
    ['its token percent-encoded as a value', `seen token%3D${TOKEN}%26x%3D1`],
  ])('takes out a URL quoted %s', (_how, quoted) => {
    const cleaned = clean(`attach failed: ${quoted}`).toLowerCase();
    for (const secret of [BROWSER_ID, TOKEN, SESSION_ID]) expect(cleaned).not.toContain(secret);
    expect(cleaned).toMatch(/\[redacted\]|\[url removed\]/);
  });

  test('a character whose lower case is longer moves no secret out of place', () => {
    const cleaned = clean(`err ${'İ'.repeat(40)} id ${BROWSER_ID} end`);
    expect(cleaned).toBe(`err ${'İ'.repeat(40)} id [redacted] end`);
  });

  test('keeps a text that quotes none of them, and the short parts of a URL', () => {
    const text = 'pod devtools browser inspector failed for session 3b241101-e2bb-4255-8caf-000000000000';
    expect(clean(text)).toBe(text);
  });

  test("of a batch of 20,000 sessions' URLs, the one quoted goes whole, not the shorter one it begins with", () => {
    const quoted = encodeURIComponent(`connect.anchorbrowser.io/devtools/browser/${BROWSER_ID}-19999`);
    const text = `lost%20${quoted} x`;
    const many = new UrlSecrets(
      Array.from({ length: 20_000 }, (_, i) => `${cdpUrl}-${i}`),
      [text],
    );
    expect(cleanApiText(text, [], API_TEXT_MAX_CHARS, many)).toBe(
      `lost%20${encodeURIComponent('connect.anchorbrowser.io/devtools/browser/')}[redacted] x`,
    );
  });
});

test('keeps what is not a secret: ids, words, numbers', () => {
  const text = `Browser pod failed to start: provisioning timed out (attempt 2) for session ${SESSION_ID}, item 12345678901234567890123`;
  expect(redactSecrets(text)).toBe(text);
});

test('cleanApiText cuts to the documented length and notes how long the text was', () => {
  const text = `${'word '.repeat(1_000)}`;
  const cleaned = cleanApiText(text);
  expect(cleaned.length).toBeLessThanOrEqual(API_TEXT_MAX_CHARS);
  expect(cleaned).toMatch(/^word word .* … \[cut at 500 of 5000 chars\]$/);
  expect(cleanApiText('short')).toBe('short');
});

test('cleanApiText leaves no remnant of a secret cut at the scanned prefix', () => {
  // URLs shrink to a short marker, pulling the token the scan cut in half into the kept text.
  const urls = 'https://example.test/'.padEnd(120, 'p') + ' ';
  const scanEnd = 500 * 2 + 200;
  const head = urls.repeat(9).padEnd(scanEnd - 20, ' ');
  const text = head + TOKEN + ' tail'.repeat(100);
  expect(text.indexOf(TOKEN)).toBeLessThan(scanEnd);
  expect(text.indexOf(TOKEN) + TOKEN.length).toBeGreaterThan(scanEnd);
  const cleaned = cleanApiText(text);
  expect(cleaned).not.toMatch(/9f86d0/);
  expect(cleaned).toContain('[url removed]');
});

test('cleanApiText on a multi-megabyte text is fast and bounded', () => {
  const cleaned = cleanApiText('x'.repeat(5 * 1024 * 1024));
  expect(cleaned.length).toBeLessThanOrEqual(API_TEXT_MAX_CHARS);
  expect(cleaned).toMatch(/^x+ … \[cut at 500 of 5242880 chars\]$/);
});

test('an authorization scheme without a credential is text', () => {
  expect(redactSecrets('Basic authentication is disabled')).toBe('Basic authentication is disabled');
  expect(redactSecrets('Authorization: Basic dXNlcjpwYXNzd29yZDE=')).not.toContain('dXNlcjpwYXNzd29yZDE');
});
