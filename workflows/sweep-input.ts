import { ActivityFailure, ApplicationFailure } from '@temporalio/common';
import { cleanApiText } from '../anchor-api/redact.js';
import type { BatchStatus } from '../anchor-api/schemas.js';
import { parseDuration, validateInput, type Typeable, type Validated } from './fields.js';
import { sweepFields } from './input-fields.js';
import { cutText } from './report.js';

// Same conventions as recoverBatch's input: plain JSON an operator can type in the
// Temporal UI or a Schedule, durations like "24h", unknown fields rejected.

export type SweepStatus = Extract<BatchStatus, (typeof sweepFields.statuses.of)[number]>;

/** What an operator types: every field may be left out. */
export type SweepFailedBatchesInput = Typeable<typeof sweepFields>;
/** The validated input with defaults applied and durations in milliseconds. */
export type SweepPolicy = Validated<typeof sweepFields>;
export type RecoveryOverrides = SweepPolicy['recovery'];

export function parseSweepInput(raw: unknown): SweepPolicy {
  return validateInput(sweepFields, raw ?? {}, 'sweep input');
}

export const SWEEP_FAILED_BATCHES_WORKFLOW = 'sweepFailedBatches';

/** Why a listed batch got no new recovery from this sweep. */
export type SkipReason =
  /** A recovery for the batch is running (started by the CLI or an overlapping sweep). */
  | 'already_running'
  /** A recovery for the batch already ended with an outcome; a sweep does not redo it. */
  | 'already_ended'
  /**
   * The batch's last recovery failed in a way a new one would repeat (e.g. batch_not_found), and its report shows a
   * retry call, or cannot be read: a new one could send the batch's retries again. For good.
   */
  | 'permanently_failed'
  /**
   * The batch's last recovery failed, and a new one waits until REPEATING_FAILURE_HOLD_MS after it closed: it failed in
   * a way a new one would repeat before any retry call that took effect (a short incident may have caused it), or on a
   * wrong key or missing credits with a retry call of unknown outcome in its report (the API may still apply that
   * call); or it was terminated or timed out (a call out then is in no report). Left to a later sweep, as over_limit
   * is: the next sweep of its schedule reaches back to it until the hold has passed.
   */
  | 'held'
  | 'no_failed_sessions'
  /** The sweep reached maxStarts; a later sweep picks the batch up (the next of its schedule reaches back to it). */
  | 'over_limit'
  /** Starting the recovery kept failing; a later sweep tries again (as for over_limit). */
  | 'start_failed'
  /**
   * Created before the namespace's retention (less 10 minutes): a recovery of it that ended may be gone from Temporal,
   * so a new one could send its retries again. Never started by a sweep, and no later window reaches back to it.
   */
  | 'past_retention';

/** Batches listed in `started` and in `skipped`, each; `counts` counts them all, so the result is bounded. */
export const SWEEP_RESULT_ITEMS = 100;
/** The largest SweepResult, in bytes of JSON (UTF-8), however many batches the sweep scanned. */
export const SWEEP_RESULT_MAX_BYTES = 90_000;

export interface SweepResult {
  /** The creation window scanned, from the sweep's (workflow) time. */
  window: { createdAfter: string; createdBefore: string };
  statuses: SweepStatus[];
  /** The first SWEEP_RESULT_ITEMS recoveries started. */
  started: { batchId: string; workflowId: string }[];
  /** The first SWEEP_RESULT_ITEMS batches with failed sessions that got no new recovery, and why. */
  skipped: { batchId: string; reason: SkipReason }[];
  counts: {
    /** Batches listed in the window, whatever their status. */
    scanned: number;
    started: number;
    /** Listed batches in a status the sweep does not scan (e.g. still processing). */
    other_status: number;
    /** Listed batches with failed sessions but no UUID for an id (none, or another text): no recovery can take them. */
    invalid_batch_id: number;
    /** Listed batches created outside the window (an API that ignored the window's filter): not swept. */
    outside_window: number;
    /**
     * Batches with failed sessions listed again in the same run (a list that shifted between page reads): each is
     * counted once above, its repeats here, so the counts add up to scanned.
     */
    listed_again: number;
  } & Record<SkipReason, number>;
  /**
   * Set when the window reaches back past the lookback, to 30 s (SWEEP_REACH_BACK_OVERLAP_MS) before where the
   * window of the schedule's last completed sweep (its workflow id, cut as the other ids) ended, or before the oldest
   * batch that sweep left out or listed still unsettled: the sweeps between were skipped, failed or not run, that sweep
   * left batches over_limit or start_failed, or it listed a batch still pending or processing. `cut` when that was
   * longer ago than SWEEP_MAX_WINDOW_MS, where the window then starts. Null for a window of the lookback alone.
   */
  reachedBack: (CompletedSweep & { cut: boolean }) | null;
  /**
   * When the oldest batch this sweep left `over_limit`, `start_failed` or `held` was created (the window's start for
   * one listed without a readable created_at), or null when it left none: the next sweep of its schedule reaches back
   * to it, so that a batch left out is in a later window however long the backlog lasts. One date, however many were
   * left. Absent from the results of sweeps before it, which read as having left none.
   */
  oldestLeftCreatedAt: string | null;
  /**
   * When the oldest batch this sweep listed in its window still `pending` or `processing` was created (the window's
   * start for one listed without a readable created_at), or null when it listed none; one created before the
   * namespace's retention (less 10 minutes) is passed over, as no sweep would start its recovery. Such a batch is
   * counted `other_status`, and the next sweep of its schedule reaches back to it, so that one still running when it
   * drops out of the lookback is swept once it settles. Before, it was in no later window: never recovered, never
   * reported. The trade: a batch that stays unsettled for ever pins the window of every later sweep back to it until
   * it is past the retention, as a start that always fails does. One date, however many were listed. Absent from the
   * results of sweeps before it, which read as having listed none.
   */
  oldestUnsettledCreatedAt: string | null;
  /** Why the sweep stopped early (a listing that kept failing, a bug); the counts say how far it got. */
  failure: { type: string; message: string } | null;
}

/**
 * The sweep of a schedule that last completed, and where its window ended, or, when earlier, just before the oldest
 * batch it left over_limit, start_failed or held, or listed still unsettled, was created: every batch before that was
 * listed and taken.
 */
export interface CompletedSweep {
  workflowId: string;
  windowEnd: string;
}

/**
 * How far before where the last completed sweep got to the next sweep's window starts, when it reaches back. A window
 * of the lookback overlaps the one before it by the lookback less the interval, at least the interval; before, one that
 * reached back started a millisecond before where the last one ended, so a batch the API dates just before that end
 * but lists only after that sweep read its page (the API's clock behind Temporal's, or its list behind its writes) was
 * in no window: never recovered, never reported. Half the shortest interval (1 min), so that a schedule whose sweeps
 * all complete does not reach back for it, a sweep started up to 30 s late included (its lookback is at least twice
 * the interval). It also takes a batch created at that very millisecond, which the contract does not say the list's
 * created_after and created_before take (the simulator takes neither).
 */
export const SWEEP_REACH_BACK_OVERLAP_MS = 30_000;

/**
 * Where the window of a completed sweep, given its result, got to, SWEEP_REACH_BACK_OVERLAP_MS early: its end or, when
 * earlier, the oldest batch it left over_limit, start_failed or held, or listed still pending or processing. A result
 * of a sweep before oldestLeftCreatedAt or oldestUnsettledCreatedAt reads as leaving, or listing, none. Null when the
 * result gives no date where one of them goes (edited by hand, another workflow of that name): only a date goes into
 * the lookup's marker. Read by an activity, so a change here needs no patch: a replay reads the recorded end.
 */
export function completedSweepEnd(result: unknown): string | null {
  const swept = result as Partial<SweepResult> | null | undefined;
  const windowEnd = swept?.window?.createdBefore;
  const earlier = [swept?.oldestLeftCreatedAt ?? null, swept?.oldestUnsettledCreatedAt ?? null];
  if (!isDateText(windowEnd) || !earlier.every((at) => at === null || isDateText(at))) return null;
  const reached = Math.min(Date.parse(windowEnd), ...earlier.flatMap((at) => (at === null ? [] : [Date.parse(at)])));
  return new Date(reached - SWEEP_REACH_BACK_OVERLAP_MS).toISOString();
}

/** The earlier of two dates of the list, either of which may be none. */
export function earlierDate(current: string | null, candidate: string | null): string | null {
  if (current === null || candidate === null) return current ?? candidate;
  return Date.parse(candidate) < Date.parse(current) ? candidate : current;
}

/** A string no longer than an ISO date with an offset, that Date.parse reads. */
export function isDateText(text: unknown): text is string {
  return typeof text === 'string' && text.length <= 40 && Number.isFinite(Date.parse(text));
}

/** The longest window a sweep scans, also when it reaches back to the last completed sweep: the longest lookback. */
export const SWEEP_MAX_WINDOW_MS = parseDuration(sweepFields.lookback.max) as number;

/**
 * The window a sweep scans from `now` (workflow time): the lookback, or from where the window of the schedule's last
 * completed sweep ended when that is earlier. A window of the lookback alone leaves the batches created between that
 * end and the lookback in no sweep's window, once sweeps were skipped (a slow one holds the schedule, whose overlap
 * policy is SKIP), failed, or did not run (no worker) for longer than lookback less the interval.
 */
export function sweepWindow(
  now: number,
  lookbackMs: number,
  lastCompleted: CompletedSweep | null,
): Pick<SweepResult, 'window' | 'reachedBack'> {
  const createdBefore = new Date(now).toISOString();
  const lookbackStart = now - lookbackMs;
  const lastEnd = lastCompleted === null ? NaN : Date.parse(lastCompleted.windowEnd);
  // A window that ended in the lookback, or none known (no sweep, or no readable end), leaves no gap to cover.
  if (lastCompleted === null || !(lastEnd < lookbackStart))
    return { window: { createdAfter: new Date(lookbackStart).toISOString(), createdBefore }, reachedBack: null };
  const cut = lastEnd < now - SWEEP_MAX_WINDOW_MS;
  return {
    window: { createdAfter: new Date(cut ? now - SWEEP_MAX_WINDOW_MS : lastEnd).toISOString(), createdBefore },
    reachedBack: { workflowId: id(lastCompleted.workflowId), windowEnd: lastCompleted.windowEnd, cut },
  };
}

export function newSweepResult(window: SweepResult['window'], statuses: SweepStatus[], scanned: number): SweepResult {
  return {
    window,
    statuses,
    started: [],
    skipped: [],
    reachedBack: null,
    oldestLeftCreatedAt: null,
    oldestUnsettledCreatedAt: null,
    failure: null,
    counts: {
      scanned,
      started: 0,
      other_status: 0,
      invalid_batch_id: 0,
      outside_window: 0,
      listed_again: 0,
      already_running: 0,
      already_ended: 0,
      permanently_failed: 0,
      no_failed_sessions: 0,
      over_limit: 0,
      start_failed: 0,
      past_retention: 0,
      held: 0,
    },
  };
}

/** Characters kept of an id in the result (a batch id is a 36-character uuid): a hostile listing cannot grow it. */
export const SWEEP_RESULT_ID_CHARS = 100;
const id = (text: string) => cutText(text, SWEEP_RESULT_ID_CHARS);

export function recordStarted(result: SweepResult, batchId: string, workflowId: string): void {
  result.counts.started += 1;
  if (result.started.length < SWEEP_RESULT_ITEMS)
    result.started.push({ batchId: id(batchId), workflowId: id(workflowId) });
}

export function recordSkipped(result: SweepResult, batchId: string, reason: SkipReason): void {
  result.counts[reason] += 1;
  if (result.skipped.length < SWEEP_RESULT_ITEMS) result.skipped.push({ batchId: id(batchId), reason });
}

/**
 * What stopped the sweep, as its result gives it: an activity's own failure rather than its wrapper. Both texts are
 * cut, so the result stays within SWEEP_RESULT_MAX_BYTES whatever failed: a type comes from the activity's failure,
 * and an error of another library names itself.
 */
export function sweepFailureOf(err: unknown): { type: string; message: string } {
  const failure = err instanceof ActivityFailure && err.cause ? err.cause : err;
  const type =
    failure instanceof ApplicationFailure
      ? (failure.type ?? 'ApplicationFailure')
      : failure instanceof Error
        ? failure.name
        : typeof failure;
  return {
    type: cutText(type, SWEEP_RESULT_ID_CHARS),
    // An activity's message may quote the API; a bug's may quote anything: cut and cleaned either way.
    message: cleanApiText(failure instanceof Error ? failure.message : String(failure)),
  };
}
