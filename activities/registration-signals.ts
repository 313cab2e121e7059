import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import DataLoader from 'dataloader';
import {
  POLLER_TAKES_UNWATCH_BATCHES_MEMO_KEY,
  POLLER_TAKES_WATCH_BATCHES_MEMO_KEY,
  unwatchBatch,
  unwatchBatches,
  watchBatch,
  watchBatches,
  type UnwatchBatchRequest,
  type WatchBatchRequest,
} from '../workflows/definitions.js';

// Every signal is one event in the poller's history, and the server refuses signals to a run past 10,000: a start
// burst of 10,000 recoveries that sent one each took 9,700–9,800 signals into the poller's first run, and went past
// the limit in one run of three (docs/scaling.md). So a worker sends one signal at a time to a poller, and the
// registrations that come while it is out go together in the next: none waits when the server answers at once, and a
// burst that slows the server's answers gathers more per signal (4,502 signals for that burst). A fixed 200 ms
// window gathered more (1,238) but held each recovery's workflow task (and its slot, a local activity) 200 ms
// longer, and the burst's first tasks ran later. Unwatches (recoveries that ended while the poller watched their
// batch: thousands at once when a sweep's recoveries reach their deadline together) go the same way, in the same
// queue, and a window's signals go one after another in the order their requests came: a recovery's unwatch never
// goes ahead of a registration of its that joined the queue first. (A registration sent again joins it only after
// the chain check of poller-registration-activities.ts, up to 2 s: an unwatch meanwhile goes first, and the poller
// leaves out a registration that comes after its wait's unwatch.)

/**
 * Bounds one signal's payload: a registration of the product's own ids is 181–184 bytes of JSON (a full signal 18.4
 * KB), and at most 1,134 with a workflow id of the 1,000 characters the server takes (a recovery started by hand).
 */
export const MAX_REGISTRATIONS_PER_SIGNAL = 100;

/** The poller run a worker signals, as the server described it. */
interface PollerRun {
  runId: string;
  /** Its memo says it takes `watchBatches`: its code handles them (an older run's would drop them). */
  takesBatches: boolean;
  /** Its memo says it takes `unwatchBatches`. */
  takesUnwatchBatches: boolean;
}

const toError = (err: unknown) => (err instanceof Error ? err : new Error(String(err)));

type PollerChange = { watch: WatchBatchRequest } | { unwatch: UnwatchBatchRequest };

const isWatch = (change: PollerChange): change is { watch: WatchBatchRequest } => 'watch' in change;

/**
 * The changes in order, cut where the kind changes and at MAX_REGISTRATIONS_PER_SIGNAL: each piece goes as one
 * signal, after the one before.
 */
function signalPieces(changes: readonly PollerChange[]): PollerChange[][] {
  const pieces: PollerChange[][] = [];
  for (const change of changes) {
    const last = pieces.at(-1);
    if (last && last.length < MAX_REGISTRATIONS_PER_SIGNAL && isWatch(last[0]!) === isWatch(change)) last.push(change);
    else pieces.push([change]);
  }
  return pieces;
}

export interface RegistrationSender {
  /** Resolves true once the poller has the registration, false when no poller runs on the queue. */
  watch(pollerId: string, request: WatchBatchRequest): Promise<boolean>;
  /** Resolves once the poller has the unwatch, or when no poller runs on the queue (none watches the batch). */
  unwatch(pollerId: string, request: UnwatchBatchRequest): Promise<void>;
}

/**
 * Sends the registrations and unwatches of a worker's recoveries to their task queue's poller, gathered per poller
 * while the previous signal is out (DataLoader's batching, without its cache: each is sent), in the order they came. A
 * batch goes as one `watchBatches` or `unwatchBatches` signal to the run that said it takes them, by run id, so that a
 * run which continued as new since (to a worker of older code, say) is never sent one; to a poller run that does not
 * say so, each goes as the `watchBatch` or `unwatchBatch` signal every poller takes. A promise rejects with the error
 * of a signal the server refused.
 */
export function createRegistrationSender(client: Client): RegistrationSender {
  /** Runs that take `watchBatches` and `unwatchBatches`, by poller, until one closes. */
  const runs = new Map<string, PollerRun>();
  const batchers = new Map<string, DataLoader<PollerChange, boolean>>();

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
      takesUnwatchBatches: description.memo?.[POLLER_TAKES_UNWATCH_BATCHES_MEMO_KEY] === true,
    };
    // A run without the memo is asked about again at the next batch: a new one (right after a continue-as-new) writes
    // it in its first workflow task, which may not even be scheduled yet; one of older code never does, and costs a
    // describe per batch while older workers run the poller. So is one that takes watchBatches only (the release
    // before): unwatches go to it as single signals to whichever run is current, which never fail as the chain moves
    // on, so a run kept here would be sent them after its chain had a run that takes unwatchBatches.
    if (run.takesBatches && run.takesUnwatchBatches) runs.set(pollerId, run);
    return run;
  };

  /** To whichever run is current: every poller takes it. */
  const signalOne = async (pollerId: string, change: PollerChange): Promise<boolean> => {
    const handle = client.workflow.getHandle(pollerId);
    try {
      await (isWatch(change) ? handle.signal(watchBatch, change.watch) : handle.signal(unwatchBatch, change.unwatch));
      return true;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return false;
      throw err;
    }
  };

  /** One piece (changes of one kind) to the poller's current run. */
  const signalPiece = async (pollerId: string, piece: readonly PollerChange[]): Promise<(boolean | Error)[]> => {
    // A second pass only after the described run closed: it continued as new, and the next run is described.
    for (let pass = 1; ; pass += 1) {
      const run = await currentRun(pollerId);
      if (!run) return piece.map(() => false);
      const watches = piece.flatMap((change) => (isWatch(change) ? [change.watch] : []));
      const unwatches = piece.flatMap((change) => (isWatch(change) ? [] : [change.unwatch]));
      if (watches.length > 0 ? !run.takesBatches : !run.takesUnwatchBatches) {
        return Promise.all(piece.map((change) => signalOne(pollerId, change).catch((err: unknown) => toError(err))));
      }
      try {
        const handle = client.workflow.getHandle(pollerId, run.runId);
        await (watches.length > 0 ? handle.signal(watchBatches, watches) : handle.signal(unwatchBatches, unwatches));
        return piece.map(() => true);
      } catch (err) {
        // Closed again before the signal came (a second continue-as-new within it): the local activity's next attempt
        // asks again.
        if (!(err instanceof WorkflowNotFoundError) || pass >= 2) throw err;
        runs.delete(pollerId);
      }
    }
  };

  const signalAll = async (pollerId: string, changes: readonly PollerChange[]): Promise<(boolean | Error)[]> => {
    const answers: (boolean | Error)[] = [];
    for (const piece of signalPieces(changes)) {
      try {
        answers.push(...(await signalPiece(pollerId, piece)));
      } catch (err) {
        // This piece's local activities try again; the pieces before it were taken, and the next still go.
        answers.push(...piece.map(() => toError(err)));
      }
    }
    return answers;
  };

  const send = (pollerId: string, change: PollerChange): Promise<boolean> => {
    let batcher = batchers.get(pollerId);
    if (!batcher) {
      /** Settles when the signals sent last have been answered. */
      let sending: Promise<unknown> = Promise.resolve();
      batcher = new DataLoader(
        (changes) => {
          const sent = signalAll(pollerId, changes);
          // Settles to nothing: a value of the answers would hold every window's answers, and their errors, for as
          // long as the worker runs, each window's value holding the one's before it.
          sending = Promise.all([sending, sent.catch(() => undefined)]).then(() => undefined);
          return sent;
        },
        {
          cache: false,
          // After the answer, and after the registrations of the same turn of the event loop. No maxBatchSize: a
          // window is one call whose pieces go in order, where DataLoader sends a bounded window's parts side by side
          // (an unwatch could then overtake its registration).
          batchScheduleFn: (sendBatch) => void sending.then(() => setImmediate(sendBatch)),
        },
      );
      batchers.set(pollerId, batcher);
    }
    return batcher.load(change);
  };

  return {
    watch: (pollerId, request) => send(pollerId, { watch: request }),
    unwatch: async (pollerId, request) => {
      await send(pollerId, { unwatch: request });
    },
  };
}
