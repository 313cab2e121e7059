import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startSimulator, type BatchLedger, type RunningSimulator } from '../../simulator/index.js';

const API_KEY = 'sim-test-key';
const ADMIN_TOKEN = 'admin-secret';

let simulator: RunningSimulator;

beforeAll(async () => {
  simulator = await startSimulator({
    apiKeys: [API_KEY],
    adminToken: ADMIN_TOKEN,
    clockMode: 'manual',
    queueDelayMs: 0,
    attemptDurationMs: 1000,
    seed: 7,
  });
});
afterEach(() => simulator.reset());
afterAll(() => simulator.close());

async function call(method: string, path: string, options: { body?: unknown; headers?: Record<string, string> } = {}) {
  const response = await fetch(`${simulator.url}${path}`, {
    method,
    headers: { ...(options.body === undefined ? {} : { 'content-type': 'application/json' }), ...options.headers },
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
  });
  return { status: response.status, headers: response.headers, json: await response.json() };
}
const asUser = (method: string, path: string, body?: unknown) =>
  call(method, path, { body, headers: { 'anchor-api-key': API_KEY } });
const asAdmin = (method: string, path: string, body?: unknown) =>
  call(method, path, { body, headers: { 'x-simulator-admin-token': ADMIN_TOKEN } });

describe('auth', () => {
  it('answers 401 with the contract error body for a missing or unknown key', async () => {
    const expected = { status: 401, json: { error: { code: 401, message: 'Invalid or missing API key' } } };
    expect(await call('GET', '/v1/batch-sessions')).toMatchObject(expected);
    expect(await call('GET', '/v1/batch-sessions', { headers: { 'anchor-api-key': 'nope' } })).toMatchObject(expected);
    expect((await asUser('GET', '/v1/batch-sessions')).status).toBe(200);
  });

  it('guards admin paths with the admin token, not the API key', async () => {
    expect((await call('GET', '/_simulator/ledger', { headers: { 'anchor-api-key': API_KEY } })).status).toBe(401);
    expect((await asAdmin('GET', '/_simulator/ledger')).status).toBe(200);
  });
});

describe('admin HTTP surface', () => {
  it('creates a scripted batch, advances the clock and reads the ledger', async () => {
    const created = await asAdmin('POST', '/_simulator/batches', {
      id: 'scripted-1',
      count: 3,
      script: { '1': ['fail', 'ok'] },
    });
    expect(created).toMatchObject({ status: 201, json: { data: { batch_id: 'scripted-1', total_requests: 3 } } });
    expect((await asAdmin('POST', '/_simulator/batches', { id: 'scripted-1', count: 1 })).status).toBe(409);
    expect((await asAdmin('POST', '/_simulator/batches', { count: 2, script: { '0': ['maybe'] } })).status).toBe(400);

    const before = await asAdmin('GET', '/_simulator/clock');
    const advanced = await asAdmin('POST', '/_simulator/clock/advance', { ms: 1000 });
    expect(Date.parse((advanced.json as { now: string }).now) - Date.parse((before.json as { now: string }).now)).toBe(
      1000,
    );

    await asUser('POST', '/v1/batch-sessions/scripted-1/retry', { max_retries: 2 });
    const ledger = (await asAdmin('GET', '/_simulator/ledger/scripted-1')).json as BatchLedger;
    expect(ledger.calls).toEqual([
      expect.objectContaining({
        method: 'POST',
        path: '/v1/batch-sessions/scripted-1/retry',
        endpoint: 'POST /v1/batch-sessions/{batch_id}/retry',
        statusCode: 200,
        requestBody: { max_retries: 2 },
      }),
    ]);
    expect(ledger.retries).toEqual([
      expect.objectContaining({
        body: { retry_failed_only: true, max_retries: 2 },
        retriedSessions: 1,
        retriedItems: [1],
      }),
    ]);
    expect(simulator.ledger.forBatch('scripted-1')).toEqual(ledger);
  });

  it('resets batches, faults and ledger', async () => {
    await asAdmin('POST', '/_simulator/batches', { id: 'gone', count: 1 });
    await asAdmin('POST', '/_simulator/faults/status', { type: 'error', statusCode: 500 });
    await asUser('GET', '/v1/batch-sessions/gone');
    expect(await asAdmin('POST', '/_simulator/reset')).toMatchObject({ status: 200 });
    expect((await asUser('GET', '/v1/batch-sessions/gone')).status).toBe(404);
    expect((await asAdmin('GET', '/_simulator/faults')).json).toEqual({ faults: {} });
    expect(((await asAdmin('GET', '/_simulator/ledger')).json as BatchLedger).calls).toHaveLength(1);
  });
});

describe('fault injection', () => {
  it('fires a counted fault on exactly the next N calls', async () => {
    simulator.createScriptedBatch({ id: 'b', count: 1 });
    await asAdmin('POST', '/_simulator/faults/status', { type: 'error', statusCode: 502, times: 2 });
    const statuses = [];
    for (let i = 0; i < 3; i += 1) statuses.push((await asUser('GET', '/v1/batch-sessions/b')).status);
    expect(statuses).toEqual([502, 502, 200]);
    expect(simulator.ledger.forBatch('b').calls.map((entry) => entry.fault)).toEqual(['error', 'error', undefined]);
  });

  it('fires a probabilistic fault at about its rate, reproducibly', async () => {
    simulator.createScriptedBatch({ id: 'b', count: 1 });
    simulator.faults.add('status', { type: 'error', statusCode: 503, probability: 0.25 });
    let failures = 0;
    for (let i = 0; i < 200; i += 1) if ((await asUser('GET', '/v1/batch-sessions/b')).status === 503) failures += 1;
    expect(failures).toBeGreaterThan(25);
    expect(failures).toBeLessThan(75);
  });

  it('can be replaced and cleared while running, and scoped to a batch', async () => {
    simulator.createScriptedBatch({ id: 'a', count: 1 });
    simulator.createScriptedBatch({ id: 'b', count: 1 });
    await asAdmin('PUT', '/_simulator/faults', { status: [{ type: 'error', statusCode: 500, batchId: 'a' }] });
    expect((await asUser('GET', '/v1/batch-sessions/a')).status).toBe(500);
    expect((await asUser('GET', '/v1/batch-sessions/b')).status).toBe(200);
    await asAdmin('DELETE', '/_simulator/faults');
    expect((await asUser('GET', '/v1/batch-sessions/a')).status).toBe(200);
    expect((await asAdmin('PUT', '/_simulator/faults', { status: [{ type: 'error', statusCode: 200 }] })).status).toBe(
      400,
    );
  });

  it('adds latency, then answers normally', async () => {
    simulator.faults.add('list', { type: 'latency', latencyMs: 150, times: 1 });
    const started = performance.now();
    expect((await asUser('GET', '/v1/batch-sessions')).status).toBe(200);
    expect(performance.now() - started).toBeGreaterThanOrEqual(140);
  });

  it('sends 429 with Retry-After in either format', async () => {
    simulator.faults.add('create', { type: 'rate_limit', retryAfterSeconds: 4, times: 1 });
    simulator.faults.add('create', {
      type: 'rate_limit',
      retryAfterSeconds: 4,
      retryAfterFormat: 'http-date',
      times: 1,
    });
    const seconds = await asUser('POST', '/v1/batch-sessions', { count: 1 });
    expect(seconds).toMatchObject({ status: 429, json: { error: { code: 429, message: 'Rate limit exceeded' } } });
    expect(seconds.headers.get('retry-after')).toBe('4');
    const date = await asUser('POST', '/v1/batch-sessions', { count: 1 });
    expect(date.headers.get('retry-after')).toMatch(/^\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/);
  });

  it('applies the faults start options declare', async () => {
    const faulty = await startSimulator({
      apiKeys: [API_KEY],
      faults: { create: [{ type: 'error', statusCode: 503, times: 1 }] },
    });
    try {
      const post = () =>
        fetch(`${faulty.url}/v1/batch-sessions`, {
          method: 'POST',
          headers: { 'anchor-api-key': API_KEY, 'content-type': 'application/json' },
          body: '{"count":1}',
        });
      expect((await post()).status).toBe(503);
      expect((await post()).status).toBe(200);
    } finally {
      await faulty.close();
    }
  });
});

describe('standalone process', () => {
  it('starts from the command line, prints its URL and serves the contract', async () => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'simulator/main.ts', '--port', '0', '--api-keys', 'cli-key', '--clock', 'manual'],
      {
        cwd: fileURLToPath(new URL('../..', import.meta.url)),
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    try {
      const lines = createInterface({ input: child.stdout });
      const [firstLine] = (await once(lines, 'line')) as [string];
      const url = firstLine.replace(/^SIMULATOR_URL=/, '');
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const response = await fetch(`${url}/v1/batch-sessions`, { headers: { 'anchor-api-key': 'cli-key' } });
      expect(response.status).toBe(200);
    } finally {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  });
});
