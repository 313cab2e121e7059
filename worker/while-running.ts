import type { Worker } from '@temporalio/worker';

/** Where a worker is in its life, for the work that runs beside it: before its run, during it, or after. */
export type WorkerLifeState = 'before' | 'running' | 'after';

/** The worker's state as the work beside it reads it. */
export function workerLifeState(worker: Pick<Worker, 'getState'>): WorkerLifeState {
  const state = worker.getState();
  return state === 'INITIALIZED' ? 'before' : state === 'RUNNING' ? 'running' : 'after';
}

/**
 * Runs `task` every `intervalMs` while the worker runs, one run at a time (a tick while one still runs is skipped),
 * and stops for good once the worker has stopped; the timer holds no process open. Returns the guarded task, for a
 * run outside the ticks (one at creation).
 */
export function everyWhileRunning(
  state: () => WorkerLifeState,
  intervalMs: number,
  task: () => Promise<void>,
): () => Promise<void> {
  let busy = false;
  const runOnce = async () => {
    if (busy) return;
    busy = true;
    try {
      await task();
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(() => {
    const now = state();
    if (now === 'running') void runOnce();
    else if (now === 'after') clearInterval(timer);
  }, intervalMs);
  timer.unref();
  return runOnce;
}
