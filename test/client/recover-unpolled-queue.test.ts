import { randomUUID } from 'node:crypto';
import { BatchRecoveries } from '../../client/recoveries.js';
import { recentPollerIdentities } from '../../worker/task-queue-pollers.js';
import { eventually, startRecoveryEnv, type RecoveryEnv } from '../helpers/recovery-env.js';
import { uniqueTaskQueue } from '../helpers/temporal.js';
import { killLeftoverChildren, runCli } from './child-process.js';

// Before, `recover` on a queue no worker polls (a mistyped --task-queue) exited 0 with nothing said, and the recovery
// waited for ever.

let env: RecoveryEnv;

beforeAll(async () => {
  env = await startRecoveryEnv();
});
afterAll(async () => {
  await killLeftoverChildren();
  await env.close();
});

test('recover on a task queue no worker polls warns on stderr, naming the queue, and exits 0', async () => {
  const taskQueue = uniqueTaskQueue('unpolled');
  const batchId = randomUUID();
  try {
    const recover = await runCli(['--task-queue', taskQueue, 'recover', batchId]);

    expect(recover.code).toBe(0);
    expect(recover.stdout).toContain(`Started the recovery of batch ${batchId}`);
    expect(recover.stderr).toBe(
      `warning: no worker polls task queue ${taskQueue}: the recovery waits until one does ` +
        '(batch-recovery worker, with the same --task-queue)\n',
    );
  } finally {
    await new BatchRecoveries(env.client, taskQueue).handle(batchId).terminate('test done');
  }
});

test('recover on a task queue a worker polls gives no warning', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 2, script: { '1': ['fail', 'ok'] } });
  await env.startWorker();
  await eventually('the worker among the pollers', async () =>
    (await recentPollerIdentities(env.client, env.taskQueue, 'workflow')).length > 0 ? true : undefined,
  );

  const recover = await runCli(['--task-queue', env.taskQueue, 'recover', batch.id, '--round-backoff', '100ms']);

  expect(recover.code).toBe(0);
  expect(recover.stdout).toContain(`Started the recovery of batch ${batch.id}`);
  expect(recover.stderr).toBe('');
  expect((await env.recoveries.result(batch.id)).outcome).toBe('recovered');
});
