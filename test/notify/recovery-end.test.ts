import { recoveryEnd } from '../../workflows/recovery-details.js';
import { newReport, recordFailure, recordLastError } from '../../workflows/report.js';

// What the workflow hands the notify activity of an end: its reason.

const BATCH_ID = '5b1d2c9e-7f3a-4e8b-9c6d-0a1b2c3d4e5f';
const report = () => newReport(BATCH_ID, `recover-batch-${BATCH_ID}`, new Date(), new Date(Date.now() + 3_600_000), 3);

test('an end that did not fail gives the last API error it waited out with its time: it may be long past', () => {
  const exhausted = { ...report(), outcome: 'exhausted' as const };
  // A 429 of the first round, before rounds that went well. Before, the end's reason read as if it were why.
  recordLastError(exhausted, 'rate_limited', 'HTTP 429', new Date('2026-12-07T10:00:00Z'));
  expect(recoveryEnd(exhausted)?.reason).toBe('last API error, at 2026-12-07T10:00:00.000Z: rate_limited: HTTP 429');
  expect(recoveryEnd({ ...report(), outcome: 'exhausted' })?.reason).toBeNull();
});

test('a failed end gives its failure as it is, the last API error left out', () => {
  const failed = report();
  recordLastError(failed, 'rate_limited', 'HTTP 429', new Date('2026-12-07T10:00:00Z'));
  recordFailure(failed, 'unauthorized', 'the key was revoked');
  expect(recoveryEnd(failed)).toMatchObject({ outcome: 'failed', reason: 'unauthorized: the key was revoked' });
});
