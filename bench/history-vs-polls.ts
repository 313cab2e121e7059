/**
 * History events of a one-round recovery that polled about 5 times against
 * one that polled about 200 times. The simulator's manual clock holds the
 * batch in flight until the wanted number of status reads has happened.
 */
import { startLocalStack } from '../dev/local-stack.js';

const stack = await startLocalStack({ clockMode: 'manual', attemptDurationMs: 1_000, queueDelayMs: 0 });
const statusReads = (batchId: string) =>
  stack.simulator.ledger.forBatch(batchId).calls.filter((call) => call.method === 'GET').length;

async function until(check: () => boolean) {
  while (!check()) await new Promise((resolve) => setTimeout(resolve, 20));
}

async function recoverAfterPolls(polls: number) {
  const batch = stack.simulator.createScriptedBatch({ count: 10, script: { '3': ['fail', 'ok'] } });
  await stack.recoveries.start({
    batchId: batch.id,
    poll: { initialInterval: '10ms', backoffCoefficient: 1, maximumInterval: '10ms' },
    roundBackoff: { initialInterval: '100ms' },
  });
  await until(() => statusReads(batch.id) >= polls);
  stack.simulator.clock.advance(60_000);
  await until(() => stack.simulator.ledger.forBatch(batch.id).retries.length === 1);
  stack.simulator.clock.advance(60_000);
  const report = await stack.recoveries.result(batch.id);
  const history = await stack.recoveries.handle(batch.id).fetchHistory();
  console.log(
    `${statusReads(batch.id)} status polls -> ${history.events?.length} history events (outcome ${report.outcome}, ${report.rounds.length} round)`,
  );
}

try {
  await stack.workers.runUntil(async () => {
    await recoverAfterPolls(5);
    await recoverAfterPolls(200);
  });
} finally {
  await stack.stop();
}
