import ms from 'ms';
import { REPORT_LIMITS, roundsDone, type RecoveryRound } from '../workflows/report.js';
import type { ClientRecoveryReport, ReportSource } from './recoveries.js';

/** The report lists at most this many failing sessions; the total is always shown. */
export const STILL_FAILING_SHOWN = 10;

/** Left-aligned columns, two spaces apart; the first row is the header. */
export function formatTable(rows: string[][]): string[] {
  const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => row[column]?.length ?? 0))) ?? [];
  return rows.map((row) =>
    row
      .map((cell, column) => cell.padEnd(widths[column] ?? 0))
      .join('  ')
      .trimEnd(),
  );
}

const sessions = (count: number) => (count === 1 ? '1 session' : `${count} sessions`);

const orDash = (value: number | null) => (value === null ? '-' : String(value));

function roundRow(round: RecoveryRound): string[] {
  return [
    String(round.round),
    round.startedAt,
    String(round.retriedSessions),
    // A reconciled round's retry answer was lost: there is no status to show.
    orDash(round.apiStatus),
    `${round.failedBefore}→${round.failedAfter ?? '?'}`,
    orDash(round.recovered),
    round.reconciled ? 'yes' : 'no',
  ];
}

function describeState(report: ClientRecoveryReport): string {
  if (report.outcome) return report.outcome;
  if (report.failure) return `failed (${report.failure.type}): ${report.failure.message}`;
  const phase = report.paused ? 'paused' : report.phase.replaceAll('_', ' ');
  return report.nextRetryAt ? `running (${phase}, next retry at ${report.nextRetryAt})` : `running (${phase})`;
}

/**
 * Rounds done. `storedRoundsOmitted`: the oldest rounds a stored report leaves out of `rounds` (ReportSource), its
 * `omittedRounds` among them.
 */
export function roundsDoneOf(report: ClientRecoveryReport, storedRoundsOmitted = 0): number {
  return storedRoundsOmitted > 0 ? storedRoundsOmitted + report.rounds.length : roundsDone(report);
}

/**
 * The report as an operator reads it in a terminal. `endedAs` is how a recovery ended that could not write its end
 * into the report (terminated, timed out): shown as its outcome instead of the state the report was stored in.
 * `storedRoundsOmitted`: the oldest rounds a stored report leaves out (ReportSource).
 */
export function formatReport(
  report: ClientRecoveryReport,
  webUiUrl?: string,
  endedAs?: string,
  storedRoundsOmitted = 0,
): string {
  // A start whose input cannot be read has no deadline to give (before, its start time).
  const deadline = report.deadlineAt ?? 'unknown (its input cannot be read)';
  const lines = [
    `Recovery of batch ${report.batchId} (workflow ${report.workflowId})`,
    `Outcome:  ${endedAs ?? describeState(report)}`,
    ...(report.lastError
      ? [`Last API error: ${report.lastError.type} at ${report.lastError.at}: ${report.lastError.message}`]
      : []),
    `Started:  ${report.startedAt}   ${report.finishedAt ? `finished: ${report.finishedAt}` : `deadline: ${deadline}`}`,
    '',
  ];
  if (report.rounds.length === 0) {
    // An ended recovery will run none: a refused start has no policy, so no "at most" to give. Nor has one not started
    // yet whose input cannot be read (before, `at most 0`).
    const ended = endedAs !== undefined || report.phase === 'done';
    const atMost = report.maxRounds === null ? '' : ` (at most ${report.maxRounds})`;
    lines.push(ended ? 'Rounds: none' : `Rounds: none yet${atMost}`);
  } else {
    const atMost = report.maxRounds === null ? '' : ` of at most ${report.maxRounds}`;
    lines.push(`Rounds: ${roundsDoneOf(report, storedRoundsOmitted)}${atMost}`);
    const header = ['round', 'startedAt', 'retried', 'apiStatus', 'failed before→after', 'recovered', 'reconciled'];
    const table = formatTable([header, ...report.rounds.map(roundRow)]).map((line) => `  ${line}`);
    const omitted = report.omittedRounds;
    // A stored report keeps the latest rounds only: its own `omittedRounds` are among the older ones it leaves out.
    if (storedRoundsOmitted > 0)
      table.splice(
        1,
        0,
        `  … rounds 1-${storedRoundsOmitted} left out: the stored report keeps the latest ${report.rounds.length}`,
      );
    // The report keeps the first and the last rounds in full; those between are counted.
    else if (omitted)
      table.splice(
        1 + REPORT_LIMITS.firstRounds,
        0,
        `  … rounds ${omitted.firstRound}-${omitted.lastRound} left out: ${sessions(omitted.retriedSessions)} retried, ` +
          `${omitted.recovered} recovered, ${omitted.reconciled} reconciled`,
      );
    lines.push(...table);
  }
  const { totals, stillFailing } = report;
  lines.push(
    '',
    `Totals: ${sessions(totals.retriedSessions)} retried, ${totals.recovered} recovered, ${totals.stillFailed} still failing`,
  );
  if (stillFailing.total > 0 && stillFailing.sessions.length === 0) {
    // A settle the poller's list showed, a recovery that ended before reading the sessions, or an API that sent none.
    lines.push(`Still failing: ${sessions(stillFailing.total)} (not read: the last status gave counts only)`);
  } else if (stillFailing.total > 0) {
    const shown = stillFailing.sessions.slice(0, STILL_FAILING_SHOWN);
    lines.push(
      `Still failing: ${sessions(stillFailing.total)}${shown.length < stillFailing.total ? ` (first ${shown.length})` : ''}`,
    );
    const rows = shown.map((session) => [String(session.itemIndex), String(session.retryCount), session.error ?? '-']);
    lines.push(...formatTable([['item_index', 'retry_count', 'error'], ...rows]).map((line) => `  ${line}`));
  }
  if (webUiUrl) lines.push('', `Web UI: ${webUiUrl}`);
  return lines.join('\n');
}

/** How old a stored report is, said before it; null for a live or final report. */
export function describeSource(source: ReportSource, now = new Date()): string | null {
  if (source.kind !== 'stored') return null;
  const age = ms(Math.max(0, now.getTime() - Date.parse(source.recordedAt)), { long: true });
  const omitted = source.roundsOmitted > 0 ? `; its ${source.roundsOmitted} oldest rounds are not listed` : '';
  return `Stored report: ${source.reason}. Recorded at ${source.recordedAt} (${age} ago)${omitted}.`;
}
