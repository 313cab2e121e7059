import { WorkflowNotFoundError } from '@temporalio/client';
import proto from '@temporalio/proto';
import { batchStatusPollerWorkflowId } from '../../workflows/definitions.js';
import {
  eventually,
  FAST_POLICY,
  patchMarkerIds,
  pollerRegistrations,
  type RecoveryEnv,
  registrationsIn,
  startRecoveryEnv,
} from '../helpers/recovery-env.js';

const { EventType } = proto.temporal.api.enums.v1;

let env: RecoveryEnv;

/** A session attempt takes a minute of the simulator's clock: a batch settles only when a test moves it on. */
const ATTEMPT_MS = 60_000;
const LIST = 'GET /v1/batch-sessions';
const STATUS = 'GET /v1/batch-sessions/{batch_id}';

// A simulator of its own for each test: each moves its clock.
beforeEach(async () => {
  env = await startRecoveryEnv({ attemptDurationMs: ATTEMPT_MS, queueDelayMs: 0 });
  await env.startPollerWorker();
});
afterEach(() => env.close());

const polledEvery = (interval: string) => ({
  ...FAST_POLICY,
  poll: { initialInterval: interval, backoffCoefficient: 1, maximumInterval: interval },
});

/** The task queue's poller once it rests between cycles (its first timer). */
async function pollerResting() {
  const poller = env.client.workflow.getHandle(batchStatusPollerWorkflowId(env.taskQueue));
  await eventually('the poller to rest for the hourly watch', async () =>
    ((await poller.fetchHistory()).events ?? []).some((event) => event.eventType === EventType.EVENT_TYPE_TIMER_STARTED)
      ? true
      : undefined,
  );
  return poller;
}

test("a watch registered during the poller's rest with a shorter interval ends the rest: its recovery is not held by another's", async () => {
  const hourly = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
  const quick = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
  await env.recoveries.start({ batchId: hourly.id, ...polledEvery('1h') });
  const poller = await pollerResting();
  await env.recoveries.start({ batchId: quick.id, ...polledEvery('500ms') });
  await eventually('the quick recovery to register', async () =>
    pollerRegistrations(await env.recoveries.handle(quick.id).fetchHistory()).length > 0 ? true : undefined,
  );
  env.simulator.clock.advance(ATTEMPT_MS);
  // Before, the rest lasted the hour: nothing was read until then.
  await eventually('the retry call of the quick recovery', () =>
    env.retryPosts(quick.id).length === 1 ? true : undefined,
  );
  env.simulator.clock.advance(ATTEMPT_MS);
  const report = await env.recoveries.result(quick.id);

  expect(report.outcome).toBe('recovered');
  expect(env.retryPosts(quick.id)).toHaveLength(1);
  // Woken from the list both times: the quick recovery read nothing of its batch but the round's snapshot.
  expect(env.simulator.ledger.forBatch(quick.id).calls.filter((call) => call.endpoint === STATUS)).toHaveLength(1);
  expect(patchMarkerIds(await poller.fetchHistory())).toContain('poller-rest-shortened-by-new-watch');
  // The shortened rest's cycles may have woken it too: it may have ended.
  await env.recoveries
    .handle(hourly.id)
    .terminate('test finished')
    .catch((err: unknown) => {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
    });
}, 90_000);

test('a poll interval changed while the recovery waits for the poller reaches the poller at once', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
  await env.recoveries.start({ batchId: batch.id, ...polledEvery('1h') });
  const poller = await pollerResting();
  // The maximum stays an hour: no re-registration every 15 maximum intervals comes within the test.
  await env.recoveries.updatePolicy(batch.id, { poll: { initialInterval: '500ms' } });
  env.simulator.clock.advance(ATTEMPT_MS);
  // Before, the poller kept the hourly interval the wait registered: nothing was read for the hour.
  await eventually('the retry call', () => (env.retryPosts(batch.id).length === 1 ? true : undefined));
  env.simulator.clock.advance(ATTEMPT_MS);
  const report = await env.recoveries.result(batch.id);

  expect(report.outcome).toBe('recovered');
  expect(env.retryPosts(batch.id)).toHaveLength(1);
  // Told as the same wait, so the poller kept its cycle, with the new interval.
  const [first, changed] = registrationsIn(await poller.fetchHistory()).filter((r) => r.batchId === batch.id);
  expect([first?.pollIntervalMs, changed?.pollIntervalMs]).toEqual([3_600_000, 500]);
  expect(changed?.waitStartedAt).toBe(first?.waitStartedAt);
  expect(env.simulator.ledger.forBatch(batch.id).calls.filter((call) => call.endpoint === STATUS)).toHaveLength(1);
  const history = await env.recoveries.handle(batch.id).fetchHistory();
  expect(patchMarkerIds(history)).toContain('recovery-poll-change-registers');
  // The first wait's two registrations, and the wait after the round's.
  expect(pollerRegistrations(history)).toHaveLength(3);
}, 90_000);

test("a poll's maximum lowered while the recovery waits for the poller brings its re-registration down with it", async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
  const policy = { ...FAST_POLICY, poll: { initialInterval: '200ms', backoffCoefficient: 1, maximumInterval: '1h' } };
  await env.recoveries.start({ batchId: batch.id, ...policy });
  const handle = env.recoveries.handle(batch.id);
  try {
    const timers = async () =>
      ((await handle.fetchHistory()).events ?? []).flatMap((event) => {
        const started = event.timerStartedEventAttributes;
        return started ? [{ id: started.timerId, seconds: Number(started.startToFireTimeout?.seconds ?? 0) }] : [];
      });
    // Registered, then waiting 15 maximum intervals less up to a quarter: at least 11.25 h.
    const [rewatch] = await eventually('the wait for the poller', async () => {
      const started = await timers();
      return started.length > 0 ? started : undefined;
    });
    expect(rewatch!.seconds).toBeGreaterThanOrEqual(40_500);

    await env.recoveries.updatePolicy(batch.id, { poll: { maximumInterval: '1s' } });
    // Before, the 11.25–15 h timer stayed: a poller that lost its watches learnt this one back only then.
    const sooner = await eventually('a re-registration timer of the new maximum', async () =>
      (await timers()).find((timer) => timer.seconds <= 15),
    );
    expect(sooner.id).not.toBe(rewatch!.id);
    const history = await handle.fetchHistory();
    expect(patchMarkerIds(history)).toContain('recovery-lowered-poll-maximum-registers');
    const cancelled = (history.events ?? []).map((event) => event.timerCanceledEventAttributes?.timerId);
    expect(cancelled).toContain(rewatch!.id);
    expect(pollerRegistrations(history).length).toBeGreaterThanOrEqual(2);
    // The same wait at the same interval: a signal, if the check sent one, leaves the poller's cycle as it was.
    const poller = env.client.workflow.getHandle(batchStatusPollerWorkflowId(env.taskQueue));
    const signalled = registrationsIn(await poller.fetchHistory()).filter((r) => r.batchId === batch.id);
    expect(new Set(signalled.map((r) => `${r.waitStartedAt} ${r.pollIntervalMs}`)).size).toBe(1);
    expect(signalled[0]?.pollIntervalMs).toBe(200);
  } finally {
    await handle.terminate('test finished');
  }
}, 90_000);

test('a page that lists no batch ends the list, whatever total_pages says: a batch it does not show is handed back', async () => {
  // The API's clock runs 10 min ahead: the batch is dated after the cycle's created_before, so no page shows it.
  env.simulator.clock.advance(600_000);
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
  env.simulator.faults.add('list', { type: 'mistyped_field', field: 'data.pagination.total_pages', value: 100_000 });
  await env.recoveries.start({ batchId: batch.id, ...polledEvery('1s') });
  const ownRead = await eventually('the recovery to read its batch itself', () =>
    env.simulator.ledger.forBatch(batch.id).calls.find((call) => call.endpoint === STATUS),
  );
  const listCalls = env.simulator.ledger
    .all()
    .calls.filter((call) => call.endpoint === LIST && call.receivedAtMs < ownRead.receivedAtMs);

  // Page 1 listed nothing, and its cycle ended there; before, it went on to the 100,000 pages claimed.
  expect(listCalls.map((call) => new URL(call.path, 'http://list').searchParams.get('page'))).toEqual(['1']);
  await env.recoveries.handle(batch.id).terminate('test finished');
});
