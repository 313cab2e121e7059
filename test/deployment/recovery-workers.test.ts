import type { NativeConnection } from '@temporalio/worker';
import { createRecoveryWorkers } from '../../worker/create-worker.js';
import type { RecoveryWorkers } from '../../worker/recovery-workers.js';
import { workerConfig, workflowBundle } from '../helpers/recovery-env.js';
import { connectWorker, uniqueTaskQueue } from '../helpers/temporal.js';

// A worker process's three workers, the recoveries' queue, the poller's and the notifications', run and stop as
// one. No activity
// runs here, so the API's address is never called.

let connection: NativeConnection;

beforeAll(async () => {
  connection = await connectWorker();
});
afterAll(async () => {
  await connection.close();
});

const recoveryWorkers = (): Promise<RecoveryWorkers> =>
  createRecoveryWorkers({
    config: workerConfig(uniqueTaskQueue('recovery-workers'), 'http://127.0.0.1:9'),
    connection,
    workflows: workflowBundle(),
  });

test.each(['recoveries', 'poller', 'notifications'] as const)(
  'the %s worker stopping stops the others, and run() ends once all have',
  async (which) => {
    const workers = await recoveryWorkers();
    const running = workers.run();

    workers[which].shutdown();
    await running;

    expect(workers.recoveries.getState()).toBe('STOPPED');
    expect(workers.poller.getState()).toBe('STOPPED');
    expect(workers.notifications.getState()).toBe('STOPPED');
  },
);

test('runUntil gives the work its result or its failure, and leaves every worker stopped', async () => {
  const succeeding = await recoveryWorkers();
  await expect(succeeding.runUntil(() => Promise.resolve('done'))).resolves.toBe('done');
  expect(succeeding.stopped).toBe(true);

  const failing = await recoveryWorkers();
  await expect(failing.runUntil(() => Promise.reject(new Error('the work failed')))).rejects.toThrow('the work failed');
  expect(failing.stopped).toBe(true);
});

test('a shutdown asked before run() stops all as soon as they start; a second run() is refused', async () => {
  const workers = await recoveryWorkers();
  workers.shutdown();

  await workers.run();

  expect(workers.stopped).toBe(true);
  await expect(workers.run()).rejects.toThrow('The recovery workers run once');
});
