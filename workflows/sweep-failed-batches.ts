import { condition, log, patched, proxyActivities } from '@temporalio/workflow';
import type { ListedBatch, StartBatchRecoveryResult, SweepActivities } from '../activities/sweep-activities.js';
import { parseWorkflowInput } from './input.js';
import {
  parseSweepInput,
  type SkipReason,
  type SweepFailedBatchesInput,
  type SweepResult,
  type SweepStatus,
} from './sweep-input.js';

interface SweepWindow {
  createdAfter: string;
  createdBefore: string;
}

const { listRecentBatches } = proxyActivities<SweepActivities>({
  startToCloseTimeout: '10m',
  heartbeatTimeout: '1m',
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 5 },
});

const { listBatchPage } = proxyActivities<SweepActivities>({
  startToCloseTimeout: '1m',
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 5 },
});

/** Sweeps from this change on list one page per activity task: one task, one Anchor call, one unit of the budget. */
const ONE_PAGE_PER_TASK_PATCH = 'sweep-one-page-per-task';

async function listWindow(statuses: SweepStatus[], pageSize: number, window: SweepWindow): Promise<ListedBatch[]> {
  if (!patched(ONE_PAGE_PER_TASK_PATCH)) return listRecentBatches({ statuses, pageSize, ...window });
  // A batch that moves between pages while the sweep pages through is kept once.
  const listed = new Map<string, ListedBatch>();
  for (const status of statuses) {
    for (let page = 1; ; page += 1) {
      const result = await listBatchPage({ status, page, pageSize, ...window });
      for (const batch of result.batches) if (!listed.has(batch.batch_id)) listed.set(batch.batch_id, batch);
      if (!result.hasNext) break;
    }
  }
  return [...listed.values()];
}

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
  const listed = await listWindow(policy.statuses, policy.pageSize, window);

  const started: SweepResult['started'] = [];
  const skipped: SweepResult['skipped'] = [];
  const skip = (batchId: string, reason: SkipReason) => skipped.push({ batchId, reason });

  // In listing order (per status, newest first), so the freshest failures are recovered first when over the limit.
  const queue: ListedBatch[] = [];
  for (const batch of listed) {
    if (batch.failed_requests > 0) queue.push(batch);
    else skip(batch.batch_id, 'no_failed_sessions');
  }

  // maxStarts counts recoveries actually started: a start that finds one running frees its slot.
  let inFlight = 0;
  const done = () => queue.length === 0 || started.length >= policy.maxStarts;
  const slotFree = () => started.length + inFlight < policy.maxStarts;
  const startNext = async (): Promise<void> => {
    for (;;) {
      await condition(() => done() || slotFree());
      if (done()) return;
      // Another lane woken by the same change may have taken the slot first.
      if (!slotFree()) continue;
      const batch = queue.shift() as ListedBatch;
      inFlight += 1;
      let result: StartBatchRecoveryResult | undefined;
      try {
        result = await startBatchRecovery({ batchId: batch.batch_id, recovery: policy.recovery });
      } catch (err) {
        log.warn('Could not start a recovery; a later sweep tries again', {
          batchId: batch.batch_id,
          error: String(err),
        });
      } finally {
        inFlight -= 1;
      }
      if (result === undefined) skip(batch.batch_id, 'start_failed');
      else if (result.outcome === 'started') started.push({ batchId: batch.batch_id, workflowId: result.workflowId });
      else skip(batch.batch_id, result.outcome);
    }
  };
  // At most fanOut starts in flight.
  await Promise.all(Array.from({ length: policy.fanOut }, startNext));
  for (const batch of queue) skip(batch.batch_id, 'over_limit');

  const counts: SweepResult['counts'] = {
    scanned: listed.length,
    started: started.length,
    already_running: 0,
    already_ended: 0,
    permanently_failed: 0,
    no_failed_sessions: 0,
    over_limit: 0,
    start_failed: 0,
  };
  for (const { reason } of skipped) counts[reason] += 1;
  log.info('Sweep finished', counts);
  return { window, statuses: policy.statuses, started, skipped, counts };
}
