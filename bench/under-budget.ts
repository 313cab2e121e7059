import { randomUUID } from 'node:crypto';
import type { BatchRecoveries } from '../client/recoveries.js';
import type { RunningSimulator } from '../simulator/index.js';
import { startBenchStack, startBenchWorker, type BenchStack, type BenchWorker } from './harness.js';

/*
 * What a burst of work costs the queue's Anchor budget: a scenario run on product workers with the budget, this code's
 * bundle beside an earlier one's, and probe recoveries whose retry calls come due during the burst.
 */

/** A probe's round backoff: its snapshot read and retry call come due this long after its batch settled. */
const PROBE_BACKOFF_MS = 5_000;
/** The simulator's attempts: a probe batch settles queueDelayMs + attemptDurationMs after it is created. */
const PROBE_SIMULATOR = { queueDelayMs: 10, attemptDurationMs: 40 };

export interface Probes {
  /** Each probe's retry call after its settle and backoff, in seconds, sorted; once every probe has ended. */
  retryLagSeconds(): Promise<number[]>;
}

/**
 * One-round recoveries of batches that settle at once: how long after its backoff each retry call went out tells what
 * else held the queue's budget.
 */
export async function startProbes(
  recoveries: BatchRecoveries,
  simulator: RunningSimulator,
  count: number,
): Promise<Probes> {
  const batches = Array.from({ length: count }, () =>
    simulator.createScriptedBatch({ count: 2, script: { '0': ['fail', 'ok'] } }),
  );
  for (const batch of batches) {
    await recoveries.start({
      batchId: batch.id,
      maxRounds: 1,
      poll: { initialInterval: '1s', backoffCoefficient: 1, maximumInterval: '1s' },
      roundBackoff: { initialInterval: `${PROBE_BACKOFF_MS}ms`, backoffCoefficient: 1, maximumInterval: '5s' },
    });
  }
  return {
    async retryLagSeconds() {
      const lags: number[] = [];
      for (const batch of batches) {
        await recoveries.result(batch.id);
        const retryAt = Date.parse(simulator.ledger.forBatch(batch.id).retries[0]!.at);
        const settledAt = batch.createdAt + PROBE_SIMULATOR.queueDelayMs + PROBE_SIMULATOR.attemptDurationMs;
        lags.push((retryAt - settledAt - PROBE_BACKOFF_MS) / 1_000);
      }
      return lags.sort((a, b) => a - b);
    },
  };
}

/** `current`: this code's bundle; `compared`: the bundle of `--compare-bundle`, on this code's worker. */
export type BudgetVariant = 'current' | 'compared';

export interface UnderBudgetOptions<Figures> {
  /** Anchor calls per second for the product worker's queue. */
  budget: number;
  repeats: number;
  compareBundle: string | undefined;
  /** One run, on a task queue of its own whose product worker is `worker`; the simulator is reset after it. */
  scenario(stack: BenchStack, taskQueue: string, worker: BenchWorker): Promise<Figures>;
  /** A run's figures, on one line. */
  describe(figures: Figures): string;
}

/**
 * Runs the scenario `repeats` times for this code's bundle and, with `compareBundle`, for an earlier one's in the same
 * run, alternating which goes first so that neither always runs on a fresher server.
 */
export async function runUnderBudget<Figures>(
  options: UnderBudgetOptions<Figures>,
): Promise<Record<BudgetVariant, Figures[]>> {
  const variants: BudgetVariant[] = options.compareBundle ? ['current', 'compared'] : ['current'];
  const figures: Record<BudgetVariant, Figures[]> = { current: [], compared: [] };
  const stack = await startBenchStack(PROBE_SIMULATOR);
  try {
    for (let repeat = 0; repeat < options.repeats; repeat += 1) {
      const order = repeat % 2 === 0 ? variants : [...variants].reverse();
      for (const variant of order) {
        const taskQueue = `bench-budget-${randomUUID()}`;
        const worker = await startBenchWorker({
          kind: 'product',
          stack,
          taskQueue,
          maxCallsPerSecond: options.budget,
          ...(variant === 'compared' && { bundlePath: options.compareBundle }),
        });
        try {
          const run = await options.scenario(stack, taskQueue, worker);
          figures[variant].push(run);
          console.log(`repeat ${repeat + 1} ${variant}: ${options.describe(run)}`);
        } finally {
          await worker.stop();
          // The next run's listings show only its own batches.
          stack.simulator.reset();
        }
      }
    }
  } finally {
    await stack.stop();
  }
  return figures;
}
