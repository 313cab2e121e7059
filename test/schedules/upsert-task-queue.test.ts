import { randomUUID } from 'node:crypto';
import { deleteSweepSchedule, describeSweepSchedule, upsertSweepSchedule } from '../../client/schedules.js';
import { recentPollerIdentities } from '../../worker/task-queue-pollers.js';
import { uniqueTaskQueue } from '../helpers/temporal.js';
import { eventually, startRecoveryEnv, type RecoveryEnv } from '../helpers/recovery-env.js';
import { killLeftoverChildren, runCli } from '../client/child-process.js';

// An upsert without --task-queue takes the shell's TEMPORAL_TASK_QUEUE, or the default queue: before, it moved a schedule
// set up on another queue there without a word, and `trigger` then started a sweep no worker ran.

let env: RecoveryEnv;
const scheduleId = `sweep-test-${randomUUID()}`;

beforeAll(async () => {
  env = await startRecoveryEnv();
});
afterAll(async () => {
  await killLeftoverChildren();
  await deleteSweepSchedule(env.client, scheduleId).catch(() => undefined);
  await env.close();
});

test('an upsert that moves the schedule to another task queue names both, and warns when no worker polls it', async () => {
  await upsertSweepSchedule(env.client, { scheduleId, every: '1h', taskQueue: env.taskQueue, lookback: '2h' });
  // Paused, so that no sweep of its own starts on the default queue while it is there.
  await env.client.schedule.getHandle(scheduleId).pause('only upserted in this test');
  const upsert = ['schedule', 'upsert', '--id', scheduleId, '--every', '1h', '--lookback', '2h'];

  // A queue of this test's own, which no worker polls: the default one may be polled by another test's worker.
  const unpolled = uniqueTaskQueue('unpolled');
  const moved = await runCli(upsert, { TEMPORAL_TASK_QUEUE: unpolled });

  expect(moved.code).toBe(0);
  expect(moved.stdout).toContain(`Moved its sweeps from task queue ${env.taskQueue} to task queue ${unpolled}`);
  expect(moved.stderr).toBe(
    `warning: no worker polls task queue ${unpolled}: the schedule's sweeps wait there until one does ` +
      `(give --task-queue ${env.taskQueue} to move them back)\n`,
  );
  expect((await describeSweepSchedule(env.client, scheduleId)).taskQueue).toBe(unpolled);

  await env.startWorker();
  await eventually('the worker among the pollers', async () =>
    (await recentPollerIdentities(env.client, env.taskQueue, 'workflow')).length > 0 ? true : undefined,
  );
  const back = await runCli(['--task-queue', env.taskQueue, ...upsert]);

  expect(back.code).toBe(0);
  expect(back.stdout).toContain(`Moved its sweeps from task queue ${unpolled} to task queue ${env.taskQueue}`);
  expect(back.stderr).toBe('');

  const kept = await runCli(['--task-queue', env.taskQueue, ...upsert]);

  expect(kept.code).toBe(0);
  expect(kept.stdout).not.toContain('Moved');
});
