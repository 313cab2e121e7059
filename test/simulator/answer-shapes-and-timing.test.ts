import { eventually } from '../helpers/recovery-env.js';
import { startSimulator, type RunningSimulator } from '../../simulator/index.js';

const API_KEY = 'sim-shapes-key';

let simulator: RunningSimulator;

beforeAll(async () => {
  simulator = await startSimulator({ apiKeys: [API_KEY], queueDelayMs: 0, attemptDurationMs: 10 });
});
afterEach(() => simulator.reset());
afterAll(() => simulator.close());

/** A call as a user makes it, to the shared simulator unless `on` names another. */
async function user(
  method: string,
  path: string,
  options: { body?: unknown; timeoutMs?: number; on?: RunningSimulator } = {},
) {
  const response = await fetch(`${(options.on ?? simulator).url}${path}`, {
    method,
    headers: {
      'anchor-api-key': API_KEY,
      ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
    ...(options.timeoutMs === undefined ? {} : { signal: AbortSignal.timeout(options.timeoutMs) }),
  });
  return { status: response.status, json: (await response.json()) as { data: Record<string, unknown> } };
}

const readStatus = async (batchId: string, on?: RunningSimulator) =>
  (await user('GET', `/v1/batch-sessions/${batchId}`, { on })).json.data;
const retry = (batchId: string, timeoutMs?: number, on?: RunningSimulator) =>
  user('POST', `/v1/batch-sessions/${batchId}/retry`, {
    body: { max_retries: 1 },
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
    on,
  });
const settled = (batchId: string, on?: RunningSimulator) =>
  eventually('the batch to settle', async () => {
    const detail = await readStatus(batchId, on);
    return detail.status === 'failed' || detail.status === 'completed' ? detail : undefined;
  });

describe('answer shapes', () => {
  it('sends counters only when the batch has no sessions in its answer', async () => {
    const batch = simulator.createScriptedBatch({
      count: 2,
      script: { '0': 'always-fail' },
      answer: { sessions: false },
    });
    const detail = await settled(batch.id);
    expect(detail).not.toHaveProperty('sessions');
    expect(detail).toMatchObject({ failed_requests: 1, completed_requests: 1 });
  });

  it('sends sessions without retry_count, and absent optional fields as null', async () => {
    const batch = simulator.createScriptedBatch({
      count: 2,
      script: { '0': 'always-fail' },
      answer: { retry_count: false, nulls: true },
    });
    const detail = await settled(batch.id);
    const sessions = detail.sessions as Record<string, unknown>[];
    expect(sessions.map((session) => 'retry_count' in session)).toEqual([false, false]);
    expect(sessions[0]).toMatchObject({ status: 'failed', cdp_url: null, metadata: null, session_id: null });
    expect(sessions[1]).toMatchObject({ status: 'completed', error: null, metadata: null });
    expect(sessions[1]?.cdp_url).toEqual(expect.any(String));
    expect(detail.error).toEqual(expect.any(String));
    expect(detail.actual_completion_time).toEqual(expect.any(String));

    const running = simulator.createScriptedBatch({ count: 1, answer: { nulls: true }, pending_phase: { ms: 60_000 } });
    expect(await readStatus(running.id)).toMatchObject({ actual_completion_time: null, error: null });
  });

  it('sends one field as null under a null_field fault, only where the field has a parent', async () => {
    const batch = simulator.createScriptedBatch({ count: 1 });
    await settled(batch.id);
    simulator.faults.add('status', { type: 'null_field', field: 'data.sessions.0.metadata', times: 1 });
    simulator.faults.add('status', { type: 'null_field', field: 'data.sessions.5.cdp_url', times: 1 });
    expect(((await readStatus(batch.id)).sessions as unknown[])[0]).toMatchObject({ metadata: null });
    expect((await readStatus(batch.id)).sessions).toHaveLength(1);
  });
});

describe('pending phase', () => {
  it('reads as pending with every counter 0 for its time, then the sessions start', async () => {
    // A phase longer than any stall of a loaded machine, ended by the clock: before, 300 ms of real time had to cover
    // the read and the retry below.
    const batch = simulator.createScriptedBatch({ count: 3, pending_phase: { ms: 60_000 } });
    expect(await readStatus(batch.id)).toMatchObject({
      status: 'pending',
      total_requests: 0,
      completed_requests: 0,
      failed_requests: 0,
      processing_requests: 0,
      pending_requests: 0,
      sessions: [],
    });
    expect((await retry(batch.id)).status).toBe(400);
    simulator.clock.advance(60_000);
    const detail = await settled(batch.id);
    expect(detail).toMatchObject({ status: 'completed', total_requests: 3, completed_requests: 3 });
    expect(Date.parse(detail.actual_completion_time as string) - batch.createdAt).toBeGreaterThanOrEqual(60_000);
  });

  it('answers the first N status reads with the all-zero answer', async () => {
    const batch = simulator.createScriptedBatch({ count: 2, pending_phase: { reads: 2 } });
    await eventually('the sessions to settle', () =>
      batch.status(simulator.clock.now()) === 'completed' ? true : undefined,
    );
    const counts = [];
    for (let read = 0; read < 3; read += 1) counts.push((await readStatus(batch.id)).total_requests);
    expect(counts).toEqual([0, 0, 2]);
  });
});

describe('hold', () => {
  it('keeps a held batch processing however the clock moves, until it is released', async () => {
    const batch = simulator.createScriptedBatch({ count: 2, script: { '0': 'always-fail' }, hold: true });
    const listed = async () =>
      ((await user('GET', '/v1/batch-sessions?limit=100')).json.data.batches as { batch_id: string }[]).find(
        (summary) => summary.batch_id === batch.id,
      );
    simulator.clock.advance(3_600_000);
    expect(await readStatus(batch.id)).toMatchObject({ status: 'processing', processing_requests: 2 });
    expect(await listed()).toMatchObject({ status: 'processing', failed_requests: 0 });

    const released = await user('POST', `/_simulator/batches/${batch.id}/release`);
    expect(released.json.data).toMatchObject({ batch_id: batch.id, released_sessions: 2 });
    expect(await settled(batch.id)).toMatchObject({ status: 'failed', failed_requests: 1, completed_requests: 1 });
    expect(await listed()).toMatchObject({ status: 'failed', failed_requests: 1 });
    // Released once: a second release has nothing to let go of, and an unknown batch is not found.
    expect(batch.release(simulator.clock.now())).toBe(0);
    expect((await user('POST', '/_simulator/batches/no-such-batch/release')).status).toBe(404);
  });
});

describe('fault timing and the ledger', () => {
  it('lets a fault aim at the Nth call with `after`', async () => {
    const batch = simulator.createScriptedBatch({ count: 1 });
    simulator.faults.add('status', { type: 'error', statusCode: 503, after: 2, times: 1, batchId: batch.id });
    simulator.faults.add('status', { type: 'error', statusCode: 502, after: 3, times: 1, batchId: batch.id });
    const statuses = [];
    for (let read = 0; read < 5; read += 1) statuses.push((await user('GET', `/v1/batch-sessions/${batch.id}`)).status);
    expect(statuses).toEqual([200, 200, 503, 502, 200]);
  });

  it('applies a retry delayed past the client timeout once the delay is over, and records when', async () => {
    const batch = simulator.createScriptedBatch({ count: 2, script: { '1': 'always-fail' } });
    await settled(batch.id);
    simulator.faults.add('retry', { type: 'latency', latencyMs: 400, times: 1, batchId: batch.id });
    await expect(retry(batch.id, 100)).rejects.toThrow();
    expect(simulator.ledger.forBatch(batch.id).retries).toEqual([]);

    const applied = await eventually(
      'the delayed retry to be applied',
      () => simulator.ledger.forBatch(batch.id).retries[0],
    );
    const post = simulator.ledger.forBatch(batch.id).calls.find((call) => call.method === 'POST');
    expect(applied.callSeq).toBe(post?.seq);
    expect(applied.receivedAtMs).toBe(post?.receivedAtMs);
    expect(applied.appliedAtMs - (applied.receivedAtMs ?? 0)).toBeGreaterThanOrEqual(390);
    await eventually('the abandoned answer to be recorded', () =>
      post?.answeredAtMs === undefined ? undefined : true,
    );
    expect(post).toMatchObject({ outcome: 'answered', statusCode: 200, fault: 'latency' });
  });

  it('never applies a hung retry, even after the client gave up', async () => {
    const batch = simulator.createScriptedBatch({ count: 2, script: { '1': 'always-fail' } });
    await settled(batch.id);
    simulator.faults.add('retry', { type: 'hang', times: 1, batchId: batch.id });
    await expect(retry(batch.id, 100)).rejects.toThrow();
    // A retry sent after the hung one is applied: the ledger is up to date once it shows that one.
    expect((await retry(batch.id)).status).toBe(200);
    const ledger = simulator.ledger.forBatch(batch.id);
    expect(ledger.calls.map((call) => [call.outcome, call.fault])).toEqual([
      ...ledger.calls.filter((call) => call.method === 'GET').map(() => ['answered', undefined]),
      ['hung', 'hang'],
      ['answered', undefined],
    ]);
    expect(ledger.retries.map((entry) => entry.callSeq)).toEqual([ledger.calls.at(-1)?.seq]);
  });

  it('applies a commit_then_drop retry and drops the answer', async () => {
    const batch = simulator.createScriptedBatch({ count: 2, script: { '1': 'always-fail' } });
    await settled(batch.id);
    simulator.faults.add('retry', { type: 'commit_then_drop', times: 1, batchId: batch.id });
    await expect(retry(batch.id)).rejects.toThrow();
    const ledger = simulator.ledger.forBatch(batch.id);
    expect(ledger.retries).toHaveLength(1);
    expect(ledger.calls.at(-1)).toMatchObject({ outcome: 'dropped', answeredAtMs: expect.any(Number) });
  });
});

describe('close', () => {
  const timers = () => process.getActiveResourcesInfo().filter((resource) => resource === 'Timeout').length;

  it('ends the calls it is delaying: none is applied, and no timer of theirs outlives it', async () => {
    const closing = await startSimulator({ apiKeys: [API_KEY], queueDelayMs: 0, attemptDurationMs: 10 });
    const batch = closing.createScriptedBatch({ count: 2, script: { '1': 'always-fail' } });
    await settled(batch.id, closing);
    const timersBefore = timers();
    closing.faults.add('retry', { type: 'latency', latencyMs: 600_000, times: 1, batchId: batch.id });
    const delayed = retry(batch.id, undefined, closing);
    await eventually("the retry's delay to start", () => (timers() === timersBefore + 1 ? true : undefined));
    expect(closing.ledger.forBatch(batch.id).calls.at(-1)).toMatchObject({ method: 'POST', outcome: 'in_flight' });

    await closing.close();
    await expect(delayed).rejects.toThrow();
    expect(timers()).toBe(timersBefore);
    expect(closing.ledger.forBatch(batch.id).retries).toEqual([]);
  });
});
