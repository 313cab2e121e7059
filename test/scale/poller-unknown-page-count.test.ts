import type { BatchStatusPollerInput, batchStatusPoller } from '../../workflows/batch-status-poller.js';
import {
  BATCH_STATUS_POLLER_WORKFLOW,
  batchStatusPollerWorkflowId,
  recoveryWorkflowId,
  watchBatch,
} from '../../workflows/definitions.js';
import { eventually, type RecoveryEnv, startRecoveryEnv } from '../helpers/recovery-env.js';

// An API that says total_pages -1 ("unknown") while a run of the poller comes due to continue as new mid-cycle.
let env: RecoveryEnv;

const THRESHOLD = 50;

beforeAll(async () => {
  env = await startRecoveryEnv({ queueDelayMs: 0 });
});
afterAll(() => env.close());

test('a list whose total_pages is -1, read as a run comes due mid-cycle: the next run goes on with the cycle', async () => {
  const pollerId = batchStatusPollerWorkflowId(env.taskQueue);
  // The cycle's first page: held while registrations fill the run's history past its threshold, then "more pages, how
  // many unknown".
  env.simulator.faults.add('list', {
    type: 'mistyped_field',
    field: 'data.pagination',
    value: { current_page: 1, total_pages: -1, has_next: true },
    latencyMs: 20_000,
    times: 1,
  });
  // A batch in flight for the first page to list, and a watch the cycle begins with of a batch no page lists: unseen
  // after the first page.
  env.simulator.createScriptedBatch({ count: 1, pending_phase: { ms: 600_000 } });
  const first = await env.client.workflow.start<typeof batchStatusPoller>(BATCH_STATUS_POLLER_WORKFLOW, {
    taskQueue: env.taskQueue,
    workflowId: pollerId,
    args: [{ continueAsNewAfterEvents: THRESHOLD, watched: [['not-listed', 60_000]] }],
  });
  const firstRun = env.client.workflow.getHandle(pollerId, first.firstExecutionRunId);
  // The held read is not ended by the client's own timeout, and tried again unheld.
  await env.startPollerWorker({ timeoutMs: 60_000 });
  await eventually('the first page read to be held', () =>
    env.simulator.ledger.all().calls.some((call) => call.outcome === 'in_flight') ? true : undefined,
  );
  // Registrations arriving while the read is held, as from busy recoveries: the run comes due during the read.
  let filler = 0;
  await eventually('the held run to come due', async () => {
    const batchId = `filler-${(filler += 1)}`;
    await first.signal(watchBatch, {
      batchId,
      workflowId: recoveryWorkflowId(batchId),
      pollIntervalMs: 60_000,
      waitStartedAt: new Date().toISOString(),
    });
    return (await firstRun.describe()).historyLength > THRESHOLD + 6 ? true : undefined;
  });

  const continued = await eventually(
    'the held run to continue as new',
    async () => {
      const events = (await firstRun.fetchHistory()).events ?? [];
      return events.at(-1)?.workflowExecutionContinuedAsNewEventAttributes ?? undefined;
    },
    60_000,
  );
  const carried = JSON.parse(Buffer.from(continued.input!.payloads![0]!.data!).toString()) as BatchStatusPollerInput;
  // Before, lastPage -1: the next run refused it (`resumeCycle.lastPage: expected an integer from 0, got -1`) and
  // failed, and registrations found no poller.
  expect(carried.resumeCycle).toEqual(expect.objectContaining({ nextPage: 2, lastPage: 2, unseen: 1 }));
  const next = env.client.workflow.getHandle(pollerId, continued.newExecutionRunId!);
  await eventually('the next run to take its first workflow task', async () =>
    (await next.fetchHistory()).events?.some((event) => event.workflowTaskCompletedEventAttributes) ? true : undefined,
  );
  expect((await next.describe()).status.name).toBe('RUNNING');
}, 120_000);
