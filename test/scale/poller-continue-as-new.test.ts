import { NativeConnection, type Worker } from '@temporalio/worker';
import { WorkflowFailedError } from '@temporalio/client';
import { createRecoveryWorker } from '../../worker/create-worker.js';
import type { batchStatusPoller } from '../../workflows/batch-status-poller.js';
import { BATCH_STATUS_POLLER_WORKFLOW, batchStatusPollerWorkflowId } from '../../workflows/definitions.js';
import {
  eventually,
  FAST_POLICY,
  startRecoveryEnv,
  workerConfig,
  workflowBundle,
  type RecoveryEnv,
} from '../helpers/recovery-env.js';
import { connectWorker } from '../helpers/temporal.js';

let env: RecoveryEnv;
let connection: NativeConnection;
let worker: Worker;
let running: Promise<void>;

beforeAll(async () => {
  // Sessions take a second, so recoveries stay registered across several of the poller's runs.
  env = await startRecoveryEnv({ attemptDurationMs: 1_000 });
  // Started before the worker, which then finds it running: a run continues as new after 50 events.
  await env.client.workflow.start<typeof batchStatusPoller>(BATCH_STATUS_POLLER_WORKFLOW, {
    taskQueue: env.taskQueue,
    workflowId: batchStatusPollerWorkflowId(env.taskQueue),
    args: [{ continueAsNewAfterEvents: 50 }],
  });
  connection = await connectWorker();
  worker = await createRecoveryWorker({
    config: { ...workerConfig(env.taskQueue, env.simulator.url), batchStatusPoller: true },
    connection,
    workflows: workflowBundle(),
  });
  running = worker.run();
});
afterAll(async () => {
  worker.shutdown();
  await running;
  await connection.close();
  await env.client.workflow.getHandle(batchStatusPollerWorkflowId(env.taskQueue)).terminate('test finished');
  await env.close();
});

/** A long maximum interval: no recovery registers again on its own, so every wake is the poller's. */
const POLICY = { ...FAST_POLICY, poll: { ...FAST_POLICY.poll, maximumInterval: '10s' } };
const STATUS = 'GET /v1/batch-sessions/{batch_id}';
const RETRY = 'POST /v1/batch-sessions/{batch_id}/retry';

test('the poller continues as new with its watched batches: every recovery is woken once per settle, none lost', async () => {
  const batches = Array.from({ length: 8 }, () =>
    env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } }),
  );
  for (const batch of batches) await env.recoveries.start({ batchId: batch.id, ...POLICY });
  for (const batch of batches) expect((await env.recoveries.result(batch.id)).outcome).toBe('recovered');

  // Runs that continued as new, as the server's visibility shows them.
  const continued = async () => {
    let count = 0;
    for await (const execution of env.client.workflow.list({
      query: `WorkflowId = '${batchStatusPollerWorkflowId(env.taskQueue)}'`,
    })) {
      if (execution.status.name === 'CONTINUED_AS_NEW') count += 1;
    }
    return count;
  };
  await eventually('two runs of the poller to have continued as new', async () =>
    (await continued()) >= 2 ? true : undefined,
  );

  for (const batch of batches) {
    // Both settles came from the list: the round's snapshot read and the retry call, nothing else.
    expect(env.simulator.ledger.forBatch(batch.id).calls.map((call) => call.endpoint)).toEqual([STATUS, RETRY]);
    const history = await env.recoveries.handle(batch.id).fetchHistory();
    const wakes = history.events?.filter(
      (event) => event.workflowExecutionSignaledEventAttributes?.signalName === 'batchSettled',
    );
    expect(wakes).toHaveLength(2);
  }
});

test('a poller started with a threshold out of range fails at once, naming the field', async () => {
  const handle = await env.client.workflow.start<typeof batchStatusPoller>(BATCH_STATUS_POLLER_WORKFLOW, {
    taskQueue: env.taskQueue,
    workflowId: `${batchStatusPollerWorkflowId(env.taskQueue)}-invalid`,
    args: [{ continueAsNewAfterEvents: 10 }],
  });
  const failure = await handle.result().catch((err: unknown) => err);
  expect(failure).toBeInstanceOf(WorkflowFailedError);
  expect((failure as WorkflowFailedError).cause?.message).toMatch(
    /^continueAsNewAfterEvents: expected an integer from 50 to 5000, got 10$/,
  );
});
