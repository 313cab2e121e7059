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

/** The batch ids of the watchBatch signals in the poller's history, in order. */
async function signalledBatchIds(): Promise<string[]> {
  const history: temporal.api.history.v1.IHistory = await env.client.workflow
    .getHandle(batchStatusPollerWorkflowId(env.taskQueue))
    .fetchHistory();
  return (history.events ?? [])
    .map((event) => event.workflowExecutionSignaledEventAttributes)
    .filter((signal) => signal?.signalName === 'watchBatch')
    .map((signal) => {
      const data = signal?.input?.payloads?.[0]?.data;
      return (JSON.parse(Buffer.from(data ?? []).toString()) as { batchId: string }).batchId;
    });
}

test('a registration reaches the poller as the watchBatch signal that older recoveries send, and answers true', async () => {
  const activities = createPollerRegistrationActivities(env.client);
  const registered = await activities.watchBatchWithPoller({
    taskQueue: env.taskQueue,
    batchId: 'registered-batch',
    workflowId: recoveryWorkflowId('registered-batch'),
    pollIntervalMs: 60_000,
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
