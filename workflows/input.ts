import { ApplicationFailure } from '@temporalio/common';
import {
  InvalidInputError,
  validateChange,
  validateInput,
  type Fields,
  type Typeable,
  type Validated,
} from './fields.js';
import { isRecord } from './carried-state.js';
import { policyChangeFields, recoverBatchFields } from './input-fields.js';
import { formatDuration } from './recovery-details.js';

// Operators type these inputs into the Temporal UI, so every field is plain
// JSON, durations are strings like "30s", and an unknown field is an error
// (a typo must not silently fall back to a default).

export { InvalidInputError, parseDuration } from './fields.js';

/** What an operator types: every field but batchId may be left out. */
export type RecoverBatchInput = Typeable<typeof recoverBatchFields>;
/** The validated input with defaults applied and durations in milliseconds. */
export type RecoveryPolicy = Validated<typeof recoverBatchFields>;

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
  return validateInput(recoverBatchFields, raw);
}

/** The durations of a recovery's input and of a policy change, as an operator types them. */
const DURATION_FIELDS = [
  ['deadline'],
  ['poll', 'initialInterval'],
  ['poll', 'maximumInterval'],
  ['roundBackoff', 'initialInterval'],
  ['roundBackoff', 'maximumInterval'],
] as const;

/**
 * A duration typed as a string of digits alone (`"deadline": "3600"`) reads as milliseconds: a deadline of 3.6 s,
 * which ends the recovery at once, where it is as likely meant as seconds (the CLI refuses such a flag). Refused,
 * naming the field; a JSON number is still milliseconds, as the README says. Not in the parse itself: recorded
 * histories that took such a string still replay (the workflow asks a patch first).
 */
export function unitlessDurationProblems(raw: unknown): string[] {
  if (!isRecord(raw)) return [];
  return DURATION_FIELDS.flatMap((path) => {
    const value = path.reduce<unknown>((at, key) => (isRecord(at) ? at[key] : undefined), raw);
    if (typeof value !== 'string' || !/^\s*\d+(\.\d+)?\s*$/.test(value)) return [];
    const typed = value.trim().slice(0, 20);
    return [`${path.join('.')}: "${typed}" has no unit: write "${typed}s" for seconds, or the number ${typed} for ms`];
  });
}

/**
 * A change of nothing (`null`, `{}`, `{"roundBackoff": {}}`, typed in the Web UI) would come back as a success that
 * changed nothing: refused, naming each group left empty.
 */
export function requirePolicyChange(rawChange: unknown): void {
  const change = rawChange ?? {};
  // Not an object: the validation after this names it.
  if (!isRecord(change)) return;
  const problems = unsetProblems(policyChangeFields, change, '');
  if (problems.length > 0) throw new InvalidInputError(problems, 'policy change');
}

/**
 * Why a change (at `path`) sets no field at any depth, one problem per group left empty; none once it sets one. A
 * field these fields do not have, or a value of the wrong type, counts as set: the validation after this names it.
 */
function unsetProblems(fields: Fields, change: Record<string, unknown>, path: string): string[] {
  const problems: string[] = [];
  for (const [key, value] of Object.entries(change)) {
    if (value === undefined) continue;
    const rule = Object.hasOwn(fields, key) ? fields[key] : undefined;
    if (rule?.type !== 'object' || !isRecord(value)) return [];
    const inGroup = unsetProblems(rule.fields, value, path === '' ? key : `${path}.${key}`);
    if (inGroup.length === 0) return [];
    problems.push(...inGroup);
  }
  if (problems.length > 0) return problems;
  const wanted = `give at least one of ${Object.keys(fields).join(', ')}`;
  return [path === '' ? wanted : `${path}: ${wanted}`];
}

/** Merges an operator's change into the running policy; the merged policy is validated as a whole. */
export function applyPolicyChange(policy: RecoveryPolicy, rawChange: unknown): RecoveryPolicy {
  const change = validateChange(policyChangeFields, rawChange ?? {}, 'policy change');
  // An initial interval typed alone and longer than the running maximum: the merged check below would name
  // maximumInterval, a field the operator did not type.
  const problems = (['roundBackoff', 'poll'] as const).flatMap((group) => {
    const typed = change[group];
    const runningMaximum = policy[group].maximumInterval;
    if (typed?.initialInterval === undefined || typed.maximumInterval !== undefined) return [];
    if (typed.initialInterval <= runningMaximum) return [];
    return [
      `${group}.initialInterval: must not be longer than the running maximumInterval ` +
        `(${formatDuration(runningMaximum)}); change both`,
    ];
  });
  if (problems.length > 0) throw new InvalidInputError(problems, 'policy change');
  const merged = {
    ...policy,
    ...change,
    roundBackoff: { ...policy.roundBackoff, ...change.roundBackoff },
    poll: { ...policy.poll, ...change.poll },
  };
  return validateInput(recoverBatchFields, merged, 'policy change');
}
