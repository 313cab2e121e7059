import { EXIT_CODES } from '../../client/exit-codes.js';
import { eventually, FAST_POLICY, startRecoveryEnv, type RecoveryEnv } from '../helpers/recovery-env.js';
import { killLeftoverChildren, spawnTypeScript } from './child-process.js';

// `batch-recovery report --since 7d | head`: the reader takes what it wants and closes the pipe while the CLI writes.
// And an operator's Ctrl-C, which stops the command but not the recovery it follows.

let env: RecoveryEnv;
beforeAll(async () => {
  env = await startRecoveryEnv();
  await env.startWorker();
});
afterEach(killLeftoverChildren);
afterAll(() => env.close());

test('a CLI whose output is closed by its reader ends quietly with the exit code of what it did', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 2, script: { '1': 'always-fail' } });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY, maxRounds: 1 });
  expect((await env.recoveries.result(batch.id)).outcome).toBe('exhausted');
  const cli = spawnTypeScript('client/cli.ts', ['--task-queue', env.taskQueue, 'report', batch.id], {
    env: process.env,
  });
  // Closed before the report is written, as `head` closes it after the lines it wanted.
  cli.child.stdout?.destroy();
  const { code, signal } = await cli.closed;

  expect(cli.stderr()).toBe('');
  expect({ code, signal }).toEqual({ code: EXIT_CODES.exhausted, signal: null });
});

/** `watch` of a recovery that backs off for an hour after its first round: it follows it until stopped. */
async function watchBackingOff() {
  const batch = env.simulator.createScriptedBatch({ count: 2, script: { '1': 'always-fail' } });
  await env.recoveries.start({
    batchId: batch.id,
    ...FAST_POLICY,
    roundBackoff: { initialInterval: '1h', maximumInterval: '1h' },
  });
  const watch = spawnTypeScript('client/cli.ts', ['--task-queue', env.taskQueue, 'watch', batch.id], {
    env: process.env,
  });
  return { batch, watch };
}

test('watch whose output is closed by its reader stops following, quietly, saying it saw no end', async () => {
  const { batch, watch } = await watchBackingOff();
  try {
    watch.child.stdout?.destroy();
    let ended: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    void watch.closed.then((result) => (ended = result));
    // Before, it followed the recovery (backing off for an hour) with no one reading.
    await eventually('watch to end', () => ended, 20_000);

    expect(watch.stderr()).toBe('');
    // Before, 0: a script under `set -o pipefail` took the recovery, still backing off, for recovered.
    expect(ended).toEqual({ code: EXIT_CODES.output_closed, signal: null });
  } finally {
    await env.recoveries.handle(batch.id).terminate('test done');
  }
});

test.each([
  ['SIGINT', EXIT_CODES.interrupted],
  ['SIGTERM', EXIT_CODES.terminated_by_signal],
] as const)(
  'watch stopped by %s says the recovery goes on, and how to stop it; the recovery runs on',
  async (signal, code) => {
    const { batch, watch } = await watchBackingOff();
    try {
      await watch.waitForOutput(/round/);
      watch.child.kill(signal);

      // Before, the process died by the signal, saying nothing.
      expect(await watch.closed).toEqual({ code, signal: null });
      expect(watch.stderr()).toContain(
        `Stopped following; the recovery of batch ${batch.id} goes on (batch-recovery cancel ${batch.id} stops it)`,
      );
      expect((await env.recoveries.progress(batch.id)).running).toBe(true);
    } finally {
      await env.recoveries.handle(batch.id).terminate('test done');
    }
  },
);
