/**
 * What recoveries ending together cost the queue's Anchor budget. Usage:
 *   npm run bench:end-budget -- [--ends 300] [--probes 20] [--budget 10] [--repeats 3] [--compare-bundle <file>]
 * `--ends` recoveries wait for batches that stay pending for an hour (so they make no call of their own but the
 * poller's pages). `--probes` one-round recoveries start (bench/under-budget.ts), and right after, an operator cancels
 * the waiting recoveries all at once: each ends `operator_cancelled`, and its end notification is scheduled whether a
 * webhook is configured or not. Printed per variant: the notifications that ran on the recoveries' queue (each a
 * unit of the budget), the time from the cancels to the last recovery closed, the worker's and the dev server's CPU
 * over it, and how long after its backoff each probe's retry call went out.
 * `--compare-bundle` runs a second variant, `compared`, from a bundle built of other code (an earlier commit's
 * `npm run build:bundle -- <file>`) on this code's worker, in the same run, alternating with this code's.
 */
import { BatchRecoveries } from '../client/recoveries.js';
import { compareBundleArg, cpuSeconds, forEachLimit, formatSummary, numberArg, percentile } from './harness.js';
import { runUnderBudget, startProbes } from './under-budget.js';

const ends = numberArg('ends', 300);
const probes = numberArg('probes', 20);
const budget = numberArg('budget', 10);
const repeats = numberArg('repeats', 3);
const compareBundle = compareBundleArg();
const HOUR_MS = 3_600_000;

interface EndFigures {
  notificationsOnRecoveryQueue: number;
  secondsToLastEnd: number;
  /** The worker's and the dev server's CPU from the cancels until every cancelled recovery had ended, in cores. */
  workerCores: number;
  serverCores: number;
  /** Each probe's retry call after its settle and backoff, in seconds, sorted. */
  probeRetryLagSeconds: number[];
}

async function waitUntil(condition: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 5 * 60_000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('A recovery did not begin waiting for its batch in 5 min');
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

const figures = await runUnderBudget<EndFigures>({
  budget,
  repeats,
  compareBundle,
  async scenario({ simulator, client, server }, taskQueue, worker) {
    const recoveries = new BatchRecoveries(client, taskQueue);
    const waiting = Array.from({ length: ends }, () =>
      simulator.createScriptedBatch({ count: 1, pending_phase: { ms: HOUR_MS } }),
    );
    for (const batch of waiting) await recoveries.start({ batchId: batch.id });
    // Cancelled while they wait for their batch: a recovery not yet waiting would still make calls of its own.
    await forEachLimit(waiting, 20, (batch) =>
      waitUntil(async () => (await recoveries.report(batch.id)).phase === 'waiting_for_batch'),
    );
    const probed = await startProbes(recoveries, simulator, probes);
    const cancelledAt = Date.now();
    worker.mark();
    const serverCpuAtCancels = cpuSeconds(server.pid!);
    await forEachLimit(waiting, 50, (batch) => recoveries.cancel(batch.id));
    await forEachLimit(waiting, 20, (batch) => recoveries.result(batch.id).then(() => undefined));
    const measuredSeconds = (Date.now() - cancelledAt) / 1_000;
    const workerCores = worker.measure().cpuSeconds / measuredSeconds;
    const serverCores = (cpuSeconds(server.pid!) - serverCpuAtCancels) / measuredSeconds;
    let lastEnd = cancelledAt;
    let notificationsOnRecoveryQueue = 0;
    await forEachLimit(waiting, 20, async (batch) => {
      const events = (await recoveries.handle(batch.id).fetchHistory()).events ?? [];
      lastEnd = Math.max(lastEnd, events.at(-1)!.eventTime!.seconds!.toNumber() * 1_000);
      notificationsOnRecoveryQueue += events.filter(
        (event) =>
          event.activityTaskScheduledEventAttributes?.activityType?.name === 'notifyRecoveryEnd' &&
          event.activityTaskScheduledEventAttributes.taskQueue?.name === taskQueue,
      ).length;
    });
    const secondsToLastEnd = (lastEnd - cancelledAt) / 1_000;
    return {
      notificationsOnRecoveryQueue,
      secondsToLastEnd,
      workerCores,
      serverCores,
      probeRetryLagSeconds: await probed.retryLagSeconds(),
    };
  },
  describe: (run) =>
    `${ends} cancelled, the last closed ${run.secondsToLastEnd.toFixed(1)} s after the cancels (worker ` +
    `${run.workerCores.toFixed(2)} cores, dev server ${run.serverCores.toFixed(2)}); ` +
    `${run.notificationsOnRecoveryQueue} notifications on the recoveries' queue; probes' retry call after backoff ` +
    `p50 ${percentile(run.probeRetryLagSeconds, 50).toFixed(1)} s, ` +
    `max ${run.probeRetryLagSeconds.at(-1)!.toFixed(1)} s`,
});

console.log(
  `\n${ends} recoveries cancelled at once, ${probes} probes, budget ${budget}/s; ` +
    `median (min, max) of ${repeats} repeats:`,
);
for (const [variant, runs] of Object.entries(figures).filter(([, runs]) => runs.length > 0)) {
  console.log(
    `${variant.padEnd(9)} notifications on the recoveries' queue ${formatSummary(
      runs.map((run) => run.notificationsOnRecoveryQueue),
      0,
    )}; last end after the cancels ${formatSummary(runs.map((run) => run.secondsToLastEnd))} s; worker ` +
      `${formatSummary(runs.map((run) => run.workerCores))} cores, dev server ` +
      `${formatSummary(runs.map((run) => run.serverCores))} cores; probes' retry call after backoff p50 ` +
      `${formatSummary(runs.map((run) => percentile(run.probeRetryLagSeconds, 50)))} s, ` +
      `max ${formatSummary(runs.map((run) => run.probeRetryLagSeconds.at(-1)!))} s`,
  );
}
if (compareBundle) {
  const ratios = figures.current.map((run, index) => run.secondsToLastEnd / figures.compared[index]!.secondsToLastEnd);
  const lagRatios = figures.current.map(
    (run, index) => run.probeRetryLagSeconds.at(-1)! / figures.compared[index]!.probeRetryLagSeconds.at(-1)!,
  );
  console.log(
    `ratios per repeat (current / compared): last end after the cancels ${formatSummary(ratios)}; ` +
      `probes' slowest retry call after backoff ${formatSummary(lagRatios)}`,
  );
}
