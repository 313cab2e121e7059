import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import DataLoader from 'dataloader';
import {
  POLLER_TAKES_WATCH_BATCHES_MEMO_KEY,
  watchBatch,
  watchBatches,
  type WatchBatchRequest,
} from '../workflows/definitions.js';

// Every signal is one event in the poller's history, and the server refuses signals to a run past 10,000: a start
// burst of 10,000 recoveries that sent one each took 9,700–9,800 signals into the poller's first run, and went past
// the limit in one run of three (docs/scaling.md). So a worker sends one signal at a time to a poller, and the
// registrations that come while it is out go together in the next: none waits when the server answers at once, and a
// burst that slows the server's answers gathers more per signal (4,502 signals for that burst). A fixed 200 ms
// window gathered more (1,238) but held each recovery's workflow task (and its slot, a local activity) 200 ms
// longer, and the burst's first tasks ran later.

/** Bounds one signal's payload: a registration is at most about 400 bytes (ids of 128 characters). */
export const MAX_REGISTRATIONS_PER_SIGNAL = 100;

/** The poller run a worker signals, as the server described it. */
interface PollerRun {
  runId: string;
  /** Its memo says it takes `watchBatches`: its code handles them (an older run's would drop them). */
  takesBatches: boolean;
}

/**
 * Sends the registrations of a worker's recoveries to their task queue's poller, gathered per poller while the
 * previous signal is out (DataLoader's batching, without its cache: each registration is sent). A batch goes as one
 * `watchBatches` signal to the run that said it takes them, by run id, so that a run which continued as new since
 * (to a worker of older code, say) is never sent one; to a poller run that does not say so, each registration goes as
 * the `watchBatch` signal every poller takes. Answers true once the poller has the registration, false when no poller
 * runs on the queue.
 */
export function createRegistrationSender(client: Client) {
  /** Runs that take `watchBatches`, by poller, until one closes. */
  const runs = new Map<string, PollerRun>();
  const batchers = new Map<string, DataLoader<WatchBatchRequest, boolean>>();

  /** The poller's running run, or undefined when none runs. */
  const currentRun = async (pollerId: string): Promise<PollerRun | undefined> => {
    const known = runs.get(pollerId);
    if (known) return known;
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
    };
    // A run without the memo is asked about again at the next batch: a new one (right after a continue-as-new) writes
    // it in its first workflow task, which may not even be scheduled yet; one of older code never does, and costs a
    // describe per batch while older workers run the poller.
    if (run.takesBatches) runs.set(pollerId, run);
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
        // Closed again before the signal came (a second continue-as-new within it): the local activity's next attempt
        // asks again.
        if (!(err instanceof WorkflowNotFoundError) || pass >= 2) throw err;
        runs.delete(pollerId);
      }
    }
  };

  /** Resolves when the registration's signal is sent; rejects with the error of a signal the server refused. */
  return (pollerId: string, request: WatchBatchRequest): Promise<boolean> => {
    let batcher = batchers.get(pollerId);
    if (!batcher) {
      /** Settles when the signals sent last (a batch past the bound is several) have been answered. */
      let sending: Promise<unknown> = Promise.resolve();
      batcher = new DataLoader(
        (requests) => {
          const sent = signalAll(pollerId, requests);
          sending = Promise.all([sending, sent.catch(() => undefined)]);
          return sent;
        },
        {
          cache: false,
          maxBatchSize: MAX_REGISTRATIONS_PER_SIGNAL,
          // After the answer, and after the registrations of the same turn of the event loop.
          batchScheduleFn: (send) => void sending.then(() => setImmediate(send)),
        },
      );
      batchers.set(pollerId, batcher);
    }
    return batcher.load(request);
  };
}
