import { randomUUID } from 'node:crypto';
import proto from '@temporalio/proto';
import { DeterminismViolationError } from '@temporalio/workflow';
import { Worker } from '@temporalio/worker';
import type { RecoveryWorkerOptions } from '../../worker/create-worker.js';
import { recoveryWorkflowId } from '../../workflows/definitions.js';
import { RESET_RUN_RECONCILES_FIRST_PATCH } from '../../workflows/recover-batch.js';
import { recoveryStartOptions } from '../../workflows/recovery-start.js';
import { newReport } from '../../workflows/report.js';
import type { SendRetryInput, SendRetryResult } from '../../workflows/retry-protocol.js';
import {
  eventually,
  FAST_POLICY,
  patchMarkerIds,
  reachesPhase,
  startRecoveryEnv,
  TEST_API_KEY,
  withOwnWorker,
  workflowBundle,
  type RecoveryEnv,
} from '../helpers/recovery-env.js';

// An operator's reset of a recovery (the Web UI's Reset, `temporal workflow reset`) runs its code again from a
// workflow task of its history: the run it ends may have sent a retry call after that point, which the new run's
// history does not hold (docs/retry-protocol.md, "Reset"). Each test counts what reached the simulator.

let env: RecoveryEnv;

beforeAll(async () => {
  env = await startRecoveryEnv();
  await env.startWorker();
});
afterAll(() => env.close());
afterEach(() => env.simulator.faults.clear());

const appliedRetries = (batchId: string) => env.simulator.ledger.forBatch(batchId).retries;

const { EventType } = proto.temporal.api.enums.v1;
type HistoryEvent = proto.temporal.api.history.v1.IHistoryEvent;

const isSendScheduled = (event: HistoryEvent) =>
  event.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED &&
  event.activityTaskScheduledEventAttributes?.activityType?.name === 'announceAndSendRetry';

const isStatusReadScheduled = (event: HistoryEvent) =>
  event.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED &&
  ['readRetrySnapshot', 'readBatchBeforeRetry'].includes(
    event.activityTaskScheduledEventAttributes?.activityType?.name ?? '',
  );

async function resetRecovery(
  client: RecoveryEnv['client'],
  batchId: string,
  workflowTaskFinishEventId: HistoryEvent['eventId'],
) {
  const workflowId = recoveryWorkflowId(batchId);
  const { runId } = await client.workflow.getHandle(workflowId).describe();
  const reset = await client.workflowService.resetWorkflowExecution({
    namespace: client.options.namespace,
    workflowExecution: { workflowId, runId },
    reason: 'test: an operator resets the recovery',
    workflowTaskFinishEventId,
    requestId: randomUUID(),
  });
  return { baseRunId: runId, resetRunId: reset.runId ?? '' };
}

async function historyEvents(client: RecoveryEnv['client'], batchId: string, runId?: string) {
  const history = await client.workflow.getHandle(recoveryWorkflowId(batchId), runId).fetchHistory();
  return { history, events: history.events ?? [] };
}

test('a reset to the task that scheduled an applied call reconciles first: the call is not sent again', async () => {
  // The retried session fails again at once: only its retry count shows the call was applied.
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'fail', 'ok'] } });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY, maxRounds: 1 });
  const first = await env.recoveries.result(batch.id);
  expect(first.rounds).toEqual([expect.objectContaining({ apiStatus: 200, reconciled: false, callsSent: 1 })]);
  expect(appliedRetries(batch.id)).toHaveLength(1);

  const { history, events } = await historyEvents(env.client, batch.id);
  // A run no reset began never asks for the patch.
  expect(patchMarkerIds(history)).not.toContain(RESET_RUN_RECONCILES_FIRST_PATCH);
  const scheduled = events.find(isSendScheduled);
  const taskThatSent = scheduled?.activityTaskScheduledEventAttributes?.workflowTaskCompletedEventId;
  expect(taskThatSent).toBeDefined();
  const { baseRunId, resetRunId } = await resetRecovery(env.client, batch.id, taskThatSent);
  expect(resetRunId).not.toBe(baseRunId);

  const report = await env.recoveries.result(batch.id);
  // Before, the new run sent the call again on the read its history held, and the API applied it: two retries.
  expect(appliedRetries(batch.id)).toHaveLength(1);
  expect(env.retryPosts(batch.id)).toHaveLength(1);
  expect(report.rounds).toEqual([
    expect.objectContaining({
      reconciled: true,
      reconcileEffect: 'took_effect',
      retriedSessions: 1,
      callsSent: 1,
      apiMessage: expect.stringContaining('reset: the run before may have sent'),
    }),
  ]);
  expect(report.outcome).toBe('exhausted');
  const resetRun = await historyEvents(env.client, batch.id, resetRunId);
  expect(resetRun.events.filter(isSendScheduled)).toHaveLength(0);
  expect(patchMarkerIds(resetRun.history)).toContain(RESET_RUN_RECONCILES_FIRST_PATCH);
  // The rollback runbook's query for runs that recorded it (docs/deployment.md), narrowed to this recovery.
  const query =
    `WorkflowId = "${recoveryWorkflowId(batch.id)}" AND ` +
    `TemporalChangeVersion IN ("${RESET_RUN_RECONCILES_FIRST_PATCH}")`;
  const listedRuns = await eventually('the reset run listed by its marker', async () => {
    const runIds: string[] = [];
    for await (const execution of env.client.workflow.list({ query })) runIds.push(execution.runId);
    return runIds.length > 0 ? runIds : undefined;
  });
  expect(listedRuns).toEqual([resetRunId]);
  // A replay tool runs the history under the original run's id, where the run was not begun by a reset.
  await expect(Worker.runReplayHistory(workflowBundle(), resetRun.history)).rejects.toThrow(DeterminismViolationError);
}, 90_000);

test('a reset while the call is out leaves the new run nothing to send: it reconciles the call of the run before', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'fail', 'ok'] } });
  const sendInputs: SendRetryInput[] = [];
  let callSent!: () => void;
  const sent = new Promise<void>((resolve) => (callSent = resolve));
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let secondOutcome: Promise<SendRetryResult> | undefined;
  const replace: NonNullable<RecoveryWorkerOptions['replaceActivities']> = (activities) => ({
    /** The first attempt sends its call, then holds its outcome until the test has reset the recovery. */
    announceAndSendRetry: async (input: SendRetryInput) => {
      sendInputs.push(input);
      if (sendInputs.length > 1) return (secondOutcome = activities.announceAndSendRetry(input));
      const outcome = await activities.announceAndSendRetry(input);
      callSent();
      await released;
      return outcome;
    },
  });
  try {
    const report = await withOwnWorker(env.simulator.url, replace, async (recoveries, client) => {
      await recoveries.start({ batchId: batch.id, ...FAST_POLICY, maxRounds: 1 });
      await sent;
      // A workflow task after the call was scheduled, while it is out: a reset to it keeps the call scheduled.
      await recoveries.retryNow(batch.id);
      const taskAfterCall = await eventually('a workflow task to complete after the call was scheduled', async () => {
        const { events } = await historyEvents(client, batch.id);
        const scheduledAt = events.findIndex(isSendScheduled);
        if (scheduledAt < 0) return undefined;
        return events
          .slice(scheduledAt)
          .find((event) => event.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)?.eventId;
      });
      await resetRecovery(client, batch.id, taskAfterCall);
      release();
      return recoveries.result(batch.id);
    });

    // The server handed the call the reset left scheduled to the new run, whose attempt sent nothing.
    expect(sendInputs).toHaveLength(2);
    await expect(secondOutcome).resolves.toEqual(expect.objectContaining({ kind: 'unknown', errorType: 'reset' }));
    expect(appliedRetries(batch.id)).toHaveLength(1);
    expect(env.retryPosts(batch.id)).toHaveLength(1);
    expect(report.rounds).toEqual([
      expect.objectContaining({
        reconciled: true,
        reconcileEffect: 'took_effect',
        callsSent: 1,
        apiMessage: expect.stringContaining('reset while the call was out'),
      }),
    ]);
    expect(report.outcome).toBe('exhausted');
  } finally {
    release();
  }
}, 120_000);

test('a reset to the task that read the batch, while the API has not applied the call yet, reconciles first', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'fail', 'ok'] } });
  await env.recoveries.start({
    batchId: batch.id,
    ...FAST_POLICY,
    roundBackoff: { initialInterval: '1h', maximumInterval: '1h' },
    maxRounds: 1,
  });
  await reachesPhase(env.recoveries, batch.id, 'backing_off');
  // The API applies the call 8 s after it arrives: the new run's read of the batch comes before that.
  env.simulator.faults.add('retry', { type: 'latency', latencyMs: 8_000, times: 1, batchId: batch.id });
  await env.recoveries.retryNow(batch.id);
  await eventually('the call to reach the API', () => (env.retryPosts(batch.id).length > 0 ? true : undefined));
  const { events } = await historyEvents(env.client, batch.id);
  const taskThatRead = events.filter(isStatusReadScheduled).at(-1)
    ?.activityTaskScheduledEventAttributes?.workflowTaskCompletedEventId;
  expect(taskThatRead).toBeDefined();
  await resetRecovery(env.client, batch.id, taskThatRead);

  const report = await env.recoveries.result(batch.id);
  // Before, the new run read the batch still failed and sent the call at once: the API applied both.
  expect(appliedRetries(batch.id)).toHaveLength(1);
  expect(env.retryPosts(batch.id)).toHaveLength(1);
  expect(report.rounds).toEqual([
    expect.objectContaining({ reconciled: true, reconcileEffect: 'took_effect', retriedSessions: 1, callsSent: 1 }),
  ]);
}, 120_000);

test('a run continued as new from a reset run before its first call reconciles that call first', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'fail', 'ok'] } });
  await eventually('the batch to settle with a failure', () =>
    batch.status(Date.now()) === 'failed' ? true : undefined,
  );
  // The call of the run the reset ended, which the API applies 8 s after it arrives.
  env.simulator.faults.add('retry', { type: 'latency', latencyMs: 8_000, times: 1, batchId: batch.id });
  const oldRunsCall = fetch(`${env.simulator.url}/v1/batch-sessions/${batch.id}/retry`, {
    method: 'POST',
    headers: { 'anchor-api-key': TEST_API_KEY, 'content-type': 'application/json' },
    body: JSON.stringify({ retry_failed_only: true, max_retries: 1 }),
  });
  await eventually('the call to reach the API', () => (env.retryPosts(batch.id).length > 0 ? true : undefined));
  // The reset run continued as new before its first call: the run it started is no reset run, and its input says.
  const options = recoveryStartOptions({ batchId: batch.id, ...FAST_POLICY, maxRounds: 1 }, env.taskQueue);
  const report = newReport(batch.id, options.workflowId, new Date(), new Date(Date.now() + 3_600_000), 1);
  report.continuedAsNew = 1;
  await env.client.workflow.start('recoverBatch', {
    ...options,
    args: [options.args[0], { report, resetToReconcile: true }],
  });

  const ended = await env.recoveries.result(batch.id);
  expect((await oldRunsCall).status).toBe(200);
  // Without it, the run read the batch still failed and sent at once: the API applied both.
  expect(appliedRetries(batch.id)).toHaveLength(1);
  expect(env.retryPosts(batch.id)).toHaveLength(1);
  expect(ended.rounds).toEqual([
    expect.objectContaining({ reconciled: true, reconcileEffect: 'took_effect', callsSent: 1 }),
  ]);
  // Recorded, so that the rollback runbook's query lists the run.
  const { history } = await historyEvents(env.client, batch.id);
  expect(patchMarkerIds(history)).toContain(RESET_RUN_RECONCILES_FIRST_PATCH);
}, 120_000);
