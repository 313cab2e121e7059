import { parseRecoverBatchInput } from '../../workflows/input.js';
import {
  FAILING_SHOWN,
  recoveryMemo,
  recoveryStaticDetails,
  recoverySummary,
  renderRecoveryDetails,
  ROUNDS_SHOWN,
} from '../../workflows/recovery-details.js';
import { newReport, recordRound, recordSettledBatch, type BatchSnapshot } from '../../workflows/report.js';

const batchId = '6f1c0f3e-2a4b-4c1d-9e8f-0a1b2c3d4e5f';

function snapshot(failed: number): BatchSnapshot {
  return {
    status: 'failed',
    total: 40,
    completed: 40 - failed,
    failed,
    processing: 0,
    pending: 0,
    settled: true,
    percentage: 100,
    retryCountTotal: 0,
    failing: Array.from({ length: failed }, (_, index) => ({ itemIndex: index, error: 'pod | failed', retryCount: 1 })),
    observedAt: '2026-11-29T22:00:05.000Z',
  };
}

test('the static summary is the batch and the policy in one line; the details are the policy as a table', () => {
  const policy = parseRecoverBatchInput({ batchId });

  expect(recoverySummary(policy)).toBe(
    `Recover batch ${batchId} · up to 3 rounds of failed sessions · 1 attempt per session · backoff 30s→10m · deadline 1d`,
  );
  expect(recoveryStaticDetails(policy).split('\n')).toContain('| Status reads | 5s, ×1.5, at most 2m |');
});

test('the live details show the phase, a table of rounds and what still fails, escaped for markdown', () => {
  const report = newReport(batchId, 'wf', new Date('2026-11-29T22:00:00Z'), new Date('2026-11-30T22:00:00Z'), 3);
  recordSettledBatch(report, snapshot(2));
  recordRound(report, {
    round: 1,
    startedAt: '2026-11-29T22:00:10.000Z',
    retriedSessions: 2,
    apiStatus: 200,
    apiMessage: null,
    failedBefore: 2,
    failedAfter: null,
    recovered: null,
    reconciled: false,
  });
  recordSettledBatch(report, snapshot(1));
  report.phase = 'backing_off';
  report.nextRetryAt = '2026-11-29T22:01:10.000Z';

  const lines = renderRecoveryDetails(report).split('\n');

  expect(lines[0]).toBe('**Backing off**: retry round 2 at 2026-11-29 22:01:10 UTC');
  expect(lines).toContain('| 1 | 2026-11-29 22:00:10 UTC | 2 | 200 | 2 → 1 | 1 |');
  expect(lines).toContain('### Still failing (1)');
  expect(lines).toContain('| 0 | 1 | pod \\| failed |');
});

test('the memo keeps the latest rounds and the first failing sessions only', () => {
  const report = newReport(batchId, 'wf', new Date(), new Date(), 1000);
  recordSettledBatch(report, snapshot(30));
  for (let round = 1; round <= ROUNDS_SHOWN + 5; round += 1) {
    recordRound(report, {
      round,
      startedAt: '',
      retriedSessions: 1,
      apiStatus: 200,
      apiMessage: null,
      failedBefore: 30,
      failedAfter: 30,
      recovered: 0,
      reconciled: false,
    });
  }

  const memo = recoveryMemo(report, new Date('2026-11-29T22:00:00Z'));

  expect(memo.roundsOmitted).toBe(5);
  expect(memo.report.rounds.map((round) => round.round)[0]).toBe(6);
  expect(memo.report.stillFailing).toMatchObject({ total: 30 });
  expect(memo.report.stillFailing.sessions).toHaveLength(FAILING_SHOWN);
  expect(memo.report.batch?.failing).toEqual([]);
  expect(memo.recordedAt).toBe('2026-11-29T22:00:00.000Z');
});
