import { fileURLToPath } from 'node:url';
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { connectClient, connectWorker, temporalNamespace, uniqueTaskQueue } from '../helpers/temporal.js';
import * as activities from './activities.js';
import { smokeWorkflow } from './workflows.js';

const { EventType } = temporal.api.enums.v1;

test('a trivial workflow and activity run on the dev server and leave a readable history', async () => {
  const client = await connectClient();
  const connection = await connectWorker();
  const taskQueue = uniqueTaskQueue('smoke');
  const workflowId = `${taskQueue}-wf`;
  try {
    const worker = await Worker.create({
      connection,
      namespace: temporalNamespace(),
      taskQueue,
      workflowsPath: fileURLToPath(new URL('./workflows.ts', import.meta.url)),
      activities,
    });
    const result = await worker.runUntil(
      client.workflow.execute(smokeWorkflow, { taskQueue, workflowId, args: ['temporal'] }),
    );
    expect(result).toBe('hello, temporal');

    const history = await client.workflow.getHandle(workflowId).fetchHistory();
    const types = history.events?.map((event) => event.eventType) ?? [];
    expect(types[0]).toBe(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED);
    expect(types).toContain(EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED);
    expect(types.at(-1)).toBe(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED);
  } finally {
    await connection.close();
    await client.connection.close();
  }
});
