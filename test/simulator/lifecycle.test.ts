import type { BatchSessionItem, BatchStatusDetail } from '../../anchor-api/index.js';
import { startSimulator, type RunningSimulator } from '../../simulator/index.js';

const API_KEY = 'sim-test-key';
const QUEUE_MS = 100;
const ATTEMPT_MS = 1000;

let simulator: RunningSimulator;

beforeAll(async () => {
  simulator = await startSimulator({
    apiKeys: [API_KEY],
    clockMode: 'manual',
    queueDelayMs: QUEUE_MS,
    attemptDurationMs: ATTEMPT_MS,
    failureProbability: 0,
  });
});
afterEach(() => simulator.reset());
afterAll(() => simulator.close());

async function api(method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const response = await fetch(`${simulator.url}${path}`, {
    method,
    headers: { 'anchor-api-key': API_KEY, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: response.status, json: await response.json() };
}

async function status(batchId: string): Promise<BatchStatusDetail & { sessions: BatchSessionItem[] }> {
  const { status: code, json } = await api('GET', `/v1/batch-sessions/${batchId}`);
  expect(code).toBe(200);
  return (json as { data: BatchStatusDetail & { sessions: BatchSessionItem[] } }).data;
}

function errorMessage(json: unknown): string | undefined {
  return (json as { error?: { message?: string } }).error?.message;
}

function session(detail: { sessions: BatchSessionItem[] }, index: number): BatchSessionItem {
  const item = detail.sessions[index];
  if (item === undefined) throw new Error(`no session ${index}`);
  return item;
}

const counters = (detail: BatchStatusDetail) => ({
  pending: detail.pending_requests,
  processing: detail.processing_requests,
  completed: detail.completed_requests,
  failed: detail.failed_requests,
});

describe('session lifecycle under the controllable clock', () => {
  it('moves sessions pending → processing → completed/failed and the batch with them', async () => {
    const { id } = simulator.createScriptedBatch({ count: 4, script: { '2': 'always-fail' } });

    let detail = await status(id);
    expect(detail.status).toBe('pending');
    expect(counters(detail)).toEqual({ pending: 4, processing: 0, completed: 0, failed: 0 });
    expect(detail.progress).toEqual({ percentage: 0, current_phase: 'queued' });
    expect(session(detail, 0)).toEqual({ item_index: 0, status: 'pending', retry_count: 0 });

    simulator.clock.advance(QUEUE_MS);
    detail = await status(id);
    expect(detail.status).toBe('processing');
    expect(counters(detail)).toEqual({ pending: 0, processing: 4, completed: 0, failed: 0 });
    expect(session(detail, 0).started_at).toBe(new Date(simulator.clock.now()).toISOString());

    simulator.clock.advance(ATTEMPT_MS);
    detail = await status(id);
    expect(detail.status).toBe('failed');
    expect(counters(detail)).toEqual({ pending: 0, processing: 0, completed: 3, failed: 1 });
    expect(detail.progress).toEqual({ percentage: 100, current_phase: 'ready' });
    expect(detail.error).toBe('1 of 4 sessions failed to start');
    expect(detail.actual_completion_time).toBe(new Date(simulator.clock.now()).toISOString());

    const failed = session(detail, 2);
    expect(failed).toMatchObject({ status: 'failed', retry_count: 0 });
    expect(failed.error).toContain('failed to start');
    expect(failed.cdp_url).toBeUndefined();
    expect(failed.session_id).toBeUndefined();

    const ready = session(detail, 0);
    expect(ready.status).toBe('completed');
    expect(ready.cdp_url).toMatch(
      new RegExp(`^wss://connect\\.anchorbrowser\\.io\\?sessionId=${ready.session_id}&token=[0-9a-f]{40}$`),
    );
    expect(ready.live_view_url).toContain(`sessionId=${ready.session_id}&token=`);
    expect(session(detail, 1).cdp_url).not.toBe(ready.cdp_url);
  });

  it('reports completed when nothing failed', async () => {
    const { id } = simulator.createScriptedBatch({ count: 3 });
    simulator.clock.advance(QUEUE_MS + ATTEMPT_MS);
    expect((await status(id)).status).toBe('completed');
  });

  it('draws failures from a seeded RNG: the same seed fails the same sessions', async () => {
    const failedItems = async (seed: number) => {
      const other = await startSimulator({
        apiKeys: [API_KEY],
        clockMode: 'manual',
        seed,
        failureProbability: 0.3,
        attemptDurationMs: 10,
        queueDelayMs: 0,
      });
      try {
        const created = await fetch(`${other.url}/v1/batch-sessions`, {
          method: 'POST',
          headers: { 'anchor-api-key': API_KEY, 'content-type': 'application/json' },
          body: JSON.stringify({ count: 50 }),
        });
        const { data } = (await created.json()) as { data: { batch_id: string } };
        other.clock.advance(10);
        return other.store.get(data.batch_id)?.failedItems(other.clock.now());
      } finally {
        await other.close();
      }
    };
    const first = await failedItems(42);
    expect(first?.length).toBeGreaterThan(5);
    expect(first?.length).toBeLessThan(30);
    expect(await failedItems(42)).toEqual(first);
    expect(await failedItems(43)).not.toEqual(first);
  });
});

describe('retry semantics', () => {
  const settle = (attempts: number) => simulator.clock.advance(QUEUE_MS + attempts * ATTEMPT_MS);

  it('retries each failed session, puts the batch back to processing and counts retries', async () => {
    const { id } = simulator.createScriptedBatch({
      count: 10,
      script: { '2': ['fail', 'ok'], '7': ['fail', 'ok'], '3': 'always-fail' },
    });
    settle(1);
    expect((await status(id)).failed_requests).toBe(3);

    const retry = await api('POST', `/v1/batch-sessions/${id}/retry`, { retry_failed_only: true, max_retries: 1 });
    expect(retry).toEqual({
      status: 200,
      json: {
        data: { batch_id: id, status: 'processing', retried_sessions: 3, message: 'Retrying 3 failed sessions' },
      },
    });

    let detail = await status(id);
    expect(detail.status).toBe('processing');
    expect(counters(detail)).toEqual({ pending: 3, processing: 0, completed: 7, failed: 0 });
    expect([2, 3, 7].map((index) => session(detail, index).retry_count)).toEqual([1, 1, 1]);

    settle(1);
    detail = await status(id);
    expect(detail.status).toBe('failed');
    expect(session(detail, 2)).toMatchObject({ status: 'completed', retry_count: 1 });
    expect(session(detail, 7)).toMatchObject({ status: 'completed', retry_count: 1 });
    expect(session(detail, 3)).toMatchObject({ status: 'failed', retry_count: 1 });
    expect(session(detail, 0)).toMatchObject({ status: 'completed', retry_count: 0 });
  });

  it('makes up to max_retries attempts per session, counting each as it starts', async () => {
    const { id } = simulator.createScriptedBatch({ count: 2, script: { '1': 'always-fail' } });
    settle(1);
    await api('POST', `/v1/batch-sessions/${id}/retry`, { max_retries: 3 });

    simulator.clock.advance(QUEUE_MS + ATTEMPT_MS);
    expect(session(await status(id), 1)).toMatchObject({ status: 'processing', retry_count: 2 });
    simulator.clock.advance(2 * ATTEMPT_MS);
    expect(session(await status(id), 1)).toMatchObject({ status: 'failed', retry_count: 3 });
    expect((await status(id)).status).toBe('failed');
  });

  it('stops a session at its first success', async () => {
    const { id } = simulator.createScriptedBatch({ count: 1, script: { '0': ['fail', 'fail', 'ok', 'fail'] } });
    settle(1);
    await api('POST', `/v1/batch-sessions/${id}/retry`, { max_retries: 3 });
    settle(5);
    const detail = await status(id);
    expect(detail.status).toBe('completed');
    expect(session(detail, 0)).toMatchObject({ status: 'completed', retry_count: 2 });
  });

  it('answers 400 when nothing has failed, and when the batch is still running', async () => {
    const { id } = simulator.createScriptedBatch({ count: 2, script: { '0': 'always-fail' } });
    expect(await api('POST', `/v1/batch-sessions/${id}/retry`, {})).toEqual({
      status: 400,
      json: { error: { code: 400, message: 'No failed sessions to retry' } },
    });
    settle(1);
    await api('POST', `/v1/batch-sessions/${id}/retry`, { max_retries: 1 });
    expect((await api('POST', `/v1/batch-sessions/${id}/retry`, {})).status).toBe(400);
    expect(simulator.ledger.forBatch(id).retries).toHaveLength(1);
  });

  it('validates the body with the shared schema and names the field', async () => {
    const { id } = simulator.createScriptedBatch({ count: 1, script: { '0': 'always-fail' } });
    settle(1);
    const response = await api('POST', `/v1/batch-sessions/${id}/retry`, { max_retries: 5 });
    expect(response.status).toBe(400);
    expect(errorMessage(response.json)).toMatch(/^max_retries: /);
    expect((await api('POST', `/v1/batch-sessions/${id}/retry`, { retry_failed_only: 'yes' })).json).toEqual({
      error: { code: 400, message: 'retry_failed_only: expected boolean' },
    });
  });

  it('answers 404 for an unknown batch', async () => {
    expect(await api('POST', '/v1/batch-sessions/nope/retry', {})).toEqual({
      status: 404,
      json: { error: { code: 404, message: 'Batch not found' } },
    });
  });
});

describe('cancel', () => {
  it('cancels unsettled sessions and refuses a second cancel with 409', async () => {
    const { id } = simulator.createScriptedBatch({ count: 3 });
    const cancelled = await api('PATCH', `/v1/batch-sessions/${id}`, { status: 'cancelled' });
    expect(cancelled.json).toMatchObject({ data: { batch_id: id, status: 'cancelled', cancelled_sessions: 3 } });
    simulator.clock.advance(QUEUE_MS + ATTEMPT_MS);
    const detail = await status(id);
    expect(detail.status).toBe('cancelled');
    expect(detail.sessions.map((item) => item.status)).toEqual(['cancelled', 'cancelled', 'cancelled']);
    expect(await api('PATCH', `/v1/batch-sessions/${id}`, { status: 'cancelled' })).toEqual({
      status: 409,
      json: { error: { code: 409, message: 'Batch is already cancelled' } },
    });
  });

  it('refuses to cancel a completed batch with 409 and rejects a wrong body with 400', async () => {
    const { id } = simulator.createScriptedBatch({ count: 1 });
    const wrongBody = await api('PATCH', `/v1/batch-sessions/${id}`, { status: 'completed' });
    expect(wrongBody.status).toBe(400);
    expect(errorMessage(wrongBody.json)).toMatch(/^status: /);
    simulator.clock.advance(QUEUE_MS + ATTEMPT_MS);
    expect((await api('PATCH', `/v1/batch-sessions/${id}`, { status: 'cancelled' })).status).toBe(409);
  });
});

describe('create and list', () => {
  it('creates batches within 1..1000 and rejects the rest', async () => {
    expect((await api('POST', '/v1/batch-sessions', { count: 0 })).status).toBe(400);
    expect((await api('POST', '/v1/batch-sessions', { count: 1001 })).status).toBe(400);
    const created = await api('POST', '/v1/batch-sessions', { count: 1000 });
    expect(created.json).toMatchObject({ data: { status: 'pending', total_requests: 1000 } });
  });

  it('pages newest first and filters by status and creation time', async () => {
    const day = (n: number) => `2025-03-0${n}T00:00:00.000Z`;
    // Created in the past, so all have settled by the simulator's "now"; batch-4's only session failed.
    for (const n of [1, 2, 3, 4, 5, 6])
      simulator.createScriptedBatch({
        id: `batch-${n}`,
        count: 1,
        created_at: day(n),
        script: n === 4 ? { '0': 'always-fail' } : {},
      });

    const ids = (json: unknown) =>
      (json as { data: { batches: { batch_id: string }[] } }).data.batches.map((batch) => batch.batch_id);
    const first = await api('GET', '/v1/batch-sessions?limit=4');
    expect(ids(first.json)).toEqual(['batch-6', 'batch-5', 'batch-4', 'batch-3']);
    expect((first.json as { data: { pagination: unknown } }).data.pagination).toEqual({
      current_page: 1,
      total_pages: 2,
      total_records: 6,
      has_next: true,
      has_prev: false,
    });
    const second = await api('GET', '/v1/batch-sessions?limit=4&page=2');
    expect(ids(second.json)).toEqual(['batch-2', 'batch-1']);
    expect((second.json as { data: { pagination: unknown } }).data.pagination).toMatchObject({
      has_next: false,
      has_prev: true,
    });

    expect(ids((await api('GET', '/v1/batch-sessions?status=completed')).json)).toEqual([
      'batch-6',
      'batch-5',
      'batch-3',
      'batch-2',
      'batch-1',
    ]);
    expect(ids((await api('GET', '/v1/batch-sessions?status=failed')).json)).toEqual(['batch-4']);
    expect(ids((await api('GET', `/v1/batch-sessions?created_after=${day(2)}&created_before=${day(5)}`)).json)).toEqual(
      ['batch-4', 'batch-3'],
    );
    const tooMany = await api('GET', '/v1/batch-sessions?limit=101');
    expect(tooMany.status).toBe(400);
    expect(errorMessage(tooMany.json)).toMatch(/^limit: /);
  });
});
