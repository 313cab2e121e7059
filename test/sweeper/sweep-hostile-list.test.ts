import { randomUUID } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { NativeConnection } from '@temporalio/worker';
import { RecoveryFailedError } from '../../client/recoveries.js';
import { createRecoveryWorkers } from '../../worker/create-worker.js';
import type { RecoveryWorkers } from '../../worker/recovery-workers.js';
import { BATCH_FAILED_WITHOUT_FAILED_SESSIONS, recoveryWorkflowId } from '../../workflows/definitions.js';
import type { sweepFailedBatches } from '../../workflows/sweep-failed-batches.js';
import type { SweepFailedBatchesInput, SweepResult } from '../../workflows/sweep-input.js';
import { proxyTo, startHostileServer, type HostileAnswer, type HostileServer } from '../helpers/hostile-server.js';
import {
  eventually,
  FAST_POLICY,
  localActivityMarkers,
  startRecoveryEnv,
  workerConfig,
  workflowBundle,
  type RecoveryEnv,
} from '../helpers/recovery-env.js';
import { connectWorker, uniqueTaskQueue } from '../helpers/temporal.js';

// Sweeps over a list API of the test's own: every other call goes on to the simulator, so the recoveries the sweeps
// start run as usual.

let env: RecoveryEnv;
let server: HostileServer;
/** How the list endpoint answers in the running test; the simulator's list when unset. */
let listAnswer: HostileAnswer | undefined;
let taskQueue: string;
let worker: { workers: RecoveryWorkers; connection: NativeConnection; running: Promise<void> } | undefined;

const LIST_PATH = /^\/v1\/batch-sessions(\?|$)/;

beforeAll(async () => {
  env = await startRecoveryEnv();
  const simulator = proxyTo(env.simulator.url);
  server = await startHostileServer((request, response) => {
    const listing = request.method === 'GET' && LIST_PATH.test(request.url ?? '');
    (listing && listAnswer ? listAnswer : simulator)(request, response);
  });
  taskQueue = uniqueTaskQueue('sweep-hostile');
  const connection = await connectWorker();
  const workers = await createRecoveryWorkers({
    config: workerConfig(taskQueue, server.url),
    connection,
    workflows: workflowBundle(),
  });
  worker = { workers, connection, running: workers.run() };
});
afterAll(async () => {
  if (worker) {
    worker.workers.shutdown();
    await worker.running;
    await worker.connection.close();
  }
  await server?.close();
  await env?.close();
});
beforeEach(() => {
  env.simulator.reset();
  listAnswer = undefined;
  server.calls.length = 0;
});

const minutesAgo = (minutes: number) => new Date(Date.now() - minutes * 60_000).toISOString();
/** A settled batch in the simulator whose one failed session succeeds when retried. */
const failedBatch = (minutes: number) =>
  env.simulator.createScriptedBatch({ count: 2, script: { '0': ['fail', 'ok'] }, created_at: minutesAgo(minutes) }).id;
const answerJson =
  (body: unknown): HostileAnswer =>
  (_request, response) => {
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  };
const listCalls = () => server.calls.filter((call) => LIST_PATH.test(call.path));
const startSweep = (input: SweepFailedBatchesInput) =>
  env.client.workflow.start<typeof sweepFailedBatches>('sweepFailedBatches', {
    taskQueue,
    workflowId: `sweep-hostile-${randomUUID()}`,
    args: [input],
  });

test('batches listed with failed sessions but no UUID for an id are counted as such, not started', async () => {
  const batchId = failedBatch(5);
  listAnswer = answerJson({
    data: {
      batches: [
        // Upper case is still the batch's UUID: recovered under the lower-case id.
        { batch_id: batchId.toUpperCase(), status: 'failed', failed_requests: 1 },
        // Twice on one page: taken once, its repeat counted as listed again.
        { batch_id: batchId.toUpperCase(), status: 'failed', failed_requests: 1 },
        { batch_id: 'not-a-uuid', status: 'failed', failed_requests: 1 },
        { status: 'failed', failed_requests: 1 },
      ],
      pagination: { has_next: false },
    },
  });
  const handle = await startSweep({ lookback: '1h', recovery: FAST_POLICY });
  const result = await handle.result();

  expect(result.started).toEqual([{ batchId: batchId.toUpperCase(), workflowId: recoveryWorkflowId(batchId) }]);
  expect(result.skipped).toEqual([]);
  // Before, `not-a-uuid` was tried five times in 15 s and reported as start_failed, "a later sweep tries again",
  // and the batch without an id was in no count.
  expect(result.counts).toMatchObject({
    scanned: 4,
    started: 1,
    invalid_batch_id: 2,
    listed_again: 1,
    start_failed: 0,
  });
  const { scanned, ...counted } = result.counts;
  expect(Object.values(counted).reduce((sum, count) => sum + count, 0)).toBe(scanned);
  expect(localActivityMarkers(await handle.fetchHistory(), 'startBatchRecovery')).toHaveLength(1);
  expect((await env.recoveries.result(batchId)).outcome).toBe('recovered');
});

test('a batch listed completed with a negative count of failed sessions is counted as having none, not recovered', async () => {
  const batchId = failedBatch(5);
  // The contract types failed_requests as an integer with no minimum.
  listAnswer = answerJson({
    data: {
      batches: [{ batch_id: batchId, status: 'completed', failed_requests: -1 }],
      pagination: { has_next: false },
    },
  });
  const result = await (await startSweep({ lookback: '1h', recovery: FAST_POLICY })).result();

  // Before: started, a recovery of a batch the API says has no failed session.
  expect(result.started).toEqual([]);
  expect(result.counts).toMatchObject({ scanned: 1, started: 0, no_failed_sessions: 1 });
  expect(sumOfCounts(result.counts)).toBe(1);
});

test('a batch listed failed with no failed session is recovered, which reports it; a later sweep does not start it again', async () => {
  const batchId = randomUUID();
  const failedAsAWhole = { batch_id: batchId, status: 'failed', total_requests: 2, failed_requests: 0 };
  // Its counters behind its total past their catch-up: final.
  const counters = {
    completed_requests: 0,
    pending_requests: 0,
    processing_requests: 0,
    actual_completion_time: minutesAgo(10),
  };
  listAnswer = answerJson({
    data: { batches: [failedAsAWhole], pagination: { has_next: false } },
  });
  server.on(batchId, (request, response) => {
    if (request.method !== 'GET') return response.writeHead(400).end();
    response
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ data: { ...failedAsAWhole, ...counters, error: 'Batch failed: invalid profile' } }));
  });
  const first = await (await startSweep({ lookback: '1h', recovery: FAST_POLICY })).result();

  // Before: counted as having no failed session, and no one was told.
  expect(first.started).toEqual([{ batchId, workflowId: recoveryWorkflowId(batchId) }]);
  expect(first.counts).toMatchObject({ scanned: 1, started: 1, no_failed_sessions: 0 });
  const failure = await env.recoveries.result(batchId).then(
    () => undefined,
    (err: unknown) => (err as RecoveryFailedError).report?.failure,
  );
  expect(failure).toEqual({
    type: BATCH_FAILED_WITHOUT_FAILED_SESSIONS,
    message: expect.stringContaining('Batch failed: invalid profile') as unknown,
  });
  const second = await (await startSweep({ lookback: '1h', recovery: FAST_POLICY })).result();
  expect(second.started).toEqual([]);
  expect(second.counts).toMatchObject({ scanned: 1, started: 0, permanently_failed: 1 });
  expect(server.calls.filter((call) => call.method === 'POST' && call.path.includes(batchId))).toEqual([]);
});

test('a batch listed with a status past the contract or a counter as text is counted, and the page read', async () => {
  const batchId = failedBatch(5);
  const textCount = failedBatch(5);
  const expired = randomUUID();
  listAnswer = answerJson({
    data: {
      batches: [
        { batch_id: expired, status: 'expired', failed_requests: 1 },
        { batch_id: textCount, status: 'failed', failed_requests: '2' },
        { batch_id: batchId, status: 'failed', failed_requests: 1 },
      ],
      pagination: { has_next: false },
    },
  });
  const result = await (await startSweep({ lookback: '1h', recovery: FAST_POLICY })).result();

  // Before, the whole page was a malformed response: the sweep failed at it, as it would on every run. A failed batch
  // whose count is unreadable is handed on, as one listed without a count: its recovery reads the batch itself.
  // Starts run side by side, so `started` lists them in the order they finished.
  expect(result.started).toHaveLength(2);
  expect(result.started).toEqual(
    expect.arrayContaining([
      { batchId: textCount, workflowId: recoveryWorkflowId(textCount) },
      { batchId, workflowId: recoveryWorkflowId(batchId) },
    ]),
  );
  expect(result.counts).toMatchObject({ scanned: 3, started: 2, other_status: 1 });
  expect(sumOfCounts(result.counts)).toBe(3);
  expect((await env.recoveries.result(textCount)).outcome).toBe('recovered');
  expect((await env.recoveries.result(batchId)).outcome).toBe('recovered');
});

/** A list of `pages` (each page's rows), one page per call; the pages' length is the page size the test asks for. */
const answerPages =
  (pages: { batch_id: string; status: string; failed_requests: number }[][]): HostileAnswer =>
  (request, response) => {
    const page = Number(new URL(request.url ?? '', server.url).searchParams.get('page'));
    answerJson({ data: { batches: pages[page - 1] ?? [], pagination: { has_next: page < pages.length } } })(
      request,
      response,
    );
  };
const failedRow = (batch_id: string) => ({ batch_id, status: 'failed', failed_requests: 1 });
const sumOfCounts = ({ scanned: _scanned, ...counted }: SweepResult['counts']) =>
  Object.values(counted).reduce((sum, count) => sum + count, 0);

test.each([
  ['on one page', 2, [['upper', 'lower']]],
  ['on two pages', 1, [['upper'], ['lower']]],
  ['on two pages, lower case first', 1, [['lower'], ['upper']]],
] as const)(
  'a batch listed in upper and in lower case %s is started and counted once',
  async (_name, pageSize, pages) => {
    const batchId = failedBatch(5);
    const spelling = { upper: batchId.toUpperCase(), lower: batchId };
    listAnswer = answerPages(pages.map((page) => page.map((inCase) => failedRow(spelling[inCase]))));
    const handle = await startSweep({ lookback: '1h', pageSize, recovery: FAST_POLICY });
    const result = await handle.result();

    // Before, both were handed to a start, and the second found the recovery this sweep started and counted it started
    // again: started 2, listed_again 0, two starts.
    const first = spelling[pages[0][0]];
    expect(result.started).toEqual([{ batchId: first, workflowId: recoveryWorkflowId(batchId) }]);
    expect(result.counts).toMatchObject({ scanned: 2, started: 1, listed_again: 1 });
    expect(sumOfCounts(result.counts)).toBe(2);
    expect(localActivityMarkers(await handle.fetchHistory(), 'startBatchRecovery')).toHaveLength(1);
    expect((await env.recoveries.result(batchId)).outcome).toBe('recovered');
  },
);

test('a batch listed again once maxStarts recoveries started is counted as listed again, not over_limit again', async () => {
  const [first, second, third] = [failedBatch(5), randomUUID(), randomUUID()];
  // A list shifted by a row between the two reads: page 2 shows page 1's last batch again.
  listAnswer = answerPages([
    [failedRow(first), failedRow(second)],
    [failedRow(second), failedRow(third)],
    [failedRow(first.toUpperCase())],
  ]);
  const handle = await startSweep({ lookback: '1h', pageSize: 2, maxStarts: 1, recovery: FAST_POLICY });
  const result = await handle.result();

  expect(result.started).toEqual([{ batchId: first, workflowId: recoveryWorkflowId(first) }]);
  expect(result.skipped).toEqual([{ batchId: second, reason: 'over_limit' }]);
  // Before, over_limit 4 for the two batches not started (`second` twice: skipped on page 1, counted on page 2) and
  // the started one read again on page 3: listed_again 0.
  expect(result.counts).toMatchObject({ scanned: 5, started: 1, over_limit: 2, listed_again: 2 });
  expect(sumOfCounts(result.counts)).toBe(5);
  expect(listCalls()).toHaveLength(3);
  expect(localActivityMarkers(await handle.fetchHistory(), 'startBatchRecovery')).toHaveLength(1);
  expect((await env.recoveries.result(first)).outcome).toBe('recovered');
});

test.each([
  ['one page at a time', {}, 4],
  // Pages 2-11 are read side by side; the fourth is where the sweep stops.
  ['side by side, total_pages 1,000,000', { total_pages: 1_000_000 }, 11],
])(
  'a list that answers every page with the same batches and has_next stops the sweep at its third repeat (%s)',
  async (_name, pagination, expectedCalls) => {
    const batchIds = [failedBatch(5), failedBatch(10)];
    // An API that ignores `page`.
    listAnswer = answerJson({
      data: {
        batches: batchIds.map((batch_id) => ({ batch_id, status: 'failed', failed_requests: 1 })),
        pagination: { has_next: true, ...pagination },
      },
    });
    const handle = await startSweep({ lookback: '1h', recovery: FAST_POLICY });
    try {
      // Before, the sweep read page after page for ever (41 calls in 4 s).
      await eventually('the sweep to end, or 50 list calls', async () =>
        listCalls().length > 50 || (await handle.describe()).status.name !== 'RUNNING' ? true : undefined,
      );
      expect((await handle.describe()).status.name).toBe('FAILED');
      const failure = await handle.result().catch((err: unknown) => err);
      expect(failure).toBeInstanceOf(WorkflowFailedError);
      const cause = (failure as WorkflowFailedError).cause as ApplicationFailure;
      expect(cause.type).toBe('SweepFailed');
      const report = cause.details?.[0] as SweepResult;
      expect(report.failure).toEqual({
        type: 'list_repeats_pages',
        message: expect.stringMatching(/^pages 2-4 of the list each repeat a page read before/) as unknown,
      });
      expect(listCalls()).toHaveLength(expectedCalls);
      // Page 1's batches are recovered once; the two repeats read before the stop are counted as read.
      expect(report.started.map((entry) => entry.batchId).sort()).toEqual([...batchIds].sort());
      expect(report.counts).toMatchObject({ scanned: 6, started: 2, start_failed: 0 });
    } finally {
      if ((await handle.describe()).status.name === 'RUNNING') await handle.terminate('test over');
    }
    const outcomes = await Promise.all(batchIds.map(async (batchId) => (await env.recoveries.result(batchId)).outcome));
    expect(outcomes).toEqual(['recovered', 'recovered']);
  },
);

test.each([
  ['total_pages only', (pages: number) => ({ total_pages: pages }), 3],
  // Then a full page says more may come: read on to the first empty page.
  ['no pagination', () => undefined, 4],
])('a list whose pages leave has_next out is read to its end (%s)', async (_name, pagination, expectedCalls) => {
  const batchIds = [failedBatch(5), failedBatch(10), failedBatch(15)];
  // One batch a page, as the contract allows: has_next is not required.
  listAnswer = (request, response) => {
    const page = Number(new URL(request.url ?? '', server.url).searchParams.get('page'));
    const batchId = batchIds[page - 1];
    const batches = batchId === undefined ? [] : [{ batch_id: batchId, status: 'failed', failed_requests: 1 }];
    answerJson({ data: { batches, pagination: pagination(batchIds.length) } })(request, response);
  };
  const result = await (await startSweep({ lookback: '1h', pageSize: 1, recovery: FAST_POLICY })).result();

  // Before, the sweep read page 1 and stopped there, reporting no failure: 1 started, 1 call.
  expect(result.started.map((entry) => entry.batchId).sort()).toEqual([...batchIds].sort());
  expect(result.counts).toMatchObject({ scanned: 3, started: 3 });
  expect(listCalls()).toHaveLength(expectedCalls);
  const outcomes = await Promise.all(batchIds.map(async (batchId) => (await env.recoveries.result(batchId)).outcome));
  expect(outcomes).toEqual(['recovered', 'recovered', 'recovered']);
});

test('batches a list shows from outside the window (an API that ignored the filter) are counted, not recovered', async () => {
  const inside = failedBatch(5);
  const undated = failedBatch(10);
  const outside = failedBatch(3 * 24 * 60);
  const listed = (batchId: string, minutes?: number) => ({
    batch_id: batchId,
    status: 'failed',
    failed_requests: 1,
    ...(minutes !== undefined && { created_at: minutesAgo(minutes) }),
  });
  listAnswer = answerJson({ data: { batches: [listed(inside, 5), listed(undated), listed(outside, 3 * 24 * 60)] } });
  const result = await (await startSweep({ lookback: '1h', recovery: FAST_POLICY })).result();

  // Before, the batch created three days before a sweep of the last hour got a recovery too: started 3.
  // One listed without created_at is taken as in the window.
  expect(result.started.map((entry) => entry.batchId).sort()).toEqual([inside, undated].sort());
  expect(result.counts).toMatchObject({ scanned: 3, started: 2, outside_window: 1 });
  expect(env.simulator.ledger.forBatch(outside).calls).toEqual([]);
  const outcomes = await Promise.all(
    [inside, undated].map(async (batchId) => (await env.recoveries.result(batchId)).outcome),
  );
  expect(outcomes).toEqual(['recovered', 'recovered']);
});

test('a list call refused with a Retry-After longer than a sweep waits stops the sweep, not holds it for hours', async () => {
  failedBatch(5);
  listAnswer = (_request, response) => {
    response
      .writeHead(429, { 'content-type': 'application/json', 'retry-after': '3600' })
      .end(JSON.stringify({ error: { code: 429, message: 'slow down' } }));
  };
  const handle = await startSweep({ lookback: '1h', recovery: FAST_POLICY });
  try {
    // Before, the listing waited the hour for its next attempt (and up to four of them), the sweep running all the
    // while, and the schedule (overlap SKIP) skipping every sweep due meanwhile.
    await eventually('the sweep to end, or its listing to wait for its next attempt', async () => {
      const { status, raw } = await handle.describe();
      const waiting = raw.pendingActivities?.some((activity) => (activity.attempt ?? 0) > 1);
      return status.name !== 'RUNNING' || waiting ? true : undefined;
    });
    expect((await handle.describe()).status.name).toBe('FAILED');
    const failure = (await handle.result().catch((err: unknown) => err)) as WorkflowFailedError;
    const report = (failure.cause as ApplicationFailure).details?.[0] as SweepResult;
    expect(report.failure).toEqual({
      type: 'rate_limited',
      message: expect.stringMatching(
        /^Anchor API rate limit hit \(retry after 3600000 ms\).*: longer than a sweep waits for a page \(5 min\)/,
      ) as unknown,
    });
    expect(report.counts).toMatchObject({ scanned: 0, started: 0 });
    expect(listCalls()).toHaveLength(1);
  } finally {
    if ((await handle.describe()).status.name === 'RUNNING') await handle.terminate('test over');
  }
});
