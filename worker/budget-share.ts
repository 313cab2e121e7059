import type { Client } from '@temporalio/client';
import type { MetricGauge } from '@temporalio/common';
import { recentPollerIdentities } from './task-queue-pollers.js';
import { everyWhileRunning, type WorkerLifeState } from './while-running.js';

/** The gauge's name on /metrics: how many workers this one counts as sharing the Anchor budget. */
export const WORKERS_SHARING_BUDGET_METRIC = 'anchor_workers_sharing_budget';

/**
 * How often a worker counts the workers on its task queue: a newcomer is counted within this and the 5 s the server
 * keeps its answer.
 */
export const WORKER_COUNT_INTERVAL_MS = 5_000;

/**
 * How long a worker the server no longer lists still counts. The server lists a worker for 5 minutes after its last
 * poll, so one whose activity slots are all busy, and which does not poll while it sends their calls, stays listed
 * that long. A 1.32 server drops a worker as soon as it begins its 30 s shutdown grace, in which it still sends
 * (each call ending within its request timeout): this covers that, with room. A worker busier than 6 minutes without
 * one poll (every slot held by a sweep's listing, whose start-to-close is 10 min) would be dropped too soon.
 */
export const DEPARTED_WORKER_HOLD_MS = 60_000;

/** A failing count's error, as much of it as a log line needs. */
const MAX_ERROR_LENGTH = 300;

/**
 * The workers sharing the budget, from the server's successive lists of the queue's recent activity pollers: at least
 * the configured number, this worker always among them (even before its first poll), a newcomer from the first list
 * that names it, and one that is no longer listed until DEPARTED_WORKER_HOLD_MS after the last list that did.
 */
export class WorkersSharingBudget {
  /** When each other worker was last listed, by this worker's monotonic clock (performance.now()). */
  private readonly lastListedAt = new Map<string, number>();

  constructor(
    readonly configured: number,
    private readonly self: string,
    private readonly holdMs = DEPARTED_WORKER_HOLD_MS,
  ) {}

  count(listed: Iterable<string>, now: number): number {
    for (const identity of listed) if (identity !== this.self) this.lastListedAt.set(identity, now);
    for (const [identity, at] of this.lastListedAt) if (now - at > this.holdMs) this.lastListedAt.delete(identity);
    return Math.max(this.configured, this.lastListedAt.size + 1);
  }
}

/**
 * Why `workers` sharing a budget of `budgetPerSecond` calls a second can exceed it, if they can. Each sends one call
 * per N / B s, more than 1 s apart when N > ⌊B⌋, yet each may send one within any given second: N calls can land in
 * one second. Below one call a second, one worker alone sends at most one a second, and the server holds the rest.
 */
export function budgetOverrunWarning(workers: number, budgetPerSecond: number): string | undefined {
  const wholeCalls = Math.max(1, Math.floor(budgetPerSecond));
  if (workers <= wholeCalls) return undefined;
  return (
    `${workers} workers share ANCHOR_MAX_CALLS_PER_SECOND=${budgetPerSecond}, more than its ${wholeCalls} whole ` +
    `calls a second: each may send a call in the same second, so one second can hold ${workers} calls. Run at ` +
    `most ${wholeCalls} workers on the task queue, or raise the budget if Anchor allows it`
  );
}

export interface WorkersSharingBudgetOptions {
  client: Client;
  taskQueue: string;
  /** This worker's identity, as its polls carry it. */
  identity: string;
  /** ANCHOR_WORKERS_SHARING_BUDGET: the fewest workers counted, whatever the server lists. */
  configured: number;
  /** Told the count when it changes; first when the first count differs from `configured`. */
  onChange: (workers: number) => void;
  gauge: MetricGauge;
  /** ANCHOR_MAX_CALLS_PER_SECOND: a count past its whole calls is warned of (budgetOverrunWarning). */
  budgetPerSecond: number;
  logger: { warn(message: string, meta?: Record<string, unknown>): void };
  /** The worker's state: counted once at creation, then while it runs; counting stops for good after. */
  state: () => WorkerLifeState;
}

/**
 * Counts the workers sharing the budget now and every WORKER_COUNT_INTERVAL_MS, one count at a time: the
 * configured number, or more when more workers take the task queue's activities (a rolling deploy's newcomers, an
 * autoscaler's). A failing count keeps the last one and logs why, once while the failures repeat; it never stops the
 * worker. A worker that is created and never run asks the server only once.
 */
export function followWorkersSharingBudget(options: WorkersSharingBudgetOptions): void {
  const { client, taskQueue, identity, configured, onChange, gauge, budgetPerSecond, logger, state } = options;
  const workers = new WorkersSharingBudget(configured, identity);
  let current = configured;
  /** Logged once while counts keep failing alike (a role without DescribeTaskQueue would fail every one). */
  let lastError: string | undefined;
  gauge.set(current, { taskQueue });
  const count = async () => {
    try {
      // Monotonic: a step of the wall clock (an NTP correction, a VM resumed) would end or stretch the hold.
      const listed = await recentPollerIdentities(client, taskQueue, 'activity');
      const counted = workers.count(listed, performance.now());
      lastError = undefined;
      if (counted !== current && state() !== 'after') {
        const overrun = budgetOverrunWarning(counted, budgetPerSecond);
        current = counted;
        gauge.set(counted, { taskQueue });
        onChange(counted);
        if (overrun) logger.warn(overrun, { workers: counted, budgetPerSecond });
      }
    } catch (err) {
      // A count cut off by the worker's own shutdown (its connection closing) is no news.
      if (state() === 'after') return;
      const error = (err instanceof Error ? err.message : String(err)).slice(0, MAX_ERROR_LENGTH);
      if (error === lastError) return;
      lastError = error;
      logger.warn('Counting the workers sharing the Anchor budget failed; keeping the last count', {
        workers: current,
        error,
      });
    }
  };
  void everyWhileRunning(state, WORKER_COUNT_INTERVAL_MS, count)();
}
