import { randomUUID } from 'node:crypto';
import { RecoveryFailedError } from '../../client/recoveries.js';
import { recoveryOutcomeKey } from '../../workflows/search-attributes.js';
import {
  eventually,
  FAST_POLICY,
  historyText,
  startRecoveryEnv,
  TEST_API_KEY,
  type RecoveryEnv,
} from '../helpers/recovery-env.js';

let env: RecoveryEnv;

beforeAll(async () => {
  env = await startRecoveryEnv();
  await env.startWorker();
});
afterAll(() => env.close());
afterEach(() => env.simulator.faults.clear());

const retryPosts = (batchId: string) => env.retryPosts(batchId);

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
    expect((failure as RecoveryFailedError).report).toMatchObject({
      batchId: batch.id,
      outcome: null,
      failure: { type: 'unauthorized' },
    });
    const description = await other.recoveries.handle(batch.id).describe();
    expect(description.typedSearchAttributes.get(recoveryOutcomeKey)).toBe('failed');
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

test('a storm of 5xx answers to the retry call is reconciled each time, and the call is sent again only after the batch proves it had no effect', async () => {
  const batch = oneFailingSession();
  env.simulator.faults.add('retry', { type: 'error', statusCode: 503, times: 2, batchId: batch.id });
  env.simulator.faults.add('retry', { type: 'error', statusCode: 500, times: 1, batchId: batch.id });
  env.simulator.faults.add('status', { type: 'error', statusCode: 502, times: 3, batchId: batch.id });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY });
  const report = await env.recoveries.result(batch.id);

  expect(report.outcome).toBe('recovered');
  expect(report.rounds).toHaveLength(1);
  expect(report.rounds[0]).toMatchObject({ retriedSessions: 1, apiStatus: 200, reconciled: false, callsSent: 4 });
  expect(retryPosts(batch.id).map((call) => call.statusCode)).toEqual([503, 503, 500, 200]);
  // Each 5xx was followed by a read that found the retry counts unchanged before the next POST.
  const calls = env.simulator.ledger.forBatch(batch.id).calls;
  const posts = calls.filter((call) => call.method === 'POST');
  for (const [index, post] of posts.slice(1).entries()) {
    const between = calls.filter((call) => call.seq > posts[index]!.seq && call.seq < post.seq);
    expect(between.some((call) => call.method === 'GET' && call.statusCode === 200)).toBe(true);
  }
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

test('a batch with nothing left to retry by retry time gets no call and no round', async () => {
  const batch = oneFailingSession();
  // Someone else retries the batch while the recovery waits out its backoff.
  const manual = () =>
    fetch(`${env.simulator.url}/v1/batch-sessions/${batch.id}/retry`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'anchor-api-key': TEST_API_KEY },
      body: JSON.stringify({ retry_failed_only: true, max_retries: 1 }),
    });
  // A backoff of an hour: the retryNow ends it, and no round can start before the manual call on a slow machine.
  await env.recoveries.start({
    batchId: batch.id,
    ...FAST_POLICY,
    roundBackoff: { initialInterval: '1h', maximumInterval: '1h' },
  });
  await eventually('the recovery to back off before its first retry', async () =>
    (await env.recoveries.report(batch.id)).phase === 'backing_off' ? true : undefined,
  );
  expect((await manual()).status).toBe(200);
  await env.recoveries.retryNow(batch.id);
  const report = await env.recoveries.result(batch.id);

  expect(report.rounds).toEqual([]);
  expect(report.outcome).toBe('recovered');
  // Only the manual call: the snapshot right before the recovery's call showed the batch in flight or clean.
  expect(retryPosts(batch.id)).toHaveLength(1);
});

test('a 400 "nothing to retry" answer is a round that retried 0', async () => {
  const batch = oneFailingSession();
  env.simulator.faults.add('retry', {
    type: 'error',
    statusCode: 400,
    message: 'No failed sessions to retry',
    times: 1,
    batchId: batch.id,
  });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY, maxRounds: 2 });
  const report = await env.recoveries.result(batch.id);

  expect(report.rounds[0]).toMatchObject({ retriedSessions: 0, apiStatus: 400, failedBefore: 1, reconciled: false });
  expect(report.rounds[1]).toMatchObject({ retriedSessions: 1, apiStatus: 200 });
  expect(retryPosts(batch.id).map((call) => call.statusCode)).toEqual([400, 200]);
  expect(report.outcome).toBe('recovered');
});

test('a retry whose answer is unreadable was still applied: the round is recorded and the recovery goes on', async () => {
  const batch = oneFailingSession();
  env.simulator.faults.add('retry', { type: 'mistyped_field', times: 1, batchId: batch.id });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY });
  const report = await env.recoveries.result(batch.id);

  expect(report.outcome).toBe('recovered');
  expect(report.rounds).toEqual([
    expect.objectContaining({
      retriedSessions: 1,
      apiStatus: 200,
      apiMessage: expect.stringMatching(/^answer unreadable/),
    }),
  ]);
  expect(retryPosts(batch.id)).toHaveLength(1);
});

test('without retry counts in the answers, a lost retry answer is never followed by a second call', async () => {
  // The retried session fails again at once, so only retry_count could show the retry happened,
  // and the API leaves the sessions out of its answers.
  const batch = env.simulator.createScriptedBatch({ count: 5, script: { '1': ['fail', 'fail', 'ok'] } });
  env.simulator.faults.add('status', { type: 'omit_field', field: 'data.sessions', batchId: batch.id });
  env.simulator.faults.add('retry', { type: 'commit_then_drop', times: 1, batchId: batch.id });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY });
  const report = await env.recoveries.result(batch.id);

  expect(report.rounds[0]).toMatchObject({
    reconciled: true,
    reconcileEffect: 'unknown',
    apiStatus: null,
    retriedSessions: 0,
    callsSent: 1,
  });
  expect(report.rounds[0]?.reconcileReason).toMatch(/cannot show whether the call was applied/);
  // Round 1's call was applied once; the next call belongs to round 2.
  expect(env.simulator.ledger.forBatch(batch.id).retries).toHaveLength(2);
  expect(report.rounds).toHaveLength(2);
  expect(report.outcome).toBe('recovered');
});

test('URLs quoted in session errors are removed before they reach the report', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': 'always-fail' } });
  const quoted = 'pod lost: wss://connect.anchorbrowser.io?sessionId=1&token=c0ffee';
  env.simulator.faults.add('status', {
    type: 'mistyped_field',
    field: 'data.sessions.1.error',
    value: quoted,
    batchId: batch.id,
  });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY, maxRounds: 1 });
  const report = await env.recoveries.result(batch.id);

  expect(report.stillFailing.sessions[0]?.error).toBe('pod lost: [url removed]');
  const history = historyText(await env.recoveries.handle(batch.id).fetchHistory());
  expect(history).not.toContain('c0ffee');
});

test("a session error quoting the session's own URLs without a scheme or encoded twice keeps neither in history", async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': 'always-fail' } });
  const sessionId = randomUUID();
  const cdpUrl = `wss://connect.anchorbrowser.io/devtools/browser/${sessionId}`;
  const liveViewUrl = `https://live.anchorbrowser.io/inspector.html?sessionId=${sessionId}`;
  const error = [
    `debugger at devtools://devtools/bundled/inspector.html?ws=connect.anchorbrowser.io/devtools/browser/${sessionId}`,
    `live view was live.anchorbrowser.io/inspector.html?sessionId=${sessionId}`,
    `proxy said ${encodeURIComponent(encodeURIComponent(cdpUrl))}`,
  ].join(' | ');
  // The failed session as the API might send it: its URLs beside an error that quotes them.
  const session = {
    item_index: 1,
    status: 'failed',
    retry_count: 0,
    cdp_url: cdpUrl,
    live_view_url: liveViewUrl,
    error,
  };
  env.simulator.faults.add('status', {
    type: 'mistyped_field',
    field: 'data.sessions.1',
    value: session,
    batchId: batch.id,
  });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY, maxRounds: 1 });
  const report = await env.recoveries.result(batch.id);

  expect(report.stillFailing.sessions[0]?.error).toBe(
    'debugger at [url removed] | live view was [url removed] | proxy said [url removed]',
  );
  const handle = env.recoveries.handle(batch.id);
  for (const text of [historyText(await handle.fetchHistory()), historyText((await handle.describe()).raw)]) {
    expect(text).toContain('proxy said [url removed]');
    expect(text).not.toContain('anchorbrowser.io');
    expect(text).not.toMatch(/devtools:|wss%25|live view was live/);
  }
});

test("session URLs without a scheme that are not the session's own fields (another session's, a field name the code does not know, an error message's) reach neither history nor the report", async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': 'always-fail', '2': 'always-fail' } });
  const [sibling, camelCased, unavailable] = [randomUUID(), randomUUID(), randomUUID()];
  const cdpUrlOf = (sessionId: string) => `wss://connect.anchorbrowser.io/devtools/browser/${sessionId}`;
  const sessions = [
    { item_index: 0, status: 'completed', retry_count: 0, session_id: sibling, cdp_url: cdpUrlOf(sibling) },
    {
      item_index: 1,
      status: 'failed',
      retry_count: 0,
      cdpUrl: cdpUrlOf(camelCased),
      error: `CDP handshake failed at connect.anchorbrowser.io/devtools/browser/${camelCased}`,
    },
    {
      item_index: 2,
      status: 'failed',
      retry_count: 0,
      error: `pod shared with connect.anchorbrowser.io/devtools/browser/${sibling} was evicted`,
    },
  ];
  env.simulator.faults.add('status', {
    type: 'mistyped_field',
    field: 'data.sessions',
    value: sessions,
    batchId: batch.id,
  });
  // The retry call's error message quotes a third one.
  env.simulator.faults.add('retry', {
    type: 'error',
    statusCode: 503,
    message: `upstream connect.anchorbrowser.io/devtools/browser/${unavailable} unavailable`,
    batchId: batch.id,
  });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY, deadline: '3s' });
  const report = await env.recoveries.result(batch.id);

  expect(report.stillFailing.sessions.map((session) => session.error)).toEqual([
    'CDP handshake failed at [url removed]',
    'pod shared with [url removed] was evicted',
  ]);
  const handle = env.recoveries.handle(batch.id);
  const texts = [historyText(await handle.fetchHistory()), historyText((await handle.describe()).raw)];
  expect(texts[0]).toContain('upstream [url removed]');
  for (const text of texts) expect(text).not.toMatch(new RegExp(`${sibling}|${camelCased}|${unavailable}|devtools`));
});

test('a deadline reached while the API keeps failing says which error it waited out', async () => {
  const batch = oneFailingSession();
  env.simulator.faults.add('status', { type: 'error', statusCode: 500, batchId: batch.id });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY, deadline: '3s' });
  const report = await env.recoveries.result(batch.id);

  expect(report.outcome).toBe('deadline');
  expect(report.lastError).toMatchObject({ type: 'server_error', message: expect.stringContaining('HTTP 500') });
});
