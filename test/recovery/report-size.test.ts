import { ApplicationFailure } from '@temporalio/common';
import { recoveryWorkflowId } from '../../workflows/definitions.js';
import {
  cutText,
  newReport,
  recordFailure,
  recordLastError,
  recordRound,
  recordSettledBatch,
  REPORT_LIMITS,
  REPORT_MAX_BYTES,
  roundsDone,
  type BatchSnapshot,
  type RecoveryReport,
} from '../../workflows/report.js';
import {
  newSweepResult,
  recordSkipped,
  recordStarted,
  SWEEP_RESULT_ITEMS,
  SWEEP_RESULT_MAX_BYTES,
  sweepFailureOf,
  sweepWindow,
} from '../../workflows/sweep-input.js';
import { FAST_POLICY, startRecoveryEnv, type RecoveryEnv } from '../helpers/recovery-env.js';

const allFail = (count: number) =>
  Object.fromEntries(Array.from({ length: count }, (_, index) => [String(index), 'always-fail' as const]));

const jsonBytes = (value: unknown) => Buffer.byteLength(JSON.stringify(value), 'utf8');

// The costliest characters in JSON: control characters and lone surrogates (6 bytes escaped), 3-byte
// characters, 4-byte pairs; each text of the worst case is 100 KB of one of them.
const COSTLY = ['\u0001', '\ud800', '中', '😀', '"'];
const HOSTILE_TEXTS = COSTLY.map((char) => char.repeat(100_000));
const hostileText = (seed: number) => HOSTILE_TEXTS[seed % HOSTILE_TEXTS.length] as string;

function snapshot(sessions: number, seed: number): BatchSnapshot {
  return {
    status: 'failed',
    total: sessions,
    completed: 0,
    failed: sessions,
    processing: 0,
    pending: 0,
    settled: true,
    percentage: 100,
    retryCountTotal: Number.MAX_SAFE_INTEGER,
    failing: Array.from({ length: sessions }, (_, itemIndex) => ({
      itemIndex,
      error: hostileText(seed + itemIndex),
      retryCount: Number.MAX_SAFE_INTEGER,
    })),
    observedAt: new Date(8.64e15).toISOString(),
  };
}

/** A recovery of a 1,000-session batch whose errors are 100 KB each, through 1,000 rounds and 20 continue-as-new. */
function worstCaseReport(seed: number): RecoveryReport {
  const start = new Date(0);
  let report = newReport(
    '6f1c2a9e-4b7d-4c1e-9a3f-2d5e8b7c0a14',
    // Temporal's default limit on a workflow id is 1,000 characters.
    '中'.repeat(1_000),
    start,
    new Date(8.64e15),
    1_000,
  );
  for (let round = 1; round <= 1_000; round += 1) {
    recordRound(report, {
      round,
      startedAt: new Date(8.64e15).toISOString(),
      retriedSessions: 1_000,
      apiStatus: 200,
      apiMessage: hostileText(seed + round),
      failedBefore: 1_000,
      failedAfter: null,
      recovered: null,
      reconciled: round % 2 === 0,
      reconcileEffect: 'unknown',
      reconcileReason: hostileText(seed + round + 1),
      callsSent: Number.MAX_SAFE_INTEGER,
      callsNotSent: Number.MAX_SAFE_INTEGER,
    });
    recordSettledBatch(report, snapshot(1_000, seed + round));
    recordLastError(report, hostileText(seed), hostileText(seed + 1), new Date(8.64e15));
    // Continue-as-new carries the report as JSON.
    if (round % 50 === 0) {
      report = JSON.parse(JSON.stringify(report)) as RecoveryReport;
      report.continuedAsNew += 1;
    }
  }
  recordFailure(report, hostileText(seed + 2), hostileText(seed + 3));
  report.outcome = 'exhausted';
  report.finishedAt = new Date(8.64e15).toISOString();
  report.nextRetryAt = new Date(8.64e15).toISOString();
  return report;
}

test('the worst-case report stays within its documented maximum size', () => {
  const sizes = COSTLY.map((_, seed) => jsonBytes(worstCaseReport(seed)));
  const largest = Math.max(...sizes);
  console.log(`worst-case RecoveryReport: ${largest} bytes of JSON (limit ${REPORT_MAX_BYTES})`);
  expect(largest).toBeLessThanOrEqual(REPORT_MAX_BYTES);
  // Not far below either: the documented figure is the real bound, not a guess.
  expect(largest).toBeGreaterThan(REPORT_MAX_BYTES * 0.8);
});

test('rounds past the first and last ones are folded into counts, so nothing is lost from the totals', () => {
  const report = worstCaseReport(2);
  const { firstRounds, lastRounds } = REPORT_LIMITS;
  expect(report.rounds.map((round) => round.round)).toEqual([
    ...Array.from({ length: firstRounds }, (_, i) => i + 1),
    ...Array.from({ length: lastRounds }, (_, i) => 1_000 - lastRounds + i + 1),
  ]);
  expect(report.omittedRounds).toEqual({
    count: 1_000 - firstRounds - lastRounds,
    firstRound: firstRounds + 1,
    lastRound: 1_000 - lastRounds,
    retriedSessions: (1_000 - firstRounds - lastRounds) * 1_000,
    recovered: 0,
    reconciled: (1_000 - firstRounds - lastRounds) / 2,
  });
  expect(roundsDone(report)).toBe(1_000);
  expect(report.totals.retriedSessions).toBe(1_000_000);
  expect(report.stillFailing.sessions).toHaveLength(REPORT_LIMITS.failingSessions);
  expect(report.stillFailing.total).toBe(1_000);
});

test('texts are cut to their documented length, marked, and never split a character', () => {
  expect(cutText('short')).toBe('short');
  const cut = cutText('a'.repeat(10_000));
  expect(cut).toHaveLength(REPORT_LIMITS.textChars);
  expect(cut.endsWith('…')).toBe(true);
  // A pair cut in half and a control character become replacement characters, not 6-byte escapes.
  expect(cutText(`${'x'.repeat(REPORT_LIMITS.textChars - 2)}😀 more`)).toBe(
    `${'x'.repeat(REPORT_LIMITS.textChars - 2)}\ufffd…`,
  );
  expect(cutText('a\u0000b\nc')).toBe('a\ufffdb\nc');
});

test('a sweep of any size lists its first items and counts them all', () => {
  const result = newSweepResult(
    { createdAfter: new Date(0).toISOString(), createdBefore: new Date(8.64e15).toISOString() },
    ['failed', 'completed'],
    Number.MAX_SAFE_INTEGER,
  );
  const hostileIds = HOSTILE_TEXTS.map((text) => text.slice(0, 1_000));
  const hostileId = (i: number) => hostileIds[i % hostileIds.length] as string;
  for (let i = 0; i < 1_000; i += 1) recordStarted(result, hostileId(i), hostileId(i + 1));
  for (let i = 0; i < 100_000; i += 1) recordSkipped(result, hostileId(i), i % 2 ? 'no_failed_sessions' : 'over_limit');
  // One date however many were left out, or listed still unsettled: the longest an ISO date gets.
  const longestDate = new Date(-8.64e15).toISOString();
  result.oldestLeftCreatedAt = longestDate;
  result.oldestUnsettledCreatedAt = longestDate;
  // Reaching back past the lookback, to a sweep of a hostile id, as far as a date goes, and stopped by a failure of
  // hostile type and message: the largest over every mix of the costly characters.
  const variants = HOSTILE_TEXTS.flatMap((idText) =>
    HOSTILE_TEXTS.flatMap((typeText) =>
      HOSTILE_TEXTS.map((messageText) => ({
        ...sweepWindow(8.64e15, 60_000, { workflowId: idText, windowEnd: longestDate }),
        failure: sweepFailureOf(ApplicationFailure.create({ type: typeText, message: messageText })),
      })),
    ),
  );
  const largest = variants.reduce((a, b) => (jsonBytes({ ...result, ...a }) >= jsonBytes({ ...result, ...b }) ? a : b));
  Object.assign(result, largest);
  expect(result.reachedBack).toMatchObject({ cut: true, windowEnd: longestDate });
  expect(result.failure).not.toBeNull();
  expect(result.started).toHaveLength(SWEEP_RESULT_ITEMS);
  expect(result.skipped).toHaveLength(SWEEP_RESULT_ITEMS);
  expect(result.counts).toMatchObject({ started: 1_000, no_failed_sessions: 50_000, over_limit: 50_000 });
  const size = jsonBytes(result);
  console.log(`worst-case SweepResult: ${size} bytes of JSON (limit ${SWEEP_RESULT_MAX_BYTES})`);
  expect(size).toBeLessThanOrEqual(SWEEP_RESULT_MAX_BYTES);
});

describe('on a real server', () => {
  let env: RecoveryEnv;
  beforeAll(async () => {
    env = await startRecoveryEnv();
    await env.startWorker();
  });
  afterAll(() => env.close());

  test('a batch whose sessions fail with 100 KB errors ends with a bounded report and a small history', async () => {
    // 30 sessions of 100 KB: together over Temporal's 2 MB payload limit if the errors were kept whole.
    const batch = env.simulator.createScriptedBatch({ count: 30, error_chars: 100_000, script: allFail(30) });
    await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY, maxRounds: 2 });
    const report = await env.recoveries.result(batch.id);

    expect(report.outcome).toBe('exhausted');
    expect(report.rounds).toHaveLength(2);
    expect(report.stillFailing.total).toBe(30);
    expect(report.stillFailing.sessions).toHaveLength(REPORT_LIMITS.failingSessions);
    for (const session of report.stillFailing.sessions) {
      expect(session.error).toMatch(
        /^Browser pod failed to start: .* \(attempt 3\) \| at provisioner\.startPod.* … \[cut at 500 of 100000 chars\]$/,
      );
      expect(session.error).toHaveLength(REPORT_LIMITS.textChars);
    }
    expect(jsonBytes(report)).toBeLessThanOrEqual(REPORT_MAX_BYTES);
    const history = await env.client.workflow.getHandle(recoveryWorkflowId(batch.id)).fetchHistory();
    // Well below the server's 512 KB history-size warning, let alone its limits.
    expect(jsonBytes(history)).toBeLessThan(200_000);
  });
});
