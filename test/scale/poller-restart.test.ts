import { createRecoveryWorkers } from '../../worker/create-worker.js';
import { batchStatusPollerWorkflowId } from '../../workflows/definitions.js';
import { eventually, workerConfig, workflowBundle } from '../helpers/recovery-env.js';
import { connectClient, connectWorker, uniqueTaskQueue } from '../helpers/temporal.js';

// The BatchStatusPollerStuck runbook terminates the poller and counts on the workers to start a new one. Workers
// started it only as their process began: a terminated poller stayed gone, and every recovery read its batch itself.
// No recovery runs here, so the poller reads no page and the API's address is never called.

test('a worker with the poller starts a new one once the running one is terminated', async () => {
  const taskQueue = uniqueTaskQueue('poller-restart');
  const client = await connectClient();
  const connection = await connectWorker();
  const poller = client.workflow.getHandle(batchStatusPollerWorkflowId(taskQueue));
  try {
    const workers = await createRecoveryWorkers({
      config: { ...workerConfig(taskQueue, 'http://127.0.0.1:9'), batchStatusPoller: true },
      connection,
      workflows: workflowBundle(),
      pollerCheckIntervalMs: 200,
    });
    const restarted = await workers.runUntil(async () => {
      const first = await poller.describe();
      await poller.terminate('the runbook restarts a stuck poller');
      return await eventually('a new poller run', async () => {
        const latest = await poller.describe();
        return latest.status.name === 'RUNNING' && latest.runId !== first.runId ? { first, latest } : undefined;
      });
    });

    expect(restarted.first.status.name).toBe('RUNNING');
    expect(restarted.latest.status.name).toBe('RUNNING');
    expect(restarted.latest.runId).not.toBe(restarted.first.runId);
  } finally {
    await poller.terminate('test finished').catch(() => undefined);
    await connection.close();
    await client.connection.close();
  }
});
