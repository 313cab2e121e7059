import {
  AnchorApiClient,
  AnchorApiError,
  AnchorTimeoutError,
  API_TEXT_MAX_CHARS,
  BatchNotFoundError,
  MalformedResponseError,
  ResponseTooLargeError,
  UnauthorizedError,
} from '../../anchor-api/index.js';
import {
  answerHuge,
  answerHugeError,
  answerNeverEnding,
  answerTrickle,
  answerWith,
  startHostileServer,
  type HostileServer,
} from '../helpers/hostile-server.js';

// The client against a server of the test's own that answers the way a broken or hostile API might.

const API_KEY = 'sk-live-hostile-client-7c1d';
const TIMEOUT_MS = 1_000;
const MAX_RESPONSE_BYTES = 1024 * 1024;
const MB = 1024 * 1024;
/** Every message the client builds from API text: the text's cap plus our own words around it. */
const MAX_MESSAGE_CHARS = API_TEXT_MAX_CHARS + 200;

let server: HostileServer;
let client: AnchorApiClient;

beforeAll(async () => {
  server = await startHostileServer();
  client = new AnchorApiClient({
    baseUrl: server.url,
    apiKey: API_KEY,
    timeoutMs: TIMEOUT_MS,
    maxResponseBytes: MAX_RESPONSE_BYTES,
  });
});
afterAll(() => server.close());
beforeEach(() => server.calls.splice(0));

async function caught(promise: Promise<unknown>): Promise<AnchorApiError> {
  const error = await promise.then(
    () => new Error('expected the call to fail'),
    (err: unknown) => err,
  );
  if (error instanceof AnchorApiError) return error;
  throw error;
}

const retry = (batchId: string) => client.retryFailedSessions(batchId, { max_retries: 1 });

test('an HTML page with status 200 is a malformed response naming the content type', async () => {
  server.on('html', answerWith(200, 'text/html; charset=utf-8', '<html><body>502 Bad Gateway</body></html>'));
  const error = await caught(client.getBatch('html'));
  expect(error).toBeInstanceOf(MalformedResponseError);
  expect(error).toMatchObject({ statusCode: 200, outcomeUnknown: false });
  expect(error.message).toContain('content type text/html; charset=utf-8, expected JSON');
});

test('JSON under a wrong content type is refused; problem+json is accepted', async () => {
  server.on('plain', answerWith(200, 'text/plain', '{"data":{"batch_id":"plain","status":"failed"}}'));
  server.on('problem', answerWith(200, 'application/problem+json', '{"data":{"batch_id":"problem"}}'));
  expect((await caught(client.getBatch('plain'))).message).toContain('content type text/plain, expected JSON');
  expect(await client.getBatch('problem')).toEqual({ batch_id: 'problem' });
});

test('truncated JSON is a malformed response; after a retry POST its outcome is unknown', async () => {
  server.on('truncated', answerWith(200, 'application/json', '{"data":{"batch_id":"truncated","sta'));
  const read = await caught(client.getBatch('truncated'));
  expect(read).toBeInstanceOf(MalformedResponseError);
  expect(read).toMatchObject({ outcomeUnknown: false, problem: 'body is not JSON' });
  const retried = await caught(retry('truncated'));
  expect(retried).toMatchObject({ kind: 'malformed_response', outcomeUnknown: true, statusCode: 200 });
});

test('a 50 MB body is cut at maxResponseBytes: a typed error, the download stopped early', async () => {
  server.on('huge', answerHuge(200, 50 * MB));
  const error = await caught(client.getBatch('huge'));
  expect(error).toBeInstanceOf(ResponseTooLargeError);
  expect(error).toMatchObject({
    kind: 'malformed_response',
    statusCode: 200,
    batchId: 'huge',
    maxResponseBytes: MAX_RESPONSE_BYTES,
    outcomeUnknown: false,
  });
  expect(error.message).toContain(`body longer than ${MAX_RESPONSE_BYTES} bytes`);
  // The client hung up: the server wrote nowhere near 50 MB (socket buffers hold a few MB at most).
  await waitFor(() => server.calls.every((call) => call.closed));
  const [call] = server.calls;
  expect(call?.cutByClient).toBe(true);
  expect(call?.bytesWritten).toBeLessThan(10 * MB);
});

test('a declared Content-Length over the limit stops before the body; after a retry POST the outcome is unknown', async () => {
  server.on('declared', answerWith(200, 'application/json', Buffer.alloc(5 * MB, ' ')));
  const error = await caught(retry('declared'));
  expect(error).toBeInstanceOf(ResponseTooLargeError);
  expect(error.outcomeUnknown).toBe(true);
});

test('a body that trickles, and one that never ends, are cut by the request timeout', async () => {
  server.on('trickle', answerTrickle(50));
  server.on('endless', answerNeverEnding);
  for (const batchId of ['trickle', 'endless']) {
    const error = await caught(client.getBatch(batchId));
    expect(error).toBeInstanceOf(AnchorTimeoutError);
    expect(error).toMatchObject({ timeoutMs: TIMEOUT_MS, outcomeUnknown: true, batchId });
  }
  await waitFor(() => server.calls.every((call) => call.closed));
  expect(server.calls.map((call) => call.cutByClient)).toEqual([true, true]);
});

test('a multi-MB error message: a 404 and a 401 still fail as such, with the message cut and cleaned', async () => {
  server.on('gone', answerHugeError(404, 3 * MB));
  server.on('denied', answerHugeError(401, 3 * MB));
  // Over the body limit the message is not read, but the status still decides.
  server.on('gone-huge', answerHugeError(404, 20 * MB));
  const client20 = new AnchorApiClient({ baseUrl: server.url, apiKey: API_KEY, timeoutMs: TIMEOUT_MS });
  const gone = await caught(client20.getBatch('gone'));
  const denied = await caught(client20.getBatch('denied'));
  const goneHuge = await caught(client.getBatch('gone-huge'));

  expect(gone).toBeInstanceOf(BatchNotFoundError);
  expect(denied).toBeInstanceOf(UnauthorizedError);
  expect(goneHuge).toBeInstanceOf(BatchNotFoundError);
  expect(goneHuge.apiMessage).toBe(`(error body longer than ${MAX_RESPONSE_BYTES} bytes, not read)`);
  for (const error of [gone, denied]) {
    expect(error.apiMessage?.length).toBeLessThanOrEqual(API_TEXT_MAX_CHARS);
    expect(error.apiMessage).toMatch(/^see \[url removed\] x+ … \[cut at 500 of \d+ chars\]$/);
  }
  for (const error of [gone, denied, goneHuge]) {
    expect(error.message.length).toBeLessThan(MAX_MESSAGE_CHARS);
    expect(error.message).not.toMatch(/token|wss:/);
  }
  expect(server.calls).toHaveLength(3);
});

test('a schema error quoting a 1.5 MB value or key gives a bounded message', async () => {
  const hugeName = 'k'.repeat(1.5 * MB);
  const body = JSON.stringify({ data: { status: hugeName, sessions: [{ [hugeName]: 1, status: 7 }] } });
  server.on('huge-field', answerWith(200, 'application/json', body));
  const error = await caught(
    new AnchorApiClient({ baseUrl: server.url, apiKey: API_KEY, timeoutMs: TIMEOUT_MS }).getBatch('huge-field'),
  );
  expect(error).toBeInstanceOf(MalformedResponseError);
  expect(error.message.length).toBeLessThan(MAX_MESSAGE_CHARS);
  expect(error.message).toContain('data.status');
});

async function waitFor(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 10));
}
