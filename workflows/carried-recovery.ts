import { BATCH_STATUSES } from '../anchor-api/batch-status.js';
import { absentOr, CarriedStateProblems, isBoolean, isRecord, isText } from './carried-state.js';
import { recoveryPolicyFields } from './input-fields.js';
import type { CarriedRecovery } from './recover-batch.js';
import { RECOVERY_OUTCOMES, RECOVERY_PHASES, REPORT_LIMITS, REPORT_MAX_BYTES } from './report.js';

// What one run of a recovery hands the next (CarriedRecovery), checked before the run reads any of it: the Web UI's
// start form takes a second argument, typed by hand or copied from a run with "start workflow like this one".
/** A count the API gave (or a sum of them): an integer, of any sign (an API may send -1, and a report keeps it). */
const isInteger = (value: unknown): value is number => Number.isSafeInteger(value);
/** A count of the workflow's own: rounds, runs, a maximum. */
const isCount = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0;

/** The last instant of the year 9999: a later date is no RFC 3339 text, and the server refuses it as the deadline. */
const LATEST_DATE_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
/** A date as the workflow writes one (toISOString), from 1970 to 9999. */
function isDate(value: unknown): value is string {
  if (typeof value !== 'string' || value.length > 40) return false;
  const millis = Date.parse(value);
  return millis >= 0 && millis <= LATEST_DATE_MS;
}

/**
 * A time handed to the next run as a date it takes (isDate). A backoff dated from an API's settle time may begin before
 * 1970 (a Go zero time, `0001-01-01T00:00:00Z`): long past either way, so 1970 waits no more, and the next run goes on
 * instead of refusing its own carried state.
 */
export function carriedDate(millis: number): string {
  return new Date(Math.min(Math.max(millis, 0), LATEST_DATE_MS)).toISOString();
}

/**
 * The most rounds a report lists. A release from before the report's bound (c93648d) kept every round, at most
 * maxRounds' maximum, and a run of a later release goes on with that list, folding one round per round it adds.
 */
const ROUNDS_LISTED_MAX = REPORT_LIMITS.firstRounds + REPORT_LIMITS.lastRounds;
const ROUNDS_MAX = recoveryPolicyFields.maxRounds.max;

/**
 * The longest carried state taken, in characters of JSON: four times the largest report this release hands on, which
 * leaves room for one of a release before the report's bound. The report goes into every memo write, update result
 * and continue-as-new: a state typed by hand far past that would be written to history again and again. Fields the
 * run does not read are not refused, as a later release may hand them on; this bounds them too.
 */
const CARRIED_MAX_CHARS = 4 * REPORT_MAX_BYTES;

/** A failing session; `itemIndex` is -1 for a session the API gave no index. */
const isSession = (value: unknown) =>
  isRecord(value) && isInteger(value.itemIndex) && absentOr(value.error, isText) && isInteger(value.retryCount);

const isSessionList = (value: unknown) =>
  Array.isArray(value) && value.length <= REPORT_LIMITS.failingSessions && value.every(isSession);
const SESSIONS_EXPECTED =
  `a list of at most ${REPORT_LIMITS.failingSessions} sessions, ` +
  'each with itemIndex and retryCount (integers) and error (a text or null)';

/**
 * A round as the run reads it (the details' table, the fold into omittedRounds, the backoff from the last call). Its
 * `startedAt` is a text, not checked as a date: a run takes a carried `roundStartedAt` as given for the round it goes
 * on with, and hands it on in `rounds`.
 */
const isRound = (value: unknown) =>
  isRecord(value) &&
  isCount(value.round) &&
  isText(value.startedAt) &&
  isInteger(value.retriedSessions) &&
  absentOr(value.apiStatus, isInteger) &&
  isInteger(value.failedBefore) &&
  absentOr(value.failedAfter, isInteger) &&
  absentOr(value.recovered, isInteger) &&
  isBoolean(value.reconciled);

/**
 * The carried state checked, or undefined for none (null); a state without a report starts one, as before. Every
 * problem names its field; the run then fails at once as for an invalid input. Only what a run reads of it is
 * checked, and what a real run of this release or an earlier one hands on passes: fields added to the report since
 * its first release (lastError, failure, failuresSeen, omittedRounds, a round's reconcileEffect,
 * reconcileReason, callsSent and callsNotSent, the batch's settledAt) may be absent, and API counts may be negative.
 * The fields beside the report are checked too, each may be absent: before, `callsNotSent: 'abc'` went into the
 * round's report as 'abc1' and its wait to send again as NaN.
 */
export function parseCarriedRecovery(raw: unknown, inputBatchId: unknown): CarriedRecovery | undefined {
  if (raw === undefined || raw === null) return undefined;
  // Typed, so that the compiler takes refuse() for the end it is.
  const problems: CarriedStateProblems = new CarriedStateProblems();
  const check = problems.check.bind(problems);
  if (!isRecord(raw)) problems.refuse('', 'an object: what one run of a recovery hands the next');
  if (JSON.stringify(raw).length > CARRIED_MAX_CHARS)
    problems.refuse('', `at most ${CARRIED_MAX_CHARS} characters of JSON, as one run of a recovery hands the next`);
  check(absentOr(raw.roundStartedAt, isText), 'roundStartedAt', 'a text or null');
  check(absentOr(raw.callsNotSent, isCount), 'callsNotSent', 'an integer of 0 or more, or null');
  check(absentOr(raw.pollerWaitStartedAt, isText), 'pollerWaitStartedAt', 'a text or null');
  check(absentOr(raw.backoffStartedAt, isDate), 'backoffStartedAt', 'a date or null');
  for (const flag of ['retryNowRequested', 'resetToReconcile'] as const)
    check(absentOr(raw[flag], isBoolean), flag, 'true, false or null');
  const { report } = raw;
  if (report !== undefined && report !== null && !isRecord(report)) {
    check(false, 'report', 'an object: the report of the run before');
  } else if (isRecord(report)) {
    const field = (name: string, ok: boolean, expected: string) => check(ok, `report.${name}`, expected);
    field(
      'batchId',
      typeof report.batchId === 'string' && report.batchId === inputBatchId,
      "the input's batchId: a report of the batch this recovery recovers",
    );
    field('workflowId', isText(report.workflowId), 'a text');
    field(
      'outcome',
      absentOr(report.outcome, (o) => RECOVERY_OUTCOMES.includes(o as never)),
      `null or one of ${RECOVERY_OUTCOMES.join(', ')}`,
    );
    field('phase', RECOVERY_PHASES.includes(report.phase as never), `one of ${RECOVERY_PHASES.join(', ')}`);
    field('paused', isBoolean(report.paused), 'true or false');
    field('startedAt', isDate(report.startedAt), 'a date');
    field('deadlineAt', isDate(report.deadlineAt), 'a date');
    field('finishedAt', absentOr(report.finishedAt, isDate), 'a date or null');
    field('nextRetryAt', absentOr(report.nextRetryAt, isDate), 'a date or null');
    field('maxRounds', isCount(report.maxRounds), 'an integer of 0 or more');
    field('continuedAsNew', isCount(report.continuedAsNew), 'an integer of 0 or more');
    const omitted = report.omittedRounds;
    field(
      'omittedRounds',
      absentOr(
        omitted,
        (o) =>
          isRecord(o) &&
          isCount(o.count) &&
          isCount(o.firstRound) &&
          isCount(o.lastRound) &&
          isInteger(o.retriedSessions) &&
          isInteger(o.recovered) &&
          isCount(o.reconciled),
      ),
      'null or an object with count, firstRound, lastRound, retriedSessions, recovered and reconciled (integers)',
    );
    const omittedCount = isRecord(omitted) && isCount(omitted.count) ? omitted.count : 0;
    const { rounds } = report;
    field(
      'rounds',
      Array.isArray(rounds) &&
        (rounds.length <= ROUNDS_LISTED_MAX || rounds.length + omittedCount <= ROUNDS_MAX) &&
        rounds.every(isRound),
      `a list of at most ${ROUNDS_LISTED_MAX} rounds (of ${ROUNDS_MAX} with those omitted, from a release before the ` +
        'bound, which listed every round), ' +
        'each with round, retriedSessions and failedBefore (integers), startedAt (a text), apiStatus, failedAfter ' +
        'and recovered (integers or null) and reconciled (true or false)',
    );
    const { totals } = report;
    field(
      'totals',
      isRecord(totals) &&
        isInteger(totals.retriedSessions) &&
        isInteger(totals.recovered) &&
        isInteger(totals.stillFailed),
      'an object with retriedSessions, recovered and stillFailed (integers)',
    );
    const { stillFailing } = report;
    field(
      'stillFailing',
      isRecord(stillFailing) && isSessionList(stillFailing.sessions) && isInteger(stillFailing.total),
      `an object with total (an integer) and sessions: ${SESSIONS_EXPECTED}`,
    );
    field(
      'batch',
      absentOr(
        report.batch,
        (batch) =>
          isRecord(batch) &&
          BATCH_STATUSES.includes(batch.status as never) &&
          isInteger(batch.total) &&
          isInteger(batch.completed) &&
          isInteger(batch.failed) &&
          isText(batch.observedAt) &&
          isSessionList(batch.failing),
      ),
      `null or an object with status (one of ${BATCH_STATUSES.join(', ')}), total, completed and failed ` +
        `(integers), observedAt (a text) and failing: ${SESSIONS_EXPECTED}`,
    );
    field(
      'lastError',
      absentOr(report.lastError, (e) => isRecord(e) && isText(e.type) && isText(e.message) && isDate(e.at)),
      'null or an object with type and message (texts) and at (a date)',
    );
    field(
      'failure',
      absentOr(report.failure, (f) => isRecord(f) && isText(f.type) && isText(f.message)),
      'null or an object with type and message (texts)',
    );
    field('failuresSeen', absentOr(report.failuresSeen, isBoolean), 'true, false or null');
  }
  problems.throwIfAny();
  return raw as unknown as CarriedRecovery;
}
