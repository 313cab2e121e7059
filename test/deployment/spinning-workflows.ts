import { CancellationScope, sleep } from '@temporalio/workflow';

/**
 * A recoverBatch whose workflow code, once resumed after a timer inside a cancellation scope, never yields: the
 * SDK's isolateExecutionTimeout stops it in an async function's continuation, with the scope's AsyncLocalStorage
 * context entered, which is where Node.js before 24 loses track of its async context stack.
 */
export async function recoverBatch(): Promise<never> {
  return await CancellationScope.cancellable(async () => {
    await sleep(1);
    for (;;) {
      // Spins until the timeout stops it.
    }
  });
}
