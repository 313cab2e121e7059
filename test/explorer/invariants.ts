import type { BatchLedger, LedgerCall, LedgerRetry } from '../../simulator/index.js';
import type { ClientRecoveryReport } from '../../client/recoveries.js';
import type { RecoveryReport } from '../../workflows/report.js';
import { LOST_AFTER_ANNOUNCING } from '../../workflows/retry-protocol.js';
import type { ExplorerTimings, Scenario } from './scenario.js';

export const INVARIANTS = [
  'applied_per_round',
  'rounds_match_ledger',
  'no_round_lost_to_not_sent',
  'outcome_matches_batch',
  'report_written',
] as const;
export type Invariant = (typeof INVARIANTS)[number];

/** Figures that are not violations but must never be hidden. */
export const NOTICES = ['late_apply', 'unprovable_round', 'answer_read_late'] as const;
export type Notice = (typeof NOTICES)[number];

export interface Violation {
  invariant: Invariant;
  detail: string;
}

/** How a recovery ended, as its caller sees it. */
export type RecoveryEnd =
  | { kind: 'completed'; report: RecoveryReport; searchOutcome: string | undefined }
  | { kind: 'stopped'; report: ClientRecoveryReport | undefined; searchOutcome: string | undefined; message: string }
  | { kind: 'still_running'; waitedMs: number };

/** What the batch ends as once every scheduled attempt has run. */
export interface FinalBatch {
  failed: number;
  cancelled: boolean;
}

export interface Observation {
  scenario: Scenario;
  timings: ExplorerTimings;
  end: RecoveryEnd;
  ledger: BatchLedger;
  finalBatch: FinalBatch;
  /** Wall-clock times the worker was killed. */
  killedAtMs: number[];
}

export interface Verdict {
  violations: Violation[];
  notices: Partial<Record<Notice, number>>;
}

const isRetryPost = (call: LedgerCall) => call.method === 'POST' && call.path.endsWith('/retry');

/**
 * Whether the client could not know if this POST was applied: no answer, a 5xx, an answer later than
 * its timeout, or a worker killed while it was in flight or before it could report the answer. Everything
 * else (a 429, a 4xx, a 200 in time) is a definite answer.
 */
function outcomeUnknownToClient(call: LedgerCall, timings: ExplorerTimings, killedAtMs: number[]): boolean {
  if (call.outcome !== 'answered' || call.answeredAtMs === undefined) return true;
  if ((call.statusCode ?? 0) >= 500) return true;
  if (call.answeredAtMs - call.receivedAtMs >= timings.clientTimeoutMs) return true;
  // An answer is known only once the worker has handled it and the server has its activity's result: a kill
  // shortly after the API answered (within a client timeout) can still leave the workflow with a lost worker.
  const knownBy = call.answeredAtMs + timings.clientTimeoutMs;
  return killedAtMs.some((at) => at >= call.receivedAtMs && at <= knownBy);
}

/**
 * Whether the round's call went down with its worker after the server recorded its announcement: the client cannot
 * know whether the POST went out, and none may have (a worker killed, or stalled past its heartbeat timeout, between
 * the announcement and the request). A call lost before its announcement is sent again, never a round, so a round
 * that says `worker_lost` without the announcement, kill or no kill, is lost.
 */
const lostAfterAnnouncing = (round: { apiMessage: string | null; reconciled: boolean }) =>
  round.reconciled && (round.apiMessage?.startsWith(`answer lost (worker_lost: ${LOST_AFTER_ANNOUNCING}`) ?? false);

const isLate = (retry: LedgerRetry, timings: ExplorerTimings) =>
  retry.appliedAtMs - (retry.receivedAtMs ?? retry.appliedAtMs) > timings.windowMs;

/** Checks one seed's ledger against its recovery's report. */
export function checkInvariants(observation: Observation): Verdict {
  const { scenario, timings, end, ledger, finalBatch, killedAtMs } = observation;
  const violations: Violation[] = [];
  const notices: Partial<Record<Notice, number>> = {};
  const violate = (invariant: Invariant, detail: string) => violations.push({ invariant, detail });
  const notice = (name: Notice, count: number) => {
    if (count > 0) notices[name] = (notices[name] ?? 0) + count;
  };

  if (end.kind === 'still_running') {
    violate('report_written', `recovery still running ${end.waitedMs} ms after it started`);
    return { violations, notices };
  }
  const report = end.report;
  if (end.kind === 'stopped') {
    if (report === undefined) violate('report_written', `recovery stopped without a report: ${end.message}`);
    else if (!report.failure) violate('report_written', `recovery stopped, its report has no failure: ${end.message}`);
    if (end.searchOutcome !== 'failed')
      violate('report_written', `stopped recovery has RecoveryOutcome=${String(end.searchOutcome)}, not failed`);
    // The explorer injects no permanent fault (bad key, unknown batch): nothing here should stop a recovery.
    violate('outcome_matches_batch', `recovery stopped on a recoverable batch: ${end.message}`);
  } else {
    if (end.report.outcome === null) violate('report_written', 'completed recovery has no outcome');
    if (end.searchOutcome !== end.report.outcome)
      violate(
        'report_written',
        `RecoveryOutcome=${String(end.searchOutcome)} but the report says ${String(end.report.outcome)}`,
      );
  }
  if (report === undefined) return { violations, notices };

  const rounds = report.rounds.map((round) => ({ ...round, startedAtMs: Date.parse(round.startedAt) }));
  /** The recorded round a call belongs to: the last one started before the call arrived; -1 before any. */
  const roundAt = (ms: number) => {
    let index = -1;
    rounds.forEach((round, at) => {
      if (round.startedAtMs <= ms) index = at;
    });
    return index;
  };
  const applies = ledger.retries;
  const late = applies.filter((retry) => isLate(retry, timings));
  const onTime = applies.filter((retry) => !isLate(retry, timings));
  notice('late_apply', late.length);

  // 1. At most one applied retry per round.
  const appliesPerRound = new Map<number, LedgerRetry[]>();
  for (const retry of applies) {
    const index = roundAt(retry.receivedAtMs ?? retry.appliedAtMs);
    appliesPerRound.set(index, [...(appliesPerRound.get(index) ?? []), retry]);
  }
  for (const [index, retries] of appliesPerRound) {
    const inTime = retries.filter((retry) => !isLate(retry, timings));
    if (inTime.length > 1)
      violate(
        'applied_per_round',
        `${inTime.length} retries applied ${index < 0 ? 'before the first recorded round' : `in round ${index + 1}`}`,
      );
  }

  // 3. A round that applied nothing must have sent a POST whose outcome the client could not know.
  const posts = ledger.calls.filter(isRetryPost);
  let unprovable = 0;
  let readLate = 0;
  let lost = 0;
  rounds.forEach((round, index) => {
    if (round.apiStatus === 400) return;
    if ((appliesPerRound.get(index) ?? []).length > 0) return;
    const unknown = posts.filter(
      (post) => roundAt(post.receivedAtMs) === index && outcomeUnknownToClient(post, timings, killedAtMs),
    );
    if (unknown.length > 0 || lostAfterAnnouncing(round)) {
      unprovable += 1;
      return;
    }
    const sent = posts.filter((post) => roundAt(post.receivedAtMs) === index);
    // The client timed out on a POST the API answered in time: the answer reached the worker after its timeout (a
    // busy event loop runs the timeout first), so the client could not know it either.
    if (sent.length > 0 && round.reconciled && round.apiMessage?.startsWith('answer lost (timeout')) {
      unprovable += 1;
      readLate += 1;
      return;
    }
    lost += 1;
    violate(
      'no_round_lost_to_not_sent',
      `round ${index + 1} (apiStatus ${String(round.apiStatus)}, reconciled ${round.reconciled}, ` +
        `${String(round.apiMessage)}) applied no retry; its POSTs: ` +
        (sent
          .map(
            (post) =>
              `${post.statusCode ?? post.outcome} in ${post.answeredAtMs === undefined ? '?' : post.answeredAtMs - post.receivedAtMs} ms`,
          )
          .join(', ') || 'none'),
    );
  });
  notice('unprovable_round', unprovable);
  notice('answer_read_late', readLate);

  // 2. Rounds recorded = retries applied + rounds answered 400; rounds excused above are left out.
  const answered400 = rounds.filter((round) => round.apiStatus === 400).length;
  const claimed = rounds.length - answered400 - unprovable - lost;
  if (claimed < onTime.length || claimed > applies.length)
    violate(
      'rounds_match_ledger',
      `report: ${rounds.length} rounds (${answered400} answered 400, ${unprovable} unprovable); ` +
        `API applied ${applies.length} retries (${late.length} late)`,
    );

  // 4. The outcome agrees with what the batch ends as.
  const lateAfterEnd = late.some(
    (retry) => report.finishedAt === null || retry.appliedAtMs > Date.parse(report.finishedAt),
  );
  if (end.kind === 'completed' && !lateAfterEnd) {
    const mismatch = outcomeMismatch(end.report, scenario, finalBatch, applies.length);
    if (mismatch !== undefined) violate('outcome_matches_batch', mismatch);
  }
  return { violations, notices };
}

function outcomeMismatch(
  report: RecoveryReport,
  scenario: Scenario,
  finalBatch: FinalBatch,
  applied: number,
): string | undefined {
  const state = `the batch ends with ${finalBatch.failed} failed sessions${finalBatch.cancelled ? ', cancelled' : ''}`;
  switch (report.outcome) {
    case 'clean':
      if (finalBatch.failed > 0 || applied > 0 || report.rounds.length > 0)
        return `clean, but ${state} after ${applied} applied retries and ${report.rounds.length} rounds`;
      return undefined;
    case 'recovered':
      return finalBatch.failed > 0 ? `recovered, but ${state}` : undefined;
    case 'exhausted':
      if (report.rounds.length !== report.maxRounds)
        return `exhausted after ${report.rounds.length} of ${report.maxRounds} rounds`;
      return finalBatch.failed === 0 ? `exhausted, but ${state}` : undefined;
    case 'batch_cancelled':
      return finalBatch.cancelled ? undefined : `batch_cancelled, but ${state}`;
    case 'deadline':
      return scenario.deadlineMs === undefined ? 'deadline, but the seed set none' : undefined;
    case 'operator_cancelled':
      return scenario.cancelAt === undefined ? 'operator_cancelled, but the seed cancelled nothing' : undefined;
    case null:
      return 'no outcome';
  }
}
