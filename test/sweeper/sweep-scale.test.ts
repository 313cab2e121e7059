import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import type { Client, WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { startSimulator, type RunningSimulator } from '../../simulator/index.js';
import { recoveryWorkflowId } from '../../workflows/definitions.js';
import type { sweepFailedBatches } from '../../workflows/sweep-failed-batches.js';
import type { SweepFailedBatchesInput, SweepResult } from '../../workflows/sweep-input.js';
import { killLeftoverChildren } from '../client/child-process.js';
import { spawnWorkerProcess, WORKER_STARTED, type WorkerProcess } from '../deployment/worker-process.js';
import { eventually, FAST_POLICY, TEST_API_KEY } from '../helpers/recovery-env.js';
import { connectClient, uniqueTaskQueue } from '../helpers/temporal.js';

// A sweep over 100,000 listed batches, on a worker process whose memory is read from /proc.

const LISTED = 100_000;
const FAIL_EVERY = 250;
const FAILED = LISTED / FAIL_EVERY;
const MAX_STARTS = 250;
/** What reading 100,000 batches may add to the worker's peak memory (measured: 45 MiB before one page per task). */
const MAX_LISTING_GROWTH_KB = 128 * 1024;
/**
 * The listing runs on a worker of its own whose V8 heap is capped, so it collects garbage before it grows: a
 * thousand one-page tasks otherwise left 135-200 MiB of garbage in RSS, depending on the machine's load. Growth
 * then shows what the listing holds, and a listing that held the 100,000 batches would hit the cap. The
 * recoveries run on an uncapped worker: 400 of them under that cap spent their time collecting garbage.
 */
const LISTING_WORKER_HEAP_MIB = 384;
/** Far below Temporal's 2 MB payload limit, whatever the number of batches. */
const MAX_PAYLOAD_BYTES = 64 * 1024;

let simulator: RunningSimulator;
let client: Client;
let worker: WorkerProcess;
let listingWorker: WorkerProcess;
let taskQueue: string;
let listingTaskQueue: string;
let failedIds: string[];

/** Kilobytes of a /proc/<pid>/status field: VmRSS now, VmHWM the peak so far. */
function memoryKb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no ${field} for process ${pid}`);
  return Number(match[1]);
}

beforeAll(async () => {
  simulator = await startSimulator({ apiKeys: [TEST_API_KEY], attemptDurationMs: 40, queueDelayMs: 10 });
  const now = Date.now();
  failedIds = simulator.store.seed({
    total: LISTED,
    fail_every: FAIL_EVERY,
    created_from: new Date(now - 23 * 3_600_000).toISOString(),
    created_to: new Date(now - 60_000).toISOString(),
  });
  client = await connectClient();
  taskQueue = uniqueTaskQueue('sweep-scale');
  listingTaskQueue = uniqueTaskQueue('sweep-listing');
  const workerEnv = (queue: string) => ({
    TEMPORAL_TASK_QUEUE: queue,
    ANCHOR_BASE_URL: simulator.url,
    ANCHOR_API_KEY: TEST_API_KEY,
    WORKFLOW_BUNDLE_PATH: process.env.TEST_WORKFLOW_BUNDLE,
    // Thousands of start activities: the task queue's rate limit is not what this test is about.
    ANCHOR_MAX_CALLS_PER_SECOND: '1000',
    // Nor is the batch status poller (test/scale): its cycles would walk the 100,000-batch list for recoveries that
    // register again every 750 ms (50 ms polls), each registration an event that brings its continue-as-new nearer.
    // With it on, this test took 257 s on the dev server and over 600 s on the cluster (docs/scaling.md).
    ANCHOR_BATCH_STATUS_POLLER: 'false',
    WORKER_MAX_CONCURRENT_ACTIVITIES: '50',
  });
  [worker, listingWorker] = await Promise.all([
    spawnWorkerProcess(workerEnv(taskQueue)),
    spawnWorkerProcess({
      ...workerEnv(listingTaskQueue),
      NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --max-old-space-size=${LISTING_WORKER_HEAP_MIB}`.trim(),
    }),
  ]);
  await Promise.all([worker.waitForOutput(WORKER_STARTED), listingWorker.waitForOutput(WORKER_STARTED)]);
}, 120_000);

afterAll(async () => {
  // The recoveries wait a day before retrying: end them, so they do not outlive the test.
  if (client && failedIds) {
    await Promise.all(
      failedIds.map((batchId) =>
        client.workflow
          .getHandle(recoveryWorkflowId(batchId))
          .terminate('test cleanup')
          .catch(() => undefined),
      ),
    );
  }
  await killLeftoverChildren();
  await client?.connection.close();
  await simulator?.close();
});

/**
 * Recoveries that read the batch once, then wait before a retry: cheap for 400 of them. The backoff counts from
 * each batch's settle, up to 23 hours ago, so it is a day long: every recovery still waits when the sweeps end.
 */
const input: SweepFailedBatchesInput = {
  maxStarts: MAX_STARTS,
  fanOut: 25,
  // Low, so the sweeps also go on across continue-as-new (each chunk of starts adds hundreds of events).
  continueAsNewAfterEvents: 500,
  recovery: { ...FAST_POLICY, roundBackoff: { initialInterval: '24h', maximumInterval: '24h' } },
};

async function timedSweep(
  sweepInput = input,
  queue = taskQueue,
): Promise<{
  result: SweepResult;
  handle: WorkflowHandleWithFirstExecutionRunId<typeof sweepFailedBatches>;
  seconds: number;
}> {
  const startedAt = process.hrtime.bigint();
  const handle = await client.workflow.start<typeof sweepFailedBatches>('sweepFailedBatches', {
    taskQueue: queue,
    workflowId: `sweep-scale-${randomUUID()}`,
    args: [sweepInput],
  });
  const result = await handle.result();
  return { result, handle, seconds: Number(process.hrtime.bigint() - startedAt) / 1e9 };
}

/** The largest payload any activity returned to the sweep, carried across continue-as-new, or its result. */
async function largestPayloadBytes(handle: WorkflowHandleWithFirstExecutionRunId): Promise<number> {
  const runs = [client.workflow.getHandle(handle.workflowId, handle.firstExecutionRunId), handle];
  const histories = await Promise.all(runs.map((run) => run.fetchHistory()));
  const sizes = histories.flatMap(({ events }) =>
    (events ?? []).flatMap((event) => [
      ...(event.activityTaskCompletedEventAttributes?.result?.payloads ?? []),
      ...(event.workflowExecutionContinuedAsNewEventAttributes?.input?.payloads ?? []),
      ...(event.workflowExecutionCompletedEventAttributes?.result?.payloads ?? []),
    ]),
  );
  return Math.max(...sizes.map((payload) => payload.data?.length ?? 0));
}

test('sweeps over 100,000 listed batches start every failed batch exactly once, with small results', async () => {
  const pid = worker.child.pid as number;
  const rssBeforeKb = memoryKb(pid, 'VmRSS');
  const listingPid = listingWorker.child.pid as number;
  const listingRssBeforeKb = memoryKb(listingPid, 'VmRSS');

  // The listing alone: the failed batches are in status `failed`, which this sweep does not scan.
  const listing = await timedSweep({ ...input, statuses: ['completed'] }, listingTaskQueue);
  expect(listing.result.counts).toMatchObject({
    scanned: LISTED,
    started: 0,
    other_status: FAILED,
    no_failed_sessions: LISTED - FAILED,
  });
  const listingPeakKb = memoryKb(listingPid, 'VmHWM');
  // Constant memory: the listing keeps counts and a page at a time, not the 100,000 batches.
  expect(listingPeakKb - listingRssBeforeKb).toBeLessThan(MAX_LISTING_GROWTH_KB);

  const first = await timedSweep();
  expect(first.result.counts).toEqual({
    scanned: LISTED,
    started: MAX_STARTS,
    other_status: 0,
    invalid_batch_id: 0,
    outside_window: 0,
    listed_again: 0,
    no_failed_sessions: LISTED - FAILED,
    already_running: 0,
    already_ended: 0,
    permanently_failed: 0,
    over_limit: FAILED - MAX_STARTS,
    start_failed: 0,
    past_retention: 0,
    held: 0,
  });
  // Newest first: the first sweep took the newest MAX_STARTS; its result lists the first 100 started.
  const newest = new Set(failedIds.slice(0, MAX_STARTS));
  expect(first.result.started).toHaveLength(100);
  for (const { batchId } of first.result.started) expect(newest.has(batchId)).toBe(true);
  expect(first.result.skipped).toEqual([]);

  const second = await timedSweep();
  expect(second.result.counts).toMatchObject({
    scanned: LISTED,
    started: FAILED - MAX_STARTS,
    already_running: MAX_STARTS,
    over_limit: 0,
    start_failed: 0,
  });
  expect(second.result.started).toHaveLength(100);
  for (const { batchId } of second.result.started) expect(newest.has(batchId)).toBe(false);
  expect(second.result.skipped).toHaveLength(100);
  for (const { batchId, reason } of second.result.skipped) {
    expect(reason).toBe('already_running');
    expect(newest.has(batchId)).toBe(true);
  }

  // Every failed batch has exactly one recovery, and nothing else got one.
  const recoveries = await eventually('the recoveries to show in visibility', async () => {
    const count = await client.workflow.count(`TaskQueue = "${taskQueue}" AND WorkflowType = "recoverBatch"`);
    return count.count === FAILED ? count.count : undefined;
  });
  expect(recoveries).toBe(FAILED);
  const runs = await Promise.all(
    failedIds.map(async (batchId) => (await client.workflow.getHandle(recoveryWorkflowId(batchId)).describe()).runId),
  );
  expect(new Set(runs).size).toBe(FAILED);

  const resultBytes = [first, second].map(({ result }) => JSON.stringify(result).length);
  const payloadBytes = await Promise.all([first, second].map(({ handle }) => largestPayloadBytes(handle)));
  for (const bytes of [...resultBytes, ...payloadBytes]) expect(bytes).toBeLessThan(MAX_PAYLOAD_BYTES);

  const peakKb = memoryKb(pid, 'VmHWM');
  console.log(
    [
      `sweep over ${LISTED} listed batches (${FAILED} failed, maxStarts ${MAX_STARTS}):`,
      `  listing only ${listing.seconds.toFixed(1)} s, listing worker RSS ${Math.round(listingRssBeforeKb / 1024)} -> ${Math.round(listingPeakKb / 1024)} MiB peak`,
      `  first sweep ${first.seconds.toFixed(1)} s, second sweep ${second.seconds.toFixed(1)} s`,
      `  result ${resultBytes.join(' / ')} bytes, largest activity payload ${payloadBytes.join(' / ')} bytes`,
      `  worker RSS before ${Math.round(rssBeforeKb / 1024)} MiB, peak with ${FAILED} recoveries running ${Math.round(peakKb / 1024)} MiB`,
    ].join('\n'),
  );
}, 600_000);
