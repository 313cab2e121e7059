import type { WorkerConfig } from '../../worker/config.js';
import { startRecoveryEnv } from '../helpers/recovery-env.js';

/**
 * How much nearer each other calls may arrive than they left. The turns keep a ninth of a second spare in every
 * second for this (docs/scaling.md); on CI's loaded machine the process running workers and simulator together is
 * sometimes held longer than that between a call's turn and its arrival (seen: 11 arrivals in one second at a
 * budget of 10, with the turns themselves spaced), so the test counts arrivals in windows this much shorter than
 * a second. The turns' own spacing is asserted exactly in test/anchor-api/client.test.ts.
 */
const ARRIVAL_JITTER_ALLOWANCE_MS = 100;

/**
 * Recovers batches that settled before their recoveries start, so each makes exactly one call: its status read.
 * Returns when the calls arrived at the simulator, and the most that arrived within any one second, less the
 * jitter allowance.
 */
async function recoverSettledBatches(
  workers: number,
  limits: Partial<WorkerConfig['limits']>,
  count: number,
): Promise<{ arrivals: number[]; mostWithinTheWindow: number }> {
  const env = await startRecoveryEnv({ clockMode: 'manual' });
  try {
    for (let i = 0; i < workers; i += 1) await env.startWorker(undefined, limits);
    const batches = Array.from({ length: count }, () => env.simulator.createScriptedBatch({ count: 2 }));
    env.simulator.clock.advance(60_000);
    await Promise.all(batches.map((batch) => env.recoveries.start({ batchId: batch.id })));
    const reports = await Promise.all(batches.map((batch) => env.recoveries.result(batch.id)));
    expect(reports.map((report) => report.outcome)).toEqual(batches.map(() => 'clean'));
    return {
      arrivals: env.simulator.ledger.all().calls.map((call) => call.receivedAtMs),
      mostWithinTheWindow: env.simulator.ledger.mostCallsWithin(1_000 - ARRIVAL_JITTER_ALLOWANCE_MS),
    };
  } finally {
    await env.close();
  }
}

test('one worker sends at most the budget in any one second, the burst after an idle spell included', async () => {
  const { arrivals, mostWithinTheWindow } = await recoverSettledBatches(1, { maxCallsPerSecond: 2 }, 12);

  expect(arrivals).toHaveLength(12);
  // The server's token bucket alone lets a second of tasks through on top of the rate after an idle spell
  // (seen: 4 calls within 950 ms at 2 per second).
  expect(mostWithinTheWindow).toBe(2);
  // 12 calls, one every 556 ms: the last goes out 6.1 s after the first at the earliest.
  expect(Math.max(...arrivals) - Math.min(...arrivals)).toBeGreaterThanOrEqual(5_000);
});

test('two workers sharing the budget send at most the budget in any one second between them', async () => {
  const { arrivals, mostWithinTheWindow } = await recoverSettledBatches(
    2,
    { maxCallsPerSecond: 10, workersSharingBudget: 2 },
    40,
  );

  expect(arrivals).toHaveLength(40);
  // Without the shares, the server's bucket let 20 through within 950 ms.
  expect(mostWithinTheWindow).toBeLessThanOrEqual(10);
  // 40 calls, each worker's one every 222 ms: the last goes out 4.2 s after the first at the earliest.
  expect(Math.max(...arrivals) - Math.min(...arrivals)).toBeGreaterThanOrEqual(3_000);
});
