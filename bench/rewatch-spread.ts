/**
 * How recoveries started together spread their re-registrations with the batch status poller. Their batches stay in
 * flight, so each recovery's wait for the poller times out every 15 poll intervals and it registers again. Runs this
 * code beside a checkout of other code (an earlier commit, its workflows, activities and worker: `git worktree add
 * <dir> <commit>` and a link to this node_modules in it), each on a dev server of its own, and repeats. Usage:
 *   npm run bench:rewatch-spread -- --compare-checkout <dir> [--recoveries 1000] [--poll-ms 8000] [--cycles 2]
 *                                   [--repeats 2]
 * Figures per run, over the wait timers that fired (each one a re-registration):
 *   - the most in any one second and in any 5 s: the burst the poller and the server take;
 *   - the span of the first registrations (how fast the recoveries started) and of the first re-registrations;
 *   - the re-registrations the poller took as a signal (the first registrations are signals too, one per recovery,
 *     and are not counted);
 *   - how long a re-registration held its recovery: from the timer firing to the next wait's timer starting, a
 *     workflow task that waits for a free slot on the worker and for the registration's answer.
 */
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import proto from '@temporalio/proto';
import { recoveryStartOptions } from '../client/recoveries.js';
import { batchStatusPollerWorkflowId, RECOVER_BATCH_WORKFLOW } from '../workflows/definitions.js';
import {
  buildBenchBundles,
  buildCheckoutBundle,
  compareCheckoutArg,
  countEvents,
  forEachLimit,
  formatSummary,
  numberArg,
  percentile,
  startBenchStack,
  startBenchWorker,
  type BenchBundles,
} from './harness.js';

const { EventType } = proto.temporal.api.enums.v1;

const recoveries = numberArg('recoveries', 1_000);
const pollMs = numberArg('poll-ms', 8_000);
const cycles = numberArg('cycles', 2);
const repeats = numberArg('repeats', 2);
const compareCheckout = compareCheckoutArg();
if (compareCheckout === undefined) throw new Error('--compare-checkout <dir>: the checkout to compare with');

/** The recoveries' wait for the poller, before any jitter (REWATCH_AFTER_POLL_INTERVALS in workflows/recover-batch.ts). */
const rewatchMs = 15 * pollMs;

type Run = 'current' | 'compared';
const RUNS: Run[] = ['current', 'compared'];

interface Measurement {
  peakPerSecond: number;
  peakPer5Seconds: number;
  /** From the first recovery's first registration to the last one's. */
  startSpanSeconds: number;
  /** From the first recovery's first re-registration to the last one's. */
  firstRewatchSpanSeconds: number;
  rewatches: number;
  rewatchesBySignal: number;
  rewatchP50Seconds: number;
  rewatchP99Seconds: number;
  rewatchMaxSeconds: number;
}

const seconds = (time: proto.google.protobuf.ITimestamp | null | undefined) =>
  Number(time?.seconds ?? 0) + (time?.nanos ?? 0) / 1e9;

/** The most of `times` (in seconds) that fall in any window of `width` whole seconds. */
function peakWithin(times: number[], width: number): number {
  const perSecond = new Map<number, number>();
  for (const time of times) perSecond.set(Math.floor(time), (perSecond.get(Math.floor(time)) ?? 0) + 1);
  let peak = 0;
  for (const start of perSecond.keys()) {
    let sum = 0;
    for (let second = start; second < start + width; second += 1) sum += perSecond.get(second) ?? 0;
    peak = Math.max(peak, sum);
  }
  return peak;
}

const span = (times: number[]) => (times.length === 0 ? 0 : Math.max(...times) - Math.min(...times));

async function runOnce(bundles: BenchBundles, run: Run): Promise<Measurement> {
  // An hour per session attempt: no batch settles while the recoveries register again.
  const stack = await startBenchStack({ attemptDurationMs: 3_600_000, queueDelayMs: 0 }, bundles);
  const taskQueue = `bench-rewatch-${run}-${randomUUID().slice(0, 8)}`;
  const worker = await startBenchWorker({
    kind: 'product',
    stack,
    taskQueue,
    maxCallsPerSecond: 10,
    maxCachedWorkflows: recoveries + 10,
    ...(run === 'compared' ? { bundlePath: comparedBundle, checkout: compareCheckout } : {}),
  });
  try {
    const workflowIds: string[] = [];
    await forEachLimit(
      Array.from({ length: recoveries }, () => stack.simulator.createScriptedBatch({ count: 2 }).id),
      50,
      async (batchId) => {
        const options = recoveryStartOptions(
          { batchId, poll: { initialInterval: pollMs, backoffCoefficient: 1, maximumInterval: pollMs } },
          taskQueue,
        );
        await stack.client.workflow.start(RECOVER_BATCH_WORKFLOW, options);
        workflowIds.push(options.workflowId);
      },
    );
    // Every recovery's first `cycles` waits have timed out by then, jittered or not.
    await delay(cycles * rewatchMs + 20_000);

    const firstRegistrations: number[] = [];
    const firstRewatches: number[] = [];
    const rewatches: number[] = [];
    const rewatchDurations: number[] = [];
    await forEachLimit(workflowIds, 20, async (workflowId) => {
      // The first timer starts the first wait; each timer that fires is a re-registration, held until the next starts.
      let timers = 0;
      let fires = 0;
      let firedAt: number | undefined;
      for (const event of (await stack.client.workflow.getHandle(workflowId).fetchHistory()).events ?? []) {
        const at = seconds(event.eventTime);
        if (event.eventType === EventType.EVENT_TYPE_TIMER_STARTED) {
          if ((timers += 1) === 1) firstRegistrations.push(at);
          if (firedAt !== undefined) rewatchDurations.push(at - firedAt);
          firedAt = undefined;
        } else if (event.eventType === EventType.EVENT_TYPE_TIMER_FIRED) {
          if ((fires += 1) === 1) firstRewatches.push(at);
          rewatches.push(at);
          firedAt = at;
        }
      }
    });
    const pollerSignals = await countEvents(
      stack.client,
      batchStatusPollerWorkflowId(taskQueue),
      EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
    );
    const sorted = rewatchDurations.sort((a, b) => a - b);
    return {
      peakPerSecond: peakWithin(rewatches, 1),
      peakPer5Seconds: peakWithin(rewatches, 5),
      startSpanSeconds: span(firstRegistrations),
      firstRewatchSpanSeconds: span(firstRewatches),
      rewatches: rewatches.length,
      rewatchesBySignal: pollerSignals.events - recoveries,
      rewatchP50Seconds: percentile(sorted, 50),
      rewatchP99Seconds: percentile(sorted, 99),
      rewatchMaxSeconds: sorted.at(-1) ?? 0,
    };
  } finally {
    await worker.stop();
    await stack.stop();
  }
}

const bundles = await buildBenchBundles();
const comparedBundle = path.join(path.dirname(bundles.product), 'compared.js');
await buildCheckoutBundle(compareCheckout, comparedBundle);
const results = new Map<Run, Measurement[]>(RUNS.map((run) => [run, []]));
try {
  for (let repeat = 1; repeat <= repeats; repeat += 1) {
    // Alternate the order: the machine's speed drifts.
    for (const run of repeat % 2 === 1 ? RUNS : [...RUNS].reverse()) {
      const measurement = await runOnce(bundles, run);
      results.get(run)!.push(measurement);
      console.error(`repeat ${repeat} ${run}: ${JSON.stringify(measurement)}`);
    }
  }
} finally {
  await bundles.remove();
}

const of = (run: Run, key: keyof Measurement) => results.get(run)!.map((m) => m[key]);
const ratio = (key: keyof Measurement) => of('compared', key).map((value, i) => value / of('current', key)[i]!);

console.log(
  `\n${recoveries} recoveries started together, batches in flight, poll interval ${pollMs} ms ` +
    `(wait for the poller ${rewatchMs / 1000} s), ${cycles} cycles, ${repeats} repeats; ` +
    `compared: ${compareCheckout}`,
);
console.log('median (min, max) over repeats');
for (const run of RUNS) {
  console.log(
    `${run.padEnd(9)} re-registrations: most in 1 s ${formatSummary(of(run, 'peakPerSecond'), 0)}, ` +
      `in 5 s ${formatSummary(of(run, 'peakPer5Seconds'), 0)} | ` +
      `span of the first registrations ${formatSummary(of(run, 'startSpanSeconds'), 1)} s, ` +
      `of the first re-registrations ${formatSummary(of(run, 'firstRewatchSpanSeconds'), 1)} s | ` +
      `${formatSummary(of(run, 'rewatches'), 0)} in all, ${formatSummary(of(run, 'rewatchesBySignal'), 0)} by signal | ` +
      `each held its recovery p50 ${formatSummary(of(run, 'rewatchP50Seconds'), 1)} s, ` +
      `p99 ${formatSummary(of(run, 'rewatchP99Seconds'), 1)} s, max ${formatSummary(of(run, 'rewatchMaxSeconds'), 1)} s`,
  );
}
console.log(
  `compared/current: most re-registrations in 1 s ${formatSummary(ratio('peakPerSecond'))}, ` +
    `in 5 s ${formatSummary(ratio('peakPer5Seconds'))}; re-registration held its recovery, p99 ` +
    `${formatSummary(ratio('rewatchP99Seconds'))}`,
);
