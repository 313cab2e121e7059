import { carriedDate, parseCarriedRecovery } from '../../workflows/carried-recovery.js';

// A backoff's start handed to the next run must be a date that run takes: before, a settle time the API dated before
// 1970 went on as is, and the run that continued refused its own carried state (InvalidRecoveryInput).

const BATCH_ID = '5b1d2c9e-7f3a-4e8b-9c6d-0a1b2c3d4e5f';
const carried = (millis: number) => parseCarriedRecovery({ backoffStartedAt: carriedDate(millis) }, BATCH_ID);

test('a backoff begun before 1970 is handed on as 1970, and the next run takes it', () => {
  const goZeroTime = Date.parse('0001-01-01T00:00:00Z');
  expect(carriedDate(goZeroTime)).toBe('1970-01-01T00:00:00.000Z');
  expect(carried(goZeroTime)?.backoffStartedAt).toBe('1970-01-01T00:00:00.000Z');
  expect(() => parseCarriedRecovery({ backoffStartedAt: new Date(goZeroTime).toISOString() }, BATCH_ID)).toThrow(
    /backoffStartedAt/,
  );
});

test('a backoff begun at any time from 1970 to 9999 is handed on unchanged', () => {
  for (const date of ['1970-01-01T00:00:00.000Z', '2026-12-07T11:00:00.123Z', '9999-12-31T23:59:59.999Z'])
    expect(carried(Date.parse(date))?.backoffStartedAt).toBe(date);
});
