import {
  ActivityFailure,
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  CancelledFailure,
  ContinueAsNew,
  TimeoutFailure,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  metricMeter,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { RetryState, TimeoutType, type TemporalFailure } from '@temporalio/common';
import { BATCH_STATUSES, countersAccountForAll, isFinishedBatchStatus } from '../anchor-api/batch-status.js';
import type { NotifyActivities } from '../activities/notify-activities.js';
import type { PollerRegistrationActivities } from '../activities/poller-registration-activities.js';
import type { RecoveryActivities } from '../activities/recovery-activities.js';
import type { RetryActivities } from '../activities/retry-activities.js';
import {
  BATCH_FAILED_WITHOUT_FAILED_SESSIONS,
  BATCH_NOT_SETTLED,
  batchSettled,
  batchStatusPollerWorkflowId,
  getRecoveryReport,
  isRecoveryWorkflowIdOf,
  notificationTaskQueue,
  RECOVERY_ENDED,
  pauseRecovery,
  recoveryWorkflowId,
  resumeRecovery,
  retryNow,
  updateRecoveryPolicy,
  watchBatch,
  type ListedSettle,
} from './definitions.js';
import {
  applyPolicyChange,
  InvalidInputError,
  parseRecoverBatchInput,
  requirePolicyChange,
  parseWorkflowInput,
  unitlessDurationProblems,
  type RecoverBatchInput,
  type RecoveryPolicy,
} from './input.js';
import {
  newReport,
  recordFailure,
  recordLastError,
  recordRound,
  recordSettledBatch,
  roundsDone,
  type BatchSnapshot,
  type RecoveryOutcome,
  type RecoveryReport,
  type RecoveryRound,
} from './report.js';
import {
  RECOVERY_MEMO_KEY,
  recoveryEnd,
  recoveryMemo,
  renderRecoveryDetails,
  type RecoveryEnd,
} from './recovery-details.js';
import {
  isRetrySendAnnouncement,
  LOST_AFTER_ANNOUNCING,
  LOST_BEFORE_ANNOUNCING,
  SENT_BEFORE_RESET,
  retrySnapshotOf,
  type RetrySnapshot,
  type SendRetryResult,
} from './retry-protocol.js';
import { WakeableWait } from './wakeable-wait.js';
import { carriedDate, parseCarriedRecovery } from './carried-recovery.js';
import { isBatchId } from './input-fields.js';
import {
  anchorBatchIdKey,
  recoveryDeadlineKey,
  recoveryOutcomeKey,
  recoveryRoundsKey,
  retriedSessionsKey,
  stillFailedSessionsKey,
} from './search-attributes.js';

/** What one run hands the next across continue-as-new: the report, and operator intent not yet acted on. */
export interface CarriedRecovery {
  report: RecoveryReport;
  /** A retryNow received while the batch was in flight, still to skip the next backoff. */
  retryNowRequested?: boolean;
  /** Calls of the next round not sent before the run continued as new in its wait to send again. */
  callsNotSent?: number;
  /** When that round began, in the run before: its first call not sent was its start. */
  roundStartedAt?: string;
  /**
   * The start of the wait for the poller the run before continued as new in, registered and not woken: the poller's
   * watch is that wait's, and the next run goes on with the same wait (its registration, and its unwatch at an end,
   * name it).
   */
  pollerWaitStartedAt?: string;
  /**
   * When the backoff the run before continued as new in was counted from (HOLDS_CONTINUE_AS_NEW_PATCH): this run's
   * backoff before the same round goes on from it, not from a settle the list may not date (then from this run's
   * start, a whole backoff again).
   */
  backoffStartedAt?: string;
  /**
   * The run before was begun by a reset and continued as new before its first call (RESET_RUN_RECONCILES_FIRST_PATCH):
   * this run, which no reset began, reconciles its first call in its stead. Only `true` counts.
   */
  resetToReconcile?: boolean;
}

/** Recoveries started before it keep the single-activity round they recorded (retryFailedSessions). */
const RETRY_PROTOCOL_PATCH = 'retry-protocol-v2';
const RETRY_ATTEMPT_TIMEOUT_MS = 60_000;
/** Recoveries from this change on wait for the task queue's batch status poller, when it runs. */
const WAIT_FOR_POLLER_PATCH = 'wait-for-batch-status-poller';
/**
 * A poller that lost its state (terminated and restarted) learns the batch again within this many poll maximum
 * intervals.
 */
const REWATCH_AFTER_POLL_INTERVALS = 15;
/**
 * Recoveries from this change on register again at a random point of the last quarter of that interval: those a
 * sweep started together drift apart instead of asking the poller all at once, every 30 min by default.
 */
const REWATCH_JITTER_FRACTION = 0.25;
/**
 * Recoveries from this change on count a round's backoff from when the batch settled, not from when the
 * settle was noticed: the time a poll interval or a list cycle took to see it is not added to the wait.
 */
const BACKOFF_FROM_SETTLE_PATCH = 'round-backoff-from-settle';
const PROGRESS_ONCE_PER_TASK_PATCH = 'progress-once-per-workflow-task';
/**
 * Recoveries from this change on take a settle from the poller's list (status and counters) without reading
 * the batch: the batch itself is read right before a retry call, as the round's snapshot, and when the recovery
 * ends with sessions still failing, so the report lists them.
 */
const SETTLE_FROM_LIST_PATCH = 'settle-from-poller-list';
/**
 * Recoveries from this change on record this one marker in their first workflow task, and it stands for every
 * patch above: a marker and its TemporalChangeVersion upsert are two history events, and a recovery used to
 * record six to eight of them. Histories from before it have no such marker and keep asking for each patch.
 */
export const ALL_PATCHES_MARKER = 'recovery-patches-through-settle-from-list';
/**
 * Recoveries from this change on register with the poller through a local activity, not a signal of their own:
 * the server answers a workflow's signal with one more workflow task, two per one-round recovery. This marker
 * stands for it and for every patch above; histories from before it keep sending the signal.
 */
export const LOCAL_REGISTRATION_MARKER = 'recovery-patches-through-local-registration';
/**
 * Recoveries from this change on write their memo as they begin a wait that may last (for the batch, a backoff, an
 * operator, a call's Retry-After) and as they end, not at the end of every workflow task: two memo writes fewer
 * per round, each a history event and a visibility update, and the memo no longer shows `retrying` while the
 * recovery waits for its batch after a round. This marker stands for it and for every patch above.
 */
export const MEMO_AT_WAITS_MARKER = 'recovery-patches-through-memo-at-waits';
/**
 * Recoveries from this change on wait for a wake or a timer through WakeableWait instead of condition(fn, timeout):
 * the same timer commands, but the wait now ends inside the handler that wakes it, where condition checked once the
 * activation's jobs had run, so a history from before it keeps condition. This marker stands for it and for every
 * patch above.
 */
export const WAKEABLE_WAITS_MARKER = 'recovery-patches-through-wakeable-waits';
/**
 * Recoveries from this change on re-register with the poller after a jittered wait (REWATCH_JITTER_FRACTION); runs
 * from before it keep the fixed wait to their end. A replay does not compare a timer's duration, so this is not for
 * a determinism error: a run does one thing from start to end. This marker stands for it and for every patch above.
 */
export const REWATCH_JITTER_MARKER = 'recovery-patches-through-rewatch-jitter';
/**
 * Recoveries from this change on send a retry call through announceAndSendRetry, which has the server record that the
 * request may leave before it does: a send activity lost to a timeout without that announcement in its last heartbeat
 * details provably sent nothing, and the call goes out again instead of being reconciled (docs/retry-protocol.md).
 * Runs from before it keep sendRetry, whose loss is always an unknown outcome. This marker stands for it and for every
 * patch above.
 */
export const ANNOUNCED_SEND_MARKER = 'recovery-patches-through-announced-send';
/**
 * Recoveries from this change on notify their end on the task queue of notifications (notificationTaskQueue), not
 * on the recoveries' own: the webhook is no Anchor call, and a unit of the Anchor budget (the queue's task rate) per
 * bad end would be taken from the retry calls just when many recoveries end together. A replay compares neither an
 * activity's task queue nor its timeouts, so this is not for a determinism error: a run does one thing from start to
 * end, and its history shows which. This marker stands for it and for every patch above.
 */
export const NOTIFY_QUEUE_MARKER = 'recovery-patches-through-notify-queue';
/**
 * Recoveries from this change on take a settle from the list only when it counts sessions: a batch listed pending or
 * processing with a total of 0 was just created (the contract lists its counters as 0 then), as the poller's list
 * rule has it. Before, `0 + 0 >= 0` made it a settle with nothing failed, and the recovery ended `clean` on a batch
 * that had not begun. Asked only when such a settle comes (the poller sends none; an operator's from the Web UI
 * could), so no other recovery records its marker; a history from before it, with no marker, keeps the settle.
 */
export const LISTED_SETTLE_COUNTS_SESSIONS_PATCH = 'listed-settle-counts-sessions';
/**
 * Recoveries from this change on take no settle from the list while it shows the batch `pending` or `processing`,
 * whatever its counters: they may lag an accepted retry call, still showing the failures it retries, and a round
 * would call again (isSettled, activities/batch-snapshot.ts). Such a wake is a bare one: the recovery reads its batch.
 * Asked only when such a settle comes (the poller sends none since this change; an older poller's could).
 */
export const LISTED_IN_FLIGHT_NOT_SETTLED_PATCH = 'listed-in-flight-status-not-settled';
/**
 * Rounds from this change on try at most MAX_CALLS_SENT_PER_ROUND calls, none past the deadline or after a cancel, and
 * wait out a later call's Retry-After (cancellably) before trying again: before, a retry endpoint that kept answering
 * 5xx while the batch showed no effect had the round send again every 5 s, past the deadline, through a cancel and
 * over a 429's Retry-After, until the history's limit ended the run with no report. A round whose calls are then
 * refused for good is recorded before the recovery stops. Asked only where the answer matters, so a round whose first
 * call settles records nothing.
 */
export const BOUNDED_SENDS_PATCH = 'retry-round-sends-bounded';
/**
 * Calls a round may try, each after the batch showed the ones sent before had no effect: a storm of 5xx answers about
 * 25 s long (a call and its reconcile every 5 s) still ends in one round.
 */
export const MAX_CALLS_SENT_PER_ROUND = 5;
/**
 * Runs from this change on continue as new in a wait that may last (re-registering with the poller, resending a call
 * that was not sent) once the history is due, not only between rounds: at a short poll interval or a long deadline
 * such a wait would otherwise reach the history's limit, where the server ends the run with no report. Asked only
 * when the history is due there.
 */
export const CONTINUE_AS_NEW_IN_WAITS_PATCH = 'recovery-continues-as-new-while-waiting';
/**
 * Rounds from this change on send no call once a cancel was asked, also when the worker takes the cancel in the same
 * workflow task as the answer of the round's status read: before, the read's answer let the round go on to its call,
 * and the call went out after the cancel. Asked only when a cancel was asked.
 */
export const CANCEL_BEFORE_CALL_PATCH = 'retry-round-cancel-before-call';
/**
 * Rounds from this change on check, once the status read before a call has answered, what the waits before it check:
 * before, the read's answer let the round go on to its call whatever had changed while the read was out, and the call
 * went out for a batch the operator had cancelled during the backoff (a cancelled batch is settled, its failures
 * left), past a maxRounds an operator had lowered to stop the recovery, or past the deadline (the answer's workflow
 * task ran late: workers restarting, a busy worker). Asked only when one of them holds.
 */
export const ROUND_RECHECKS_AFTER_READ_PATCH = 'retry-round-rechecks-after-read';
/**
 * Recoveries from this change on continue as new from a pause's hold and from a round's backoff, as they do from the
 * waits for the batch, once their history is due: each signal and update taken there adds to it (an update's result
 * carries the whole report), and a hold lasts up to the deadline, so an automation steering a recovery could grow it
 * to the server's limits, where the server ends the run with no report. Asked only once the history is due there.
 */
export const HOLDS_CONTINUE_AS_NEW_PATCH = 'recovery-continues-as-new-in-holds';
/**
 * Recoveries from this change on go on with a round the run before continued as new in (its call not sent, waiting
 * to go again) without waiting its backoff again: before, the new run waited it anew, a whole backoff when the list
 * gave no settle time, and a retryNow the operator had sent to skip it was spent. Asked only for such a round.
 */
export const CARRIED_ROUND_SKIPS_BACKOFF_PATCH = 'recovery-carried-round-skips-backoff';
/**
 * Rounds from this change on send no call again once the read that proved a call had no effect shows the batch
 * cancelled (by someone at Anchor, in the seconds the round waited to reconcile): before, a proof of no effect sent
 * the call again whatever the batch's status, and it went out for a cancelled batch. The round is recorded, and the
 * recovery's next read of the batch ends it `batch_cancelled`. Asked only for such a read.
 */
export const RESEND_HEEDS_BATCH_CANCEL_PATCH = 'retry-resend-heeds-batch-cancel';
/** A batch the API calls failed, with no failed session to retry, stops its recovery with a report; it ended `clean`. */
export const FAILED_BATCH_NOT_CLEAN_PATCH = 'recovery-failed-batch-not-clean';
/**
 * Recoveries from this change on register again at once when a policy update changes the poll interval while they
 * wait for the poller: the poller reads at the shortest interval among its watches, and kept the one the wait began
 * with for up to 15 poll intervals (the next re-registration). Asked only when such an update comes.
 */
export const POLL_CHANGE_REGISTERS_PATCH = 'recovery-poll-change-registers';
/**
 * Recoveries from this change on register again at once, too, when a policy update lowers only the poll's maximum
 * interval while they wait for the poller: the wait's next re-registration (for a poller that lost its watches) is 15
 * maximum intervals after the last, less up to a quarter, and kept the old maximum's timer: 11.25-15 h for an hourly
 * one lowered to 1 s. Asked only when such an update comes.
 */
export const LOWERED_MAXIMUM_REGISTERS_PATCH = 'recovery-lowered-poll-maximum-registers';
/**
 * Rounds from this change on heed the operator between their calls, as the backoff before a round does: a pause holds
 * the round's first call until a resume (the batch is read again then), and ends the sending of a round whose calls
 * had no effect, as a cancel does; a maxRounds lowered to the rounds done while a call that was not sent waits to go
 * again, or during the pause, sends it no more. And a recovery paused when its rounds are used up holds instead of
 * ending `exhausted`, so that a pause that ended the last round's sending can be given more rounds. Before, a call not
 * sent (a 429) went again after its Retry-After while the recovery was paused. Asked only when the recovery is paused
 * there, or its rounds used up.
 */
export const ROUND_HEEDS_OPERATOR_PATCH = 'retry-round-heeds-pause-and-max-rounds';
/**
 * Rounds from this change on take a retryNow sent while they run (their call out, or waiting to send it again): the
 * round is the retry it asked for. Before, it was kept, and skipped the next round's backoff too. Asked only when a
 * round ends with one.
 */
export const RETRY_NOW_TAKEN_BY_ROUND_PATCH = 'retry-now-taken-by-round';
/**
 * Rounds from this change on check again, after waiting to send a later call that was not sent (a 429 after a call
 * the batch showed had no effect), what they checked before the wait: the deadline, which the wait's task may pass
 * when no worker ran it in time, and the rounds, which an operator may have lowered to the rounds done meanwhile.
 * Before, the call went out regardless, past the deadline or beyond the rounds asked for. Asked only when either holds.
 */
export const RESEND_RECHECKS_AFTER_WAIT_PATCH = 'retry-resend-rechecks-after-wait';
/**
 * Runs from this change on end a wait for the poller as soon as signals or updates make the history due, and continue
 * as new with the same wait, as a hold or a backoff does. Before, such a wait checked the history only when it
 * registered again, every 15 poll maximums (up to 15 h): an automation that steered it (each policy update's result
 * holds the whole report) could grow its history to the server's limits, where the server ends the run with no report.
 * Asked only when the history is due during such a wait.
 */
export const POLLER_WAIT_WAKES_WHEN_DUE_PATCH = 'recovery-poller-wait-wakes-when-due';
/**
 * Recoveries from this change on refuse a start whose durations are strings of digits alone (`"deadline": "3600"`,
 * as the Web UI's start form takes them), failing at once as InvalidRecoveryInput naming each field
 * (unitlessDurationProblems). Before, ms() read them as milliseconds: a deadline of 3.6 s ended the recovery at once,
 * a round backoff of "30" waited 30 ms. Asked only for such an input.
 */
export const UNITLESS_DURATION_REFUSED_PATCH = 'recovery-unitless-duration-refused';
/**
 * Runs from this change on end a wait for the batch without a poller (one status read, whose retries poll) as soon as
 * signals or updates make the history due, cancel the read, and continue as new; the next run reads again. Before,
 * such a wait never checked its history: an automation steering a recovery whose batch stayed in flight for hours
 * could grow it to the server's limits, where the server ends the run with no report. Asked only when the history is
 * due during such a wait.
 */
export const READ_WAIT_WAKES_WHEN_DUE_PATCH = 'recovery-read-wait-wakes-when-due';
/**
 * Recoveries from this change on that end with a registration the poller has not answered with a wake (cancelled, at
 * the deadline or failed while the batch was in flight) tell the poller to drop the watch: before, it stayed until the
 * batch settled or left the list, and the poller read the list for it a cycle every poll interval meanwhile, for ever
 * for a batch stuck in `processing`. Asked only at an end with a registration sent and no wake since (also after a
 * registration that failed, when the recovery read its batch itself: the signal then finds no watch, and drops none).
 */
export const UNWATCH_AT_END_PATCH = 'recovery-unwatches-batch-at-end';
/**
 * Rounds from this change on show a pause taken while a call that was not sent waits out its Retry-After (or backoff)
 * at once, as a pause during a backoff shows: `paused`, no next retry, in the memo too; and a round whose first call
 * waited so holds at the wait's end without reading the batch first (the resume reads it). Before, they showed
 * `retrying` and when the call was to go until the wait ended, and until the read after it, though the pause held the
 * call. The wait itself goes on: the API's Retry-After is honoured whatever the operator does. Asked only when a pause
 * or a resume comes during such a wait, or the recovery is paused as it begins or ends.
 */
export const RESEND_WAIT_SHOWS_PAUSE_PATCH = 'round-resend-wait-shows-pause';
/**
 * Recoveries from this change on read their batch once when an operator's cancel ends them after a settle the poller's
 * list showed (counters, no sessions) with sessions failing, so the report lists them, as an exhausted end's does.
 * Before, it said `(not read: …)`. Asked only for such an end.
 */
export const CANCEL_READS_FAILING_PATCH = 'recovery-cancel-reads-failing-sessions';
/**
 * Recoveries from this change on read their batch once, as a cancel's does, when their deadline ends them after such a
 * settle with sessions failing: the end and its time are stored first, the read is the last Anchor call (a status read;
 * steering is refused once the end is set, so no retry call can follow), and a read that fails or finds the batch in
 * flight keeps the count. Before, the report said `(not read: …)`. Asked only for such an end.
 */
export const DEADLINE_READS_FAILING_PATCH = 'recovery-deadline-reads-failing-sessions';
/**
 * That read's whole budget (a cancel's or a deadline's), retries and time in the queue included: the recovery ends
 * promptly, and many that end at once take at most this long of the queue's Anchor budget (the rest end with the
 * counts). At a deadline, well within the 5 min the past-deadline gauge allows.
 */
const END_READ_TIMEOUT_MS = 10_000;
/**
 * Runs continued as new in their wait for the poller from this change on go on with the wait the run before registered
 * (CarriedRecovery.pollerWaitStartedAt), and one that ends before it registers again tells the poller to drop that
 * watch: before, the watch stayed until the batch settled, and the poller read the list for it meanwhile. Asked only at
 * such an end (a stop for an input this worker refuses included); a run that registers again first drops its watch
 * under UNWATCH_AT_END_PATCH, as any run does.
 */
export const UNWATCH_CARRIED_WATCH_PATCH = 'recovery-unwatches-carried-watch';
/**
 * Rounds from this change on wait before a reconciliation for what the request could still last when the call's
 * activity returned (requestMayLastMs, measured on the worker's monotonic clock) and RECONCILE_GRACE_MS, counted from
 * the result. Before, the wait ran to the request's start by the worker's wall clock (sentAt), plus its timeout and
 * the grace, by workflow time, which is the server's clock: a worker 5 s behind the server read the batch as the
 * request timed out, before an API that applies calls late had applied it, found no effect, and sent the call again,
 * which the API then applied twice. Asked only for an outcome unknown from an activity that measured it.
 */
export const RECONCILE_WAIT_ON_ONE_CLOCK_PATCH = 'round-reconcile-wait-on-one-clock';
/**
 * Waits from this change on whose registration the poller took, and whose registration sent again found the poller
 * stuck (its workflow tasks failing), keep that watch as the poller's: the recovery reads its batch itself for the rest
 * of the wait, and an end before a wake tells the poller to drop it (UNWATCH_AT_END_PATCH). Before, the recovery
 * forgot it, and the poller, once fixed, took up the registration its history held and read the list for the ended
 * recovery until the batch settled, for ever for a batch stuck in `processing`. Asked only when a registration sent
 * again is refused after one was taken.
 */
export const REFUSED_RESEND_KEEPS_WATCH_PATCH = 'recovery-refused-resend-keeps-watch';
/**
 * Runs that go on with the wait the run before continued as new in take a wake that came before that wait goes on (a
 * wake the poller sent as the run continued as new reaches the next run in its first workflow task, before its code
 * waits): it is that wait's. Before, the wait began by forgetting it, and registered again: the poller, which drops a
 * watch as it wakes it, noticed the settle once more a cycle later. Asked only when such a wake came.
 */
export const CARRIED_WAIT_TAKES_EARLY_WAKE_PATCH = 'recovery-carried-wait-takes-early-wake';
/**
 * A run begun by a reset of the recovery reconciles before the first call it would send past the reset point: the run
 * the reset ended may have sent one after that point, which the history the reset copied does not hold, and may still
 * have it out while the new run reads the batch (docs/retry-protocol.md, "Reset"). Before, the new run sent the call on
 * the read it had, and a call the run before had sent was applied twice. Asked only at the calls of runs begun by a
 * reset, or continued as new from one before its first call (any other run never records it, so a first reset copies
 * no marker): false in the history the reset copied, true from the reset point on. A reset of a reset run to a point
 * past that run's first call finds it true there, and reconciles no call of its own first.
 */
export const RESET_RUN_RECONCILES_FIRST_PATCH = 'recovery-reset-run-reconciles-first';
/**
 * A call answered with a redirect or a 101, which the API may have acted on, is reconciled; once the batch shows it had
 * no effect, the recovery stops with that answer instead of sending the call again for the same answer. Before, such an
 * answer stopped the recovery at once, with no round in its report, though the call may have been applied.
 */
export const PERMANENT_UNKNOWN_STOPS_PATCH = 'retry-round-stops-at-permanent-unknown';
/** Per attempt to register; after three failed attempts the recovery polls its batch itself. */
const REGISTRATION_ATTEMPT_TIMEOUT_MS = 10_000;

/*
 * Timeouts of the retry protocol (docs/retry-protocol.md). The call's activity waits at most 3 s for its
 * turn under the call budget and ends its HTTP request at least 2 s before its heartbeat window, so the
 * server never declares a call lost while its request can still go out; a reconciliation reads the batch
 * no sooner than RECONCILE_GRACE_MS after the request ended. The API applying a call later than that is
 * the window no client can close.
 */
const SEND_HEARTBEAT_TIMEOUT_MS = 20_000;
const SEND_TIMEOUT_MS = 30_000;
/**
 * An announced call's attempt: its announcement is recorded within the heartbeat timeout of the attempt's start, or
 * refused, and its request ends 18 s after the announcement was sent, so every request it lets out ends by 38 s. A
 * start-to-close past that never declares the attempt lost while its request may be in flight.
 */
const ANNOUNCED_SEND_TIMEOUT_MS = 45_000;
export const RECONCILE_GRACE_MS = 5_000;
/** A reconciliation may run past the deadline by this much: a call that was sent is always in the report. */
const RECONCILE_MIN_BUDGET_MS = 120_000;

function countRecovery(outcome: RecoveryOutcome | 'failed'): void {
  metricMeter.createCounter('anchor_recoveries', 'recoveries', 'Recoveries ended, by outcome').add(1, { outcome });
}

/** Thrown when the batch reaches the deadline while the workflow waits on an activity. */
class DeadlineReached extends Error {}

/**
 * Whether an activity failed because its time budget (the deadline) ran out. An activity still waiting
 * in the queue when it does times out as schedule-to-start: the server derives that limit from
 * schedule-to-close when none is set.
 */
function budgetRanOut(err: unknown): err is ActivityFailure {
  if (!(err instanceof ActivityFailure)) return false;
  if (err.retryState === RetryState.TIMEOUT) return true;
  const type = err.cause instanceof TimeoutFailure ? err.cause.timeoutType : undefined;
  return type === TimeoutType.SCHEDULE_TO_CLOSE || type === TimeoutType.SCHEDULE_TO_START;
}

/**
 * The poller's counters of a settled batch, or nothing usable: a `batchSettled` an operator sends from the Web UI
 * with another payload, or with a batch not settled, is taken as a bare wake, and the recovery reads its batch.
 */
function asListedSettle(value: unknown): ListedSettle | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { status, total, completed, failed, observedAt, settledAt } = value as Record<string, unknown>;
  const count = (n: unknown) => Number.isSafeInteger(n) && (n as number) >= 0;
  if (!(BATCH_STATUSES as readonly unknown[]).includes(status)) return undefined;
  if (!count(total) || !count(completed) || !count(failed) || typeof observedAt !== 'string') return undefined;
  if (settledAt !== undefined && typeof settledAt !== 'string') return undefined;
  const listed = { status, total, completed, failed, observedAt: observedAt.slice(0, 40) } as ListedSettle;
  // Histories from before the patch took a total of 0 for a settle (`0 + 0 >= 0`).
  const finished = isFinishedBatchStatus(listed.status);
  if (!finished && !countersAccountForAll(listed) && (listed.total > 0 || patched(LISTED_SETTLE_COUNTS_SESSIONS_PATCH)))
    return undefined;
  if (!finished && patched(LISTED_IN_FLIGHT_NOT_SETTLED_PATCH)) return undefined;
  // Rebuilt field by field: nothing else a sender put in the payload reaches the report.
  return settledAt === undefined ? listed : { ...listed, settledAt: settledAt.slice(0, 40) };
}

/**
 * A recovery refused for its input (typed into the Web UI) fails in its first workflow task, before it writes any
 * search attribute: without these, `RecoveryOutcome = "failed"` and `report --outcome failed` do not find it, nor
 * its batch id. Asked only for such input.
 */
const INVALID_INPUT_RECORDED_PATCH = 'recovery-invalid-input-recorded';

function recordInvalidInput(input: unknown): void {
  if (!patched(INVALID_INPUT_RECORDED_PATCH)) return;
  const batchId: unknown =
    typeof input === 'object' && input !== null ? (input as { batchId?: unknown }).batchId : null;
  upsertSearchAttributes([
    { key: recoveryOutcomeKey, value: 'failed' },
    ...(isBatchId(batchId) ? [{ key: anchorBatchIdKey, value: batchId }] : []),
  ]);
  countRecovery('failed');
}

/** Refuses steering once the end is decided, naming the end: the client tells it apart by its type. */
function recoveryEndedFailure(report: RecoveryReport): ApplicationFailure {
  const { failure } = report;
  const end = report.outcome ?? (failure ? `failed (${failure.type}): ${failure.message}` : 'failed');
  return ApplicationFailure.nonRetryable(`the recovery has already ended: ${end}`, RECOVERY_ENDED, end);
}

/** A settle as the poller's list showed it: settled by definition, with no sessions listed. */
function listedSnapshot(listed: ListedSettle): BatchSnapshot {
  return { ...listed, processing: 0, pending: 0, settled: true, percentage: null, retryCountTotal: null, failing: [] };
}

/** What operators filter recoveries on, as the report stands. */
function progressValues(report: RecoveryReport) {
  return {
    outcome: report.outcome ?? (report.failure ? 'failed' : 'running'),
    rounds: roundsDone(report),
    retried: report.totals.retriedSessions,
    stillFailed: report.totals.stillFailed,
  };
}

function progressAttributes(batchId: string, values: ReturnType<typeof progressValues>) {
  return [
    { key: anchorBatchIdKey, value: batchId },
    { key: recoveryOutcomeKey, value: values.outcome },
    { key: recoveryRoundsKey, value: values.rounds },
    { key: retriedSessionsKey, value: values.retried },
    { key: stillFailedSessionsKey, value: values.stillFailed },
  ];
}

/**
 * Tells the operators' webhook (when the worker has one) how the recovery ended; scheduled once per end, kept
 * through a cancel, and a failing webhook never changes the outcome.
 */
async function notifyRecoveryEndOf(end: RecoveryEnd, onNotificationQueue: boolean): Promise<void> {
  const { notifyRecoveryEnd } = proxyActivities<NotifyActivities>({
    startToCloseTimeout: '2m',
    heartbeatTimeout: '10s',
    retry: { initialInterval: '5s', backoffCoefficient: 2, maximumAttempts: 3 },
    summary: `notify: ${end.outcome}`,
    ...(onNotificationQueue && {
      taskQueue: notificationTaskQueue(workflowInfo().taskQueue),
      // Within the 5 min by which the past-deadline gauge lets a recovery outlive its deadline (its three attempts
      // could take 6 min 15 s). Past this, a queue no worker polls (workers of an older release only) ends the
      // wait with a logged failure, counted (countNotificationNotCompleted), and the recovery still ends.
      scheduleToCloseTimeout: '5m',
    }),
  });
  const { batchId, outcome } = end;
  try {
    const result = await CancellationScope.nonCancellable(() => notifyRecoveryEnd(end));
    log.info('Recovery end notified', { batchId, outcome, delivery: result.status });
  } catch (err) {
    log.warn('Recovery end notification failed', { batchId, outcome, error: String(err) });
    const { taskQueue } = workflowInfo();
    countNotificationNotCompleted(onNotificationQueue ? notificationTaskQueue(taskQueue) : taskQueue);
  }
}

/**
 * An end notification whose activity never completed: no worker took it (none polls its queue, or only workers of a
 * release without it) or every attempt crashed or timed out. The activity counts in anchor_notifications only the
 * status it returns, so without this such an end would be counted nowhere. Its own metric, not a status of that one:
 * a workflow's metrics carry other labels (workflowType, the recovery's taskQueue) than an activity's, and a Prometheus
 * registry takes one set of label names per metric name.
 */
function countNotificationNotCompleted(notificationQueue: string): void {
  metricMeter
    .createCounter(
      'anchor_notifications_not_completed',
      'notifications',
      'Recovery end notifications whose activity never completed: no worker took it, or every attempt failed',
    )
    .add(1, { notificationTaskQueue: notificationQueue });
}

/** The failure a stopped recovery ends with: its cut texts, and its report in the details for the client. */
function stoppedFailure(report: RecoveryReport, failure: { type: string; message: string }): ApplicationFailure {
  return ApplicationFailure.create({
    type: failure.type,
    message: `Recovery of batch ${report.batchId} stopped: ${failure.message}`,
    nonRetryable: true,
    details: [report],
  });
}

/**
 * A run continued as new whose input this worker refuses (a release that tightened a bound since the chain began)
 * stops as any other failure does: with the report it carried, its search attributes, memo and notification. Before,
 * it failed bare, and the chain's rounds were lost to `report` and to the filters. Asked only for such a run.
 */
const CONTINUED_INPUT_REFUSED_PATCH = 'recovery-continued-input-refused-with-report';

/** The wait for the poller the run before continued as new in, checked: the carried input may have been typed by hand. */
function carriedWaitStart(carried: CarriedRecovery | undefined): string | undefined {
  return typeof carried?.pollerWaitStartedAt === 'string' ? carried.pollerWaitStartedAt.slice(0, 40) : undefined;
}

/** Registration with the poller and its end: local activities, a few quick attempts. */
const pollerRegistration = proxyLocalActivities<PollerRegistrationActivities>({
  startToCloseTimeout: REGISTRATION_ATTEMPT_TIMEOUT_MS,
  retry: { initialInterval: '200ms', maximumAttempts: 3 },
});

/**
 * Tells the poller to drop a wait's watch. Kept through a cancel, and a failure changes no outcome: the watch then
 * stays until the batch settles, as before.
 */
function unwatchWithPoller(batchId: string, waitStartedAt: string): Promise<void> {
  const { taskQueue, workflowId } = workflowInfo();
  return CancellationScope.nonCancellable(() =>
    pollerRegistration.unwatchBatchWithPoller({ taskQueue, batchId, workflowId, waitStartedAt }),
  ).catch((err: unknown) => {
    log.warn('The poller could not be told to drop the watch', { batchId, error: String(err) });
  });
}

async function stopWithCarriedReport(carried: CarriedRecovery, refusal: unknown): Promise<never> {
  const { report } = carried;
  const type = refusal instanceof ApplicationFailure ? (refusal.type ?? 'unknown') : (refusal as Error).name;
  const message = refusal instanceof Error ? refusal.message : String(refusal);
  // Answered while the end notification is out (up to 5 min), as any other recovery's report is.
  setHandler(getRecoveryReport, () => report);
  report.phase = 'done';
  report.nextRetryAt = null;
  report.finishedAt = new Date().toISOString();
  recordFailure(report, type, `this worker refuses the input the recovery continued as new with: ${message}`);
  const failure = report.failure ?? { type, message };
  try {
    const deadlineAt = new Date(report.deadlineAt);
    // The carried report's batch id is the refused input's: typed by hand, it may be anything. Past the server's size
    // of a value, the server refused the upsert and terminated the run, which ended with no report.
    const attributes = progressAttributes(report.batchId, progressValues(report)).filter(
      ({ key }) => key !== anchorBatchIdKey || isBatchId(report.batchId),
    );
    upsertSearchAttributes([
      ...attributes,
      ...(Number.isNaN(deadlineAt.getTime()) ? [] : [{ key: recoveryDeadlineKey, value: deadlineAt }]),
    ]);
    upsertMemo({ [RECOVERY_MEMO_KEY]: recoveryMemo(report, new Date()) });
    setCurrentDetails(renderRecoveryDetails(report));
  } catch (publishFailure) {
    log.error('Recovery report could not be rendered', { batchId: report.batchId, error: String(publishFailure) });
  }
  countRecovery('failed');
  log.error('Recovery stopped', { batchId: report.batchId, ...failure });
  // The poller may still watch the wait the run before continued as new in (CarriedRecovery.pollerWaitStartedAt):
  // dropped first, as at any other end. The refused input does not name the batch; the report the run before carried
  // does, and the watch matched is only this workflow id's.
  const waitStartedAt = carriedWaitStart(carried);
  if (waitStartedAt !== undefined && typeof report.batchId === 'string' && patched(UNWATCH_CARRIED_WATCH_PATCH))
    await unwatchWithPoller(report.batchId, waitStartedAt);
  const end = recoveryEnd(report);
  if (end) await notifyRecoveryEndOf(end, true);
  throw stoppedFailure(report, failure);
}

/**
 * Recoveries from this change on check the state the run before handed them (CarriedRecovery) before reading any of
 * it, and fail at once when it cannot be read, as InvalidRecoveryInput naming each field (`carried.report.rounds:
 * expected …`): the Web UI's start form takes that second argument typed by hand, or copied from a continued run with
 * "start workflow like this one" and its batchId edited. Before, a report the run could not read (`{}`, a text, rounds
 * that are no list) threw a TypeError in every workflow task, before or after a refused input reached
 * stopWithCarriedReport, and the recovery stayed running with no report; a report of another batch was taken for this
 * one. Checked first, so a refused input's stop never reads a garbled report. Asked only for a state refused: a valid
 * one takes the same commands as before. A refused state that threw in the first workflow task left no completed task
 * to replay; one the code before went on with (another batch's report, say) replays down that path, as given.
 */
export const CARRIED_STATE_CHECKED_PATCH = 'recovery-carried-state-checked';

function checkedCarried(input: unknown, carried: unknown): CarriedRecovery | undefined {
  const inputBatchId = typeof input === 'object' && input !== null ? (input as { batchId?: unknown }).batchId : null;
  try {
    return parseWorkflowInput((raw) => parseCarriedRecovery(raw, inputBatchId), carried, 'InvalidRecoveryInput');
  } catch (err) {
    if (!patched(CARRIED_STATE_CHECKED_PATCH)) return carried as CarriedRecovery | undefined;
    recordInvalidInput(input);
    throw err;
  }
}

/**
 * Recoveries from this change on refuse to start under a workflow id other than the batch's recovery id
 * (isRecoveryWorkflowIdOf), failing at once as InvalidRecoveryInput naming `workflowId`, before any call to Anchor.
 * The Web UI's start form does not derive the id from the input: one kept as the form filled it, or mistyped, started
 * a recovery no sweep could see, and a sweep then started a second recovery of the same batch, whose retries went out
 * twice. The first run of a chain only: a continued run keeps the id its chain began with, accepted then or begun by
 * an earlier release. Asked only for an id refused: a recovery under its own id takes the same commands as before.
 */
export const OWN_WORKFLOW_ID_REQUIRED_PATCH = 'recovery-own-workflow-id-required';

/**
 * Recoveries from this change on refuse to start under the batch's recovery id with the batch id in upper case too,
 * as under any other id: only a release before wave 35 named a recovery so, and the chains it began continue as they
 * were. Before, a start under it (the Web UI's form, the batch id pasted in capitals) ran beside the batch's recovery
 * under the lower-case id, which the CLI, the library and the sweeps start: both saw the same settle and sent the same
 * retry call, and the batch's failed sessions were retried twice. Asked only for a start under that id.
 */
export const UPPER_CASE_WORKFLOW_ID_REFUSED_PATCH = 'recovery-upper-case-workflow-id-refused';

function roundBackoffMs(policy: RecoveryPolicy, round: number): number {
  const { initialInterval, backoffCoefficient, maximumInterval } = policy.roundBackoff;
  return Math.min(initialInterval * backoffCoefficient ** (round - 1), maximumInterval);
}

/**
 * Recovers a batch's failed sessions: waits until the batch settles, retries
 * its failed sessions with backoff, round after round within maxRounds and the
 * deadline, and records every round in the report it returns.
 */
export async function recoverBatch(
  input: RecoverBatchInput,
  carriedAsGiven?: CarriedRecovery,
): Promise<RecoveryReport> {
  const carried = checkedCarried(input, carriedAsGiven);
  let policy: RecoveryPolicy;
  try {
    policy = parseWorkflowInput(parseRecoverBatchInput, input, 'InvalidRecoveryInput');
  } catch (err) {
    if (carried?.report && patched(CONTINUED_INPUT_REFUSED_PATCH)) return await stopWithCarriedReport(carried, err);
    recordInvalidInput(input);
    throw err;
  }
  // A start's own input only: a continued run's is the policy its chain parsed, in numbers.
  const unitless = carried === undefined ? unitlessDurationProblems(input) : [];
  if (unitless.length > 0 && patched(UNITLESS_DURATION_REFUSED_PATCH)) {
    recordInvalidInput(input);
    throw ApplicationFailure.nonRetryable(new InvalidInputError(unitless).message, 'InvalidRecoveryInput', ...unitless);
  }
  const { batchId } = policy;
  // The deadline counts from the start of the whole chain, so continue-as-new does not extend it.
  const { startTime, workflowId, continuedFromExecutionRunId } = workflowInfo();
  const refusedId = () =>
    !isRecoveryWorkflowIdOf(workflowId, batchId) ||
    (workflowId !== recoveryWorkflowId(batchId.toLowerCase()) && patched(UPPER_CASE_WORKFLOW_ID_REFUSED_PATCH));
  if (continuedFromExecutionRunId === undefined && refusedId() && patched(OWN_WORKFLOW_ID_REQUIRED_PATCH)) {
    recordInvalidInput(input);
    throw ApplicationFailure.nonRetryable(
      `workflowId: expected "${recoveryWorkflowId(batchId.toLowerCase())}", the batch's recovery id (one recovery ` +
        `per batch: a sweep looks for a batch's recovery under that id only), got "${workflowId}"`,
      'InvalidRecoveryInput',
    );
  }
  const report =
    carried?.report ??
    newReport(batchId, workflowId, startTime, new Date(startTime.getTime() + policy.deadline), policy.maxRounds);
  const deadlineAt = Date.parse(report.deadlineAt);
  const remainingMs = () => deadlineAt - Date.now();
  // Asked once, newest first and before any other patch: a history from before a marker answers false for the
  // whole run, and a new recovery records only the newest.
  const notifiesOnOwnQueue = patched(NOTIFY_QUEUE_MARKER);
  const announcedSend = notifiesOnOwnQueue || patched(ANNOUNCED_SEND_MARKER);
  const rewatchJitter = announcedSend || patched(REWATCH_JITTER_MARKER);
  const wakeableWaits = rewatchJitter || patched(WAKEABLE_WAITS_MARKER);
  const memoAtWaits = wakeableWaits || patched(MEMO_AT_WAITS_MARKER);
  const registersLocally = memoAtWaits || patched(LOCAL_REGISTRATION_MARKER);
  const allPatchesApplied = registersLocally || patched(ALL_PATCHES_MARKER);
  const applied = (patchId: string) => allPatchesApplied || patched(patchId);
  const { runId, originalExecutionRunId } = workflowInfo();
  // A reset run keeps the original run's started event, and so its run id there (a server that sends none leaves it
  // empty). A replay tool runs a history under that id, so it cannot replay a reset run that reconciled first.
  const begunByReset = originalExecutionRunId !== '' && runId !== originalExecutionRunId;
  /**
   * The run's first call past the reset point is reconciled first (RESET_RUN_RECONCILES_FIRST_PATCH), in this run or,
   * when a reset run continued as new before it, in the next: that run was not begun by a reset, and the input says.
   * It records the marker too (it has no copied history), so the rollback runbook's query lists it.
   */
  let resetReconciled = !begunByReset && carried?.resetToReconcile !== true;
  /**
   * Recoveries from this change on write their search attributes and memo once per workflow task, after
   * its last change: one event each instead of one per change.
   */
  const progressOncePerTask = applied(PROGRESS_ONCE_PER_TASK_PATCH);
  // In every run of the chain: the worker's gauge counts recoveries still running past this.
  let deadlineToWrite = applied('recovery-deadline-attribute')
    ? [{ key: recoveryDeadlineKey, value: new Date(deadlineAt) }]
    : [];
  if (!progressOncePerTask && deadlineToWrite.length > 0) {
    upsertSearchAttributes(deadlineToWrite);
    deadlineToWrite = [];
  }

  const { watchBatchWithPoller } = pollerRegistration;
  const waits = new WakeableWait();
  /**
   * Until the predicate holds (true) or the timeout (false). Only the handlers below make a wait's predicate hold,
   * and each calls `waits.wake()`: a predicate that workflow code made hold would not end a wakeable wait.
   */
  const waitUntil = (predicate: () => boolean, timeoutMs: number, summary?: string): Promise<boolean> =>
    wakeableWaits
      ? waits.until(predicate, timeoutMs, summary)
      : summary === undefined
        ? condition(predicate, timeoutMs)
        : condition(predicate, timeoutMs, { summary });
  let retryNowRequested = carried?.retryNowRequested ?? false;
  let carriedCallsNotSent = carried?.callsNotSent ?? 0;
  // Cut as a wait's start is: a text typed by hand into the carried state is taken at any length. A null stays null,
  // which goes on with the round as before.
  let carriedRoundStartedAt =
    typeof carried?.roundStartedAt === 'string' ? carried.roundStartedAt.slice(0, 40) : carried?.roundStartedAt;
  let carriedBackoffStartedAt = carried?.backoffStartedAt;
  let policyChanged = false;
  let settleNoticed = false;
  let listedSettle: ListedSettle | undefined;
  /** The last settle recorded came from the poller's list: the report does not list the failing sessions. */
  let settleFromList = false;
  /** The recovery waits for the poller, which reads at the interval it registered. */
  let waitingForPoller = false;
  /**
   * A policy update during the wait changed that interval (the poller is to be told), or lowered the maximum (the
   * wait's re-registration is to come sooner: a registration sent again, checked as one).
   */
  let pollChangeToRegister: false | 'interval' | 'maximum' = false;
  /**
   * The start of the wait the poller may still watch: registered (or its registration out), not woken since; at first,
   * the one the run before continued as new in (checked: the carried input may have been typed by hand).
   */
  let unwokenWaitStartedAt = carriedWaitStart(carried);
  /** The poller's watch is that carried wait's: this run has not registered since, nor been woken. */
  let watchIsCarried = unwokenWaitStartedAt !== undefined;
  /** The run's first wait for the poller goes on with that carried wait: a wake before it is the carried wait's. */
  let carriedWaitToGoOn = watchIsCarried;
  /** When the call a round waits to send again (it was not sent) goes; null unless a round waits so. */
  let resendAt: string | null = null;
  setHandler(getRecoveryReport, () => report);
  setHandler(batchSettled, (listed) => {
    // The poller drops a watch as it wakes it.
    unwokenWaitStartedAt = undefined;
    watchIsCarried = false;
    settleNoticed = true;
    listedSettle = asListedSettle(listed);
    waits.wake();
  });
  /**
   * Once the end is decided the recovery only tells the webhook, which can take minutes: steering then would change
   * the report it returns (a pause, more rounds) without changing what it did. Only the report the workflow returns
   * differs, which a replay does not compare.
   */
  const ended = () => report.phase === 'done';
  setHandler(retryNow, () => {
    if (ended()) return;
    retryNowRequested = true;
    waits.wake();
  });
  setHandler(pauseRecovery, () => {
    if (ended()) return;
    report.paused = true;
    if (resendAt !== null && patched(RESEND_WAIT_SHOWS_PAUSE_PATCH)) showPauseInResendWait();
    waits.wake();
  });
  setHandler(resumeRecovery, () => {
    if (ended()) return;
    report.paused = false;
    if (resendAt !== null && patched(RESEND_WAIT_SHOWS_PAUSE_PATCH)) showPauseInResendWait();
    waits.wake();
  });
  setHandler(
    updateRecoveryPolicy,
    (change) => {
      const { initialInterval: registeredIntervalMs, maximumInterval: maximumBeforeMs } = policy.poll;
      policy = applyPolicyChange(policy, change);
      report.maxRounds = policy.maxRounds;
      policyChanged = true;
      // Runs that register by signal keep their interval: the signal carries no wait to keep the poller's cycle for.
      if (registersLocally && waitingForPoller) {
        if (policy.poll.initialInterval !== registeredIntervalMs)
          pollChangeToRegister = patched(POLL_CHANGE_REGISTERS_PATCH) && 'interval';
        // A new interval still to be sent is sent as such.
        else if (policy.poll.maximumInterval < maximumBeforeMs && !pollChangeToRegister)
          pollChangeToRegister = patched(LOWERED_MAXIMUM_REGISTERS_PATCH) && 'maximum';
      }
      waits.wake();
      return report;
    },
    {
      // Validators do not run on replay: a change the recovery took before this check still replays.
      validator: (change) => {
        if (ended()) throw recoveryEndedFailure(report);
        requirePolicyChange(change);
        const unitlessChange = unitlessDurationProblems(change);
        if (unitlessChange.length > 0) throw new InvalidInputError(unitlessChange, 'policy change');
        applyPolicyChange(policy, change);
      },
    },
  );

  let published = '';
  let memoPublished = '';
  let memoFlushPending = false;
  /** The memo is for reads when no worker answers: written after the last change of a workflow task, or at rest. */
  const storeMemo = () => {
    memoFlushPending = false;
    const memo = recoveryMemo(report, new Date());
    const memoKey = JSON.stringify(memo.report);
    if (memoKey === memoPublished) return;
    memoPublished = memoKey;
    upsertMemo({ [RECOVERY_MEMO_KEY]: memo });
  };
  let progressFlushPending = false;
  /** Resolved once per run: a flush queued on it costs one promise, not two (each promise costs a stack trace). */
  const resolvedPromise = Promise.resolve();
  /** Search attributes then memo, as they stand at the end of the workflow task. */
  const flushProgress = () => {
    progressFlushPending = false;
    storeSearchAttributes();
    if (!memoAtWaits) storeMemo();
  };
  /** At rest: the recovery begins a wait that may last, or has ended (memoAtWaits). Written only when it changed. */
  const storeMemoAtRest = () => {
    if (memoAtWaits) storeMemo();
  };
  /** The memo as it stands at the end of the workflow task: a pause and a resume in one task make no write. */
  const storeMemoAtTaskEnd = () => {
    if (memoFlushPending) return;
    memoFlushPending = true;
    void resolvedPromise.then(storeMemo);
  };
  const publishProgress = () => {
    if (progressOncePerTask) {
      if (!progressFlushPending) {
        progressFlushPending = true;
        // A microtask runs before the workflow task completes: several changes in one task make one event.
        void resolvedPromise.then(flushProgress);
      }
    } else {
      if (applied('recovery-memo')) storeMemoAtTaskEnd();
      storeSearchAttributes();
    }
    // Shown by the Web UI while a worker answers; the memo is for when none does. Rendered last: the
    // search attributes are what operators filter on, and are written even when the report cannot be rendered.
    setCurrentDetails(renderRecoveryDetails(report));
  };
  const storeSearchAttributes = () => {
    const values = progressValues(report);
    // Each upsert is a history event: only write when something changed.
    if (JSON.stringify(values) !== published) {
      published = JSON.stringify(values);
      // The deadline with the run's first write, when it was not written on its own.
      upsertSearchAttributes([...progressAttributes(batchId, values), ...deadlineToWrite]);
      deadlineToWrite = [];
    }
  };

  /** A round's call that was not sent waits to go again: paused while a pause holds it, as a held backoff shows. */
  const showResendWait = () => {
    report.phase = report.paused ? 'paused' : 'retrying';
    report.nextRetryAt = report.paused ? null : resendAt;
  };
  /**
   * A pause or a resume during that wait, shown at once: in the query, the Web UI's details and the memo. Only under
   * RESEND_WAIT_SHOWS_PAUSE_PATCH: a run from before it kept its report unchanged here, and its later memo writes,
   * skipped when the memo is unchanged, must be decided on the same report.
   */
  const showPauseInResendWait = () => {
    showResendWait();
    setCurrentDetails(renderRecoveryDetails(report));
    storeMemoAtTaskEnd();
  };
  /** Begins the wait before a round's call that was not sent goes again, in `waitMs`; the memo is at rest. */
  const beginResendWait = (waitMs: number) => {
    resendAt = new Date(Date.now() + waitMs).toISOString();
    report.nextRetryAt = resendAt;
    // Paused while the call was out: held from the wait's start.
    if (report.paused && patched(RESEND_WAIT_SHOWS_PAUSE_PATCH)) showResendWait();
    storeMemoAtRest();
  };

  const untilDeadline = async <T>(activity: () => Promise<T>): Promise<T> => {
    try {
      return await activity();
    } catch (err) {
      if (budgetRanOut(err)) {
        // Keep why the time ran out: hours of 5xx answers are not a batch that never settled.
        // A schedule-to-close timeout carries the last attempt's failure only in its raw form.
        const cause = err.cause as TemporalFailure | undefined;
        const last = cause instanceof TimeoutFailure ? cause.failure?.cause : cause?.failure;
        const type = last?.applicationFailureInfo?.type;
        if (last && type !== BATCH_NOT_SETTLED) {
          recordLastError(report, type ?? 'unknown', last.message ?? '', new Date());
        }
        throw new DeadlineReached();
      }
      throw err;
    }
  };

  const historyDue = () => {
    const info = workflowInfo();
    return info.historyLength >= policy.continueAsNewAfterEvents || info.continueAsNewSuggested;
  };
  /** Hands the report and operator intent to a new run, once every handler has finished. */
  const continueAsNewNow = async (
    next: Pick<CarriedRecovery, 'callsNotSent' | 'roundStartedAt' | 'pollerWaitStartedAt' | 'backoffStartedAt'> = {},
  ): Promise<never> => {
    await condition(allHandlersFinished);
    report.continuedAsNew += 1;
    const resetToReconcile = resetReconciled ? {} : { resetToReconcile: true };
    return await continueAsNew<typeof recoverBatch>(policy, {
      report,
      retryNowRequested,
      ...resetToReconcile,
      ...next,
    });
  };
  /**
   * Between two steps of a wait that may last: whether to continue as new. A check, not an await: a step that does
   * not continue as new must issue its commands in the same microtask as before, or older histories would not replay.
   */
  const dueWhileWaiting = () => historyDue() && patched(CONTINUE_AS_NEW_IN_WAITS_PATCH);
  /** Whether signals and updates made the history due during a wait for the poller (POLLER_WAIT_WAKES_WHEN_DUE_PATCH). */
  const dueInPollerWait = () => historyDue() && patched(POLLER_WAIT_WAKES_WHEN_DUE_PATCH);

  /**
   * Leaves the polling to the task queue's batch status poller, which reads the list endpoint for
   * every waiting recovery at once and wakes this one when its batch has settled. Returns what the
   * list showed of the settle, when the wake carried it; returns at once when no poller runs: the
   * recovery then polls its batch on its own.
   */
  const waitForPoller = async (): Promise<ListedSettle | undefined> => {
    const { taskQueue } = workflowInfo();
    let request = { batchId, workflowId, pollIntervalMs: policy.poll.initialInterval };
    // The same for every registration of this wait: the poller keeps the cycle it may wake the recovery from. The
    // wait the run before continued as new in goes on here: nothing was sent since, and its watch is the poller's.
    const waitStartedAt = (watchIsCarried && unwokenWaitStartedAt) || new Date().toISOString();
    let resent = false;
    /** The poller took a registration of this wait: it holds the watch in its history, even once found stuck. */
    let taken = false;
    const goesOnWithCarried = carriedWaitToGoOn;
    carriedWaitToGoOn = false;
    /** Whether the poller took the registration; false when none runs or it cannot be reached. */
    const register = async (): Promise<boolean> => {
      if (!registersLocally) {
        await getExternalWorkflowHandle(batchStatusPollerWorkflowId(taskQueue)).signal(watchBatch, request);
        return true;
      }
      // A new interval is sent as a first registration is: a re-sent one is skipped while the poller watches.
      const pollChanged = pollChangeToRegister === 'interval';
      pollChangeToRegister = false;
      if (pollChanged) request = { ...request, pollIntervalMs: policy.poll.initialInterval };
      // Before the answer: a cancel that comes while the registration is out may leave it taken.
      unwokenWaitStartedAt = waitStartedAt;
      watchIsCarried = false;
      const registered = await watchBatchWithPoller({
        ...request,
        taskQueue,
        waitStartedAt,
        resent: resent && !pollChanged,
      });
      resent = true;
      if (registered) taken = true;
      else if (!(taken && patched(REFUSED_RESEND_KEEPS_WATCH_PATCH))) unwokenWaitStartedAt = undefined;
      return registered;
    };
    // A wake taken before this wait went on (the run's first workflow task) woke the carried wait.
    if (!(goesOnWithCarried && settleNoticed && patched(CARRIED_WAIT_TAKES_EARLY_WAKE_PATCH))) {
      settleNoticed = false;
      listedSettle = undefined;
    }
    waitingForPoller = true;
    try {
      while (!settleNoticed) {
        // A wait that ended at the deadline registers no more (before the memo at rest, it registered once more).
        if (memoAtWaits && remainingMs() <= 0) return undefined;
        // The next run goes on with this wait when the poller has its registration.
        if (dueWhileWaiting())
          await continueAsNewNow(unwokenWaitStartedAt === waitStartedAt ? { pollerWaitStartedAt: waitStartedAt } : {});
        try {
          if (!(await register())) return undefined;
        } catch (err) {
          if (isCancellation(err)) throw err;
          return undefined;
        }
        // A new interval that came while the registration was out is told at once; a lowered maximum needs no telling,
        // as the timer below is set from it.
        if (pollChangeToRegister === 'interval') continue;
        pollChangeToRegister = false;
        const rewatchMs = REWATCH_AFTER_POLL_INTERVALS * policy.poll.maximumInterval;
        // Math.random is the workflow's seeded generator: a replay draws the same wait.
        const jitterMs = rewatchJitter ? Math.floor(Math.random() * REWATCH_JITTER_FRACTION * rewatchMs) : 0;
        const waitMs = Math.min(remainingMs(), rewatchMs - jitterMs);
        if (waitMs <= 0) return undefined;
        await waitUntil(() => settleNoticed || pollChangeToRegister !== false || dueInPollerWait(), waitMs);
      }
      return listedSettle;
    } finally {
      waitingForPoller = false;
      pollChangeToRegister = false;
    }
  };

  /** Reads the batch until it has settled; the poll schedule is the activity's retry policy (see awaitBatchSettled). */
  const readSettledBatch = (): Promise<BatchSnapshot> => {
    const { awaitBatchSettled } = proxyActivities<RecoveryActivities>({
      startToCloseTimeout: '1m',
      scheduleToCloseTimeout: Math.max(1, remainingMs()),
      retry: policy.poll,
      summary: 'status read',
    });
    return untilDeadline(() => awaitBatchSettled(batchId));
  };

  /** The settled batch, and whether it is the poller's list that showed it (counters, no sessions). */
  const waitForSettledBatch = async (): Promise<{ snapshot: BatchSnapshot; fromList: boolean }> => {
    report.phase = 'waiting_for_batch';
    report.nextRetryAt = null;
    // A round that ran past the deadline (its call was out) ends the recovery here, not with a last read's race.
    if (remainingMs() <= 0 && applied(RETRY_PROTOCOL_PATCH)) throw new DeadlineReached();
    storeMemoAtRest();
    if (applied(WAIT_FOR_POLLER_PATCH)) {
      const listed = await waitForPoller();
      if (listed && applied(SETTLE_FROM_LIST_PATCH)) return { snapshot: listedSnapshot(listed), fromList: true };
    }
    return { snapshot: await readSettledBatchUnlessDue(), fromList: false };
  };

  /**
   * readSettledBatch, as the wait without a poller: the run continues as new once signals or updates make its history
   * due (READ_WAIT_WAKES_WHEN_DUE_PATCH), cancelling the read, which the next run begins again. Its polls are the
   * read's retries, which add no event.
   */
  const readSettledBatchUnlessDue = async (): Promise<BatchSnapshot> => {
    const scope = new CancellationScope();
    let outcome: { snapshot: BatchSnapshot } | { due: true };
    try {
      outcome = await scope.run(() =>
        Promise.race([
          readSettledBatch().then((snapshot) => ({ snapshot })),
          condition(() => historyDue() && patched(READ_WAIT_WAKES_WHEN_DUE_PATCH)).then(() => ({ due: true as const })),
        ]),
      );
    } finally {
      // The one left: the wait for the history, or the read.
      scope.cancel();
    }
    if ('due' in outcome) return await continueAsNewNow();
    return outcome.snapshot;
  };

  /** Whether a hold or a backoff continues as new: its history is due (HOLDS_CONTINUE_AS_NEW_PATCH). */
  const dueInHold = () => historyDue() && patched(HOLDS_CONTINUE_AS_NEW_PATCH);

  /**
   * Holds the recovery until an operator resumes it; the deadline ends the hold, and the recovery. A hold whose history
   * comes due continues as new, handing on `next`: the new run holds again where this one held.
   */
  const holdWhilePaused = async (round: number, next: Parameters<typeof continueAsNewNow>[0] = {}): Promise<void> => {
    report.phase = 'paused';
    report.nextRetryAt = null;
    publishProgress();
    storeMemoAtRest();
    const summary = `paused before round ${round}`;
    const held = () => !report.paused || dueInHold();
    if (!(await waitUntil(held, Math.max(1, remainingMs()), summary))) throw new DeadlineReached();
    // Paused again after a resume woke the hold (both in one workflow task): back to the caller, as the releases
    // before the hold's continue-as-new did (a round's wait holds again; the hold after the last round ends the
    // recovery exhausted). Continuing as new there, its history not due, was a command those releases never sent.
    if (report.paused && dueInHold()) await continueAsNewNow(next);
  };

  /**
   * Waits the round backoff; operators can skip it (retryNow), hold it (pause) or change it (policy
   * update). A retryNow sent earlier (while the batch was in flight) skips this wait too.
   */
  const waitBeforeRetry = async (round: number, settled: BatchSnapshot): Promise<void> => {
    const carriedStart = Date.parse(carriedBackoffStartedAt ?? '');
    carriedBackoffStartedAt = undefined;
    const waitStartedAt = Number.isNaN(carriedStart) ? backoffStart(settled) : carriedStart;
    const goesOn = { backoffStartedAt: carriedDate(waitStartedAt) };
    for (;;) {
      policyChanged = false;
      // A policy change may have used up the rounds: the caller ends the recovery.
      if (roundsDone(report) >= policy.maxRounds) return;
      if (report.paused) {
        await holdWhilePaused(round, goesOn);
        continue;
      }
      if (dueInHold()) await continueAsNewNow(goesOn);
      const retryAt = waitStartedAt + roundBackoffMs(policy, round);
      report.phase = 'backing_off';
      report.nextRetryAt = new Date(retryAt).toISOString();
      publishProgress();
      const waitMs = Math.min(retryAt, deadlineAt) - Date.now();
      if (waitMs > 0) {
        storeMemoAtRest();
        const woken = await waitUntil(
          () => retryNowRequested || report.paused || policyChanged || dueInHold(),
          waitMs,
          `backoff before round ${round}`,
        );
        if (report.paused || (policyChanged && !retryNowRequested)) continue;
        // Woken by what no longer holds (a pause and a resume in one workflow task): the backoff is not over.
        if (woken && !retryNowRequested) continue;
      }
      if (!retryNowRequested && retryAt > deadlineAt) throw new DeadlineReached();
      retryNowRequested = false;
      return;
    }
  };

  /**
   * The settle as the API dates it, bounded by what the workflow knows: not before the last retry call
   * (an API that kept the first completion time would otherwise skip every later backoff) and not after now.
   */
  const backoffStart = (settled: BatchSnapshot): number => {
    const now = Date.now();
    if (!applied(BACKOFF_FROM_SETTLE_PATCH)) return now;
    const settledAt = Date.parse(settled.settledAt ?? '');
    if (Number.isNaN(settledAt)) return now;
    const lastCallAt = Date.parse(report.rounds.at(-1)?.startedAt ?? '');
    return Math.min(now, Number.isNaN(lastCallAt) ? settledAt : Math.max(settledAt, lastCallAt));
  };

  /** The round of recoveries started before the retry protocol: one activity that reconciles itself. */
  const legacyRetryRound = async (before: BatchSnapshot): Promise<void> => {
    const round = roundsDone(report) + 1;
    report.phase = 'retrying';
    report.nextRetryAt = null;
    const startedAt = new Date().toISOString();
    // Transient API failures back off from the poll interval; the deadline bounds them, but never
    // below one attempt's time, so a call that started before the deadline is not cut off mid-flight.
    const { retryFailedSessions } = proxyActivities<RecoveryActivities>({
      startToCloseTimeout: RETRY_ATTEMPT_TIMEOUT_MS,
      heartbeatTimeout: '10s',
      scheduleToCloseTimeout: Math.max(RETRY_ATTEMPT_TIMEOUT_MS, remainingMs()),
      retry: {
        initialInterval: policy.poll.initialInterval,
        backoffCoefficient: 2,
        maximumInterval: policy.poll.maximumInterval,
      },
    });
    // A cancel waits for the call in flight, so a retry that was sent is always in the report.
    const result = await CancellationScope.nonCancellable(() =>
      untilDeadline(() =>
        retryFailedSessions({
          batchId,
          maxRetries: policy.maxRetries,
          retryFailedOnly: policy.retryFailedOnly,
          before: { failed: before.failed, retryCountTotal: before.retryCountTotal },
        }),
      ),
    );
    recordRound(report, {
      round,
      startedAt,
      ...result,
      failedBefore: before.failed,
      failedAfter: null,
      recovered: null,
    });
    log.info('Retry round sent', {
      batchId,
      round,
      retriedSessions: result.retriedSessions,
      reconciled: result.reconciled,
    });
    publishProgress();
  };

  /** Reads of the batch inside a round are safe to repeat; the deadline bounds them. */
  const readActivity = (summary: string, minimumBudgetMs = 1) =>
    proxyActivities<RetryActivities>({
      startToCloseTimeout: '1m',
      scheduleToCloseTimeout: Math.max(minimumBudgetMs, remainingMs()),
      retry: policy.poll,
      summary,
    });

  /** One retry call, never retried by the server: the workflow decides what its outcome calls for. */
  const sendOnce = async (round: number): Promise<SendRetryResult> => {
    const { sendRetry, announceAndSendRetry } = proxyActivities<RetryActivities>({
      startToCloseTimeout: announcedSend ? ANNOUNCED_SEND_TIMEOUT_MS : SEND_TIMEOUT_MS,
      heartbeatTimeout: SEND_HEARTBEAT_TIMEOUT_MS,
      retry: { maximumAttempts: 1 },
      summary: `retry round ${round}`,
    });
    const input = {
      batchId,
      maxRetries: policy.maxRetries,
      retryFailedOnly: policy.retryFailedOnly,
      scheduledByRunId: runId,
    };
    try {
      return await (announcedSend ? announceAndSendRetry(input) : sendRetry(input));
    } catch (err) {
      // The API refused the call for good (a wrong key, an unknown batch): nothing was applied.
      if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && err.cause.nonRetryable)
        throw err;
      const cause = err instanceof ActivityFailure ? err.cause : err;
      if (announcedSend) {
        const notSent = (errorType: string, reason: string) =>
          ({ kind: 'not_sent', errorType, reason, retryAfterMs: null }) as const;
        // Lost before the server recorded the announcement: the request never left the worker.
        if (cause instanceof TimeoutFailure && !isRetrySendAnnouncement(cause.lastHeartbeatDetails))
          return notSent('worker_lost', `${LOST_BEFORE_ANNOUNCING} (${cause.message})`);
        // A worker of a release before the announced send took the task, and ran nothing.
        if (cause instanceof ApplicationFailure && cause.type === 'NotFoundError')
          return notSent('activity_not_registered', cause.message);
      }
      // The worker was lost mid-call (a timeout), or a failure the activity did not classify: it may have gone out.
      const reason = (cause as Error | undefined)?.message ?? String(err);
      if (!(cause instanceof TimeoutFailure))
        return { kind: 'unknown', errorType: (cause as Error | undefined)?.name ?? 'unknown', reason };
      return {
        kind: 'unknown',
        errorType: 'worker_lost',
        reason: announcedSend ? `${LOST_AFTER_ANNOUNCING} (${reason})` : reason,
      };
    }
  };

  /**
   * The call the run a reset ended may have sent past the reset point: an outcome unknown, whose request may last as
   * long as an attempt's heartbeat window (the reset does not stop that run's attempt), and which the round reconciles
   * before it sends.
   */
  const callBeforeReset = (): SendRetryResult => {
    resetReconciled = true;
    return {
      kind: 'unknown',
      errorType: 'reset',
      reason: SENT_BEFORE_RESET,
      requestMayLastMs: SEND_HEARTBEAT_TIMEOUT_MS,
    };
  };

  /** The wait before sending again the n-th call in a row that was not sent, when the API gave no Retry-After. */
  const notSentBackoffMs = (n: number) =>
    Math.min(policy.poll.initialInterval * 2 ** (n - 1), policy.poll.maximumInterval);

  /**
   * Sends the round's call and settles what it did. A call whose outcome is unknown is reconciled
   * against `first`, taken right before it; only a batch that proves the call had no effect gets
   * another, and one not sent goes again after its Retry-After: at most MAX_CALLS_SENT_PER_ROUND tries in all
   * (BOUNDED_SENDS_PATCH). Returns the round, or the failure of a first call that provably was not sent. `outer` is the
   * scope around the round's non-cancellable one: a cancel of it ends the round between two calls.
   */
  const callUntilKnown = async (
    round: number,
    first: RetrySnapshot,
    startedAt: string,
    callsNotSent: number,
    outer: CancellationScope,
  ): Promise<RecoveryRound | Extract<SendRetryResult, { kind: 'not_sent' }>> => {
    let before = first;
    let callsSent = 0;
    /** Calls not sent after the round's first went out. */
    let notSentLater = 0;
    let lost = '';
    const facts = (rest: Pick<RecoveryRound, 'retriedSessions' | 'apiStatus' | 'apiMessage' | 'reconciled'>) => ({
      round,
      startedAt,
      ...rest,
      failedBefore: before.failed,
      failedAfter: null,
      recovered: null,
      callsSent,
      callsNotSent: callsNotSent + notSentLater,
    });
    /** Why the round tries no further call that would go out after `waitMs`; undefined while it may. */
    const stopReason = (waitMs: number): { why: string; atDeadline: boolean } | undefined => {
      if (callsSent + notSentLater >= MAX_CALLS_SENT_PER_ROUND)
        return { why: `a round tries at most ${MAX_CALLS_SENT_PER_ROUND} calls`, atDeadline: false };
      if (remainingMs() <= waitMs)
        return { why: waitMs === 0 ? 'the deadline has passed' : 'the deadline comes first', atDeadline: true };
      if (outer.consideredCancelled) return { why: 'the recovery was cancelled', atDeadline: false };
      if (report.paused && patched(ROUND_HEEDS_OPERATOR_PATCH))
        return { why: 'the recovery was paused', atDeadline: false };
      return undefined;
    };
    /** The round as it stands when it sends no more: every call it sent, the batch showed, had no effect. */
    const withoutEffect = (why: string): RecoveryRound => ({
      ...facts({ retriedSessions: 0, apiStatus: null, apiMessage: lost, reconciled: true }),
      reconcileEffect: 'no_effect',
      reconcileReason: `the batch showed no effect of the round's ${callsSent === 1 ? 'call' : `${callsSent} calls`}; ${why}`,
    });
    for (;;) {
      let result: SendRetryResult;
      try {
        result =
          !resetReconciled && patched(RESET_RUN_RECONCILES_FIRST_PATCH) ? callBeforeReset() : await sendOnce(round);
      } catch (err) {
        // Refused for good after calls went out: the round is in the report the recovery stops with.
        if (callsSent > 0 && patched(BOUNDED_SENDS_PATCH)) {
          const refusal = err instanceof ActivityFailure ? (err.cause?.message ?? err.message) : String(err);
          recordRound(report, withoutEffect(`the next was refused for good (${refusal})`));
        }
        throw err;
      }
      if (result.kind === 'not_sent' && callsSent === 0) return result;
      if (result.kind === 'not_sent' && patched(BOUNDED_SENDS_PATCH)) {
        notSentLater += 1;
        recordLastError(report, result.errorType, result.reason, new Date());
        const waitMs = result.retryAfterMs ?? notSentBackoffMs(notSentLater);
        const stop = stopReason(waitMs);
        const notSent = `the next was not sent (${result.errorType})`;
        if (stop?.atDeadline) {
          // Its Retry-After runs past the deadline: no later round could send before it either.
          recordRound(report, withoutEffect(`${notSent}, and ${stop.why}`));
          publishProgress();
          throw new DeadlineReached();
        }
        if (stop !== undefined) return withoutEffect(`${notSent}, and ${stop.why}`);
        log.info('Retry call not sent; sending it again', { batchId, round, errorType: result.errorType, waitMs });
        beginResendWait(waitMs);
        let waited: boolean;
        try {
          // Nothing is out while it waits: the wait is the outer scope's, so a cancel ends it.
          waited = await outer
            .run(() => sleep(waitMs, { summary: `wait before resending round ${round}` }))
            .then(
              () => true,
              (err: unknown) => {
                if (isCancellation(err)) return false;
                throw err;
              },
            );
        } finally {
          resendAt = null;
        }
        report.nextRetryAt = null;
        if (!waited) return withoutEffect(`${notSent}, and the recovery was cancelled`);
        if (report.paused && patched(ROUND_HEEDS_OPERATOR_PATCH))
          return withoutEffect(`${notSent}, and the recovery was paused`);
        // The wait's own task may run late (no worker when its timer fired), or its rounds may have been lowered.
        const late =
          remainingMs() <= 0
            ? { why: 'the deadline has passed', atDeadline: true }
            : roundsDone(report) >= policy.maxRounds
              ? { why: 'its rounds were lowered to the rounds done', atDeadline: false }
              : undefined;
        if (late !== undefined && patched(RESEND_RECHECKS_AFTER_WAIT_PATCH)) {
          if (!late.atDeadline) return withoutEffect(`${notSent}, and ${late.why}`);
          recordRound(report, withoutEffect(`${notSent}, and ${late.why}`));
          publishProgress();
          throw new DeadlineReached();
        }
        continue;
      }
      if (result.kind !== 'not_sent') callsSent += 1;
      switch (result.kind) {
        case 'applied':
          return facts({
            // An unreadable answer still means the API took the call: it retried what had failed.
            retriedSessions: result.retriedSessions ?? before.failed,
            apiStatus: 200,
            apiMessage: result.apiMessage,
            reconciled: false,
          });
        case 'nothing_to_retry':
          return facts({ retriedSessions: 0, apiStatus: 400, apiMessage: result.apiMessage, reconciled: false });
        case 'not_sent':
        case 'unknown':
          break;
      }
      // Outcome unknown. A resend that was refused is reconciled too: the batch shows it had no effect,
      // and the call goes out again, compared against the same snapshot.
      const requestMayLastMs = result.kind === 'unknown' ? result.requestMayLastMs : undefined;
      let graceMs: number;
      if (requestMayLastMs !== undefined && patched(RECONCILE_WAIT_ON_ONE_CLOCK_PATCH)) {
        graceMs = requestMayLastMs + RECONCILE_GRACE_MS;
      } else {
        const requestEnds =
          result.kind === 'unknown' && result.sentAt !== undefined
            ? Date.parse(result.sentAt) + (result.requestTimeoutMs ?? 0)
            : Date.now();
        graceMs = Math.max(0, requestEnds + RECONCILE_GRACE_MS - Date.now());
      }
      await sleep(graceMs, { summary: `wait before reconciling round ${round}` });
      lost = `answer lost (${result.errorType}: ${result.reason})`;
      let verdict;
      try {
        const { reconcileRetry } = readActivity(`reconcile round ${round}`, RECONCILE_MIN_BUDGET_MS);
        verdict = await reconcileRetry({ batchId, before });
      } catch (err) {
        const readFailure = err instanceof ActivityFailure ? (err.cause?.message ?? err.message) : String(err);
        recordRound(report, {
          ...facts({ retriedSessions: 0, apiStatus: null, apiMessage: lost, reconciled: true }),
          reconcileEffect: 'unknown',
          reconcileReason: `the batch could not be read to reconcile (${readFailure}); no call was sent again`,
        });
        publishProgress();
        throw budgetRanOut(err) ? new DeadlineReached() : err;
      }
      if (verdict.effect === 'no_effect') {
        const stop = stopReason(0);
        if (stop !== undefined && patched(BOUNDED_SENDS_PATCH)) {
          log.warn('Retry calls had no effect; the round sends no more', { batchId, round, callsSent, stop: stop.why });
          return withoutEffect(`no more were sent: ${stop.why}`);
        }
        if (verdict.snapshot.status === 'cancelled' && patched(RESEND_HEEDS_BATCH_CANCEL_PATCH)) {
          log.warn('Retry call had no effect and the batch was cancelled; the round sends no more', { batchId, round });
          return withoutEffect('no more were sent: the batch was cancelled');
        }
        if (result.kind === 'unknown' && result.permanent && patched(PERMANENT_UNKNOWN_STOPS_PATCH)) {
          log.warn('Retry call had no effect, and its answer does not change; the recovery stops', { batchId, round });
          recordRound(report, withoutEffect(`no more were sent: its answer (${result.errorType}) does not change`));
          publishProgress();
          throw ApplicationFailure.create({ type: result.errorType, message: result.reason, nonRetryable: true });
        }
        log.warn('Retry call had no effect; sending it again', { batchId, round, reason: verdict.reason });
        before = verdict.snapshot;
        continue;
      }
      log.warn('Retry call outcome reconciled from the batch; not sending another', {
        batchId,
        round,
        effect: verdict.effect,
      });
      return {
        ...facts({
          // What the API would have answered under retry_failed_only; 0 when the batch cannot tell.
          retriedSessions: verdict.effect === 'took_effect' ? before.failed : 0,
          apiStatus: null,
          apiMessage: lost,
          reconciled: true,
        }),
        reconcileEffect: verdict.effect,
        reconcileReason: verdict.reason,
      };
    }
  };

  /**
   * One round of the retry protocol (docs/retry-protocol.md): a snapshot right before the call, the
   * call, and a reconciliation when its outcome is unknown. A call that provably was not sent is never
   * a round: it is sent again after Retry-After or a backoff. Returns `batch_changed` when the batch changed
   * before the call (it is in flight again, or nothing fails any more): no call, the loop waits again; and
   * `rounds_used_up` when a policy update took the rounds left before the call (ROUND_HEEDS_OPERATOR_PATCH).
   */
  const retryRound = async (): Promise<'recorded' | 'batch_changed' | 'rounds_used_up'> => {
    const round = roundsDone(report) + 1;
    const startedAt = carriedRoundStartedAt ?? new Date().toISOString();
    let callsNotSent = carriedCallsNotSent;
    carriedCallsNotSent = 0;
    carriedRoundStartedAt = undefined;
    // A cancel ends the round's sending between two calls, never while one may be out.
    const outerScope = CancellationScope.current();
    for (;;) {
      report.phase = 'retrying';
      report.nextRetryAt = null;
      const { readRetrySnapshot, readBatchBeforeRetry } = readActivity(`status read before retry round ${round}`);
      // After a settle from the list, this read is the first to show the failing sessions: it records them.
      const read = settleFromList ? await untilDeadline(() => readBatchBeforeRetry(batchId)) : undefined;
      const before = read ? retrySnapshotOf(read) : await untilDeadline(() => readRetrySnapshot(batchId));
      if (!before.settled || before.failed === 0) {
        log.info('Batch changed before the retry call; waiting for it to settle again', { batchId, round });
        return 'batch_changed';
      }
      if (read) {
        recordSettledBatch(report, read);
        settleFromList = false;
        publishProgress();
      }
      // Paused while the round waited or read: no call until a resume, and then on a fresh read.
      if (report.paused && patched(ROUND_HEEDS_OPERATOR_PATCH)) {
        await holdWhilePaused(round, { callsNotSent, roundStartedAt: startedAt });
        // The rounds lowered during the pause, to stop it: no call.
        if (roundsDone(report) >= policy.maxRounds) return 'rounds_used_up';
        continue;
      }
      // The read answered, but a cancel came with its answer: no call is out yet, so none goes.
      if (outerScope.consideredCancelled && patched(CANCEL_BEFORE_CALL_PATCH))
        throw new CancelledFailure(`the recovery was cancelled before round ${round}'s retry call`);
      // The batch cancelled: the recovery ends as at a settle (batch_cancelled), on a fresh read.
      if (before.status === 'cancelled' && patched(ROUND_RECHECKS_AFTER_READ_PATCH)) return 'batch_changed';
      if (roundsDone(report) >= policy.maxRounds && patched(ROUND_RECHECKS_AFTER_READ_PATCH)) return 'rounds_used_up';
      if (remainingMs() <= 0 && patched(ROUND_RECHECKS_AFTER_READ_PATCH)) throw new DeadlineReached();
      // From here on a call may be out: a cancel waits for its outcome, so the round is always in the report.
      const outcome = await CancellationScope.nonCancellable(() =>
        callUntilKnown(round, before, startedAt, callsNotSent, outerScope),
      );
      if ('round' in outcome) {
        recordRound(report, outcome);
        if (retryNowRequested && patched(RETRY_NOW_TAKEN_BY_ROUND_PATCH)) retryNowRequested = false;
        log.info('Retry round recorded', {
          batchId,
          round,
          retriedSessions: outcome.retriedSessions,
          reconciled: outcome.reconciled,
        });
        publishProgress();
        return 'recorded';
      }
      callsNotSent += 1;
      recordLastError(report, outcome.errorType, outcome.reason, new Date());
      const waitMs = outcome.retryAfterMs ?? notSentBackoffMs(callsNotSent);
      if (waitMs >= remainingMs()) throw new DeadlineReached();
      log.info('Retry call not sent; sending it again', { batchId, round, errorType: outcome.errorType, waitMs });
      beginResendWait(waitMs);
      try {
        await sleep(waitMs, { summary: `wait before resending round ${round}` });
      } finally {
        resendAt = null;
      }
      // A policy update took the rounds left: nothing was sent, and the recovery ends as the backoff's would.
      if (roundsDone(report) >= policy.maxRounds && patched(ROUND_HEEDS_OPERATOR_PATCH)) return 'rounds_used_up';
      if (dueWhileWaiting()) await continueAsNewNow({ callsNotSent, roundStartedAt: startedAt });
      // Paused during the wait (shown so since the pause): held without a read first, as the resume reads afresh.
      if (report.paused && patched(RESEND_WAIT_SHOWS_PAUSE_PATCH)) {
        await holdWhilePaused(round, { callsNotSent, roundStartedAt: startedAt });
        if (roundsDone(report) >= policy.maxRounds) return 'rounds_used_up';
      }
    }
  };

  /** A settled batch that ends the recovery with sessions still failing. */
  const endsFailing = (snapshot: BatchSnapshot) =>
    snapshot.failed > 0 && (snapshot.status === 'cancelled' || roundsDone(report) >= policy.maxRounds);

  const recover = async (): Promise<RecoveryOutcome> => {
    for (;;) {
      const { snapshot: settled, fromList } = await waitForSettledBatch();
      // The list shows no sessions: a recovery that ends with some still failing reads the batch for its report.
      const snapshot = fromList && endsFailing(settled) ? await readSettledBatch() : settled;
      settleFromList = fromList && snapshot === settled;
      recordSettledBatch(report, snapshot);
      publishProgress();
      if (snapshot.status === 'cancelled') return 'batch_cancelled';
      // Failures that someone else's retry fixed were failures all the same: not `clean`.
      if (snapshot.failed === 0 && (roundsDone(report) > 0 || report.failuresSeen)) return 'recovered';
      if (snapshot.failed === 0) {
        // Failed as a whole (say its configuration was refused): no session the retry endpoint could retry, and
        // `clean` told no one.
        if (snapshot.status === 'failed' && patched(FAILED_BATCH_NOT_CLEAN_PATCH))
          throw ApplicationFailure.nonRetryable(
            'The API reports the batch failed, and no failed session to retry' +
              (snapshot.batchError === undefined ? '' : `: ${snapshot.batchError}`),
            BATCH_FAILED_WITHOUT_FAILED_SESSIONS,
          );
        return 'clean';
      }
      if (roundsDone(report) >= policy.maxRounds) {
        // Paused (a pause ended its last round's sending, or came after it): held, so that an operator can give it
        // more rounds before resuming. A resume without them ends it.
        if (!report.paused || !patched(ROUND_HEEDS_OPERATOR_PATCH)) return 'exhausted';
        await holdWhilePaused(roundsDone(report) + 1);
        if (roundsDone(report) >= policy.maxRounds) return 'exhausted';
        continue;
      }
      if (historyDue()) return await continueAsNewNow();
      // A round the run before continued as new in goes on: its backoff is behind it.
      const roundUnderway = carriedRoundStartedAt !== undefined && patched(CARRIED_ROUND_SKIPS_BACKOFF_PATCH);
      if (!roundUnderway) await waitBeforeRetry(roundsDone(report) + 1, snapshot);
      if (roundsDone(report) >= policy.maxRounds) {
        // A policy update took the rounds left: the same read for the report as above.
        if (settleFromList) recordSettledBatch(report, await readSettledBatch());
        return 'exhausted';
      }
      if (!applied(RETRY_PROTOCOL_PATCH)) await legacyRetryRound(snapshot);
      else if ((await retryRound()) === 'rounds_used_up') return 'exhausted';
    }
  };

  /**
   * At an end with a watch the poller has not woken (UNWATCH_AT_END_PATCH; UNWATCH_CARRIED_WATCH_PATCH for the one the
   * run before registered): the batch is in flight, or the recovery saw it settle before the poller did. Undefined when
   * there is nothing to tell.
   */
  const unwatchAtEnd = (): Promise<void> | undefined => {
    const waitStartedAt = unwokenWaitStartedAt;
    if (waitStartedAt === undefined) return undefined;
    if (!patched(watchIsCarried ? UNWATCH_CARRIED_WATCH_PATCH : UNWATCH_AT_END_PATCH)) return undefined;
    return unwatchWithPoller(batchId, waitStartedAt);
  };

  /** Once per end; the recoveries from before the notifications tell none. */
  const notifyEnd = (): Promise<void> => {
    const end = recoveryEnd(report);
    return end && applied('notify-recovery-end') ? notifyRecoveryEndOf(end, notifiesOnOwnQueue) : Promise.resolve();
  };

  /**
   * The poller, then the webhook. With nothing for the poller, the notification is scheduled at once, in the same
   * microtask as before: an await there would let the progress flush's search attributes go first, and recorded
   * histories would not replay.
   */
  const tellEnd = (): Promise<void> => {
    const unwatching = unwatchAtEnd();
    return unwatching ? unwatching.then(notifyEnd) : notifyEnd();
  };

  /**
   * The sessions the report of a recovery cancelled or at its deadline lists when its last settle came from the list.
   * One read, kept only when the batch is still settled: the end waits for no batch in flight, and a read that fails
   * keeps the counts.
   */
  const readFailingAtEnd = async (): Promise<void> => {
    const { readBatchBeforeRetry } = proxyActivities<RetryActivities>({
      startToCloseTimeout: END_READ_TIMEOUT_MS,
      scheduleToCloseTimeout: END_READ_TIMEOUT_MS,
      retry: policy.poll,
      summary: 'status read for the report',
    });
    try {
      // The workflow may be cancelled: the read runs all the same.
      const snapshot = await CancellationScope.nonCancellable(() => readBatchBeforeRetry(batchId));
      if (snapshot.settled) recordSettledBatch(report, snapshot);
    } catch (err) {
      log.warn('Failing sessions not read for the ended recovery', { batchId, error: String(err) });
    }
  };

  /** Whether the end reads the batch for its report: its last settle came from the list, with sessions failing. */
  const endReadsFailing = (outcome: RecoveryOutcome): boolean => {
    if (!settleFromList || report.stillFailing.total === 0) return false;
    if (outcome === 'operator_cancelled') return patched(CANCEL_READS_FAILING_PATCH);
    return outcome === 'deadline' && patched(DEADLINE_READS_FAILING_PATCH);
  };

  const finish = async (outcome: RecoveryOutcome): Promise<RecoveryReport> => {
    report.outcome = outcome;
    report.phase = 'done';
    report.nextRetryAt = null;
    // When the end came: a read for the report after it completes the report, and does not move the end.
    report.finishedAt = new Date().toISOString();
    if (endReadsFailing(outcome)) {
      // The end stored before the read, which may take seconds: the workflow drops steering once its end is set, and
      // a client refuses it by the stored outcome, which would otherwise say nothing yet (a pause taken, then lost).
      publishProgress();
      storeMemoAtRest();
      await readFailingAtEnd();
      // The memo is written again whatever the read found: a cancel's end time was set after the read until 4665eba,
      // so it always changed the memo there, and the histories of then hold that write.
      memoPublished = '';
    }
    publishProgress();
    storeMemoAtRest();
    countRecovery(outcome);
    log.info('Recovery finished', { batchId, outcome, rounds: roundsDone(report) });
    await tellEnd();
    return report;
  };

  try {
    publishProgress();
    return await finish(await recover());
  } catch (err) {
    if (err instanceof DeadlineReached) return await finish('deadline');
    // An operator's cancel ends the recovery with its report, not a bare failure.
    if (isCancellation(err)) return await finish('operator_cancelled');
    if (err instanceof ContinueAsNew) throw err;
    // Anything else stops the recovery, with its report: an API refusal, an oversized payload, a bug of ours.
    // Left to fail the workflow task instead, it would retry forever and the recovery would stay `running`.
    const cause = err instanceof ActivityFailure && err.cause ? err.cause : err;
    const type = cause instanceof ApplicationFailure ? (cause.type ?? 'unknown') : (cause as Error).name;
    const message = cause instanceof Error ? cause.message : String(cause);
    report.phase = 'done';
    report.nextRetryAt = null;
    report.finishedAt = new Date().toISOString();
    recordFailure(report, type, message);
    try {
      // The memo first: it renders nothing, so it is written even when the details below cannot be.
      storeMemoAtRest();
      publishProgress();
    } catch (publishFailure) {
      // The report itself is what broke (a date it cannot print, say): the recovery still ends as failed.
      log.error('Recovery report could not be rendered', { batchId, error: String(publishFailure) });
    }
    countRecovery('failed');
    // The cut texts of the report: the failure goes to history and logs too.
    const failure = report.failure ?? { type, message };
    log.error('Recovery stopped', { batchId, ...failure });
    await tellEnd();
    throw stoppedFailure(report, failure);
  }
}
