import { MockActivityEnvironment } from '@temporalio/testing';
import { AnchorApiClient } from '../../anchor-api/index.js';
import { createPollerActivities, type BatchPage, type BatchPageRequest } from '../../activities/poller-activities.js';
import { startHostileServer, type HostileServer } from '../helpers/hostile-server.js';

// What the poller's page read keeps of the list: a server of the test's own sends summaries the simulator never does.
let server: HostileServer;

const summaries = [
  // Settled with every counter: the wake carries them, and the recovery reads nothing.
  {
    batch_id: 'listed',
    status: 'completed',
    total_requests: 4,
    completed_requests: 3,
    failed_requests: 1,
    actual_completion_time: '2026-11-30T03:00:00.123+01:00',
  },
  // Clean and settled a minute ago: recent, so the wake carries its counters.
  {
    batch_id: 'counted',
    status: 'completed',
    total_requests: 2,
    completed_requests: 2,
    failed_requests: 0,
    actual_completion_time: new Date(Date.now() - 60_000).toISOString(),
  },
  // Failed with no failed session (failed as a whole), settled a minute ago: its id only, so its recovery reads it and
  // reports it, where the counters' 0 failed ended it `clean`.
  {
    batch_id: 'failed-whole',
    status: 'failed',
    total_requests: 0,
    completed_requests: 0,
    failed_requests: 0,
    actual_completion_time: new Date(Date.now() - 60_000).toISOString(),
  },
  // Clean and settled long ago, like most of a team's list: its id only.
  {
    batch_id: 'old-clean',
    status: 'completed',
    total_requests: 2,
    completed_requests: 2,
    failed_requests: 0,
    actual_completion_time: new Date(Date.now() - 2 * 3_600_000).toISOString(),
  },
  // Clean, with no completion time to show it is recent: its id only.
  { batch_id: 'undated-clean', status: 'completed', total_requests: 1, completed_requests: 1, failed_requests: 0 },
  // Terminal without its failed count: settled, but the list cannot say what failed.
  { batch_id: 'no-counters', status: 'failed', total_requests: 3 },
  // Settled by its counters, with no status: the recovery reads it.
  { batch_id: 'no-status', total_requests: 1, completed_requests: 0, failed_requests: 1 },
  { batch_id: 'running', status: 'processing', total_requests: 5, completed_requests: 1, failed_requests: 0 },
  // Processing again by its status, while its counters still show the failures a retry call it took is retrying.
  { batch_id: 'lagging', status: 'processing', total_requests: 2, completed_requests: 1, failed_requests: 1 },
  // Just created: its counters are all still 0, which account for no request.
  { batch_id: 'just-created', status: 'pending', total_requests: 0, completed_requests: 0, failed_requests: 0 },
  { batch_id: 'just-created-no-status', total_requests: 0, completed_requests: 0, failed_requests: 0 },
  // In flight by its status, with no counters to say more.
  { batch_id: 'uncounted', status: 'processing' },
  // Neither status nor counters: the recovery reads it.
  { batch_id: 'bare' },
  { status: 'completed', total_requests: 1, completed_requests: 1, failed_requests: 0 },
];

beforeAll(async () => {
  server = await startHostileServer((_request, response) => {
    response.setHeader('content-type', 'application/json');
    response.end(JSON.stringify({ data: { batches: summaries, pagination: { current_page: 2, total_pages: 3 } } }));
  });
});
afterAll(() => server.close());

test('a page keeps the counters of settled batches with failures or a recent settle, and only the ids of the others', async () => {
  const activities = createPollerActivities(
    new AnchorApiClient({ baseUrl: server.url, apiKey: 'sk-poller-page-test', timeoutMs: 5_000 }),
  );
  // In an activity's context, which gives the read its cancellation signal.
  const read = (request: BatchPageRequest) => activities.readBatchPage(request);
  const page = await new MockActivityEnvironment().run<[BatchPageRequest], BatchPage, typeof read>(read, {
    page: 2,
    limit: 100,
    createdBefore: '2026-11-30T04:00:00.000Z',
  });

  expect(page.listed).toEqual({
    listed: { status: 'completed', total: 4, completed: 3, failed: 1, settledAt: '2026-11-30T02:00:00.123Z' },
    counted: {
      status: 'completed',
      total: 2,
      completed: 2,
      failed: 0,
      settledAt: expect.stringMatching(/Z$/),
    },
  });
  expect(page.settled).toEqual(['failed-whole', 'old-clean', 'undated-clean', 'no-counters', 'no-status', 'bare']);
  expect(page.inFlight).toEqual(['running', 'lagging', 'just-created', 'just-created-no-status', 'uncounted']);
  expect(page.readAt).toEqual(expect.stringMatching(/^\d{4}-\d\d-\d\dT.*Z$/));
  expect(page).toMatchObject({ hasNext: true, totalPages: 3 });
  expect(server.calls.map((call) => new URL(call.path, server.url).searchParams.get('page'))).toEqual(['2']);
});
