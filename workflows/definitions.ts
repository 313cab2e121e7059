import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { RecoverBatchInput } from './input.js';
import type { BatchSnapshot, RecoveryReport } from './report.js';

// Defined once here and imported by the client; the names are what operators type in the Web UI.

export const getRecoveryReport = defineQuery<RecoveryReport>('getRecoveryReport');

/** Skip the current wait before the next retry call. */
export const retryNow = defineSignal('retryNow');
/** Hold off retry calls until resumed (status reads go on). */
export const pauseRecovery = defineSignal('pauseRecovery');
export const resumeRecovery = defineSignal('resumeRecovery');

/** Change the policy for the rounds still to come; rejected with a message naming the field when invalid. */
export type PolicyChange = Partial<
  Pick<RecoverBatchInput, 'maxRounds' | 'maxRetries' | 'retryFailedOnly' | 'roundBackoff' | 'poll'>
>;
export const updateRecoveryPolicy = defineUpdate<RecoveryReport, [PolicyChange]>('updateRecoveryPolicy');

export const RECOVER_BATCH_WORKFLOW = 'recoverBatch';
/** The failure type of a status read that found the batch in flight; its retry policy is the poll schedule. */
export const BATCH_NOT_SETTLED = 'BatchNotSettled';
/**
 * The failure type a recovery stops with, its report and the batch's error in it, when the API calls the batch `failed`
 * with no failed session to retry (one that failed as a whole, say): `clean` told no one.
 */
export const BATCH_FAILED_WITHOUT_FAILED_SESSIONS = 'batch_failed_without_failed_sessions';
export const DEFAULT_TASK_QUEUE = 'anchor-batch-recovery';

/**
 * Failures (or timeouts) in a row of a running workflow's task that mean it is stuck: one can be a worker that died
 * mid-task, two in a row is a bug or a non-determinism error, which only a deploy mends. `report` exits `stuck` for
 * such a recovery; a recovery stops waiting for such a poller.
 */
export const STUCK_AFTER_TASK_FAILURES = 2;

/** How many times in a row a workflow's pending workflow task has failed or timed out; 0 when it has none. */
export function workflowTaskFailures(task: { attempt?: number | null } | null | undefined): number {
  return task ? Math.max(0, (task.attempt ?? 1) - 1) : 0;
}

/**
 * The failure type of a policy change refused because the recovery has decided its end (it may still be notifying
 * it); its first detail is the end, as the report names it.
 */
export const RECOVERY_ENDED = 'RecoveryEnded';

/** One recovery per batch: the id is derived from the batch id. */
export function recoveryWorkflowId(batchId: string): string {
  return `recover-batch-${batchId}`;
}

/**
 * The ids a recovery of the batch may run under, the ones a sweep looks under before it starts one: the batch's
 * recovery id with the batch id in lower case, as the CLI, the library and the sweeps name it, or in upper case, as a
 * release before wave 35 named one typed so. A recovery under any other id is one a sweep cannot see.
 */
export function isRecoveryWorkflowIdOf(workflowId: string, batchId: string): boolean {
  return (
    workflowId === recoveryWorkflowId(batchId.toLowerCase()) || workflowId === recoveryWorkflowId(batchId.toUpperCase())
  );
}

/**
 * The task queue of the recoveries' end notifications, beside theirs: the webhook is no Anchor call, so it takes no
 * share of the recoveries' queue, whose task rate is the Anchor budget.
 */
export function notificationTaskQueue(taskQueue: string): string {
  return `${taskQueue}${NOTIFICATION_TASK_QUEUE_SUFFIX}`;
}

export const NOTIFICATION_TASK_QUEUE_SUFFIX = '-notifications';

/** What a recovery tells its task queue's batch status poller: wake me when this batch settles. */
export interface WatchBatchRequest {
  batchId: string;
  workflowId: string;
  /** How soon the recovery wants a settle noticed: the poller's cycle is the shortest among its batches. */
  pollIntervalMs: number;
  /**
   * When the wait began (recoveries from the local registration on): a registration sent again during the same
   * wait keeps the cycle its watch may be woken from, where a new wait's (after a retry) starts with the next.
   */
  waitStartedAt?: string;
}
export const watchBatch = defineSignal<[WatchBatchRequest]>('watchBatch');
/**
 * Registrations a worker gathered while its previous signal was out, as one signal: one event in the poller's history
 * where each watchBatch is one, so a start burst of thousands of recoveries stays far below the server's limit of
 * signals per run. Sent only to a poller run whose memo says it takes them (POLLER_TAKES_WATCH_BATCHES_MEMO_KEY): a
 * run of older code has no handler for it, and would drop it when it continues as new.
 */
export const watchBatches = defineSignal<[WatchBatchRequest[]]>('watchBatches');
/**
 * A wait that ended without a wake (the recovery was cancelled, reached its deadline or failed while its batch was in
 * flight): the poller drops its watch, when it is still this wait's. Before, the watch stayed until the batch settled
 * or left the list, and the poller went on reading the list for a recovery that had ended, a cycle every poll interval.
 */
export interface UnwatchBatchRequest {
  batchId: string;
  workflowId: string;
  waitStartedAt: string;
}
export const unwatchBatch = defineSignal<[UnwatchBatchRequest]>('unwatchBatch');
/**
 * Unwatches a worker gathered while its previous signal was out, as one signal, as watchBatches gathers registrations:
 * thousands of recoveries that reach their deadline together (a sweep's, with their batches stuck in `processing`)
 * sent as many signals, each an event in the poller's history, toward the server's limit of signals per run. Sent only
 * to a poller run whose memo says it takes them (POLLER_TAKES_UNWATCH_BATCHES_MEMO_KEY).
 */
export const unwatchBatches = defineSignal<[UnwatchBatchRequest[]]>('unwatchBatches');
/** Set (true) by each poller run whose code takes watchBatches, in its first workflow task. */
export const POLLER_TAKES_WATCH_BATCHES_MEMO_KEY = 'takesWatchBatches';
/** Set (true) by each poller run whose code takes unwatchBatches, in its first workflow task. */
export const POLLER_TAKES_UNWATCH_BATCHES_MEMO_KEY = 'takesUnwatchBatches';
/**
 * Whether the poller still watches this wait (the same batch, recovery and wait start). Workers from before wave 14
 * ask before a recovery registers again during the same wait: a poller that still has it needs no signal, which
 * would be one more event in its history. Newer workers ask the server whether the poller's chain that took the
 * registration still runs, which needs no answer from the poller's worker; pollers keep answering the query for
 * the older ones.
 */
export const isWatchingBatch = defineQuery<boolean, [WatchBatchRequest]>('isWatchingBatch');
/**
 * What the list showed of a settled batch: its status and counters, enough for the recovery to go on without
 * reading the batch itself. The list carries no sessions, so `failing` is not in it.
 */
export type ListedSettle = Pick<
  BatchSnapshot,
  'status' | 'total' | 'completed' | 'failed' | 'observedAt' | 'settledAt'
>;
/**
 * From the poller to a recovery: the list shows the batch settled, with what it showed; without it (the list
 * cannot tell, or a poller from before it was sent), the recovery reads its batch on its own.
 */
export const batchSettled = defineSignal<[listed?: ListedSettle]>('batchSettled');

export const BATCH_STATUS_POLLER_WORKFLOW = 'batchStatusPoller';
/**
 * The poller's memo key for the run its chain's latest reset began, set on every run continued from it: a reset shows
 * on the run it began only, and a re-registration reads when it came from that run.
 */
export const POLLER_RESET_RUN_MEMO_KEY = 'resetRunId';

/** One poller per task queue: every worker on the queue starts the same one. */
export function batchStatusPollerWorkflowId(taskQueue: string): string {
  return `batch-status-poller/${taskQueue}`;
}

export const POLLER_TASK_QUEUE_SUFFIX = '-batch-status-poller';

/** Whether `taskQueue` is a poller's own queue: it ends in POLLER_TASK_QUEUE_SUFFIX. */
export function isPollerTaskQueue(taskQueue: string): boolean {
  return taskQueue.endsWith(POLLER_TASK_QUEUE_SUFFIX);
}

/**
 * The task queue the poller's workflow tasks run on, beside its recoveries' queue; its page reads, Anchor calls, still
 * go to theirs. Every worker process polls it with a worker of its own, whose cache and workflow thread the poller
 * shares with no recovery: on the recoveries' queue, a burst of recoveries evicted it from the worker's cache, and each
 * of its tasks then replayed its history, hundreds of activations each queued behind theirs, past the workflow task
 * timeout (docs/scaling.md).
 */
export function batchStatusPollerTaskQueue(taskQueue: string): string {
  return `${taskQueue}${POLLER_TASK_QUEUE_SUFFIX}`;
}

/**
 * The recoveries' task queue of a poller that runs on `pollerTaskQueue`: the queue before the poller's suffix, or, for
 * a poller on a queue without it (started before the poller had a queue of its own, or by hand), that queue itself.
 * So no recoveries' queue may end in the suffix (worker/config.ts refuses one).
 */
export function recoveriesTaskQueueOfPoller(pollerTaskQueue: string): string {
  return isPollerTaskQueue(pollerTaskQueue)
    ? pollerTaskQueue.slice(0, -POLLER_TASK_QUEUE_SUFFIX.length)
    : pollerTaskQueue;
}
