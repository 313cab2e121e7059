import { condition, log, proxyActivities } from '@temporalio/workflow';
import type { ListedBatch, StartBatchRecoveryResult, SweepActivities } from '../activities/sweep-activities.js';
import { parseWorkflowInput } from './input.js';
import {
  newSweepResult,
  parseSweepInput,
  recordSkipped,
  recordStarted,
  type SkipReason,
  type SweepFailedBatchesInput,
  type SweepResult,
} from './sweep-input.js';

const { listRecentBatches } = proxyActivities<SweepActivities>({
  startToCloseTimeout: '10m',
  heartbeatTimeout: '1m',
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 5 },
});

const { startBatchRecovery } = proxyActivities<SweepActivities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '10s', maximumAttempts: 5 },
});

/**
 * Finds the batches created within the lookback that have failed sessions and
 * starts a recoverBatch for each that has none yet. Run by a Schedule; safe to
 * run concurrently with itself and with the CLI (one recovery per batch id).
 */
export async function sweepFailedBatches(input: SweepFailedBatchesInput = {}): Promise<SweepResult> {
  const policy = parseWorkflowInput(parseSweepInput, input, 'InvalidSweepInput');
  // Workflow time: the same window on every replay.
  const now = Date.now();
  const window = {
    createdAfter: new Date(now - policy.lookback).toISOString(),
    createdBefore: new Date(now).toISOString(),
  };
  const listed = await listRecentBatches({ statuses: policy.statuses, pageSize: policy.pageSize, ...window });

  const result = newSweepResult(window, policy.statuses, listed.length);
  const skip = (batchId: string, reason: SkipReason) => recordSkipped(result, batchId, reason);

  // In listing order (per status, newest first), so the freshest failures are recovered first when over the limit.
  const queue: ListedBatch[] = [];
  for (const batch of listed) {
    if (batch.failed_requests > 0) queue.push(batch);
    else skip(batch.batch_id, 'no_failed_sessions');
  }

  // maxStarts counts recoveries actually started: a start that finds one running frees its slot.
  let inFlight = 0;
  const done = () => queue.length === 0 || result.counts.started >= policy.maxStarts;
  const slotFree = () => result.counts.started + inFlight < policy.maxStarts;
  const startNext = async (): Promise<void> => {
    for (;;) {
      await condition(() => done() || slotFree());
      if (done()) return;
      // Another lane woken by the same change may have taken the slot first.
      if (!slotFree()) continue;
      const batch = queue.shift() as ListedBatch;
      inFlight += 1;
      let start: StartBatchRecoveryResult | undefined;
      try {
        start = await startBatchRecovery({ batchId: batch.batch_id, recovery: policy.recovery });
      } catch (err) {
        log.warn('Could not start a recovery; a later sweep tries again', {
          batchId: batch.batch_id,
          error: String(err),
        });
      } finally {
        inFlight -= 1;
      }
      if (start === undefined) skip(batch.batch_id, 'start_failed');
      else if (start.outcome === 'started') recordStarted(result, batch.batch_id, start.workflowId);
      else skip(batch.batch_id, start.outcome);
    }
  };
  // At most fanOut starts in flight.
  await Promise.all(Array.from({ length: policy.fanOut }, startNext));
  for (const batch of queue) skip(batch.batch_id, 'over_limit');

  log.info('Sweep finished', result.counts);
  return result;
}
