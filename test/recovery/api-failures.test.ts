import { RecoveryFailedError } from '../../client/recoveries.js';
import { eventually, FAST_POLICY, startRecoveryEnv, TEST_API_KEY, type RecoveryEnv } from '../helpers/recovery-env.js';

let env: RecoveryEnv;

beforeAll(async () => {
  env = await startRecoveryEnv();
  await env.startWorker();
});
afterAll(() => env.close());
afterEach(() => env.simulator.faults.clear());

const retryPosts = (batchId: string) =>
  env.simulator.ledger.forBatch(batchId).calls.filter((call) => call.method === 'POST' && call.path.endsWith('/retry'));

const oneFailingSession = () => env.simulator.createScriptedBatch({ count: 5, script: { '1': ['fail', 'ok'] } });

test('a wrong API key fails the recovery at once with a non-retryable unauthorized error', async () => {
  const other = await startRecoveryEnv();
  try {
    await other.startWorker('not-the-key');
    const batch = other.simulator.createScriptedBatch({ count: 3 });
    await other.recoveries.start({ batchId: batch.id, ...FAST_POLICY });
    const failure = await other.recoveries.result(batch.id).catch((err: unknown) => err);

    expect(failure).toBeInstanceOf(RecoveryFailedError);
    expect(((failure as RecoveryFailedError).cause as { type?: string }).type).toBe('unauthorized');
    expect((failure as Error).message).not.toContain('not-the-key');
    expect(other.simulator.ledger.forBatch(batch.id).calls.map((call) => call.statusCode)).toEqual([401]);
    expect((failure as RecoveryFailedError).report?.batchId).toBe(batch.id);
  } finally {
    await other.close();
  }
});

test('a 429 on the retry call waits what Retry-After says before the next attempt', async () => {
  const batch = oneFailingSession();
  env.simulator.faults.add('retry', { type: 'rate_limit', retryAfterSeconds: 2, times: 1, batchId: batch.id });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY });
  const report = await env.recoveries.result(batch.id);

  const posts = retryPosts(batch.id);
  expect(posts.map((call) => call.statusCode)).toEqual([429, 200]);
  const waitedMs = Date.parse(posts[1]!.at) - Date.parse(posts[0]!.at);
  // Without Retry-After the next attempt would follow after the 50 ms poll interval.
  expect(waitedMs).toBeGreaterThanOrEqual(2_000);
  expect(report.outcome).toBe('recovered');
  expect(env.simulator.ledger.forBatch(batch.id).retries).toHaveLength(1);
});

test('a storm of 5xx answers is retried with backoff until the retry goes through once', async () => {
  const batch = oneFailingSession();
  env.simulator.faults.add('retry', { type: 'error', statusCode: 503, times: 2, batchId: batch.id });
  env.simulator.faults.add('retry', { type: 'error', statusCode: 500, times: 1, batchId: batch.id });
  env.simulator.faults.add('status', { type: 'error', statusCode: 502, times: 3, batchId: batch.id });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY });
  const report = await env.recoveries.result(batch.id);

  expect(report.outcome).toBe('recovered');
  expect(report.rounds).toHaveLength(1);
  expect(report.rounds[0]).toMatchObject({ retriedSessions: 1, apiStatus: 200, reconciled: false });
  // Retry attempts after a definite failure read the batch first: one GET before each later POST.
  expect(retryPosts(batch.id).map((call) => call.statusCode)).toEqual([503, 503, 500, 200]);
  expect(env.simulator.ledger.forBatch(batch.id).retries).toHaveLength(1);
});

test('a retry applied by the API whose answer is lost is reconciled, not sent again', async () => {
  const batch = oneFailingSession();
  env.simulator.faults.add('retry', { type: 'commit_then_drop', times: 1, batchId: batch.id });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY });
  const report = await env.recoveries.result(batch.id);

  expect(retryPosts(batch.id)).toHaveLength(1);
  expect(retryPosts(batch.id)[0]?.outcome).toBe('dropped');
  expect(env.simulator.ledger.forBatch(batch.id).retries).toHaveLength(1);
  expect(report.outcome).toBe('recovered');
  expect(report.rounds).toEqual([
    expect.objectContaining({
      round: 1,
      reconciled: true,
      retriedSessions: 1,
      apiStatus: null,
      failedAfter: 0,
      recovered: 1,
    }),
  ]);
});

test('a batch with no failed sessions left by retry time records a round that retried 0', async () => {
  const batch = oneFailingSession();
  // Someone else retries the batch while the recovery waits out its backoff.
  const manual = () =>
    fetch(`${env.simulator.url}/v1/batch-sessions/${batch.id}/retry`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'anchor-api-key': TEST_API_KEY },
      body: JSON.stringify({ retry_failed_only: true, max_retries: 1 }),
    });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY, roundBackoff: { initialInterval: '3s' } });
  await eventually('the recovery to back off before its first retry', async () =>
    (await env.recoveries.report(batch.id)).phase === 'backing_off' ? true : undefined,
  );
  expect((await manual()).status).toBe(200);
  await env.recoveries.retryNow(batch.id);
  const report = await env.recoveries.result(batch.id);

  expect(report.rounds[0]).toMatchObject({ retriedSessions: 0, apiStatus: 400, failedBefore: 1 });
  expect(report.outcome).toBe('recovered');
});
