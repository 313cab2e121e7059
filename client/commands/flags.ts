import { InvalidArgumentError } from 'commander';
import { checkField, type FieldRule } from '../../workflows/fields.js';

// Commander runs these parsers before any action, so a bad flag is refused before a connection is even tried, and
// its message names the flag (commander's) and the input field it sets (ours).

type NumberRule = FieldRule & { type: 'integer' | 'duration' };

function check(field: string, rule: NumberRule, value: string): number {
  // ms() throws on a blank one with a message that names nothing ("val is not a non-empty string").
  if (rule.type === 'duration' && value.trim() === '')
    throw new InvalidArgumentError(`${field}: expected a duration like "30s", "250ms" or "2h"`);
  // Digits only: Number() also reads "0x10", "1e2" and "0b11", which nobody means as a count.
  if (rule.type === 'integer' && !/^-?\d+$/.test(value.trim()))
    throw new InvalidArgumentError(`${field}: expected a whole number`);
  // The workflow's JSON input reads a bare number as milliseconds; on a command line "3600" is as likely meant as
  // seconds, and a deadline of 3.6 s ends the recovery at once.
  if (rule.type === 'duration' && /^\s*\d+(\.\d+)?\s*$/.test(value))
    throw new InvalidArgumentError(`${field}: add a unit, e.g. "${value.trim()}s" or "${value.trim()}ms"`);
  const { value: checked, problems } = checkField(rule, rule.type === 'integer' ? Number(value) : value, field);
  if (problems.length > 0) throw new InvalidArgumentError(problems.join('; '));
  return checked;
}

/** A flag's value checked against the bounds of the input field it sets; durations come back in milliseconds. */
export function bounded(field: string, rule: NumberRule): (value: string) => number {
  return (value) => check(field, rule, value);
}

/** A duration flag checked against its field's bounds but kept as typed ("24h"), for inputs shown as the operator wrote them. */
export function boundedAsTyped(field: string, rule: FieldRule & { type: 'duration' }): (value: string) => string {
  return (value) => {
    check(field, rule, value);
    return value;
  };
}

/**
 * A name (namespace, task queue) or the Web UI from a flag or its variable, without the spaces around it, as the
 * worker reads TEMPORAL_NAMESPACE and TEMPORAL_TASK_QUEUE: " recovery" would start recoveries on a queue no worker
 * polls. Blank (compose passes an unset variable as an empty string), it takes the default, as for the worker.
 */
export function trimmedOrDefault(fallback: string): (value: string) => string {
  return (value) => value.trim() || fallback;
}
