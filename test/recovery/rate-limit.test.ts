import { startRecoveryEnv, type RecoveryEnv } from '../helpers/recovery-env.js';

let env: RecoveryEnv;

beforeAll(async () => {
  env = await startRecoveryEnv({ clockMode: 'manual' });
  await env.startWorker(undefined, { maxCallsPerSecond: 2 });
});
afterAll(() => env.close());

test('the worker keeps Anchor API calls under the task queue rate limit', async () => {
  const batches = Array.from({ length: 12 }, () => env.simulator.createScriptedBatch({ count: 2 }));
  // Settled before the recoveries start, so each needs exactly one status read.
  env.simulator.clock.advance(60_000);
  await Promise.all(batches.map((batch) => env.recoveries.start({ batchId: batch.id })));
  const reports = await Promise.all(batches.map((batch) => env.recoveries.result(batch.id)));

  expect(reports.map((report) => report.outcome)).toEqual(batches.map(() => 'clean'));
  const arrivals = env.simulator.ledger
    .all()
    .calls.map((call) => call.receivedAtMs)
    .sort((a, b) => a - b);
  expect(arrivals).toHaveLength(12);
  // The server's token bucket lets a burst through at once (seen: up to 2 s of budget, 4 calls), so 12 calls at 2
  // per second take at least 4 s; 3 s leaves room for a larger burst. Unlimited, they take milliseconds.
  expect(arrivals.at(-1)! - arrivals[0]!).toBeGreaterThanOrEqual(3_000);
});
