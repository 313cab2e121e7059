import { createPollerRegistrationActivities } from '../../activities/poller-registration-activities.js';
import {
  batchStatusPollerWorkflowId,
  recoveryWorkflowId,
  type WatchBatchRequest,
} from '../../workflows/definitions.js';
import { eventually, FAST_POLICY, signalInputs, startRecoveryEnv, type RecoveryEnv } from '../helpers/recovery-env.js';

let env: RecoveryEnv;

beforeAll(async () => {
  env = await startRecoveryEnv();
  await env.startPollerWorker();
});
afterAll(() => env.close());

/** The batch ids of the watchBatch signals in the poller's history, in order. */
async function signalledBatchIds(): Promise<string[]> {
  const history = await env.client.workflow.getHandle(batchStatusPollerWorkflowId(env.taskQueue)).fetchHistory();
  return signalInputs<WatchBatchRequest>(history, 'watchBatch').map((request) => request.batchId);
}

test('a registration reaches the poller as the watchBatch signal that older recoveries send, and answers true', async () => {
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
    await eventually('the recovery to back off', async () =>
      (await env.recoveries.report(batch.id)).phase === 'backing_off' ? true : undefined,
    );
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
