import { WorkflowFailedError } from '@temporalio/client';
import proto, { type temporal } from '@temporalio/proto';
import { createPollerRegistrationActivities } from '../../activities/poller-registration-activities.js';
import type { BatchStatusPollerInput, batchStatusPoller } from '../../workflows/batch-status-poller.js';
import {
  BATCH_STATUS_POLLER_WORKFLOW,
  batchStatusPollerTaskQueue,
  batchStatusPollerWorkflowId,
  POLLER_TAKES_WATCH_BATCHES_MEMO_KEY,
  recoveryWorkflowId,
} from '../../workflows/definitions.js';
import {
  eventually,
  FAST_POLICY,
  patchMarkerIds,
  registrationsIn,
  startRecoveryEnv,
  type RecoveryEnv,
  PRODUCT_API_TIMEOUT,
} from '../helpers/recovery-env.js';

const { EventType } = proto.temporal.api.enums.v1;

let env: RecoveryEnv;

/** A session attempt takes a minute of the simulator's clock: a batch settles only when the test moves it on. */
const ATTEMPT_MS = 60_000;

beforeAll(async () => {
  env = await startRecoveryEnv({ attemptDurationMs: ATTEMPT_MS, queueDelayMs: 0 });
  // Started before the worker, which then finds it running: a run continues as new after 50 events.
  await env.client.workflow.start<typeof batchStatusPoller>(BATCH_STATUS_POLLER_WORKFLOW, {
    taskQueue: env.taskQueue,
    workflowId: batchStatusPollerWorkflowId(env.taskQueue),
    args: [{ continueAsNewAfterEvents: 50 }],
  });
  await env.startPollerWorker(PRODUCT_API_TIMEOUT);
});
afterAll(() => env.close());

/** A long maximum interval: no recovery registers again on its own, so every wake is the poller's. */
const POLICY = { ...FAST_POLICY, poll: { ...FAST_POLICY.poll, maximumInterval: '10s' } };
const STATUS = 'GET /v1/batch-sessions/{batch_id}';
const RETRY = 'POST /v1/batch-sessions/{batch_id}/retry';

/** The poller's runs, newest first, with their histories: walked back through each run's first event. */
async function pollerHistories(): Promise<temporal.api.history.v1.IHistory[]> {
  const poller = env.client.workflow.getHandle(batchStatusPollerWorkflowId(env.taskQueue));
  const histories: temporal.api.history.v1.IHistory[] = [];
  let runId: string | undefined = (await poller.describe()).runId;
  while (runId) {
    const history = await env.client.workflow.getHandle(poller.workflowId, runId).fetchHistory();
    histories.push(history);
    runId = history.events?.[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId ?? undefined;
  }
  return histories;
}

/** The poller's runs, newest first, with the input each began with. */
async function pollerRuns(): Promise<BatchStatusPollerInput[]> {
  return (await pollerHistories()).map((history) => {
    const data = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0]?.data;
    return data ? (JSON.parse(Buffer.from(data).toString()) as BatchStatusPollerInput) : {};
  });
}

test('the poller continues as new with its watched batches: every recovery is woken once per settle, none lost', async () => {
  const batches = Array.from({ length: 8 }, () =>
    env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } }),
  );
  for (const batch of batches) await env.recoveries.start({ batchId: batch.id, ...POLICY });

  // While no batch can settle, the poller's cycles fill its runs: wait for a run that began with all eight.
  await eventually('a run of the poller that carried all eight registrations', async () =>
    (await pollerRuns()).some((input) => input.watched?.length === batches.length) ? true : undefined,
  );
  env.simulator.clock.advance(ATTEMPT_MS);
  await eventually('the eight retry calls', () =>
    batches.every((batch) => env.retryPosts(batch.id).length === 1) ? true : undefined,
  );
  env.simulator.clock.advance(ATTEMPT_MS);
  for (const batch of batches) expect((await env.recoveries.result(batch.id)).outcome).toBe('recovered');

  const runs = await pollerRuns();
  expect(runs.length).toBeGreaterThanOrEqual(2);
  // Each carried watch kept its wait's start: a registration sent again after continue-as-new is the same wait.
  const carried = runs.find((input) => input.watched?.length === batches.length)?.watched ?? [];
  for (const watch of carried) expect(watch).toEqual([expect.any(String), 50, null, expect.any(Number)]);
  // Every run carries the threshold it was started with.
  for (const input of runs) expect(input.continueAsNewAfterEvents).toBe(50);
  // Started on the recoveries' queue, as by a release before the poller's own, it moved to its own at its first
  // continue-as-new and stayed there; every run's page reads went to the recoveries' queue, the budget's.
  const histories = await pollerHistories();
  const runQueues = histories.map(
    (history) => history.events?.[0]?.workflowExecutionStartedEventAttributes?.taskQueue?.name,
  );
  expect(runQueues.at(-1)).toBe(env.taskQueue);
  expect(new Set(runQueues.slice(0, -1))).toEqual(new Set([batchStatusPollerTaskQueue(env.taskQueue)]));
  expect(patchMarkerIds(histories.at(-1)!)).toContain('poller-moves-to-own-task-queue');
  const pageReadQueues = histories.flatMap((history) =>
    (history.events ?? [])
      .filter((event) => event.activityTaskScheduledEventAttributes?.activityType?.name === 'readBatchPage')
      .map((event) => event.activityTaskScheduledEventAttributes?.taskQueue?.name),
  );
  expect(new Set(pageReadQueues)).toEqual(new Set([env.taskQueue]));
  for (const batch of batches) {
    // Both settles came from the list: the round's snapshot read and the retry call, nothing else.
    expect(env.simulator.ledger.forBatch(batch.id).calls.map((call) => call.endpoint)).toEqual([STATUS, RETRY]);
    const history = await env.recoveries.handle(batch.id).fetchHistory();
    const wakes = history.events?.filter(
      (event) => event.workflowExecutionSignaledEventAttributes?.signalName === 'batchSettled',
    );
    expect(wakes).toHaveLength(2);
  }
});

test('a poller started with a threshold out of range fails at once, naming the field', async () => {
  const handle = await env.client.workflow.start<typeof batchStatusPoller>(BATCH_STATUS_POLLER_WORKFLOW, {
    taskQueue: env.taskQueue,
    workflowId: `${batchStatusPollerWorkflowId(env.taskQueue)}-invalid`,
    args: [{ continueAsNewAfterEvents: 10 }],
  });
  const failure = await handle.result().catch((err: unknown) => err);
  expect(failure).toBeInstanceOf(WorkflowFailedError);
  expect((failure as WorkflowFailedError).cause?.message).toMatch(
    /^continueAsNewAfterEvents: expected an integer from 50 to 5000, got 10$/,
  );
});

test('a poller started with a huge value where a number goes fails at once, quoting only its start', async () => {
  // Before, the message quoted the whole value: a failure as large as the input, which may be near 2 MB.
  const handle = await env.client.workflow.start<typeof batchStatusPoller>(BATCH_STATUS_POLLER_WORKFLOW, {
    taskQueue: env.taskQueue,
    workflowId: `${batchStatusPollerWorkflowId(env.taskQueue)}-huge-invalid`,
    args: [{ maxWatchedBatches: 'x'.repeat(100_000) as unknown as number }],
  });
  const failure = await handle.result().catch((err: unknown) => err);
  expect(failure).toBeInstanceOf(WorkflowFailedError);
  expect((failure as WorkflowFailedError).cause?.message).toBe(
    `maxWatchedBatches: expected an integer from 1 to 20000, got "${'x'.repeat(63)}…`,
  );
});

test('a poller resting between cycles continues as new once due, without waiting out its rest', async () => {
  const activities = createPollerRegistrationActivities(env.client);
  const poller = env.client.workflow.getHandle(batchStatusPollerWorkflowId(env.taskQueue));
  const register = (batchId: string, pollIntervalMs: number) =>
    activities.watchBatchWithPoller({
      taskQueue: env.taskQueue,
      batchId,
      workflowId: recoveryWorkflowId(batchId),
      pollIntervalMs,
      waitStartedAt: new Date().toISOString(),
    });
  // A batch the list shows in flight, watched a minute apart: after its cycle, the poller rests a minute.
  const { id: batchId } = env.simulator.createScriptedBatch({ count: 2 });
  expect(await register(batchId, 60_000)).toBe(true);
  const restingRunId = await eventually('the poller to rest a minute', async () => {
    const { runId } = await poller.describe();
    const history = await env.client.workflow.getHandle(poller.workflowId, runId).fetchHistory();
    const rests = history.events?.filter(
      (event) => Number(event.timerStartedEventAttributes?.startToFireTimeout?.seconds ?? 0) > 30,
    );
    return rests?.length ? runId : undefined;
  });

  // Registrations of waits the list does not show fill the run's history while it rests.
  let filler = 0;
  await eventually(
    'the resting run to continue as new',
    async () => {
      await register(`filler-${(filler += 1)}`, 60_000);
      return (await poller.describe()).runId !== restingRunId ? true : undefined;
    },
    // Past the rest, so that a run that waits it out fails on its history below rather than here.
    90_000,
  );
  const events = (await env.client.workflow.getHandle(poller.workflowId, restingRunId).fetchHistory()).events ?? [];
  // The minute's rest was cancelled, not waited out (a short rest of the tests before may have fired in this run).
  const rests = events
    .filter((event) => Number(event.timerStartedEventAttributes?.startToFireTimeout?.seconds ?? 0) > 30)
    .map((event) => event.timerStartedEventAttributes?.timerId);
  const cancelled = events.map((event) => event.timerCanceledEventAttributes?.timerId).filter(Boolean);
  const fired = events.map((event) => event.timerFiredEventAttributes?.timerId).filter(Boolean);
  expect(rests).toHaveLength(1);
  expect(cancelled).toContain(rests[0]);
  expect(fired).not.toContain(rests[0]);
  expect(events.at(-1)?.eventType).toBe(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW);
}, 120_000);

test("a worker's registrations follow the poller into the run it continued as new with", async () => {
  const activities = createPollerRegistrationActivities(env.client);
  const poller = env.client.workflow.getHandle(batchStatusPollerWorkflowId(env.taskQueue));
  const register = (batchId: string) =>
    activities.watchBatchWithPoller({
      taskQueue: env.taskQueue,
      batchId,
      workflowId: recoveryWorkflowId(batchId),
      pollIntervalMs: 60_000,
      waitStartedAt: new Date().toISOString(),
    });
  /** The current run, once its memo says it takes watchBatches. */
  const runTakingBatches = async () => {
    const { runId, memo } = await poller.describe();
    return memo?.[POLLER_TAKES_WATCH_BATCHES_MEMO_KEY] === true ? runId : undefined;
  };
  const firstRunId = await eventually('a run that takes watchBatches', runTakingBatches);

  // The worker's sender learns this run, and signals it by its id, until the run's history reaches the threshold.
  let filler = 0;
  await eventually(
    'the run to continue as new',
    async () => {
      await Promise.all([1, 2, 3].map(() => register(`filler-${(filler += 1)}`)));
      return (await poller.describe()).runId !== firstRunId ? true : undefined;
    },
    60_000,
  );
  const nextRunId = await eventually('the next run to take watchBatches', runTakingBatches);
  expect(await register('after-continue-as-new')).toBe(true);

  const signalled = await eventually('the registration in a later run', async () => {
    for (let runId: string | undefined = nextRunId; runId !== undefined;) {
      const history = await env.client.workflow.getHandle(poller.workflowId, runId).fetchHistory();
      const signal = history.events?.find((event) =>
        registrationsIn({ events: [event] }).some((request) => request.batchId === 'after-continue-as-new'),
      );
      if (signal) return signal.workflowExecutionSignaledEventAttributes?.signalName ?? undefined;
      runId = history.events?.at(-1)?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
    }
    return undefined;
  });
  expect(signalled).toBe('watchBatches');
  const firstRun = await env.client.workflow.getHandle(poller.workflowId, firstRunId).fetchHistory();
  expect(registrationsIn(firstRun).map((request) => request.batchId)).not.toContain('after-continue-as-new');
}, 90_000);
