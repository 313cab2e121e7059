import { randomUUID } from 'node:crypto';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { createPollerRegistrationActivities } from '../../activities/poller-registration-activities.js';
import { startBatchStatusPoller } from '../../worker/create-worker.js';
import {
  BATCH_STATUS_POLLER_WORKFLOW,
  batchStatusPollerWorkflowId,
  recoveryWorkflowId,
  type WatchBatchRequest,
} from '../../workflows/definitions.js';
import { eventually, signalInputs, startRecoveryEnv, type RecoveryEnv } from '../helpers/recovery-env.js';

// A registration sent again during the same wait is signalled only when the poller's chain that took the first one
// no longer runs: the server answers from the poller's state, and no query waits for the poller's worker.

let env: RecoveryEnv;

beforeAll(async () => {
  env = await startRecoveryEnv();
  // Started before its worker, which then keeps it (USE_EXISTING): a run that continues as new after 50 events.
  await env.client.workflow
    .start(BATCH_STATUS_POLLER_WORKFLOW, {
      taskQueue: env.taskQueue,
      workflowId: batchStatusPollerWorkflowId(env.taskQueue),
      args: [{ continueAsNewAfterEvents: 50 }],
    })
    .catch((err: unknown) => {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    });
  await env.startPollerWorker();
});
afterAll(() => env.close());

const poller = () => env.client.workflow.getHandle(batchStatusPollerWorkflowId(env.taskQueue));

/**
 * The batch ids of the watchBatch signals in the poller's current run, up to a probe registration sent now: the
 * server writes a signal that comes while a workflow task runs only once the task completes, and in order.
 */
async function signalledBatchIds(activities: ReturnType<typeof createPollerRegistrationActivities>): Promise<string[]> {
  const probe = `probe-${randomUUID()}`;
  await activities.watchBatchWithPoller(registration(probe, new Date().toISOString()));
  return eventually(`the probe ${probe} in the poller's history`, async () => {
    const batchIds = signalInputs<WatchBatchRequest>(await poller().fetchHistory(), 'watchBatch').map(
      (request) => request.batchId,
    );
    const probeAt = batchIds.indexOf(probe);
    return probeAt === -1 ? undefined : batchIds.slice(0, probeAt);
  });
}

const registration = (batchId: string, waitStartedAt: string) => ({
  taskQueue: env.taskQueue,
  batchId,
  workflowId: recoveryWorkflowId(batchId),
  // The list does not show these batches: the next cycle hands them back, to recoveries that do not exist.
  pollIntervalMs: 200,
  waitStartedAt,
});

test('a registration sent again is not signalled while the chain that took it runs, across continue-as-new; one started since gets it', async () => {
  const activities = createPollerRegistrationActivities(env.client);
  const waitStartedAt = new Date().toISOString();
  expect(await activities.watchBatchWithPoller(registration('carried', waitStartedAt))).toBe(true);
  const { runId: firstRunId } = await poller().describe();

  // Registrations of other waits fill the run's history until it continues as new.
  let filler = 0;
  await eventually('the poller to continue as new', async () => {
    await activities.watchBatchWithPoller(registration(`filler-${(filler += 1)}`, new Date().toISOString()));
    return (await poller().describe()).runId !== firstRunId ? true : undefined;
  });
  expect(await activities.watchBatchWithPoller({ ...registration('carried', waitStartedAt), resent: true })).toBe(true);
  expect(await signalledBatchIds(activities)).not.toContain('carried');

  // Terminated and started again: a new chain, begun after the wait, which the registration must reach.
  await poller().terminate('test: the poller loses its watches');
  await startBatchStatusPoller(env.client, env.taskQueue);
  expect(await activities.watchBatchWithPoller({ ...registration('carried', waitStartedAt), resent: true })).toBe(true);
  expect(await signalledBatchIds(activities)).toEqual(['carried']);

  // Ended and not started again: the recovery reads its batch on its own.
  await poller().terminate('test: no poller');
  expect(await activities.watchBatchWithPoller({ ...registration('carried', waitStartedAt), resent: true })).toBe(
    false,
  );
}, 60_000);
