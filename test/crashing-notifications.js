/**
 * Preloaded into a worker process (spawnWorkerProcess's `preload`) by tests of an end notification whose activity
 * never completes: the worker's queue of notifications runs a notifyRecoveryEnd that fails every attempt before it
 * returns a status, as a worker that crashes mid-attempt or a build whose activity is broken would. Its recoveries'
 * queue is left as it is. Plain JavaScript: Node hands a preload to the SDK's workflow threads too, which do not load
 * TypeScript.
 */
import { createRequire } from 'node:module';
import { isMainThread } from 'node:worker_threads';

if (isMainThread) {
  const { Worker } = createRequire(import.meta.url)('@temporalio/worker');
  const create = Worker.create.bind(Worker);
  Worker.create = (options) =>
    create(
      options.taskQueue.endsWith('-notifications')
        ? {
            ...options,
            activities: {
              async notifyRecoveryEnd() {
                throw new Error('notifyRecoveryEnd crashed before it returned a status');
              },
            },
          }
        : options,
    );
}
