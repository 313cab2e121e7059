import {
  completedSweepEnd,
  SWEEP_MAX_WINDOW_MS,
  SWEEP_REACH_BACK_OVERLAP_MS,
  sweepWindow,
} from '../../workflows/sweep-input.js';

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

test('a completed sweep got to 30 s before its window end, or the oldest batch it left out when that is earlier', () => {
  // Before, a millisecond: a batch the API dated just before a window's end, but listed only after that sweep read it,
  // was in no window once the next sweep reached back.
  expect(SWEEP_REACH_BACK_OVERLAP_MS).toBe(30_000);
  const window = { createdAfter: iso(now - 24 * hour), createdBefore: iso(now) };
  // A sweep recorded before oldestLeftCreatedAt, and one that left no batch out: 30 s before its window's end.
  expect(completedSweepEnd({ window })).toBe(iso(now - SWEEP_REACH_BACK_OVERLAP_MS));
  expect(completedSweepEnd({ window: { ...window, createdBefore: '2026-12-05T13:00:00+01:00' } })).toBe(
    '2026-12-05T11:59:30.000Z',
  );
  expect(completedSweepEnd({ window, oldestLeftCreatedAt: null })).toBe(iso(now - SWEEP_REACH_BACK_OVERLAP_MS));
  // Before, a sweep that left batches over_limit or start_failed got to its window's end all the same.
  expect(completedSweepEnd({ window, oldestLeftCreatedAt: iso(now - 20 * hour) })).toBe(
    iso(now - 20 * hour - SWEEP_REACH_BACK_OVERLAP_MS),
  );
  expect(completedSweepEnd({ window, oldestLeftCreatedAt: iso(now) })).toBe(iso(now - SWEEP_REACH_BACK_OVERLAP_MS));
  // A batch the list dated after the window's end (its clock ahead) does not move the end forward.
  expect(completedSweepEnd({ window, oldestLeftCreatedAt: iso(now + hour) })).toBe(
    iso(now - SWEEP_REACH_BACK_OVERLAP_MS),
  );
  // Before, a sweep that listed a batch still processing got to its window's end all the same: a batch that ran past
  // the lookback was in no later window. The earliest of the three counts.
  expect(completedSweepEnd({ window, oldestUnsettledCreatedAt: null })).toBe(iso(now - SWEEP_REACH_BACK_OVERLAP_MS));
  expect(completedSweepEnd({ window, oldestUnsettledCreatedAt: iso(now - 20 * hour) })).toBe(
    iso(now - 20 * hour - SWEEP_REACH_BACK_OVERLAP_MS),
  );
  expect(
    completedSweepEnd({ window, oldestLeftCreatedAt: iso(now - 2 * hour), oldestUnsettledCreatedAt: iso(now - hour) }),
  ).toBe(iso(now - 2 * hour - SWEEP_REACH_BACK_OVERLAP_MS));
  expect(
    completedSweepEnd({ window, oldestLeftCreatedAt: iso(now - hour), oldestUnsettledCreatedAt: iso(now - 2 * hour) }),
  ).toBe(iso(now - 2 * hour - SWEEP_REACH_BACK_OVERLAP_MS));
  expect(completedSweepEnd({ window, oldestUnsettledCreatedAt: iso(now + hour) })).toBe(
    iso(now - SWEEP_REACH_BACK_OVERLAP_MS),
  );
  // No date, where a window's end or the oldest batch left out or unsettled goes: the lookup passes the sweep over.
  expect(completedSweepEnd(undefined)).toBeNull();
  expect(completedSweepEnd({ window: { ...window, createdBefore: 'soon' } })).toBeNull();
  expect(completedSweepEnd({ window, oldestLeftCreatedAt: 'yesterday' })).toBeNull();
  expect(completedSweepEnd({ window, oldestLeftCreatedAt: `${iso(now)}${' '.repeat(40)}` })).toBeNull();
  expect(completedSweepEnd({ window, oldestUnsettledCreatedAt: 'yesterday' })).toBeNull();
});

test('a schedule whose sweeps all complete never reaches back for the overlap, even at the shortest interval', () => {
  // Every minute, a lookback of two (at least twice the interval): the last sweep's window ended a minute ago.
  const lastEnd = completedSweepEnd({
    window: { createdAfter: iso(now - 3 * 60_000), createdBefore: iso(now - 60_000) },
  }) as string;
  expect(sweepWindow(now, 2 * 60_000, { workflowId: 'sweep-a', windowEnd: lastEnd }).reachedBack).toBeNull();
  // Started up to 30 s late (a busy worker, a slow first task), it does not reach back either.
  expect(sweepWindow(now + 30_000, 2 * 60_000, { workflowId: 'sweep-a', windowEnd: lastEnd }).reachedBack).toBeNull();
  // After a sweep skipped, it reaches back past the last one's end by the overlap.
  expect(sweepWindow(now + 60_000, 2 * 60_000, { workflowId: 'sweep-a', windowEnd: lastEnd })).toEqual({
    window: { createdAfter: iso(now - 90_000), createdBefore: iso(now + 60_000) },
    reachedBack: { workflowId: 'sweep-a', windowEnd: iso(now - 90_000), cut: false },
  });
});

test('a sweep reaches back to 30 s before the oldest batch its last completed sweep left out, at most 90 days', () => {
  // The sweep an hour ago reached back itself, and left out a batch created 30 hours ago.
  const lastWindow = { createdAfter: iso(now - 40 * hour), createdBefore: iso(now - hour) };
  const reachedTo = completedSweepEnd({ window: lastWindow, oldestLeftCreatedAt: iso(now - 30 * hour) }) as string;
  expect(sweepWindow(now, 24 * hour, { workflowId: 'sweep-a', windowEnd: reachedTo })).toEqual({
    window: { createdAfter: iso(now - 30 * hour - SWEEP_REACH_BACK_OVERLAP_MS), createdBefore: iso(now) },
    reachedBack: { workflowId: 'sweep-a', windowEnd: iso(now - 30 * hour - SWEEP_REACH_BACK_OVERLAP_MS), cut: false },
  });
  // A backlog left out for longer than the longest lookback: the window stops there.
  const longAgo = now - SWEEP_MAX_WINDOW_MS - hour;
  const cutAt = completedSweepEnd({
    window: { createdAfter: iso(longAgo - hour), createdBefore: iso(now - hour) },
    oldestLeftCreatedAt: iso(longAgo),
  }) as string;
  expect(sweepWindow(now, 24 * hour, { workflowId: 'sweep-b', windowEnd: cutAt })).toEqual({
    window: { createdAfter: iso(now - SWEEP_MAX_WINDOW_MS), createdBefore: iso(now) },
    reachedBack: { workflowId: 'sweep-b', windowEnd: iso(longAgo - SWEEP_REACH_BACK_OVERLAP_MS), cut: true },
  });
});
