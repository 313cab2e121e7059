import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { batchStatusPollerWorkflowId, watchBatches, type WatchBatchRequest } from '../workflows/definitions.js';

export interface PollerRegistration extends WatchBatchRequest {
  /** The recovery's task queue: the poller it registers with is that queue's. */
  taskQueue: string;
}

/** Bounds one signal's payload: about 150 bytes a registration. */
const MAX_REGISTRATIONS_PER_SIGNAL = 500;
/** A signal the server has not answered in this time fails its registrations, so the next ones are not held. */
const SIGNAL_DEADLINE_MS = 10_000;

interface Waiting {
  request: WatchBatchRequest;
  settle: (registered: boolean) => void;
  fail: (err: unknown) => void;
}

/**
 * Sends a worker's registrations to its queue's poller, gathering those that come while a signal is in flight
 * into the next one. Every signal to the poller is an update of that one workflow, which the server makes one at
 * a time: a burst of thousands of waits would queue thousands of them, each holding a recovery's workflow task.
 * A lone registration goes out at once.
 */
class PollerRegistrations {
  private readonly waiting = new Map<string, Waiting[]>();
  private readonly sending = new Set<string>();

  constructor(private readonly client: Client) {}

  register(taskQueue: string, request: WatchBatchRequest): Promise<boolean> {
    return new Promise((settle, fail) => {
      const queue = this.waiting.get(taskQueue) ?? [];
      queue.push({ request, settle, fail });
      this.waiting.set(taskQueue, queue);
      if (!this.sending.has(taskQueue)) void this.send(taskQueue);
    });
  }

  private async send(taskQueue: string): Promise<void> {
    this.sending.add(taskQueue);
    const poller = this.client.workflow.getHandle(batchStatusPollerWorkflowId(taskQueue));
    try {
      for (;;) {
        const queue = this.waiting.get(taskQueue) ?? [];
        const batch = queue.splice(0, MAX_REGISTRATIONS_PER_SIGNAL);
        if (batch.length === 0) return;
        try {
          const requests = batch.map(({ request }) => request);
          await this.client.withDeadline(Date.now() + SIGNAL_DEADLINE_MS, () => poller.signal(watchBatches, requests));
          for (const { settle } of batch) settle(true);
        } catch (err) {
          // No poller runs on the queue: its recoveries poll their batches themselves.
          if (err instanceof WorkflowNotFoundError) for (const { settle } of batch) settle(false);
          else for (const { fail } of batch) fail(err);
        }
      }
    } finally {
      this.sending.delete(taskQueue);
    }
  }
}

/**
 * Run as a local activity: a recovery registers with its task queue's poller inside its own workflow task. A
 * signal sent from the workflow itself would bring the server's confirmation back as one more workflow task per
 * wait (two per one-round recovery); this costs one marker event. No Anchor call, so no share of the budget.
 */
export function createPollerRegistrationActivities(client: Client) {
  const registrations = new PollerRegistrations(client);
  return {
    /**
     * True once the poller has the registration; false when no poller runs on the queue (the recovery polls
     * itself). A repeated registration only sets the same entry again: a retried attempt is harmless.
     */
    async watchBatchWithPoller({ taskQueue, ...request }: PollerRegistration): Promise<boolean> {
      return await registrations.register(taskQueue, request);
    },
  };
}

export type PollerRegistrationActivities = ReturnType<typeof createPollerRegistrationActivities>;
