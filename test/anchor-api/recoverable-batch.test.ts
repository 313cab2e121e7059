import { MalformedResponseError, requireRecoverableBatch } from '../../anchor-api/index.js';
import type { BatchStatusDetail } from '../../anchor-api/index.js';
import { isSettled, toBatchSnapshot } from '../../activities/batch-snapshot.js';
import { COUNTERS_CATCH_UP_MS } from '../../anchor-api/batch-status.js';

const read = (detail: BatchStatusDetail) => requireRecoverableBatch(detail, 'b1');
const now = Date.parse('2026-12-07T12:00:00.000Z');
const settled = (detail: BatchStatusDetail) => isSettled(read(detail), now);
const sessions = (statuses: ('completed' | 'failed')[]) =>
  statuses.map((status, index) => ({ item_index: index, status, retry_count: 0 }));

describe('the counts of a finished batch', () => {
  test('a counter left out at 0 is 0 when the others account for every request', () => {
    const batch = read({ status: 'failed', total_requests: 10, completed_requests: 8, failed_requests: 2 });
    expect(batch.counts).toEqual({ total: 10, completed: 8, failed: 2, pending: 0, processing: 0 });
    expect(isSettled(batch, now)).toBe(true);
    // Failed too, when the completed ones are all of them.
    expect(read({ status: 'completed', total_requests: 3, completed_requests: 3 }).counts).toEqual({
      total: 3,
      completed: 3,
      failed: 0,
      pending: 0,
      processing: 0,
    });
  });

  test('a list of part of the requests, with no counters to go by, is refused: it took a failing batch for clean', () => {
    // Before: 0 failed, counted from the one session listed, and the recovery ended `clean`.
    const partial = () =>
      read({ status: 'completed', total_requests: 10, failed_requests: 2, sessions: sessions(['completed']) });
    expect(partial).toThrow(MalformedResponseError);
    expect(partial).toThrow(/data\.sessions: lists 1 of the batch's 10 requests/);
  });

  test('a list of part of the requests while the batch runs, or once cancelled, gives the counts it shows', () => {
    for (const status of ['processing', 'cancelled'] as const) {
      const batch = read({ status, total_requests: 10, sessions: sessions(['failed', 'completed']) });
      expect(batch).toMatchObject({ countsSource: 'sessions', countsDescribeBatch: false });
      expect(batch.counts.failed).toBe(1);
    }
  });

  test('counters that do not account for every request leave a finished batch unsettled, or give way to a full list', () => {
    const behind = {
      status: 'failed',
      total_requests: 4,
      completed_requests: 0,
      failed_requests: 0,
      pending_requests: 0,
      processing_requests: 0,
    } as const;
    // Before: settled with 0 failed, and the recovery ended `clean`.
    const counted = read(behind);
    expect(counted.countsDescribeBatch).toBe(false);
    expect(isSettled(counted, now)).toBe(false);
    const listed = read({ ...behind, sessions: sessions(['failed', 'completed', 'failed', 'completed']) });
    expect(listed).toMatchObject({ countsSource: 'sessions', countsDescribeBatch: true });
    expect(listed.counts).toEqual({ total: 4, completed: 2, failed: 2, pending: 0, processing: 0 });
    expect(isSettled(listed, now)).toBe(true);
    // Cancelled sessions are in no counter: a cancelled batch is settled all the same.
    expect(settled({ ...behind, status: 'cancelled' })).toBe(true);
    // Dated by the API: catching up for 5 minutes after its completion, then taken as they are (sessions in no
    // counter), rather than hold the recovery until its deadline.
    const completedAgo = (ms: number) => ({ ...behind, actual_completion_time: new Date(now - ms).toISOString() });
    expect(settled(completedAgo(60_000))).toBe(false);
    expect(settled(completedAgo(COUNTERS_CATCH_UP_MS))).toBe(true);
    // More than the total (a session counted twice while it moves) accounts for all.
    expect(settled({ ...behind, completed_requests: 3, failed_requests: 2 })).toBe(true);
  });

  test("a negative counter, an API's unknown, is absent: not a failure to retry", () => {
    // Before: -1 failed, a batch with failures, and a retry call each round answered 400.
    const unknown = { status: 'completed', failed_requests: -1, pending_requests: 0, processing_requests: 0 } as const;
    expect(() => read(unknown)).toThrow(MalformedResponseError);
    const batch = read({ ...unknown, sessions: sessions(['completed', 'completed']) });
    expect(batch).toMatchObject({ countsSource: 'sessions', counts: { failed: 0, total: 2 } });
  });
});

/** A settled batch of two sessions, one failed, listed as given. */
const failedOneOfTwo = (sessions: NonNullable<BatchStatusDetail['sessions']>): BatchStatusDetail => ({
  status: 'failed',
  total_requests: 2,
  completed_requests: 1,
  failed_requests: 1,
  pending_requests: 0,
  processing_requests: 0,
  sessions,
});

test("a session listed twice hides the one left out: the sessions' retry counts then show no retry", () => {
  const detail = failedOneOfTwo([
    { item_index: 0, status: 'failed', retry_count: 0 },
    { item_index: 1, status: 'completed', retry_count: 1 },
  ]);
  expect(toBatchSnapshot(read(detail), new Date()).retryCountTotal).toBe(1);
  // Before: 0, a total as if no session had been retried, and a call that had been applied was sent again.
  const twice = { ...detail, sessions: [detail.sessions![0]!, detail.sessions![0]!] };
  expect(toBatchSnapshot(read(twice), new Date()).retryCountTotal).toBeNull();
});

test("a failed session's error that quotes another session's URL, in a form no pattern knows, keeps none of it", () => {
  const cdpUrl = 'wss://connect.anchorbrowser.io/devtools/browser/7d0f4f3c-6c0e-4a57-9b5e-0f1c2a3b4c5d';
  const detail = failedOneOfTwo([
    { item_index: 0, status: 'failed', error: `lost%20${encodeURIComponent(cdpUrl.slice(6))}`, retry_count: 0 },
    { item_index: 1, status: 'completed', cdp_url: cdpUrl, retry_count: 0 },
  ]);
  const [failing] = toBatchSnapshot(read(detail), new Date()).failing;
  // Before, cleaned of its own URLs only: the live session's browser id went to history.
  expect(failing?.error).toBe(`lost%20${encodeURIComponent('connect.anchorbrowser.io/devtools/browser/')}[redacted]`);
});

test("a batch's error that quotes one of its thousand sessions' URLs, whose parts are all short, keeps none of it", () => {
  const cdpUrl = (i: number) => `wss://cdp.anchorbrowser.io/s/Ab3dE9fG/Hj2kL4mN/Pq${i}rS8tU`;
  const detail: BatchStatusDetail = {
    status: 'failed',
    total_requests: 1_000,
    completed_requests: 1_000,
    failed_requests: 0,
    pending_requests: 0,
    processing_requests: 0,
    error: `proxy_${encodeURIComponent(cdpUrl(999).slice(6))} reset`,
    sessions: Array.from({ length: 1_000 }, (_, i) => ({ item_index: i, status: 'completed', cdp_url: cdpUrl(i) })),
  };
  // No run of 16 characters to take as a secret: the URL goes by the forms it may be quoted in, found among them all.
  expect(toBatchSnapshot(read(detail), new Date()).batchError).toBe('proxy_[url removed] reset');
});
