import { randomUUID } from 'node:crypto';
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import proto from '@temporalio/proto';
import type { NotifyConfig, NotifyResult } from '../../activities/notify-activities.js';
import { RecoveryEndedError, RecoveryFailedError } from '../../client/recoveries.js';
import type { WorkerConfig } from '../../worker/config.js';
import { createRecoveryWorkers } from '../../worker/create-worker.js';
import { notificationTaskQueue, pauseRecovery, updateRecoveryPolicy } from '../../workflows/definitions.js';
import { killLeftoverChildren } from '../client/child-process.js';
import { spawnWorkerProcess, WORKER_STARTED, type WorkerProcess } from '../deployment/worker-process.js';
import {
  eventually,
  FAST_POLICY,
  historyText,
  startRecoveryEnv,
  TEST_API_KEY,
  workerConfig,
  workflowBundle,
  type RecoveryEnv,
} from '../helpers/recovery-env.js';
import { connectWorker } from '../helpers/temporal.js';
import { startBlackHole } from './black-hole.js';
import { startWebhookReceiver, type WebhookReceiver } from './webhook-receiver.js';

// The notify activity against a webhook receiver of the test's own, over real HTTP.

const { PendingActivityState } = proto.temporal.api.enums.v1;

const UI_URL = 'http://temporal-ui.example:8233';
const BAD_ENDS = ['exhausted', 'deadline', 'failed'] as const;
/** worker/create-worker.ts's log line when a worker counts a new number of workers on its queue. */
const BUDGET_SHARE_CHANGED = 'Anchor budget shared by a new number of workers';
/** notify-activities.ts's log line when a request failed and its ends go out again. */
const WEBHOOK_RETRY = 'Webhook failed, trying again';

let env: RecoveryEnv | undefined;
let receiver: WebhookReceiver | undefined;
const stops: (() => Promise<void>)[] = [];

afterEach(async () => {
  await killLeftoverChildren();
  for (const stop of stops.splice(0).reverse()) await stop();
  await env?.close();
  await receiver?.close();
  env = undefined;
  receiver = undefined;
});

/** An in-process worker on the env's task queue with a webhook configured. */
async function startNotifyingWorker(
  recoveryEnv: RecoveryEnv,
  notify: NotifyConfig,
  limits: Partial<WorkerConfig['limits']> = {},
): Promise<void> {
  const connection = await connectWorker();
  const config = workerConfig(recoveryEnv.taskQueue, recoveryEnv.simulator.url);
  const workers = await createRecoveryWorkers({
    config: { ...config, limits: { ...config.limits, ...limits }, notify },
    connection,
    workflows: workflowBundle(),
  });
  const running = workers.run();
  stops.push(async () => {
    workers.shutdown();
    await running;
    await connection.close();
  });
}

/** The notify activity's results, read from the recovery's history. */
async function notifyResults(handle: WorkflowHandle): Promise<NotifyResult[]> {
  const events = (await handle.fetchHistory()).events ?? [];
  const scheduled = new Set(
    events
      .filter((event) => event.activityTaskScheduledEventAttributes?.activityType?.name === 'notifyRecoveryEnd')
      .map((event) => Number(event.eventId)),
  );
  return events
    .map((event) => event.activityTaskCompletedEventAttributes)
    .filter((completed) => completed && scheduled.has(Number(completed.scheduledEventId)))
    .map((completed) => defaultPayloadConverter.fromPayload<NotifyResult>(completed!.result!.payloads![0]!));
}

/**
 * The activity tasks a recovery's history shows, by task queue and activity type: each attempt is a task, and an
 * activity's last start event carries the number of its attempts.
 */
async function activityTasksByQueue(handle: WorkflowHandle): Promise<Map<string, Record<string, number>>> {
  const events = (await handle.fetchHistory()).events ?? [];
  const scheduled = new Map(
    events
      .filter((event) => event.activityTaskScheduledEventAttributes)
      .map((event) => [Number(event.eventId), event.activityTaskScheduledEventAttributes!]),
  );
  const tasks = new Map<string, Record<string, number>>();
  for (const started of events.map((event) => event.activityTaskStartedEventAttributes)) {
    if (!started) continue;
    const activity = scheduled.get(Number(started.scheduledEventId))!;
    const byType = tasks.get(activity.taskQueue!.name!) ?? {};
    const type = activity.activityType!.name!;
    byType[type] = (byType[type] ?? 0) + started.attempt!;
    tasks.set(activity.taskQueue!.name!, byType);
  }
  return tasks;
}

const sum = (counts: Record<string, number> = {}) => Object.values(counts).reduce((total, count) => total + count, 0);

const alwaysFailing = () => env!.simulator.createScriptedBatch({ count: 3, script: { '0': 'always-fail' } });

test('one delivery per bad end, with the batch, outcome, counts and link; none for a recovery; no URL in history', async () => {
  receiver = await startWebhookReceiver();
  env = await startRecoveryEnv();
  await startNotifyingWorker(env, { webhookUrl: receiver.url, outcomes: BAD_ENDS, uiUrl: UI_URL });
  const exhausted = alwaysFailing();
  const recovered = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
  const missingBatchId = randomUUID();

  const started = await env.recoveries.start({ batchId: exhausted.id, ...FAST_POLICY, maxRounds: 1 });
  await env.recoveries.start({ batchId: recovered.id, ...FAST_POLICY });
  await env.recoveries.start({ batchId: missingBatchId, ...FAST_POLICY });
  expect((await env.recoveries.result(exhausted.id)).outcome).toBe('exhausted');
  expect((await env.recoveries.result(recovered.id)).outcome).toBe('recovered');
  await expect(env.recoveries.result(missingBatchId)).rejects.toThrow(RecoveryFailedError);

  // The workflow waits for the notification before it ends: both deliveries are in by now.
  expect(receiver.requests).toHaveLength(2);
  const [toExhausted, toFailed] = [exhausted.id, missingBatchId].map((batchId) =>
    receiver!.requests.find((request) => JSON.stringify(request.body).includes(batchId)),
  );
  const link = `${UI_URL}/namespaces/default/workflows/recover-batch-${exhausted.id}`;
  expect(toExhausted?.path).toBe(new URL(receiver.url).pathname);
  expect(toExhausted?.headers['content-type']).toBe('application/json');
  expect(toExhausted?.headers['idempotency-key']).toBe(`recover-batch-${exhausted.id}/${started.runId}/exhausted`);
  expect(toExhausted?.body.text).toContain(`Recovery of batch \`${exhausted.id}\` ended *exhausted*`);
  expect(toExhausted?.body.text).toContain('1 rounds · 1 sessions retried · 0 recovered · 1 still failing');
  expect(toExhausted?.body.text).toContain(`<${link}|Open the recovery in the Temporal Web UI>`);
  expect(toExhausted?.body.blocks).toEqual([
    { type: 'section', text: { type: 'mrkdwn', text: toExhausted?.body.text } },
  ]);
  expect(toExhausted?.body.metadata).toEqual({
    event_type: 'anchor_recovery_ended',
    event_payload: {
      batchId: exhausted.id,
      outcome: 'exhausted',
      rounds: 1,
      retriedSessions: 1,
      recovered: 0,
      stillFailed: 1,
      reason: null,
      idempotencyKey: `recover-batch-${exhausted.id}/${started.runId}/exhausted`,
      recoveryUrl: link,
    },
  });
  expect(toFailed?.body.metadata).toMatchObject({
    event_payload: { outcome: 'failed', reason: expect.stringMatching(/^batch_not_found: /) },
  });

  // The notifications ran on their own queue: every activity task on the recoveries' queue, whose task rate is the
  // Anchor budget, was one Anchor call.
  for (const batchId of [exhausted.id, missingBatchId]) {
    const tasks = await activityTasksByQueue(env.recoveries.handle(batchId));
    expect(tasks.get(notificationTaskQueue(env.taskQueue))).toEqual({ notifyRecoveryEnd: 1 });
    expect(tasks.get(env.taskQueue)).not.toHaveProperty('notifyRecoveryEnd');
    const anchorCalls = env.simulator.ledger.forBatch(batchId).calls.length;
    expect(anchorCalls).toBeGreaterThan(0);
    expect(sum(tasks.get(env.taskQueue))).toBe(anchorCalls);
  }

  const exhaustedHandle = env.recoveries.handle(exhausted.id);
  expect(await notifyResults(exhaustedHandle)).toEqual([
    {
      status: 'delivered',
      tries: 1,
      httpStatus: 200,
      idempotencyKey: expect.any(String),
      detail: null,
      endsInMessage: 1,
    },
  ]);
  expect(await notifyResults(env.recoveries.handle(recovered.id))).toEqual([]);
  for (const batchId of [exhausted.id, recovered.id, missingBatchId]) {
    const history = historyText(await env.recoveries.handle(batchId).fetchHistory());
    expect(history).not.toContain(receiver.secret);
    expect(history).not.toContain(new URL(receiver.url).host);
  }
});

test('steering a recovery that is notifying its end is refused, naming the end, and changes nothing it reports', async () => {
  env = await startRecoveryEnv();
  receiver = await startWebhookReceiver(['hold']);
  await startNotifyingWorker(env, { webhookUrl: receiver.url, outcomes: BAD_ENDS });
  const batch = alwaysFailing();
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY, maxRounds: 1 });
  await eventually('the end notification, held', () => (receiver!.requests.length === 1 ? true : undefined));
  const handle = env.recoveries.handle(batch.id);

  // Through the library, as the CLI steers: refused before anything is sent. Before, each was taken and "applied".
  const ended = `The recovery of batch ${batch.id} has already ended: exhausted (its end is being notified)`;
  for (const steer of [
    () => env!.recoveries.pause(batch.id),
    () => env!.recoveries.retryNow(batch.id),
    () => env!.recoveries.updatePolicy(batch.id, { maxRounds: 5 }),
  ]) {
    const refused = await steer().catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(RecoveryEndedError);
    expect((refused as Error).message).toBe(ended);
  }
  // As the Web UI sends them, past the client's check: the update is refused by the workflow, the signal ignored.
  await handle.signal(pauseRecovery);
  const update = await handle
    .executeUpdate(updateRecoveryPolicy, { args: [{ maxRounds: 5 }] })
    .catch((err: unknown) => err);
  expect(update).toBeInstanceOf(WorkflowUpdateFailedError);
  expect((update as WorkflowUpdateFailedError).cause).toMatchObject({
    type: 'RecoveryEnded',
    message: 'the recovery has already ended: exhausted',
  });
  receiver.release();

  expect(await env.recoveries.result(batch.id)).toMatchObject({ outcome: 'exhausted', maxRounds: 1, paused: false });
});

test('a webhook that answers 500, then 200, gets the message twice with one key; one that keeps failing changes nothing', async () => {
  receiver = await startWebhookReceiver([500, 200]);
  const failing = await startWebhookReceiver([500, 500, 500]);
  stops.push(() => failing.close());
  env = await startRecoveryEnv();
  await startNotifyingWorker(env, { webhookUrl: receiver.url, outcomes: BAD_ENDS, retryDelaysMs: [50, 50] });
  const batch = alwaysFailing();

  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY, maxRounds: 1 });
  const report = await env.recoveries.result(batch.id);

  expect(report.outcome).toBe('exhausted');
  expect(receiver.requests).toHaveLength(2);
  const keys = receiver.requests.map((request) => request.headers['idempotency-key']);
  expect(keys[0]).toBe(keys[1]);
  expect(await notifyResults(env.recoveries.handle(batch.id))).toMatchObject([
    { status: 'delivered', tries: 2, httpStatus: 200 },
  ]);

  // A second worker set, on a queue of its own, whose webhook never succeeds.
  const other = await startRecoveryEnv();
  stops.push(() => other.close());
  await startNotifyingWorker(other, { webhookUrl: failing.url, outcomes: BAD_ENDS, retryDelaysMs: [50, 50] });
  const unlucky = other.simulator.createScriptedBatch({ count: 3, script: { '0': 'always-fail' } });
  await other.recoveries.start({ batchId: unlucky.id, ...FAST_POLICY, maxRounds: 1 });

  expect((await other.recoveries.result(unlucky.id)).outcome).toBe('exhausted');
  expect(failing.requests).toHaveLength(3);
  expect(await notifyResults(other.recoveries.handle(unlucky.id))).toMatchObject([
    { status: 'failed', tries: 3, httpStatus: 500, detail: 'still failing: HTTP 500' },
  ]);
});

test('a webhook whose connect never completes: nothing left, so the end went again and its history says failed, not unknown', async () => {
  const hole = await startBlackHole();
  stops.push(() => hole.close());
  env = await startRecoveryEnv();
  await startNotifyingWorker(env, {
    webhookUrl: hole.url,
    outcomes: BAD_ENDS,
    retryDelaysMs: [50, 50],
    connectTimeoutMs: 200,
  });
  const batch = alwaysFailing();
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY, maxRounds: 1 });

  expect((await env.recoveries.result(batch.id)).outcome).toBe('exhausted');
  expect(await notifyResults(env.recoveries.handle(batch.id))).toEqual([
    {
      status: 'failed',
      tries: 3,
      httpStatus: null,
      idempotencyKey: expect.any(String),
      detail: 'still failing: connect timed out',
      endsInMessage: 1,
    },
  ]);
});

test("a worker that counts 3 workers on its queue posts at a third of the webhook's pace", async () => {
  receiver = await startWebhookReceiver([503]);
  env = await startRecoveryEnv();
  const minPostIntervalMs = 500;
  await startNotifyingWorker(
    env,
    { webhookUrl: receiver.url, outcomes: BAD_ENDS, retryDelaysMs: [50], minPostIntervalMs },
    { workersSharingBudget: 3 },
  );
  const batch = alwaysFailing();
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY, maxRounds: 1 });

  expect((await env.recoveries.result(batch.id)).outcome).toBe('exhausted');
  expect(await notifyResults(env.recoveries.handle(batch.id))).toMatchObject([
    { status: 'delivered', tries: 2, httpStatus: 200 },
  ]);
  // After the 503, its next request waits its share (3 × 500 ms), not the 50 ms backoff nor the webhook's 500 ms.
  const [first, second] = receiver.requests;
  expect(receiver.requests).toHaveLength(2);
  expect(second!.receivedAt - first!.answeredAt!).toBeGreaterThanOrEqual(3 * minPostIntervalMs);
});

test('worker processes that learn of each other on the queue each post at their share of the pace', async () => {
  receiver = await startWebhookReceiver([503]);
  env = await startRecoveryEnv();
  const workers: WorkerProcess[] = [];
  for (let index = 0; index < 2; index += 1) {
    const worker = await spawnWorkerProcess({
      TEMPORAL_TASK_QUEUE: env.taskQueue,
      ANCHOR_BASE_URL: env.simulator.url,
      ANCHOR_API_KEY: TEST_API_KEY,
      ANCHOR_BATCH_STATUS_POLLER: 'false',
      WORKFLOW_BUNDLE_PATH: process.env.TEST_WORKFLOW_BUNDLE,
      NOTIFY_WEBHOOK_URL: receiver.url,
    });
    stops.push(async () => {
      worker.child.kill('SIGTERM');
      await worker.closed;
    });
    await worker.waitForOutput(WORKER_STARTED);
    workers.push(worker);
  }
  // Neither is configured to share (ANCHOR_WORKERS_SHARING_BUDGET unset): each learns of the other from the server.
  await eventually(
    'each worker to count 2 workers on the queue',
    () =>
      workers.every((worker) =>
        worker.logEntries().some((entry) => entry.msg === BUDGET_SHARE_CHANGED && entry.workers === 2),
      ) || undefined,
    60_000,
  );
  const batch = alwaysFailing();
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY, maxRounds: 1 });

  expect((await env.recoveries.result(batch.id)).outcome).toBe('exhausted');
  expect(await notifyResults(env.recoveries.handle(batch.id))).toMatchObject([
    { status: 'delivered', tries: 2, httpStatus: 200 },
  ]);
  // After the 503, the next request waits the worker's share of the webhook's pace: 2 × 1 s, not the 1 s backoff.
  const retries = workers.flatMap((worker) => worker.logEntries().filter((entry) => entry.msg === WEBHOOK_RETRY));
  expect(retries).toMatchObject([{ failure: 'HTTP 503', delayMs: 2_000 }]);
  const [first, second] = receiver.requests;
  expect(receiver.requests).toHaveLength(2);
  expect(second!.receivedAt - first!.answeredAt!).toBeGreaterThanOrEqual(2_000);
}, 120_000);

test('25 recoveries ending together: a few messages, each end in exactly one, every recovery closed', async () => {
  // The first message is held until every recovery waits on its notification, as in an outage's storm of ends.
  receiver = await startWebhookReceiver(['hold']);
  env = await startRecoveryEnv();
  // The held request waits for every recovery to end, so its timeout is long.
  await startNotifyingWorker(env, {
    webhookUrl: receiver.url,
    outcomes: BAD_ENDS,
    minPostIntervalMs: 100,
    requestTimeoutMs: 60_000,
  });
  const batches = Array.from({ length: 25 }, () => alwaysFailing());
  for (const batch of batches) await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY, maxRounds: 1 });
  const handles = batches.map((batch) => env!.recoveries.handle(batch.id));

  await eventually('every recovery to wait on its notification', async () => {
    const waiting = await Promise.all(
      handles.map(async (handle) =>
        (await handle.describe()).raw.pendingActivities?.some(
          (activity) =>
            activity.activityType?.name === 'notifyRecoveryEnd' &&
            activity.state === PendingActivityState.PENDING_ACTIVITY_STATE_STARTED,
        ),
      ),
    );
    return waiting.every(Boolean) ? true : undefined;
  });
  receiver.release(200);
  const reports = await Promise.all(batches.map((batch) => env!.recoveries.result(batch.id)));

  expect(reports.map((report) => report.outcome)).toEqual(batches.map(() => 'exhausted'));
  const messages = receiver.requests.map((request) => {
    const { event_type: type, event_payload: payload } = request.body.metadata as {
      event_type: string;
      event_payload: { idempotencyKey: string; ends?: { idempotencyKey: string }[] };
    };
    return type === 'anchor_recovery_ended' ? [payload.idempotencyKey] : payload.ends!.map((end) => end.idempotencyKey);
  });
  // The first end went out alone; the 24 that came while it was out went 20, then 4.
  expect(messages.map((keys) => keys.length)).toEqual([1, 20, 4]);
  const results = await Promise.all(handles.map((handle) => notifyResults(handle)));
  expect(messages.flat().sort()).toEqual(results.map(([result]) => result!.idempotencyKey).sort());
  for (const [result] of results) {
    const message = messages.find((keys) => keys.includes(result!.idempotencyKey))!;
    expect(result).toMatchObject({ status: 'delivered', tries: 1, endsInMessage: message.length });
  }
}, 90_000);

test('a worker killed mid-delivery: the next attempt does not send again, and the outcome stands', async () => {
  // The first request is held unanswered while the worker that sent it is killed.
  receiver = await startWebhookReceiver(['hold']);
  env = await startRecoveryEnv();
  const worker = await spawnWorkerProcess({
    TEMPORAL_TASK_QUEUE: env.taskQueue,
    ANCHOR_BASE_URL: env.simulator.url,
    ANCHOR_API_KEY: TEST_API_KEY,
    WORKFLOW_BUNDLE_PATH: process.env.TEST_WORKFLOW_BUNDLE,
    NOTIFY_WEBHOOK_URL: receiver.url,
    TEMPORAL_UI_URL: UI_URL,
  });
  await worker.waitForOutput(WORKER_STARTED);
  const batch = alwaysFailing();
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY, maxRounds: 1 });
  const handle = env.recoveries.handle(batch.id);

  // Kill only once the server holds the "sending" heartbeat: that is what the next attempt reads.
  await eventually(
    'the request to arrive and its heartbeat to be recorded',
    async () => {
      if (receiver!.requests.length === 0) return undefined;
      const { raw } = await handle.describe();
      const pending = raw.pendingActivities?.find((activity) => activity.activityType?.name === 'notifyRecoveryEnd');
      const details = pending?.heartbeatDetails?.payloads?.[0];
      return details ? defaultPayloadConverter.fromPayload<{ state: string }>(details) : undefined;
    },
    20_000,
  ).then((details) => expect(details).toEqual({ state: 'sending', tries: 1 }));
  worker.child.kill('SIGKILL');
  await worker.closed;
  await startNotifyingWorker(env, { webhookUrl: receiver.url, outcomes: BAD_ENDS, uiUrl: UI_URL });

  const report = await env.recoveries.result(batch.id);

  expect(report.outcome).toBe('exhausted');
  expect(receiver.requests).toHaveLength(1);
  expect(await notifyResults(handle)).toEqual([
    {
      status: 'unknown',
      tries: 1,
      httpStatus: null,
      idempotencyKey: receiver.requests[0]?.headers['idempotency-key'],
      detail: 'an earlier attempt stopped while sending: not sent again',
      endsInMessage: 0,
    },
  ]);
}, 90_000);
