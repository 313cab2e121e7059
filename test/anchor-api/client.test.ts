import { inspect } from 'node:util';
import {
  AnchorApiClient,
  AnchorApiError,
  AnchorNetworkError,
  AnchorTimeoutError,
  BadRequestError,
  BatchNotFoundError,
  ConflictError,
  MalformedResponseError,
  NoFailedSessionsError,
  RateLimitedError,
  ServerError,
  UnauthorizedError,
} from '../../anchor-api/index.js';
import { startSimulator, type RunningSimulator } from '../../simulator/index.js';
import { eventually } from '../helpers/recovery-env.js';

const API_KEY = 'sk-live-client-test-5f0c2a91e4';
const ATTEMPT_MS = 1000;

let simulator: RunningSimulator;
let client: AnchorApiClient;

beforeAll(async () => {
  simulator = await startSimulator({
    apiKeys: [API_KEY],
    clockMode: 'manual',
    attemptDurationMs: ATTEMPT_MS,
    queueDelayMs: 100,
    failureProbability: 0,
  });
  client = new AnchorApiClient({ baseUrl: simulator.url, apiKey: API_KEY, timeoutMs: 2000 });
});

afterEach(() => simulator.reset());

afterAll(() => simulator.close());

/** A batch whose items 1 and 4 failed and whose attempts have all settled. */
function settledBatchWithFailures(id = 'b-failed'): string {
  const batch = simulator.createScriptedBatch({ id, count: 5, script: { '1': ['fail', 'ok'], '4': 'always-fail' } });
  simulator.clock.advance(5 * ATTEMPT_MS);
  return batch.id;
}

async function caught(promise: Promise<unknown>): Promise<AnchorApiError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof AnchorApiError) return error;
    throw error;
  }
  throw new Error('expected the call to fail');
}

function expectNoKey(error: unknown): void {
  const everything = [inspect(error, { depth: Infinity, showHidden: true }), JSON.stringify(error), String(error)].join(
    '\n',
  );
  expect(everything).not.toContain(API_KEY);
}

describe('AnchorApiClient happy paths', () => {
  it('creates a batch, reads it, lists it and cancels it', async () => {
    const created = await client.createBatch({ count: 3, metadata: { run: 'x' } });
    expect(created).toMatchObject({ status: 'pending', total_requests: 3 });
    const batchId = created.batch_id ?? '';

    const detail = await client.getBatch(batchId);
    expect(detail).toMatchObject({ batch_id: batchId, status: 'pending', pending_requests: 3 });
    expect(detail.sessions).toHaveLength(3);

    const page = await client.listBatches({ status: 'pending', limit: 5 });
    expect(page.batches?.map((batch) => batch.batch_id)).toEqual([batchId]);
    expect(page.pagination).toEqual({
      current_page: 1,
      total_pages: 1,
      total_records: 1,
      has_next: false,
      has_prev: false,
    });

    const cancelled = await client.cancelBatch(batchId);
    expect(cancelled).toMatchObject({ batch_id: batchId, status: 'cancelled', cancelled_sessions: 3 });
  });

  it('retries failed sessions and returns the contract answer', async () => {
    const batchId = settledBatchWithFailures();
    const result = await client.retryFailedSessions(batchId, { retry_failed_only: true, max_retries: 2 });
    expect(result).toEqual({
      batch_id: batchId,
      status: 'processing',
      retried_sessions: 2,
      message: 'Retrying 2 failed sessions',
    });
    expect(simulator.ledger.forBatch(batchId).retries).toEqual([
      expect.objectContaining({
        body: { retry_failed_only: true, max_retries: 2 },
        retriedSessions: 2,
        retriedItems: [1, 4],
      }),
    ]);
  });

  it('sends the API key in the anchor-api-key header', async () => {
    const batchId = settledBatchWithFailures();
    await client.getBatch(batchId);
    expect(simulator.ledger.forBatch(batchId).calls).toEqual([
      expect.objectContaining({ statusCode: 200, outcome: 'answered' }),
    ]);
  });

  it('narrows a batch to what recovery needs', async () => {
    const batchId = settledBatchWithFailures();
    const batch = await client.getRecoverableBatch(batchId);
    expect(batch).toMatchObject({
      batchId,
      status: 'failed',
      countsSource: 'counters',
      counts: { total: 5, completed: 3, failed: 2, pending: 0, processing: 0 },
    });
  });
});

describe('AnchorApiClient call budget', () => {
  const pacedClient = () =>
    new AnchorApiClient({
      baseUrl: simulator.url,
      apiKey: API_KEY,
      timeoutMs: 3000,
      callSpacingMs: 2000,
    });
  const callsTo = (batchId: string) => simulator.ledger.forBatch(batchId).calls.map((call) => call.method);
  /**
   * The call after one that gave up its turn came a spacing (2 s) after the first, not two: a turn given up is not
   * left unused. The upper bound leaves 1.5 s for a loaded machine.
   */
  const expectNextCallInTheFreedTurn = (batchId: string) => {
    const [first, second] = simulator.ledger.forBatch(batchId).calls.map((call) => call.receivedAtMs);
    expect(second! - first!).toBeGreaterThanOrEqual(1_800);
    expect(second! - first!).toBeLessThan(3_500);
  };

  test('a retry whose turn does not come in time fails as never sent, and the next call takes its turn', async () => {
    const batchId = settledBatchWithFailures();
    const paced = pacedClient();
    const sends: string[] = [];
    await paced.getBatch(batchId, { onSend: () => sends.push('read') });

    const error = await caught(
      paced.retryFailedSessions(
        batchId,
        { retry_failed_only: true, max_retries: 1 },
        { turnTimeoutMs: 300, onSend: () => sends.push('retry') },
      ),
    );

    expect(error).toBeInstanceOf(AnchorTimeoutError);
    expect(error.outcomeUnknown).toBe(false);
    expect((error as AnchorTimeoutError).waitedForTurn).toBe(true);
    expect(error.message).toContain('not sent: its turn under the call budget did not come within 300 ms');
    expect(sends).toEqual(['read']);
    // The retry is never sent, even once its turn comes: the next call takes that turn, a spacing after the first.
    await paced.getBatch(batchId);
    expect(callsTo(batchId)).toEqual(['GET', 'GET']);
    expectNextCallInTheFreedTurn(batchId);
  });

  test('a retry whose turn comes past its sendBy, as after a stall, fails as never sent, with no request', async () => {
    const batchId = settledBatchWithFailures();
    const sends: string[] = [];

    const error = await caught(
      client.retryFailedSessions(
        batchId,
        { retry_failed_only: true, max_retries: 1 },
        { turnTimeoutMs: 300, sendBy: performance.now() - 1, onSend: () => sends.push('retry') },
      ),
    );

    expect(error).toBeInstanceOf(AnchorTimeoutError);
    expect(error.outcomeUnknown).toBe(false);
    expect((error as AnchorTimeoutError).waitedForTurn).toBe(true);
    expect(sends).toEqual([]);
    expect(simulator.ledger.forBatch(batchId).calls).toEqual([]);
  });

  test('a call has its whole request time after its turn, and is dated when it leaves', async () => {
    const batchId = settledBatchWithFailures();
    const paced = new AnchorApiClient({
      baseUrl: simulator.url,
      apiKey: API_KEY,
      timeoutMs: 3_000,
      callSpacingMs: 2_000,
    });
    await paced.getBatch(batchId);
    simulator.faults.add('retry', { type: 'latency', latencyMs: 1_500, times: 1 });
    let sentAtMs = 0;

    // About 2 s for its turn, then 1.5 s for the answer: more than 3 s in all, within 3 s from its sending. Margins of
    // 1 s or more for a loaded machine's stalls: the turn within its 3 s, the answer within the request's 3 s.
    const result = await paced.retryFailedSessions(
      batchId,
      { retry_failed_only: true, max_retries: 1 },
      { onSend: () => (sentAtMs = Date.now()) },
    );

    expect(result.retried_sessions).toBe(2);
    const [read, retry] = simulator.ledger.forBatch(batchId).calls;
    expect(retry!.receivedAtMs - read!.receivedAtMs).toBeGreaterThanOrEqual(1_900);
    expect(sentAtMs).toBeGreaterThanOrEqual(read!.receivedAtMs + 1_900);
    expect(sentAtMs).toBeLessThanOrEqual(retry!.receivedAtMs);
  });

  test('a turn that comes late, on a busy event loop, keeps the next one a whole spacing after it', async () => {
    const batchId = settledBatchWithFailures();
    const spacingMs = 200;
    const paced = new AnchorApiClient({ baseUrl: simulator.url, apiKey: API_KEY, callSpacingMs: spacingMs });
    const sentAt: number[] = [];
    const onSend = () => sentAt.push(performance.now());

    // Queued at once, the turns are due at 0, 200 and 400 ms.
    const reads = [1, 2, 3].map(() => paced.getBatch(batchId, { onSend }));
    await eventually('the first call to leave', () => (sentAt.length === 1 ? true : undefined));
    // The event loop is held from the first turn to 350 ms, past the second turn's time: it comes about 150 ms late.
    const heldUntil = sentAt[0]! + 350;
    while (performance.now() < heldUntil);
    await Promise.all(reads);

    expect(sentAt).toHaveLength(3);
    expect(sentAt[1]! - sentAt[0]!).toBeGreaterThanOrEqual(350);
    // A turn scheduled when it was queued would come at 400 ms, 50 ms after the late one; the spacing is 200 ms,
    // less a pause between a turn and its onSend.
    expect(sentAt[2]! - sentAt[1]!).toBeGreaterThan(spacingMs - 50);
  });

  test('a retry aborted while it waits its turn fails as never sent', async () => {
    const batchId = settledBatchWithFailures();
    const paced = pacedClient();
    await paced.getBatch(batchId);
    const stop = new AbortController();

    const waiting = caught(
      paced.retryFailedSessions(batchId, { retry_failed_only: true, max_retries: 1 }, { signal: stop.signal }),
    );
    stop.abort();
    const error = await waiting;

    expect(error).toBeInstanceOf(AnchorNetworkError);
    expect(error.outcomeUnknown).toBe(false);
    expect(error.message).toContain('aborted before sending, waiting its turn');
    await paced.getBatch(batchId);
    expect(callsTo(batchId)).toEqual(['GET', 'GET']);
    expectNextCallInTheFreedTurn(batchId);
  });
});

describe('AnchorApiClient errors', () => {
  it('401: UnauthorizedError for a wrong key, without leaking either key', async () => {
    const wrongKey = 'sk-live-wrong-key-0000';
    const stranger = new AnchorApiClient({ baseUrl: simulator.url, apiKey: wrongKey });
    const error = await caught(stranger.getBatch('b-any'));
    expect(error).toBeInstanceOf(UnauthorizedError);
    expect(error).toMatchObject({ kind: 'unauthorized', statusCode: 401, batchId: 'b-any', outcomeUnknown: false });
    expect(inspect(error, { depth: Infinity })).not.toContain(wrongKey);
  });

  it('403: UnauthorizedError', async () => {
    simulator.faults.add('list', { type: 'error', statusCode: 403, times: 1 });
    const error = await caught(client.listBatches());
    expect(error).toBeInstanceOf(UnauthorizedError);
    expect(error.statusCode).toBe(403);
  });

  it('404: BatchNotFoundError naming batch and endpoint', async () => {
    const error = await caught(client.getBatch('no-such-batch'));
    expect(error).toBeInstanceOf(BatchNotFoundError);
    expect(error.message).toBe(
      'Batch not found (HTTP 404) for batch no-such-batch on GET /v1/batch-sessions/{batch_id}: Batch not found',
    );
  });

  it('409: ConflictError when cancelling twice', async () => {
    const batchId = settledBatchWithFailures();
    await client.cancelBatch(batchId);
    const error = await caught(client.cancelBatch(batchId));
    expect(error).toBeInstanceOf(ConflictError);
    expect(error).toMatchObject({
      kind: 'conflict',
      statusCode: 409,
      endpoint: 'PATCH /v1/batch-sessions/{batch_id}',
      apiMessage: 'Batch is already cancelled',
    });
  });

  it('400 on retry: NoFailedSessionsError', async () => {
    const batch = simulator.createScriptedBatch({ count: 2 });
    simulator.clock.advance(5 * ATTEMPT_MS);
    const error = await caught(client.retryFailedSessions(batch.id, { max_retries: 1 }));
    expect(error).toBeInstanceOf(NoFailedSessionsError);
    expect(error).toMatchObject({
      kind: 'no_failed_sessions',
      statusCode: 400,
      apiMessage: 'No failed sessions to retry',
      outcomeUnknown: false,
    });
  });

  it('400 elsewhere: BadRequestError carrying the field the server named', async () => {
    const error = await caught(client.createBatch({ count: 1001 }));
    expect(error).toBeInstanceOf(BadRequestError);
    expect(error.apiMessage).toMatch(/^count: /);
  });

  it('refuses an out-of-range retry body locally, so nothing is sent', async () => {
    const batchId = settledBatchWithFailures();
    const error = await caught(client.retryFailedSessions(batchId, { max_retries: 4 }));
    expect(error).toBeInstanceOf(BadRequestError);
    expect(error.apiMessage).toContain('max_retries');
    expect(simulator.ledger.forBatch(batchId).calls).toHaveLength(0);
  });

  it('429 with Retry-After in seconds', async () => {
    simulator.faults.add('status', { type: 'rate_limit', retryAfterSeconds: 7, times: 1 });
    const error = await caught(client.getBatch('b-any'));
    expect(error).toBeInstanceOf(RateLimitedError);
    expect((error as RateLimitedError).retryAfterMs).toBe(7000);
    expect(error.kind).toBe('rate_limited');
  });

  it('429 with Retry-After as an HTTP date', async () => {
    simulator.faults.add('retry', {
      type: 'rate_limit',
      retryAfterSeconds: 3,
      retryAfterFormat: 'http-date',
      times: 1,
    });
    const error = await caught(client.retryFailedSessions('b-any', { max_retries: 1 }));
    expect(error).toBeInstanceOf(RateLimitedError);
    const retryAfterMs = (error as RateLimitedError).retryAfterMs ?? -1;
    // HTTP dates have one-second resolution.
    expect(retryAfterMs).toBeGreaterThanOrEqual(1000);
    expect(retryAfterMs).toBeLessThanOrEqual(3000);
  });

  it('429 without Retry-After leaves retryAfterMs undefined', async () => {
    simulator.faults.add('create', { type: 'rate_limit', times: 1 });
    const error = await caught(client.createBatch({ count: 1 }));
    expect(error).toBeInstanceOf(RateLimitedError);
    expect((error as RateLimitedError).retryAfterMs).toBeUndefined();
  });

  it.each([500, 502, 503])('%i: ServerError, and got does not repeat the request', async (statusCode) => {
    const batchId = settledBatchWithFailures();
    simulator.faults.add('status', { type: 'error', statusCode, times: 5 });
    simulator.faults.add('retry', { type: 'error', statusCode, times: 5 });
    expect(await caught(client.getBatch(batchId))).toMatchObject({ kind: 'server_error', outcomeUnknown: false });
    // A 5xx to the retry call may come after the server acted on it: only a reconciliation can tell.
    const error = await caught(client.retryFailedSessions(batchId, { max_retries: 1 }));
    expect(error).toBeInstanceOf(ServerError);
    expect(error).toMatchObject({ kind: 'server_error', statusCode, outcomeUnknown: true });
    const ledger = simulator.ledger.forBatch(batchId);
    expect(ledger.calls.map((call) => [call.method, call.statusCode])).toEqual([
      ['GET', statusCode],
      ['POST', statusCode],
    ]);
    expect(ledger.retries).toHaveLength(0);
  });

  it('timeout: a hanging server gives AnchorTimeoutError with an unknown outcome', async () => {
    const impatient = new AnchorApiClient({ baseUrl: simulator.url, apiKey: API_KEY, timeoutMs: 150 });
    const batchId = settledBatchWithFailures();
    simulator.faults.add('retry', { type: 'hang', times: 1 });
    const error = await caught(impatient.retryFailedSessions(batchId, { max_retries: 1 }));
    expect(error).toBeInstanceOf(AnchorTimeoutError);
    expect(error).toMatchObject({ kind: 'timeout', outcomeUnknown: true, batchId });
    expect(error.message).toContain('150 ms');
    expect(simulator.ledger.forBatch(batchId).calls).toEqual([expect.objectContaining({ outcome: 'hung' })]);
    expectNoKey(error);
  });

  it('commit then drop: the retry is applied once, the client sees a network error with an unknown outcome', async () => {
    const batchId = settledBatchWithFailures();
    simulator.faults.add('retry', { type: 'commit_then_drop', times: 1 });
    const error = await caught(client.retryFailedSessions(batchId, { max_retries: 1 }));
    expect(error).toBeInstanceOf(AnchorNetworkError);
    expect(error).toMatchObject({
      kind: 'network',
      outcomeUnknown: true,
      batchId,
      endpoint: 'POST /v1/batch-sessions/{batch_id}/retry',
    });
    const ledger = simulator.ledger.forBatch(batchId);
    expect(ledger.retries).toHaveLength(1);
    expect(ledger.calls).toEqual([
      expect.objectContaining({ method: 'POST', outcome: 'dropped', statusCode: undefined }),
    ]);
    expect((await client.getBatch(batchId)).status).toBe('processing');
    expectNoKey(error);
  });

  it('a call aborted before it left (the activity was cancelled first): nothing was sent', async () => {
    const batchId = settledBatchWithFailures();
    const error = await caught(
      client.retryFailedSessions(batchId, { max_retries: 1 }, { signal: AbortSignal.abort() }),
    );
    expect(error).toMatchObject({ kind: 'network', outcomeUnknown: false });
    expect(simulator.ledger.forBatch(batchId).calls).toEqual([]);
  });

  it('a call aborted while in flight: its outcome is unknown', async () => {
    const batchId = settledBatchWithFailures();
    simulator.faults.add('retry', { type: 'hang', times: 1 });
    const abort = new AbortController();
    const pending = caught(client.retryFailedSessions(batchId, { max_retries: 1 }, { signal: abort.signal }));
    await eventually('the call to reach the API', () => simulator.ledger.forBatch(batchId).calls[0]);
    abort.abort();
    expect(await pending).toMatchObject({ kind: 'network', outcomeUnknown: true });
  });

  it('a per-call timeout shortens the client-wide one', async () => {
    const batchId = settledBatchWithFailures();
    simulator.faults.add('retry', { type: 'hang', times: 1 });
    const error = await caught(client.retryFailedSessions(batchId, { max_retries: 1 }, { timeoutMs: 100 }));
    expect(error).toMatchObject({ kind: 'timeout', outcomeUnknown: true, timeoutMs: 100 });
  });

  it('connection refused: a network error whose outcome is known (nothing was sent)', async () => {
    const closed = await startSimulator();
    await closed.close();
    const offline = new AnchorApiClient({ baseUrl: closed.url, apiKey: API_KEY });
    const error = await caught(offline.retryFailedSessions('b1', { max_retries: 1 }));
    expect(error).toBeInstanceOf(AnchorNetworkError);
    expect(error.outcomeUnknown).toBe(false);
    expectNoKey(error);
  });

  it('malformed: a non-JSON 2xx body', async () => {
    const batchId = settledBatchWithFailures();
    simulator.faults.add('status', { type: 'malformed_json', times: 1 });
    const error = await caught(client.getBatch(batchId));
    expect(error).toBeInstanceOf(MalformedResponseError);
    expect(error).toMatchObject({ kind: 'malformed_response', statusCode: 200, outcomeUnknown: false });
    expect(error.message).toContain('body is not JSON');
  });

  it('malformed: a mistyped field is named in the message', async () => {
    const batchId = settledBatchWithFailures();
    simulator.faults.add('status', {
      type: 'mistyped_field',
      field: 'data.sessions.3.retry_count',
      value: 'three',
      times: 1,
    });
    const error = await caught(client.getBatch(batchId));
    expect(error).toBeInstanceOf(MalformedResponseError);
    expect(error.message).toContain('data.sessions[3].retry_count: expected number');
    expect(error.message).toContain(batchId);
  });

  it('malformed answer to a retry: the retry happened, so the outcome counts as unknown', async () => {
    const batchId = settledBatchWithFailures();
    simulator.faults.add('retry', { type: 'mistyped_field', times: 1 });
    const error = await caught(client.retryFailedSessions(batchId, { max_retries: 1 }));
    expect(error).toMatchObject({ kind: 'malformed_response', outcomeUnknown: true });
    expect(error.message).toContain('data.retried_sessions: expected number');
    expect(simulator.ledger.forBatch(batchId).retries).toHaveLength(1);
  });

  it('no error carries the API key, in message, cause or own fields', async () => {
    const batchId = settledBatchWithFailures();
    simulator.faults.add('status', { type: 'error', statusCode: 503, times: 1 });
    simulator.faults.add('cancel', { type: 'commit_then_drop', times: 1 });
    const errors = [
      await caught(client.getBatch(batchId)),
      await caught(client.cancelBatch(batchId)),
      await caught(client.getBatch('missing')),
      await caught(client.createBatch({ count: 0 })),
    ];
    expect(errors.map((error) => error.kind)).toEqual(['server_error', 'network', 'batch_not_found', 'bad_request']);
    errors.forEach(expectNoKey);
  });
});
