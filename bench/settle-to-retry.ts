/**
 * Time from a batch settling with failed sessions to the retry call, on the
 * simulator's real clock. The lag is the poll that notices the settle plus the
 * round backoff; the settings are printed with the figures.
 */
import { startLocalStack } from '../dev/local-stack.js';
import type { RecoverBatchInput } from '../workflows/input.js';

const settings = {
  poll: { initialInterval: '1s', backoffCoefficient: 1.5, maximumInterval: '5s' },
  roundBackoff: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '10m' },
} satisfies Partial<RecoverBatchInput>;
const runs = Number(process.argv[2] ?? 5);

const stack = await startLocalStack({ attemptDurationMs: 3_000, queueDelayMs: 500 });
const lags: number[] = [];
try {
  await stack.workers.runUntil(async () => {
    for (let run = 0; run < runs; run += 1) {
      const batch = stack.simulator.createScriptedBatch({
        count: 20,
        script: { '4': ['fail', 'ok'], '11': ['fail', 'ok'] },
      });
      await stack.recoveries.start({ batchId: batch.id, ...settings });
      await stack.recoveries.result(batch.id);
      const ledger = stack.simulator.ledger.forBatch(batch.id);
      const retryAt = Date.parse(ledger.retries[0]!.at);
      // The simulator settles a batch when its last first attempt ends: queue delay plus one attempt.
      const settledAt = batch.createdAt + 500 + 3_000;
      lags.push(retryAt - settledAt);
    }
  });
} finally {
  await stack.stop();
}
lags.sort((a, b) => a - b);
console.log(`settings: ${JSON.stringify(settings)}`);
console.log(
  `settle -> retry call over ${runs} recoveries: min ${lags[0]} ms, median ${lags[Math.floor(lags.length / 2)]} ms, max ${lags.at(-1)} ms`,
);
