import {
  ActivityFailure,
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  condition,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  makeContinueAsNewFunc,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  sleep,
  upsertMemo,
  workflowInfo,
} from '@temporalio/workflow';
import type { BatchPage, PollerActivities } from '../activities/poller-activities.js';
import type { PollerRegistrationActivities } from '../activities/poller-registration-activities.js';
import {
  batchSettled,
  batchStatusPollerTaskQueue,
  isPollerTaskQueue,
  isWatchingBatch,
  POLLER_RESET_RUN_MEMO_KEY,
  POLLER_TAKES_UNWATCH_BATCHES_MEMO_KEY,
  POLLER_TAKES_WATCH_BATCHES_MEMO_KEY,
  recoveriesTaskQueueOfPoller,
  recoveryWorkflowId,
  watchBatch,
  watchBatches,
  unwatchBatch,
  unwatchBatches,
  type ListedSettle,
  type UnwatchBatchRequest,
  type WatchBatchRequest,
} from './definitions.js';
import { quoted } from './fields.js';
import { pagesFrom } from './list-pages.js';

/** The contract's largest page: 10,000 batches in flight are 100 list calls per cycle. */
export const BATCH_PAGE_SIZE = 100;
/**
 * Beyond this (or the input's lower maxWatchedBatches) the poller hands new batches straight back to their recoveries'
 * own reads; bounds the carried state.
 */
export const MAX_WATCHED_BATCHES = 20_000;
// Well below the server's per-run signal limit (10,000 by default): a watch is a signal, or a share of one.
const CONTINUE_AS_NEW_AFTER_EVENTS = 5_000;
/** The fewest events a run may hold: a cycle with its wakes takes tens. */
const MIN_CONTINUE_AS_NEW_AFTER_EVENTS = 50;
/**
 * A run this many times past its threshold stops waiting for the page reads in flight (CUT_STEP_PATCH): 8,000 events
 * at the default, so at most 8,000 signals, and the 2,000 left to the server's limit cover those that arrive while
 * the run continues as new.
 */
const CUT_STEP_PAST_THRESHOLD = 1.6;

/**
 * [batchId, pollIntervalMs, workflowId when it is not the batch's recovery id (else null when a fourth follows),
 * the wait's start in epoch ms when the registration carried it]: compact, as it crosses continue-as-new (20,000
 * watches are about 1.3 MB). The wait's start crosses too, so a registration of the same wait signalled again (or
 * asked about by the query of workers before wave 14) is still that wait's, not taken as a new one.
 */
export type WatchedBatch = [string, number] | [string, number, string] | [string, number, string | null, number];

/**
 * A carried wait start, back as the recovery sent it (toISOString() of the same instant). Anything else (an input
 * typed by hand) is left out: the recovery's next registration is then taken as a new wait.
 */
function withWaitStart(startedAtMs: unknown): { waitStartedAt?: string } {
  if (typeof startedAtMs !== 'number') return {};
  const startedAt = new Date(startedAtMs);
  return Number.isNaN(startedAt.getTime()) ? {} : { waitStartedAt: startedAt.toISOString() };
}

function batchIdsOf(page: BatchPage): string[] {
  return [...page.settled, ...page.inFlight, ...Object.keys(page.listed ?? {})];
}

/** A page that shows no batch at all: the list ends before it. */
function listsNoBatch(page: BatchPage): boolean {
  return page.settled.length === 0 && page.inFlight.length === 0 && Object.keys(page.listed ?? {}).length === 0;
}

function isWatchBatchRequest(value: unknown): value is WatchBatchRequest {
  if (typeof value !== 'object' || value === null) return false;
  const { batchId, workflowId, pollIntervalMs, waitStartedAt } = value as Record<string, unknown>;
  return (
    typeof batchId === 'string' &&
    batchId !== '' &&
    typeof workflowId === 'string' &&
    workflowId !== '' &&
    typeof pollIntervalMs === 'number' &&
    Number.isFinite(pollIntervalMs) &&
    pollIntervalMs > 0 &&
    (waitStartedAt === undefined || typeof waitStartedAt === 'string')
  );
}

function isUnwatchBatchRequest(value: unknown): value is UnwatchBatchRequest {
  if (typeof value !== 'object' || value === null) return false;
  const { batchId, workflowId, waitStartedAt } = value as Record<string, unknown>;
  return typeof batchId === 'string' && typeof workflowId === 'string' && typeof waitStartedAt === 'string';
}

/**
 * A list signal's well-formed requests. Workers send only those; what else comes (a signal typed in the Web UI) is
 * left out, as a handler that threw would fail the poller's task again at every attempt.
 */
function wellFormed<T>(requests: unknown, isRequest: (value: unknown) => value is T, signalName: string): T[] {
  const taken = Array.isArray(requests) ? requests.filter(isRequest) : [];
  if (taken.length < (Array.isArray(requests) ? requests.length : 1)) {
    log.warn(`${signalName} signal with malformed requests; those are left out`, { taken: taken.length });
  }
  return taken;
}

export interface BatchStatusPollerInput {
  watched?: WatchedBatch[];
  /** History events after which a run continues as new; 50 to 5,000 (the default). Tests set it low. */
  continueAsNewAfterEvents?: number;
  /** Watches a run takes on; 1 to 20,000 (the default). Tests set it low. */
  maxWatchedBatches?: number;
  /** The run of this chain its latest reset began; the poller carries it across continue-as-new itself. */
  resetRunId?: string;
  /** The cycle the previous run left unfinished when it continued as new; the poller carries it itself. */
  resumeCycle?: ResumedCycle;
}

/**
 * Where an unfinished cycle goes on from: its list bound, the next page to read and the last it knows of, and how
 * many of `watched`, from its start, it has not seen yet. Without it, a list longer than the pages one run reads
 * (about 300 at the default threshold) began again at page 1 in every run: a watched batch further down was never
 * reached, and never handed back, and its recovery waited until its deadline.
 */
export interface ResumedCycle {
  createdBefore: string;
  nextPage: number;
  lastPage: number;
  unseen: number;
}

/** The carried cycle, checked as the input's other fields are: a field out of range fails the run, naming it. */
function resumedCycle(input: BatchStatusPollerInput): ResumedCycle | undefined {
  const cycle = input.resumeCycle;
  if (cycle === undefined) return undefined;
  const invalid = (field: string, expected: string, value: unknown) =>
    ApplicationFailure.nonRetryable(
      `resumeCycle.${field}: expected ${expected}, got ${quoted(value)}`,
      'InvalidPollerInput',
    );
  if (typeof cycle !== 'object' || cycle === null) throw invalid('', 'an object', cycle);
  const { createdBefore, nextPage, lastPage, unseen } = cycle;
  if (typeof createdBefore !== 'string' || Number.isNaN(Date.parse(createdBefore)))
    throw invalid('createdBefore', 'a date-time', createdBefore);
  if (!Number.isInteger(nextPage) || nextPage < 1) throw invalid('nextPage', 'an integer from 1', nextPage);
  if (!Number.isInteger(lastPage) || lastPage < 0) throw invalid('lastPage', 'an integer from 0', lastPage);
  const watchedCount = input.watched?.length ?? 0;
  if (!Number.isInteger(unseen) || unseen < 0 || unseen > watchedCount)
    throw invalid('unseen', `an integer from 0 to ${watchedCount} (the watched batches)`, unseen);
  return { createdBefore, nextPage, lastPage, unseen };
}

/** An integer setting of the input, from `min` to `max`, which is also its default. */
function boundedSetting(
  input: BatchStatusPollerInput,
  field: 'continueAsNewAfterEvents' | 'maxWatchedBatches',
  min: number,
  max: number,
) {
  const value = input[field];
  if (value === undefined) return max;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw ApplicationFailure.nonRetryable(
      `${field}: expected an integer from ${min} to ${max}, got ${quoted(value)}`,
      'InvalidPollerInput',
    );
  }
  return value;
}

interface Watch {
  pollIntervalMs: number;
  workflowId: string;
  /**
   * The first cycle that may wake it. A recovery that registers again while a cycle walks its pages (its retry
   * went out after it was woken) must not be woken by a page that cycle read before the retry.
   */
  fromCycle: number;
  waitStartedAt?: string;
}

/**
 * From this change on, a registration sent again during the same wait keeps its watch's cycle: when each re-sent
 * registration moved it to the next cycle, a recovery that registers again more often than a cycle walks its pages
 * was never woken. Asked only where the answer matters, so runs that never see such a registration record nothing.
 */
const REWATCH_KEEPS_CYCLE_PATCH = 'poller-rewatch-keeps-cycle';
/**
 * Runs from this change on wake their recoveries through a local activity, a page's wakes at once: a signal sent
 * from workflow code costs two history events and one more workflow task here, and the server one more transaction
 * on each side, per wake. Asked when a run begins: a run keeps one way of waking throughout.
 */
const WAKES_THROUGH_LOCAL_ACTIVITY_PATCH = 'poller-wakes-through-local-activity';
/**
 * From this change on, a wake that could not be sent is watched again even when the watch is full (past the cap by
 * at most the wakes in flight): a recovery that registers again asks only whether the poller's chain still runs
 * (activities/poller-registration-activities.ts), so a watch dropped without a wake would never come back. Asked
 * only where the answer matters.
 */
const UNSENT_WAKES_PAST_CAP_PATCH = 'poller-keeps-unsent-wakes-past-cap';
/**
 * From this change on, a registration past the cap is handed back through the local activity, as a cycle's wakes are,
 * up to MAX_WAKES_PER_ACTIVITY at once: each was a signal sent from workflow code, and a workflow task that would
 * leave more of them pending than the server allows (2,000 by default), as a burst of registrations past the cap
 * taken in one task did, failed at every attempt, and the poller was stuck. Asked only where the answer matters.
 */
const PAST_CAP_HANDED_BACK_LOCALLY_PATCH = 'poller-hands-back-past-cap-locally';
/**
 * From this change on, a rest between cycles ends once the run is due to continue as new: before, a run that came
 * due while resting (as long as the shortest poll interval among its watches) took every registration sent until
 * the rest was over, past the threshold. Asked when a run begins, as WAKES_THROUGH_LOCAL_ACTIVITY_PATCH is: every
 * run from this change on records both, whether or not it rests.
 */
const REST_ENDS_AT_CONTINUE_AS_NEW_PATCH = 'poller-rest-ends-at-continue-as-new';
/**
 * From this change on, a run that comes CUT_STEP_PAST_THRESHOLD times past its threshold while its page reads wait
 * cancels them and continues as new: a run continues as new only between the steps of a cycle, so reads that wait
 * long (an API that holds the list call, a busy task queue) let registrations arrive as signals up to the server's
 * limit per run (10,000 by default), past which it refuses them. Asked only where the answer matters: a run that
 * never comes so far records nothing.
 */
const CUT_STEP_PATCH = 'poller-cuts-step-near-signal-limit';
/**
 * Runs from this change on say in their memo that they take watchBatches (a worker's registrations gathered into
 * one signal), and workers send those only to such a run. The memo is written by a command, so a worker of older
 * code cannot go on with such a run (its replay fails on the command it does not make) and never drops the signal for
 * want of a handler. Asked when a run begins.
 */
const TAKES_WATCH_BATCHES_PATCH = 'poller-takes-watch-batches';
/**
 * Runs from this change on take unwatchBatches (a worker's unwatches gathered into one signal), and say so in the memo
 * they write for watchBatches: one command, as before, with one more key. So here it is the patch's marker, not the
 * command, that a worker of the release before cannot replay: it never goes on with such a run, and never leaves an
 * unwatchBatches signal without a handler. Asked when a run that takes watchBatches begins.
 */
const TAKES_UNWATCH_BATCHES_PATCH = 'poller-takes-unwatch-batches';
/**
 * Runs from this change on go on with the cycle the previous run stopped when it continued as new (its input's
 * resumeCycle): a run begun by older code read page 1 again, with a new list bound, so its history holds other
 * commands. Asked when a run begins with a carried cycle.
 */
const RESUMES_CYCLE_PATCH = 'poller-resumes-cycle';
/**
 * Runs from this change on end a rest between cycles early for a watch registered during it with a shorter poll
 * interval: the rest lasts the shortest interval among the watches, counted from the cycle's start. Before, it
 * lasted the shortest among those of the cycle's start: one recovery polling hourly held a recovery registered
 * during its rest, polling every second, for up to an hour, and past its deadline. Asked when a run begins.
 */
const REST_SHORTENED_BY_NEW_WATCH_PATCH = 'poller-rest-shortened-by-new-watch';
/**
 * From this change on, a page that lists no batch ends the cycle's list, whatever total_pages said: an API that
 * claimed 100,000 pages had a cycle walk them all (a run read about 300, so before the cycle was carried across
 * continue-as-new none ever ended) before it handed back the watches the list did not show. Asked only when a page
 * lists none.
 */
const EMPTY_PAGE_ENDS_LIST_PATCH = 'poller-empty-page-ends-list';
/**
 * From this change on, a page that lists only batches an earlier page of the cycle listed ends the cycle's list: under
 * its created_before the list is fixed, so the API is repeating itself. One that ignored `page` and said has_next for
 * ever had the cycle read page after page, across continue-as-new, and the watches it did not show were never handed
 * back: their recoveries waited for the poller until their deadline. Asked only when such a page comes.
 */
const REPEATED_PAGE_ENDS_LIST_PATCH = 'poller-repeated-page-ends-list';
/**
 * From this change on, a recovery that ends while its batch is in flight has its watch dropped (unwatchBatch): before,
 * the poller kept it until the batch settled or left the list, reading the list a cycle every poll interval meanwhile
 * (for a batch stuck in `processing`, for ever). A run of older code took the signal without a handler and kept the
 * watch, so its history replays down that path. Asked only when the watch is the ended wait's.
 */
const DROPS_ENDED_WATCH_PATCH = 'poller-drops-ended-recovery-watch';
/**
 * From this change on, a registration that comes after its own wait's unwatch is left out: a recovery's registration
 * can reach the poller behind the unwatch its end sent (one sent again waits up to 2 s for its chain check before it
 * joins the worker's queue, after the unwatch dropped the watch; one from another worker shares no queue with it),
 * and it set up the watch again for good.
 * For a batch stuck in `processing` (the usual cause of those ends: the deadline), the poller read the list every poll
 * interval for an ended recovery until the batch left it. Asked only when such a registration comes.
 */
const LEAVES_OUT_ENDED_WAIT_REGISTRATION_PATCH = 'poller-leaves-out-ended-wait-registration';
/**
 * From this change on, a poller that runs on its recoveries' queue (where releases before it started it) continues as
 * new on a queue of its own (batchStatusPollerTaskQueue), which every worker process polls: a run of older code
 * continued on the same queue, so its history replays down that path. Decided by the run's task queue, which a replay
 * keeps, not by its workflow id, which a replay tool may not.
 */
const MOVES_TO_OWN_TASK_QUEUE_PATCH = 'poller-moves-to-own-task-queue';
/**
 * The most ended waits a run keeps (the latest unwatches; the oldest go first): a registration of an ended wait comes
 * seconds behind its unwatch, if at all. With MAX_ENDED_WAIT_KEY_CHARS, at most about 0.5 MB of the worker's memory
 * per poller run, and none of its history.
 */
export const MAX_ENDED_WAITS_KEPT = 1_000;
/** Workers send ids of at most 64 characters and ISO times; a longer key (an unwatch typed by hand) is not kept. */
const MAX_ENDED_WAIT_KEY_CHARS = 256;
/** Bounds one local activity's input and the marker that records its answer. */
const MAX_WAKES_PER_ACTIVITY = 500;

/** A wait's identity: its batch, its recovery and its start. */
function waitKey({ batchId, workflowId, waitStartedAt }: UnwatchBatchRequest): string {
  return JSON.stringify([batchId, workflowId, waitStartedAt]);
}

/**
 * One per task queue. Recoveries waiting for their batch to settle register with it (watchBatch);
 * it reads the list endpoint a page at a time (status and counters of up to 100 batches per call)
 * and wakes (batchSettled) only the recoveries whose batch has settled, with the status and counters
 * the list showed. A cycle ends when every watched batch has been seen; batches the list does not
 * show, and every batch when the list cannot be read, are handed back to their recoveries' own reads.
 */
export async function batchStatusPoller(input: BatchStatusPollerInput = {}): Promise<void> {
  const continueAsNewAfterEvents = boundedSetting(
    input,
    'continueAsNewAfterEvents',
    MIN_CONTINUE_AS_NEW_AFTER_EVENTS,
    CONTINUE_AS_NEW_AFTER_EVENTS,
  );
  const maxWatchedBatches = boundedSetting(input, 'maxWatchedBatches', 1, MAX_WATCHED_BATCHES);
  const wakesLocally = patched(WAKES_THROUGH_LOCAL_ACTIVITY_PATCH);
  const restEndsAtContinueAsNew = patched(REST_ENDS_AT_CONTINUE_AS_NEW_PATCH);
  const restShortenedByNewWatch = patched(REST_SHORTENED_BY_NEW_WATCH_PATCH);
  if (patched(TAKES_WATCH_BATCHES_PATCH)) {
    upsertMemo({
      [POLLER_TAKES_WATCH_BATCHES_MEMO_KEY]: true,
      ...(patched(TAKES_UNWATCH_BATCHES_PATCH) && { [POLLER_TAKES_UNWATCH_BATCHES_MEMO_KEY]: true }),
    });
  }
  const { runId, originalExecutionRunId } = workflowInfo();
  /**
   * The run a reset of this chain began most recently, carried across continue-as-new in the input and the memo: a
   * reset shows on the run it began only, and a re-registration must see it after the poller continued as new
   * (activities/poller-registration-activities.ts). A reset run keeps the original run's started event, and so its
   * run id there; any other run has its own (a server that does not send it leaves it empty). Not a patch: the
   * continue-as-new command is the same, and a replay does not compare its input or memo (a replay tool, which runs a
   * history under its original run id, carries none).
   */
  const begunByReset = originalExecutionRunId !== '' && runId !== originalExecutionRunId;
  const resetRunId = begunByReset ? runId : typeof input.resetRunId === 'string' ? input.resetRunId : undefined;
  const carriedCycle =
    input.resumeCycle !== undefined && patched(RESUMES_CYCLE_PATCH) ? resumedCycle(input) : undefined;
  /** Cycles begun in this run; a cycle's pages were all read after it began. */
  let cycles = 0;
  const watched = new Map<string, Watch>(
    (input.watched ?? []).map(([batchId, pollIntervalMs, workflowId, waitStartedAt]) => [
      batchId,
      {
        pollIntervalMs,
        workflowId: workflowId ?? recoveryWorkflowId(batchId),
        fromCycle: 1,
        ...withWaitStart(waitStartedAt),
      },
    ]),
  );
  const wakes = new Set<Promise<void>>();

  /** With what the list showed of the batch, when it did: the recovery then goes on without reading it. */
  const wake = (batchId: string, workflowId: string, listed?: ListedSettle) => {
    watched.delete(batchId);
    // A recovery that ended meanwhile cannot be signalled: nothing to do.
    const handle = getExternalWorkflowHandle(workflowId);
    const sent: Promise<void> = (listed ? handle.signal(batchSettled, listed) : handle.signal(batchSettled))
      .catch(() => undefined)
      .finally(() => wakes.delete(sent));
    wakes.add(sent);
  };

  /**
   * The waits whose unwatch came, by waitKey, oldest first. Not carried across continue-as-new: a registration that
   * late is as rare as it is harmless to the recovery, which has ended.
   */
  const endedWaits = new Set<string>();
  /** The shortest poll interval of the registrations taken since the current cycle began. */
  let shortestIntervalSinceCycle = Infinity;
  /** Registrations past the cap, by batch, to hand back straight away (PAST_CAP_HANDED_BACK_LOCALLY_PATCH). */
  const pastCap = new Map<string, WatchBatchRequest>();
  /** A hand-back of registrations past the cap is out. */
  let handingBack = false;
  /** A watch for the batch, or a wake straight back when the watch is full. */
  const takeRegistration = (request: WatchBatchRequest) => {
    const { waitStartedAt } = request;
    if (
      waitStartedAt !== undefined &&
      // No key to build for a registration while no wait has ended: most of them.
      endedWaits.size > 0 &&
      endedWaits.has(waitKey({ ...request, waitStartedAt })) &&
      patched(LEAVES_OUT_ENDED_WAIT_REGISTRATION_PATCH)
    ) {
      log.info('Registration of a wait that has ended left out: its unwatch came first', {
        batchId: request.batchId,
        workflowId: request.workflowId,
      });
      return;
    }
    shortestIntervalSinceCycle = Math.min(shortestIntervalSinceCycle, request.pollIntervalMs);
    if (watched.size >= maxWatchedBatches && !watched.has(request.batchId)) {
      if (wakesLocally && patched(PAST_CAP_HANDED_BACK_LOCALLY_PATCH)) pastCap.set(request.batchId, request);
      else wake(request.batchId, request.workflowId);
      return;
    }
    pastCap.delete(request.batchId);
    const current = watched.get(request.batchId);
    const sameWait =
      current !== undefined &&
      request.waitStartedAt !== undefined &&
      current.workflowId === request.workflowId &&
      current.waitStartedAt === request.waitStartedAt &&
      patched(REWATCH_KEEPS_CYCLE_PATCH);
    watched.set(request.batchId, {
      pollIntervalMs: request.pollIntervalMs,
      workflowId: request.workflowId,
      fromCycle: sameWait ? current.fromCycle : cycles + 1,
      ...(request.waitStartedAt === undefined ? {} : { waitStartedAt: request.waitStartedAt }),
    });
  };
  setHandler(watchBatch, (request: WatchBatchRequest | null) => {
    // What is not an object (a signal typed by hand) would throw below, and fail the poller's task at every attempt.
    if (typeof request !== 'object' || request === null) {
      log.warn('watchBatch signal without a registration; left out');
      return;
    }
    takeRegistration(request);
  });
  setHandler(watchBatches, (requests) =>
    wellFormed(requests, isWatchBatchRequest, 'watchBatches').forEach(takeRegistration),
  );

  const dropEndedWatch = (request: UnwatchBatchRequest) => {
    // Whether or not it finds the watch: a registration of the wait may still come (not yet here, or sent again).
    const key = waitKey(request);
    if (key.length <= MAX_ENDED_WAIT_KEY_CHARS) {
      endedWaits.delete(key);
      endedWaits.add(key);
      if (endedWaits.size > MAX_ENDED_WAITS_KEPT) endedWaits.delete(endedWaits.values().next().value!);
    }
    const watch = watched.get(request.batchId);
    // A registration of another wait, or of another recovery of the batch, replaced it: not this end's to drop.
    if (watch?.workflowId !== request.workflowId || watch.waitStartedAt !== request.waitStartedAt) return;
    if (patched(DROPS_ENDED_WATCH_PATCH)) watched.delete(request.batchId);
  };
  setHandler(unwatchBatch, (request) => {
    // Typed by hand (the Web UI), it could be anything: a handler that threw would fail the task at every attempt.
    if (!isUnwatchBatchRequest(request)) {
      log.warn('unwatchBatch signal without a wait; left out');
      return;
    }
    dropEndedWatch(request);
  });
  setHandler(unwatchBatches, (requests) =>
    wellFormed(requests, isUnwatchBatchRequest, 'unwatchBatches').forEach(dropEndedWatch),
  );

  /** A cycle's wakes not sent yet, by batch, with the watch to restore if the signal cannot be sent (wakesLocally). */
  const due = new Map<string, { watch: Watch; listed?: ListedSettle }>();
  const { wakeRecoveries } = proxyLocalActivities<PollerRegistrationActivities>({
    startToCloseTimeout: '1m',
    // Never retried: a second attempt would wake the recoveries the first one reached twice.
    retry: { maximumAttempts: 1 },
  });
  /** Sends the due wakes; a recovery that could not be told is watched again from the next cycle. */
  const sendDue = async () => {
    const wakes = [...due];
    due.clear();
    for (let start = 0; start < wakes.length; start += MAX_WAKES_PER_ACTIVITY) {
      const chunk = wakes.slice(start, start + MAX_WAKES_PER_ACTIVITY);
      let unsent: Set<string>;
      try {
        unsent = new Set(
          await wakeRecoveries(
            chunk.map(([, { watch, listed }]) => ({ workflowId: watch.workflowId, ...(listed ? { listed } : {}) })),
          ),
        );
      } catch (err) {
        log.warn('Recoveries could not be woken; watching them again', {
          recoveries: chunk.length,
          error: String(err),
        });
        unsent = new Set(chunk.map(([, { watch }]) => watch.workflowId));
      }
      for (const [batchId, { watch }] of chunk) {
        // Unless the recovery has registered again meanwhile (its new registration is the one that counts). Before
        // UNSENT_WAKES_PAST_CAP_PATCH, not when the watch was full either: the recovery's own next registration
        // brought it back.
        if (!unsent.has(watch.workflowId) || watched.has(batchId)) continue;
        if (watched.size < maxWatchedBatches || patched(UNSENT_WAKES_PAST_CAP_PATCH)) {
          watched.set(batchId, { ...watch, fromCycle: cycles + 1 });
        }
      }
    }
  };

  /**
   * Hands back the registrations past the cap as they come. One that could not be told is watched, past the cap, as
   * an unsent wake of a cycle is: its recovery, registering again, asks only whether the poller's chain runs.
   */
  const handBackPastCap = async () => {
    for (;;) {
      await condition(() => pastCap.size > 0);
      const chunk = [...pastCap.values()].slice(0, MAX_WAKES_PER_ACTIVITY);
      for (const { batchId } of chunk) pastCap.delete(batchId);
      handingBack = true;
      let unsent: Set<string>;
      try {
        unsent = new Set(await wakeRecoveries(chunk.map(({ workflowId }) => ({ workflowId }))));
      } catch (err) {
        log.warn('Registrations past the cap could not be handed back; watching them', {
          recoveries: chunk.length,
          error: String(err),
        });
        unsent = new Set(chunk.map(({ workflowId }) => workflowId));
      } finally {
        handingBack = false;
      }
      for (const { batchId, workflowId, pollIntervalMs, waitStartedAt } of chunk) {
        if (!unsent.has(workflowId) || watched.has(batchId)) continue;
        watched.set(batchId, {
          pollIntervalMs,
          workflowId,
          fromCycle: cycles + 1,
          ...(waitStartedAt === undefined ? {} : { waitStartedAt }),
        });
      }
    }
  };
  // A cancel of the poller ends its wait too, and the main loop, which ends the run on it, reports the cancel.
  void handBackPastCap().catch(() => undefined);

  setHandler(isWatchingBatch, ({ batchId, workflowId, waitStartedAt }) => {
    const watch = watched.get(batchId);
    return waitStartedAt !== undefined && watch?.workflowId === workflowId && watch.waitStartedAt === waitStartedAt;
  });

  const { readBatchPage } = proxyActivities<PollerActivities>({
    // The recoveries' queue, whose task rate is the Anchor budget, wherever the poller's own tasks run.
    taskQueue: recoveriesTaskQueueOfPoller(workflowInfo().taskQueue),
    startToCloseTimeout: '1m',
    retry: { maximumAttempts: 3 },
    // Polls go after the reads and retry calls of batches that have settled.
    priority: { priorityKey: 5 },
  });

  const continueAsNewDue = () => {
    const info = workflowInfo();
    return info.continueAsNewSuggested || info.historyLength >= continueAsNewAfterEvents;
  };
  const nearSignalLimit = () => workflowInfo().historyLength >= continueAsNewAfterEvents * CUT_STEP_PAST_THRESHOLD;

  /**
   * A step's pages, or `cut` when the run came near the server's signal limit before they were all read: the reads
   * are then cancelled (their pages are read again by the next run's cycle), so that the run can continue as new.
   */
  const readUnlessCut = async (read: (page: number) => Promise<BatchPage>, pages: number[]) => {
    const reads = new CancellationScope();
    const guard = new CancellationScope();
    const cut = guard.run(async () => {
      await condition(nearSignalLimit);
      if (!patched(CUT_STEP_PATCH)) return false;
      reads.cancel();
      return true;
    });
    try {
      return await reads.run(() => Promise.all(pages.map(read)));
    } catch (err) {
      // A cancellation of the whole poller cancels the guard too, and is not a cut.
      if (isCancellation(err) && (await cut.catch(() => false))) return 'cut' as const;
      throw err;
    } finally {
      guard.cancel();
      await cut.catch(() => undefined);
    }
  };

  /**
   * Reads page 1, then the remaining pages PAGES_IN_FLIGHT at a time (the queue's rate limit paces
   * them), until every batch watched at the start has been seen or the list ends.
   */
  /**
   * Where a cycle stopped when the run came due mid-cycle, for the next run to go on from, with the cycle whose
   * watches it has not seen; until this run's first cycle, the one the previous run stopped, which goes on to the next
   * run unchanged when this one is due before it begins a cycle. The carried watches were all taken before any page
   * this run reads, so the cycle they go on with may wake them all (the run's first, as their fromCycle says).
   */
  let unfinished:
    { createdBefore: string; nextPage: number; lastPage: number; unseen: Set<string>; cycle: number } | undefined =
    carriedCycle && {
      ...carriedCycle,
      unseen: new Set((input.watched ?? []).slice(0, carriedCycle.unseen).map(([batchId]) => batchId)),
      cycle: 1,
    };
  const cycle = async (): Promise<void> => {
    cycles += 1;
    const thisCycle = cycles;
    // Set only by the previous run here: a cycle that stops leaves the run to continue as new.
    const carried = unfinished;
    unfinished = undefined;
    const unseen = carried?.unseen ?? new Set(watched.keys());
    const createdBefore = carried?.createdBefore ?? new Date().toISOString();
    const wakeIfCurrent = (batchId: string, listed?: ListedSettle) => {
      const watch = watched.get(batchId);
      if (!watch || watch.fromCycle > thisCycle) return;
      if (!wakesLocally) return wake(batchId, watch.workflowId, listed);
      watched.delete(batchId);
      due.set(batchId, listed ? { watch, listed } : { watch });
    };
    const handBack = (batchIds: Iterable<string>) => {
      for (const batchId of batchIds) wakeIfCurrent(batchId);
    };
    const take = (result: BatchPage) => {
      for (const batchId of result.settled) {
        unseen.delete(batchId);
        wakeIfCurrent(batchId);
      }
      for (const [batchId, counters] of Object.entries(result.listed ?? {})) {
        unseen.delete(batchId);
        wakeIfCurrent(batchId, { ...counters, observedAt: result.readAt ?? new Date().toISOString() });
      }
      for (const batchId of result.inFlight) unseen.delete(batchId);
    };
    const read = (page: number) => readBatchPage({ page, limit: BATCH_PAGE_SIZE, createdBefore });
    const listedInCycle = new Set<string>();
    /** Whether the page lists a batch no earlier page of this cycle (in this run) did. */
    const listsNewBatch = (page: BatchPage) => {
      const before = listedInCycle.size;
      for (const batchId of batchIdsOf(page)) listedInCycle.add(batchId);
      return listedInCycle.size > before;
    };
    try {
      let next = carried?.nextPage ?? 1;
      let last = carried?.lastPage ?? 1;
      const stopHere = () => {
        unfinished = { createdBefore, nextPage: next, lastPage: last, unseen, cycle: thisCycle };
      };
      while (next <= last && unseen.size > 0) {
        // Without total_pages, one page at a time, following has_next.
        const batch = next === 1 ? [1] : pagesFrom(next, last);
        const results = await readUnlessCut(read, batch);
        // Their batches stay watched: the run continues as new with them, and the next reads these pages again.
        if (results === 'cut') return stopHere();
        results.forEach(take);
        await sendDue();
        if (unseen.size === 0) return;
        const newest = results.at(-1)!;
        last = newest.totalPages ?? (newest.hasNext ? next + batch.length : last);
        const empty = results.findIndex((page) => listsNoBatch(page));
        if (empty >= 0 && patched(EMPTY_PAGE_ENDS_LIST_PATCH)) last = Math.min(last, batch[empty]! - 1);
        const listsNew = results.map(listsNewBatch);
        const repeated = results.findIndex((page, i) => !listsNew[i] && !listsNoBatch(page));
        if (repeated >= 0 && patched(REPEATED_PAGE_ENDS_LIST_PATCH)) last = Math.min(last, batch[repeated]! - 1);
        next += batch.length;
        if (continueAsNewDue()) return stopHere();
      }
    } catch (err) {
      if (!(err instanceof ActivityFailure)) throw err;
      log.warn('Batch list unreadable; recoveries read their batches on their own', { error: err.message });
      handBack(unseen);
      await sendDue();
      return;
    }
    // Not in the list (another team's key, or created after the cycle began and so not in these pages):
    // their recoveries read them on their own.
    handBack(unseen);
    await sendDue();
  };

  for (;;) {
    await condition(() => watched.size > 0 || continueAsNewDue());
    if (continueAsNewDue()) {
      await Promise.all(wakes);
      await condition(() => pastCap.size === 0 && !handingBack);
      await condition(allHandlersFinished);
      const { taskQueue } = workflowInfo();
      const movesToOwnQueue = !isPollerTaskQueue(taskQueue) && patched(MOVES_TO_OWN_TASK_QUEUE_PATCH);
      // Never with takesWatchBatches: the next run says so itself, in a task only code that takes them can run.
      const continueAsNew = makeContinueAsNewFunc<typeof batchStatusPoller>({
        ...(resetRunId === undefined ? {} : { memo: { [POLLER_RESET_RUN_MEMO_KEY]: resetRunId } }),
        ...(movesToOwnQueue && { taskQueue: batchStatusPollerTaskQueue(taskQueue) }),
      });
      // The watches the unfinished cycle has not seen go first, so that the next run knows them by their count. A
      // watch registered for a new wait since the cycle began is not the cycle's to wake.
      const unseenByCycle = ([batchId, watch]: [string, Watch]) =>
        unfinished !== undefined && unfinished.unseen.has(batchId) && watch.fromCycle <= unfinished.cycle;
      const carriedWatches = [...watched.entries()];
      const unseenCount = carriedWatches.filter(unseenByCycle).length;
      carriedWatches.sort((a, b) => Number(unseenByCycle(b)) - Number(unseenByCycle(a)));
      return await continueAsNew({
        ...(input.continueAsNewAfterEvents === undefined ? {} : { continueAsNewAfterEvents }),
        ...(input.maxWatchedBatches === undefined ? {} : { maxWatchedBatches }),
        ...(resetRunId === undefined ? {} : { resetRunId }),
        ...(unfinished && {
          resumeCycle: {
            createdBefore: unfinished.createdBefore,
            nextPage: unfinished.nextPage,
            lastPage: unfinished.lastPage,
            unseen: unseenCount,
          },
        }),
        watched: carriedWatches.map(([batchId, { pollIntervalMs, workflowId, waitStartedAt }]): WatchedBatch => {
          const ownId = workflowId === recoveryWorkflowId(batchId);
          const startedAtMs = waitStartedAt === undefined ? NaN : Date.parse(waitStartedAt);
          if (!Number.isNaN(startedAtMs)) return [batchId, pollIntervalMs, ownId ? null : workflowId, startedAtMs];
          return ownId ? [batchId, pollIntervalMs] : [batchId, pollIntervalMs, workflowId];
        }),
      });
    }
    const startedAt = Date.now();
    const intervalMs = Math.min(...[...watched.values()].map((watch) => watch.pollIntervalMs));
    shortestIntervalSinceCycle = Infinity;
    await cycle();
    let restUntil = startedAt + intervalMs;
    const restMs = restUntil - Date.now();
    if (restMs > 0 && !continueAsNewDue()) {
      if (restShortenedByNewWatch) {
        const shortened = () => startedAt + shortestIntervalSinceCycle < restUntil;
        while (Date.now() < restUntil && !continueAsNewDue()) {
          if (!(await condition(() => continueAsNewDue() || shortened(), restUntil - Date.now()))) break;
          restUntil = Math.min(restUntil, startedAt + shortestIntervalSinceCycle);
        }
      } else if (restEndsAtContinueAsNew) await condition(continueAsNewDue, restMs);
      else await sleep(restMs);
    }
  }
}
