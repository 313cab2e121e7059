import { randomUUID } from 'node:crypto';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import proto from '@temporalio/proto';
import {
  CLOCK_MARGIN_MS,
  createPollerRegistrationActivities,
} from '../../activities/poller-registration-activities.js';
import { startBatchStatusPoller } from '../../worker/create-worker.js';
import {
  BATCH_STATUS_POLLER_WORKFLOW,
  batchStatusPollerWorkflowId,
  isWatchingBatch,
  POLLER_RESET_RUN_MEMO_KEY,
  recoveryWorkflowId,
} from '../../workflows/definitions.js';
import { eventually, type RecoveryEnv, registrationsIn, startRecoveryEnv } from '../helpers/recovery-env.js';

// A registration sent again during the same wait is signalled only when the poller's chain that took the first one
// no longer runs: the server answers from the poller's state, and no query waits for the poller's worker.

const { EventType, ResetReapplyExcludeType } = proto.temporal.api.enums.v1;

let env: RecoveryEnv;

beforeAll(async () => {
  // A session attempt takes a minute of the simulator's clock, which no test moves on: batches stay in flight.
  env = await startRecoveryEnv({ attemptDurationMs: 60_000, queueDelayMs: 0 });
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
 * The batch ids of the watchBatch signals in the poller's runs from `sinceRunId` on (through continue-as-new), up to
 * a probe registration sent now: the server writes a signal that comes while a workflow task runs only once the task
 * completes, and in order. The probe's watch rests a minute between cycles, so it adds no cycles of its own.
 */
async function signalledBatchIds(
  activities: ReturnType<typeof createPollerRegistrationActivities>,
  sinceRunId: string,
): Promise<string[]> {
  const probe = `probe-${randomUUID()}`;
  await activities.watchBatchWithPoller(registration(probe, new Date().toISOString(), 60_000));
  return eventually(`the probe ${probe} in the poller's history`, async () => {
    const batchIds: string[] = [];
    for (let runId: string | undefined = sinceRunId; runId !== undefined;) {
      const history = await env.client.workflow.getHandle(poller().workflowId, runId).fetchHistory();
      batchIds.push(...registrationsIn(history).map((request) => request.batchId));
      runId = history.events?.at(-1)?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
    }
    const probeAt = batchIds.indexOf(probe);
    return probeAt === -1 ? undefined : batchIds.slice(0, probeAt);
  });
}

/** The poller's current run. */
const currentRunId = async () => (await poller().describe()).runId;

/**
 * A registration of a wait. Batches the list does not show are handed back by the next cycle, to recoveries that do
 * not exist; the poller rests the shortest interval among its watches between cycles.
 */
const registration = (batchId: string, waitStartedAt: string, pollIntervalMs = 200) => ({
  taskQueue: env.taskQueue,
  batchId,
  workflowId: recoveryWorkflowId(batchId),
  pollIntervalMs,
  waitStartedAt,
});

test('a registration sent again is not signalled while the chain that took it runs, across continue-as-new; after a reset (also once the reset run has continued as new), or to a chain started since, it is', async () => {
  const activities = createPollerRegistrationActivities(env.client);
  // A batch the list shows in flight: the poller keeps its watch from run to run. A minute between cycles once the
  // fillers below are handed back, so the runs stay long enough to read.
  const { id: batchId } = env.simulator.createScriptedBatch({ count: 2 });
  // A wait begun just over the clock margin after the poller's chain began, as waits are after a restart.
  const chainStartedAt = (await poller().describe()).startTime.getTime();
  const waitStartedAt = new Date(chainStartedAt + CLOCK_MARGIN_MS + 1_000).toISOString();
  const carried = (resent: boolean) => ({ ...registration(batchId, waitStartedAt, 60_000), resent });
  expect(await activities.watchBatchWithPoller(carried(false))).toBe(true);
  const { runId: firstRunId } = await poller().describe();

  // Registrations of other waits fill the run's history until it continues as new.
  let filler = 0;
  await eventually('the poller to continue as new', async () => {
    await activities.watchBatchWithPoller(registration(`filler-${(filler += 1)}`, new Date().toISOString()));
    return (await poller().describe()).runId !== firstRunId ? true : undefined;
  });
  const { resent: _, taskQueue: __, ...watch } = carried(true);
  expect(await poller().query(isWatchingBatch, watch)).toBe(true);
  const continuedRunId = await currentRunId();
  expect(await activities.watchBatchWithPoller(carried(true))).toBe(true);
  expect(await signalledBatchIds(activities, continuedRunId)).not.toContain(batchId);

  // A wait whose registration the reset below leaves out, and which registers again only once the poller has also
  // continued as new.
  const { id: lostBatchId } = env.simulator.createScriptedBatch({ count: 2 });
  const lost = (resent: boolean) => ({ ...registration(lostBatchId, waitStartedAt, 60_000), resent });
  expect(await activities.watchBatchWithPoller(lost(false))).toBe(true);

  // Reset to its first workflow task, leaving out the signals after it: the chain is the same, its watches may not be.
  const baseRunId = await currentRunId();
  // The run may have begun a moment ago: its first workflow task is the reset point once it has completed.
  const firstTask = await eventually("the poller run's first workflow task to complete", async () => {
    const history = await env.client.workflow.getHandle(poller().workflowId, baseRunId).fetchHistory();
    return history.events?.find((event) => event.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED);
  });
  const { runId: resetRunId } = await env.client.workflowService.resetWorkflowExecution({
    namespace: env.client.options.namespace,
    workflowExecution: { workflowId: poller().workflowId, runId: baseRunId },
    reason: 'test: a reset that leaves out signals',
    workflowTaskFinishEventId: firstTask.eventId,
    requestId: randomUUID(),
    resetReapplyExcludeTypes: [ResetReapplyExcludeType.RESET_REAPPLY_EXCLUDE_TYPE_SIGNAL],
  });
  const resetRun = await env.client.workflow.getHandle(poller().workflowId, resetRunId).describe();
  expect(await activities.watchBatchWithPoller(carried(true))).toBe(true);
  expect(await signalledBatchIds(activities, resetRun.runId)).toContain(batchId);

  // The reset shows on the run it began only: the runs continued from it name that run in their memo.
  await eventually('the reset run to continue as new', async () => {
    await activities.watchBatchWithPoller(registration(`filler-${(filler += 1)}`, new Date().toISOString()));
    return (await poller().describe()).runId !== resetRun.runId ? true : undefined;
  });
  const afterResetRun = await poller().describe();
  expect(afterResetRun.memo?.[POLLER_RESET_RUN_MEMO_KEY]).toBe(resetRun.runId);
  expect(await activities.watchBatchWithPoller(lost(true))).toBe(true);
  expect(await signalledBatchIds(activities, afterResetRun.runId)).toContain(lostBatchId);
  // A wait begun after the reset, registered again: the chain that took it still runs, and needs no signal.
  const resetAt = Number(resetRun.raw.workflowExtendedInfo?.lastResetTime?.seconds) * 1_000;
  const { id: laterBatchId } = env.simulator.createScriptedBatch({ count: 2 });
  const later = (resent: boolean) => ({
    ...registration(laterBatchId, new Date(resetAt + 1_000 + CLOCK_MARGIN_MS + 1).toISOString(), 60_000),
    resent,
  });
  expect(await activities.watchBatchWithPoller(later(false))).toBe(true);
  expect(await activities.watchBatchWithPoller(later(true))).toBe(true);
  const signalled = await signalledBatchIds(activities, afterResetRun.runId);
  expect(signalled.filter((id) => id === laterBatchId)).toHaveLength(1);

  // Terminated and started again: a new chain, begun after the wait, which the registration must reach.
  await poller().terminate('test: the poller loses its watches');
  await startBatchStatusPoller(env.client, env.taskQueue);
  expect(await activities.watchBatchWithPoller(carried(true))).toBe(true);
  expect(await signalledBatchIds(activities, await currentRunId())).toEqual([batchId]);

  // Ended and not started again: the recovery reads its batch on its own.
  await poller().terminate('test: no poller');
  expect(await activities.watchBatchWithPoller(carried(true))).toBe(false);
}, 120_000);
