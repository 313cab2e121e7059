import { proxyActivities, sleep } from '@temporalio/workflow';
import type { BenchActivities } from '../activities.js';

export interface BenchRecoveryInput {
  batchId: string;
  pollIntervalMs: number;
  roundBackoffMs: number;
}

/**
 * The baseline a hand-written recovery would be: a loop of `sleep` plus a status read until the
 * batch settles, one retry call under the default retry policy, then the same loop once more.
 */
export async function naiveRecovery(input: BenchRecoveryInput): Promise<number> {
  const { readBatchStatus, sendRetry } = proxyActivities<BenchActivities>({ startToCloseTimeout: '1m' });
  const waitUntilSettled = async () => {
    for (;;) {
      const status = await readBatchStatus(input.batchId);
      if (status.settled) return status;
      await sleep(input.pollIntervalMs);
    }
  };
  const before = await waitUntilSettled();
  if (before.failed === 0) return 0;
  await sleep(input.roundBackoffMs);
  await sendRetry(input.batchId);
  const after = await waitUntilSettled();
  return before.failed - after.failed;
}
