import { randomUUID } from 'node:crypto';
import { Command } from 'commander';
import { registerScheduleCommands } from '../../client/commands/schedule.js';
import {
  DEFAULT_PAUSE_NOTE,
  DEFAULT_UNPAUSE_NOTE,
  deleteSweepSchedule,
  describeSweepSchedule,
} from '../../client/schedules.js';
import { startRecoveryEnv, type RecoveryEnv } from '../helpers/recovery-env.js';
import { testCommandContext } from '../helpers/sweep-env.js';

// Before, a pause or unpause without --note replaced the operator's note with the SDK's 'Paused via TypeScript SDK"'.

let env: RecoveryEnv;
const scheduleId = `sweep-test-${randomUUID()}`;

beforeAll(async () => {
  // No worker: the schedule's sweeps only wait on the queue, and none is run.
  env = await startRecoveryEnv();
});
afterAll(async () => {
  await deleteSweepSchedule(env.client, scheduleId).catch(() => undefined);
  await env.close();
});

async function schedule(...args: string[]): Promise<void> {
  const program = new Command('batch-recovery').exitOverride();
  registerScheduleCommands(program, testCommandContext(env.client, env.taskQueue).context);
  await program.parseAsync(['schedule', ...args, '--id', scheduleId], { from: 'user' });
}

test('a pause or unpause without --note leaves a note of ours, and a pause of a paused schedule keeps its note', async () => {
  await schedule('upsert', '--every', '1h', '--lookback', '2h');

  await schedule('pause');
  expect(await describeSweepSchedule(env.client, scheduleId)).toMatchObject({ paused: true, note: DEFAULT_PAUSE_NOTE });

  await schedule('pause', '--note', 'maintenance until 18:00');
  await schedule('pause');
  expect(await describeSweepSchedule(env.client, scheduleId)).toMatchObject({
    paused: true,
    note: 'maintenance until 18:00',
  });

  await schedule('unpause');
  expect(await describeSweepSchedule(env.client, scheduleId)).toMatchObject({
    paused: false,
    note: DEFAULT_UNPAUSE_NOTE,
  });
});
