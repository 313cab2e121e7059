import proto from '@temporalio/proto';
import { CLOCK_MARGIN_MS } from '../../activities/poller-registration-activities.js';
import { startBatchStatusPoller } from '../../worker/create-worker.js';
import { batchStatusPollerWorkflowId, watchBatch, type WatchBatchRequest } from '../../workflows/definitions.js';
import {
  closedRunHistoryLengths,
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

// A simulator of its own for each test: the tests move its clock on, and a batch created after that would be dated
// later than the poller's cycle start, so no page would show it.
beforeEach(async () => {
  env = await startRecoveryEnv({ attemptDurationMs: ATTEMPT_MS, queueDelayMs: 0 });
  await env.startPollerWorker();
});
afterEach(() => env.close());

/** Registrations with the poller are sent again within 15 poll maximum intervals, in their last quarter: 2.25–3 s here. */
const POLICY = { ...FAST_POLICY, poll: { initialInterval: '200ms', backoffCoefficient: 1, maximumInterval: '200ms' } };

async function eventsOf(batchId: string) {
  return (await env.recoveries.handle(batchId).fetchHistory()).events ?? [];
}

const count = (events: Awaited<ReturnType<typeof eventsOf>>, type: proto.temporal.api.enums.v1.EventType) =>
  events.filter((event) => event.eventType === type).length;

test('a poller that lost its registrations (terminated, started again) learns the batch from the recovery, which registers again when its wait times out', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
  await env.recoveries.start({ batchId: batch.id, ...POLICY });
  await eventually('the recovery to register with the poller', async () =>
    pollerRegistrations({ events: await eventsOf(batch.id) }).length > 0 ? true : undefined,
  );
  const poller = env.client.workflow.getHandle(batchStatusPollerWorkflowId(env.taskQueue));
  await poller.terminate('test: the poller loses its registrations');
  await startBatchStatusPoller(env.client, env.taskQueue);

  // The recovery's wait timer fires and it registers again with the new poller.
  await eventually('the recovery to register again', async () =>
    pollerRegistrations({ events: await eventsOf(batch.id) }).length >= 2 ? true : undefined,
  );
  env.simulator.clock.advance(ATTEMPT_MS);
  await eventually('the retry call', () => (env.retryPosts(batch.id).length === 1 ? true : undefined));
  env.simulator.clock.advance(ATTEMPT_MS);
  expect((await env.recoveries.result(batch.id)).outcome).toBe('recovered');

  const events = await eventsOf(batch.id);
  expect(env.retryPosts(batch.id)).toHaveLength(1);
  // The first wait timed out (the registration went with the old poller) and the recovery registered again.
  expect(count(events, EventType.EVENT_TYPE_TIMER_FIRED)).toBeGreaterThanOrEqual(1);
  expect(pollerRegistrations({ events }).length).toBeGreaterThanOrEqual(3);
});

/** The watchBatch signals in the poller's history (its current run) for `batchId`, in order. */
async function watchSignals(batchId: string): Promise<WatchBatchRequest[]> {
  const poller = await env.client.workflow.getHandle(batchStatusPollerWorkflowId(env.taskQueue)).fetchHistory();
  return registrationsIn(poller).filter((request) => request.batchId === batchId);
}

test('a recovery whose poller was terminated and not started again reads its batch on its own at its next registration', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
  await env.recoveries.start({ batchId: batch.id, ...POLICY });
  await eventually('the recovery to register with the poller', async () =>
    pollerRegistrations({ events: await eventsOf(batch.id) }).length > 0 ? true : undefined,
  );
  // A query would reach the ended run, whose last state still holds the watch: it must not count.
  await env.client.workflow.getHandle(batchStatusPollerWorkflowId(env.taskQueue)).terminate('test: no poller');
  await eventually('the recovery to read its batch itself', async () =>
    (await eventsOf(batch.id)).some(
      (event) => event.activityTaskScheduledEventAttributes?.activityType?.name === 'awaitBatchSettled',
    )
      ? true
      : undefined,
  );
  env.simulator.clock.advance(ATTEMPT_MS);
  await eventually('the retry call', () => (env.retryPosts(batch.id).length === 1 ? true : undefined));
  env.simulator.clock.advance(ATTEMPT_MS);
  expect((await env.recoveries.result(batch.id)).outcome).toBe('recovered');
  expect(env.retryPosts(batch.id)).toHaveLength(1);
});

test('registering again during the same wait costs the poller no event while the chain that took it runs', async () => {
  // Waits begin over the clock margin after the poller's chain began, as they do once a poller has run a while.
  const { startTime } = await env.client.workflow.getHandle(batchStatusPollerWorkflowId(env.taskQueue)).describe();
  await eventually('the clock margin to pass since the poller began', () =>
    Date.now() > startTime.getTime() + CLOCK_MARGIN_MS ? true : undefined,
  );
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
  await env.recoveries.start({ batchId: batch.id, ...POLICY });
  const registrations = async () => pollerRegistrations({ events: await eventsOf(batch.id) }).length;
  await eventually(
    'the recovery to register three times',
    async () => ((await registrations()) >= 3 ? true : undefined),
    30_000,
  );
  env.simulator.clock.advance(ATTEMPT_MS);
  await eventually('the retry call', () => (env.retryPosts(batch.id).length === 1 ? true : undefined));
  env.simulator.clock.advance(ATTEMPT_MS);
  expect((await env.recoveries.result(batch.id)).outcome).toBe('recovered');

  // One signal for each of its two waits; the registrations sent again during the first found the poller's chain
  // that took it still running (the server describes the poller), which is no event in its history.
  expect(await registrations()).toBeGreaterThanOrEqual(4);
  expect(await watchSignals(batch.id)).toHaveLength(2);
  expect(env.retryPosts(batch.id)).toHaveLength(1);
}, 60_000);

test("registrations signalled again during the same wait (by an older worker) keep the watch's cycle, so slow cycles still wake it", async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
  await env.recoveries.start({ batchId: batch.id, ...POLICY, poll: { ...POLICY.poll, maximumInterval: '1h' } });
  const [first] = await eventually('the registration', async () => {
    const requests = await watchSignals(batch.id);
    return requests.length > 0 ? requests : undefined;
  });
  const poller = env.client.workflow.getHandle(batchStatusPollerWorkflowId(env.taskQueue));
  // Every list call now takes 4 s, and the registration comes again every second, as a worker from before the
  // query sends it: each moved the watch to the next cycle before 'poller-rewatch-keeps-cycle', so none woke it.
  env.simulator.faults.add('list', { type: 'latency', latencyMs: 4_000 });
  const resend = setInterval(() => void poller.signal(watchBatch, first!).catch(() => undefined), 1_000);
  try {
    env.simulator.clock.advance(ATTEMPT_MS);
    await eventually('the retry call', () => (env.retryPosts(batch.id).length === 1 ? true : undefined), 60_000);
  } finally {
    clearInterval(resend);
    env.simulator.faults.clear('list');
  }
  env.simulator.clock.advance(ATTEMPT_MS);
  expect((await env.recoveries.result(batch.id)).outcome).toBe('recovered');

  expect((await watchSignals(batch.id)).length).toBeGreaterThanOrEqual(3);
  expect(patchMarkerIds(await poller.fetchHistory())).toEqual([
    'poller-wakes-through-local-activity',
    'poller-rest-ends-at-continue-as-new',
    'poller-rest-shortened-by-new-watch',
    'poller-takes-watch-batches',
    'poller-takes-unwatch-batches',
    'poller-rewatch-keeps-cycle',
  ]);
}, 120_000);

test('recoveries started together register again at different points of the last quarter of 15 poll intervals', async () => {
  const batchIds = Array.from(
    { length: 5 },
    () => env.simulator.createScriptedBatch({ count: 2, script: { '0': ['fail', 'ok'] } }).id,
  );
  await Promise.all(batchIds.map((batchId) => env.recoveries.start({ batchId, ...POLICY })));
  // A recovery's first timer is its first wait for the poller: its batch settles only when the clock moves on.
  const waitsMs = await Promise.all(
    batchIds.map((batchId) =>
      eventually(`the wait for the poller of ${batchId}`, async () => {
        const timer = (await eventsOf(batchId)).find((event) => event.eventType === EventType.EVENT_TYPE_TIMER_STARTED);
        const timeout = timer?.timerStartedEventAttributes?.startToFireTimeout;
        return timeout ? Number(timeout.seconds ?? 0) * 1_000 + (timeout.nanos ?? 0) / 1e6 : undefined;
      }),
    ),
  );
  await Promise.all(batchIds.map((batchId) => env.recoveries.cancel(batchId)));

  // 15 × 200 ms = 3 s, less up to a quarter of it.
  for (const waitMs of waitsMs) {
    expect(waitMs).toBeGreaterThanOrEqual(2_250);
    expect(waitMs).toBeLessThanOrEqual(3_000);
  }
  // Without the jitter all five wait exactly 3 s; with it, five equal draws out of 750 have a chance of 750⁻⁴.
  expect(new Set(waitsMs).size).toBeGreaterThan(1);
});

test('the deadline ends a wait for the poller with a report', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 2, script: { '0': 'always-fail' } });
  await env.recoveries.start({ batchId: batch.id, ...POLICY, deadline: '2s' });
  const report = await env.recoveries.result(batch.id);

  expect(report.outcome).toBe('deadline');
  expect(env.retryPosts(batch.id)).toHaveLength(0);
  const events = await eventsOf(batch.id);
  // The wait ended at the deadline, sooner than the re-registration (2.25–3 s): the recovery registered once.
  expect(pollerRegistrations({ events })).toHaveLength(1);
});

test("an operator's cancel ends a wait for the poller with a report, and cancels the wait's timer", async () => {
  const batch = env.simulator.createScriptedBatch({ count: 2, script: { '0': 'always-fail' } });
  await env.recoveries.start({ batchId: batch.id, ...POLICY });
  // At least one: a slow look can come after the wait's timer re-armed for its re-registration.
  await eventually('the recovery to wait for the poller', async () =>
    count(await eventsOf(batch.id), EventType.EVENT_TYPE_TIMER_STARTED) >= 1 ? true : undefined,
  );
  await env.recoveries.cancel(batch.id);
  const report = await env.recoveries.result(batch.id);

  expect(report.outcome).toBe('operator_cancelled');
  expect(env.retryPosts(batch.id)).toHaveLength(0);
  const events = await eventsOf(batch.id);
  expect(count(events, EventType.EVENT_TYPE_TIMER_CANCELED)).toBe(1);
  expect(count(events, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED)).toBe(1);
});

test('a long wait for the poller continues as new once the history is due, so no run grows past its budget', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
  // Each re-registration (every 0.56-0.75 s here) adds a timer, a workflow task and a marker.
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY, continueAsNewAfterEvents: 50 });
  // About 18 s on a quiet machine; CI's parallel files once took past 30 s.
  await eventually(
    'two continues-as-new while the batch runs',
    async () => {
      const report = await env.recoveries.report(batch.id);
      return report.continuedAsNew >= 2 && report.phase === 'waiting_for_batch' ? true : undefined;
    },
    75_000,
  );
  env.simulator.clock.advance(ATTEMPT_MS);
  await eventually('the retry call', () => (env.retryPosts(batch.id).length === 1 ? true : undefined));
  env.simulator.clock.advance(ATTEMPT_MS);
  const report = await env.recoveries.result(batch.id);

  expect(report.outcome).toBe('recovered');
  expect(report.rounds).toEqual([expect.objectContaining({ round: 1, apiStatus: 200 })]);
  expect(env.retryPosts(batch.id)).toHaveLength(1);
  const workflowId = env.recoveries.handle(batch.id).workflowId;
  const lengths = await closedRunHistoryLengths(env.client, workflowId, report.continuedAsNew + 1);
  // The threshold, and what one step of the wait adds before the next check.
  for (const length of lengths) expect(length).toBeLessThanOrEqual(50 + 15);
}, 150_000);
