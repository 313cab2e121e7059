import { setTimeout as sleep } from 'node:timers/promises';
import cliProgress from 'cli-progress';
import { STUCK_AFTER_TASK_FAILURES } from '../workflows/definitions.js';
import {
  TemporalContact,
  type BatchRecoveries,
  type ClientRecoveryReport,
  type RecoveryProgress,
} from './recoveries.js';
import { roundsDoneOf } from './format-report.js';

/** One reading of a running recovery, as the progress bar and the plain lines show it. */
export interface ProgressState {
  /** Sessions that reached completed or failed, of `total`; null before the first status read. */
  settled: number | null;
  total: number | null;
  failed: number | null;
  /** The recovery waits for the task queue's batch status poller, which passes on no counts before the settle. */
  pollerWatches: boolean;
  rounds: number;
  /** Null when the policy is not known (ClientRecoveryReport). */
  maxRounds: number | null;
  activity: string;
  /**
   * Set when the reading is not live: a stored report (when it was recorded, and why no worker answered), or no
   * answer from Temporal since a time.
   */
  note: string | null;
}

function describeActivity(report: ClientRecoveryReport): string {
  if (report.paused) return 'paused';
  switch (report.phase) {
    case 'waiting_for_batch':
      return 'waiting for the batch to settle';
    case 'backing_off':
      // In UTC with its date, as the report prints it: a local time of day is ambiguous past midnight and across zones.
      return report.nextRetryAt ? `next retry at ${report.nextRetryAt}` : 'backing off';
    case 'retrying':
      return 'sending the retry';
    default:
      return report.phase;
  }
}

export function progressState({ report, poll, source, readsBatchItself }: RecoveryProgress): ProgressState {
  // The pending status read carries the batch in flight. Without one, the last settled batch is the
  // latest news, unless a retry went out since (the round is still open): then nothing is known yet.
  const retryInFlight = report.rounds.at(-1)?.failedAfter === null;
  const batch = poll?.batch ?? (retryInFlight ? null : report.batch);
  return {
    settled: batch ? batch.completed + batch.failed : null,
    total: batch?.total ?? null,
    failed: batch?.failed ?? null,
    // Only a live report: a stored one was written before the wait registered with the poller, or before the start.
    pollerWatches: report.phase === 'waiting_for_batch' && !readsBatchItself && source.kind === 'live',
    rounds: roundsDoneOf(report, source.kind === 'stored' ? source.roundsOmitted : 0),
    maxRounds: report.maxRounds,
    activity: describeActivity(report),
    // The time it was recorded, not its age: the plain view prints a line per change.
    note: source.kind === 'stored' ? `stored report of ${source.recordedAt} (${source.reason})` : null,
  };
}

function describeSessions(state: ProgressState): string {
  if (state.total === null)
    return state.pollerWatches ? "the task queue's status poller watches the batch" : 'no status read yet';
  return `${state.settled}/${state.total} sessions settled, ${state.failed} failed`;
}

/** Rounds done, of at most how many when that is known. */
function describeRounds(state: ProgressState): string {
  return state.maxRounds === null ? String(state.rounds) : `${state.rounds}/${state.maxRounds}`;
}

export function formatProgressLine(state: ProgressState): string {
  const line = `${describeSessions(state)} | round ${describeRounds(state)} | ${state.activity}`;
  return state.note ? `${line} | ${state.note}` : line;
}

export interface ProgressView {
  show(state: ProgressState): void;
  stop(): void;
}

/** A live bar for terminals. */
export function barView(stream: NodeJS.WriteStream): ProgressView {
  const bar = new cliProgress.SingleBar(
    { stream, format: '{bar} {sessions} | round {rounds} | {activity}', hideCursor: false },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    show(state) {
      const activity = state.note ? `${state.activity} | ${state.note}` : state.activity;
      const payload = { ...state, activity, sessions: describeSessions(state), rounds: describeRounds(state) };
      // Before the first status read the total is unknown: an empty bar of 1 reads as "nothing settled yet".
      const total = state.total || 1;
      if (!started) bar.start(total, state.settled ?? 0, payload);
      else {
        bar.setTotal(total);
        bar.update(state.settled ?? 0, payload);
      }
      started = true;
    },
    stop() {
      if (started) bar.stop();
    },
  };
}

/** One line per change, for logs and pipes where a redrawn bar would be noise. */
export function lineView(stream: NodeJS.WritableStream): ProgressView {
  let last = '';
  return {
    show(state) {
      const line = formatProgressLine(state);
      if (line !== last) stream.write(`${line}\n`);
      last = line;
    },
    stop() {},
  };
}

/**
 * For `recover --wait --json`, whose stdout is the final report alone: on `stream` (stderr), the progress line each
 * time it says why the progress is not live (no worker polls the task queue, none answered, Temporal does not
 * answer), so that a wait no one can end is not a silent one. Quiet while the progress is live.
 */
export function notLiveView(stream: NodeJS.WritableStream): ProgressView {
  let lastNote: string | null = null;
  return {
    show(state) {
      if (state.note !== null && state.note !== lastNote) stream.write(`${formatProgressLine(state)}\n`);
      lastNote = state.note;
    },
    stop() {},
  };
}

export function progressViewFor(stream: NodeJS.WriteStream): ProgressView {
  return stream.isTTY ? barView(stream) : lineView(stream);
}

export interface FollowOptions {
  view: ProgressView;
  intervalMs?: number;
  signal?: AbortSignal;
  /** How long without an answer from Temporal before it gives up (TemporalUnreachableError); 60 s by default. */
  lostContactAfterMs?: number;
}

/**
 * Shows the recovery's progress until it ends, and returns its last reading: the final report, or the stored one of a
 * recovery whose workflow task has failed STUCK_AFTER_TASK_FAILURES times in a row. No wait ends such a recovery (a
 * bug, a non-determinism error after a deploy: only a deploy mends it), and a script waiting on it would hang until
 * then; its exit code says `stuck`, as `report`'s does. While Temporal does not answer, the last reading is shown with
 * since when; past `lostContactAfterMs`, TemporalUnreachableError.
 */
export async function followRecovery(
  recoveries: BatchRecoveries,
  batchId: string,
  { view, intervalMs = 1_000, signal, lostContactAfterMs }: FollowOptions,
): Promise<RecoveryProgress> {
  const contact = new TemporalContact(recoveries, batchId, lostContactAfterMs);
  let last: ProgressState | undefined;
  try {
    for (;;) {
      const progress = await contact.ask(() => recoveries.progress(batchId));
      if (progress && (!progress.running || progress.workflowTaskFailures >= STUCK_AFTER_TASK_FAILURES))
        return progress;
      if (progress) last = progressState(progress);
      const silentSince = contact.silentSince;
      if (last)
        view.show(silentSince ? { ...last, note: `no answer from Temporal since ${silentSince.toISOString()}` } : last);
      await sleep(intervalMs, undefined, { signal });
    }
  } finally {
    view.stop();
  }
}
