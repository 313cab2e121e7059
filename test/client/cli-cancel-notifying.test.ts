import { listRecoveries } from '../../client/recovery-list.js';
import { createRecoveryWorkers } from '../../worker/create-worker.js';
import type { RecoveryWorkers } from '../../worker/recovery-workers.js';
import {
  eventually,
  FAST_POLICY,
  startRecoveryEnv,
  workerConfig,
  workflowBundle,
  type RecoveryEnv,
} from '../helpers/recovery-env.js';
import { connectWorker } from '../helpers/temporal.js';
import { startWebhookReceiver, type WebhookReceiver } from '../notify/webhook-receiver.js';
import { killLeftoverChildren, runCli } from './child-process.js';

// A recovery that has decided its end and is sending its end notification (up to 5 min) has ended, for every command.

let env: RecoveryEnv;
let receiver: WebhookReceiver;
let stopWorker: () => Promise<void>;

beforeEach(async () => {
  env = await startRecoveryEnv();
  receiver = await startWebhookReceiver(['hold']);
  const connection = await connectWorker();
  const workers: RecoveryWorkers = await createRecoveryWorkers({
    config: {
      ...workerConfig(env.taskQueue, env.simulator.url),
      notify: { webhookUrl: receiver.url, outcomes: ['exhausted'] },
    },
    connection,
    workflows: workflowBundle(),
  });
  const running = workers.run();
  stopWorker = async () => {
    workers.shutdown();
    await running;
    await connection.close();
  };
});
afterEach(async () => {
  await killLeftoverChildren();
  receiver.release();
  await stopWorker();
  await env.close();
  await receiver.close();
});

test('cancel of a recovery notifying its end says it has ended, with its outcome, and sends no cancel', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '0': 'always-fail' } });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY, maxRounds: 1 });
  await eventually('the end notification, held', () => (receiver.requests.length === 1 ? true : undefined));

  const cancel = await runCli(['--task-queue', env.taskQueue, 'cancel', batch.id, '--timeout', '2s']);

  expect(cancel.stdout).toBe(
    `The recovery of batch ${batch.id} has already ended: exhausted (its end is being notified)\n`,
  );
  expect(cancel.stderr).toBe('');
  expect(cancel.code).toBe(0);
  const events = (await env.recoveries.handle(batch.id).fetchHistory()).events ?? [];
  expect(events.filter((event) => event.workflowExecutionCancelRequestedEventAttributes)).toHaveLength(0);
  receiver.release();
  expect(await env.recoveries.result(batch.id)).toMatchObject({ outcome: 'exhausted' });
});

test('the cross-batch report lists a recovery notifying its end with that end, as --outcome selects it', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '0': 'always-fail' } });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY, maxRounds: 1 });
  await eventually('the end notification, held', () => (receiver.requests.length === 1 ? true : undefined));

  // Visibility is seconds behind: the row once it has the outcome the recovery decided.
  const rows = await eventually('the recovery listed under --outcome exhausted', async () => {
    const { rows } = await listRecoveries(env.client, { since: '1h', outcome: 'exhausted' });
    return rows.some((row) => row.batchId === batch.id) ? rows : undefined;
  });

  expect(rows.find((row) => row.batchId === batch.id)?.outcome).toBe('exhausted');
  expect((await env.recoveries.handle(batch.id).describe()).status.name).toBe('RUNNING');
});
