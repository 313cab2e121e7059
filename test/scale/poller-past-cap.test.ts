import { randomUUID } from 'node:crypto';
import type { batchStatusPoller } from '../../workflows/batch-status-poller.js';
import {
  BATCH_STATUS_POLLER_WORKFLOW,
  batchStatusPollerWorkflowId,
  recoveryWorkflowId,
  watchBatch,
  watchBatches,
  type WatchBatchRequest,
} from '../../workflows/definitions.js';
import { eventually, localActivityMarkers, startRecoveryEnv, type RecoveryEnv } from '../helpers/recovery-env.js';
import { uniqueTaskQueue } from '../helpers/temporal.js';

// Registrations that reach a full poller are handed straight back to their recoveries' own reads.
let env: RecoveryEnv;

beforeAll(async () => {
  env = await startRecoveryEnv();
});
afterAll(() => env.close());

/** More than the server lets one workflow task leave signals pending (limit.numPendingSignals, 2,000 by default). */
const PAST_CAP = 2_200;
const PER_SIGNAL = 100;

test('registrations past the cap, more in one workflow task than the server lets it leave signals pending, are all handed back', async () => {
  // Before, each was a signal sent from the poller's workflow code: the task that took them failed at every attempt,
  // and the poller woke no recovery again.
  const batchId = randomUUID();
  // The recovery every registration names: on a queue no worker polls, it only takes the wakes.
  const recovery = await env.client.workflow.start('recoverBatch', {
    taskQueue: uniqueTaskQueue('nobody'),
    workflowId: recoveryWorkflowId(batchId),
    args: [{ batchId }],
  });
  try {
    const poller = await env.client.workflow.start<typeof batchStatusPoller>(BATCH_STATUS_POLLER_WORKFLOW, {
      taskQueue: env.taskQueue,
      workflowId: batchStatusPollerWorkflowId(env.taskQueue),
      args: [{ maxWatchedBatches: 1 }],
    });
    const registration = (index: number): WatchBatchRequest => ({
      batchId: `past-cap-${index}`,
      workflowId: recovery.workflowId,
      pollIntervalMs: 60_000,
    });
    // Sent before any worker polls the poller's queue, so that its first workflow task takes them all: the first
    // fills the watch, which no page lists (handed back at the cycle's end), and the rest are past the cap.
    await poller.signal(watchBatch, registration(0));
    for (let first = 1; first <= PAST_CAP; first += PER_SIGNAL) {
      await poller.signal(
        watchBatches,
        Array.from({ length: PER_SIGNAL }, (_, offset) => registration(first + offset)),
      );
    }
    await env.startPollerWorker();

    const wakes = await eventually(
      'every registration handed back',
      async () => {
        // Without an argument: none of these batches was listed settled.
        const taken = ((await recovery.fetchHistory()).events ?? []).filter(
          (event) => event.workflowExecutionSignaledEventAttributes?.signalName === 'batchSettled',
        );
        return taken.length >= PAST_CAP + 1 ? taken : undefined;
      },
      120_000,
    );
    // A local activity's wakes reach the recovery before its marker reaches the poller's history: the marker is
    // written with the workflow task that takes the local activity's result.
    const expectedWakeActivities = Math.ceil(PAST_CAP / 500) + 1;
    const history = await eventually('every wake local activity recorded', async () => {
      const polled = await poller.fetchHistory();
      return localActivityMarkers(polled, 'wakeRecoveries').length >= expectedWakeActivities ? polled : undefined;
    });
    const events = history.events ?? [];

    expect(wakes).toHaveLength(PAST_CAP + 1);
    expect(events.filter((event) => event.workflowTaskFailedEventAttributes)).toEqual([]);
    expect(events.filter((event) => event.signalExternalWorkflowExecutionInitiatedEventAttributes)).toEqual([]);
    // 500 a local activity: five for those past the cap, one for the watch the cycle handed back.
    expect(localActivityMarkers(history, 'wakeRecoveries')).toHaveLength(expectedWakeActivities);
  } finally {
    await recovery.terminate('test over');
  }
}, 180_000);
