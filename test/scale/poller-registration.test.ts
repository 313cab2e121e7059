import type { temporal } from '@temporalio/proto';
import { createPollerRegistrationActivities } from '../../activities/poller-registration-activities.js';
import { batchStatusPollerWorkflowId, recoveryWorkflowId } from '../../workflows/definitions.js';
import { eventually, startRecoveryEnv, type RecoveryEnv } from '../helpers/recovery-env.js';

let env: RecoveryEnv;

beforeAll(async () => {
  env = await startRecoveryEnv();
  await env.startPollerWorker();
});
afterAll(() => env.close());

function pollerHistory(): Promise<temporal.api.history.v1.IHistory> {
  return env.client.workflow.getHandle(batchStatusPollerWorkflowId(env.taskQueue)).fetchHistory();
}

/** The registrations of each watchBatches signal in the poller's history, in order. */
async function signalledRegistrations(): Promise<number[]> {
  return ((await pollerHistory()).events ?? [])
    .map((event) => event.workflowExecutionSignaledEventAttributes)
    .filter((signal) => signal?.signalName === 'watchBatches')
    .map((signal) => {
      const data = signal?.input?.payloads?.[0]?.data;
      return (JSON.parse(Buffer.from(data ?? []).toString()) as unknown[]).length;
    });
}

test('a burst of registrations reaches the poller as few signals: those that come while one is in flight go in the next', async () => {
  const activities = createPollerRegistrationActivities(env.client);
  const batchIds = Array.from({ length: 50 }, (_, i) => `registration-burst-${i}`);
  const registered = await Promise.all(
    batchIds.map((batchId) =>
      activities.watchBatchWithPoller({
        taskQueue: env.taskQueue,
        batchId,
        workflowId: recoveryWorkflowId(batchId),
        pollIntervalMs: 60_000,
      }),
    ),
  );

  expect(registered).toEqual(batchIds.map(() => true));
  // The first went out alone; the other 49 came while it was in flight and went out together.
  expect(
    await eventually('both signals in the poller history', async () => {
      const signals = await signalledRegistrations();
      return signals.length === 2 ? signals : undefined;
    }),
  ).toEqual([1, 49]);
  // The run recorded its patch once, with the first: a run older code began would not take them on replay.
  const patchIds = await eventually('the poller to take the signals', async () => {
    const ids = ((await pollerHistory()).events ?? [])
      .filter((event) => event.markerRecordedEventAttributes?.markerName === 'core_patch')
      .map((event) => {
        const data = event.markerRecordedEventAttributes?.details?.['patch-data']?.payloads?.[0]?.data;
        return (JSON.parse(Buffer.from(data ?? []).toString()) as { id: string }).id;
      });
    return ids.length > 0 ? ids : undefined;
  });
  expect(patchIds).toEqual(['poller-watch-batches']);
});

test('with no poller on the queue, a registration answers false and the recovery polls its batch itself', async () => {
  const activities = createPollerRegistrationActivities(env.client);
  const registered = await activities.watchBatchWithPoller({
    taskQueue: `${env.taskQueue}-without-poller`,
    batchId: 'no-poller',
    workflowId: recoveryWorkflowId('no-poller'),
    pollIntervalMs: 60_000,
  });

  expect(registered).toBe(false);
});
