import ms, { type StringValue } from 'ms';

// A tiny validator for operators' inputs. The workflow sandbox loads this module once per cached
// workflow, so the rules are plain data and the checks a few lines of code: no schema library here.

/** Durations are written as operators type them ("30s", "2h") or as milliseconds. */
type Duration = StringValue | number;

/** One field of an input: its type, its sane range and its default. */
export type FieldRule =
  | { type: 'duration'; min: Duration; max: Duration; default?: Duration; notBelow?: string }
  | { type: 'integer' | 'number'; min: number; max: number; default?: number }
  | { type: 'boolean'; default?: boolean }
  | { type: 'uuid' }
  | { type: 'list'; of: readonly string[]; default: readonly string[] }
  | { type: 'oneOf'; of: readonly string[]; optional: true }
  | { type: 'object'; fields: Fields };
export type Fields = Readonly<Record<string, FieldRule>>;

type Value<R> = R extends { type: 'duration' | 'integer' | 'number' }
  ? number
  : R extends { type: 'boolean' }
    ? boolean
    : R extends { type: 'uuid' }
      ? string
      : R extends { type: 'list'; of: readonly (infer V)[] }
        ? V[]
        : R extends { type: 'oneOf'; of: readonly (infer V)[] }
          ? V | undefined
          : R extends { type: 'object'; fields: infer F }
            ? Validated<F>
            : never;
/** The validated input: defaults applied, durations in milliseconds. */
export type Validated<F> = { -readonly [K in keyof F]: Value<F[K]> };

type Typed<R> = R extends { type: 'duration' }
  ? string | number
  : R extends { type: 'object'; fields: infer F }
    ? Typeable<F>
    : Value<R>;
type Optional<F> = {
  [K in keyof F]: F[K] extends { default: unknown } | { optional: true } | { type: 'object' } ? K : never;
}[keyof F];
/** What an operator types: fields with a default (and objects, whose fields have defaults) may be left out. */
export type Typeable<F> = { -readonly [K in Exclude<keyof F, Optional<F>>]: Typed<F[K]> } & {
  -readonly [K in Optional<F>]?: Typed<F[K]>;
};
/** A change to some fields: every field, at any depth, may be left out. */
export type Change<F> = {
  -readonly [K in keyof F]?: F[K] extends { type: 'object'; fields: infer G } ? Change<G> : Typed<F[K]>;
};
/** A validated change: durations in milliseconds, left-out fields still left out. */
export type ValidatedChange<F> = {
  -readonly [K in keyof F]?: F[K] extends { type: 'object'; fields: infer G } ? ValidatedChange<G> : Value<F[K]>;
};

// Problems quote what the operator typed; a hostile input must not make a failure too large for Temporal.
const MAX_QUOTED_CHARS = 64;
const MAX_PROBLEMS = 20;
const UUID =
  /^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-8][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}|00000000-0000-0000-0000-000000000000|ffffffff-ffff-ffff-ffff-ffffffffffff)$/;

function cut(text: string): string {
  return text.length > MAX_QUOTED_CHARS ? `${text.slice(0, MAX_QUOTED_CHARS)}…` : text;
}

/** What was typed, as JSON, cut for a problem's message. */
export function quoted(raw: unknown): string {
  return cut(JSON.stringify(raw) ?? String(raw));
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  return typeof value;
}

/** Milliseconds from `"30s"`, `"250ms"`, `"2h"` or a number of milliseconds; undefined when it is not a duration. */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value !== 'number' && typeof value !== 'string') return undefined;
  // ms() throws on an empty string and on strings longer than 100 characters, with messages that name no field.
  const millis =
    typeof value === 'number' ? value : value === '' || value.length > 100 ? undefined : ms(value as StringValue);
  return millis === undefined || !Number.isFinite(millis) || millis < 0 ? undefined : millis;
}

const millis = (duration: Duration) => (typeof duration === 'number' ? duration : ms(duration));

// A list default is shared data: each input gets its own copy.
const copyDefault = <T>(value: T): T => (Array.isArray(value) ? ([...value] as T) : value);

export interface FieldCheck<R> {
  /** Only meaningful when there are no problems. */
  value: Value<R>;
  problems: string[];
}

class Checker {
  readonly problems: string[] = [];

  constructor(private readonly partial: boolean) {}

  problem(path: string, message: string): undefined {
    this.problems.push(`${path}: ${message}`);
    return undefined;
  }

  value(rule: FieldRule, raw: unknown, path: string): unknown {
    const expected = (what: string) => this.problem(path, `Invalid input: expected ${what}, received ${typeName(raw)}`);
    switch (rule.type) {
      case 'duration': {
        const value = parseDuration(raw);
        if (value === undefined) {
          return this.problem(path, `expected a duration like "30s", "250ms" or "2h", got ${quoted(raw)}`);
        }
        if (value < millis(rule.min)) return this.problem(path, `must be at least ${rule.min}`);
        if (value > millis(rule.max)) return this.problem(path, `must be at most ${rule.max}`);
        return value;
      }
      case 'integer':
      case 'number': {
        if (typeof raw !== 'number' || !Number.isFinite(raw)) return expected('number');
        if (rule.type === 'integer' && !Number.isInteger(raw)) return expected('int');
        if (raw < rule.min) return this.problem(path, `Too small: expected number to be >=${rule.min}`);
        if (raw > rule.max) return this.problem(path, `Too big: expected number to be <=${rule.max}`);
        return raw;
      }
      case 'boolean':
        return typeof raw === 'boolean' ? raw : expected('boolean');
      case 'uuid':
        if (typeof raw !== 'string') return expected('string');
        return UUID.test(raw) ? raw : this.problem(path, 'Invalid UUID');
      case 'list': {
        if (!Array.isArray(raw)) return expected('array');
        if (raw.length === 0) return this.problem(path, 'must list at least one of ' + rule.of.join(', '));
        if (new Set(raw).size !== raw.length) return this.problem(path, 'must not repeat a value');
        const unknown = raw.findIndex((item) => !rule.of.includes(item as string));
        if (unknown >= 0) return this.problem(`${path}.${unknown}`, `expected one of ${rule.of.join(', ')}`);
        return [...(raw as string[])];
      }
      case 'oneOf':
        return rule.of.includes(raw as string) ? raw : this.problem(path, `expected one of ${rule.of.join(', ')}`);
      case 'object':
        return this.object(rule.fields, raw, path);
    }
  }

  object(fields: Fields, raw: unknown, path: string): Record<string, unknown> | undefined {
    const at = (key: string) => (path === '' ? key : `${path}.${key}`);
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      return this.problem(path || '(input)', `Invalid input: expected object, received ${typeName(raw)}`);
    }
    const input = raw as Record<string, unknown>;
    const output: Record<string, unknown> = {};
    for (const [key, rule] of Object.entries(fields)) {
      const given = input[key];
      if (given === undefined) {
        if (this.partial || ('optional' in rule && rule.optional)) continue;
        if (rule.type === 'object') output[key] = this.object(rule.fields, {}, at(key));
        else if ('default' in rule && rule.default !== undefined)
          output[key] = rule.type === 'duration' ? millis(rule.default) : copyDefault(rule.default);
        else this.problem(at(key), 'required');
        continue;
      }
      output[key] = this.value(rule, given, at(key));
    }
    for (const [key, rule] of Object.entries(fields)) {
      const other = rule.type === 'duration' ? rule.notBelow : undefined;
      const value = output[key];
      const floor = other === undefined ? undefined : output[other];
      if (typeof value !== 'number' || typeof floor !== 'number' || value >= floor) continue;
      // Only the floor typed, past the default: named, where the message named a field the operator did not type.
      if (input[key] === undefined && other !== undefined && input[other] !== undefined)
        this.problem(at(other), `must not be longer than ${key}, ${ms(value)} by default; give ${key} too`);
      else this.problem(at(key), `${key} must not be shorter than ${other}`);
    }
    for (const key of Object.keys(input)) {
      if (!Object.hasOwn(fields, key)) this.problem(at(cut(key)), 'unknown field');
    }
    return output;
  }
}

export class InvalidInputError extends Error {
  override name = 'InvalidInputError';
  constructor(
    readonly problems: string[],
    what = 'input',
  ) {
    super(`Invalid ${what}: ${problems.join('; ')}`);
  }
}

function bounded(problems: string[]): string[] {
  if (problems.length <= MAX_PROBLEMS) return problems;
  return [...problems.slice(0, MAX_PROBLEMS), `… and ${problems.length - MAX_PROBLEMS} more problems`];
}

/** Validates an input against its fields and applies the defaults; every problem names its field. */
export function validateInput<F extends Fields>(fields: F, raw: unknown, what = 'input'): Validated<F> {
  const checker = new Checker(false);
  const value = checker.object(fields, raw, '');
  if (checker.problems.length > 0) throw new InvalidInputError(bounded(checker.problems), what);
  return value as Validated<F>;
}

/** Validates a change to some of the fields: no defaults are applied, left-out fields stay left out. */
export function validateChange<F extends Fields>(fields: F, raw: unknown, what = 'change'): ValidatedChange<F> {
  const checker = new Checker(true);
  const value = checker.object(fields, raw, '');
  if (checker.problems.length > 0) throw new InvalidInputError(bounded(checker.problems), what);
  return value as ValidatedChange<F>;
}

/** Checks one value against one field's rule, e.g. a CLI flag; `problems` is empty when it is valid. */
export function checkField<R extends FieldRule>(rule: R, raw: unknown, path: string): FieldCheck<R> {
  const checker = new Checker(false);
  const value = checker.value(rule, raw, path);
  return { value: value as Value<R>, problems: checker.problems };
}
