import type { Client } from '@temporalio/client';
import type { MetricGauge } from '@temporalio/common';
import proto from '@temporalio/proto';

/** The gauge's name on /metrics: how many workers this one counts as sharing the Anchor budget. */
export const WORKERS_SHARING_BUDGET_METRIC = 'anchor_workers_sharing_budget';

/** How often a worker counts the workers on its task queue: a newcomer is in every count within this much. */
export const WORKER_COUNT_INTERVAL_MS = 5_000;

/**
 * A worker the server saw polling this recently still runs: an idle worker's long polls last about a minute, and
 * the server dates a poller by when its last poll began. The server forgets a poller 5 minutes after its last poll.
 */
const LIVE_POLLER_WINDOW_MS = 90_000;

/** A failing count's error, as much of it as a log line needs. */
const MAX_ERROR_LENGTH = 300;

/**
 * The identities of the workers polling the task queue's activity tasks, as the server lists them: every worker
 * that takes activities may call Anchor. This worker is counted even before its own first poll.
 */
export async function activityWorkerIdentities(client: Client, taskQueue: string, self: string): Promise<Set<string>> {
  const { pollers } = await client.workflowService.describeTaskQueue({
    namespace: client.options.namespace,
    taskQueue: { name: taskQueue, kind: proto.temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
    taskQueueType: proto.temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
  });
  const recent = Date.now() - LIVE_POLLER_WINDOW_MS;
  const identities = new Set([self]);
  for (const poller of pollers ?? []) {
    // A protobuf Long or a number, depending on the value.
    const lastPollAt = Number(poller.lastAccessTime?.seconds?.toString() ?? 0) * 1_000;
    if (poller.identity && lastPollAt >= recent) identities.add(poller.identity);
  }
  return identities;
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
  logger: { warn(message: string, meta?: Record<string, unknown>): void };
  /** Counting stops once this says the worker no longer runs. */
  running: () => boolean;
}

/**
 * Counts the workers sharing the budget now and every WORKER_COUNT_INTERVAL_MS, one count at a time: the
 * configured number, or more when more workers take the task queue's activities (a rolling deploy's newcomers, an
 * autoscaler's). A failing count keeps the last one and logs why, once while the failures repeat; it never stops the
 * worker.
 */
export function followWorkersSharingBudget(options: WorkersSharingBudgetOptions): void {
  const { client, taskQueue, identity, configured, onChange, gauge, logger, running } = options;
  let current = configured;
  let counting = false;
  /** Logged once while counts keep failing alike (a role without DescribeTaskQueue would fail every one). */
  let lastError: string | undefined;
  gauge.set(current, { taskQueue });
  const count = async () => {
    if (counting) return;
    counting = true;
    try {
      const workers = Math.max(configured, (await activityWorkerIdentities(client, taskQueue, identity)).size);
      lastError = undefined;
      if (workers !== current && running()) {
        current = workers;
        gauge.set(workers, { taskQueue });
        onChange(workers);
      }
    } catch (err) {
      // A count cut off by the worker's own shutdown (its connection closing) is no news.
      if (!running()) return;
      const error = (err instanceof Error ? err.message : String(err)).slice(0, MAX_ERROR_LENGTH);
      if (error === lastError) return;
      lastError = error;
      logger.warn('Counting the workers sharing the Anchor budget failed; keeping the last count', {
        workers: current,
        error,
      });
    } finally {
      counting = false;
    }
  };
  const timer = setInterval(() => {
    if (running()) void count();
    else clearInterval(timer);
  }, WORKER_COUNT_INTERVAL_MS);
  timer.unref();
  void count();
}
