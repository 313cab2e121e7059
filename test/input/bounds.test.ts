import ms from 'ms';
import { checkField, InvalidInputError, type FieldRule, type Fields } from '../../workflows/fields.js';
import {
  recoverBatchFields,
  recoveryListFields,
  sweepFields,
  sweepScheduleFields,
} from '../../workflows/input-fields.js';
import { applyPolicyChange, parseRecoverBatchInput, requirePolicyChange } from '../../workflows/input.js';
import { parseSweepInput } from '../../workflows/sweep-input.js';

const batchId = '6f1c2a9e-4b7d-4c1e-9a3f-2d5e8b7c0a14';

function problemsOf(run: () => unknown): string[] {
  try {
    run();
  } catch (err) {
    if (err instanceof InvalidInputError) return err.problems;
    throw err;
  }
  throw new Error('expected the input to be rejected');
}

/** Every bounded field of a table, at any depth, with its path. */
function boundedFields(fields: Fields, prefix = ''): [string, FieldRule & { min: unknown; max: unknown }][] {
  return Object.entries(fields).flatMap(([key, rule]): [string, FieldRule & { min: unknown; max: unknown }][] => {
    const path = prefix + key;
    if (rule.type === 'object') return boundedFields(rule.fields, `${path}.`);
    return 'min' in rule ? [[path, rule]] : [];
  });
}

const tables = { recoverBatchFields, sweepFields, sweepScheduleFields, recoveryListFields };

describe.each(Object.entries(tables))('%s', (_name, fields) => {
  test.each(boundedFields(fields))('%s: its default lies within its bounds', (path, rule) => {
    if (!('default' in rule) || rule.default === undefined) return;
    expect(checkField(rule, rule.default, path).problems).toEqual([]);
  });

  test.each(boundedFields(fields))('%s: a value above its maximum is refused, naming the field', (path, rule) => {
    const max = typeof rule.max === 'number' ? rule.max : ms(rule.max as '1s');
    const tooBig = rule.type === 'duration' ? `${max * 1_000_000_000}ms` : max + 1;
    const { problems } = checkField(rule, tooBig, path);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(new RegExp(`^${path.replace('.', '\\.')}: (must be at most|Too big)`));
  });
});

test('a deadline of a billion years is refused naming the field, instead of an invalid date in the workflow', () => {
  expect(problemsOf(() => parseRecoverBatchInput({ batchId, deadline: '1000000000y' }))).toEqual([
    'deadline: must be at most 365d',
  ]);
  expect(problemsOf(() => parseRecoverBatchInput({ batchId, deadline: 1e300 }))).toEqual([
    'deadline: must be at most 365d',
  ]);
  expect(parseRecoverBatchInput({ batchId, deadline: '365d' }).deadline).toBe(ms('365d'));
});

test('the messages name each field the way operators know them', () => {
  expect(
    problemsOf(() =>
      parseRecoverBatchInput({
        batchId: 'nope',
        maxRetries: 7,
        maxRounds: 1.5,
        retryFailedOnly: 'yes',
        poll: { initialInterval: 'soon', backoffCoefficient: 0.5 },
        roundBackoff: { initialInterval: '2m', maximumInterval: '1m' },
        maxRound: 2,
      }),
    ),
  ).toEqual([
    'batchId: Invalid UUID',
    'maxRetries: Too big: expected number to be <=3',
    'retryFailedOnly: Invalid input: expected boolean, received string',
    'maxRounds: Invalid input: expected int, received number',
    'roundBackoff.maximumInterval: maximumInterval must not be shorter than initialInterval',
    'poll.initialInterval: expected a duration like "30s", "250ms" or "2h", got "soon"',
    'poll.backoffCoefficient: Too small: expected number to be >=1',
    'maxRound: unknown field',
  ]);
  expect(problemsOf(() => parseSweepInput({ fanOut: Number('ten') }))).toEqual([
    'fanOut: Invalid input: expected number, received NaN',
  ]);
  expect(problemsOf(() => parseRecoverBatchInput('x'))).toEqual([
    '(input): Invalid input: expected object, received string',
  ]);
});

test("an empty duration is refused naming the field, as the Web UI's start form can send one", () => {
  // Before: ms()'s own "val is not a non-empty string or a valid number", a plain error naming no field.
  expect(problemsOf(() => parseRecoverBatchInput({ batchId, deadline: '' }))).toEqual([
    'deadline: expected a duration like "30s", "250ms" or "2h", got ""',
  ]);
  expect(problemsOf(() => parseSweepInput({ lookback: '' }))).toEqual([
    'lookback: expected a duration like "30s", "250ms" or "2h", got ""',
  ]);
});

test('an initial interval typed alone past the default maximum is refused naming it, in a start and a sweep', () => {
  // Before: `roundBackoff.maximumInterval: maximumInterval must not be shorter than initialInterval`, a field the
  // operator did not type.
  expect(problemsOf(() => parseRecoverBatchInput({ batchId, roundBackoff: { initialInterval: '20m' } }))).toEqual([
    'roundBackoff.initialInterval: must not be longer than maximumInterval, 10m by default; give maximumInterval too',
  ]);
  expect(problemsOf(() => parseSweepInput({ recovery: { poll: { initialInterval: '3m' } } }))).toEqual([
    'recovery.poll.initialInterval: must not be longer than maximumInterval, 2m by default; give maximumInterval too',
  ]);
});

test('defaults apply, durations become milliseconds, and defaults are not shared between inputs', () => {
  const policy = parseRecoverBatchInput({ batchId, poll: { initialInterval: '1s' } });
  expect(policy).toEqual({
    batchId,
    maxRetries: 1,
    retryFailedOnly: true,
    maxRounds: 3,
    roundBackoff: { initialInterval: 30_000, backoffCoefficient: 2, maximumInterval: 600_000 },
    poll: { initialInterval: 1_000, backoffCoefficient: 1.5, maximumInterval: 120_000 },
    deadline: 86_400_000,
    continueAsNewAfterEvents: 10_000,
  });
  const first = parseSweepInput({});
  first.statuses.pop();
  expect(parseSweepInput({}).statuses).toEqual(['failed', 'completed']);
});

test('a policy change is bounded like the input, naming the field', () => {
  const policy = parseRecoverBatchInput({ batchId });
  expect(problemsOf(() => applyPolicyChange(policy, { poll: { maximumInterval: '1000000000y' } }))).toEqual([
    'poll.maximumInterval: must be at most 1h',
  ]);
  expect(problemsOf(() => applyPolicyChange(policy, { maxRounds: 1001, deadline: '1h' }))).toEqual([
    'maxRounds: Too big: expected number to be <=1000',
    'deadline: unknown field',
  ]);
  // The merged policy is checked as a whole: a new maximum below the running initial interval is refused.
  expect(problemsOf(() => applyPolicyChange(policy, { roundBackoff: { maximumInterval: '10s' } }))).toEqual([
    'roundBackoff.maximumInterval: maximumInterval must not be shorter than initialInterval',
  ]);
  // An initial interval typed alone is refused naming it, with the running maximum it passes.
  expect(problemsOf(() => applyPolicyChange(policy, { poll: { initialInterval: '5m' } }))).toEqual([
    'poll.initialInterval: must not be longer than the running maximumInterval (2m); change both',
  ]);
  expect(applyPolicyChange(policy, { poll: { initialInterval: '5m', maximumInterval: '10m' } }).poll).toMatchObject({
    initialInterval: 300_000,
    maximumInterval: 600_000,
  });
  expect(applyPolicyChange(policy, { roundBackoff: { initialInterval: '100ms' } }).roundBackoff).toEqual({
    initialInterval: 100,
    backoffCoefficient: 2,
    maximumInterval: 600_000,
  });
});

test('a policy change that sets no field at any depth is refused, naming each group left empty', () => {
  const groupFields = 'initialInterval, backoffCoefficient, maximumInterval';
  for (const nothing of [null, undefined, {}, { maxRounds: undefined }]) {
    expect(problemsOf(() => requirePolicyChange(nothing))).toEqual([
      'give at least one of maxRounds, maxRetries, retryFailedOnly, roundBackoff, poll',
    ]);
  }
  // Before, taken: a success that changed nothing.
  expect(problemsOf(() => requirePolicyChange({ roundBackoff: {} }))).toEqual([
    `roundBackoff: give at least one of ${groupFields}`,
  ]);
  expect(problemsOf(() => requirePolicyChange({ roundBackoff: { initialInterval: undefined }, poll: {} }))).toEqual([
    `roundBackoff: give at least one of ${groupFields}`,
    `poll: give at least one of ${groupFields}`,
  ]);
  // A field set anywhere is a change; what is wrong with the rest is for the validation that follows to name.
  for (const change of [
    { roundBackoff: {}, maxRounds: 5 },
    { poll: { maximumInterval: '1m' } },
    { roundBackoff: null },
    { roundBackoff: { initialInteval: '1s' } },
    { roundBackof: {} },
    'five',
  ]) {
    expect(() => requirePolicyChange(change)).not.toThrow();
  }
});

test('the sweep input is bounded, including the recovery policy it applies', () => {
  expect(
    problemsOf(() =>
      parseSweepInput({
        lookback: '1000000000y',
        statuses: ['failed', 'failed'],
        maxStarts: 1e9,
        recovery: { deadline: '0s' },
      }),
    ),
  ).toEqual([
    'lookback: must be at most 90d',
    'statuses: must not repeat a value',
    'maxStarts: Too big: expected number to be <=1000',
    'recovery.deadline: must be at least 1s',
  ]);
  expect(problemsOf(() => parseSweepInput({ statuses: ['failed', 'running'] }))).toEqual([
    'statuses.1: expected one of failed, completed',
  ]);
});

test('a hostile input cannot make the failure message large: names and values are cut, problems capped', () => {
  const hugeKey = 'k'.repeat(1_500_000);
  const hostile = { batchId, [hugeKey]: 1, deadline: 'x'.repeat(1_000_000) } as Record<string, unknown>;
  for (let i = 0; i < 1_000; i += 1) hostile[`extra${i}`] = i;
  const error = (() => {
    try {
      parseRecoverBatchInput(hostile);
    } catch (err) {
      return err as InvalidInputError;
    }
    throw new Error('expected the input to be rejected');
  })();
  expect(error.problems).toHaveLength(21);
  expect(error.problems[0]).toMatch(/^deadline: expected a duration .*, got "x{63}…$/);
  expect(error.problems[1]).toBe(`${'k'.repeat(64)}…: unknown field`);
  expect(error.problems[20]).toBe('… and 982 more problems');
  expect(error.message.length).toBeLessThan(2_000);
});
