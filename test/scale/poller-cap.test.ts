import { WorkflowFailedError } from '@temporalio/client';
import type { batchStatusPoller } from '../../workflows/batch-status-poller.js';
import {
  BATCH_STATUS_POLLER_WORKFLOW,
  batchStatusPollerWorkflowId,
  isWatchingBatch,
  recoveryWorkflowId,
  watchBatch,
} from '../../workflows/definitions.js';
import { eventually, localActivityMarkers, startRecoveryEnv, type RecoveryEnv } from '../helpers/recovery-env.js';
import { uniqueTaskQueue } from '../helpers/temporal.js';

// The cap on a poller's watches (20,000, lowered here through the input): a registration past it is handed back to
// its recovery at once, and a wake that could not be sent is watched again even when the watch is full.

/** A session attempt takes a minute of the simulator's clock: a batch settles only when the test moves it on. */
const ATTEMPT_MS = 60_000;
/** No workflow id at all: the server refuses a signal to it as invalid (not as not found), and the wake is unsent. */
const UNREACHABLE_RECOVERY_ID = '';

let env: RecoveryEnv;

beforeAll(async () => {
  env = await startRecoveryEnv({ attemptDurationMs: ATTEMPT_MS, queueDelayMs: 0 });
});
afterAll(() => env.close());

const poller = () => env.client.workflow.getHandle(batchStatusPollerWorkflowId(env.taskQueue));

test('a poller at its cap hands a new registration back at once, and keeps a wake it could not send past the cap', async () => {
  // A settled batch whose recovery cannot be signalled, and one still in flight: two watches, over a cap of one, as
  // a run continued from one whose wakes could not be sent begins.
  const { id: settledBatchId } = env.simulator.createScriptedBatch({ count: 2 });
  // Created before the clock moves on (the poller lists batches created before its cycle began), and pending long after.
  const { id: inFlightBatchId } = env.simulator.createScriptedBatch({
    count: 2,
    pending_phase: { ms: 10 * ATTEMPT_MS },
  });
  env.simulator.clock.advance(ATTEMPT_MS);
  const waitStartedAt = new Date();
  await env.client.workflow.start<typeof batchStatusPoller>(BATCH_STATUS_POLLER_WORKFLOW, {
    taskQueue: env.taskQueue,
    workflowId: batchStatusPollerWorkflowId(env.taskQueue),
    args: [
      {
        maxWatchedBatches: 1,
        watched: [
          [settledBatchId, 200, UNREACHABLE_RECOVERY_ID, waitStartedAt.getTime()],
          [inFlightBatchId, 200, null, waitStartedAt.getTime()],
        ],
      },
    ],
  });
  await env.startPollerWorker();

  // The list shows the first batch settled; its wake goes out through a local activity, and fails.
  await eventually('a wake the server refused', async () =>
    localActivityMarkers(await poller().fetchHistory(), 'wakeRecoveries').length > 0 ? true : undefined,
  );
  const settledWatch = {
    batchId: settledBatchId,
    workflowId: UNREACHABLE_RECOVERY_ID,
    pollIntervalMs: 200,
    waitStartedAt: waitStartedAt.toISOString(),
  };
  // Each cycle sends its wake again, and the watch is out of the map while the wake is in flight: a query answered
  // then says false, so the test asks until a query lands between two wakes.
  await eventually('the unsent wake watched again', async () =>
    (await poller().query(isWatchingBatch, settledWatch)) ? true : undefined,
  );
  // Both watched: over the cap by the wake that could not be sent.
  const inFlightWatch = {
    batchId: inFlightBatchId,
    workflowId: recoveryWorkflowId(inFlightBatchId),
    pollIntervalMs: 200,
    waitStartedAt: waitStartedAt.toISOString(),
  };
  expect(await poller().query(isWatchingBatch, inFlightWatch)).toBe(true);

  // A new registration past the cap: woken at once, through the poller's local activity (before
  // poller-hands-back-past-cap-locally, by a signal of its own), not watched. Its recovery runs on a queue no worker
  // polls, so that its history shows the wake.
  const { id: lateBatchId } = env.simulator.createScriptedBatch({ count: 2 });
  const lateRecovery = await env.client.workflow.start('recoverBatch', {
    taskQueue: uniqueTaskQueue('nobody'),
    workflowId: recoveryWorkflowId(lateBatchId),
    args: [{ batchId: lateBatchId }],
  });
  const lateWatch = {
    ...inFlightWatch,
    batchId: lateBatchId,
    workflowId: lateRecovery.workflowId,
    waitStartedAt: new Date().toISOString(),
  };
  await poller().signal(watchBatch, lateWatch);
  await eventually('the late registration handed back', async () => {
    const events = (await lateRecovery.fetchHistory()).events ?? [];
    return events.some((event) => event.workflowExecutionSignaledEventAttributes?.signalName === 'batchSettled')
      ? true
      : undefined;
  });
  const pollerEvents = (await poller().fetchHistory()).events ?? [];
  expect(pollerEvents.filter((event) => event.signalExternalWorkflowExecutionInitiatedEventAttributes)).toEqual([]);
  expect(await poller().query(isWatchingBatch, lateWatch)).toBe(false);
  await lateRecovery.terminate('test done');
  await poller().terminate('test done');
});

test('a poller started with a cap out of range fails at once, naming the field', async () => {
  const handle = await env.client.workflow.start<typeof batchStatusPoller>(BATCH_STATUS_POLLER_WORKFLOW, {
    taskQueue: env.taskQueue,
    workflowId: `${batchStatusPollerWorkflowId(env.taskQueue)}-invalid-cap`,
    args: [{ maxWatchedBatches: 0 }],
  });
  const failure = await handle.result().catch((err: unknown) => err);
  expect(failure).toBeInstanceOf(WorkflowFailedError);
  expect((failure as WorkflowFailedError).cause?.message).toMatch(
    /^maxWatchedBatches: expected an integer from 1 to 20000, got 0$/,
  );
});
