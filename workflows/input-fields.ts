import { checkField, type Fields } from './fields.js';
import { RECOVERY_OUTCOMES } from './report.js';

// Every field an operator can set, with its sane range and its default: the one place they are defined.
// The workflows, the client library, the CLI's flags and the policy update all validate against these.
// A bound keeps a typo from becoming a recovery that never ends or a date that cannot be written
// (`deadline: "1000000000y"`); the README's input table lists the same ranges.

/** recoverBatch's policy: every field but batchId, which is also what a sweep applies to the recoveries it starts. */
export const recoveryPolicyFields = {
  maxRetries: { type: 'integer', min: 1, max: 3, default: 1 },
  retryFailedOnly: { type: 'boolean', default: true },
  maxRounds: { type: 'integer', min: 1, max: 1000, default: 3 },
  /** The wait before each retry round. */
  roundBackoff: {
    type: 'object',
    fields: {
      initialInterval: { type: 'duration', min: '10ms', max: '24h', default: '30s' },
      backoffCoefficient: { type: 'number', min: 1, max: 10, default: 2 },
      maximumInterval: { type: 'duration', min: '10ms', max: '24h', default: '10m', notBelow: 'initialInterval' },
    },
  },
  /** How often the batch's status is read while it runs. */
  poll: {
    type: 'object',
    fields: {
      initialInterval: { type: 'duration', min: '10ms', max: '1h', default: '5s' },
      backoffCoefficient: { type: 'number', min: 1, max: 10, default: 1.5 },
      maximumInterval: { type: 'duration', min: '10ms', max: '1h', default: '2m', notBelow: 'initialInterval' },
    },
  },
  deadline: { type: 'duration', min: '1s', max: '365d', default: '24h' },
  /** History length past which the workflow continues as new; low values are for tests. */
  continueAsNewAfterEvents: { type: 'integer', min: 50, max: 40_000, default: 10_000 },
} as const satisfies Fields;

export const recoverBatchFields = { batchId: { type: 'uuid' }, ...recoveryPolicyFields } as const satisfies Fields;

/**
 * A batch id recoverBatch accepts. Checked wherever one comes from outside: a list is not ours to trust, and an id
 * typed in the Web UI may be anything, while a search attribute or a history bounds a value's size.
 */
export function isBatchId(batchId: unknown): batchId is string {
  return checkField(recoverBatchFields.batchId, batchId, 'batchId').problems.length === 0;
}

/** What the updateRecoveryPolicy update may change while a recovery runs. */
export const policyChangeFields = {
  maxRounds: recoveryPolicyFields.maxRounds,
  maxRetries: recoveryPolicyFields.maxRetries,
  retryFailedOnly: recoveryPolicyFields.retryFailedOnly,
  roundBackoff: recoveryPolicyFields.roundBackoff,
  poll: recoveryPolicyFields.poll,
} as const satisfies Fields;

export const sweepFields = {
  /** Batches created within this long before the sweep are scanned. */
  lookback: { type: 'duration', min: '1m', max: '90d', default: '24h' },
  /**
   * Settled statuses a batch with failed sessions can have. The simulator reports such a batch as
   * `failed`; the contract also allows `completed` with failed_requests > 0, so both are scanned by default.
   */
  statuses: { type: 'list', of: ['failed', 'completed'], default: ['failed', 'completed'] },
  /** Batches per list call; the contract allows at most 100. */
  pageSize: { type: 'integer', min: 1, max: 100, default: 100 },
  /** Recoveries one sweep starts at most; the rest are skipped as over_limit until a later sweep. */
  maxStarts: { type: 'integer', min: 1, max: 1000, default: 200 },
  /** Recovery starts in flight at once. */
  fanOut: { type: 'integer', min: 1, max: 50, default: 10 },
  /** History length past which the sweep goes on in a new run, between chunks of the list; low values are for tests. */
  continueAsNewAfterEvents: { type: 'integer', min: 50, max: 40_000, default: 10_000 },
  /** recoverBatch input (all but batchId) applied to every recovery the sweep starts. */
  recovery: { type: 'object', fields: recoveryPolicyFields },
} as const satisfies Fields;

/** The sweep schedule's interval (client side: `schedule upsert --every`). */
export const sweepScheduleFields = {
  every: { type: 'duration', min: '1m', max: '30d' },
} as const satisfies Fields;

/** Which recoveries `report` lists (client side). */
export const recoveryListFields = {
  /** Recoveries started within this long, e.g. "24h". */
  since: { type: 'duration', min: '1ms', max: '365d', default: '24h' },
  outcome: {
    type: 'oneOf',
    of: [...RECOVERY_OUTCOMES, 'failed', 'running', 'terminated', 'timed_out'],
    optional: true,
  },
  /** Rows at most; visibility is read page by page until then. */
  limit: { type: 'integer', min: 1, max: 10_000, default: 1_000 },
} as const satisfies Fields;
