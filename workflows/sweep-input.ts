import ms from 'ms';
import { z } from 'zod';
import { BatchStatusSchema } from '../anchor-api/schemas.js';
import { describeIssues, durationSchema, InvalidInputError, recoverBatchInputSchema } from './input.js';

// Same conventions as recoverBatch's input: plain JSON an operator can type in the
// Temporal UI or a Schedule, durations like "24h", unknown fields rejected.

/**
 * Settled statuses a batch with failed sessions can have. The simulator reports
 * such a batch as `failed`; the contract also allows `completed` with
 * failed_requests > 0, so both are scanned by default.
 */
export const SweepStatusSchema = BatchStatusSchema.extract(['failed', 'completed']);
export type SweepStatus = z.infer<typeof SweepStatusSchema>;

export const sweepFailedBatchesInputSchema = z.strictObject({
  /** Batches created within this long before the sweep are scanned. */
  lookback: durationSchema.refine((millis) => millis > 0, 'must be longer than 0').default(ms('24h')),
  statuses: z
    .array(SweepStatusSchema)
    .min(1)
    .refine((statuses) => new Set(statuses).size === statuses.length, 'must not repeat a status')
    .default(['failed', 'completed']),
  /** Batches per list call; the contract allows at most 100. */
  pageSize: z.number().int().min(1).max(100).default(100),
  /** Recoveries one sweep starts at most; the rest are skipped as over_limit until a later sweep. */
  maxStarts: z.number().int().min(1).max(1000).default(200),
  /** Recovery starts in flight at once. */
  fanOut: z.number().int().min(1).max(50).default(10),
  /** History length past which the sweep goes on in a new run, between chunks of the list; low values are for tests. */
  continueAsNewAfterEvents: z.number().int().min(50).max(40_000).default(10_000),
  /** recoverBatch input (all but batchId) applied to every recovery the sweep starts. */
  recovery: recoverBatchInputSchema.omit({ batchId: true }).prefault({}),
});

/** What an operator types: every field may be left out. */
export type SweepFailedBatchesInput = z.input<typeof sweepFailedBatchesInputSchema>;
/** The validated input with defaults applied and durations in milliseconds. */
export type SweepPolicy = z.output<typeof sweepFailedBatchesInputSchema>;
export type RecoveryOverrides = SweepPolicy['recovery'];

export function parseSweepInput(raw: unknown): SweepPolicy {
  const result = sweepFailedBatchesInputSchema.safeParse(raw ?? {});
  if (!result.success) throw new InvalidInputError(describeIssues(result.error), 'sweep input');
  return result.data;
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

/** Items of `started` and of `skipped` a sweep result lists at most; `counts` counts them all. */
export const SWEEP_RESULT_ITEMS = 100;

export interface SweepResult {
  /** The creation window scanned, from the sweep's (workflow) time. */
  window: { createdAfter: string; createdBefore: string };
  statuses: SweepStatus[];
  /** The first SWEEP_RESULT_ITEMS recoveries started. */
  started: { batchId: string; workflowId: string }[];
  /** The first SWEEP_RESULT_ITEMS batches with failed sessions that got no new recovery, and why. */
  skipped: { batchId: string; reason: SkipReason }[];
  counts: {
    /** Batches listed in the window, whatever their status. */
    scanned: number;
    started: number;
    /** Listed batches in a status the sweep does not scan (e.g. still processing). */
    other_status: number;
  } & Record<SkipReason, number>;
  /** Why the sweep stopped early (a listing that kept failing, a bug); the counts say how far it got. */
  failure: { type: string; message: string } | null;
}
