import { InvalidInputError } from './fields.js';

// Checks of the state one run of a workflow hands the next across continue-as-new (a recovery's, a sweep's): the
// Web UI's start form takes it as a second argument, typed by hand. Plain code, no schema library: it runs in the
// workflow sandbox.

export const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
export const isText = (value: unknown): value is string => typeof value === 'string';
export const isBoolean = (value: unknown): value is boolean => typeof value === 'boolean';
export const absentOr = (value: unknown, isValid: (value: unknown) => boolean) =>
  value === undefined || value === null || isValid(value);

/** The problems found in a carried state, each naming its field below `carried`. */
export class CarriedStateProblems {
  private readonly problems: string[] = [];

  /** Records that `field` (a path below `carried`, '' for the whole) is not `expected`, unless `ok`. */
  check(ok: boolean, field: string, expected: string): void {
    if (!ok) this.problems.push(`carried${field && `.${field}`}: expected ${expected}`);
  }

  /** Fails at once on a field no further check can look into (`carried` itself not an object, say). */
  refuse(field: string, expected: string): never {
    this.check(false, field, expected);
    return this.throwIfAny() as never;
  }

  /** Fails as an invalid input does, naming each field, when a check failed. */
  throwIfAny(): void {
    if (this.problems.length > 0) throw new InvalidInputError(this.problems, 'carried state (the second argument)');
  }
}
