import type { Worker } from '@temporalio/worker';

/**
 * The two workers of a recovery worker process, run and stopped as one: a process that polled only one of the two
 * queues would leave the other's tasks waiting with nothing to show for it.
 */
export class RecoveryWorkers {
  constructor(
    /** Workflows and every Anchor call, on the task queue whose task rate is the Anchor budget. */
    readonly recoveries: Worker,
    /** The end-of-recovery webhook, on the queue of notifications (notificationTaskQueue): no share of the budget. */
    readonly notifications: Worker,
  ) {}

  private get all(): Worker[] {
    return [this.recoveries, this.notifications];
  }

  /**
   * Runs both until they are shut down: by shutdown(), or by the SDK's runtime on SIGINT/SIGTERM. One that stops
   * for any reason (a fatal error too) stops the other; the first failure is thrown once both have stopped.
   */
  async run(): Promise<void> {
    const stopped = await Promise.allSettled(this.all.map((worker) => worker.run().finally(() => this.shutdown())));
    const failed = stopped.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** Runs both while `work` runs, then stops them: its result, or the workers' failure when they stop first. */
  async runUntil<T>(work: () => Promise<T>): Promise<T> {
    const running = this.run();
    try {
      return await Promise.race([
        work(),
        running.then(() => {
          throw new Error('The recovery workers stopped before the work they ran for ended');
        }),
      ]);
    } finally {
      this.shutdown();
      await running;
    }
  }

  /** Asks both to stop: they stop polling and give their tasks in flight the grace time to finish. */
  shutdown(): void {
    for (const worker of this.all) if (worker.getState() === 'RUNNING') worker.shutdown();
  }

  /** Both have stopped polling and finished, or handed back, their tasks. */
  get stopped(): boolean {
    return this.all.every((worker) => worker.getState() === 'STOPPED');
  }
}
