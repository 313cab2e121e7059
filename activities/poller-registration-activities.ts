import { WorkflowClient, WorkflowNotFoundError, type Client } from '@temporalio/client';
import {
  batchSettled,
  batchStatusPollerWorkflowId,
  isWatchingBatch,
  watchBatch,
  type ListedSettle,
  type WatchBatchRequest,
} from '../workflows/definitions.js';

export interface PollerRegistration extends WatchBatchRequest {
  /** The recovery's task queue: the poller it registers with is that queue's. */
  taskQueue: string;
  /** Sent again during the same wait: the poller is asked first whether it still has it. */
  resent?: boolean;
}

/** A recovery the poller wakes, with what the list showed of its batch when it did. */
export interface RecoveryWake {
  workflowId: string;
  listed?: ListedSettle;
}

/**
 * How long a re-registration waits for the poller to say it still has it, before it sends the signal anyway; the
 * signal is harmless, one event in the poller's history. The wait holds the recovery's workflow task open (a local
 * activity). A busy poller refuses queries at once ("consistent query buffer is full": one buffered query while
 * its own task runs), and the worker's client asks again for about 10 s, 1 s apart and doubling, whatever
 * the call's deadline (which bounds each attempt). A sweep's recoveries registered together, and so asked together
 * every 15 poll intervals (re-registrations are jittered since): with the client's retries awaited, each of a thousand asking at once outlived its attempt's
 * 10 s timeout, was tried again and asked again (`bench:throughput` on a slow spell: a run stuck for minutes,
 * 1,421 workflow tasks held past 5 s).
 */
const WATCHING_QUERY_TIMEOUT_MS = 2_000;
/** Signals sent side by side by one wakeRecoveries: a cycle's wakes go out together without flooding the server. */
const WAKES_IN_FLIGHT = 20;

/**
 * The answer, or undefined once `ms` have passed. The deadline alone does not bound a call through the worker's
 * connection: it applies to each of the client's attempts, and the connection takes no abort signal. A late answer
 * is dropped here, and its failure too (the race has handled it); the client goes on asking in the background
 * until its retries end.
 */
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

/**
 * The signals between recoveries and their task queue's poller, sent through the worker's Temporal client from
 * local activities. A signal sent from workflow code costs two more history events and one more workflow task in
 * the sender (the server's confirmation), and the server one more transaction on each side; from a local activity
 * it costs the sender one marker event. The signals are the ones workflow code sends, so pollers and recoveries
 * run by older and newer workers take both. No Anchor call, so no share of the budget.
 */
export function createPollerRegistrationActivities(client: Client) {
  // A query reaches the latest run even when it has ended, and a worker answers it from that run's last state: a
  // terminated poller would say it still watches, and its recoveries would never poll on their own.
  const pollerQueries = new WorkflowClient({
    connection: client.connection,
    namespace: client.options.namespace,
    queryRejectCondition: 'NOT_OPEN',
  });
  return {
    /**
     * True once the poller has the registration; false when no poller runs on the queue (the recovery polls
     * itself). A repeated registration only sets the same entry again: a retried attempt is harmless.
     */
    async watchBatchWithPoller({ taskQueue, resent, ...request }: PollerRegistration): Promise<boolean> {
      const pollerId = batchStatusPollerWorkflowId(taskQueue);
      // Registrations sent again every 15 poll intervals are there for a poller that lost its state: one that has
      // not lost it takes none, so they never fill its history (each continue-as-new restarts its list cycle).
      if (resent) {
        try {
          const watching = await answeredWithin(WATCHING_QUERY_TIMEOUT_MS, () =>
            client.withDeadline(Date.now() + WATCHING_QUERY_TIMEOUT_MS, () =>
              pollerQueries.getHandle(pollerId).query(isWatchingBatch, request),
            ),
          );
          if (watching) return true;
        } catch {
          // An older poller without the query, one too busy to answer in time, one that has ended, or none: the
          // signal decides.
        }
      }
      try {
        await client.workflow.getHandle(pollerId).signal(watchBatch, request);
        return true;
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return false;
        throw err;
      }
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
