import type { RecoveryPolicy } from './input.js';
import {
  cutText,
  REPORT_LIMITS,
  roundsDone,
  type FailingSession,
  type RecoveryReport,
  type RecoveryRound,
} from './report.js';

// What the Web UI shows on a recovery's page (Temporal user metadata) and what the memo keeps for
// reads without a worker. Pure and dependency-free: it runs in the workflow sandbox and in clients.

/** Rounds and failing sessions listed in the details and the memo; the totals always count them all. */
export const ROUNDS_SHOWN = 20;
export const FAILING_SHOWN = 10;

/** The memo key holding the compact report, for `report` and `watch` when no worker answers a query. */
export const RECOVERY_MEMO_KEY = 'recoveryReport';

/** The report as the memo keeps it: the latest rounds and failing sessions only, and when it was recorded. */
export interface RecoveryMemo {
  report: RecoveryReport;
  /** Workflow time of the upsert: how old a worker-less read is. */
  recordedAt: string;
  /** Rounds left out of `report.rounds` (the oldest). */
  roundsOmitted: number;
}

/** `1h30m`, `45s`, `250ms`: short and exact enough for a summary line. */
export function formatDuration(millis: number): string {
  if (millis < 1_000) return `${millis}ms`;
  const units: [string, number][] = [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1_000],
  ];
  let rest = Math.round(millis / 1_000) * 1_000;
  const parts: string[] = [];
  for (const [unit, size] of units) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  return parts.slice(0, 2).join('');
}

const plural = (count: number, word: string) => `${count} ${word}${count === 1 ? '' : 's'}`;

/** The static summary of a recovery: the batch and its policy in one line. */
export function recoverySummary(policy: RecoveryPolicy): string {
  const { roundBackoff } = policy;
  const backoff =
    roundBackoff.initialInterval === roundBackoff.maximumInterval
      ? formatDuration(roundBackoff.initialInterval)
      : `${formatDuration(roundBackoff.initialInterval)}→${formatDuration(roundBackoff.maximumInterval)}`;
  return [
    `Recover batch ${policy.batchId}`,
    `up to ${plural(policy.maxRounds, 'round')} of ${policy.retryFailedOnly ? 'failed' : 'all'} sessions`,
    `${plural(policy.maxRetries, 'attempt')} per session`,
    `backoff ${backoff}`,
    `deadline ${formatDuration(policy.deadline)}`,
  ].join(' · ');
}

/** The static details: the whole policy as a table, for the page's "details" panel. */
export function recoveryStaticDetails(policy: RecoveryPolicy): string {
  const backoff = (b: RecoveryPolicy['poll']) =>
    `${formatDuration(b.initialInterval)}, ×${b.backoffCoefficient}, at most ${formatDuration(b.maximumInterval)}`;
  return [
    `Recovery of AnchorBrowser batch \`${policy.batchId}\``,
    '',
    '| Policy | Value |',
    '| --- | --- |',
    `| Max rounds | ${policy.maxRounds} |`,
    `| Attempts per session | ${policy.maxRetries} |`,
    `| Sessions retried | ${policy.retryFailedOnly ? 'failed only' : 'all'} |`,
    `| Round backoff | ${backoff(policy.roundBackoff)} |`,
    `| Status reads | ${backoff(policy.poll)} |`,
    `| Deadline | ${formatDuration(policy.deadline)} |`,
  ].join('\n');
}

/** `2026-11-29 22:10:05 UTC`: the Web UI shows the markdown as is. */
function at(iso: string | null | undefined): string {
  return iso ? `${iso.slice(0, 19).replace('T', ' ')} UTC` : '-';
}

const cell = (text: string) => text.replaceAll('|', '\\|').replaceAll('\n', ' ');
const orDash = (value: number | null) => (value === null ? '-' : String(value));

function describePhase(report: RecoveryReport): string {
  if (report.outcome) return `**Outcome: ${report.outcome}** (finished ${at(report.finishedAt)})`;
  if (report.failure) return `**Failed: ${cell(report.failure.type)}**: ${cell(report.failure.message)}`;
  const next = roundsDone(report) + 1;
  if (report.paused) return `**Paused** before round ${next}: no retry until resumed`;
  switch (report.phase) {
    case 'waiting_for_batch':
      return '**Waiting for the batch to settle** (status reads)';
    case 'backing_off':
      return `**Backing off**: retry round ${next} at ${at(report.nextRetryAt)}`;
    case 'retrying':
      return `**Sending retry round ${roundsDone(report) || next}**`;
    default:
      return `**${report.phase}**`;
  }
}

function roundRow(round: RecoveryRound): string {
  const cells = [
    String(round.round),
    at(round.startedAt),
    String(round.retriedSessions),
    round.apiStatus === null ? 'reconciled' : String(round.apiStatus),
    `${round.failedBefore} → ${round.failedAfter ?? '?'}`,
    orDash(round.recovered),
  ];
  return `| ${cells.join(' | ')} |`;
}

function failingRow(session: FailingSession): string {
  return `| ${session.itemIndex} | ${session.retryCount} | ${cell(session.error ?? '-')} |`;
}

/** The live markdown report `setCurrentDetails` holds: phase, rounds, what still fails, next retry. */
export function renderRecoveryDetails(report: RecoveryReport): string {
  const { totals, batch } = report;
  // A list, not lines: markdown joins consecutive lines into one paragraph.
  const lines = [
    describePhase(report),
    '',
    `- Batch \`${report.batchId}\`: ${
      batch
        ? `${batch.total} sessions, ${batch.completed} completed, ${batch.failed} failed (status ${batch.status}, read ${at(batch.observedAt)})`
        : 'no status read yet'
    }`,
    `- Started ${at(report.startedAt)} · deadline ${at(report.deadlineAt)} · next retry ${at(report.nextRetryAt)}`,
    `- Totals: ${plural(totals.retriedSessions, 'session')} retried, ${totals.recovered} recovered, ${totals.stillFailed} still failing`,
  ];
  if (report.lastError) {
    lines.push(
      `- Last API error: ${cell(report.lastError.type)} at ${at(report.lastError.at)}: ${cell(report.lastError.message)}`,
    );
  }
  lines.push('', `### Rounds (${roundsDone(report)} of at most ${report.maxRounds})`, '');
  if (report.rounds.length === 0) lines.push('No retry round yet.');
  else {
    const shown = report.rounds.slice(-ROUNDS_SHOWN);
    if (shown.length < report.rounds.length) lines.push(`Latest ${shown.length} rounds.`, '');
    lines.push(
      '| Round | Started | Retried | API status | Failed before → after | Recovered |',
      '| --- | --- | --- | --- | --- | --- |',
      ...shown.map(roundRow),
    );
  }
  const { stillFailing } = report;
  lines.push('', `### Still failing (${stillFailing.total})`, '');
  if (stillFailing.total === 0) lines.push('Nothing fails.');
  else {
    const shown = stillFailing.sessions.slice(0, FAILING_SHOWN);
    if (shown.length < stillFailing.total) lines.push(`First ${shown.length} of ${stillFailing.total}.`, '');
    lines.push('| Item | Retries | Error |', '| --- | --- | --- |', ...shown.map(failingRow));
  }
  return lines.join('\n');
}

/** The compact report the memo keeps: bounded whatever maxRounds is, and without the batch's failing list twice. */
export function recoveryMemo(report: RecoveryReport, recordedAt: Date): RecoveryMemo {
  const rounds = report.rounds.slice(-ROUNDS_SHOWN);
  return {
    report: {
      ...report,
      rounds,
      stillFailing: { ...report.stillFailing, sessions: report.stillFailing.sessions.slice(0, FAILING_SHOWN) },
      batch: report.batch ? { ...report.batch, failing: [] } : null,
    },
    recordedAt: recordedAt.toISOString(),
    roundsOmitted: report.rounds.length - rounds.length,
  };
}

/** The ends a notification may be sent for; the worker's NOTIFY_OUTCOMES picks among them. */
export const NOTIFIABLE_OUTCOMES = [
  'exhausted',
  'deadline',
  'batch_cancelled',
  'operator_cancelled',
  'failed',
] as const;
export type NotifiableOutcome = (typeof NOTIFIABLE_OUTCOMES)[number];

/** What the workflow hands the notify activity: counts and names only, no URL, no session detail. */
export interface RecoveryEnd {
  batchId: string;
  outcome: NotifiableOutcome;
  rounds: number;
  retriedSessions: number;
  recovered: number;
  stillFailed: number;
  /**
   * The failure, one line; else the last API error the recovery waited out, with when, as it may be from long before
   * the end (a 429 of the first round, before rounds that went well).
   */
  reason: string | null;
}

export function recoveryEnd(report: RecoveryReport): RecoveryEnd | null {
  const outcome = report.outcome ?? (report.failure ? 'failed' : null);
  const notifiable = NOTIFIABLE_OUTCOMES.find((candidate) => candidate === outcome);
  if (!notifiable) return null;
  const { failure, lastError } = report;
  const reason = failure
    ? `${failure.type}: ${failure.message}`
    : lastError
      ? `last API error, at ${lastError.at}: ${lastError.type}: ${lastError.message}`
      : null;
  return {
    // A UUID, but a refused input carried from a run before may be anything typed by hand: a notification is bounded.
    batchId: cutText(report.batchId, REPORT_LIMITS.shortTextChars),
    outcome: notifiable,
    // Past the rounds the report keeps in full, those between are counted only.
    rounds: roundsDone(report),
    retriedSessions: report.totals.retriedSessions,
    recovered: report.totals.recovered,
    stillFailed: report.totals.stillFailed,
    reason: reason?.slice(0, 300) ?? null,
  };
}

/** A recovery's page in the Temporal Web UI. */
export function workflowUiUrl(uiBaseUrl: string, namespace: string, workflowId: string): string {
  return `${uiBaseUrl.replace(/\/$/, '')}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}
