import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { batchStatusPollerWorkflowId, watchBatch, type WatchBatchRequest } from '../workflows/definitions.js';

export interface PollerRegistration extends WatchBatchRequest {
  /** The recovery's task queue: the poller it registers with is that queue's. */
  taskQueue: string;
}

/**
 * Run as a local activity: a recovery registers with its task queue's poller inside its own workflow task. A
 * signal sent from the workflow itself would bring the server's confirmation back as one more workflow task per
 * wait (two per one-round recovery); this costs one marker event. It sends the same `watchBatch` signal a
 * recovery from before it sends, so pollers run by older and newer workers take both. No Anchor call, so no
 * share of the budget.
 */
export function createPollerRegistrationActivities(client: Client) {
  return {
    /**
     * True once the poller has the registration; false when no poller runs on the queue (the recovery polls
     * itself). A repeated registration only sets the same entry again: a retried attempt is harmless.
     */
    async watchBatchWithPoller({ taskQueue, ...request }: PollerRegistration): Promise<boolean> {
      try {
        await client.workflow.getHandle(batchStatusPollerWorkflowId(taskQueue)).signal(watchBatch, request);
        return true;
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return false;
        throw err;
      }
    },
  };
}

export type PollerRegistrationActivities = ReturnType<typeof createPollerRegistrationActivities>;
