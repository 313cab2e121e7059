import { fileURLToPath } from 'node:url';
import type proto from '@temporalio/proto';
import { type NativeConnection, Worker } from '@temporalio/worker';
import {
  BATCH_STATUS_POLLER_WORKFLOW,
  batchStatusPollerWorkflowId,
  STUCK_AFTER_TASK_FAILURES,
} from '../../workflows/definitions.js';
import {
  eventually,
  FAST_POLICY,
  pollerRegistrations,
  type RecoveryEnv,
  startRecoveryEnv,
} from '../helpers/recovery-env.js';
import { connectWorker, temporalNamespace } from '../helpers/temporal.js';

// A poller whose workflow task keeps failing (a bug, a non-determinism error after a deploy) still runs, and takes
// registrations as signals into its history, but wakes no one. Its recoveries must not wait on it to their deadline.

let env: RecoveryEnv;
/** The poller's workflow tasks go to a queue of their own, where only a worker whose poller always fails polls. */
let stuckPoller: Worker;
let stuckPollerRun: Promise<void>;
let stuckPollerConnection: NativeConnection;

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
  const pollerQueue = `${env.taskQueue}-stuck-poller`;
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
  stuckPoller.shutdown();
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
