import proto, { type temporal } from '@temporalio/proto';
import { createPollerRegistrationActivities } from '../../activities/poller-registration-activities.js';
import type { BatchStatusPollerInput, batchStatusPoller } from '../../workflows/batch-status-poller.js';
import {
  BATCH_STATUS_POLLER_WORKFLOW,
  batchStatusPollerWorkflowId,
  recoveryWorkflowId,
} from '../../workflows/definitions.js';
import {
  eventually,
  patchMarkerIds,
  type RecoveryEnv,
  registrationsIn,
  startRecoveryEnv,
} from '../helpers/recovery-env.js';

const { EventType } = proto.temporal.api.enums.v1;

let env: RecoveryEnv;

const THRESHOLD = 50;
/** CUT_STEP_PAST_THRESHOLD of workflows/batch-status-poller.ts. */
const CUT_AT_EVENTS = THRESHOLD * 1.6;

beforeAll(async () => {
  env = await startRecoveryEnv({ queueDelayMs: 0 });
  await env.client.workflow.start<typeof batchStatusPoller>(BATCH_STATUS_POLLER_WORKFLOW, {
    taskQueue: env.taskQueue,
    workflowId: batchStatusPollerWorkflowId(env.taskQueue),
    args: [{ continueAsNewAfterEvents: THRESHOLD }],
  });
  // The list call below is held open past the read's 1 min timeout, not ended by the client's own.
  await env.startPollerWorker({ timeoutMs: 120_000 });
});
afterAll(async () => {
  // Ends the list calls the API still holds, so the worker stops without waiting out its shutdown grace time.
  await env.simulator.close();
  await env.close();
});

async function runHistory(runId: string): Promise<temporal.api.history.v1.IHistory> {
  return env.client.workflow.getHandle(batchStatusPollerWorkflowId(env.taskQueue), runId).fetchHistory();
}

test('a run whose page read is held continues as new near the signal limit, with every watch it took', async () => {
  const poller = env.client.workflow.getHandle(batchStatusPollerWorkflowId(env.taskQueue));
  const activities = createPollerRegistrationActivities(env.client);
  const register = (batchId: string) =>
    activities.watchBatchWithPoller({
      taskQueue: env.taskQueue,
      batchId,
      workflowId: recoveryWorkflowId(batchId),
      pollIntervalMs: 1_000,
      waitStartedAt: new Date().toISOString(),
    });
  // The API holds every list call open: the cycle's first step waits for its read until the read times out.
  env.simulator.faults.add('list', { type: 'hang' });
  const { id: batchId } = env.simulator.createScriptedBatch({ count: 2 });
  expect(await register(batchId)).toBe(true);
  await eventually('the first page read to be held', () =>
    env.simulator.ledger.all().calls.some((call) => call.outcome === 'hung') ? true : undefined,
  );
  const heldRunId = (await poller.describe()).runId;

  // Registrations go on arriving as signals while the read is held, as under a busy task queue.
  let filler = 0;
  await eventually(
    'the held run to continue as new',
    async () => {
      await register(`filler-${(filler += 1)}`);
      return (await poller.describe()).runId !== heldRunId ? true : undefined;
    },
    // Short of the read's 1 min timeout: a run that waits for its step to end fails here.
    45_000,
  );

  const history = await runHistory(heldRunId);
  const events = history.events ?? [];
  const types = events.map((event) => event.eventType);
  // Cut at CUT_AT_EVENTS, not before: the workflow task that cancelled the read began past it.
  const cancelAt = types.indexOf(EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED);
  expect(cancelAt).toBeGreaterThanOrEqual(CUT_AT_EVENTS);
  expect(patchMarkerIds(history)).toContain('poller-cuts-step-near-signal-limit');
  expect(types).not.toContain(EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT);
  expect(types).not.toContain(EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED);
  expect(types.at(-1)).toBe(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW);

  // Nothing was woken (the list was never read), so the next run watches exactly what this one began with and took.
  const input = events[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0]?.data;
  const began = input ? ((JSON.parse(Buffer.from(input).toString()) as BatchStatusPollerInput).watched ?? []) : [];
  const taken = registrationsIn(history).map((request) => request.batchId);
  const next = events.at(-1)?.workflowExecutionContinuedAsNewEventAttributes?.input?.payloads?.[0]?.data;
  const carried = (JSON.parse(Buffer.from(next!).toString()) as BatchStatusPollerInput).watched ?? [];
  expect(new Set(carried.map(([id]) => id))).toEqual(new Set([...began.map(([id]) => id), ...taken]));
  expect(taken).toContain(batchId);
}, 90_000);
