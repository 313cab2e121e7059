import { recoveryEnd, renderRecoveryDetails } from '../../workflows/recovery-details.js';
import { REPORT_LIMITS, roundsDone } from '../../workflows/report.js';
import { FAST_POLICY, startRecoveryEnv, type RecoveryEnv } from '../helpers/recovery-env.js';

let env: RecoveryEnv;
beforeAll(async () => {
  env = await startRecoveryEnv();
  await env.startWorker();
});
afterAll(() => env.close());

test('a recovery past the rounds the report keeps makes exactly maxRounds retry calls, across continue-as-new', async () => {
  const { firstRounds, lastRounds } = REPORT_LIMITS;
  const maxRounds = firstRounds + lastRounds + 5;
  const batch = env.simulator.createScriptedBatch({ count: 2, script: { '1': 'always-fail' } });
  await env.recoveries.start({
    batchId: batch.id,
    ...FAST_POLICY,
    roundBackoff: { initialInterval: '10ms', backoffCoefficient: 1, maximumInterval: '10ms' },
    maxRounds,
    continueAsNewAfterEvents: 200,
  });
  const report = await env.recoveries.result(batch.id);

  expect(report.outcome).toBe('exhausted');
  expect(env.simulator.ledger.forBatch(batch.id).retries).toHaveLength(maxRounds);
  expect(report.continuedAsNew).toBeGreaterThan(0);
  expect(roundsDone(report)).toBe(maxRounds);
  expect(report.rounds.map((round) => round.round)).toEqual([
    ...Array.from({ length: firstRounds }, (_, i) => i + 1),
    ...Array.from({ length: lastRounds }, (_, i) => maxRounds - lastRounds + i + 1),
  ]);
  expect(report.omittedRounds).toMatchObject({ count: 5, firstRound: firstRounds + 1, lastRound: firstRounds + 5 });
  expect(report.totals.retriedSessions).toBe(maxRounds);
  // The end notification and the Web UI's details count every round, not those the report keeps in full (30).
  expect(recoveryEnd(report)?.rounds).toBe(maxRounds);
  expect(renderRecoveryDetails(report)).toContain(`### Rounds (${maxRounds} of at most ${maxRounds})`);
}, 240_000);
