import { MockActivityEnvironment } from '@temporalio/testing';
import { AnchorApiClient } from '../../anchor-api/index.js';
import { createPollerActivities, type BatchPage, type BatchPageRequest } from '../../activities/poller-activities.js';
import { startHostileServer, type HostileServer } from '../helpers/hostile-server.js';

// Whether the poller's page read says more pages follow, for the pagination the contract leaves optional: it decides
// as the sweep does (has_next, else total_pages, else a full page may be followed by more; an empty page ends the
// list), and reports the page count only as far as it agrees, since the poller takes that count for the cycle's last
// page.
let server: HostileServer;
/** What the server answers the next list call with: `listed` summaries, and the pagination (left out if undefined). */
let answer: { listed: number; pagination?: Record<string, unknown>; batches?: object[] } = { listed: 0 };

const LIMIT = 3;

beforeAll(async () => {
  server = await startHostileServer((_request, response) => {
    const batches =
      answer.batches ??
      Array.from({ length: answer.listed }, (_, i) => ({ batch_id: `batch-${i}`, status: 'processing' }));
    response.setHeader('content-type', 'application/json');
    response.end(JSON.stringify({ data: { batches, ...(answer.pagination && { pagination: answer.pagination }) } }));
  });
});
afterAll(() => server.close());

async function readPage(page: number, limit = LIMIT): Promise<BatchPage> {
  const activities = createPollerActivities(
    new AnchorApiClient({ baseUrl: server.url, apiKey: 'sk-poller-pagination-test', timeoutMs: 5_000 }),
  );
  const read = (request: BatchPageRequest) => activities.readBatchPage(request);
  return await new MockActivityEnvironment().run<[BatchPageRequest], BatchPage, typeof read>(read, {
    page,
    limit,
    createdBefore: '2026-11-30T04:00:00.000Z',
  });
}

test.each([
  // Before, false: the cycle ended at page 1 and handed back every watch beyond it, each recovery then polling alone.
  { case: 'a full page, no pagination: more may follow', page: 1, listed: LIMIT, more: true, pages: null },
  { case: 'a full page, an empty pagination: more may follow', page: 4, listed: LIMIT, pagination: {}, more: true },
  { case: 'a short page, no pagination: the last', page: 2, listed: LIMIT - 1, more: false, pages: null },
  // What ends a list of full pages that sends no pagination.
  { case: 'an empty page, no pagination: past the last', page: 5, listed: 0, more: false, pages: null },
  { case: 'total_pages alone says more', page: 1, listed: 1, pagination: { total_pages: 3 }, more: true, pages: 3 },
  { case: 'total_pages alone says the last', page: 3, listed: LIMIT, pagination: { total_pages: 3 }, more: false },
  { case: 'has_next alone says more, of a short page', page: 1, listed: 1, pagination: { has_next: true }, more: true },
  {
    case: 'has_next false, over a total_pages that says more: the last (the poller reads no pages past it)',
    page: 1,
    listed: LIMIT,
    pagination: { has_next: false, total_pages: 3 },
    more: false,
    pages: 1,
  },
  {
    case: 'has_next true, over a total_pages that says the last: more, one page at a time (no count)',
    page: 2,
    listed: LIMIT,
    pagination: { has_next: true, total_pages: 2 },
    more: true,
    pages: null,
  },
  {
    case: 'has_next and total_pages agreeing: the count kept',
    page: 2,
    listed: LIMIT,
    pagination: { has_next: true, total_pages: 5 },
    more: true,
    pages: 5,
  },
  {
    case: 'an empty page, whatever has_next and total_pages claim: past the last',
    page: 2,
    listed: 0,
    pagination: { has_next: true, total_pages: 100_000 },
    more: false,
    pages: 2,
  },
])('$case', async ({ page, listed, pagination, more, pages }) => {
  answer = { listed, ...(pagination && { pagination }) };
  const result = await readPage(page);
  expect(result.inFlight).toHaveLength(listed);
  expect(result.hasNext).toBe(more);
  if (pages !== undefined) expect(result.totalPages).toBe(pages);
  // One call, of the page asked for.
  const call = server.calls.at(-1)!;
  expect(new URL(call.path, server.url).searchParams.get('page')).toBe(String(page));
  expect(new URL(call.path, server.url).searchParams.get('limit')).toBe(String(LIMIT));
});

test('a batch listed finished before its counters account for every request goes to a read of its own', async () => {
  const counters = { total_requests: 4, completed_requests: 1, failed_requests: 1 };
  answer = {
    listed: 6,
    batches: [
      // Wave 55: settled with 1 failed where 2 more may fail, a recovery woken with these retried too few, or ended
      // `clean` with 0 failed. Then it stayed in flight, for good as undated here, its recovery held to its deadline.
      { batch_id: 'behind', status: 'failed', ...counters },
      { batch_id: 'done', status: 'failed', ...counters, completed_requests: 3 },
      // Cancelled sessions are in no counter.
      { batch_id: 'cancelled', status: 'cancelled', ...counters },
      // Finished long ago: before, woken with its counters, which need not count every failed session.
      { batch_id: 'long-done', status: 'failed', ...counters, actual_completion_time: '2026-01-01T00:00:00.000Z' },
      // Finished just now: its counters may still catch up, so the list is read again before its recovery reads it.
      { batch_id: 'just-done', status: 'completed', ...counters, actual_completion_time: new Date().toISOString() },
      { batch_id: 'no-counters', status: 'completed' },
    ],
  };
  const result = await readPage(1, 10);
  expect(result.inFlight).toEqual(['just-done']);
  expect(Object.keys(result.listed ?? {}).sort()).toEqual(['cancelled', 'done']);
  expect(result.settled).toEqual(['behind', 'long-done', 'no-counters']);
});

test('batch ids listed in capitals are given in lower case, as recoveries register them', async () => {
  answer = {
    listed: 3,
    batches: [
      { batch_id: 'A1B2C3D4-0000-4000-8000-00000000000A', status: 'processing' },
      { batch_id: 'A1B2C3D4-0000-4000-8000-00000000000B', status: 'completed' },
      {
        batch_id: 'A1B2C3D4-0000-4000-8000-00000000000C',
        status: 'completed',
        total_requests: 1,
        completed_requests: 0,
        failed_requests: 1,
      },
    ],
  };
  const result = await readPage(1, 10);
  // Before, as listed: the watch of the recovery, under the lower-case id, was never seen.
  expect(result.inFlight).toEqual(['a1b2c3d4-0000-4000-8000-00000000000a']);
  expect(result.settled).toEqual(['a1b2c3d4-0000-4000-8000-00000000000b']);
  expect(Object.keys(result.listed ?? {})).toEqual(['a1b2c3d4-0000-4000-8000-00000000000c']);
});
