import proto from '@temporalio/proto';
import { startBatchStatusPoller } from '../../worker/create-worker.js';
import { batchStatusPollerWorkflowId } from '../../workflows/definitions.js';
import {
  eventually,
  FAST_POLICY,
  patchMarkerIds,
  pollerRegistrations,
  startRecoveryEnv,
  type RecoveryEnv,
} from '../helpers/recovery-env.js';

const { EventType } = proto.temporal.api.enums.v1;

let env: RecoveryEnv;

/** A session attempt takes a minute of the simulator's clock: a batch settles only when a test moves it on. */
const ATTEMPT_MS = 60_000;

beforeAll(async () => {
  env = await startRecoveryEnv({ attemptDurationMs: ATTEMPT_MS, queueDelayMs: 0 });
  await env.startPollerWorker();
});
afterAll(() => env.close());

/** Registrations with the poller are sent again after 15 poll maximum intervals: 3 s here. */
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

test('a recovery that registers again more often than a cycle walks its pages is still woken by a cycle', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
  await env.recoveries.start({ batchId: batch.id, ...POLICY });
  const registrations = async () => pollerRegistrations({ events: await eventsOf(batch.id) }).length;
  await eventually('the recovery to register with the poller', async () =>
    (await registrations()) > 0 ? true : undefined,
  );
  // Every list call now takes 4 s: longer than the recovery's 3 s between registrations.
  env.simulator.faults.add('list', { type: 'latency', latencyMs: 4_000 });
  try {
    env.simulator.clock.advance(ATTEMPT_MS);
    await eventually('the retry call', () => (env.retryPosts(batch.id).length === 1 ? true : undefined), 60_000);
  } finally {
    env.simulator.faults.clear('list');
  }
  env.simulator.clock.advance(ATTEMPT_MS);
  expect((await env.recoveries.result(batch.id)).outcome).toBe('recovered');

  // It registered again while the slow cycles ran, and those registrations kept its watch's cycle.
  expect(await registrations()).toBeGreaterThanOrEqual(3);
  const poller = await env.client.workflow.getHandle(batchStatusPollerWorkflowId(env.taskQueue)).fetchHistory();
  expect(patchMarkerIds(poller)).toEqual(['poller-rewatch-keeps-cycle']);
}, 120_000);

test('the deadline ends a wait for the poller with a report', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 2, script: { '0': 'always-fail' } });
  await env.recoveries.start({ batchId: batch.id, ...POLICY, deadline: '2s' });
  const report = await env.recoveries.result(batch.id);

  expect(report.outcome).toBe('deadline');
  expect(env.retryPosts(batch.id)).toHaveLength(0);
  const events = await eventsOf(batch.id);
  // The wait ended at the deadline, sooner than the 3 s re-registration: the recovery registered once.
  expect(pollerRegistrations({ events })).toHaveLength(1);
});

test("an operator's cancel ends a wait for the poller with a report, and cancels the wait's timer", async () => {
  const batch = env.simulator.createScriptedBatch({ count: 2, script: { '0': 'always-fail' } });
  await env.recoveries.start({ batchId: batch.id, ...POLICY });
  await eventually('the recovery to wait for the poller', async () =>
    count(await eventsOf(batch.id), EventType.EVENT_TYPE_TIMER_STARTED) === 1 ? true : undefined,
  );
  await env.recoveries.cancel(batch.id);
  const report = await env.recoveries.result(batch.id);

  expect(report.outcome).toBe('operator_cancelled');
  expect(env.retryPosts(batch.id)).toHaveLength(0);
  const events = await eventsOf(batch.id);
  expect(count(events, EventType.EVENT_TYPE_TIMER_CANCELED)).toBe(1);
  expect(count(events, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED)).toBe(1);
});
