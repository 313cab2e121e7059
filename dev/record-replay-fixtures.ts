/**
 * Records recovery histories into test/fixtures/histories/ for the replay test.
 * Run it (npm run fixtures:record) only to add a scenario: the committed
 * histories are what keeps a workflow change from breaking running recoveries.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import proto from '@temporalio/proto';
import { NativeConnection, Worker } from '@temporalio/worker';
import type { batchStatusPoller } from '../workflows/batch-status-poller.js';
import {
  BATCH_STATUS_POLLER_WORKFLOW,
  batchSettled,
  batchStatusPollerWorkflowId,
  recoveryWorkflowId,
  unwatchBatches,
  watchBatch,
  watchBatches,
  type ListedSettle,
} from '../workflows/definitions.js';
import type { RecoverBatchInput } from '../workflows/input.js';
import { recoveryStartOptions } from '../workflows/recovery-start.js';
import { newReport } from '../workflows/report.js';
import type { sweepFailedBatches } from '../workflows/sweep-failed-batches.js';
import { newSweepResult, SWEEP_FAILED_BATCHES_WORKFLOW, type SweepResult } from '../workflows/sweep-input.js';
import { BatchRecoveries } from '../client/recoveries.js';
import { createPollerRegistrationActivities } from '../activities/poller-registration-activities.js';
import { workflowInterceptorModules, workflowsPath } from '../worker/bundle.js';
import { createRecoveryWorkers, startBatchStatusPoller } from '../worker/create-worker.js';
import type { SendRetryInput } from '../workflows/retry-protocol.js';
import { startLocalStack } from './local-stack.js';

const fixturesDir = fileURLToPath(new URL('../test/fixtures/histories/', import.meta.url));
const fast = {
  poll: { initialInterval: '50ms', backoffCoefficient: 1, maximumInterval: '50ms' },
  roundBackoff: { initialInterval: '100ms', backoffCoefficient: 2, maximumInterval: '1s' },
} satisfies Partial<RecoverBatchInput>;

const stack = await startLocalStack({ attemptDurationMs: 40, queueDelayMs: 10 });
const { simulator, client, recoveries, workers } = stack;

/** Runs a recovery to its end with the task queue's batch status poller, which is then stopped. */
async function withPoller(batchId: string, input: Partial<RecoverBatchInput> = {}): Promise<string> {
  await startBatchStatusPoller(client, stack.taskQueue);
  try {
    await recoveries.start({ batchId, ...fast, ...input });
    await recoveries.result(batchId).catch(() => undefined);
  } finally {
    await client.workflow.getHandle(batchStatusPollerWorkflowId(stack.taskQueue)).terminate('fixture recorded');
  }
  return recoveryWorkflowId(batchId);
}

/**
 * A sweep over `failedBatches` failed batches, one a page, whose newest six already have recoveries: chunks of batch
 * ids, skips of running recoveries, a continue-as-new once its history passes 50 events, count-only paging.
 */
async function pagedSweep(prefix: string, failedBatches: number): Promise<string> {
  const batchIds = Array.from({ length: failedBatches }, (_, index) =>
    simulator.createScriptedBatch({
      count: 2,
      script: { '0': ['fail', 'ok'] },
      created_at: new Date(Date.now() - (index + 1) * 60_000).toISOString(),
    }),
  ).map((batch) => batch.id);
  // The newest six already have recoveries (waiting an hour), so the first chunks only skip.
  for (const batchId of batchIds.slice(0, 6)) {
    await recoveries.start({ batchId, ...fast, roundBackoff: { initialInterval: '1h', maximumInterval: '1h' } });
  }
  simulator.createScriptedBatch({ count: 2 });
  const workflowId = `${prefix}-${Date.now()}`;
  await client.workflow.start<typeof sweepFailedBatches>(SWEEP_FAILED_BATCHES_WORKFLOW, {
    taskQueue: stack.taskQueue,
    workflowId,
    args: [{ lookback: '1h', pageSize: 1, maxStarts: 2, continueAsNewAfterEvents: 50, recovery: { ...fast } }],
  });
  return workflowId;
}

/**
 * The task queue's poller itself, over two recoveries it wakes (one recovered in a round, one exhausted): its
 * registrations, list cycles and wakes. It never ends on its own, so it is terminated once both recoveries have.
 */
async function pollerHistory(): Promise<string> {
  await startBatchStatusPoller(client, stack.taskQueue);
  const pollerId = batchStatusPollerWorkflowId(stack.taskQueue);
  try {
    const batchIds = [
      simulator.createScriptedBatch({ count: 4, script: { '1': ['fail', 'ok'] } }).id,
      simulator.createScriptedBatch({ count: 4, script: { '2': 'always-fail' } }).id,
    ];
    for (const batchId of batchIds) await recoveries.start({ batchId, ...fast, maxRounds: 1 });
    for (const batchId of batchIds) await recoveries.result(batchId).catch(() => undefined);
  } finally {
    await client.workflow.getHandle(pollerId).terminate('fixture recorded');
  }
  return pollerId;
}

/**
 * The task queue's poller, its runs continued as new after 50 events, and a registration as a recovery of an earlier
 * release sends it (a signal), with `pollIntervalMs`. Batches that no list shows are handed back at the next cycle,
 * to recoveries that do not exist.
 */
async function startShortPoller(pollIntervalMs: number) {
  const workflowId = batchStatusPollerWorkflowId(stack.taskQueue);
  const { firstExecutionRunId } = await client.workflow.start<typeof batchStatusPoller>(BATCH_STATUS_POLLER_WORKFLOW, {
    taskQueue: stack.taskQueue,
    workflowId,
    args: [{ continueAsNewAfterEvents: 50 }],
  });
  // The chain's latest run, whichever it is.
  const poller = client.workflow.getHandle(workflowId);
  const register = (batchId: string) =>
    poller.signal(watchBatch, {
      batchId,
      workflowId: recoveryWorkflowId(batchId),
      pollIntervalMs,
      waitStartedAt: new Date().toISOString(),
    });
  return { workflowId, firstExecutionRunId, poller, register };
}

/**
 * The task queue's poller, its watch capped at one, taking three registrations past the cap in one signal: handed back
 * at once through a local activity, to recoveries that do not exist. Recorded from its first run.
 */
async function pollerPastCap(): Promise<{ workflowId: string; runId: string }> {
  const workflowId = batchStatusPollerWorkflowId(stack.taskQueue);
  const { firstExecutionRunId: runId } = await client.workflow.start<typeof batchStatusPoller>(
    BATCH_STATUS_POLLER_WORKFLOW,
    { taskQueue: stack.taskQueue, workflowId, args: [{ maxWatchedBatches: 1 }] },
  );
  const poller = client.workflow.getHandle(workflowId, runId);
  const request = (batchId: string) => ({
    batchId,
    workflowId: recoveryWorkflowId(batchId),
    pollIntervalMs: 60_000,
    waitStartedAt: new Date().toISOString(),
  });
  try {
    await poller.signal(watchBatch, request(randomUUID()));
    await poller.signal(watchBatches, [randomUUID(), randomUUID(), randomUUID()].map(request));
    // The local activity's marker, whose type is in its encoded details.
    const handedBack = async () =>
      ((await poller.fetchHistory()).events ?? []).some((event) => {
        const data = event.markerRecordedEventAttributes?.details?.['data']?.payloads?.[0]?.data;
        return Buffer.from(data ?? [])
          .toString()
          .includes('"wakeRecoveries"');
      });
    while (!(await handedBack())) await new Promise((resolve) => setTimeout(resolve, 50));
  } finally {
    await poller.terminate('fixture recorded');
  }
  return { workflowId, runId };
}

/**
 * The task queue's poller reset to its first workflow task, leaving out the signals after it, and continued as new
 * from the reset run: the run that names itself to the next one. Watches of batches the list does not show, handed
 * back to recoveries that do not exist, fill the run. Recorded from the reset run.
 */
async function resetPollerRun(): Promise<{ workflowId: string; runId: string }> {
  const { workflowId, firstExecutionRunId, poller, register } = await startShortPoller(50);
  const { EVENT_TYPE_WORKFLOW_TASK_COMPLETED } = proto.temporal.api.enums.v1.EventType;
  let firstTask: proto.temporal.api.history.v1.IHistoryEvent | undefined;
  while (firstTask === undefined) {
    await register(`before-reset-${randomUUID()}`);
    const events = (await poller.fetchHistory()).events ?? [];
    firstTask = events.find((event) => event.eventType === EVENT_TYPE_WORKFLOW_TASK_COMPLETED);
  }
  await client.workflowService.resetWorkflowExecution({
    namespace: client.options.namespace,
    workflowExecution: { workflowId, runId: firstExecutionRunId },
    reason: 'fixture: a reset that leaves out signals',
    workflowTaskFinishEventId: firstTask.eventId,
    requestId: randomUUID(),
    resetReapplyExcludeTypes: [proto.temporal.api.enums.v1.ResetReapplyExcludeType.RESET_REAPPLY_EXCLUDE_TYPE_SIGNAL],
  });
  const { runId } = await poller.describe();
  try {
    let filler = 0;
    while ((await poller.describe()).runId === runId) await register(`filler-${(filler += 1)}`);
  } finally {
    await poller.terminate('fixture recorded');
  }
  return { workflowId, runId };
}

/**
 * The task queue's poller resting a minute after a cycle, filled by registrations until it is due to continue as
 * new: the rest ends there, its timer cancelled. Recorded from that run.
 */
async function pollerRestEndedAtContinueAsNew(): Promise<{ workflowId: string; runId: string }> {
  // Batches the list does not show: handed back by the cycle, after which the poller rests their interval.
  const { workflowId, firstExecutionRunId: runId, poller, register } = await startShortPoller(60_000);
  const resting = async () =>
    ((await poller.fetchHistory()).events ?? []).some(
      (event) => Number(event.timerStartedEventAttributes?.startToFireTimeout?.seconds ?? 0) > 30,
    );
  try {
    await register(`before-rest-${randomUUID()}`);
    while (!(await resting())) await new Promise((resolve) => setTimeout(resolve, 50));
    let filler = 0;
    while ((await poller.describe()).runId === runId) await register(`filler-${(filler += 1)}`);
  } finally {
    await poller.terminate('fixture recorded');
  }
  return { workflowId, runId };
}

/**
 * The poller's first page read held open by the API while registrations go on arriving: the run cancels the read
 * near the server's signal limit and continues as new. Recorded from that run.
 */
async function pollerStepCutNearSignalLimit(): Promise<{ workflowId: string; runId: string }> {
  const { workflowId, firstExecutionRunId: runId, poller, register } = await startShortPoller(60_000);
  simulator.faults.add('list', { type: 'hang' });
  const held = () => simulator.ledger.all().calls.some((call) => call.outcome === 'hung');
  try {
    await register(`held-${randomUUID()}`);
    while (!held()) await new Promise((resolve) => setTimeout(resolve, 50));
    let filler = 0;
    while ((await poller.describe()).runId === runId) await register(`filler-${(filler += 1)}`);
  } finally {
    simulator.faults.clear();
    await poller.terminate('fixture recorded');
  }
  return { workflowId, runId };
}

/** Two rounds from the list's settles and an exhausted end: each marker's own fixture records this recovery. */
function exhaustedInTwoRoundsWithPoller(): Promise<string> {
  const batch = simulator.createScriptedBatch({ count: 4, script: { '1': 'always-fail' } });
  return withPoller(batch.id, { maxRounds: 2 });
}

async function waitForPhase(batchId: string, phase: string) {
  while ((await recoveries.report(batchId)).phase !== phase) await new Promise((resolve) => setTimeout(resolve, 50));
}

/** Cancels a batch through the API, as someone at Anchor would: its failed sessions stay failed. */
async function cancelBatchAtAnchor(batchId: string) {
  const cancelled = await fetch(`${simulator.url}/v1/batch-sessions/${batchId}`, {
    method: 'PATCH',
    headers: { 'content-type': 'application/json', 'anchor-api-key': stack.apiKey },
    body: JSON.stringify({ status: 'cancelled' }),
  });
  if (!cancelled.ok) throw new Error(`the simulator refused the batch's cancel: ${cancelled.status}`);
}

/** Waits until the batch's first retry call has reached the simulator. */
async function untilRetryCallSent(batchId: string) {
  while (!simulator.ledger.forBatch(batchId).calls.some((call) => call.path.endsWith('/retry')))
    await new Promise((resolve) => setTimeout(resolve, 50));
}

/**
 * A recovery of a batch in flight for 3 s, its poller running, sent `settle` by hand as it waits for the batch (as an
 * operator could send one from the Web UI), then run to its end.
 */
async function settledByHand(settle: ListedSettle): Promise<string> {
  const batch = simulator.createScriptedBatch({
    count: 4,
    script: { '1': ['fail', 'ok'] },
    pending_phase: { ms: 3_000 },
  });
  await startBatchStatusPoller(client, stack.taskQueue);
  try {
    await recoveries.start({ batchId: batch.id, ...fast });
    await waitForPhase(batch.id, 'waiting_for_batch');
    await recoveries.handle(batch.id).signal(batchSettled, settle);
    await recoveries.result(batch.id).catch(() => undefined);
    return recoveryWorkflowId(batch.id);
  } finally {
    await client.workflow.getHandle(batchStatusPollerWorkflowId(stack.taskQueue)).terminate('fixture recorded');
  }
}

/** Starts the batch's recovery with a round backoff of an hour, and waits until it backs off. */
async function backingOffAnHour(batchId: string, input: Partial<RecoverBatchInput> = {}) {
  await recoveries.start({
    batchId,
    ...fast,
    roundBackoff: { initialInterval: '1h', maximumInterval: '1h' },
    ...input,
  });
  await waitForPhase(batchId, 'backing_off');
}

/**
 * A recovery of a batch with a session failing for good, backing off an hour after a settle the poller's list showed
 * (counters, no sessions), ended by `end` (or its deadline, given in `input`), after which the poller is stopped.
 */
async function endedAfterListedSettle(
  end: (batchId: string) => Promise<void>,
  input: Partial<RecoverBatchInput> = {},
): Promise<string> {
  const batch = simulator.createScriptedBatch({ count: 4, script: { '2': 'always-fail' } });
  await startBatchStatusPoller(client, stack.taskQueue);
  try {
    await recoveries.start({
      batchId: batch.id,
      ...fast,
      roundBackoff: { initialInterval: '1h', maximumInterval: '1h' },
      ...input,
    });
    await waitForPhase(batch.id, 'backing_off');
    await end(batch.id);
    await recoveries.result(batch.id);
  } finally {
    await client.workflow.getHandle(batchStatusPollerWorkflowId(stack.taskQueue)).terminate('fixture recorded');
  }
  return recoveryWorkflowId(batch.id);
}

/** A recovery of two rounds whose backoffs last an hour, so an operator acts during them; returns its batch id. */
async function startOperatedRecovery(): Promise<string> {
  const batch = simulator.createScriptedBatch({ count: 4, script: { '0': ['fail', 'fail', 'ok'] } });
  await recoveries.start({
    batchId: batch.id,
    ...fast,
    roundBackoff: { initialInterval: '1h', maximumInterval: '1h' },
  });
  return batch.id;
}

/**
 * An operator during the backoffs: a pause held, a policy update and a resume during it, and retryNow cutting two
 * backoffs short. `resumeUnpausedFirst` first sends a resume that changes nothing the backoff waits for.
 */
async function operateThroughBackoffs(batchId: string, { resumeUnpausedFirst = false } = {}): Promise<void> {
  await waitForPhase(batchId, 'backing_off');
  if (resumeUnpausedFirst) await recoveries.resume(batchId);
  await recoveries.pause(batchId);
  await waitForPhase(batchId, 'paused');
  await recoveries.updatePolicy(batchId, { maxRounds: 4 });
  await recoveries.resume(batchId);
  await recoveries.retryNow(batchId);
  await waitForPhase(batchId, 'backing_off');
  await recoveries.retryNow(batchId);
}

/** A recovery queue of its own, whose workflows' worker a scenario stops and starts again (`restartWorkflows`). */
interface OwnQueue {
  recoveries: BatchRecoveries;
  /** Stops the workflows' worker, runs `meanwhile` (what the next worker's first task is to bring), starts one again. */
  restartWorkflows: (meanwhile: () => Promise<void>) => Promise<void>;
}

/**
 * Runs `scenario` on a queue of its own (`name`), with the workflows and the activities on workers of their own, so
 * that what it does while the workflows' worker is stopped waits in the server for one workflow task.
 */
async function onOwnQueue<T>(name: string, scenario: (queue: OwnQueue) => Promise<T>): Promise<T> {
  const taskQueue = `${stack.taskQueue}-${name}`;
  const connection = await NativeConnection.connect({ address: stack.server.address });
  const activityWorkers = await createRecoveryWorkers({
    connection,
    config: {
      temporal: { address: stack.server.address, namespace: stack.server.namespace, taskQueue },
      anchor: { baseUrl: simulator.url, apiKey: stack.apiKey, timeoutMs: 5_000 },
      limits: { maxCallsPerSecond: 1_000, maxConcurrentActivities: 10, maxConcurrentWorkflowTasks: 10 },
    },
    workflows: {},
  });
  const activitiesDone = activityWorkers.run();
  const startWorkflowWorker = async () => {
    const worker = await Worker.create({
      connection,
      namespace: stack.server.namespace,
      taskQueue,
      workflowsPath,
      interceptors: { workflowModules: workflowInterceptorModules },
      activities: createPollerRegistrationActivities(client),
      enableNonLocalActivities: false,
    });
    return { worker, done: worker.run() };
  };
  let workflowWorker = await startWorkflowWorker();
  try {
    return await scenario({
      recoveries: new BatchRecoveries(client, taskQueue),
      restartWorkflows: async (meanwhile) => {
        workflowWorker.worker.shutdown();
        await workflowWorker.done;
        await meanwhile();
        workflowWorker = await startWorkflowWorker();
      },
    });
  } finally {
    workflowWorker.worker.shutdown();
    activityWorkers.shutdown();
    await Promise.all([workflowWorker.done, activitiesDone]);
    await connection.close();
  }
}

/**
 * A cancel the worker takes in one workflow task with the answer of the round's status read: the workflows' worker
 * stops while the read is out, and the read's answer and the cancel wait in the server for the next one.
 */
function cancelledWithRoundRead(): Promise<string> {
  return onOwnQueue('cancel-with-read', async ({ recoveries: queueRecoveries, restartWorkflows }) => {
    const batch = simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
    await queueRecoveries.start({
      batchId: batch.id,
      ...fast,
      roundBackoff: { initialInterval: '1h', maximumInterval: '1h' },
    });
    while ((await queueRecoveries.report(batch.id)).phase !== 'backing_off')
      await new Promise((resolve) => setTimeout(resolve, 50));
    const callsBefore = simulator.ledger.forBatch(batch.id).calls.length;
    simulator.faults.add('status', { type: 'latency', latencyMs: 2_000, times: 1, batchId: batch.id });
    await queueRecoveries.retryNow(batch.id);
    while (simulator.ledger.forBatch(batch.id).calls.length === callsBefore)
      await new Promise((resolve) => setTimeout(resolve, 50));
    const handle = queueRecoveries.handle(batch.id);
    const readCompleted = async () => {
      const events = (await handle.fetchHistory()).events ?? [];
      const read = events.find(
        (event) => event.activityTaskScheduledEventAttributes?.activityType?.name === 'readRetrySnapshot',
      );
      return events.some(
        (event) =>
          read !== undefined &&
          event.activityTaskCompletedEventAttributes?.scheduledEventId?.toString() === read.eventId?.toString(),
      );
    };
    await restartWorkflows(async () => {
      while (!(await readCompleted())) await new Promise((resolve) => setTimeout(resolve, 50));
      await queueRecoveries.cancel(batch.id);
    });
    await queueRecoveries.result(batch.id);
    return recoveryWorkflowId(batch.id);
  });
}

/**
 * A resume and a pause the worker takes in one workflow task while the recovery holds in its backoff: it holds on in
 * the same run, its history far from due, as the releases before the hold's continue-as-new did; then a resume and a
 * retryNow end it.
 */
function resumeAndPauseInHold(): Promise<string> {
  return onOwnQueue('resume-pause-in-hold', async ({ recoveries: queueRecoveries, restartWorkflows }) => {
    const batch = simulator.createScriptedBatch({ count: 4, script: { '2': ['fail', 'ok'] } });
    await queueRecoveries.start({
      batchId: batch.id,
      ...fast,
      roundBackoff: { initialInterval: '1h', maximumInterval: '1h' },
    });
    const phaseIs = async (phase: string) => {
      while ((await queueRecoveries.report(batch.id)).phase !== phase)
        await new Promise((resolve) => setTimeout(resolve, 50));
    };
    await phaseIs('backing_off');
    await queueRecoveries.pause(batch.id);
    await phaseIs('paused');
    await restartWorkflows(async () => {
      await queueRecoveries.resume(batch.id);
      await queueRecoveries.pause(batch.id);
    });
    const handle = queueRecoveries.handle(batch.id);
    const signalsTaken = async () => {
      const events = (await handle.fetchHistory()).events ?? [];
      const signals = events.map((event) => event.workflowExecutionSignaledEventAttributes?.signalName);
      return events
        .slice(signals.lastIndexOf('pauseRecovery'))
        .some((event) => event.workflowTaskCompletedEventAttributes);
    };
    while (!(await signalsTaken())) await new Promise((resolve) => setTimeout(resolve, 50));
    await queueRecoveries.resume(batch.id);
    await queueRecoveries.retryNow(batch.id);
    await queueRecoveries.result(batch.id);
    return recoveryWorkflowId(batch.id);
  });
}

/** Until the poller rests between cycles (its first timer). */
async function untilPollerRests(pollerId: string): Promise<void> {
  const resting = async () =>
    ((await client.workflow.getHandle(pollerId).fetchHistory()).events ?? []).some(
      (event) => event.timerStartedEventAttributes,
    );
  while (!(await resting())) await new Promise((resolve) => setTimeout(resolve, 50));
}

/**
 * The poller resting for a recovery that polls hourly, its rest ended by a recovery that polls every 500 ms
 * registering during it; both are then woken by the list.
 */
async function pollerRestShortened(): Promise<string> {
  await startBatchStatusPoller(client, stack.taskQueue);
  const pollerId = batchStatusPollerWorkflowId(stack.taskQueue);
  const polledEvery = (interval: string) => ({
    ...fast,
    maxRounds: 1,
    poll: { initialInterval: interval, backoffCoefficient: 1, maximumInterval: interval },
  });
  try {
    const hourly = simulator.createScriptedBatch({ count: 4, script: { '1': ['fail', 'ok'] } }).id;
    const quick = simulator.createScriptedBatch({ count: 4, script: { '2': ['fail', 'ok'] } }).id;
    await recoveries.start({ batchId: hourly, ...polledEvery('1h') });
    await untilPollerRests(pollerId);
    await recoveries.start({ batchId: quick, ...polledEvery('500ms') });
    for (const batchId of [quick, hourly]) await recoveries.result(batchId).catch(() => undefined);
  } finally {
    await client.workflow.getHandle(pollerId).terminate('fixture recorded');
  }
  return pollerId;
}

/**
 * A recovery waiting for the poller (the batch reads as pending at the first cycle), polled on `poll`, and a policy
 * update of its poll once `waiting` says the wait is on; the batch then settles, and the recovery ends.
 */
async function pollUpdatedWhileWaiting(
  poll: { initialInterval: string; backoffCoefficient: number; maximumInterval: string },
  waiting: (pollerId: string, batchId: string) => Promise<void>,
  change: Parameters<BatchRecoveries['updatePolicy']>[1],
): Promise<string> {
  await startBatchStatusPoller(client, stack.taskQueue);
  const pollerId = batchStatusPollerWorkflowId(stack.taskQueue);
  const batchId = simulator.createScriptedBatch({
    count: 4,
    script: { '1': ['fail', 'ok'] },
    pending_phase: { ms: 3_000 },
  }).id;
  try {
    await recoveries.start({ batchId, ...fast, poll });
    await waiting(pollerId, batchId);
    await recoveries.updatePolicy(batchId, change);
    await recoveries.result(batchId).catch(() => undefined);
  } finally {
    await client.workflow.getHandle(pollerId).terminate('fixture recorded');
  }
  return recoveryWorkflowId(batchId);
}

/** Until the recovery's wait for the poller is on: registered, its re-registration timer started. */
async function untilRecoveryWaits(batchId: string): Promise<void> {
  const waiting = async () =>
    ((await recoveries.handle(batchId).fetchHistory()).events ?? []).some((event) => event.timerStartedEventAttributes);
  while (!(await waiting())) await new Promise((resolve) => setTimeout(resolve, 50));
}

/**
 * A cycle longer than a run: 3,000 batches listed before a watched one, runs of 50 events. Recorded from the second
 * run, which goes on with the cycle the first stopped. The recovery is a registration of the recorder's own, woken
 * once the list shows its batch (it does not exist, so the wake goes nowhere).
 */
async function pollerResumedCycle(): Promise<{ workflowId: string; runId: string }> {
  const now = simulator.clock.now();
  const batch = simulator.createScriptedBatch({ count: 3, created_at: new Date(now - 86_400_000).toISOString() });
  simulator.store.seed({
    total: 3_000,
    fail_every: 0,
    created_from: new Date(now - 3_600_000).toISOString(),
    created_to: new Date(now - 60_000).toISOString(),
  });
  const { workflowId, firstExecutionRunId, poller, register } = await startShortPoller(60_000);
  await register(batch.id);
  let secondRunId: string | undefined;
  while (secondRunId === undefined) {
    const { runId } = await poller.describe();
    if (runId !== firstExecutionRunId) secondRunId = runId;
    else await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const woken = async () =>
    (await client.workflow.getHandle(workflowId, secondRunId).fetchHistory()).events?.some(
      (event) => event.markerRecordedEventAttributes?.markerName === 'core_local_activity',
    ) ?? false;
  while ((await poller.describe()).runId === secondRunId && !(await woken())) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await poller.terminate('fixture recorded');
  return { workflowId, runId: secondRunId };
}

/**
 * The poller over an API that claims 100,000 pages: the first page that lists no batch ends the list, and the watch
 * it did not show (a registration of the recorder's own, for a batch that does not exist) is handed back.
 */
async function pollerEmptyPageEndsList(): Promise<string> {
  simulator.faults.add('list', { type: 'mistyped_field', field: 'data.pagination.total_pages', value: 100_000 });
  const { workflowId, poller, register } = await startShortPoller(1_000);
  try {
    await register(`batch-not-listed-${randomUUID()}`);
    const handedBack = async () =>
      (await poller.fetchHistory()).events?.some(
        (event) => event.markerRecordedEventAttributes?.markerName === 'core_local_activity',
      ) ?? false;
    while (!(await handedBack())) await new Promise((resolve) => setTimeout(resolve, 50));
  } finally {
    await poller.terminate('fixture recorded');
    simulator.faults.clear('list');
  }
  return workflowId;
}

/** Until the poller's history holds a `signalName` signal and a workflow task completed after it, which took it. */
async function untilPollerTook(pollerId: string, signalName: string): Promise<void> {
  const took = async () => {
    const events = (await client.workflow.getHandle(pollerId).fetchHistory()).events ?? [];
    const signalled = events.findIndex(
      (event) => event.workflowExecutionSignaledEventAttributes?.signalName === signalName,
    );
    return signalled >= 0 && events.slice(signalled).some((event) => event.workflowTaskCompletedEventAttributes);
  };
  while (!(await took())) await new Promise((resolve) => setTimeout(resolve, 50));
}

/**
 * A recovery cancelled while the poller watches its batch, which stays pending: as it ends it tells the poller to drop
 * the watch, and the poller, which watches nothing else, then waits for registrations only. Returns the recovery's
 * workflow id and the poller's, which is terminated once it has taken the unwatch.
 */
async function cancelledWhileWatched(): Promise<{ recoveryId: string; pollerId: string }> {
  await startBatchStatusPoller(client, stack.taskQueue);
  const pollerId = batchStatusPollerWorkflowId(stack.taskQueue);
  const batchId = simulator.createScriptedBatch({ count: 2, pending_phase: { ms: 600_000 } }).id;
  try {
    await recoveries.start({ batchId, ...fast });
    await untilPollerTook(pollerId, 'watchBatches');
    await recoveries.cancel(batchId);
    await recoveries.result(batchId).catch(() => undefined);
    await untilPollerTook(pollerId, 'unwatchBatches');
  } finally {
    await client.workflow.getHandle(pollerId).terminate('fixture recorded');
  }
  return { recoveryId: recoveryWorkflowId(batchId), pollerId };
}

/**
 * The queue's poller, sent by hand what two workers would send for one recovery whose end ran on one while its
 * registration, sent again, waited for the chain check on the other: the unwatch, then the registration. Terminated
 * once it has taken the registration.
 */
async function registrationAfterItsUnwatch(): Promise<string> {
  await startBatchStatusPoller(client, stack.taskQueue);
  const pollerId = batchStatusPollerWorkflowId(stack.taskQueue);
  const poller = client.workflow.getHandle(pollerId);
  const { id: batchId } = simulator.createScriptedBatch({ count: 2, pending_phase: { ms: 600_000 } });
  const wait = { batchId, workflowId: recoveryWorkflowId(batchId), waitStartedAt: new Date().toISOString() };
  try {
    await poller.signal(unwatchBatches, [wait]);
    await untilPollerTook(pollerId, 'unwatchBatches');
    await poller.signal(watchBatches, [{ ...wait, pollIntervalMs: 500 }]);
    await untilPollerTook(pollerId, 'watchBatches');
  } finally {
    await poller.terminate('fixture recorded');
  }
  return pollerId;
}

/**
 * A sweep whose second list call shows the newest batch again (as `repeatedAs` spells its id), as an offset page does
 * after a row came in at the top: it is started once. Its recoveries wait an hour before a retry, and are cancelled
 * once the sweep has ended.
 */
async function sweepOverShiftedList(repeatedAs: (batchId: string) => string = (batchId) => batchId): Promise<string> {
  const failed = [5, 10, 15].map(
    (minutes) =>
      simulator.createScriptedBatch({
        count: 3,
        script: { '0': ['fail', 'ok'] },
        created_at: new Date(simulator.clock.now() - minutes * 60_000).toISOString(),
      }).id,
  );
  simulator.faults.add('list', {
    type: 'mistyped_field',
    field: 'data.batches.0.batch_id',
    value: repeatedAs(failed[0] as string),
    after: 1,
    times: 1,
  });
  const workflowId = `fixture-sweep-shifted-${Date.now()}`;
  const sweep = await client.workflow.start<typeof sweepFailedBatches>(SWEEP_FAILED_BATCHES_WORKFLOW, {
    taskQueue: stack.taskQueue,
    workflowId,
    args: [
      {
        lookback: '1h',
        pageSize: 1,
        recovery: { ...fast, roundBackoff: { initialInterval: '1h', maximumInterval: '1h' } },
      },
    ],
  });
  try {
    const { started } = await sweep.result();
    for (const { batchId } of started) await recoveries.cancel(batchId);
  } finally {
    simulator.faults.clear('list');
  }
  return workflowId;
}

/**
 * A sweep at one batch a page over a list whose pages 2-4 show page 1's batch again (an API that ignores `page`): it
 * stops at the third repeat, failed with its report.
 */
async function sweepOverRepeatingList(): Promise<string> {
  const batchIds = [5, 10, 15, 20, 25].map(
    (minutes) =>
      simulator.createScriptedBatch({
        count: 3,
        script: { '0': ['fail', 'ok'] },
        created_at: new Date(simulator.clock.now() - minutes * 60_000).toISOString(),
      }).id,
  );
  simulator.faults.add('list', {
    type: 'mistyped_field',
    field: 'data.batches.0.batch_id',
    value: batchIds[0],
    after: 1,
    times: 3,
  });
  const workflowId = `fixture-sweep-repeated-pages-${Date.now()}`;
  const sweep = await client.workflow.start<typeof sweepFailedBatches>(SWEEP_FAILED_BATCHES_WORKFLOW, {
    taskQueue: stack.taskQueue,
    workflowId,
    args: [
      {
        lookback: '1h',
        pageSize: 1,
        recovery: { ...fast, roundBackoff: { initialInterval: '1h', maximumInterval: '1h' } },
      },
    ],
  });
  try {
    const failure = await sweep.result().then(
      () => {
        throw new Error(`${workflowId} completed: it should have stopped at the repeated pages`);
      },
      (err: unknown) => err,
    );
    const cause = failure instanceof WorkflowFailedError ? failure.cause : undefined;
    const report = cause instanceof ApplicationFailure ? (cause.details?.[0] as SweepResult | undefined) : undefined;
    if (report?.failure?.type !== 'list_repeats_pages') throw failure;
    for (const { batchId } of report.started) await recoveries.cancel(batchId);
  } finally {
    simulator.faults.clear('list');
  }
  return workflowId;
}

/**
 * A recovery's second run, as continue-as-new starts one while it waits for the poller, of a batch in flight for
 * 10 min: its start options and what it carries, a report begun `startedAgoMs` ago whose deadline is `deadlineInMs`
 * away (past when negative), and the wait for the poller begun `waitStartedAgoMs` ago.
 */
function continuedRunInPollerWait(deadlineInMs: number, waitStartedAgoMs: number, startedAgoMs = 120_000) {
  const batch = simulator.createScriptedBatch({ count: 2, pending_phase: { ms: 600_000 } });
  const options = recoveryStartOptions({ batchId: batch.id, ...fast }, stack.taskQueue);
  const now = Date.now();
  const report = newReport(batch.id, options.workflowId, new Date(now - startedAgoMs), new Date(now + deadlineInMs), 3);
  report.continuedAsNew = 1;
  return { batch, options, report, pollerWaitStartedAt: new Date(now - waitStartedAgoMs).toISOString(), now };
}

/** Two sweeps of a schedule, triggered over a minute apart; returns the second, whose window reaches back. */
async function sweepReachingBack(): Promise<string> {
  const scheduleId = `fixture-sweep-schedule-${Date.now()}`;
  const schedule = await client.schedule.create({
    scheduleId,
    spec: { intervals: [{ every: '1h' }] },
    action: {
      type: 'startWorkflow',
      workflowType: SWEEP_FAILED_BATCHES_WORKFLOW,
      taskQueue: stack.taskQueue,
      workflowId: scheduleId,
      args: [{ lookback: '1m', recovery: { ...fast } }],
    },
    state: { paused: true },
  });
  const sweepsTaken = async (count: number) => {
    for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
      const { recentActions } = (await schedule.describe()).info;
      const last = recentActions[count - 1]?.action.workflow.workflowId;
      if (last !== undefined) return last;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`the schedule took no sweep ${count} in 30 s`);
  };
  try {
    await schedule.trigger();
    const first = await sweepsTaken(1);
    const { window } = (await client.workflow.getHandle(first).result()) as SweepResult;
    simulator.createScriptedBatch({
      count: 2,
      script: { '0': ['fail', 'ok'] },
      created_at: new Date(Date.parse(window.createdBefore) + 1).toISOString(),
    });
    // Past the lookback of a minute, so that only a window reaching back lists the batch.
    await new Promise((resolve) => setTimeout(resolve, Date.parse(window.createdBefore) + 62_000 - Date.now()));
    await schedule.trigger();
    const second = await sweepsTaken(2);
    const { reachedBack } = (await client.workflow.getHandle(second).result()) as SweepResult;
    if (reachedBack?.workflowId !== first)
      throw new Error(`the second sweep did not reach back: ${JSON.stringify(reachedBack)}`);
    return second;
  } finally {
    await schedule.delete();
  }
}

/** A sweep's run as continued as new, carrying a window and a result, with an input this release refuses. */
async function sweepWithRefusedContinuedInput(workflowId: string): Promise<string> {
  const window = {
    createdAfter: new Date(Date.now() - 3_600_000).toISOString(),
    createdBefore: new Date().toISOString(),
  };
  await client.workflow.start<typeof sweepFailedBatches>(SWEEP_FAILED_BATCHES_WORKFLOW, {
    taskQueue: stack.taskQueue,
    workflowId,
    args: [
      { lookback: '1h', pageSize: 500 },
      {
        window,
        nextPage: 3,
        result: {
          started: [],
          skipped: [{ batchId: randomUUID(), reason: 'over_limit' }],
          counts: { ...newSweepResult(window, ['failed', 'completed'], 2).counts, over_limit: 2 },
        },
      },
    ],
  });
  return workflowId;
}

/** Each scenario starts a workflow and returns its id, and the run to record when it is not the chain's first. */
const scenarios: Record<string, () => Promise<string | { workflowId: string; runId: string }>> = {
  async 'recovered-one-round'() {
    const batch = simulator.createScriptedBatch({ count: 6, script: { '1': ['fail', 'ok'], '4': ['fail', 'ok'] } });
    await recoveries.start({ batchId: batch.id, ...fast });
    return recoveryWorkflowId(batch.id);
  },
  // A start refused for its input, as the Web UI can send one: its outcome and batch id written as it fails.
  async 'invalid-input-recorded'() {
    const batchId = randomUUID();
    await client.workflow.start('recoverBatch', {
      taskQueue: stack.taskQueue,
      workflowId: recoveryWorkflowId(batchId),
      args: [{ batchId, maxRounds: 'five' }],
    });
    return recoveryWorkflowId(batchId);
  },
  // A start under another workflow id than the batch's recovery id, as the Web UI's form lets an operator type one:
  // refused at once, before any call to Anchor, the patch marker and the input recorded.
  async 'recovery-own-workflow-id-required'() {
    const batch = simulator.createScriptedBatch({ count: 2, script: { '1': ['fail', 'ok'] } });
    const workflowId = `typed-by-hand-${batch.id}`;
    await client.workflow.start('recoverBatch', {
      taskQueue: stack.taskQueue,
      workflowId,
      args: [{ batchId: batch.id, ...fast }],
    });
    return workflowId;
  },
  // A start under the batch's recovery id with the batch id in upper case, as only a release before wave 35 named one:
  // refused at once, before any call to Anchor, both patch markers and the input recorded.
  async 'recovery-upper-case-workflow-id-refused'() {
    const batch = simulator.createScriptedBatch({ count: 2, script: { '1': ['fail', 'ok'] } });
    const workflowId = recoveryWorkflowId(batch.id.toUpperCase());
    await client.workflow.start('recoverBatch', {
      taskQueue: stack.taskQueue,
      workflowId,
      args: [{ batchId: batch.id, ...fast }],
    });
    return workflowId;
  },
  // A duration typed as digits alone, as the Web UI's form takes it: refused at once naming the field, before any
  // call to Anchor, the patch marker and the input recorded.
  async 'recovery-unitless-duration-refused'() {
    const batchId = randomUUID();
    await client.workflow.start('recoverBatch', {
      taskQueue: stack.taskQueue,
      workflowId: recoveryWorkflowId(batchId),
      args: [{ batchId, deadline: '3600' }],
    });
    return recoveryWorkflowId(batchId);
  },
  // A second argument typed by hand that no run can read: refused at once, the patch marker and the input recorded.
  async 'recovery-carried-state-refused'() {
    const batchId = randomUUID();
    await client.workflow.start('recoverBatch', {
      taskQueue: stack.taskQueue,
      workflowId: recoveryWorkflowId(batchId),
      args: [{ batchId }, { report: {} }],
    });
    return recoveryWorkflowId(batchId);
  },
  async 'exhausted-two-rounds'() {
    const batch = simulator.createScriptedBatch({ count: 4, script: { '2': 'always-fail' } });
    await recoveries.start({ batchId: batch.id, ...fast, maxRounds: 2, maxRetries: 2 });
    return recoveryWorkflowId(batch.id);
  },
  async clean() {
    const batch = simulator.createScriptedBatch({ count: 3 });
    await recoveries.start({ batchId: batch.id, ...fast });
    return recoveryWorkflowId(batch.id);
  },
  async 'reconciled-after-dropped-answer'() {
    const batch = simulator.createScriptedBatch({ count: 4, script: { '0': ['fail', 'ok'] } });
    simulator.faults.add('retry', { type: 'commit_then_drop', times: 1, batchId: batch.id });
    await recoveries.start({ batchId: batch.id, ...fast });
    return recoveryWorkflowId(batch.id);
  },
  async 'protocol-reconciled-unknown-outcome'() {
    // The retry protocol: the call's answer is lost, the batch shows the call was applied.
    const batch = simulator.createScriptedBatch({ count: 4, script: { '0': ['fail', 'ok'] } });
    simulator.faults.add('retry', { type: 'commit_then_drop', times: 1, batchId: batch.id });
    await recoveries.start({ batchId: batch.id, ...fast });
    return recoveryWorkflowId(batch.id);
  },
  // The same, its wait before the reconciliation measured by the worker's monotonic clock (requestMayLastMs) and
  // counted from the result.
  async 'round-reconcile-wait-on-one-clock'() {
    const batch = simulator.createScriptedBatch({ count: 4, script: { '0': ['fail', 'ok'] } });
    simulator.faults.add('retry', { type: 'commit_then_drop', times: 1, batchId: batch.id });
    await recoveries.start({ batchId: batch.id, ...fast });
    return recoveryWorkflowId(batch.id);
  },
  async 'protocol-not-sent-then-resent'() {
    // The retry protocol: a 429 and a 5xx before the call is applied; neither is a round.
    const batch = simulator.createScriptedBatch({ count: 4, script: { '0': ['fail', 'ok'] } });
    simulator.faults.add('retry', { type: 'rate_limit', retryAfterSeconds: 1, times: 1, batchId: batch.id });
    simulator.faults.add('retry', { type: 'error', statusCode: 503, times: 1, batchId: batch.id });
    await recoveries.start({ batchId: batch.id, ...fast });
    return recoveryWorkflowId(batch.id);
  },
  async 'protocol-round-ends-without-effect'() {
    // The retry protocol: every call answered 503, each shown by the batch to have had no effect; the round ends
    // after its fifth (retry-round-sends-bounded).
    const batch = simulator.createScriptedBatch({ count: 4, script: { '0': ['fail', 'ok'] } });
    simulator.faults.add('retry', { type: 'error', statusCode: 503, times: 5, batchId: batch.id });
    await recoveries.start({ batchId: batch.id, ...fast, maxRounds: 1 });
    return recoveryWorkflowId(batch.id);
  },
  async 'protocol-redirect-stops-without-effect'() {
    // The retry protocol: the call answered 307, an outcome unknown that no resend fixes; once the batch shows it had
    // no effect, the recovery stops with that answer and the round (retry-round-stops-at-permanent-unknown).
    const batch = simulator.createScriptedBatch({ count: 4, script: { '0': ['fail', 'ok'] } });
    simulator.faults.add('retry', { type: 'error', statusCode: 307, times: 1, batchId: batch.id });
    await recoveries.start({ batchId: batch.id, ...fast });
    return recoveryWorkflowId(batch.id);
  },
  async 'retry-resend-rechecks-after-wait'() {
    // The retry protocol: round 2's first call answered 503 and shown to have had no effect, the next 429; the rounds
    // are lowered to those done while it waits its Retry-After, so it sends no more (retry-resend-rechecks-after-wait).
    const batch = simulator.createScriptedBatch({ count: 4, script: { '2': 'always-fail' } });
    await backingOffAnHour(batch.id);
    await recoveries.retryNow(batch.id);
    while ((await recoveries.report(batch.id)).rounds.length < 1)
      await new Promise((resolve) => setTimeout(resolve, 50));
    await waitForPhase(batch.id, 'backing_off');
    simulator.faults.add('retry', { type: 'error', statusCode: 503, times: 1, batchId: batch.id });
    simulator.faults.add('retry', { type: 'rate_limit', retryAfterSeconds: 3, times: 1, batchId: batch.id });
    await recoveries.retryNow(batch.id);
    for (;;) {
      const report = await recoveries.report(batch.id);
      if (report.lastError?.type === 'rate_limited' && report.nextRetryAt !== null) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await recoveries.updatePolicy(batch.id, { maxRounds: 1 });
    return recoveryWorkflowId(batch.id);
  },
  async 'recovery-poller-wait-wakes-when-due'() {
    // Resumes, which change nothing, sent to a recovery waiting for the poller until its history is due: the wait
    // ends and the run continues as new with it (recovery-poller-wait-wakes-when-due). Recorded from the first run.
    const batch = simulator.createScriptedBatch({ count: 2, pending_phase: { ms: 600_000 } });
    const poll = { initialInterval: '1m', backoffCoefficient: 1, maximumInterval: '1m' };
    await startBatchStatusPoller(client, stack.taskQueue);
    try {
      await recoveries.start({ batchId: batch.id, ...fast, poll, continueAsNewAfterEvents: 50 });
      await waitForPhase(batch.id, 'waiting_for_batch');
      const handle = recoveries.handle(batch.id);
      const firstRunId = (await handle.describe()).runId;
      while ((await handle.describe()).runId === firstRunId) await recoveries.resume(batch.id);
      await recoveries.cancel(batch.id);
      await recoveries.result(batch.id).catch(() => undefined);
    } finally {
      await client.workflow.getHandle(batchStatusPollerWorkflowId(stack.taskQueue)).terminate('fixture recorded');
    }
    return recoveryWorkflowId(batch.id);
  },
  async 'recovery-read-wait-wakes-when-due'() {
    // Resumes, which change nothing, sent to a recovery reading its batch on its own (no poller) until its history is
    // due: the read is cancelled and the run continues as new (recovery-read-wait-wakes-when-due). From the first run.
    const batch = simulator.createScriptedBatch({ count: 2, pending_phase: { ms: 600_000 } });
    const poll = { initialInterval: '1m', backoffCoefficient: 1, maximumInterval: '1m' };
    await recoveries.start({ batchId: batch.id, ...fast, poll, continueAsNewAfterEvents: 50 });
    await waitForPhase(batch.id, 'waiting_for_batch');
    const handle = recoveries.handle(batch.id);
    const firstRunId = (await handle.describe()).runId;
    while ((await handle.describe()).runId === firstRunId) await recoveries.resume(batch.id);
    await recoveries.cancel(batch.id);
    await recoveries.result(batch.id).catch(() => undefined);
    return recoveryWorkflowId(batch.id);
  },
  async 'protocol-later-call-waits-retry-after'() {
    // The retry protocol: the round's first call answered 503 and shown to have had no effect, the next answered 429;
    // the round waits its Retry-After and sends again (retry-round-sends-bounded).
    const batch = simulator.createScriptedBatch({ count: 4, script: { '0': ['fail', 'ok'] } });
    simulator.faults.add('retry', { type: 'error', statusCode: 503, times: 1, batchId: batch.id });
    simulator.faults.add('retry', { type: 'rate_limit', retryAfterSeconds: 1, times: 1, batchId: batch.id });
    await recoveries.start({ batchId: batch.id, ...fast });
    return recoveryWorkflowId(batch.id);
  },
  async 'protocol-not-sent-continued-as-new'() {
    // The retry protocol: calls not sent again and again, until the history is due and the run continues as new in
    // its wait to send again (recovery-continues-as-new-while-waiting).
    const batch = simulator.createScriptedBatch({ count: 4, script: { '0': ['fail', 'ok'] } });
    simulator.faults.add('retry', { type: 'rate_limit', retryAfterSeconds: 0, times: 12, batchId: batch.id });
    await recoveries.start({ batchId: batch.id, ...fast, continueAsNewAfterEvents: 50 });
    return recoveryWorkflowId(batch.id);
  },
  async 'protocol-cancelled-with-round-read'() {
    // The retry protocol: a cancel taken with the answer of the round's status read; no call goes out
    // (retry-round-cancel-before-call).
    return cancelledWithRoundRead();
  },
  // A resume and a pause in one workflow task during a hold: it holds on in the same run (no continue-as-new).
  async 'resume-and-pause-in-one-task-in-hold'() {
    return resumeAndPauseInHold();
  },
  async 'operator-controls'() {
    const batchId = await startOperatedRecovery();
    await operateThroughBackoffs(batchId);
    return recoveryWorkflowId(batchId);
  },
  async 'operator-cancelled'() {
    const batch = simulator.createScriptedBatch({ count: 4, script: { '3': 'always-fail' } });
    await backingOffAnHour(batch.id);
    await recoveries.cancel(batch.id);
    return recoveryWorkflowId(batch.id);
  },
  // The batch cancelled during the backoff: the round's read before its call shows it, and no call goes out
  // (retry-round-rechecks-after-read); the recovery ends batch_cancelled.
  async 'round-read-shows-batch-cancelled'() {
    const batch = simulator.createScriptedBatch({ count: 4, script: { '3': 'always-fail' } });
    await backingOffAnHour(batch.id);
    await cancelBatchAtAnchor(batch.id);
    await recoveries.retryNow(batch.id);
    return recoveryWorkflowId(batch.id);
  },
  // A call's answer lost (a 503) and the batch cancelled before the round's reconcile read: the read proves no effect,
  // and no call goes out again for the cancelled batch (retry-resend-heeds-batch-cancel); the recovery ends
  // batch_cancelled.
  async 'resend-sees-batch-cancelled'() {
    const batch = simulator.createScriptedBatch({ count: 4, script: { '2': ['fail', 'ok'] } });
    simulator.faults.add('retry', { type: 'error', statusCode: 503, times: 1, batchId: batch.id });
    await recoveries.start({ batchId: batch.id, ...fast, maxRounds: 1 });
    await untilRetryCallSent(batch.id);
    await cancelBatchAtAnchor(batch.id);
    return recoveryWorkflowId(batch.id);
  },
  // Pauses sent to a paused recovery until its history is due: the hold continues as new
  // (recovery-continues-as-new-in-holds), and the next run holds on until a resume and a retryNow.
  async 'hold-continued-as-new'() {
    const batch = simulator.createScriptedBatch({ count: 4, script: { '3': ['fail', 'ok'] } });
    await backingOffAnHour(batch.id, { continueAsNewAfterEvents: 50 });
    await recoveries.pause(batch.id);
    await waitForPhase(batch.id, 'paused');
    while ((await recoveries.report(batch.id)).continuedAsNew === 0) await recoveries.pause(batch.id);
    await waitForPhase(batch.id, 'paused');
    await recoveries.resume(batch.id);
    await recoveries.retryNow(batch.id);
    return recoveryWorkflowId(batch.id);
  },
  // Calls not sent again and again until the round's history is due in its wait to send again: the next run goes on
  // with the round without waiting its backoff again (recovery-carried-round-skips-backoff). Recorded from the last
  // run.
  async 'carried-round-skips-backoff'() {
    const batch = simulator.createScriptedBatch({ count: 4, script: { '0': ['fail', 'ok'] } });
    simulator.faults.add('retry', { type: 'rate_limit', retryAfterSeconds: 0, times: 12, batchId: batch.id });
    await backingOffAnHour(batch.id, { continueAsNewAfterEvents: 50 });
    await recoveries.retryNow(batch.id);
    const workflowId = recoveryWorkflowId(batch.id);
    await client.workflow.getHandle(workflowId).result();
    return { workflowId, runId: (await client.workflow.getHandle(workflowId).describe()).runId };
  },
  async 'continued-as-new'() {
    const batch = simulator.createScriptedBatch({ count: 3, script: { '1': 'always-fail' } });
    await recoveries.start({
      batchId: batch.id,
      ...fast,
      roundBackoff: { initialInterval: '10ms', maximumInterval: '10ms' },
      maxRounds: 5,
      continueAsNewAfterEvents: 50,
    });
    return recoveryWorkflowId(batch.id);
  },
  // Memo upserts, activity and timer summaries and the end notification (patched in later).
  async 'exhausted-memo-notify'() {
    const batch = simulator.createScriptedBatch({ count: 4, script: { '2': 'always-fail' } });
    await recoveries.start({ batchId: batch.id, ...fast, maxRounds: 2 });
    return recoveryWorkflowId(batch.id);
  },
  // Waits for the batch status poller's wakes, each followed by a read of the batch (recorded before the wake carried the list's counters).
  async 'poller-recovered-one-round'() {
    const batch = simulator.createScriptedBatch({ count: 4, script: { '1': ['fail', 'ok'] } });
    return withPoller(batch.id);
  },
  // Settles taken from the poller's list: a round, then a read for the report of an exhausted end.
  async 'poller-list-settles-exhausted'() {
    const batch = simulator.createScriptedBatch({ count: 4, script: { '2': 'always-fail' } });
    return withPoller(batch.id, { maxRounds: 1 });
  },
  // One patch marker standing for every earlier patch: two rounds from the list's settles, an exhausted end.
  async 'one-marker-poller-exhausted'() {
    return exhaustedInTwoRoundsWithPoller();
  },
  // Registrations with the poller through a local activity (a marker each, no signal of the recovery's own).
  async 'local-registration-poller-exhausted'() {
    return exhaustedInTwoRoundsWithPoller();
  },
  // The memo written at rest only (as a wait begins, and at the end), under one marker standing for every patch.
  async 'memo-at-rest-poller-exhausted'() {
    return exhaustedInTwoRoundsWithPoller();
  },
  // Waits for a wake or a timer through WakeableWait (under one marker standing for every patch): the poller's wakes.
  async 'wakeable-waits-poller-exhausted'() {
    return exhaustedInTwoRoundsWithPoller();
  },
  // Registrations sent again after jittered waits (under one marker standing for every patch): every list call takes
  // 1.5 s, longer than a wait for the poller (15 × 50 ms, less up to a quarter), so each wait times out at least once.
  async 'rewatch-jitter-poller-exhausted'() {
    simulator.faults.add('list', { type: 'latency', latencyMs: 1_500 });
    try {
      return await exhaustedInTwoRoundsWithPoller();
    } finally {
      simulator.faults.clear('list');
    }
  },
  // Retry calls through announceAndSendRetry, announced to the server before they are sent (under one marker
  // standing for every patch).
  async 'announced-send-poller-exhausted'() {
    return exhaustedInTwoRoundsWithPoller();
  },
  // A retry call whose worker stalled past its heartbeat timeout before announcing it: not sent, and sent again in the
  // same round. A worker of its own, on a task queue of its own, stalls the first call until the recovery has ended.
  async 'announced-send-lost-before-announcing'() {
    const batch = simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
    const taskQueue = `${stack.taskQueue}-stalled-send`;
    const connection = await NativeConnection.connect({ address: stack.server.address });
    let wake!: () => void;
    const recoveryEnded = new Promise<void>((resolve) => (wake = resolve));
    let sendCalls = 0;
    try {
      const stalling = await createRecoveryWorkers({
        connection,
        config: {
          temporal: { address: stack.server.address, namespace: stack.server.namespace, taskQueue },
          anchor: { baseUrl: simulator.url, apiKey: stack.apiKey, timeoutMs: 5_000 },
          limits: { maxCallsPerSecond: 1_000, maxConcurrentActivities: 50, maxConcurrentWorkflowTasks: 20 },
        },
        replaceActivities: (activities) => ({
          announceAndSendRetry: async (input: SendRetryInput) => {
            sendCalls += 1;
            if (sendCalls === 1) await recoveryEnded;
            return activities.announceAndSendRetry(input);
          },
        }),
      });
      await stalling.runUntil(async () => {
        const stalled = new BatchRecoveries(client, taskQueue);
        await stalled.start({ batchId: batch.id, ...fast, maxRounds: 1 });
        await stalled.result(batch.id).catch(() => undefined);
        wake();
      });
    } finally {
      wake();
      await connection.close();
    }
    return recoveryWorkflowId(batch.id);
  },
  // WakeableWait's operator wakes: a resume that changes nothing the backoff waits for, a pause held, a policy
  // update and a resume during it, and retryNow cutting two backoffs short; with the poller's wakes in between.
  async 'wakeable-waits-operator-controls'() {
    await startBatchStatusPoller(client, stack.taskQueue);
    try {
      const batchId = await startOperatedRecovery();
      await operateThroughBackoffs(batchId, { resumeUnpausedFirst: true });
      await recoveries.result(batchId).catch(() => undefined);
      return recoveryWorkflowId(batchId);
    } finally {
      await client.workflow.getHandle(batchStatusPollerWorkflowId(stack.taskQueue)).terminate('fixture recorded');
    }
  },
  // A settle that counts no sessions (pending, 0 of 0), as an operator could send one: a bare wake, and its patch.
  async 'listed-settle-counts-sessions'() {
    return settledByHand({ status: 'pending', total: 0, completed: 0, failed: 0, observedAt: 'now' });
  },
  // A settle listed `processing` with counters that account for every session, as an operator could send one: a bare
  // wake (listed-in-flight-status-not-settled), and the recovery reads its batch, still in flight.
  async 'listed-in-flight-status-not-settled'() {
    return settledByHand({ status: 'processing', total: 4, completed: 3, failed: 1, observedAt: 'now' });
  },
  // A settle listed `failed` with no failed session, as an older poller or an operator could send one: the recovery
  // stops with its report (recovery-failed-batch-not-clean), where it ended `clean`.
  async 'failed-batch-not-clean'() {
    return settledByHand({ status: 'failed', total: 4, completed: 4, failed: 0, observedAt: 'now' });
  },
  // The poller waking its recoveries with a signal of its own each (recorded before the wakes went through a local activity).
  async 'poller-wakes-by-signal'() {
    return pollerHistory();
  },
  // The poller waking its recoveries through a local activity, a page's wakes at once.
  async 'poller-wakes-through-local-activity'() {
    return pollerHistory();
  },
  // A reset of the poller that left out signals, and its continue-as-new, which names the reset run to the next.
  async 'poller-reset-continued-as-new'() {
    return resetPollerRun();
  },
  // A rest between cycles that ends when the run is due to continue as new.
  async 'poller-rest-ends-at-continue-as-new'() {
    return pollerRestEndedAtContinueAsNew();
  },
  // A run on the recoveries' queue, as a release before the poller's own queue started it, continuing as new onto
  // its own queue.
  async 'poller-moves-to-own-task-queue'() {
    return pollerRestEndedAtContinueAsNew();
  },
  // A page read the API holds, cancelled when the run nears the signal limit.
  async 'poller-cuts-step-near-signal-limit'() {
    return pollerStepCutNearSignalLimit();
  },
  // The end notification scheduled on the queue of notifications (its marker standing for every patch before it).
  async 'notify-queue-poller-exhausted'() {
    const batch = simulator.createScriptedBatch({ count: 4, script: { '2': 'always-fail' } });
    return withPoller(batch.id, { maxRounds: 1 });
  },
  // A run that goes on with the cycle its previous run stopped when it continued as new.
  async 'poller-resumes-cycle'() {
    return pollerResumedCycle();
  },
  // A rest for an hourly watch, ended by a watch of 500 ms registered during it (its marker in every run since).
  async 'poller-rest-shortened-by-new-watch'() {
    return pollerRestShortened();
  },
  // Registrations as watchBatches signals (a worker's, gathered while its last was out), to a run that takes them.
  async 'poller-takes-watch-batches'() {
    return pollerHistory();
  },
  // Registrations past the cap, handed back at once through a local activity.
  async 'poller-hands-back-past-cap-locally'() {
    return pollerPastCap();
  },
  // A page that lists no batch ends the list, whatever total_pages says, and hands back the watches not shown.
  async 'poller-empty-page-ends-list'() {
    return pollerEmptyPageEndsList();
  },
  // A recovery cancelled while the poller watches its batch, in flight: it tells the poller to drop the watch.
  async 'recovery-unwatches-batch-at-end'() {
    return (await cancelledWhileWatched()).recoveryId;
  },
  // The poller taking that unwatch, as an unwatchBatches signal (its memo says it takes them): it drops the watch, and
  // reads the list no more. The fixture poller-drops-ended-recovery-watch holds the same, as the unwatchBatch signal
  // the code before sent.
  async 'poller-takes-unwatch-batches'() {
    return (await cancelledWhileWatched()).pollerId;
  },
  // An unwatch that reaches the poller before its wait's registration (another worker's), then that registration:
  // left out, so the poller never watches the batch.
  async 'poller-leaves-out-ended-wait-registration'() {
    return registrationAfterItsUnwatch();
  },
  async sweep() {
    simulator.createScriptedBatch({ count: 3, script: { '0': ['fail', 'ok'] } });
    simulator.createScriptedBatch({ count: 2 });
    const workflowId = `fixture-sweep-${Date.now()}`;
    await client.workflow.start<typeof sweepFailedBatches>(SWEEP_FAILED_BATCHES_WORKFLOW, {
      taskQueue: stack.taskQueue,
      workflowId,
      args: [{ lookback: '1h', recovery: { ...fast } }],
    });
    return workflowId;
  },
  // A schedule's second sweep, a minute and more after the first (lookback 1m): it looks up the first and scans back
  // to where its window ended.
  async 'sweep-window-from-last-completed-sweep'() {
    return sweepReachingBack();
  },
  /** The paged listing: chunks of batch ids, skips of running recoveries, a continue-as-new, count-only paging. */
  async 'sweep-paged'() {
    return pagedSweep('fixture-sweep-paged', 10);
  },
  // The same sweep, its recoveries started in local activities: one event each instead of three, so it takes more
  // pages to reach its continue-as-new.
  async 'sweep-starts-recoveries-locally'() {
    return pagedSweep('fixture-sweep-local-starts', 30);
  },
  // A batch a shifted list shows on two pages, started and counted once.
  async 'sweep-starts-each-batch-once'() {
    return sweepOverShiftedList();
  },
  // The same, the batch shown again in upper case: started and counted once all the same.
  async 'sweep-starts-each-batch-once-in-any-case'() {
    return sweepOverShiftedList((batchId) => batchId.toUpperCase());
  },
  async 'sweep-stops-at-repeated-pages'() {
    return sweepOverRepeatingList();
  },
  // A run continued as new whose input this release refuses: it fails with the report its runs before carried.
  // A second argument typed by hand that no run can read: refused at once, the patch marker recorded.
  async 'sweep-carried-state-refused'() {
    const workflowId = `fixture-sweep-carried-state-refused-${Date.now()}`;
    await client.workflow.start(SWEEP_FAILED_BATCHES_WORKFLOW, {
      taskQueue: stack.taskQueue,
      workflowId,
      args: [{ lookback: '1h' }, { window: { createdAfter: 'yesterday' }, nextPage: 2 }],
    });
    return workflowId;
  },
  async 'sweep-continued-input-refused'() {
    return sweepWithRefusedContinuedInput('fixture-sweep-continued-input-refused');
  },
  // In its backoff, a batchSettled of JSON that is not and a retryNow of an encoding no worker knows, each taken
  // without its argument (workflows/undecodable-signal-interceptor.ts): a bare wake, then the round it asked for.
  async 'undecodable-signals-recovered'() {
    const batch = simulator.createScriptedBatch({ count: 4, script: { '2': ['fail', 'ok'] } });
    await backingOffAnHour(batch.id);
    const workflowId = recoveryWorkflowId(batch.id);
    await signalWithPayload(workflowId, 'batchSettled', { encoding: 'json/plain', data: '{"status": "cut short' });
    await signalWithPayload(workflowId, 'retryNow', { encoding: 'binary/encrypted', data: 'sealed-by-a-codec' });
    return workflowId;
  },
  // A policy update shortens the poll interval while the recovery waits for the poller: it registers again at once.
  async 'poll-change-registers'() {
    // The poller rests an hour for it; the update shortens the interval: registered again at once with the new one.
    return pollUpdatedWhileWaiting(
      { initialInterval: '1h', backoffCoefficient: 1, maximumInterval: '1h' },
      untilPollerRests,
      { poll: { initialInterval: '500ms', maximumInterval: '500ms' } },
    );
  },
  // A policy update lowers only the poll's maximum while the recovery waits for the poller: it registers again at once.
  async 'lowered-poll-maximum-registers'() {
    // Its re-registration 11.25-15 h away; the update lowers only the maximum: registered again at once, and the next
    // within 15 s.
    return pollUpdatedWhileWaiting(
      { initialInterval: '200ms', backoffCoefficient: 1, maximumInterval: '1h' },
      (_pollerId, batchId) => untilRecoveryWaits(batchId),
      { poll: { maximumInterval: '1s' } },
    );
  },
  // A call not sent (a 429): a retryNow and a pause while it waits its Retry-After; the pause holds it, and a resume
  // sends it on a fresh read, the round taking the retryNow.
  async 'round-heeds-pause-and-retry-now'() {
    const batch = simulator.createScriptedBatch({ count: 4, script: { '2': ['fail', 'ok'] } });
    simulator.faults.add('retry', { type: 'rate_limit', retryAfterSeconds: 3, times: 1, batchId: batch.id });
    await recoveries.start({ batchId: batch.id, ...fast });
    for (;;) {
      const report = await recoveries.report(batch.id);
      if (report.lastError?.type === 'rate_limited' && report.nextRetryAt !== null) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await recoveries.retryNow(batch.id);
    await recoveries.pause(batch.id);
    await waitForPhase(batch.id, 'paused');
    await recoveries.resume(batch.id);
    return recoveryWorkflowId(batch.id);
  },
  // A pause while the last round's call is out with its answer lost ends the round there, and holds the recovery; a
  // round more and a resume carry it on.
  async 'paused-at-last-round-holds'() {
    const batch = simulator.createScriptedBatch({ count: 4, script: { '2': ['fail', 'ok'] } });
    simulator.faults.add('retry', { type: 'error', statusCode: 503, latencyMs: 1_500, times: 1, batchId: batch.id });
    await recoveries.start({ batchId: batch.id, ...fast, maxRounds: 1 });
    await untilRetryCallSent(batch.id);
    await recoveries.pause(batch.id);
    await waitForPhase(batch.id, 'paused');
    await recoveries.updatePolicy(batch.id, { maxRounds: 2 });
    await recoveries.resume(batch.id);
    return recoveryWorkflowId(batch.id);
  },
  // A pause while a call not sent (a 429) waits its Retry-After, shown at once (its memo), held at the wait's end
  // without a read, and a resume that sends it on a fresh read.
  async 'resend-wait-shows-pause'() {
    const batch = simulator.createScriptedBatch({ count: 4, script: { '2': ['fail', 'ok'] } });
    simulator.faults.add('retry', { type: 'rate_limit', retryAfterSeconds: 2, times: 1, batchId: batch.id });
    await recoveries.start({ batchId: batch.id, ...fast });
    for (;;) {
      const report = await recoveries.report(batch.id);
      if (report.lastError?.type === 'rate_limited' && report.nextRetryAt !== null) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await recoveries.pause(batch.id);
    const handle = client.workflow.getHandle(recoveryWorkflowId(batch.id));
    // The hold's timer, begun at the wait's end.
    const held = async () =>
      ((await handle.fetchHistory()).events ?? []).some((event) =>
        Buffer.from(event.userMetadata?.summary?.data ?? []).includes('paused before round 1'),
      );
    while (!(await held())) await new Promise((resolve) => setTimeout(resolve, 50));
    await recoveries.resume(batch.id);
    return recoveryWorkflowId(batch.id);
  },
  // An operator's cancel in the backoff after a settle the poller's list showed: the failing sessions read for the
  // report.
  async 'cancel-reads-failing-sessions'() {
    return endedAfterListedSettle((batchId) => recoveries.cancel(batchId));
  },
  // The same cancel, its read refused (404): the report keeps the count. Recorded on 67fe5e6, where the end time was
  // set after the read and so changed the memo: the code since writes the memo there whatever the read found.
  async 'cancel-read-fails'() {
    return endedAfterListedSettle(async (batchId) => {
      simulator.faults.add('status', { type: 'error', statusCode: 404, times: 1, batchId });
      await recoveries.cancel(batchId);
    });
  },
  // A deadline in that backoff: the end stored, then the failing sessions read for the report.
  async 'deadline-reads-failing-sessions'() {
    return endedAfterListedSettle(() => Promise.resolve(), { deadline: '3s' });
  },
  // A run continued as new in its wait for the poller (started here as continue-as-new starts it), its deadline past:
  // it ends before it registers again, and tells the poller to drop the watch the run before registered.
  async 'continued-run-unwatches-carried-watch'() {
    const { batch, options, report, pollerWaitStartedAt } = continuedRunInPollerWait(-1_000, 60_000);
    await startBatchStatusPoller(client, stack.taskQueue);
    try {
      await client.workflow.start('recoverBatch', {
        ...options,
        args: [options.args[0], { report, pollerWaitStartedAt }],
      });
      await recoveries.result(batch.id);
    } finally {
      await client.workflow.getHandle(batchStatusPollerWorkflowId(stack.taskQueue)).terminate('fixture recorded');
    }
    return options.workflowId;
  },
  // The same run with an input this release refuses (an out-of-range value plays a bound a newer release tightened):
  // it stops with the report it carried, and tells the poller to drop the watch the run before registered.
  async 'continued-input-refused-unwatches-carried-watch'() {
    const { batch, options, report, pollerWaitStartedAt } = continuedRunInPollerWait(3_600_000, 60_000);
    await startBatchStatusPoller(client, stack.taskQueue);
    try {
      await client.workflow.start('recoverBatch', {
        ...options,
        args: [
          { ...options.args[0], maxRounds: 0 },
          { report, pollerWaitStartedAt },
        ],
      });
      // It fails, stopped with the report: the history is the fixture.
      await recoveries.result(batch.id).catch(() => undefined);
    } finally {
      await client.workflow.getHandle(batchStatusPollerWorkflowId(stack.taskQueue)).terminate('fixture recorded');
    }
    return options.workflowId;
  },
  // A run continued as new in its wait for the poller (started here as continue-as-new starts it) whose first workflow
  // task holds the poller's wake: it takes the settle the wake carried, and registers no more.
  async 'carried-wait-takes-early-wake'() {
    const { options, report, pollerWaitStartedAt, now } = continuedRunInPollerWait(20_000, 30_000, 60_000);
    const listed = { status: 'completed', total: 2, completed: 2, failed: 0, observedAt: new Date(now).toISOString() };
    await client.workflow.signalWithStart('recoverBatch', {
      ...options,
      args: [options.args[0], { report, pollerWaitStartedAt }],
      signal: batchSettled,
      signalArgs: [listed as ListedSettle],
    });
    return options.workflowId;
  },
};

/** A signal whose one argument is the payload given, past the client's payload converter. */
async function signalWithPayload(workflowId: string, signalName: string, payload: { encoding: string; data: string }) {
  await client.workflowService.signalWorkflowExecution({
    namespace: client.options.namespace,
    workflowExecution: { workflowId },
    signalName,
    identity: 'fixture',
    input: { payloads: [{ metadata: { encoding: Buffer.from(payload.encoding) }, data: Buffer.from(payload.data) }] },
  });
}

/**
 * The history with the workflow id it ran under, which test/replay.test.ts replays it under (workflow code may ask
 * for it), and without stack traces: they name the recording machine's paths, and replay never reads them.
 */
function fixtureJson(workflowId: string, historyJson: string): string {
  const history = JSON.parse(historyJson, (key, value: unknown) => (key === 'stackTrace' ? '' : value)) as object;
  return `${JSON.stringify({ workflowId, ...history }, null, 2)}\n`;
}

// Names on the command line record only those scenarios: committed histories are never re-recorded.
const wanted = process.argv.slice(2);

try {
  await mkdir(fixturesDir, { recursive: true });
  await workers.runUntil(async () => {
    for (const [name, run] of Object.entries(scenarios)) {
      if (wanted.length > 0 && !wanted.includes(name)) continue;
      const started = await run();
      const { workflowId, runId } = typeof started === 'string' ? { workflowId: started, runId: undefined } : started;
      await client.workflow
        .getHandle(workflowId)
        .result()
        .catch(() => undefined);
      // A continued-as-new chain is recorded from its first run, which holds the continue-as-new itself.
      const description = await client.workflow.getHandle(workflowId).describe();
      const firstRunId = description.raw.workflowExecutionInfo?.firstRunId ?? description.runId;
      const history = await client.workflow.getHandle(workflowId, runId ?? firstRunId).fetchHistory();
      await writeFile(path.join(fixturesDir, `${name}.json`), fixtureJson(workflowId, historyToJSON(history)));
      console.log(`recorded ${name}: ${history.events?.length ?? 0} events`);
    }
  });
} finally {
  await stack.stop();
}
