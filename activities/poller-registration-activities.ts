import { WorkflowNotFoundError, type Client, type WorkflowExecutionDescription } from '@temporalio/client';
import { optionalTsToMs } from '@temporalio/common/lib/time.js';
import proto from '@temporalio/proto';
import {
  batchSettled,
  batchStatusPollerWorkflowId,
  POLLER_RESET_RUN_MEMO_KEY,
  STUCK_AFTER_TASK_FAILURES,
  workflowTaskFailures,
  type ListedSettle,
  type UnwatchBatchRequest,
  type WatchBatchRequest,
} from '../workflows/definitions.js';
import { createRegistrationSender } from './registration-signals.js';

export interface PollerRegistration extends WatchBatchRequest {
  /** The recovery's task queue: the poller it registers with is that queue's. */
  taskQueue: string;
  /** Sent again during the same wait: signalled only when the poller may have lost it (chainWatchState). */
  resent?: boolean;
}

export interface PollerUnregistration extends UnwatchBatchRequest {
  /** The recovery's task queue: the poller that watches its batch is that queue's. */
  taskQueue: string;
}

/** What a registration sent again finds of the poller chain that took the wait's first one (chainWatchState). */
type ChainWatchState = 'watching' | 'lost' | 'stuck';

/** A recovery the poller wakes, with what the list showed of its batch when it did. */
export interface RecoveryWake {
  workflowId: string;
  listed?: ListedSettle;
}

/**
 * How long a re-registration waits for the server to describe the poller, before it sends the signal anyway; the
 * signal is harmless, one event in the poller's history. The wait holds the recovery's workflow task open (a local
 * activity). The server answers from the poller's state, without its worker; the client asks again on some errors,
 * whatever the call's deadline (which bounds each attempt), so the whole check is bounded here.
 */
const CHAIN_CHECK_TIMEOUT_MS = 2_000;
/**
 * Poller runs whose time this worker keeps (a chain's first run's start, a reset run's reset): a few per chain it has
 * seen, new ones after each restart or reset.
 */
const RUN_TIMES_KEPT = 16;
/**
 * A chain counts as begun before a wait only when it began this much earlier, and a reset as after it when it came
 * less than this before: the times come from the clocks of the server's hosts (one process in the compose stack;
 * hosts kept in step by NTP, well within this, in a cluster). Too near, and the registration is signalled again,
 * which is harmless; a wait begun within it after a poller restart is signalled at every re-registration.
 */
export const CLOCK_MARGIN_MS = 1_000;

const { WorkflowTaskFailedCause } = proto.temporal.api.enums.v1;
/**
 * Failed workflow tasks that the poller's own code failed (a bug, a non-determinism error after a deploy), not the
 * server (a signal that came while it completed, a reset, its sticky queue reset).
 */
const CODE_TASK_FAILURES = new Set<number>([
  WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE,
  WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_NON_DETERMINISTIC_ERROR,
]);
const RESET_WORKFLOW_CAUSE = WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW;
/**
 * The newest events of the poller's run that stuckByHistory reads: those since its last completed task, unless more
 * signals than this came while it failed, of which each failed attempt 1 takes all that came during the attempt before.
 */
const STUCK_HISTORY_EVENTS = 200;

/** When a reset began the run, in epoch ms; undefined for a run no reset began. */
function resetTime(run: WorkflowExecutionDescription): number | undefined {
  return optionalTsToMs(run.raw.workflowExtendedInfo?.lastResetTime);
}

/**
 * When a reset began the run a poller's memo names: its reset time, or on a server that keeps none (before 1.27),
 * its start, which for a run begun by a reset is when the reset came.
 */
function resetRunTime(run: WorkflowExecutionDescription): number {
  return resetTime(run) ?? run.startTime.getTime();
}

/** The answer, or undefined once `ms` have passed; a late answer, or its failure, is dropped. */
async function answeredWithin<T>(ms: number, ask: () => Promise<T>): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([ask(), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Signals sent side by side by one wakeRecoveries: a cycle's wakes go out together without flooding the server. */
const WAKES_IN_FLIGHT = 20;

/**
 * The signals between recoveries and their task queue's poller, sent through the worker's Temporal client from
 * local activities. A signal sent from workflow code costs two more history events and one more workflow task in
 * the sender (the server's confirmation), and the server one more transaction on each side; from a local activity
 * it costs the sender one marker event. A wake is the signal workflow code sends; a registration is either that
 * signal or, to a poller run that takes them, one signal for the worker's registrations that came while its previous
 * one was out (registration-signals.ts). So pollers and recoveries run by older and newer workers take both. No
 * Anchor call, so no share of the budget.
 */
export interface PollerRegistrationOptions {
  /**
   * False on a worker whose ANCHOR_BATCH_STATUS_POLLER is false: its recoveries register with no poller (one that
   * still runs on the queue, started before, included), and read their batches themselves.
   */
  registers?: boolean;
}

export function createPollerRegistrationActivities(
  client: Client,
  { registers = true }: PollerRegistrationOptions = {},
) {
  /**
   * When a closed poller run began (a chain's first run) or was begun by a reset, by run id: neither time changes.
   */
  const runTimes = new Map<string, number>();
  const sender = createRegistrationSender(client);
  let retentionMs: number | undefined;

  /**
   * A time read from one of the poller's closed runs, or, once the server has removed that run (it closed over the
   * namespace's retention ago), at the latest `now - retention`: the run began, and any reset of it came, before.
   */
  const runTimeOf = async (
    pollerId: string,
    runId: string,
    timeOf: (run: WorkflowExecutionDescription) => number,
  ): Promise<number> => {
    const known = runTimes.get(runId);
    if (known !== undefined) return known;
    let time: number;
    try {
      time = timeOf(await client.workflow.getHandle(pollerId, runId).describe());
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
      if (retentionMs === undefined) {
        const { config } = await client.workflowService.describeNamespace({ namespace: client.options.namespace });
        retentionMs = Number(config?.workflowExecutionRetentionTtl?.seconds ?? 0) * 1000;
      }
      // An upper bound, kept: the time is past and fixed, so it stays one.
      time = Date.now() - retentionMs;
    }
    if (runTimes.size >= RUN_TIMES_KEPT) runTimes.clear();
    runTimes.set(runId, time);
    return time;
  };

  /**
   * Whether the run's history holds STUCK_AFTER_TASK_FAILURES failures of its own code since its last completed task.
   * A signal that comes while the task keeps failing is written when the failing attempt times out, with a new task at
   * attempt 1: that one fails at once, and its retry shows one failure for the next 10 s (the task timeout; the
   * server's describe, measured on 1.29 and 1.32). Every signal, a recovery's first registration among them, so made a
   * stuck poller look working for 10 s, and a steady stream of them for good. Each such attempt 1 records its failure.
   */
  const stuckByHistory = async (pollerId: string, runId: string): Promise<boolean> => {
    const { history } = await client.workflowService.getWorkflowExecutionHistoryReverse({
      namespace: client.options.namespace,
      execution: { workflowId: pollerId, runId },
      maximumPageSize: STUCK_HISTORY_EVENTS,
    });
    let failures = 0;
    for (const event of history?.events ?? []) {
      const cause = event.workflowTaskFailedEventAttributes?.cause ?? 0;
      // A reset run holds its base run's events up to the reset point, failures after its last completed task among
      // them: the reset's own failed task ends the count too.
      if (event.workflowTaskCompletedEventAttributes || cause === RESET_WORKFLOW_CAUSE) break;
      if (CODE_TASK_FAILURES.has(cause)) failures += 1;
    }
    return failures >= STUCK_AFTER_TASK_FAILURES;
  };

  /**
   * Whether the poller chain that took a wait's first registration still watches it. A chain (the runs of one start,
   * through continue-as-new) carries its watches from run to run, and drops one only by waking its recovery, or at the
   * recovery's end (which registers no more); a chain that ended, or one started after the wait began (the poller was
   * terminated and started again), does not have it: `lost`. One chain runs at a time, so a chain begun before the wait
   * began and running now has run all along, and took the registration sent after the wait began. A reset since the
   * wait began may have left out the signals after its point, the registration among them: `lost` too. A reset shows on
   * the run it began only; the runs continued from it name that run in their memo (batch-status-poller.ts). A chain
   * whose workflow task keeps failing (a bug, a non-determinism error after a deploy) runs, but wakes no one until a
   * deploy mends it: `stuck`, whatever it took. The server answers from the poller's state, where a query (before wave
   * 14) needed the poller's own worker, which answered at most one while the poller's workflow task ran: under a burst
   * of re-registrations most waited 2 s and were signalled (docs/scaling.md).
   */
  const chainWatchState = async (pollerId: string, waitStartedAt: string): Promise<ChainWatchState> => {
    const current = await client.workflow.getHandle(pollerId).describe();
    if (current.status.name !== 'RUNNING') return 'lost';
    const failures = workflowTaskFailures(current.raw.pendingWorkflowTask);
    if (failures >= STUCK_AFTER_TASK_FAILURES) return 'stuck';
    // Read only for a task failing now: a working poller's history is not read at each registration.
    if (failures > 0 && (await stuckByHistory(pollerId, current.runId))) return 'stuck';
    const waitStartedAtMs = Date.parse(waitStartedAt);
    if (Number.isNaN(waitStartedAtMs)) return 'lost';
    const resetSinceWait = (resetAt: number) => resetAt >= waitStartedAtMs - CLOCK_MARGIN_MS;
    const ownReset = resetTime(current);
    if (ownReset !== undefined && resetSinceWait(ownReset)) return 'lost';
    // Read side by side on a first check: each is a describe, within the check's 2 s.
    const resetRunId = current.memo?.[POLLER_RESET_RUN_MEMO_KEY];
    const firstRunId = current.raw.workflowExecutionInfo?.firstRunId || current.runId;
    const [carriedReset, chainStart] = await Promise.all([
      typeof resetRunId === 'string' ? runTimeOf(pollerId, resetRunId, resetRunTime) : undefined,
      firstRunId === current.runId
        ? current.startTime.getTime()
        : runTimeOf(pollerId, firstRunId, (run) => run.startTime.getTime()),
    ]);
    if (carriedReset !== undefined && resetSinceWait(carriedReset)) return 'lost';
    return chainStart < waitStartedAtMs - CLOCK_MARGIN_MS ? 'watching' : 'lost';
  };

  return {
    /**
     * True once the poller has the registration; false when this worker registers with none, when no poller runs on
     * the queue, or, found when the
     * registration is sent again, the poller's workflow task keeps failing: the recovery then reads its batch itself
     * for the rest of this wait. A repeated registration only sets the same entry again: a retried attempt is
     * harmless.
     */
    async watchBatchWithPoller({ taskQueue, resent, ...request }: PollerRegistration): Promise<boolean> {
      if (!registers) return false;
      const pollerId = batchStatusPollerWorkflowId(taskQueue);
      // Registrations sent again within every 15 poll intervals are there for a poller that lost its state: one that
      // has not lost it takes none, so they never fill its history (each continue-as-new restarts its list cycle).
      const { waitStartedAt } = request;
      if (resent && waitStartedAt !== undefined) {
        try {
          const state = await answeredWithin(CHAIN_CHECK_TIMEOUT_MS, () => chainWatchState(pollerId, waitStartedAt));
          if (state === 'watching') return true;
          if (state === 'stuck') return false;
        } catch {
          // The server could not describe the poller, or it has none: the signal decides.
        }
      }
      // In lower case, as the page read gives the list's ids: a recovery whose input typed the id in capitals (the Web
      // UI's form, an earlier release's chain) was never seen in the list, and each cycle read all of it.
      return sender.watch(pollerId, { ...request, batchId: request.batchId.toLowerCase() });
    },

    /**
     * Drops the watch of a wait that ended without a wake, with this worker's other unwatches of the moment in one
     * signal (registration-signals.ts). To the poller run that is current (the chain carries its watches from run to
     * run); a run of older code takes it without a handler, and keeps the watch as before. A repeated signal finds no
     * watch: a retried attempt is harmless. No poller running: none watches the batch.
     */
    async unwatchBatchWithPoller({ taskQueue, ...request }: PollerUnregistration): Promise<void> {
      await sender.unwatch(batchStatusPollerWorkflowId(taskQueue), {
        ...request,
        batchId: request.batchId.toLowerCase(),
      });
    },

    /**
     * Wakes the poller's settled recoveries; returns the ids of those the server could not be told, for the poller
     * to wake again. It never throws for one signal: a retried attempt would wake the others twice, and a second
     * wake can reach a recovery that is already waiting for its next round.
     */
    async wakeRecoveries(wakes: RecoveryWake[]): Promise<string[]> {
      const unsent: string[] = [];
      for (let start = 0; start < wakes.length; start += WAKES_IN_FLIGHT) {
        await Promise.all(
          wakes.slice(start, start + WAKES_IN_FLIGHT).map(async ({ workflowId, listed }) => {
            const handle = client.workflow.getHandle(workflowId);
            try {
              await (listed ? handle.signal(batchSettled, listed) : handle.signal(batchSettled));
            } catch (err) {
              // A recovery that ended meanwhile has nothing to wake.
              if (!(err instanceof WorkflowNotFoundError)) unsent.push(workflowId);
            }
          }),
        );
      }
      return unsent;
    },
  };
}

export type PollerRegistrationActivities = ReturnType<typeof createPollerRegistrationActivities>;
