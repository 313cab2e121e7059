import type { Worker } from '@temporalio/worker';

/**
 * The three workers of a recovery worker process, run and stopped as one: a process that polled only some of the
 * queues would leave the others' tasks waiting with nothing to show for it.
 */
export class RecoveryWorkers {
  private started = false;
  private stopRequested = false;

  constructor(
    /** Workflows and every Anchor call, on the task queue whose task rate is the Anchor budget. */
    readonly recoveries: Worker,
    /** The task queue's batch status poller, on its own queue (batchStatusPollerTaskQueue): no share of the budget. */
    readonly poller: Worker,
    /** The end-of-recovery webhook, on the queue of notifications (notificationTaskQueue): no share of the budget. */
    readonly notifications: Worker,
  ) {}

  private get all(): Worker[] {
    return [this.recoveries, this.poller, this.notifications];
  }

  /**
   * Runs all until they are shut down: by shutdown(), or by the SDK's runtime on SIGINT/SIGTERM. One that stops
   * for any reason (a fatal error too) stops the others; the first failure is thrown once all have stopped.
   */
  async run(): Promise<void> {
    if (this.started) throw new Error('The recovery workers run once');
    this.started = true;
    // Each worker is RUNNING once its run() returns its promise, so a shutdown asked before this takes effect now.
    const runs = this.all.map((worker) => worker.run().finally(() => this.shutdown()));
    if (this.stopRequested) this.shutdown();
    const stopped = await Promise.allSettled(runs);
    const failed = stopped.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /**
   * Runs them all while `work` runs, then stops them: its result, or its failure. When the workers stop first, their
   * failure, or an error that says so.
   */
  async runUntil<T>(work: () => Promise<T>): Promise<T> {
    const running = this.run();
    const workersStopped = running.then(() => {
      throw new Error('The recovery workers stopped before the work they ran for ended');
    });
    let result: T;
    try {
      result = await Promise.race([work(), workersStopped]);
    } catch (err) {
      this.shutdown();
      // The work's own failure is the one to see, whatever the workers did.
      await running.catch(() => undefined);
      throw err;
    }
    this.shutdown();
    await running;
    return result;
  }

  /** Asks all to stop: they stop polling and give their tasks in flight the grace time to finish. */
  shutdown(): void {
    this.stopRequested = true;
    for (const worker of this.all) if (worker.getState() === 'RUNNING') worker.shutdown();
  }

  /** All have stopped: finished, or handed back, their tasks, or failed. */
  get stopped(): boolean {
    return this.all.every((worker) => worker.getState() === 'STOPPED' || worker.getState() === 'FAILED');
  }
}
