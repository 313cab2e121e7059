import { CancellationScope, sleep } from '@temporalio/workflow';

/**
 * Waits until a predicate holds or a timer fires, as `condition(predicate, timeout)` does, with the same commands
 * (a timer, cancelled when the predicate comes to hold first; none when it holds already) and about half the
 * promises.
 *
 * Why not `condition`: the SDK captures and source-maps a stack trace for every promise a workflow creates
 * (temporalio/sdk-typescript#1587), and `condition` with a timeout creates about 17 (a cancellable scope around a
 * race of the timer and the predicate). Its waits were the largest part of a recovery's workflow CPU.
 *
 * `condition` checks its predicate once an activation's jobs have run. A wakeable wait ends inside the handler that
 * calls `wake()` when the predicate holds there, so a later job of the same activation can undo what woke it (a
 * pause, then a resume): the caller checks again what still holds.
 */
export class WakeableWait {
  #pendingWake: (() => void) | undefined;

  /**
   * Resolves true when the predicate holds (at once, or at a wake), false when the timer fired first; rejects with
   * the CancelledFailure when the workflow is cancelled, also when the predicate already holds, as `condition` does.
   */
  until(predicate: () => boolean, timeoutMs: number, summary?: string): Promise<boolean> {
    if (predicate() && !CancellationScope.current().consideredCancelled) return Promise.resolve(true);
    const timerScope = new CancellationScope();
    const timer = timerScope.run(() => sleep(timeoutMs, summary === undefined ? undefined : { summary }));
    return new Promise<boolean>((resolve, reject) => {
      const wake = () => {
        if (!predicate()) return;
        this.#pendingWake = undefined;
        timerScope.cancel();
        resolve(true);
      };
      this.#pendingWake = wake;
      const timerDone = () => {
        if (this.#pendingWake === wake) this.#pendingWake = undefined;
      };
      // A cancel of the workflow rejects the timer with a CancelledFailure, as it rejects `condition`.
      void timer.then(
        () => {
          timerDone();
          resolve(false);
        },
        (err: Error) => {
          timerDone();
          reject(err);
        },
      );
    });
  }

  /** Called by a handler that changed what a pending wait's predicate reads. */
  wake(): void {
    this.#pendingWake?.();
  }
}
