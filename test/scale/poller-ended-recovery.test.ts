import proto, { type temporal } from '@temporalio/proto';
import { batchStatusPollerWorkflowId, isWatchingBatch, unwatchBatch } from '../../workflows/definitions.js';
import { UNWATCH_AT_END_PATCH } from '../../workflows/recover-batch.js';
import {
  eventually,
  idlePollerHistory,
  FAST_POLICY,
  localActivityMarkers,
  patchMarkerIds,
  registrationsIn,
  startRecoveryEnv,
  unwatchesIn,
  type RecoveryEnv,
  PRODUCT_API_TIMEOUT,
} from '../helpers/recovery-env.js';

// A recovery that ends while its batch is in flight (an operator's cancel, its deadline) tells the poller to drop its
// watch. Before, the watch stayed until the batch settled or left the list, and the poller read the list for the
// ended recovery a cycle every poll interval meanwhile (here about one a second: 20 list calls in 20.2–20.5 s after
// the end), then woke it (a signal the server refused as not found) once the batch settled.

const { EventType } = proto.temporal.api.enums.v1;

/** A session attempt takes a minute of the simulator's clock, which no test moves: every batch stays in flight. */
const ATTEMPT_MS = 60_000;

let env: RecoveryEnv;

// A simulator of its own for each test, so its list calls are the test's.
beforeEach(async () => {
  env = await startRecoveryEnv({ attemptDurationMs: ATTEMPT_MS, queueDelayMs: 0 });
  await env.startPollerWorker(PRODUCT_API_TIMEOUT);
});
afterEach(() => env.close());

/** Read every 200 ms: before, that many list calls a second for the ended recovery. No re-registration meanwhile. */
const POLICY = { ...FAST_POLICY, poll: { initialInterval: '200ms', backoffCoefficient: 1, maximumInterval: '10s' } };

const poller = () => env.client.workflow.getHandle(batchStatusPollerWorkflowId(env.taskQueue));
const countOf = (events: temporal.api.history.v1.IHistoryEvent[], type: temporal.api.enums.v1.EventType) =>
  events.filter((event) => event.eventType === type).length;
const listCalls = () => env.simulator.ledger.all().calls.filter((call) => call.endpoint === 'GET /v1/batch-sessions');

/** Starts a recovery whose batch stays in flight, and waits until the poller has read the list for it. */
async function recoveryWatchedInFlight(policy: Partial<typeof POLICY> & { deadline?: string } = {}) {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
  await env.recoveries.start({ batchId: batch.id, ...POLICY, ...policy });
  const registration = await eventually('the registration in the poller', async () =>
    registrationsIn(await poller().fetchHistory()).find((request) => request.batchId === batch.id),
  );
  await eventually('a list call', () => (listCalls().length > 0 ? true : undefined));
  return { batchId: batch.id, registration };
}

/** What an ended recovery left with the poller: its history, the poller's idle one, and the reads after the unwatch. */
async function afterEnd(
  batchId: string,
  registration: Awaited<ReturnType<typeof recoveryWatchedInFlight>>['registration'],
) {
  const history = await env.recoveries.handle(batchId).fetchHistory();
  const events = await idlePollerHistory(poller());
  // The recovery's unwatch is the last (an unwatchBatches signal since the worker gathers them; unwatchBatch before).
  const signalNames = events.map((event) => event.workflowExecutionSignaledEventAttributes?.signalName);
  const unwatchedAt = Math.max(signalNames.lastIndexOf('unwatchBatch'), signalNames.lastIndexOf('unwatchBatches'));
  return {
    unwatches: localActivityMarkers(history, 'unwatchBatchWithPoller'),
    recoveryPatches: patchMarkerIds(history),
    unwatchesTaken: unwatchesIn({ events }).length,
    readsAfterUnwatch: countOf(events.slice(unwatchedAt), EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED),
    reads: countOf(events, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED),
    wakes: localActivityMarkers({ events }, 'wakeRecoveries').length,
    pollerPatches: patchMarkerIds({ events }),
    watching: await poller().query(isWatchingBatch, registration),
  };
}

test('a recovery cancelled while its batch is in flight has the poller drop its watch: no list call after the cancel', async () => {
  const { batchId, registration } = await recoveryWatchedInFlight();
  // An unwatch of another wait of the batch leaves the watch: the end of a wait drops only that wait's.
  await poller().signal(unwatchBatch, { batchId, workflowId: registration.workflowId, waitStartedAt: 'earlier' });
  await eventually('the other wait’s unwatch taken', async () => {
    const events = (await poller().fetchHistory()).events ?? [];
    const signalled = events.findIndex(
      (event) => event.workflowExecutionSignaledEventAttributes?.signalName === 'unwatchBatch',
    );
    if (signalled < 0) return undefined;
    return events.slice(signalled).some((event) => event.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
      ? true
      : undefined;
  });
  expect(await poller().query(isWatchingBatch, registration)).toBe(true);

  await env.recoveries.cancel(batchId);
  expect((await env.recoveries.result(batchId)).outcome).toBe('operator_cancelled');
  const ended = await afterEnd(batchId, registration);

  expect(ended.unwatches).toHaveLength(1);
  expect(ended.recoveryPatches).toContain(UNWATCH_AT_END_PATCH);
  // The other wait's, then the recovery's.
  expect(ended.unwatchesTaken).toBe(2);
  expect(ended.watching).toBe(false);
  expect(ended.pollerPatches).toContain('poller-drops-ended-recovery-watch');
  // The read out when the unwatch came (if one was) finished; none began after it, and every list call was a read.
  expect(ended.readsAfterUnwatch).toBe(0);
  expect(listCalls()).toHaveLength(ended.reads);
  expect(ended.wakes).toBe(0);
});

test('a recovery that reaches its deadline while its batch is in flight has the poller drop its watch', async () => {
  const { batchId, registration } = await recoveryWatchedInFlight({ deadline: '3s' });
  expect((await env.recoveries.result(batchId)).outcome).toBe('deadline');
  const ended = await afterEnd(batchId, registration);

  expect(ended.unwatches).toHaveLength(1);
  expect(ended.unwatchesTaken).toBe(1);
  expect(ended.watching).toBe(false);
  expect(ended.readsAfterUnwatch).toBe(0);
  expect(listCalls()).toHaveLength(ended.reads);
  expect(ended.wakes).toBe(0);
});
