import { WorkflowFailedError } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import proto from '@temporalio/proto';
import { createRecoveryWorkers } from '../../worker/create-worker.js';
import type { batchStatusPoller, BatchStatusPollerInput } from '../../workflows/batch-status-poller.js';
import {
  BATCH_STATUS_POLLER_WORKFLOW,
  batchStatusPollerWorkflowId,
  recoveryWorkflowId,
  watchBatch,
} from '../../workflows/definitions.js';
import {
  batchDeepInList,
  eventually,
  FAST_POLICY,
  startRecoveryEnv,
  workerConfig,
  workflowBundle,
  type RecoveryEnv,
  PRODUCT_API_TIMEOUT,
} from '../helpers/recovery-env.js';
import { connectWorker, uniqueTaskQueue } from '../helpers/temporal.js';

const { EventType } = proto.temporal.api.enums.v1;

// A list longer than one poller run reads: the runs continue as new mid-cycle, and each goes on where the last
// stopped. Before, each began again at page 1, so a watched batch further down was never reached.

let env: RecoveryEnv;

/** A session attempt takes a minute of the simulator's clock: a batch settles only when the test moves it on. */
const ATTEMPT_MS = 60_000;
/** Batches listed before the recovery's: 30 pages of 100. */
const NEWER_BATCHES = 3_000;
const LIST = 'GET /v1/batch-sessions';
const RETRY = 'POST /v1/batch-sessions/{batch_id}/retry';

beforeAll(async () => {
  env = await startRecoveryEnv({ attemptDurationMs: ATTEMPT_MS, queueDelayMs: 0 });
  // Started before the worker, which then finds it running: a run continues as new after 50 events, a few steps.
  await env.client.workflow.start<typeof batchStatusPoller>(BATCH_STATUS_POLLER_WORKFLOW, {
    taskQueue: env.taskQueue,
    workflowId: batchStatusPollerWorkflowId(env.taskQueue),
    args: [{ continueAsNewAfterEvents: 50 }],
  });
  await env.startPollerWorker(PRODUCT_API_TIMEOUT);
});
afterAll(() => env.close());

/** The poller chain's runs so far. */
async function pollerRunCount(): Promise<number> {
  let runs = 0;
  for await (const run of env.client.workflow.list({
    query: `WorkflowId = '${batchStatusPollerWorkflowId(env.taskQueue)}'`,
  })) {
    if (run.workflowId) runs += 1;
  }
  return runs;
}

test('a cycle longer than a run goes on in the next run where it stopped: a batch deep in the list is woken', async () => {
  const batch = batchDeepInList(env.simulator, NEWER_BATCHES);
  // Settled before the recovery registers: the first cycle that reaches its page wakes it.
  env.simulator.clock.advance(ATTEMPT_MS);
  await env.recoveries.start({
    batchId: batch.id,
    ...FAST_POLICY,
    poll: { initialInterval: '1s', backoffCoefficient: 1, maximumInterval: '10s' },
  });
  await eventually('the retry call', () => (env.retryPosts(batch.id).length === 1 ? true : undefined), 60_000);
  const retryAt = env.retryPosts(batch.id)[0]!.receivedAtMs;
  env.simulator.clock.advance(ATTEMPT_MS);
  const report = await env.recoveries.result(batch.id);

  expect(report.outcome).toBe('recovered');
  expect(env.retryPosts(batch.id)).toHaveLength(1);
  // The recovery read nothing of its own: the list showed its settle.
  const calls = env.simulator.ledger.all().calls;
  expect(calls.filter((call) => call.endpoint === RETRY)).toHaveLength(1);
  expect(env.simulator.ledger.forBatch(batch.id).calls.filter((call) => call.method === 'GET')).toHaveLength(1);
  // Up to the wake, one cycle: each of the 31 pages read once, across more than one run.
  const pagesBeforeWake = calls
    .filter((call) => call.endpoint === LIST && call.receivedAtMs < retryAt)
    .map((call) => Number(new URL(call.path, 'http://list').searchParams.get('page')));
  expect(pagesBeforeWake.sort((a, b) => a - b)).toEqual(Array.from({ length: 31 }, (_, index) => index + 1));
  // Visibility lags the runs a little.
  await eventually('a second poller run listed', async () => ((await pollerRunCount()) > 1 ? true : undefined));
}, 120_000);

test('a poller started with a carried cycle out of range fails at once, naming the field', async () => {
  const started = async (resumeCycle: unknown) => {
    const handle = await env.client.workflow.start<typeof batchStatusPoller>(BATCH_STATUS_POLLER_WORKFLOW, {
      taskQueue: env.taskQueue,
      workflowId: `${batchStatusPollerWorkflowId(env.taskQueue)}-invalid-${Math.random()}`,
      args: [{ watched: [['b', 1000]], resumeCycle } as BatchStatusPollerInput],
    });
    const failure = await handle.result().catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(WorkflowFailedError);
    return (failure as WorkflowFailedError).cause?.message;
  };
  const cycle = { createdBefore: new Date().toISOString(), nextPage: 2, lastPage: 3, unseen: 1 };

  expect(await started({ ...cycle, nextPage: 0 })).toBe('resumeCycle.nextPage: expected an integer from 1, got 0');
  expect(await started({ ...cycle, unseen: 2 })).toBe(
    'resumeCycle.unseen: expected an integer from 0 to 1 (the watched batches), got 2',
  );
  expect(await started({ ...cycle, createdBefore: 'yesterday' })).toBe(
    'resumeCycle.createdBefore: expected a date-time, got "yesterday"',
  );
});

test('a run due to continue as new before its first cycle hands the carried cycle on unchanged', async () => {
  // A queue no worker serves yet, so that registrations fill the run's history before its first workflow task.
  const taskQueue = uniqueTaskQueue('carried-cycle');
  const workflowId = batchStatusPollerWorkflowId(taskQueue);
  const resumeCycle = {
    createdBefore: new Date(Date.now() - 60_000).toISOString(),
    nextPage: 7,
    lastPage: 9,
    unseen: 2,
  };
  const poller = await env.client.workflow.start<typeof batchStatusPoller>(BATCH_STATUS_POLLER_WORKFLOW, {
    taskQueue,
    workflowId,
    args: [
      {
        continueAsNewAfterEvents: 50,
        watched: [
          ['unseen-a', 1_000],
          ['unseen-b', 1_000],
          ['seen', 1_000],
        ],
        resumeCycle,
      },
    ],
  });
  const firstRunId = poller.firstExecutionRunId;
  for (let index = 0; index < 50; index += 1) {
    const batchId = `registered-${index}`;
    await poller.signal(watchBatch, {
      batchId,
      workflowId: recoveryWorkflowId(batchId),
      pollIntervalMs: 1_000,
      waitStartedAt: new Date().toISOString(),
    });
  }
  const connection = await connectWorker();
  let secondRunInput: BatchStatusPollerInput | undefined;
  let firstRunEvents: proto.temporal.api.history.v1.IHistoryEvent[] = [];
  try {
    const workers = await createRecoveryWorkers({
      config: workerConfig(taskQueue, env.simulator.url),
      connection,
      workflows: workflowBundle(),
    });
    await workers.runUntil(async () => {
      const secondRunId = await eventually('the second run', async () => {
        const { runId } = await poller.describe();
        return runId === firstRunId ? undefined : runId;
      });
      const started = (await env.client.workflow.getHandle(workflowId, secondRunId).fetchHistory()).events?.[0];
      const [input] = started?.workflowExecutionStartedEventAttributes?.input?.payloads ?? [];
      secondRunInput = input && defaultPayloadConverter.fromPayload<BatchStatusPollerInput>(input);
      await poller.terminate('test finished');
    });
    firstRunEvents = (await env.client.workflow.getHandle(workflowId, firstRunId).fetchHistory()).events ?? [];
  } finally {
    await connection.close();
  }

  // The first run read no page: it continued as new at its first task, with the cycle it was given.
  expect(firstRunEvents.map((event) => event.eventType)).toContain(
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
  );
  expect(firstRunEvents.filter((event) => event.activityTaskScheduledEventAttributes)).toEqual([]);
  expect(secondRunInput?.resumeCycle).toEqual(resumeCycle);
  expect(secondRunInput?.watched?.slice(0, 2).map(([batchId]) => batchId)).toEqual(['unseen-a', 'unseen-b']);
  expect(secondRunInput?.watched).toHaveLength(53);
});
