import proto, { type temporal } from '@temporalio/proto';
import { createPollerRegistrationActivities } from '../../activities/poller-registration-activities.js';
import { MAX_REGISTRATIONS_PER_SIGNAL } from '../../activities/registration-signals.js';
import { MAX_ENDED_WAITS_KEPT } from '../../workflows/batch-status-poller.js';
import { BatchRecoveries } from '../../client/recoveries.js';
import { createRecoveryWorkers, startBatchStatusPoller } from '../../worker/create-worker.js';
import {
  BATCH_STATUS_POLLER_WORKFLOW,
  batchStatusPollerWorkflowId,
  isWatchingBatch,
  POLLER_TAKES_UNWATCH_BATCHES_MEMO_KEY,
  POLLER_TAKES_WATCH_BATCHES_MEMO_KEY,
  recoveryWorkflowId,
  type WatchBatchRequest,
} from '../../workflows/definitions.js';
import {
  eventually,
  FAST_POLICY,
  patchMarkerIds,
  reachesPhase,
  type RecoveryEnv,
  registrationsIn,
  signalInputs,
  startRecoveryEnv,
  unwatchesIn,
  workerConfig,
  workflowBundle,
} from '../helpers/recovery-env.js';
import { connectWorker } from '../helpers/temporal.js';

let env: RecoveryEnv;

beforeAll(async () => {
  env = await startRecoveryEnv();
  await env.startPollerWorker();
});
afterAll(() => env.close());

const { EventType } = proto.temporal.api.enums.v1;
type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

/** The batch ids the poller's history took, in order. */
async function signalledBatchIds(): Promise<string[]> {
  const history = await env.client.workflow.getHandle(batchStatusPollerWorkflowId(env.taskQueue)).fetchHistory();
  return registrationsIn(history).map((request) => request.batchId);
}

test('a registration reaches the poller, and answers true', async () => {
  const activities = createPollerRegistrationActivities(env.client);
  const registered = await activities.watchBatchWithPoller({
    taskQueue: env.taskQueue,
    batchId: 'registered-batch',
    workflowId: recoveryWorkflowId('registered-batch'),
    // Short, as the poller rests the shortest interval among its watches between cycles, and tests after this
    // one need cycles; the list does not show this batch, so the next cycle hands it back and drops it.
    pollIntervalMs: 200,
  });

  expect(registered).toBe(true);
  expect(
    await eventually('the signal in the poller history', async () => {
      const batchIds = await signalledBatchIds();
      return batchIds.length > 0 ? batchIds : undefined;
    }),
  ).toEqual(['registered-batch']);
});

test('with no poller on the queue, a registration answers false', async () => {
  const activities = createPollerRegistrationActivities(env.client);
  const registered = await activities.watchBatchWithPoller({
    taskQueue: `${env.taskQueue}-without-poller`,
    batchId: 'no-poller',
    workflowId: recoveryWorkflowId('no-poller'),
    pollIntervalMs: 60_000,
  });

  expect(registered).toBe(false);
});

test("a wake reaches the recovery as the poller's batchSettled signal; a recovery that has ended is not reported unsent", async () => {
  // Backing off for an hour: the wake is recorded, and no wait of the recovery's own ends meanwhile.
  const batch = env.simulator.createScriptedBatch({ count: 2, script: { '0': 'always-fail' } });
  await env.recoveries.start({
    batchId: batch.id,
    ...FAST_POLICY,
    roundBackoff: { initialInterval: '1h', maximumInterval: '1h' },
  });
  const handle = env.recoveries.handle(batch.id);
  try {
    await reachesPhase(env.recoveries, batch.id, 'backing_off');
    const listed = { status: 'failed' as const, total: 2, completed: 1, failed: 1, observedAt: 'the test wake' };
    const activities = createPollerRegistrationActivities(env.client);
    const unsent = await activities.wakeRecoveries([
      { workflowId: recoveryWorkflowId(batch.id), listed },
      { workflowId: recoveryWorkflowId('no-such-batch') },
    ]);

    expect(unsent).toEqual([]);
    // A signal that arrives while a workflow task is open (the recovery's own local activities keep one open) is
    // buffered by the server and written to history only when that task completes.
    const wakes = await eventually('the wake in the recovery history', async () => {
      const recorded = signalInputs<{ observedAt?: string }>(await handle.fetchHistory(), 'batchSettled').filter(
        (wake) => wake.observedAt === listed.observedAt,
      );
      return recorded.length > 0 ? recorded : undefined;
    });
    expect(wakes).toEqual([listed]);
  } finally {
    await handle.terminate('test done');
  }
});

/** The name and batch ids of each registration signal (or unwatch signal) in a history, in order. */
function registrationSignals(history: temporal.api.history.v1.IHistory, kind: 'watch' | 'unwatch' = 'watch') {
  const requestsIn = kind === 'watch' ? registrationsIn : unwatchesIn;
  return (history.events ?? []).flatMap((event) => {
    const signal = event.workflowExecutionSignaledEventAttributes;
    if (!signal?.signalName?.startsWith(`${kind}Batch`)) return [];
    // Signals typed by hand in the tests may carry anything, null included.
    const batchIds = requestsIn({ events: [event] }).flatMap((taken: { batchId?: unknown } | null) =>
      typeof taken?.batchId === 'string' ? [taken.batchId] : [],
    );
    return [{ name: signal.signalName, batchIds }];
  });
}

/**
 * Checks that a worker sent 120 registrations (or unwatches) as two list signals, of 100 and then 20, in the order
 * they came; answers, once the poller has taken them all, whether it watches each batch.
 */
async function sentAsTwoSignals(requests: readonly WatchBatchRequest[], kind: 'watch' | 'unwatch') {
  const poller = env.client.workflow.getHandle(batchStatusPollerWorkflowId(env.taskQueue));
  const ours = new Set(requests.map((request) => request.batchId));
  // A signal that comes while the poller's workflow task runs is written to history once the task completes.
  const signals = await eventually(`every ${kind} in the poller history`, async () => {
    const recorded = registrationSignals(await poller.fetchHistory(), kind).filter(({ batchIds }) =>
      batchIds.some((batchId) => ours.has(batchId)),
    );
    return recorded.flatMap(({ batchIds }) => batchIds).length >= ours.size ? recorded : undefined;
  });
  expect(signals.map(({ name, batchIds }) => `${name} of ${batchIds.length}`)).toEqual([
    `${kind}Batches of ${MAX_REGISTRATIONS_PER_SIGNAL}`,
    `${kind}Batches of 20`,
  ]);
  expect(signals.flatMap(({ batchIds }) => batchIds)).toEqual(requests.map((request) => request.batchId));
  return Promise.all(requests.map((request) => poller.query(isWatchingBatch, request)));
}

/** The queue's poller, once its memo says it takes a list signal (written in its first workflow task). */
async function pollerThatSays(memoKey: string) {
  const poller = env.client.workflow.getHandle(batchStatusPollerWorkflowId(env.taskQueue));
  await eventually(`the poller's memo to say ${memoKey}`, async () =>
    (await poller.describe()).memo?.[memoKey] === true ? true : undefined,
  );
  return poller;
}

/** The poller's tasks all completed: none failed on what the test sent it, and it runs on. */
async function expectPollerUnharmed() {
  const poller = env.client.workflow.getHandle(batchStatusPollerWorkflowId(env.taskQueue));
  const types = (await poller.fetchHistory()).events?.map((event) => event.eventType);
  expect(types).not.toContain(EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED);
  expect((await poller.describe()).status.name).toBe('RUNNING');
}

/** A poller run on a queue no worker polls: it keeps the memo it starts with, as a run of older code wrote it. */
function startUnpolledPoller(taskQueue: string, memo?: Record<string, unknown>) {
  return env.client.workflow.start(BATCH_STATUS_POLLER_WORKFLOW, {
    taskQueue,
    workflowId: batchStatusPollerWorkflowId(taskQueue),
    ...(memo && { memo }),
  });
}

/** The unwatch of a registration's wait, as a recovery that ended sends it. */
const unwatchOf = ({ batchId, workflowId, waitStartedAt }: WatchBatchRequest) => ({
  taskQueue: env.taskQueue,
  batchId,
  workflowId,
  waitStartedAt: waitStartedAt!,
});

/** Registrations of one wait for batches the list shows pending for ten minutes: the poller keeps watching them. */
function pendingRegistrations(count: number): WatchBatchRequest[] {
  const waitStartedAt = new Date().toISOString();
  return Array.from({ length: count }, () => {
    const { id } = env.simulator.createScriptedBatch({ count: 1, pending_phase: { ms: 600_000 } });
    return { batchId: id, workflowId: recoveryWorkflowId(id), pollIntervalMs: 60_000, waitStartedAt };
  });
}

test("a worker's registrations of one window reach the poller as one watchBatches signal, and each is watched", async () => {
  await pollerThatSays(POLLER_TAKES_WATCH_BATCHES_MEMO_KEY);
  // More than one signal holds: the registrations past the first signal's bound go in a second one.
  const requests = pendingRegistrations(MAX_REGISTRATIONS_PER_SIGNAL + 20);
  const activities = createPollerRegistrationActivities(env.client);

  const registered = await Promise.all(
    requests.map((request) => activities.watchBatchWithPoller({ taskQueue: env.taskQueue, ...request })),
  );

  expect(registered.every((answer) => answer)).toBe(true);
  const watching = await sentAsTwoSignals(requests, 'watch');
  expect(watching.every((answer) => answer)).toBe(true);
});

test('registration signals typed by hand with malformed registrations fail no task; the well-formed ones are taken', async () => {
  const poller = env.client.workflow.getHandle(batchStatusPollerWorkflowId(env.taskQueue));
  const [request] = pendingRegistrations(1);

  await poller.signal('watchBatch', null);
  await poller.signal('watchBatches', 'not a list');
  await poller.signal('watchBatches', [{ batchId: 7 }, null, { ...request, pollIntervalMs: -1 }, request]);

  await eventually('the well-formed registration to be watched', async () =>
    (await poller.query(isWatchingBatch, request!)) ? true : undefined,
  );
  await expectPollerUnharmed();
});

test('to a poller run that does not say it takes watchBatches (older code), each registration goes as a watchBatch signal', async () => {
  const taskQueue = `${env.taskQueue}-older-poller`;
  // The run never writes its memo, as a run of code from before watchBatches would not.
  const older = await startUnpolledPoller(taskQueue);
  try {
    const activities = createPollerRegistrationActivities(env.client);
    const batchIds = ['older-1', 'older-2', 'older-3'];

    const registered = await Promise.all(
      batchIds.map((batchId) =>
        activities.watchBatchWithPoller({
          taskQueue,
          batchId,
          workflowId: recoveryWorkflowId(batchId),
          pollIntervalMs: 60_000,
        }),
      ),
    );

    expect(registered).toEqual([true, true, true]);
    const signals = registrationSignals(await older.fetchHistory());
    expect(signals.map(({ name }) => name)).toEqual(['watchBatch', 'watchBatch', 'watchBatch']);
    expect(signals.flatMap((signal) => signal.batchIds).sort()).toEqual(batchIds);
  } finally {
    await older.terminate('test done');
  }
});

test("a worker's unwatches of one window reach the poller as one unwatchBatches signal, and each watch is dropped", async () => {
  const poller = await pollerThatSays(POLLER_TAKES_UNWATCH_BATCHES_MEMO_KEY);
  const requests = pendingRegistrations(MAX_REGISTRATIONS_PER_SIGNAL + 20);
  const activities = createPollerRegistrationActivities(env.client);
  await Promise.all(
    requests.map((request) => activities.watchBatchWithPoller({ taskQueue: env.taskQueue, ...request })),
  );
  await eventually('every registration watched', async () => {
    const answers = await Promise.all(requests.map((request) => poller.query(isWatchingBatch, request)));
    return answers.every(Boolean) ? true : undefined;
  });

  // As many recoveries ending together (a sweep's, at their deadline): before, one unwatchBatch signal each.
  await Promise.all(requests.map((request) => activities.unwatchBatchWithPoller(unwatchOf(request))));

  const watching = await sentAsTwoSignals(requests, 'unwatch');
  expect(watching.some((answer) => answer)).toBe(false);
});

test("a recovery's unwatch sent as its registration is still out goes after it: the watch is dropped", async () => {
  const poller = await pollerThatSays(POLLER_TAKES_UNWATCH_BATCHES_MEMO_KEY);
  const [request] = pendingRegistrations(1) as [WatchBatchRequest];
  const activities = createPollerRegistrationActivities(env.client);

  // A cancel that ends the recovery while its registration waits for the worker's next signal.
  const registered = activities.watchBatchWithPoller({ taskQueue: env.taskQueue, ...request });
  await activities.unwatchBatchWithPoller(unwatchOf(request));

  expect(await registered).toBe(true);
  const carries = (requestsIn: typeof unwatchesIn | typeof registrationsIn, event: HistoryEvent) =>
    // Signals typed by hand in the tests may carry anything, null included.
    requestsIn({ events: [event] }).some((taken: { batchId?: unknown } | null) => taken?.batchId === request.batchId);
  // A signal is in history once the workflow task that takes it completes.
  const events = await eventually('the unwatch taken', async () => {
    const recorded = (await poller.fetchHistory()).events ?? [];
    const at = recorded.findIndex((event) => carries(unwatchesIn, event));
    return at >= 0 && recorded.slice(at).some((event) => event.workflowTaskCompletedEventAttributes)
      ? recorded
      : undefined;
  });
  const watchedAt = events.findIndex((event) => carries(registrationsIn, event));
  const unwatchedAt = events.findIndex((event) => carries(unwatchesIn, event));
  // Before, the unwatch went at once, ahead of the registration, found no watch to drop, and the watch stayed.
  expect(watchedAt).toBeGreaterThanOrEqual(0);
  expect(watchedAt).toBeLessThan(unwatchedAt);
  expect(
    [watchedAt, unwatchedAt].map((at) => events[at]?.workflowExecutionSignaledEventAttributes?.signalName),
  ).toEqual(['watchBatches', 'unwatchBatches']);
  expect(await poller.query(isWatchingBatch, request)).toBe(false);
});

test("a registration that reaches the poller after its wait's unwatch (another worker's) is left out; a new wait's is taken", async () => {
  const poller = await pollerThatSays(POLLER_TAKES_UNWATCH_BATCHES_MEMO_KEY);
  const [request] = pendingRegistrations(1) as [WatchBatchRequest];
  // Two workers' queues: the recovery's end ran on one, its registration (sent again after the chain check) on the
  // other, so nothing orders the two.
  const registeringWorker = createPollerRegistrationActivities(env.client);
  const endingWorker = createPollerRegistrationActivities(env.client);

  await endingWorker.unwatchBatchWithPoller(unwatchOf(request));
  expect(await registeringWorker.watchBatchWithPoller({ taskQueue: env.taskQueue, ...request })).toBe(true);

  const events = await eventually('the registration taken', async () => {
    const recorded = (await poller.fetchHistory()).events ?? [];
    const at = recorded.findIndex((event) =>
      // Signals typed by hand in the tests may carry anything, null included.
      registrationsIn({ events: [event] }).some(
        (taken: { batchId?: unknown } | null) => taken?.batchId === request.batchId,
      ),
    );
    return at >= 0 && recorded.slice(at).some((event) => event.workflowTaskCompletedEventAttributes)
      ? recorded
      : undefined;
  });
  // Before, the registration set the watch up again, and the poller read the list for the ended recovery until its
  // batch left the pending phase.
  expect(await poller.query(isWatchingBatch, request)).toBe(false);
  expect(patchMarkerIds({ events }).filter((id) => id === 'poller-leaves-out-ended-wait-registration')).toHaveLength(1);

  // The same recovery's next wait is another wait: taken.
  const nextWait = { ...request, waitStartedAt: new Date(Date.parse(request.waitStartedAt!) + 1).toISOString() };
  await registeringWorker.watchBatchWithPoller({ taskQueue: env.taskQueue, ...nextWait });
  await eventually('the next wait watched', async () =>
    (await poller.query(isWatchingBatch, nextWait)) ? true : undefined,
  );
  await expectPollerUnharmed();
});

test("a registration sent again that reaches the poller after its wait's unwatch dropped the watch is left out", async () => {
  const poller = await pollerThatSays(POLLER_TAKES_UNWATCH_BATCHES_MEMO_KEY);
  const [request] = pendingRegistrations(1) as [WatchBatchRequest];
  const activities = createPollerRegistrationActivities(env.client);
  await activities.watchBatchWithPoller({ taskQueue: env.taskQueue, ...request });
  await eventually('the registration watched', async () =>
    (await poller.query(isWatchingBatch, request)) ? true : undefined,
  );
  await activities.unwatchBatchWithPoller(unwatchOf(request));
  await eventually('the watch dropped', async () =>
    (await poller.query(isWatchingBatch, request)) ? undefined : true,
  );

  // Sent again as its chain check timed out (up to 2 s), after the recovery's end had sent its unwatch.
  await createPollerRegistrationActivities(env.client).watchBatchWithPoller({ taskQueue: env.taskQueue, ...request });

  await eventually('the registration sent again taken', async () => {
    const events = (await poller.fetchHistory()).events ?? [];
    const registered = events.flatMap((event, at) =>
      // Signals typed by hand in the tests may carry anything, null included.
      registrationsIn({ events: [event] }).some(
        (taken: { batchId?: unknown } | null) => taken?.batchId === request.batchId,
      )
        ? [at]
        : [],
    );
    return registered.length === 2 &&
      events.slice(registered[1]).some((event) => event.workflowTaskCompletedEventAttributes)
      ? true
      : undefined;
  });
  // Before, watched again for good.
  expect(await poller.query(isWatchingBatch, request)).toBe(false);
});

test(`the poller keeps the last ${MAX_ENDED_WAITS_KEPT} ended waits whose unwatch came first: an older one's registration is taken`, async () => {
  const poller = await pollerThatSays(POLLER_TAKES_UNWATCH_BATCHES_MEMO_KEY);
  const waitStartedAt = new Date().toISOString();
  // Batches no watch has: each unwatch finds none, and is kept.
  const requests = Array.from({ length: MAX_ENDED_WAITS_KEPT + 1 }, (_, i) => {
    const batchId = `ended-wait-${i}-${waitStartedAt}`;
    return { batchId, workflowId: recoveryWorkflowId(batchId), pollIntervalMs: 60_000, waitStartedAt };
  });
  const [oldest, second] = requests as [WatchBatchRequest, WatchBatchRequest];
  await poller.signal(
    'unwatchBatches',
    requests.map(({ batchId, workflowId }) => ({ batchId, workflowId, waitStartedAt })),
  );

  await poller.signal('watchBatches', [oldest, second]);

  await eventually("the oldest wait's registration watched", async () =>
    (await poller.query(isWatchingBatch, oldest)) ? true : undefined,
  );
  expect(await poller.query(isWatchingBatch, second)).toBe(false);
  await expectPollerUnharmed();
});

test('unwatch signals typed by hand with malformed unwatches fail no task; the well-formed ones are taken', async () => {
  const poller = env.client.workflow.getHandle(batchStatusPollerWorkflowId(env.taskQueue));
  const [request] = pendingRegistrations(1) as [WatchBatchRequest];
  const activities = createPollerRegistrationActivities(env.client);
  await activities.watchBatchWithPoller({ taskQueue: env.taskQueue, ...request });
  await eventually('the registration watched', async () =>
    (await poller.query(isWatchingBatch, request)) ? true : undefined,
  );
  const { taskQueue: _, ...unwatch } = unwatchOf(request);

  await poller.signal('unwatchBatches', 'not a list');
  await poller.signal('unwatchBatches', [{ batchId: 7 }, null, { ...unwatch, waitStartedAt: 1 }, unwatch]);

  await eventually('the well-formed unwatch to drop the watch', async () =>
    (await poller.query(isWatchingBatch, request)) ? undefined : true,
  );
  await expectPollerUnharmed();
});

test('to a poller run that takes watchBatches but does not say it takes unwatchBatches (the release before), each unwatch goes as an unwatchBatch signal', async () => {
  const taskQueue = `${env.taskQueue}-previous-poller`;
  // With the memo a run of the release before wrote: it takes watchBatches only.
  const previous = await startUnpolledPoller(taskQueue, { [POLLER_TAKES_WATCH_BATCHES_MEMO_KEY]: true });
  try {
    const activities = createPollerRegistrationActivities(env.client);
    const waitStartedAt = new Date().toISOString();
    const batchIds = ['previous-1', 'previous-2', 'previous-3'];
    const requests = batchIds.map((batchId) => ({
      batchId,
      workflowId: recoveryWorkflowId(batchId),
      pollIntervalMs: 60_000,
      waitStartedAt,
    }));

    await Promise.all(requests.map((request) => activities.watchBatchWithPoller({ taskQueue, ...request })));
    await Promise.all(
      requests.map(({ batchId, workflowId }) =>
        activities.unwatchBatchWithPoller({ taskQueue, batchId, workflowId, waitStartedAt }),
      ),
    );

    const history = await previous.fetchHistory();
    expect(registrationSignals(history, 'watch').map(({ name }) => name)).toEqual(['watchBatches']);
    const unwatches = registrationSignals(history, 'unwatch');
    expect(unwatches.map(({ name }) => name)).toEqual(['unwatchBatch', 'unwatchBatch', 'unwatchBatch']);
    expect(unwatches.flatMap(({ batchIds }) => batchIds).sort()).toEqual(batchIds);
  } finally {
    await previous.terminate('test done');
  }
});

test('a worker with ANCHOR_BATCH_STATUS_POLLER=false registers its recoveries with no poller, one still running included', async () => {
  // The poller of a queue whose workers were switched to false after it started: it runs on.
  const taskQueue = `${env.taskQueue}-poller-off`;
  await startBatchStatusPoller(env.client, taskQueue);
  const poller = env.client.workflow.getHandle(batchStatusPollerWorkflowId(taskQueue));
  const connection = await connectWorker();
  try {
    const workers = await createRecoveryWorkers({
      config: { ...workerConfig(taskQueue, env.simulator.url), batchStatusPoller: false },
      connection,
      workflows: workflowBundle(),
    });
    const recoveries = new BatchRecoveries(env.client, taskQueue);
    const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
    const report = await workers.runUntil(async () => {
      await recoveries.start({ batchId: batch.id, ...FAST_POLICY });
      return recoveries.result(batch.id);
    });

    expect(report.outcome).toBe('recovered');
    // Before, the recovery registered with the running poller, though the README says each polls its own batch.
    expect(registrationsIn(await poller.fetchHistory())).toEqual([]);
    expect(env.simulator.ledger.forBatch(batch.id).retries).toHaveLength(1);
  } finally {
    await poller.terminate('test done');
    await connection.close();
  }
});
