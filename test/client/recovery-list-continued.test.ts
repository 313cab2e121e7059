import { listRecoveries } from '../../client/recovery-list.js';
import { eventually, FAST_POLICY, startRecoveryEnv, type RecoveryEnv } from '../helpers/recovery-env.js';

let env: RecoveryEnv;
beforeAll(async () => {
  env = await startRecoveryEnv();
  await env.startWorker();
});
afterAll(() => env.close());

test('the cross-batch report gives a recovery that continued as new its own start and duration, not its last run’s', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 2, script: { '1': 'always-fail' } });
  await env.recoveries.start({
    batchId: batch.id,
    ...FAST_POLICY,
    roundBackoff: { initialInterval: '10ms', backoffCoefficient: 1, maximumInterval: '10ms' },
    maxRounds: 8,
    continueAsNewAfterEvents: 50,
  });
  const report = await env.recoveries.result(batch.id);
  expect(report.outcome).toBe('exhausted');
  expect(report.continuedAsNew).toBeGreaterThan(0);
  const lastRun = await env.recoveries.handle(batch.id).describe();
  // The last run started after the recovery did: a row that took its start would be off by the earlier runs.
  expect(lastRun.startTime.getTime()).toBeGreaterThan(Date.parse(report.startedAt));

  const row = await eventually('the recovery listed with its outcome', async () => {
    const { rows } = await listRecoveries(env.client, { since: '1h' });
    const listed = rows.find((candidate) => candidate.batchId === batch.id);
    return listed?.outcome === 'exhausted' ? listed : undefined;
  });

  expect(row.startedAt.toISOString()).toBe(report.startedAt);
  expect(row.durationMs).toBe(lastRun.closeTime!.getTime() - Date.parse(report.startedAt));
}, 120_000);
