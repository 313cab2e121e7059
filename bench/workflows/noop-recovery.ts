import { proxyActivities, sleep, upsertSearchAttributes } from '@temporalio/workflow';
import {
  anchorBatchIdKey,
  recoveryOutcomeKey,
  recoveryRoundsKey,
  retriedSessionsKey,
  stillFailedSessionsKey,
} from '../../workflows/search-attributes.js';
import type { BenchActivities } from '../activities.js';
import type { BenchRecoveryInput } from './naive-recovery.js';

export interface NoopRecoveryInput extends BenchRecoveryInput {
  /**
   * When the batch's sessions end (epoch ms), and how long a retried session runs: the no-op's waits last as long as
   * the batch's without reading it, so that with long batches it is still a ceiling for the others' throughput.
   */
  settle: { firstAt: number; sessionMs: number };
}

/**
 * The ceiling: recoverBatch's shape for one round with bodies that do nothing, no input validation and no
 * Anchor calls: its two waits for the batch to settle (one activity each here, where recoverBatch waits for
 * the poller's wake), the round's snapshot read and retry call, the round backoff timer, and its search
 * attribute writes.
 */
export async function noopRecovery(input: NoopRecoveryInput): Promise<number> {
  const { noopAwaitBatchSettled, noopReadRetrySnapshot, noopSendRetry } = proxyActivities<BenchActivities>({
    startToCloseTimeout: '1m',
  });
  const publish = (outcome: string, rounds: number, retried: number, stillFailed: number) =>
    upsertSearchAttributes([
      { key: anchorBatchIdKey, value: input.batchId },
      { key: recoveryOutcomeKey, value: outcome },
      { key: recoveryRoundsKey, value: rounds },
      { key: retriedSessionsKey, value: retried },
      { key: stillFailedSessionsKey, value: stillFailed },
    ]);
  publish('running', 0, 0, 0);
  await noopAwaitBatchSettled(input.settle.firstAt);
  publish('running', 0, 0, 1);
  await sleep(input.roundBackoffMs);
  await noopReadRetrySnapshot(input.batchId);
  const retriedSettleAt = await noopSendRetry(input.settle.sessionMs);
  publish('running', 1, 1, 1);
  await noopAwaitBatchSettled(retriedSettleAt);
  publish('running', 1, 1, 0);
  publish('recovered', 1, 1, 0);
  return 1;
}
