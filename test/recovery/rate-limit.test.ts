import { startRecoveryEnv, type RecoveryEnv } from '../helpers/recovery-env.js';

/** Recovers batches that settled before their recoveries start, so each makes exactly one call: its status read. */
async function recoverSettledBatches(env: RecoveryEnv, count: number): Promise<number[]> {
  const batches = Array.from({ length: count }, () => env.simulator.createScriptedBatch({ count: 2 }));
  env.simulator.clock.advance(60_000);
  await Promise.all(batches.map((batch) => env.recoveries.start({ batchId: batch.id })));
  const reports = await Promise.all(batches.map((batch) => env.recoveries.result(batch.id)));
  expect(reports.map((report) => report.outcome)).toEqual(batches.map(() => 'clean'));
  return env.simulator.ledger.all().calls.map((call) => call.receivedAtMs);
}

describe('one worker', () => {
  let env: RecoveryEnv;
  beforeAll(async () => {
    env = await startRecoveryEnv({ clockMode: 'manual' });
    await env.startWorker(undefined, { maxCallsPerSecond: 2 });
  });
  afterAll(() => env.close());

  test('sends at most the budget in any one second, the burst after an idle spell included', async () => {
    const arrivals = await recoverSettledBatches(env, 12);

    expect(arrivals).toHaveLength(12);
    // The server's token bucket alone lets a second of tasks through on top of the rate after an idle spell
    // (seen: 4 calls within 950 ms at 2 per second).
    expect(env.simulator.ledger.mostCallsWithin(1_000)).toBe(2);
    // 12 calls, one every 556 ms: the last goes out 6.1 s after the first at the earliest.
    expect(Math.max(...arrivals) - Math.min(...arrivals)).toBeGreaterThanOrEqual(5_000);
  });
});

describe('two workers sharing the budget', () => {
  let env: RecoveryEnv;
  beforeAll(async () => {
    env = await startRecoveryEnv({ clockMode: 'manual' });
    for (let i = 0; i < 2; i += 1) await env.startWorker(undefined, { maxCallsPerSecond: 10, workersSharingBudget: 2 });
  });
  afterAll(() => env.close());

  test('send at most the budget in any one second between them', async () => {
    const arrivals = await recoverSettledBatches(env, 40);

    expect(arrivals).toHaveLength(40);
    // Without the shares, the server's bucket let 20 through within 950 ms.
    expect(env.simulator.ledger.mostCallsWithin(1_000)).toBeLessThanOrEqual(10);
    // 40 calls, each worker's one every 222 ms: the last goes out 4.2 s after the first at the earliest.
    expect(Math.max(...arrivals) - Math.min(...arrivals)).toBeGreaterThanOrEqual(3_000);
  });
});
