import { z } from 'zod';
import type { AttemptOutcome, OutcomePolicy } from './batch.js';
import type { SeededRandom } from './random.js';

/**
 * Per-item attempt outcomes for scripted batches. A list gives attempts 1, 2, …; once it runs out
 * its last entry repeats, so `['fail', 'ok']` means "fails first, then succeeds".
 */
export const ItemScriptSchema = z.union([z.enum(['always-fail', 'always-ok']), z.array(z.enum(['ok', 'fail'])).min(1)]);
export type ItemScript = z.infer<typeof ItemScriptSchema>;

export const ScriptedBatchSpecSchema = z.object({
  count: z.int().min(1).max(1000),
  /** Failed sessions' error texts are padded to this many characters, like a hostile API's stack dumps. */
  error_chars: z.int().min(1).max(1_000_000).optional(),
  /** Keyed by 0-based item index; unspecified items succeed on their first attempt. */
  script: z.record(z.string().regex(/^\d+$/, 'expected an item index'), ItemScriptSchema).default({}),
  id: z.string().min(1).optional(),
  created_at: z.iso.datetime({ offset: true }).optional(),
  configuration: z.record(z.string(), z.unknown()).optional(),
  metadata: z.record(z.string(), z.unknown()).optional(),
  /** Answer shapes the contract allows and clients must cope with. */
  answer: z
    .strictObject({
      /** false: status answers carry the counters only, no `sessions` array. */
      sessions: z.boolean().default(true),
      /** false: sessions come without `retry_count` (the field is optional). */
      retry_count: z.boolean().default(true),
      /** true: optional fields with no value are sent as `null` instead of being left out. */
      nulls: z.boolean().default(false),
    })
    .prefault({}),
  /**
   * The API works asynchronously: a new batch first reads as `pending` with every counter 0.
   * `ms`: for this long after creation, and sessions start only after it; `reads`: for this many status reads.
   */
  pending_phase: z.strictObject({ ms: z.int().min(0).default(0), reads: z.int().min(0).default(0) }).prefault({}),
  /**
   * true: the sessions start but none ends until the batch is released (`SimulatedBatch.release`, or
   * `POST /_simulator/batches/:batch_id/release`), so the batch reads as `processing` for as long as a test needs,
   * however the clock moves; released, each ends an attempt's duration later as scripted.
   */
  hold: z.boolean().default(false),
});
export type ScriptedBatchSpec = z.input<typeof ScriptedBatchSpecSchema>;

export function scriptedOutcomes(script: Record<string, ItemScript>): OutcomePolicy {
  return (itemIndex, attempt): AttemptOutcome => {
    const itemScript = script[String(itemIndex)];
    if (itemScript === undefined || itemScript === 'always-ok') return 'ok';
    if (itemScript === 'always-fail') return 'fail';
    return itemScript[Math.min(attempt, itemScript.length) - 1] ?? 'ok';
  };
}

export function randomOutcomes(random: SeededRandom, failureProbability: number): OutcomePolicy {
  return () => (random.chance(failureProbability) ? 'fail' : 'ok');
}

/** Many one-session batches at once (see BatchStore.seed). */
export const SeedSpecSchema = z
  .object({
    total: z.int().min(1).max(1_000_000),
    /** Every n-th batch (the first included) has a failed session; 0 for none. */
    fail_every: z.int().min(0).default(0),
    created_from: z.iso.datetime({ offset: true }),
    created_to: z.iso.datetime({ offset: true }),
  })
  .refine((spec) => Date.parse(spec.created_to) >= Date.parse(spec.created_from), {
    message: 'must not be before created_from',
    path: ['created_to'],
  });
export type SeedSpec = z.output<typeof SeedSpecSchema>;
