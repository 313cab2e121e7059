import type { WorkflowHandle } from '@temporalio/client';
import proto, { type temporal } from '@temporalio/proto';
import { RecoveryFailedError } from '../../client/recoveries.js';
import {
  batchSettled,
  batchStatusPollerWorkflowId,
  isWatchingBatch,
  watchBatch,
  type WatchBatchRequest,
} from '../../workflows/definitions.js';
import {
  CARRIED_WAIT_TAKES_EARLY_WAKE_PATCH,
  UNWATCH_AT_END_PATCH,
  UNWATCH_CARRIED_WATCH_PATCH,
} from '../../workflows/recover-batch.js';
import { recoveryStartOptions } from '../../workflows/recovery-start.js';
import { newReport } from '../../workflows/report.js';
import {
  eventually,
  idlePollerHistory,
  FAST_POLICY,
  localActivityMarkers,
  patchMarkerIds,
  pollerRegistrations,
  registrationsIn,
  startRecoveryEnv,
  unwatchesIn,
  type RecoveryEnv,
  PRODUCT_API_TIMEOUT,
} from '../helpers/recovery-env.js';

// A recovery that continues as new while it waits for the poller carries the wait the poller watches: the next run
// goes on with it, and one that ends before it registers again tells the poller to drop that watch. Before, the next
// run began a wait of its own, and one that ended first left the previous run's watch with the poller, which read the
// list for it until the batch settled.

/** A session attempt takes a minute of the simulator's clock, which no test moves: every batch stays in flight. */
const ATTEMPT_MS = 60_000;

let env: RecoveryEnv;

beforeEach(async () => {
  env = await startRecoveryEnv({ attemptDurationMs: ATTEMPT_MS, queueDelayMs: 0 });
  await env.startPollerWorker(PRODUCT_API_TIMEOUT);
});
afterEach(() => env.close());

const poller = () => env.client.workflow.getHandle(batchStatusPollerWorkflowId(env.taskQueue));
const watching = (request: Omit<WatchBatchRequest, 'pollIntervalMs'>) => poller().query(isWatchingBatch, request);

const { EventType } = proto.temporal.api.enums.v1;
const countOf = (events: temporal.api.history.v1.IHistoryEvent[], type: temporal.api.enums.v1.EventType) =>
  events.filter((event) => event.eventType === type).length;
const listCalls = () => env.simulator.ledger.all().calls.filter((call) => call.endpoint === 'GET /v1/batch-sessions');

/** Whether a workflow task has completed since the workflow's last signal of that name: the signal was handled. */
async function signalHandled(handle: WorkflowHandle, signalName: string): Promise<true | undefined> {
  const events = (await handle.fetchHistory()).events ?? [];
  const signalledAt = events
    .map((event) => event.workflowExecutionSignaledEventAttributes?.signalName)
    .lastIndexOf(signalName);
  return signalledAt >= 0 && events.slice(signalledAt).some((event) => event.workflowTaskCompletedEventAttributes)
    ? true
    : undefined;
}

/** The wait a run registered a minute ago before it continued as new, watched by the poller, which reads every 50 ms. */
async function watchedByPoller(batchId: string, workflowId: string) {
  const wait = { batchId, workflowId, waitStartedAt: new Date(Date.now() - 60_000).toISOString() };
  await eventually('the poller to run', () =>
    poller()
      .describe()
      .then(() => true)
      .catch(() => undefined),
  );
  await poller().signal(watchBatch, { ...wait, pollIntervalMs: 50 });
  return wait;
}

test('a continued run that reaches its deadline before it registers again has the poller drop the watch it carried', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 2, pending_phase: { ms: 600_000 } });
  const options = recoveryStartOptions({ batchId: batch.id, ...FAST_POLICY }, env.taskQueue);
  const { workflowId } = options;
  // The run before registered this wait, then continued as new; the deadline has passed when the next run begins.
  const wait = await watchedByPoller(batch.id, workflowId);
  await eventually('the registration taken', () => signalHandled(poller(), 'watchBatch'));
  expect(await watching(wait)).toBe(true);
  const report = newReport(batch.id, workflowId, new Date(Date.now() - 120_000), new Date(Date.now() - 1_000), 3);
  report.continuedAsNew = 1;

  await env.client.workflow.start('recoverBatch', {
    ...options,
    args: [options.args[0], { report, pollerWaitStartedAt: wait.waitStartedAt }],
  });
  const ended = await env.recoveries.result(batch.id);
  const history = await env.recoveries.handle(batch.id).fetchHistory();

  expect(ended.outcome).toBe('deadline');
  expect(pollerRegistrations(history)).toHaveLength(0);
  // Before, no unwatch, and the poller went on watching (and reading the list for) the ended recovery.
  expect(localActivityMarkers(history, 'unwatchBatchWithPoller')).toHaveLength(1);
  expect(patchMarkerIds(history)).toContain(UNWATCH_CARRIED_WATCH_PATCH);
  expect(patchMarkerIds(history)).not.toContain(UNWATCH_AT_END_PATCH);
  await eventually('the unwatch taken', () => signalHandled(poller(), 'unwatchBatches'));
  expect(unwatchesIn(await poller().fetchHistory())).toEqual([wait]);
  expect(await watching(wait)).toBe(false);
});

test('a continued run whose input this release refuses has the poller drop the watch it carried', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 2, pending_phase: { ms: 600_000 } });
  const options = recoveryStartOptions({ batchId: batch.id, ...FAST_POLICY }, env.taskQueue);
  const { workflowId } = options;
  // The run before registered this wait, then continued as new; the poller reads the list for it every 50 ms.
  const wait = await watchedByPoller(batch.id, workflowId);
  await eventually('a list call', () => (listCalls().length > 0 ? true : undefined));
  expect(await watching(wait)).toBe(true);
  const report = newReport(batch.id, workflowId, new Date(Date.now() - 120_000), new Date(Date.now() + 3_600_000), 3);
  report.continuedAsNew = 1;

  // An input a newer release's bounds refuse (no current bound was ever tightened, so an out-of-range value plays it).
  await env.client.workflow.start('recoverBatch', {
    ...options,
    args: [
      { ...options.args[0], maxRounds: 0 },
      { report, pollerWaitStartedAt: wait.waitStartedAt },
    ],
  });
  const failure = await env.recoveries.result(batch.id).catch((err: unknown) => err);
  const history = await env.recoveries.handle(batch.id).fetchHistory();

  expect(failure).toBeInstanceOf(RecoveryFailedError);
  expect((failure as RecoveryFailedError).report?.failure?.type).toBe('InvalidRecoveryInput');
  // Before, no unwatch, and the poller went on watching (and reading the list for) the stopped recovery.
  expect(localActivityMarkers(history, 'unwatchBatchWithPoller')).toHaveLength(1);
  expect(patchMarkerIds(history)).toContain(UNWATCH_CARRIED_WATCH_PATCH);
  const events = await idlePollerHistory(poller());
  expect(unwatchesIn({ events })).toEqual([wait]);
  expect(await watching(wait)).toBe(false);
  const unwatchedAt = events.findIndex(
    (event) => event.workflowExecutionSignaledEventAttributes?.signalName === 'unwatchBatches',
  );
  // The read out when the unwatch came (if one was) finished; none began after it, and every list call was a read.
  expect(countOf(events.slice(unwatchedAt), EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)).toBe(0);
  expect(listCalls()).toHaveLength(countOf(events, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED));
});

test('a run continued as new in its wait for the poller goes on with the same wait: a cancel then drops its watch', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 2, pending_phase: { ms: 600_000 } });
  // Registered again every 15 poll intervals (under 1.5 s), so the history is due within seconds.
  const poll = { initialInterval: '100ms', backoffCoefficient: 1, maximumInterval: '100ms' };
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY, poll, continueAsNewAfterEvents: 50 });
  const handle = env.recoveries.handle(batch.id);
  const firstRunId = (await handle.describe()).runId;
  // About 10 s on a quiet machine.
  await eventually(
    'a continued run to register',
    async () => {
      const { runId } = await handle.describe();
      if (runId === firstRunId) return undefined;
      const history = await env.client.workflow.getHandle(handle.workflowId, runId).fetchHistory();
      return pollerRegistrations(history).length > 0 ? true : undefined;
    },
    75_000,
  );
  const registrations = await eventually('its registration taken', async () => {
    const taken = registrationsIn(await poller().fetchHistory()).filter((request) => request.batchId === batch.id);
    // Each run's first registration is signalled, and so is one sent again while the poller is new.
    return taken.length >= 2 ? taken : undefined;
  });

  // Before, the continued run began a wait of its own (a later waitStartedAt), and the poller a new cycle for it.
  expect(new Set(registrations.map((request) => request.waitStartedAt)).size).toBe(1);
  const [{ workflowId, waitStartedAt }] = registrations as [WatchBatchRequest, ...WatchBatchRequest[]];
  const wait = { batchId: batch.id, workflowId, waitStartedAt: waitStartedAt! };
  expect(await watching(wait)).toBe(true);

  await env.recoveries.cancel(batch.id);
  expect((await env.recoveries.result(batch.id)).outcome).toBe('operator_cancelled');
  await eventually('the unwatch taken', () => signalHandled(poller(), 'unwatchBatches'));
  expect(unwatchesIn(await poller().fetchHistory())).toEqual([wait]);
  expect(await watching(wait)).toBe(false);
}, 120_000);

test('signals during a wait for the poller continue it as new once its history is due: the next run waits on', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 2, pending_phase: { ms: 600_000 } });
  // Registered again only every 15 minutes: nothing but the signals below grows the history.
  const poll = { initialInterval: '1m', backoffCoefficient: 1, maximumInterval: '1m' };
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY, poll, continueAsNewAfterEvents: 50 });
  const handle = env.recoveries.handle(batch.id);
  // Read from histories: a report asked before the first workflow task has run has nothing to say.
  await eventually('the recovery to wait for the poller', async () =>
    registrationsIn(await poller().fetchHistory()).some((request) => request.batchId === batch.id) ? true : undefined,
  );
  const firstRunId = (await handle.describe()).runId;

  // A resume of a recovery not paused wakes the wait and changes nothing else. Before, the wait went on in the same run
  // until its next registration: an automation steering it could grow its history to the server's limits.
  await eventually(
    'the wait to continue as new',
    async () => {
      await env.recoveries.resume(batch.id);
      return (await handle.describe()).runId !== firstRunId ? true : undefined;
    },
    60_000,
  );
  // Until the next run's first workflow task has run, it has no report to give.
  const next = await eventually('the next run to wait for the poller', async () => {
    const report = await env.recoveries.report(batch.id).catch(() => undefined);
    return report?.continuedAsNew === 1 && report.phase === 'waiting_for_batch' ? report : undefined;
  });
  expect(next.rounds).toEqual([]);
  expect(env.simulator.ledger.forBatch(batch.id).retries).toEqual([]);

  await env.recoveries.cancel(batch.id);
  expect((await env.recoveries.result(batch.id)).outcome).toBe('operator_cancelled');
}, 120_000);

test('a wake that reaches a continued run before it goes on with its wait for the poller is taken', async () => {
  // Listed as settled, though the simulator keeps it in flight: only the wake can end the wait before the deadline.
  const batch = env.simulator.createScriptedBatch({ count: 2, pending_phase: { ms: 600_000 } });
  const options = recoveryStartOptions({ batchId: batch.id, ...FAST_POLICY }, env.taskQueue);
  const now = Date.now();
  const report = newReport(batch.id, options.workflowId, new Date(now - 60_000), new Date(now + 20_000), 3);
  report.continuedAsNew = 1;
  const listed = {
    status: 'completed' as const,
    total: 2,
    completed: 2,
    failed: 0,
    observedAt: new Date().toISOString(),
  };

  // The poller woke the wait as the run before continued as new: the wake is in the next run's first workflow task.
  await env.client.workflow.signalWithStart('recoverBatch', {
    ...options,
    args: [options.args[0], { report, pollerWaitStartedAt: new Date(now - 30_000).toISOString() }],
    signal: batchSettled,
    signalArgs: [listed],
  });
  const ended = await env.recoveries.result(batch.id);
  const history = await env.recoveries.handle(batch.id).fetchHistory();

  // Before, the wait forgot the wake and registered again; the poller, whose list the batch is in flight in, never
  // woke it, and the recovery ended `deadline`.
  expect(ended.outcome).toBe('clean');
  expect(ended.batch).toMatchObject(listed);
  expect(pollerRegistrations(history)).toHaveLength(0);
  expect(localActivityMarkers(history, 'unwatchBatchWithPoller')).toHaveLength(0);
  expect(patchMarkerIds(history)).toContain(CARRIED_WAIT_TAKES_EARLY_WAKE_PATCH);
});
