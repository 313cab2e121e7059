import type { BatchStatus } from '../anchor-api/schemas.js';

export type RecoveryOutcome =
  'recovered' | 'clean' | 'exhausted' | 'batch_cancelled' | 'deadline' | 'operator_cancelled';
export const RECOVERY_OUTCOMES: readonly RecoveryOutcome[] = [
  'recovered',
  'clean',
  'exhausted',
  'batch_cancelled',
  'deadline',
  'operator_cancelled',
];

/*
 * The report lives in history (every update result, the continue-as-new input, the workflow's result or
 * failure), so its size is bounded whatever the batch, the API or the number of rounds: texts are cut,
 * failing sessions capped, and past REPORT_LIMITS.firstRounds + lastRounds rounds the ones in between are
 * folded into counts. docs/report-size.md derives REPORT_MAX_BYTES; test/recovery/report-size.test.ts checks it.
 */
export const REPORT_LIMITS = {
  /** Failing sessions listed (stillFailing.sessions, batch.failing). */
  failingSessions: 25,
  /** Characters kept of a session's error (the API's text, cut to the same length at the source). */
  textChars: 500,
  /** Characters kept of lastError.message and failure.message: an error's own words around the API's cut text. */
  errorChars: 1000,
  /** Characters kept of a round's apiMessage and reconcileReason, and of an error type. */
  shortTextChars: 200,
  /** Rounds kept in full from the start of the recovery… */
  firstRounds: 10,
  /** …and from its end; those in between are counted in `omittedRounds`. */
  lastRounds: 20,
} as const;

/** The largest RecoveryReport, in bytes of JSON (UTF-8), for any batch, API answer and number of rounds. */
export const REPORT_MAX_BYTES = 120_000;

/** Where the loop is; `running` is the outcome search attribute's value until one is known. */
export type RecoveryPhase = 'waiting_for_batch' | 'backing_off' | 'paused' | 'retrying' | 'done';
export const RECOVERY_PHASES: readonly RecoveryPhase[] = [
  'waiting_for_batch',
  'backing_off',
  'paused',
  'retrying',
  'done',
];

export interface FailingSession {
  itemIndex: number;
  error: string | null;
  retryCount: number;
}

/** What the workflow keeps of one status read: counters and a capped list of failing sessions, no URLs. */
export interface BatchSnapshot {
  status: BatchStatus;
  total: number;
  completed: number;
  failed: number;
  processing: number;
  pending: number;
  settled: boolean;
  percentage: number | null;
  /**
   * Sum of the sessions' retry_count; null unless the API listed every session, each with its retry_count.
   * Reconciles unknown retry outcomes.
   */
  retryCountTotal: number | null;
  failing: FailingSession[];
  observedAt: string;
  /** When the batch last settled, by the API's clock (actual_completion_time); absent when it did not say. */
  settledAt?: string;
  /** Why the API says a batch failed that has no failed session (its `error`, cut and cleaned); absent otherwise. */
  batchError?: string;
}

export interface RecoveryRound {
  round: number;
  startedAt: string;
  retriedSessions: number;
  /** HTTP status of the retry call; null when the round was reconciled (the answer was lost). */
  apiStatus: number | null;
  apiMessage: string | null;
  failedBefore: number;
  /** Filled in when the batch has settled after the retry. */
  failedAfter: number | null;
  recovered: number | null;
  /** The retry call's answer was lost: the round was recorded from the batch, and no second call was sent. */
  reconciled: boolean;
  /**
   * For a reconciled round: `took_effect` when the batch shows the call was applied, `unknown` when it
   * cannot show either way (counted as a round all the same: a second call could retry twice), `no_effect` when it
   * showed every call of the round had none and the round sent no more (at its cap of calls, past the deadline, after
   * a cancel, or a further call not sent or refused).
   */
  reconcileEffect?: 'took_effect' | 'unknown' | 'no_effect';
  /** Why the round was reconciled and what the batch showed. */
  reconcileReason?: string;
  /** Retry calls sent in the round: more than 1 only after the batch proved the earlier ones had no effect. */
  callsSent?: number;
  /** The round's calls that provably never reached the API (refused, 429), before its first call went out or after. */
  callsNotSent?: number;
}

export interface RecoveryReport {
  batchId: string;
  workflowId: string;
  outcome: RecoveryOutcome | null;
  phase: RecoveryPhase;
  paused: boolean;
  startedAt: string;
  finishedAt: string | null;
  deadlineAt: string;
  nextRetryAt: string | null;
  maxRounds: number;
  rounds: RecoveryRound[];
  totals: { retriedSessions: number; recovered: number; stillFailed: number };
  /** The sessions failing at the last status read, capped; `total` is the uncapped count. */
  stillFailing: { sessions: FailingSession[]; total: number };
  batch: BatchSnapshot | null;
  continuedAsNew: number;
  /** The last API failure the recovery waited out; kept so a `deadline` outcome says why time ran out. */
  lastError?: { type: string; message: string; at: string } | null;
  /** A settled read showed failed sessions at some point (absent in reports from before it was kept). */
  failuresSeen?: boolean;
  /** Set when the recovery stopped on a permanent error (the outcome then stays null). */
  failure?: { type: string; message: string } | null;
  /** Rounds left out of `rounds` to keep the report bounded (those after the first few, before the last ones). */
  omittedRounds?: OmittedRounds | null;
}

export interface OmittedRounds {
  count: number;
  firstRound: number;
  lastRound: number;
  retriedSessions: number;
  recovered: number;
  reconciled: number;
}

// Control characters and lone surrogates take 6 bytes each in JSON; after this every character takes at most 3.
const COSTLY_CHARS =
  /[\u0000-\u0008\u000b\u000c\u000e-\u001f]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** Text as the report keeps it: at most `maxChars` characters, each at most 3 bytes of JSON. */
export function cutText(text: string, maxChars: number = REPORT_LIMITS.textChars): string {
  const note = '…';
  const cut = text.length > maxChars ? text.slice(0, maxChars - note.length) + note : text;
  return cut.replace(COSTLY_CHARS, '\ufffd');
}

function cutSession(session: FailingSession): FailingSession {
  return { ...session, error: session.error === null ? null : cutText(session.error) };
}

/**
 * How long after a recovery closed a retry call it could not reconcile is taken as one the API may still apply: hours
 * later, no apply is still to come. Until then a new recovery of the batch, which would read it before such a late
 * apply, could retry the same sessions a second time.
 */
export const UNKNOWN_OUTCOME_HOLD_MS = 6 * 3_600_000;

/**
 * Whether a report holds a round whose call's outcome it could not reconcile (reconciled, and neither shown to have
 * taken effect nor to have had none), or reconciled rounds folded into omittedRounds, whose effect it no longer keeps.
 * The report may be of any release, or a stored one: unchecked.
 */
export function leftCallOfUnknownOutcome(
  report: { rounds?: unknown; omittedRounds?: { reconciled?: number } | null } | undefined,
): boolean {
  const unknownRound = (round: Partial<RecoveryRound> | null) =>
    round?.reconciled === true && round.reconcileEffect !== 'took_effect' && round.reconcileEffect !== 'no_effect';
  const rounds = report?.rounds;
  return (
    (Array.isArray(rounds) && (rounds as (Partial<RecoveryRound> | null)[]).some(unknownRound)) ||
    (report?.omittedRounds?.reconciled ?? 0) > 0
  );
}

/** Rounds done so far, including those folded into `omittedRounds`. */
export function roundsDone(report: Pick<RecoveryReport, 'rounds' | 'omittedRounds'>): number {
  return report.rounds.length + (report.omittedRounds?.count ?? 0);
}

/** Keeps a waited-out API failure, cut to size; a `deadline` outcome then says why time ran out. */
export function recordLastError(report: RecoveryReport, type: string, message: string, at: Date): void {
  report.lastError = {
    type: cutText(type, REPORT_LIMITS.shortTextChars),
    message: cutText(message, REPORT_LIMITS.errorChars),
    at: at.toISOString(),
  };
}

/** Keeps the permanent error the recovery stopped on, cut to size. */
export function recordFailure(report: RecoveryReport, type: string, message: string): void {
  report.failure = {
    type: cutText(type, REPORT_LIMITS.shortTextChars),
    message: cutText(message, REPORT_LIMITS.errorChars),
  };
}

export function newReport(batchId: string, workflowId: string, startedAt: Date, deadlineAt: Date, maxRounds: number) {
  const report: RecoveryReport = {
    batchId,
    workflowId,
    outcome: null,
    phase: 'waiting_for_batch',
    paused: false,
    startedAt: startedAt.toISOString(),
    finishedAt: null,
    deadlineAt: deadlineAt.toISOString(),
    nextRetryAt: null,
    maxRounds,
    rounds: [],
    totals: { retriedSessions: 0, recovered: 0, stillFailed: 0 },
    stillFailing: { sessions: [], total: 0 },
    batch: null,
    continuedAsNew: 0,
    lastError: null,
    failure: null,
  };
  return report;
}

/** Folds a settled status read into the report: closes the open round and refreshes what still fails. */
export function recordSettledBatch(report: RecoveryReport, snapshot: BatchSnapshot): void {
  const failing = snapshot.failing.slice(0, REPORT_LIMITS.failingSessions).map(cutSession);
  report.batch = { ...snapshot, failing };
  if (snapshot.failed > 0) report.failuresSeen = true;
  report.stillFailing = { sessions: failing, total: snapshot.failed };
  report.totals.stillFailed = snapshot.failed;
  const open = report.rounds.at(-1);
  if (open && open.failedAfter === null) {
    open.failedAfter = snapshot.failed;
    open.recovered = Math.max(0, open.failedBefore - snapshot.failed);
    report.totals.recovered += open.recovered;
  }
}

/** Adds a round; past the rounds kept in full, the oldest of the last ones is folded into `omittedRounds`. */
export function recordRound(report: RecoveryReport, round: RecoveryRound): void {
  const short = (text: string) => cutText(text, REPORT_LIMITS.shortTextChars);
  report.rounds.push({
    ...round,
    apiMessage: round.apiMessage === null ? null : short(round.apiMessage),
    ...(round.reconcileReason !== undefined && { reconcileReason: short(round.reconcileReason) }),
  });
  report.totals.retriedSessions += round.retriedSessions;
  if (report.rounds.length <= REPORT_LIMITS.firstRounds + REPORT_LIMITS.lastRounds) return;
  const [folded] = report.rounds.splice(REPORT_LIMITS.firstRounds, 1) as [RecoveryRound];
  const omitted = report.omittedRounds ?? {
    count: 0,
    firstRound: folded.round,
    lastRound: folded.round,
    retriedSessions: 0,
    recovered: 0,
    reconciled: 0,
  };
  report.omittedRounds = {
    count: omitted.count + 1,
    firstRound: omitted.firstRound,
    lastRound: folded.round,
    retriedSessions: omitted.retriedSessions + folded.retriedSessions,
    recovered: omitted.recovered + (folded.recovered ?? 0),
    reconciled: omitted.reconciled + (folded.reconciled ? 1 : 0),
  };
}
