import {
  batchStatusPollerWorkflowId,
  RECOVER_BATCH_WORKFLOW,
  recoveryWorkflowId,
} from '../../workflows/definitions.js';
import {
  eventually,
  FAST_POLICY,
  registrationsIn,
  type RecoveryEnv,
  startRecoveryEnv,
} from '../helpers/recovery-env.js';

// The poller matches the list's batch ids with its watches in lower case (the page read gives them so): a recovery
// whose input gives the id in capitals (the Web UI's start form; an earlier release's chain) registers it so too.

let env: RecoveryEnv;

beforeAll(async () => {
  env = await startRecoveryEnv();
  await env.startPollerWorker();
});
afterAll(() => env.close());

test('a recovery whose input gives the batch id in capitals registers it with the poller in lower case', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 2, pending_phase: { ms: 600_000 } });
  const recovery = await env.client.workflow.start(RECOVER_BATCH_WORKFLOW, {
    taskQueue: env.taskQueue,
    workflowId: recoveryWorkflowId(batch.id),
    args: [{ batchId: batch.id.toUpperCase(), ...FAST_POLICY }],
  });
  try {
    const poller = env.client.workflow.getHandle(batchStatusPollerWorkflowId(env.taskQueue));
    const registered = await eventually('the registration taken', async () => {
      const taken = registrationsIn(await poller.fetchHistory()).filter(
        (request) => request.workflowId === recovery.workflowId,
      );
      return taken.length > 0 ? taken : undefined;
    });

    // Before: as typed, a watch the list's ids never matched, so each cycle read the whole list, then handed it back.
    expect(registered.map((request) => request.batchId)).toEqual(registered.map(() => batch.id));
  } finally {
    await recovery.terminate('test done');
  }
});
