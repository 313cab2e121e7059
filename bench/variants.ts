import type { Client } from '@temporalio/client';
import { recoveryStartOptions } from '../client/recoveries.js';
import { RECOVER_BATCH_WORKFLOW, recoveryWorkflowId } from '../workflows/definitions.js';
import type { BenchWorkerOptions } from './harness.js';
import type { BenchRecoveryInput } from './workflows/naive-recovery.js';
import type { NoopRecoveryInput } from './workflows/noop-recovery.js';

/** The product's workflow, its same-shape no-op (the ceiling) and the naive workflow (the baseline). */
export type Variant = 'recoverBatch' | 'noop' | 'naive';
export const VARIANTS: Variant[] = ['recoverBatch', 'noop', 'naive'];

/** The product runs on its own worker; the no-op and the naive workflow on the baselines' worker. */
export function workerKind(variant: Variant): BenchWorkerOptions['kind'] {
  return variant === 'recoverBatch' ? 'product' : 'baseline';
}

/**
 * Starts one recovery of `batch` (created by the simulator, whose sessions each run `timing.sessionMs`) as
 * `variant`, with a fixed poll interval and round backoff; returns its workflow id.
 */
export async function startVariant(
  client: Client,
  variant: Variant,
  taskQueue: string,
  batch: { id: string; createdAt: number },
  timing: { pollMs: number; backoffMs: number; sessionMs: number },
): Promise<string> {
  const { pollMs, backoffMs, sessionMs } = timing;
  const batchId = batch.id;
  if (variant === 'recoverBatch') {
    const options = recoveryStartOptions(
      {
        batchId,
        poll: { initialInterval: pollMs, backoffCoefficient: 1, maximumInterval: pollMs },
        roundBackoff: { initialInterval: backoffMs, backoffCoefficient: 1, maximumInterval: backoffMs },
      },
      taskQueue,
    );
    await client.workflow.start(RECOVER_BATCH_WORKFLOW, options);
    return options.workflowId;
  }
  const workflowId = `${variant}-${recoveryWorkflowId(batchId)}`;
  const input: BenchRecoveryInput = { batchId, pollIntervalMs: pollMs, roundBackoffMs: backoffMs };
  const noopInput: NoopRecoveryInput = { ...input, settle: { firstAt: batch.createdAt + sessionMs, sessionMs } };
  await client.workflow.start(variant === 'noop' ? 'noopRecovery' : 'naiveRecovery', {
    taskQueue,
    workflowId,
    args: [variant === 'noop' ? noopInput : input],
  });
  return workflowId;
}
