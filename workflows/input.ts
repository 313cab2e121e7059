import { ApplicationFailure } from '@temporalio/common';
import ms, { type StringValue } from 'ms';
import { z } from 'zod';

// Operators type these inputs into the Temporal UI, so every field is plain
// JSON, durations are strings like "30s", and an unknown field is an error
// (a typo must not silently fall back to a default).

/** Milliseconds from `"30s"`, `"250ms"`, `"2h"` or a number of milliseconds; undefined when it is not a duration. */
export function parseDuration(value: string | number): number | undefined {
  const millis = typeof value === 'number' ? value : (ms(value as StringValue) as number | undefined);
  return millis === undefined || !Number.isFinite(millis) || millis < 0 ? undefined : millis;
}

export const durationSchema = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const millis = parseDuration(value);
  if (millis === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `expected a duration like "30s", "250ms" or "2h", got ${JSON.stringify(value)}`,
    });
    return z.NEVER;
  }
  return millis;
});

function backoffSchema(defaults: {
  initialInterval: StringValue;
  backoffCoefficient: number;
  maximumInterval: StringValue;
}) {
  return z
    .strictObject({
      initialInterval: durationSchema.default(ms(defaults.initialInterval)),
      backoffCoefficient: z.number().min(1).max(10).default(defaults.backoffCoefficient),
      maximumInterval: durationSchema.default(ms(defaults.maximumInterval)),
    })
    .refine((policy) => policy.maximumInterval >= policy.initialInterval, {
      message: 'maximumInterval must not be shorter than initialInterval',
      path: ['maximumInterval'],
    })
    .prefault({});
}

const roundBackoffSchema = backoffSchema({
  initialInterval: '30s',
  backoffCoefficient: 2,
  maximumInterval: '10m',
});
const pollSchema = backoffSchema({ initialInterval: '5s', backoffCoefficient: 1.5, maximumInterval: '2m' });

export const recoverBatchInputSchema = z.strictObject({
  batchId: z.uuid(),
  maxRetries: z.number().int().min(1).max(3).default(1),
  retryFailedOnly: z.boolean().default(true),
  maxRounds: z.number().int().min(1).max(1000).default(3),
  roundBackoff: roundBackoffSchema,
  poll: pollSchema,
  deadline: durationSchema.refine((millis) => millis >= 1_000, 'must be at least 1s').default(ms('24h')),
  /** History length past which the workflow continues as new; low values are for tests. */
  continueAsNewAfterEvents: z.number().int().min(50).max(40_000).default(10_000),
});

/** What an operator types: every field but batchId may be left out. */
export type RecoverBatchInput = z.input<typeof recoverBatchInputSchema>;
/** The validated input with defaults applied and durations in milliseconds. */
export type RecoveryPolicy = z.output<typeof recoverBatchInputSchema>;

export class InvalidInputError extends Error {
  override name = 'InvalidInputError';
  constructor(
    readonly problems: string[],
    what = 'input',
  ) {
    super(`Invalid ${what}: ${problems.join('; ')}`);
  }
}

/** One line per problem, each starting with the field's path, so an operator knows what to fix. */
export function describeIssues(error: z.ZodError): string[] {
  return error.issues.flatMap((issue) => {
    const at = (path: PropertyKey[]) => path.map(String).join('.');
    // Unknown fields are reported by their own names, not by the object that holds them.
    if (issue.code === 'unrecognized_keys')
      return issue.keys.map((key) => `${at([...issue.path, key])}: unknown field`);
    return [`${issue.path.length ? at(issue.path) : '(input)'}: ${issue.message}`];
  });
}

/** Validates a workflow's input; invalid input ends the workflow at once with a non-retryable failure naming the fields. */
export function parseWorkflowInput<T>(parse: (raw: unknown) => T, raw: unknown, failureType: string): T {
  try {
    return parse(raw);
  } catch (err) {
    if (err instanceof InvalidInputError)
      throw ApplicationFailure.nonRetryable(err.message, failureType, ...err.problems);
    throw err;
  }
}

export function parseRecoverBatchInput(raw: unknown): RecoveryPolicy {
  const result = recoverBatchInputSchema.safeParse(raw);
  if (!result.success) throw new InvalidInputError(describeIssues(result.error));
  return result.data;
}

const backoffChangeSchema = z.strictObject({
  initialInterval: durationSchema.optional(),
  backoffCoefficient: z.number().min(1).max(10).optional(),
  maximumInterval: durationSchema.optional(),
});

const policyChangeSchema = z.strictObject({
  maxRounds: z.number().int().min(1).max(1000).optional(),
  maxRetries: z.number().int().min(1).max(3).optional(),
  retryFailedOnly: z.boolean().optional(),
  roundBackoff: backoffChangeSchema.optional(),
  poll: backoffChangeSchema.optional(),
});

/** Merges an operator's change into the running policy; the merged policy is validated as a whole. */
export function applyPolicyChange(policy: RecoveryPolicy, rawChange: unknown): RecoveryPolicy {
  const change = policyChangeSchema.safeParse(rawChange ?? {});
  if (!change.success) throw new InvalidInputError(describeIssues(change.error), 'policy change');
  const merged = {
    ...policy,
    ...change.data,
    roundBackoff: { ...policy.roundBackoff, ...change.data.roundBackoff },
    poll: { ...policy.poll, ...change.data.poll },
  };
  const result = recoverBatchInputSchema.safeParse(merged);
  if (!result.success) throw new InvalidInputError(describeIssues(result.error), 'policy change');
  return result.data;
}
