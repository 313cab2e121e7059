import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type proto from '@temporalio/proto';
import { type NativeConnection, Worker } from '@temporalio/worker';
import { createPollerRegistrationActivities } from '../../activities/poller-registration-activities.js';
import { createRecoveryWorkers } from '../../worker/create-worker.js';
import {
  BATCH_STATUS_POLLER_WORKFLOW,
  batchStatusPollerWorkflowId,
  recoveryWorkflowId,
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

/**
 * Waits until the registration of `batchId` is written into the stuck poller's history, and the task that began with
 * it (at attempt 1) has failed: from then on the server counts one failure, not the failures before the signal.
 */
async function registrationWrittenAndFailed(batchId: string): Promise<void> {
  const poller = env.client.workflow.getHandle(batchStatusPollerWorkflowId(env.taskQueue));
  await eventually(
    `the registration of ${batchId} written, and the task it began failed`,
    async () => {
      const events = (await poller.fetchHistory()).events ?? [];
      const registration = events.find((event) =>
        (event.workflowExecutionSignaledEventAttributes?.input?.payloads ?? []).some((payload) =>
          Buffer.from(payload.data ?? [])
            .toString()
            .includes(batchId),
        ),
      );
      if (!registration) return undefined;
      const failedAfter = events.some(
        (event) => event.workflowTaskFailedEventAttributes && Number(event.eventId) > Number(registration.eventId),
      );
      return failedAfter && workflowTaskFailures((await poller.describe()).raw.pendingWorkflowTask) > 0
        ? true
        : undefined;
    },
    60_000,
  );
}

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
  // Each of the two waits: the first registration, signalled (the server holds the signal until the failing attempt
  // times out, then writes it with a new task at attempt 1), then the one sent again, which found the poller stuck.
  expect(registrationAnswers(history)).toEqual([true, false, true, false]);
}, 90_000);

test('a stuck poller is found stuck in the 10 s after a signal restarted its failing task at attempt 1', async () => {
  const registrations = createPollerRegistrationActivities(env.client);
  const batchId = randomUUID();
  const request = {
    taskQueue: env.taskQueue,
    batchId,
    workflowId: recoveryWorkflowId(batchId),
    pollIntervalMs: 1_000,
    waitStartedAt: new Date().toISOString(),
  };
  // A first registration is signalled: the server holds the signal until the failing attempt times out.
  expect(await registrations.watchBatchWithPoller(request)).toBe(true);
  await registrationWrittenAndFailed(batchId);

  // The server's count shows one failure for the next 10 s (attempt 2); the poller's history shows it still stuck.
  // Before, the registration sent again took the poller for a working one within those 10 s, and signalled it.
  expect(await registrations.watchBatchWithPoller({ ...request, resent: true })).toBe(false);
  // As the recovery's end would: the poller, once fixed (the next test), drops the watch with the registration.
  await registrations.unwatchBatchWithPoller(request);
});

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
  const poller = env.client.workflow.getHandle(batchStatusPollerWorkflowId(env.taskQueue));
  await eventually('the registration taken', async () =>
    registrationAnswers(await handle.fetchHistory()).length === 1 ? true : undefined,
  );
  // The registration's signal, written once the failing attempt timed out, began a new task at attempt 1, which failed.
  await registrationWrittenAndFailed(batch.id);
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
