import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import DataLoader from 'dataloader';
import {
  POLLER_TAKES_WATCH_BATCHES_MEMO_KEY,
  watchBatch,
  watchBatches,
  type WatchBatchRequest,
} from '../workflows/definitions.js';

/**
 * How long a worker gathers the registrations of its recoveries before it signals them to the poller, as one
 * `watchBatches` signal. Every signal is one event in the poller's history, and the server refuses signals to a run
 * past 10,000: a start burst of 10,000 recoveries sent one each took 9,700–9,800 signals into the poller's first run,
 * and past the limit in one run of three (docs/scaling.md). A registration is asked for within a poll interval of
 * minutes, so 200 ms more is nothing to it; the recovery's workflow task waits them (a local activity).
 */
export const REGISTRATION_WINDOW_MS = 200;
/** Bounds one signal's payload: a registration is at most about 400 bytes (ids of 128 characters). */
export const MAX_REGISTRATIONS_PER_SIGNAL = 100;
/**
 * How long a poller run found without the `watchBatches` handler is taken as the current run, before the worker asks
 * the server again: a newer worker may have continued it as new meanwhile, into a run that takes them.
 */
const OLDER_RUN_RECHECK_MS = 60_000;

/** The poller run a worker signals, as the server described it. */
interface PollerRun {
  runId: string;
  /** Its memo says it takes `watchBatches`: its code handles them (an older run's would drop them). */
  takesBatches: boolean;
  describedAt: number;
}

/**
 * Sends the registrations of a worker's recoveries to their task queue's poller, gathered per poller over
 * REGISTRATION_WINDOW_MS (DataLoader's batching, without its cache: each registration is sent). A batch goes as one
 * `watchBatches` signal to the run that said it takes them, by run id, so that a run which continued as new since
 * (to a worker of older code, say) is never sent one; to a poller run that does not say so, each registration goes as
 * the `watchBatch` signal every poller takes. Answers true once the poller has the registration, false when no poller
 * runs on the queue.
 */
export function createRegistrationSender(client: Client) {
  const runs = new Map<string, PollerRun>();
  const batchers = new Map<string, DataLoader<WatchBatchRequest, boolean>>();

  /** The poller's running run, or undefined when none runs. */
  const currentRun = async (pollerId: string): Promise<PollerRun | undefined> => {
    const known = runs.get(pollerId);
    if (known && (known.takesBatches || Date.now() - known.describedAt < OLDER_RUN_RECHECK_MS)) return known;
    runs.delete(pollerId);
    let description;
    try {
      description = await client.workflow.getHandle(pollerId).describe();
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return undefined;
      throw err;
    }
    if (description.status.name !== 'RUNNING') return undefined;
    const run = {
      runId: description.runId,
      takesBatches: description.memo?.[POLLER_TAKES_WATCH_BATCHES_MEMO_KEY] === true,
      describedAt: Date.now(),
    };
    runs.set(pollerId, run);
    return run;
  };

  /** To whichever run is current: every poller takes it. */
  const signalOne = async (pollerId: string, request: WatchBatchRequest): Promise<boolean | Error> => {
    try {
      await client.workflow.getHandle(pollerId).signal(watchBatch, request);
      return true;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return false;
      return err instanceof Error ? err : new Error(String(err));
    }
  };

  const signalAll = async (pollerId: string, requests: readonly WatchBatchRequest[]): Promise<(boolean | Error)[]> => {
    // A second pass only after the described run closed: it continued as new, and the next run is described.
    for (let pass = 1; ; pass += 1) {
      const run = await currentRun(pollerId);
      if (!run) return requests.map(() => false);
      if (!run.takesBatches) return Promise.all(requests.map((request) => signalOne(pollerId, request)));
      try {
        await client.workflow.getHandle(pollerId, run.runId).signal(watchBatches, [...requests]);
        return requests.map(() => true);
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError) || pass >= 2) throw err;
        runs.delete(pollerId);
      }
    }
  };

  /** Resolves when the registration's signal is sent; rejects with the error of a signal the server refused. */
  return (pollerId: string, request: WatchBatchRequest): Promise<boolean> => {
    let batcher = batchers.get(pollerId);
    if (!batcher) {
      batcher = new DataLoader((requests) => signalAll(pollerId, requests), {
        cache: false,
        maxBatchSize: MAX_REGISTRATIONS_PER_SIGNAL,
        batchScheduleFn: (send) => setTimeout(send, REGISTRATION_WINDOW_MS),
      });
      batchers.set(pollerId, batcher);
    }
    return batcher.load(request);
  };
}
