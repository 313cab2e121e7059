import { fileURLToPath } from 'node:url';
import type proto from '@temporalio/proto';
import { type NativeConnection, Worker } from '@temporalio/worker';
import { createRecoveryWorkers } from '../../worker/create-worker.js';
import {
  BATCH_STATUS_POLLER_WORKFLOW,
  batchStatusPollerWorkflowId,
  STUCK_AFTER_TASK_FAILURES,
  workflowTaskFailures,
} from '../../workflows/definitions.js';
import {
  eventually,
  FAST_POLICY,
  localActivityMarkers,
  patchMarkerIds,
  pollerRegistrations,
  type RecoveryEnv,
  startRecoveryEnv,
  workerConfig,
  workflowBundle,
} from '../helpers/recovery-env.js';
import { connectWorker, temporalNamespace } from '../helpers/temporal.js';

// A poller whose workflow task keeps failing (a bug, a non-determinism error after a deploy) still runs, and takes
// registrations as signals into its history, but wakes no one. Its recoveries must not wait on it to their deadline.

let env: RecoveryEnv;
/** The poller's workflow tasks go to a queue of their own, where only a worker whose poller always fails polls. */
let stuckPoller: Worker;
let stuckPollerRun: Promise<void>;
let stuckPollerConnection: NativeConnection;
let pollerQueue: string;

/** A session attempt takes a minute of the simulator's clock: a batch settles only when the test moves it on. */
const ATTEMPT_MS = 60_000;
/** Registrations with the poller are sent again within 15 poll maximum intervals: 2.25–3 s here. */
const POLICY = { ...FAST_POLICY, poll: { initialInterval: '200ms', backoffCoefficient: 1, maximumInterval: '200ms' } };

/** What each of a recovery's registrations answered, from their local activities' markers, in order. */
function registrationAnswers(history: proto.temporal.api.history.v1.IHistory): unknown[] {
  return pollerRegistrations(history).map((marker) => {
    const data = marker.markerRecordedEventAttributes?.details?.['result']?.payloads?.[0]?.data;
    return JSON.parse(Buffer.from(data ?? []).toString()) as unknown;
  });
}

beforeAll(async () => {
  env = await startRecoveryEnv({ attemptDurationMs: ATTEMPT_MS, queueDelayMs: 0 });
  await env.startWorker();
  pollerQueue = `${env.taskQueue}-stuck-poller`;
  stuckPollerConnection = await connectWorker();
  stuckPoller = await Worker.create({
    connection: stuckPollerConnection,
    namespace: temporalNamespace(),
    taskQueue: pollerQueue,
    workflowsPath: fileURLToPath(new URL('../client/failing-workflows.ts', import.meta.url)),
  });
  stuckPollerRun = stuckPoller.run();
  const poller = await env.client.workflow.start(BATCH_STATUS_POLLER_WORKFLOW, {
    taskQueue: pollerQueue,
    workflowId: batchStatusPollerWorkflowId(env.taskQueue),
    args: [{}],
  });
  await eventually(
    `the poller's workflow task to fail ${STUCK_AFTER_TASK_FAILURES} times in a row`,
    async () => {
      const { raw } = await poller.describe();
      return (raw.pendingWorkflowTask?.attempt ?? 0) > STUCK_AFTER_TASK_FAILURES ? true : undefined;
    },
    60_000,
  );
}, 90_000);

afterAll(async () => {
  await env.client.workflow.getHandle(batchStatusPollerWorkflowId(env.taskQueue)).terminate('test finished');
  // The last test stops it once the poller is fixed.
  if (stuckPoller.getState() === 'RUNNING') stuckPoller.shutdown();
  await stuckPollerRun;
  await stuckPollerConnection.close();
  await env.close();
});

test('a recovery whose poller keeps failing its workflow tasks reads its batch on its own at its next registration', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
  await env.recoveries.start({ batchId: batch.id, ...POLICY });
  const statusReads = async () =>
    ((await env.recoveries.handle(batch.id).fetchHistory()).events ?? []).filter(
      (event) => event.activityTaskScheduledEventAttributes?.activityType?.name === 'awaitBatchSettled',
    ).length;
  await eventually('the recovery to read its batch itself', async () =>
    (await statusReads()) >= 1 ? true : undefined,
  );
  env.simulator.clock.advance(ATTEMPT_MS);
  await eventually('the retry call', () => (env.retryPosts(batch.id).length === 1 ? true : undefined));
  await eventually('the recovery to read its batch itself after the call', async () =>
    (await statusReads()) >= 2 ? true : undefined,
  );
  env.simulator.clock.advance(ATTEMPT_MS);
  const report = await env.recoveries.result(batch.id);

  expect(report.outcome).toBe('recovered');
  expect(env.retryPosts(batch.id)).toHaveLength(1);
  const history = await env.recoveries.handle(batch.id).fetchHistory();
  // Each of the two waits: the first registration, signalled (the server buffers the signal until the poller's task
  // completes, so it is not in the poller's history), then the one sent again, which found the poller stuck.
  expect(registrationAnswers(history)).toEqual([true, false, true, false]);
}, 90_000);

// Last in this file: the poller is fixed in it.
test('a recovery that found its poller stuck tells it to drop the watch as it ends: the poller, once fixed, does not keep it', async () => {
  // A session attempt the test never moves on: the batch stays in flight until the recovery is cancelled.
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
  // Its re-registration an hour away: the test sends it when the poller is stuck, by lowering the poll's maximum.
  await env.recoveries.start({
    batchId: batch.id,
    ...POLICY,
    poll: { initialInterval: '200ms', backoffCoefficient: 1, maximumInterval: '1h' },
  });
  const handle = env.recoveries.handle(batch.id);
  await eventually('the registration taken', async () =>
    registrationAnswers(await handle.fetchHistory()).length === 1 ? true : undefined,
  );
  const poller = env.client.workflow.getHandle(batchStatusPollerWorkflowId(env.taskQueue));
  // The registration's signal began a new workflow task; stuck again once that one has failed as often.
  await eventually(
    'the poller stuck again',
    async () =>
      workflowTaskFailures((await poller.describe()).raw.pendingWorkflowTask) >= STUCK_AFTER_TASK_FAILURES
        ? true
        : undefined,
    60_000,
  );
  await env.recoveries.updatePolicy(batch.id, { poll: { maximumInterval: '1s' } });
  await eventually('the registration sent again to find the poller stuck', async () =>
    registrationAnswers(await handle.fetchHistory()).length === 2 ? true : undefined,
  );
  await env.recoveries.cancel(batch.id);
  const report = await env.recoveries.result(batch.id);

  expect(report.outcome).toBe('operator_cancelled');
  const history = await handle.fetchHistory();
  // Taken (buffered by the server), then found stuck when sent again: the recovery read its batch itself.
  expect(registrationAnswers(history)).toEqual([true, false]);
  // Before, none: the recovery forgot the watch the poller's history held.
  expect(localActivityMarkers(history, 'unwatchBatchWithPoller')).toHaveLength(1);
  expect(patchMarkerIds(history)).toContain('recovery-refused-resend-keeps-watch');

  // The fix deployed: a worker of the poller's code takes over its queue, and its task takes the buffered signals.
  stuckPoller.shutdown();
  await stuckPollerRun;
  const fixed = await createRecoveryWorkers({
    config: workerConfig(pollerQueue, env.simulator.url),
    connection: stuckPollerConnection,
    workflows: workflowBundle(),
  });
  const pollerEvents = await fixed.runUntil(() =>
    eventually(
      "the fixed poller's first workflow task",
      async () => {
        const events = (await poller.fetchHistory()).events ?? [];
        return events.some((event) => event.workflowTaskCompletedEventAttributes) ? events : undefined;
      },
      60_000,
    ),
  );
  // It took the registration and the unwatch in one task, and watches nothing: before, it read the list for the batch.
  const pageReads = pollerEvents.filter(
    (event) => event.activityTaskScheduledEventAttributes?.activityType?.name === 'readBatchPage',
  );
  expect(pageReads).toEqual([]);
}, 150_000);
