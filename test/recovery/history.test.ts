import { randomUUID } from 'node:crypto';
import {
  anchorBatchIdKey,
  recoveryOutcomeKey,
  recoveryRoundsKey,
  retriedSessionsKey,
  stillFailedSessionsKey,
} from '../../workflows/search-attributes.js';
import {
  eventually,
  historyText,
  pollerRegistrations,
  startRecoveryEnv,
  TEST_API_KEY,
  type RecoveryEnv,
} from '../helpers/recovery-env.js';

// A manual clock: the batch stays in flight until the test moves time on, so polls can be counted.
let env: RecoveryEnv;

beforeAll(async () => {
  env = await startRecoveryEnv({ clockMode: 'manual', attemptDurationMs: 1_000, queueDelayMs: 0 });
  await env.startWorker();
});
afterAll(() => env.close());

const TIGHT_POLLING = {
  poll: { initialInterval: '10ms', backoffCoefficient: 1, maximumInterval: '10ms' },
  roundBackoff: { initialInterval: '50ms' },
};
// The backoff counts from the batch's settle, so a short one may be over before it is noticed, and the history
// would hold a timer or not by chance: a long one, skipped with retryNow, gives every run the same events.
const TIGHT_POLLING_HELD_BACKOFF = { ...TIGHT_POLLING, roundBackoff: { initialInterval: '1h', maximumInterval: '1h' } };

const statusReads = (batchId: string) =>
  env.simulator.ledger.forBatch(batchId).calls.filter((call) => call.method === 'GET').length;

/** One round: waits for `polls` status reads before the batch settles, and again after the retry. */
async function recoverAfterPolls(polls: number) {
  const batch = env.simulator.createScriptedBatch({ count: 6, script: { '2': ['fail', 'ok'], '4': ['fail', 'ok'] } });
  await env.recoveries.start({ batchId: batch.id, ...TIGHT_POLLING_HELD_BACKOFF });
  await eventually(`${polls} status reads`, () => (statusReads(batch.id) >= polls ? true : undefined), 60_000);
  env.simulator.clock.advance(60_000);
  await eventually('the recovery to back off', async () =>
    (await env.recoveries.report(batch.id)).phase === 'backing_off' ? true : undefined,
  );
  await env.recoveries.retryNow(batch.id);
  await eventually('the retry to be applied', () => env.simulator.ledger.forBatch(batch.id).retries[0]);
  const readsBeforeSecondSettle = statusReads(batch.id);
  await eventually(
    'more status reads',
    () => (statusReads(batch.id) >= readsBeforeSecondSettle + polls ? true : undefined),
    60_000,
  );
  env.simulator.clock.advance(60_000);
  const report = await env.recoveries.result(batch.id);
  const history = await env.recoveries.handle(batch.id).fetchHistory();
  // No poller runs on this queue: each wait's registration found none (one local activity, answering false),
  // and the recovery polled its batch itself.
  const registrations = pollerRegistrations(history);
  expect(registrations).toHaveLength(2);
  for (const marker of registrations) {
    const result = marker.markerRecordedEventAttributes?.details?.['result']?.payloads?.[0]?.data;
    expect(Buffer.from(result ?? []).toString()).toBe('false');
  }
  return { report, events: history.events?.length ?? 0, polls: statusReads(batch.id), batchId: batch.id };
}

// The server spaces activity retries at least about a second apart, so this compares a handful of
// polls with a few dozen; bench/history-vs-polls.ts measures 5 against 200.
test('the history of a recovery does not grow with the number of status polls', async () => {
  const few = await recoverAfterPolls(2);
  const many = await recoverAfterPolls(15);

  console.info(`history events: ${few.events} after ${few.polls} polls, ${many.events} after ${many.polls} polls`);
  expect(few.report.outcome).toBe('recovered');
  expect(many.report.outcome).toBe('recovered');
  expect(many.polls).toBeGreaterThanOrEqual(30);
  expect(few.polls).toBeLessThan(10);
  expect(many.events).toBe(few.events);
}, 180_000);

test('progress is visible while the batch is in flight, and search attributes are kept current', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 10, script: { '1': ['fail', 'ok'], '5': ['fail', 'ok'] } });
  await env.recoveries.start({ batchId: batch.id, ...TIGHT_POLLING });
  const progress = await eventually('a poll that reports progress', async () => {
    const current = await env.recoveries.progress(batch.id);
    return current.poll?.batch ? current : undefined;
  });
  expect(progress.running).toBe(true);
  expect(progress.report.phase).toBe('waiting_for_batch');
  expect(progress.poll?.message).toMatch(/Not settled yet: batch (pending|processing): 0\/10 settled/);
  expect(progress.poll?.batch).toMatchObject({
    total: 10,
    pending: expect.any(Number),
    processing: expect.any(Number),
  });
  const running = await env.recoveries.handle(batch.id).describe();
  expect(running.typedSearchAttributes.get(anchorBatchIdKey)).toBe(batch.id);
  expect(running.typedSearchAttributes.get(recoveryOutcomeKey)).toBe('running');

  env.simulator.clock.advance(60_000);
  await eventually('the retry to be applied', () => env.simulator.ledger.forBatch(batch.id).retries[0]);
  env.simulator.clock.advance(60_000);
  await env.recoveries.result(batch.id);
  const done = await env.recoveries.handle(batch.id).describe();
  expect(done.typedSearchAttributes.get(recoveryOutcomeKey)).toBe('recovered');
  expect(done.typedSearchAttributes.get(recoveryRoundsKey)).toBe(1);
  expect(done.typedSearchAttributes.get(retriedSessionsKey)).toBe(2);
  expect(done.typedSearchAttributes.get(stillFailedSessionsKey)).toBe(0);
});

test('historyText reads inside payloads: a marker in a workflow input is found', async () => {
  const marker = `marker-${randomUUID()}`;
  // No worker polls this queue: the history is the start event, whose input holds the marker.
  const handle = await env.client.workflow.start('recoverBatch', {
    taskQueue: `${env.taskQueue}-unpolled`,
    workflowId: `history-text-${randomUUID()}`,
    args: [{ batchId: marker }],
  });
  try {
    expect(historyText(await handle.fetchHistory())).toContain(marker);
  } finally {
    await handle.terminate('test finished');
  }
});

test('neither the API key nor any session URL appears in a recovery history', async () => {
  const { batchId, report } = await recoverAfterPolls(2);
  expect(report.outcome).toBe('recovered');
  const answer = await fetch(`${env.simulator.url}/v1/batch-sessions/${batchId}`, {
    headers: { 'anchor-api-key': TEST_API_KEY },
  });
  const { data } = (await answer.json()) as { data: { sessions: { cdp_url?: string; live_view_url?: string }[] } };
  const urls = data.sessions.flatMap((session) => [session.cdp_url, session.live_view_url]).filter(Boolean) as string[];
  expect(urls).toHaveLength(12);

  const history = historyText(await env.recoveries.handle(batchId).fetchHistory());
  const description = historyText((await env.recoveries.handle(batchId).describe()).raw);
  for (const text of [history, description]) {
    expect(text).not.toContain(TEST_API_KEY);
    for (const url of urls) expect(text).not.toContain(url);
    expect(text).not.toMatch(/wss:\/\/|cdp_url|live_view_url|token=/);
  }
});
