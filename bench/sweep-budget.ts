/**
 * What a sweep's starts cost the queue's Anchor budget. Usage:
 *   npm run bench:sweep-budget -- [--failed 300] [--probes 20] [--budget 10] [--repeats 3] [--compare-bundle <file>]
 * A sweep finds `--failed` batches with failed sessions and starts a recovery for each (their first round waits an
 * hour, so they make no call of their own but the poller's pages). Just before it, `--probes` recoveries start on
 * batches that settle at once: their round's snapshot read and retry call come due 5 s later, while the sweep starts
 * its recoveries. Printed per variant: the sweep's activity tasks (each a unit of the budget), its time from start
 * to its last recovery started, and how long after its backoff each probe's retry call went out.
 * `--compare-bundle` runs a second variant, `compared`, from a bundle built of other code (an earlier commit's
 * `npm run build:bundle -- <file>`) on this code's worker, in the same run, alternating with this code's.
 */
import { randomUUID } from 'node:crypto';
import proto from '@temporalio/proto';
import { BatchRecoveries } from '../client/recoveries.js';
import type { sweepFailedBatches } from '../workflows/sweep-failed-batches.js';
import { SWEEP_FAILED_BATCHES_WORKFLOW } from '../workflows/sweep-input.js';
import { compareBundleArg, countEvents, formatSummary, numberArg, percentile } from './harness.js';
import { runUnderBudget, startProbes } from './under-budget.js';

const failed = numberArg('failed', 300);
const probes = numberArg('probes', 20);
const budget = numberArg('budget', 10);
const repeats = numberArg('repeats', 3);
const compareBundle = compareBundleArg();

interface SweepFigures {
  activityTasks: number;
  secondsToLastStart: number;
  started: number;
  /** Each probe's retry call after its settle and backoff, in seconds, sorted. */
  probeRetryLagSeconds: number[];
}

const figures = await runUnderBudget<SweepFigures>({
  budget,
  repeats,
  compareBundle,
  async scenario({ simulator, client }, taskQueue) {
    for (let index = 0; index < failed; index += 1) {
      simulator.createScriptedBatch({
        count: 1,
        script: { '0': ['fail', 'ok'] },
        created_at: new Date(Date.now() - 60_000 - index * 1_000).toISOString(),
      });
    }
    const probed = await startProbes(new BatchRecoveries(client, taskQueue), simulator, probes);
    const workflowId = `bench-sweep-${randomUUID()}`;
    const startedAt = Date.now();
    const result = await client.workflow.execute<typeof sweepFailedBatches>(SWEEP_FAILED_BATCHES_WORKFLOW, {
      taskQueue,
      workflowId,
      args: [
        {
          lookback: '1h',
          maxStarts: failed,
          recovery: { roundBackoff: { initialInterval: '1h', backoffCoefficient: 1, maximumInterval: '1h' } },
        },
      ],
    });
    const secondsToLastStart = (Date.now() - startedAt) / 1_000;
    const { events: activityTasks } = await countEvents(
      client,
      workflowId,
      proto.temporal.api.enums.v1.EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
    );
    return {
      activityTasks,
      secondsToLastStart,
      started: result.counts.started,
      probeRetryLagSeconds: await probed.retryLagSeconds(),
    };
  },
  describe: (run) =>
    `${run.started} started in ${run.secondsToLastStart.toFixed(1)} s, ${run.activityTasks} activity tasks; ` +
    `probes' retry call after backoff p50 ${percentile(run.probeRetryLagSeconds, 50).toFixed(1)} s, ` +
    `max ${run.probeRetryLagSeconds.at(-1)!.toFixed(1)} s`,
});

console.log(
  `\n${failed} failed batches swept, ${probes} probes, budget ${budget}/s; median (min, max) of ${repeats} repeats:`,
);
for (const [variant, runs] of Object.entries(figures).filter(([, runs]) => runs.length > 0)) {
  console.log(
    `${variant.padEnd(9)} activity tasks ${formatSummary(
      runs.map((run) => run.activityTasks),
      0,
    )}; time to last start ${formatSummary(runs.map((run) => run.secondsToLastStart))} s; probes' retry call ` +
      `after backoff p50 ${formatSummary(runs.map((run) => percentile(run.probeRetryLagSeconds, 50)))} s, ` +
      `max ${formatSummary(runs.map((run) => run.probeRetryLagSeconds.at(-1)!))} s`,
  );
}
if (compareBundle) {
  const ratios = figures.current.map(
    (run, index) => run.secondsToLastStart / figures.compared[index]!.secondsToLastStart,
  );
  const lagRatios = figures.current.map(
    (run, index) => run.probeRetryLagSeconds.at(-1)! / figures.compared[index]!.probeRetryLagSeconds.at(-1)!,
  );
  console.log(
    `ratios per repeat (current / compared): time to last start ${formatSummary(ratios)}; ` +
      `probes' slowest retry call after backoff ${formatSummary(lagRatios)}`,
  );
}
