import type { BatchStatus } from '../anchor-api/schemas.js';
import { validateInput, type Typeable, type Validated } from './fields.js';
import { sweepFields } from './input-fields.js';

// Same conventions as recoverBatch's input: plain JSON an operator can type in the
// Temporal UI or a Schedule, durations like "24h", unknown fields rejected.

export type SweepStatus = Extract<BatchStatus, (typeof sweepFields.statuses.of)[number]>;

/** What an operator types: every field may be left out. */
export type SweepFailedBatchesInput = Typeable<typeof sweepFields>;
/** The validated input with defaults applied and durations in milliseconds. */
export type SweepPolicy = Validated<typeof sweepFields>;
export type RecoveryOverrides = SweepPolicy['recovery'];

export function parseSweepInput(raw: unknown): SweepPolicy {
  return validateInput(sweepFields, raw ?? {}, 'sweep input');
}

export const SWEEP_FAILED_BATCHES_WORKFLOW = 'sweepFailedBatches';

/** Why a listed batch got no new recovery from this sweep. */
export type SkipReason =
  /** A recovery for the batch is running (started by the CLI or an overlapping sweep). */
  | 'already_running'
  /** A recovery for the batch already ended with an outcome; a sweep does not redo it. */
  | 'already_ended'
  /** The batch's last recovery failed in a way a new one would repeat (e.g. batch_not_found). */
  | 'permanently_failed'
  | 'no_failed_sessions'
  /** The sweep reached maxStarts; a later sweep picks the batch up. */
  | 'over_limit'
  /** Starting the recovery kept failing; a later sweep tries again. */
  | 'start_failed';

export interface SweepResult {
  /** The creation window scanned, from the sweep's (workflow) time. */
  window: { createdAfter: string; createdBefore: string };
  statuses: SweepStatus[];
  started: { batchId: string; workflowId: string }[];
  skipped: { batchId: string; reason: SkipReason }[];
  counts: { scanned: number; started: number } & Record<SkipReason, number>;
}
