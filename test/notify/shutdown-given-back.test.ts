import { defaultPayloadConverter } from '@temporalio/common';
import type { NotifyConfig, NotifyResult } from '../../activities/notify-activities.js';
import { createRecoveryWorkers } from '../../worker/create-worker.js';
import {
  eventually,
  FAST_POLICY,
  startRecoveryEnv,
  workerConfig,
  workflowBundle,
  type RecoveryEnv,
} from '../helpers/recovery-env.js';
import { connectWorker } from '../helpers/temporal.js';
import { startBlackHole } from './black-hole.js';
import { startWebhookReceiver } from './webhook-receiver.js';

// A stopping worker's grace (30 s, worker/create-worker.ts) ends while a notification's connect hangs: the end is
// given back (heartbeat `waiting`), so the next attempt, on another worker, sends it instead of reporting `unknown`.

let env: RecoveryEnv | undefined;
const stops: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
  await env?.close();
  env = undefined;
});

/** An in-process worker on the env's task queue with `notify`; the returned function stops it. */
async function startNotifyingWorker(recoveryEnv: RecoveryEnv, notify: NotifyConfig): Promise<() => Promise<void>> {
  const connection = await connectWorker();
  const workers = await createRecoveryWorkers({
    config: { ...workerConfig(recoveryEnv.taskQueue, recoveryEnv.simulator.url), notify },
    connection,
    workflows: workflowBundle(),
  });
  const running = workers.run();
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      workers.shutdown();
      await running;
      await connection.close();
    })();
    return stopped;
  };
  stops.push(stop);
  return stop;
}

test('an end whose connect hangs past the shutdown grace is given back, and the next attempt sends it', async () => {
  const hole = await startBlackHole();
  stops.push(() => hole.close());
  env = await startRecoveryEnv();
  // The connect hangs 35 s: the 30 s grace ends during it, and it then ends unsent.
  const stop = await startNotifyingWorker(env, {
    webhookUrl: hole.url,
    outcomes: ['exhausted'],
    connectTimeoutMs: 35_000,
    requestTimeoutMs: 60_000,
  });
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '0': 'always-fail' } });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY, maxRounds: 1 });
  const handle = env.recoveries.handle(batch.id);
  const pendingNotify = async () =>
    (await handle.describe()).raw.pendingActivities?.find(
      (activity) => activity.activityType?.name === 'notifyRecoveryEnd',
    );
  const heartbeat = async () => {
    const details = (await pendingNotify())?.heartbeatDetails?.payloads?.[0];
    return details ? defaultPayloadConverter.fromPayload<{ state: string; tries: number }>(details) : undefined;
  };
  await eventually('the sending heartbeat', async () => ((await heartbeat())?.state === 'sending' ? true : undefined));

  await stop();

  expect(await heartbeat()).toEqual({ state: 'waiting', tries: 1 });
  expect((await pendingNotify())?.lastFailure?.message).toBe(
    'Worker is shutting down and this activity did not complete in time',
  );
  const receiver = await startWebhookReceiver();
  stops.push(() => receiver.close());
  await startNotifyingWorker(env, { webhookUrl: receiver.url, outcomes: ['exhausted'] });

  expect((await env.recoveries.result(batch.id)).outcome).toBe('exhausted');
  expect(receiver.requests).toHaveLength(1);
  const results = ((await handle.fetchHistory()).events ?? [])
    .map((event) => event.activityTaskCompletedEventAttributes?.result?.payloads?.[0])
    .filter((payload) => payload !== undefined && payload !== null)
    .map((payload) => defaultPayloadConverter.fromPayload<Partial<NotifyResult>>(payload))
    .filter((result) => typeof result === 'object' && result !== null && 'idempotencyKey' in result);
  expect(results).toEqual([
    {
      status: 'delivered',
      tries: 2,
      httpStatus: 200,
      idempotencyKey: receiver.requests[0]?.headers['idempotency-key'],
      detail: null,
      endsInMessage: 1,
    },
  ]);
}, 150_000);
