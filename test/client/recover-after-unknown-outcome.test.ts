import { UnknownOutcomeHoldError } from '../../client/recoveries.js';
import { FAST_POLICY, startRecoveryEnv, type RecoveryEnv } from '../helpers/recovery-env.js';
import { killLeftoverChildren, runCli } from './child-process.js';

// The retry endpoint is not idempotent. A recovery started again by hand (`exhausted`, then more rounds) while a call
// of the last one, whose outcome it could not reconcile, may still be applied read the batch at once, and could retry
// the same sessions a second time. The sweeps hold such a batch 6 h; `recover` did not.

let env: RecoveryEnv;

beforeAll(async () => {
  env = await startRecoveryEnv();
  await env.startWorker();
});
afterAll(async () => {
  await killLeftoverChildren();
  await env.close();
});

test('a recovery started again after one that left a call of unknown outcome is refused, unless forced', async () => {
  // As in the retry protocol's test 2: the call's answer is lost, and the batch cannot show whether it was applied.
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'fail', 'ok'] } });
  env.simulator.faults.add('status', { type: 'omit_field', field: 'data.sessions.0.retry_count', batchId: batch.id });
  env.simulator.faults.add('retry', { type: 'commit_then_drop', times: 1, batchId: batch.id });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY, maxRounds: 1 });
  const last = await env.recoveries.result(batch.id);
  expect(last.rounds).toEqual([expect.objectContaining({ reconcileEffect: 'unknown' })]);
  const { runId } = await env.recoveries.handle(batch.id).describe();

  // Before, started at once.
  await expect(env.recoveries.start({ batchId: batch.id, ...FAST_POLICY, maxRounds: 3 })).rejects.toBeInstanceOf(
    UnknownOutcomeHoldError,
  );
  const refused = await runCli(['--task-queue', env.taskQueue, 'recover', batch.id, '--max-rounds', '3']);
  expect(refused.code).toBe(1);
  expect(refused.stderr).toContain('left a retry call whose outcome it could not reconcile');
  expect(refused.stderr).toContain('--force');
  expect((await env.recoveries.handle(batch.id).describe()).runId).toBe(runId);
  expect(env.retryPosts(batch.id)).toHaveLength(1);

  const forced = await runCli([
    '--task-queue',
    env.taskQueue,
    'recover',
    batch.id,
    '--force',
    '--round-backoff',
    '100ms',
  ]);
  expect(forced.code).toBe(0);
  expect(forced.stdout).toContain(`Started the recovery of batch ${batch.id}`);
  expect((await env.recoveries.handle(batch.id).describe()).runId).not.toBe(runId);
  await env.recoveries.result(batch.id);
}, 90_000);

test('a recovery started again after one terminated, which may have had a call out, is refused, unless forced', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 2, hold: true });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY });
  await env.recoveries.handle(batch.id).terminate('stuck, said the operator');

  // Its stored report shows no round: a call out at the end would not be in it.
  await expect(env.recoveries.start({ batchId: batch.id, ...FAST_POLICY })).rejects.toThrow(
    /was terminated, and may have had a retry call out then/,
  );
  expect(await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY }, { force: true })).toMatchObject({
    attached: false,
  });
  await env.recoveries.handle(batch.id).terminate('test done');
}, 60_000);

test('a recovery started again after one whose every call was reconciled or answered is not held', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 2, script: { '1': ['fail', 'ok'] } });
  env.simulator.faults.add('retry', { type: 'commit_then_drop', times: 1, batchId: batch.id });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY });
  const last = await env.recoveries.result(batch.id);
  expect(last.rounds).toEqual([expect.objectContaining({ reconcileEffect: 'took_effect' })]);

  expect(await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY })).toMatchObject({ attached: false });
  expect((await env.recoveries.result(batch.id)).outcome).toBe('clean');
}, 90_000);
