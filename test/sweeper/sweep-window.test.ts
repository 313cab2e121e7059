import { SWEEP_MAX_WINDOW_MS, sweepWindow } from '../../workflows/sweep-input.js';

const now = Date.parse('2026-12-05T12:00:00.000Z');
const hour = 3_600_000;
const iso = (at: number) => new Date(at).toISOString();

test('a sweep with no completed sweep before it, or one whose window ended within its lookback, scans its lookback', () => {
  const lookbackWindow = { window: { createdAfter: iso(now - 24 * hour), createdBefore: iso(now) }, reachedBack: null };
  expect(sweepWindow(now, 24 * hour, null)).toEqual(lookbackWindow);
  expect(sweepWindow(now, 24 * hour, { workflowId: 'sweep-a', windowEnd: iso(now - 15 * 60_000) })).toEqual(
    lookbackWindow,
  );
  // An end no date can be read from says nothing of a gap.
  expect(sweepWindow(now, 24 * hour, { workflowId: 'sweep-a', windowEnd: 'soon' })).toEqual(lookbackWindow);
});

test('a sweep reaches back to where the last completed window ended, at most the longest lookback', () => {
  const ended = iso(now - 30 * hour);
  expect(sweepWindow(now, 24 * hour, { workflowId: 'sweep-a', windowEnd: ended })).toEqual({
    window: { createdAfter: ended, createdBefore: iso(now) },
    reachedBack: { workflowId: 'sweep-a', windowEnd: ended, cut: false },
  });
  const longAgo = iso(now - SWEEP_MAX_WINDOW_MS - hour);
  expect(sweepWindow(now, 24 * hour, { workflowId: 'sweep-b', windowEnd: longAgo })).toEqual({
    window: { createdAfter: iso(now - SWEEP_MAX_WINDOW_MS), createdBefore: iso(now) },
    reachedBack: { workflowId: 'sweep-b', windowEnd: longAgo, cut: true },
  });
});
