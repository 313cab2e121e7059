import { formatReport } from '../../client/format-report.js';
import { formatProgressLine, progressState } from '../../client/progress.js';
import type { RecoveryProgress } from '../../client/recoveries.js';
import { newReport, recordRound, REPORT_LIMITS, type RecoveryReport } from '../../workflows/report.js';

/** A running recovery's progress from a worker's answer, waiting on the poller: what the tests vary starts here. */
function liveProgress(report: RecoveryReport): RecoveryProgress {
  return {
    report,
    running: true,
    source: { kind: 'live' },
    poll: null,
    workflowTaskFailures: 0,
    readsBatchItself: false,
  };
}

function reportWithRounds(): RecoveryReport {
  const report = newReport(
    '3b8f6c1e-2f4a-4c55-9d1e-7a6b5c4d3e2f',
    'recover-batch-x',
    new Date(0),
    new Date(86_400_000),
    3,
  );
  const round = { startedAt: '1970-01-01T00:00:10.000Z', apiMessage: null, failedBefore: 30 };
  recordRound(report, {
    ...round,
    round: 1,
    retriedSessions: 30,
    apiStatus: null,
    failedAfter: 12,
    recovered: 18,
    reconciled: true,
  });
  recordRound(report, {
    ...round,
    round: 2,
    retriedSessions: 12,
    apiStatus: 200,
    failedBefore: 12,
    failedAfter: null,
    recovered: null,
    reconciled: false,
  });
  return report;
}

test('the report shows a reconciled round without status, an open round without result, and caps the failing list', () => {
  const report = reportWithRounds();
  report.stillFailing = {
    total: 40,
    sessions: Array.from({ length: 25 }, (_, index) => ({ itemIndex: index, error: 'pod failed', retryCount: 1 })),
  };

  const lines = formatReport(report, 'http://ui/wf').split('\n');

  expect(lines).toContainEqual(expect.stringMatching(/^ {2}1 +1970-01-01T00:00:10.000Z +30 +- +30→12 +18 +yes$/));
  expect(lines).toContainEqual(expect.stringMatching(/^ {2}2 +\S+ +12 +200 +12→\? +- +no$/));
  expect(lines).toContain('Still failing: 40 sessions (first 10)');
  expect(lines.filter((line) => /^ {2}\d+ +1 +pod failed$/.test(line))).toHaveLength(10);
  expect(lines.at(-1)).toBe('Web UI: http://ui/wf');
});

test('a long recovery shows its first and last rounds, with a line counting those left out between', () => {
  const report = newReport('3b8f6c1e-2f4a-4c55-9d1e-7a6b5c4d3e2f', 'recover-batch-x', new Date(0), new Date(1), 1_000);
  for (let round = 1; round <= 100; round += 1) {
    recordRound(report, {
      round,
      startedAt: '1970-01-01T00:00:10.000Z',
      apiMessage: null,
      retriedSessions: 2,
      apiStatus: 200,
      failedBefore: 2,
      failedAfter: 1,
      recovered: 1,
      reconciled: false,
    });
  }
  const { firstRounds, lastRounds } = REPORT_LIMITS;
  const lines = formatReport(report).split('\n');
  expect(lines).toContain('Rounds: 100 of at most 1000');
  const omitted = 100 - firstRounds - lastRounds;
  const at = lines.indexOf(
    `  … rounds ${firstRounds + 1}-${100 - lastRounds} left out: ${omitted * 2} sessions retried, ${omitted} recovered, 0 reconciled`,
  );
  expect(lines[at - 1]).toMatch(new RegExp(`^ {2}${firstRounds} `));
  expect(lines[at + 1]).toMatch(new RegExp(`^ {2}${100 - lastRounds + 1} `));
  expect(formatProgressLine(progressState(liveProgress(report)))).toMatch(/round 100\/1000/);
});

test('progress after a retry does not show the batch from before it', () => {
  const report = reportWithRounds();
  report.batch = {
    status: 'completed',
    total: 40,
    completed: 10,
    failed: 30,
    processing: 0,
    pending: 0,
    settled: true,
    percentage: 100,
    retryCountTotal: 0,
    failing: [],
    observedAt: '',
  };

  const line = formatProgressLine(progressState(liveProgress(report)));

  expect(line).toBe("the task queue's status poller watches the batch | round 2/3 | waiting for the batch to settle");
});

test("progress while the task queue's poller watches the batch says so, not that no status was read", () => {
  const report = newReport('3b8f6c1e-2f4a-4c55-9d1e-7a6b5c4d3e2f', 'recover-batch-x', new Date(0), new Date(1), 3);
  const progress = liveProgress(report);

  // No awaitBatchSettled pending: the recovery left the reads to the poller (the default mode).
  expect(formatProgressLine(progressState(progress))).toBe(
    "the task queue's status poller watches the batch | round 0/3 | waiting for the batch to settle",
  );
  // Its own status read is pending and has not read the batch yet: its first attempt still out, or failed unread.
  const poll = { attempt: 2, message: 'rate limited', batch: null };
  for (const pending of [{ poll: null }, { poll }])
    expect(formatProgressLine(progressState({ ...progress, ...pending, readsBatchItself: true }))).toBe(
      'no status read yet | round 0/3 | waiting for the batch to settle',
    );
});

test('progress gives the next retry in UTC with its date, as the report does', () => {
  const report = reportWithRounds();
  report.phase = 'backing_off';
  report.nextRetryAt = '2026-12-05T00:30:00.000Z';

  const line = formatProgressLine(progressState(liveProgress(report)));

  // Before, a local time of day ("12:30:00 AM"), with neither date nor zone.
  expect(line).toMatch(/\| next retry at 2026-12-05T00:30:00\.000Z$/);
});

test('a report whose still-failing sessions were not read gives their count and no empty table', () => {
  const report = reportWithRounds();
  report.phase = 'done';
  report.outcome = 'operator_cancelled';
  report.totals.stillFailed = 2;
  // The settle came from the poller's list, which gives counts only, and the recovery ended before reading the batch.
  report.stillFailing = { total: 2, sessions: [] };

  const lines = formatReport(report).split('\n');

  expect(lines).toContain('Still failing: 2 sessions (not read: the last status gave counts only)');
  expect(lines.join('\n')).not.toMatch(/item_index|first 0/);
});
