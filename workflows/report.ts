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

/** Where the loop is; `running` is the outcome search attribute's value until one is known. */
export type RecoveryPhase = 'waiting_for_batch' | 'backing_off' | 'paused' | 'retrying' | 'done';

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
  /** Sum of the sessions' retry_count; null when the API sent no sessions. Reconciles unknown retry outcomes. */
  retryCountTotal: number | null;
  failing: FailingSession[];
  observedAt: string;
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
   * cannot show either way (counted as a round all the same: a second call could retry twice).
   */
  reconcileEffect?: 'took_effect' | 'unknown';
  /** Why the round was reconciled and what the batch showed. */
  reconcileReason?: string;
  /** Retry calls sent in the round: more than 1 only after the batch proved the earlier ones had no effect. */
  callsSent?: number;
  /** Calls that provably never reached the API (refused, 429) before this round's call went out. */
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
  report.batch = snapshot;
  if (snapshot.failed > 0) report.failuresSeen = true;
  report.stillFailing = { sessions: snapshot.failing, total: snapshot.failed };
  report.totals.stillFailed = snapshot.failed;
  const open = report.rounds.at(-1);
  if (open && open.failedAfter === null) {
    open.failedAfter = snapshot.failed;
    open.recovered = Math.max(0, open.failedBefore - snapshot.failed);
    report.totals.recovered += open.recovered;
  }
}

export function recordRound(report: RecoveryReport, round: RecoveryRound): void {
  report.rounds.push(round);
  report.totals.retriedSessions += round.retriedSessions;
}
