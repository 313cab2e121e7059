import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { batchStatusPollerWorkflowId } from '../workflows/definitions.js';
import { everyWhileRunning, type WorkerLifeState } from './while-running.js';

/**
 * How often a worker with the poller checks that it runs, and starts it when it does not: an operator restarts a
 * stuck poller by terminating it (docs/deployment.md), and until a new one runs a recovery that registers finds none
 * and reads its batch itself, one status read per poll interval. A minute keeps that window short against the
 * registrations' 15 poll intervals, for one describe a minute per worker.
 */
export const POLLER_CHECK_INTERVAL_MS = 60_000;

/** A failing check's error, as much of it as a log line needs. */
const MAX_CHECK_ERROR_LENGTH = 300;

interface KeepPollerOptions {
  client: Client;
  taskQueue: string;
  intervalMs: number;
  logger: {
    info(message: string, meta?: Record<string, unknown>): void;
    warn(message: string, meta?: Record<string, unknown>): void;
  };
  /** The worker's state: checks run while it runs, and stop for good after. */
  state: () => WorkerLifeState;
  /** Starts the task queue's poller, or finds the one running. */
  start: () => Promise<void>;
}

/**
 * Checks every `intervalMs` while the worker runs that the task queue's poller runs, and starts a new one when it
 * does not (terminated, failed, or gone from visibility), one check at a time. Every worker checks: the start finds
 * a running poller, so two workers that start one at once start one.
 */
export function keepBatchStatusPollerRunning({
  client,
  taskQueue,
  intervalMs,
  logger,
  state,
  start,
}: KeepPollerOptions): void {
  const handle = client.workflow.getHandle(batchStatusPollerWorkflowId(taskQueue));
  const check = async () => {
    try {
      const status = await handle.describe().then(
        (description) => description.status.name,
        (err: unknown) => {
          if (err instanceof WorkflowNotFoundError) return 'NOT_FOUND';
          throw err;
        },
      );
      if (status === 'RUNNING' || state() === 'after') return;
      await start();
      logger.info('Batch status poller was not running; started it again', { taskQueue, previousStatus: status });
    } catch (err) {
      // A check cut off by the worker's own shutdown (its connection closing) is no news.
      if (state() === 'after') return;
      const error = (err instanceof Error ? err.message : String(err)).slice(0, MAX_CHECK_ERROR_LENGTH);
      logger.warn('Checking that the batch status poller runs failed; checking again later', { taskQueue, error });
    }
  };
  everyWhileRunning(state, intervalMs, check);
}
