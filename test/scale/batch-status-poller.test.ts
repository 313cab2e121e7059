import {
  LISTED_IN_FLIGHT_NOT_SETTLED_PATCH,
  LISTED_SETTLE_COUNTS_SESSIONS_PATCH,
  NOTIFY_QUEUE_MARKER,
} from '../../workflows/recover-batch.js';
import { BATCH_PAGE_SIZE } from '../../workflows/batch-status-poller.js';
import {
  batchSettled,
  batchStatusPollerTaskQueue,
  batchStatusPollerWorkflowId,
  type ListedSettle,
} from '../../workflows/definitions.js';
import {
  eventually,
  FAST_POLICY,
  localActivityMarkers,
  memoWrites,
  patchMarkerIds,
  pollerRegistrations,
  startRecoveryEnv,
  type RecoveryEnv,
  PRODUCT_API_TIMEOUT,
} from '../helpers/recovery-env.js';

let env: RecoveryEnv;

beforeAll(async () => {
  // Sessions take a second: a recovery polling on its own would read each batch many times.
  env = await startRecoveryEnv({ attemptDurationMs: 1_000 });
  await env.startPollerWorker(PRODUCT_API_TIMEOUT);
});
afterAll(() => env.close());

/**
 * A recovery registers with the poller again within every 15 poll maximum intervals; a registration sent just before
 * its wake arrives brings one more wake later. A long maximum keeps these tests' counts to the design's own.
 */
const POLICY = { ...FAST_POLICY, poll: { ...FAST_POLICY.poll, maximumInterval: '10s' } };

const LIST = 'GET /v1/batch-sessions';
const STATUS = 'GET /v1/batch-sessions/{batch_id}';
const RETRY = 'POST /v1/batch-sessions/{batch_id}/retry';

test('the poller reads the list a page per call, and a settle it shows costs its recovery no read of its own', async () => {
  // Three batches to recover, then 250 newer ones of the team: newest first, the three are on page 3.
  const recovered = Array.from({ length: 3 }, () =>
    env.simulator.createScriptedBatch({ count: 4, script: { '1': ['fail', 'ok'] } }),
  );
  for (let i = 0; i < 250; i += 1) env.simulator.createScriptedBatch({ count: 1 });
  const pagesPerCycle = Math.ceil(253 / BATCH_PAGE_SIZE);

  for (const batch of recovered) await env.recoveries.start({ batchId: batch.id, ...POLICY });
  for (const batch of recovered) expect((await env.recoveries.result(batch.id)).outcome).toBe('recovered');

  for (const batch of recovered) {
    const calls = env.simulator.ledger.forBatch(batch.id).calls.map((call) => call.endpoint);
    // Settle 1, from the list: the retry round's snapshot read and the retry. Settle 2, from the list: no read.
    expect(calls).toEqual([STATUS, RETRY]);
    const history = await env.recoveries.handle(batch.id).fetchHistory();
    const wakes = history.events?.filter(
      (event) => event.workflowExecutionSignaledEventAttributes?.signalName === 'batchSettled',
    );
    expect(wakes).toHaveLength(2);
    // It registered for each settle through a local activity: no signal of its own, so no workflow task that
    // only brings the server's confirmation of one.
    const events = history.events ?? [];
    expect(events.filter((event) => event.signalExternalWorkflowExecutionInitiatedEventAttributes)).toHaveLength(0);
    expect(events.filter((event) => event.externalWorkflowExecutionSignaledEventAttributes)).toHaveLength(0);
    expect(pollerRegistrations(history)).toHaveLength(2);
    // One patch marker, standing for every earlier patch, instead of one per patch.
    expect(patchMarkerIds(history)).toEqual([NOTIFY_QUEUE_MARKER]);
    // Its memo, written as it began each wait and as it ended: none while the round's read and call were out, and
    // never `retrying` while it waited. Two registration waits start a timer each; a third is the round backoff,
    // when the wake came sooner than 100 ms after the settle.
    const backoffWaited = events.filter((event) => event.timerStartedEventAttributes).length === 3;
    // Each registration wait's timer was cancelled by its wake, as condition(fn, timeout) cancels it; the backoff's fired.
    expect(events.filter((event) => event.timerCanceledEventAttributes)).toHaveLength(2);
    expect(events.filter((event) => event.timerFiredEventAttributes)).toHaveLength(backoffWaited ? 1 : 0);
    expect(memoWrites(history)).toEqual([
      { phase: 'waiting_for_batch', rounds: 0 },
      ...(backoffWaited ? [{ phase: 'backing_off', rounds: 0 }] : []),
      { phase: 'waiting_for_batch', rounds: 1 },
      { phase: 'done', rounds: 1 },
    ]);
  }

  // The poller woke them through local activities, a page's wakes in one: no signal command of its own, which
  // would cost it two events and one more workflow task per wake.
  const poller = await env.client.workflow.getHandle(batchStatusPollerWorkflowId(env.taskQueue)).fetchHistory();
  const pollerEvents = poller.events ?? [];
  // Its workflow tasks run on its own queue, its page reads on the recoveries', whose task rate is the budget.
  expect(pollerEvents[0]?.workflowExecutionStartedEventAttributes?.taskQueue?.name).toBe(
    batchStatusPollerTaskQueue(env.taskQueue),
  );
  const pageReadQueues = pollerEvents
    .filter((event) => event.activityTaskScheduledEventAttributes?.activityType?.name === 'readBatchPage')
    .map((event) => event.activityTaskScheduledEventAttributes?.taskQueue?.name);
  expect(pageReadQueues.length).toBeGreaterThanOrEqual(pagesPerCycle * 2);
  expect(new Set(pageReadQueues)).toEqual(new Set([env.taskQueue]));
  expect(pollerEvents.filter((event) => event.signalExternalWorkflowExecutionInitiatedEventAttributes)).toHaveLength(0);
  expect(localActivityMarkers(poller, 'wakeRecoveries').length).toBeGreaterThanOrEqual(2);
  expect(patchMarkerIds(poller)).toEqual([
    'poller-wakes-through-local-activity',
    'poller-rest-ends-at-continue-as-new',
    'poller-rest-shortened-by-new-watch',
    'poller-takes-watch-batches',
    'poller-takes-unwatch-batches',
  ]);

  // Every cycle reads page 1, then pages 2 and 3 side by side, and stops once it has seen every watched batch.
  const listPages = env.simulator.ledger
    .all()
    .calls.filter((call) => call.endpoint === LIST)
    .map((call) => new URL(call.path, env.simulator.url).searchParams);
  expect(listPages.length).toBeGreaterThanOrEqual(pagesPerCycle * 2);
  expect(listPages.length % pagesPerCycle).toBe(0);
  for (const params of listPages) expect(params.get('limit')).toBe(String(BATCH_PAGE_SIZE));
  const pages = listPages.map((params) => params.get('page'));
  for (let cycle = 0; cycle < pages.length; cycle += pagesPerCycle) {
    const inCycle = pages.slice(cycle, cycle + pagesPerCycle);
    expect(inCycle[0]).toBe('1');
    expect([...inCycle].sort()).toEqual(['1', '2', '3']);
  }
});

test('a batch just created (pending, its counters all 0) stays watched: its recovery reads nothing of its own', async () => {
  // Pending for 3 s, its counters all 0 in the list meanwhile: many of the poller's cycles see it so.
  const batch = env.simulator.createScriptedBatch({
    count: 4,
    script: { '1': ['fail', 'ok'] },
    pending_phase: { ms: 3_000 },
  });
  await env.recoveries.start({ batchId: batch.id, ...POLICY });
  expect((await env.recoveries.result(batch.id)).outcome).toBe('recovered');
  // Both settles from the list: the round's snapshot read and the retry, no read while it was pending.
  expect(env.simulator.ledger.forBatch(batch.id).calls.map((call) => call.endpoint)).toEqual([STATUS, RETRY]);
});

test('a recovery that ends with sessions still failing reads its batch once, so its report lists them', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 4, script: { '2': 'always-fail' } });
  await env.recoveries.start({ batchId: batch.id, ...POLICY, maxRounds: 1 });
  const report = await env.recoveries.result(batch.id);

  expect(report.outcome).toBe('exhausted');
  // The round's snapshot read, the retry, and the read after the list showed the second settle.
  expect(env.simulator.ledger.forBatch(batch.id).calls.map((call) => call.endpoint)).toEqual([STATUS, RETRY, STATUS]);
  expect(report.stillFailing).toMatchObject({ total: 1, sessions: [{ itemIndex: 2 }] });
  expect(report.rounds).toMatchObject([{ failedBefore: 1, failedAfter: 1, recovered: 0 }]);
});

/**
 * Wakes a recovery waiting for the poller with `payload` while its batch is still pending (for 5 s, then a second of
 * sessions: no cycle of the poller can see it settled before this wake, however slow the machine is to start the
 * recovery); the recovery's outcome and history once it has ended.
 */
async function wakeWhilePending(payload: ListedSettle) {
  const batch = env.simulator.createScriptedBatch({
    count: 4,
    script: { '1': ['fail', 'ok'] },
    pending_phase: { ms: 5_000 },
  });
  await env.recoveries.start({ batchId: batch.id, ...POLICY });
  const handle = env.recoveries.handle(batch.id);
  // Registered with the poller, which has not seen the batch settled.
  await eventually('the recovery to wait for the poller', async () =>
    pollerRegistrations(await handle.fetchHistory()).length > 0 ? true : undefined,
  );
  await handle.signal(batchSettled, payload);
  const { outcome } = await env.recoveries.result(batch.id);
  const history = await handle.fetchHistory();
  const scheduled = history.events
    ?.map((event) => event.activityTaskScheduledEventAttributes?.activityType?.name)
    .filter((name) => name !== undefined);
  return { outcome, history, scheduled, retries: env.simulator.ledger.forBatch(batch.id).retries };
}

test("a wake whose payload is not the poller's counters (an operator's, from the Web UI) makes the recovery read its batch", async () => {
  const woken = await wakeWhilePending({ status: 'completed', total: -1, completed: 0, failed: 0, observedAt: 'now' });

  expect(woken.outcome).toBe('recovered');
  // The bare wake's read (polling until the batch settles), then the round read on a settle it saw itself.
  expect(woken.scheduled?.slice(0, 2)).toEqual(['awaitBatchSettled', 'readRetrySnapshot']);
});

test('a settle that counts no sessions (a batch just created, pending at 0 of 0) is a bare wake, not a clean end', async () => {
  const woken = await wakeWhilePending({ status: 'pending', total: 0, completed: 0, failed: 0, observedAt: 'now' });

  // Taken as a settle, it ended the recovery `clean` at once, with the batch not begun and no retry sent.
  expect(woken.outcome).toBe('recovered');
  expect(woken.retries).toHaveLength(1);
  expect(patchMarkerIds(woken.history)).toContain(LISTED_SETTLE_COUNTS_SESSIONS_PATCH);
  expect(woken.scheduled?.slice(0, 2)).toEqual(['awaitBatchSettled', 'readRetrySnapshot']);
});

test('a settle the list shows processing, with counters that account for every session, is a bare wake', async () => {
  // Counters that may lag a retry call the batch took: taken as a settle, the recovery went on to a round at once.
  const woken = await wakeWhilePending({ status: 'processing', total: 4, completed: 3, failed: 1, observedAt: 'now' });

  expect(woken.outcome).toBe('recovered');
  expect(woken.retries).toHaveLength(1);
  expect(patchMarkerIds(woken.history)).toContain(LISTED_IN_FLIGHT_NOT_SETTLED_PATCH);
  expect(woken.scheduled?.slice(0, 2)).toEqual(['awaitBatchSettled', 'readRetrySnapshot']);
});

test('when the list cannot be read, the poller hands its batches to their recoveries, which read them on their own', async () => {
  // The last test's recoveries have ended; its last cycle may still be reading pages.
  const poller = env.client.workflow.getHandle(batchStatusPollerWorkflowId(env.taskQueue));
  await eventually('the poller to be idle', async () =>
    ((await poller.describe()).raw.pendingActivities ?? []).length === 0 ? true : undefined,
  );
  env.simulator.ledger.clear();
  env.simulator.faults.add('list', { type: 'error', statusCode: 403 });
  try {
    const batch = env.simulator.createScriptedBatch({ count: 4, script: { '1': ['fail', 'ok'] } });
    await env.recoveries.start({ batchId: batch.id, ...POLICY });
    expect((await env.recoveries.result(batch.id)).outcome).toBe('recovered');

    const listCalls = env.simulator.ledger.all().calls.filter((call) => call.endpoint === LIST);
    // A refused key is permanent: one call per cycle, no retry of the page.
    expect(listCalls.map((call) => call.statusCode)).toEqual(listCalls.map(() => 403));
    // One cycle for each of the two waits, each handing the batch back.
    expect(listCalls).toHaveLength(2);
    expect(env.simulator.ledger.forBatch(batch.id).retries).toHaveLength(1);
  } finally {
    env.simulator.faults.clear('list');
  }
});
