import { Client, WorkflowNotFoundError, type WorkflowHandle } from '@temporalio/client';
import proto from '@temporalio/proto';
import type { NativeConnection } from '@temporalio/worker';
import { DEFAULT_TIMEOUT_MS } from '../../anchor-api/client.js';
import { BatchRecoveries } from '../../client/recoveries.js';
import {
  startSimulator,
  type LedgerCall,
  type RunningSimulator,
  type SimulatedBatch,
  type SimulatorOptions,
} from '../../simulator/index.js';
import type { WorkerConfig } from '../../worker/config.js';
import { createRecoveryWorkers, type RecoveryWorkerOptions } from '../../worker/create-worker.js';
import type { RecoveryWorkers } from '../../worker/recovery-workers.js';
import {
  batchStatusPollerWorkflowId,
  type UnwatchBatchRequest,
  type WatchBatchRequest,
} from '../../workflows/definitions.js';
import type { RecoverBatchInput } from '../../workflows/input.js';
import { RECOVERY_MEMO_KEY } from '../../workflows/recovery-details.js';
import type { RecoveryReport } from '../../workflows/report.js';
import { connectClient, connectWorker, suiteTemporal, uniqueTaskQueue, type TemporalTarget } from './temporal.js';

export const TEST_API_KEY = 'test-key-3f9c1e7a2b';

/** Short intervals so a recovery takes seconds; the simulator's sessions take tens of milliseconds. */
export const FAST_POLICY = {
  poll: { initialInterval: '50ms', backoffCoefficient: 1, maximumInterval: '50ms' },
  roundBackoff: { initialInterval: '100ms', backoffCoefficient: 2, maximumInterval: '1s' },
} satisfies Partial<RecoverBatchInput>;

export function workflowBundle() {
  const codePath = process.env.TEST_WORKFLOW_BUNDLE;
  if (!codePath)
    throw new Error(
      'TEST_WORKFLOW_BUNDLE is not set: run the tests through jest, whose global setup bundles the workflows',
    );
  return { workflowBundle: { codePath } };
}

/**
 * The product's API timeout, for a worker whose test counts calls exactly. The tests' usual 2 s ends a call that a
 * stall of a loaded machine holds past it, and its retried attempt is one call more than the test counts (43 where 40
 * were expected on CI, in 62618f9).
 */
export const PRODUCT_API_TIMEOUT = { timeoutMs: DEFAULT_TIMEOUT_MS };

export function workerConfig(
  taskQueue: string,
  anchorBaseUrl: string,
  apiKey = TEST_API_KEY,
  temporal: TemporalTarget = suiteTemporal(),
): WorkerConfig {
  return {
    temporal: { ...temporal, taskQueue },
    anchor: { baseUrl: anchorBaseUrl, apiKey, timeoutMs: 2_000 },
    limits: { maxCallsPerSecond: 1_000, maxConcurrentActivities: 20, maxConcurrentWorkflowTasks: 20 },
  };
}

/**
 * The poller worker's check, later than any test ends (the longest a Node.js timer holds): tests terminate the
 * poller to see what recoveries do without one, and a check would start a new one while they look
 * (test/scale/poller-restart.test.ts tests the check).
 */
const POLLER_NOT_RESTARTED_MS = 2 ** 31 - 1;

export interface RecoveryEnv {
  simulator: RunningSimulator;
  client: Client;
  recoveries: BatchRecoveries;
  taskQueue: string;
  /** The retry POSTs the simulator received for a batch, in order. */
  retryPosts(batchId: string): LedgerCall[];
  /** Starts an in-process worker on the env's task queue; stopped by close(). */
  startWorker(
    apiKey?: string,
    limits?: Partial<WorkerConfig['limits']>,
    anchor?: Partial<WorkerConfig['anchor']>,
  ): Promise<RecoveryWorkers>;
  /**
   * Starts a worker that also starts the task queue's batch status poller; close() terminates the poller. `anchor`
   * overrides its API client's settings (a test that holds a call open sets a longer timeout), `limits` its limits.
   */
  startPollerWorker(
    anchor?: Partial<WorkerConfig['anchor']>,
    limits?: Partial<WorkerConfig['limits']>,
  ): Promise<RecoveryWorkers>;
  close(): Promise<void>;
}

/** A simulator, a Temporal client and workers on a task queue of their own, on the suite's server or `temporal`. */
export async function startRecoveryEnv(
  simulatorOptions: SimulatorOptions = {},
  temporal: TemporalTarget = suiteTemporal(),
): Promise<RecoveryEnv> {
  const simulator = await startSimulator({
    apiKeys: [TEST_API_KEY],
    attemptDurationMs: 40,
    queueDelayMs: 10,
    ...simulatorOptions,
  });
  const client = await connectClient(temporal);
  const taskQueue = uniqueTaskQueue('recovery');
  const running: { workers: RecoveryWorkers; done: Promise<void>; connection: NativeConnection }[] = [];
  let pollerStarted = false;
  const startWorker = async (config: WorkerConfig, pollerCheckIntervalMs?: number) => {
    const connection = await connectWorker(temporal);
    const workers = await createRecoveryWorkers({
      config,
      connection,
      workflows: workflowBundle(),
      pollerCheckIntervalMs,
    });
    running.push({ workers, connection, done: workers.run() });
    return workers;
  };
  return {
    simulator,
    client,
    taskQueue,
    recoveries: new BatchRecoveries(client, taskQueue),
    retryPosts: (batchId) =>
      simulator.ledger.forBatch(batchId).calls.filter((call) => call.method === 'POST' && call.path.endsWith('/retry')),
    startWorker(apiKey = TEST_API_KEY, limits = {}, anchor = {}) {
      const config = workerConfig(taskQueue, simulator.url, apiKey, temporal);
      return startWorker({
        ...config,
        anchor: { ...config.anchor, ...anchor },
        limits: { ...config.limits, ...limits },
      });
    },
    startPollerWorker(anchor = {}, limits = {}) {
      pollerStarted = true;
      const config = workerConfig(taskQueue, simulator.url, TEST_API_KEY, temporal);
      return startWorker(
        {
          ...config,
          anchor: { ...config.anchor, ...anchor },
          limits: { ...config.limits, ...limits },
          batchStatusPoller: true,
        },
        POLLER_NOT_RESTARTED_MS,
      );
    },
    async close() {
      for (const { workers, done, connection } of running) {
        workers.shutdown();
        await done;
        await connection.close();
      }
      if (pollerStarted) {
        // A test may have ended it already.
        await client.workflow
          .getHandle(batchStatusPollerWorkflowId(taskQueue))
          .terminate('test finished')
          .catch((err: unknown) => {
            if (!(err instanceof WorkflowNotFoundError)) throw err;
          });
      }
      await client.connection.close();
      await simulator.close();
    },
  };
}

/**
 * A history (or any answer of the server) as text, payload bytes decoded, so a search covers inputs, results,
 * failures, memos and search attributes. Decoded before JSON.stringify: protobufjs messages have a toJSON that writes
 * bytes as base64 before a replacer would see them.
 */
export function historyText(history: unknown): string {
  return JSON.stringify(bytesDecoded(history));
}

function bytesDecoded(value: unknown): unknown {
  if (value instanceof Uint8Array) return Buffer.from(value).toString('utf8');
  if (Array.isArray(value)) return value.map(bytesDecoded);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(Object.entries(value).map(([key, field]) => [key, bytesDecoded(field)]));
}

/** The ids of the patch markers (patched()) a history recorded, in order. */
export function patchMarkerIds(history: proto.temporal.api.history.v1.IHistory): string[] {
  return (history.events ?? [])
    .filter((event) => event.markerRecordedEventAttributes?.markerName === 'core_patch')
    .map((event) => {
      const data = event.markerRecordedEventAttributes?.details?.['patch-data']?.payloads?.[0]?.data;
      return (JSON.parse(Buffer.from(data ?? []).toString()) as { id: string }).id;
    });
}

/** The local activities of `activityType` in a history: a marker each. */
export function localActivityMarkers(history: proto.temporal.api.history.v1.IHistory, activityType: string) {
  return (history.events ?? []).filter((event) => {
    const { markerName, details } = event.markerRecordedEventAttributes ?? {};
    if (markerName !== 'core_local_activity') return false;
    const data = details?.['data']?.payloads?.[0]?.data;
    const { activity_type: type } = JSON.parse(Buffer.from(data ?? []).toString()) as { activity_type?: string };
    return type === activityType;
  });
}

/** A recovery's registrations with the poller: a local activity each, recorded as a marker in its history. */
export function pollerRegistrations(history: proto.temporal.api.history.v1.IHistory) {
  return localActivityMarkers(history, 'watchBatchWithPoller');
}

/** The first argument of each `signalName` signal in a history, decoded, in order. */
export function signalInputs<T>(history: proto.temporal.api.history.v1.IHistory, signalName: string): T[] {
  return (history.events ?? [])
    .map((event) => event.workflowExecutionSignaledEventAttributes)
    .filter((signal) => signal?.signalName === signalName)
    .map((signal) => JSON.parse(Buffer.from(signal?.input?.payloads?.[0]?.data ?? []).toString()) as T);
}

/** The requests a poller's history took, in order: each `one` signal's, and each `many` signal's in turn. */
function requestsIn<T>(history: proto.temporal.api.history.v1.IHistory, one: string, many: string): T[] {
  return (history.events ?? []).flatMap((event) => {
    const signal = event.workflowExecutionSignaledEventAttributes;
    if (signal?.signalName !== one && signal?.signalName !== many) return [];
    const input = JSON.parse(Buffer.from(signal.input?.payloads?.[0]?.data ?? []).toString()) as unknown;
    return signal.signalName === one ? [input as T] : (input as T[]);
  });
}

/** The registrations a poller's history took, in order (watchBatch and watchBatches signals). */
export const registrationsIn = (history: proto.temporal.api.history.v1.IHistory) =>
  requestsIn<WatchBatchRequest>(history, 'watchBatch', 'watchBatches');

/** The unwatches a poller's history took, in order (unwatchBatch and unwatchBatches signals). */
export const unwatchesIn = (history: proto.temporal.api.history.v1.IHistory) =>
  requestsIn<UnwatchBatchRequest>(history, 'unwatchBatch', 'unwatchBatches');

/** The phase and rounds of each memo a recovery wrote, in order. */
export function memoWrites(history: proto.temporal.api.history.v1.IHistory) {
  return (history.events ?? []).flatMap((event) => {
    const data = event.workflowPropertiesModifiedEventAttributes?.upsertedMemo?.fields?.[RECOVERY_MEMO_KEY]?.data;
    if (!data) return [];
    const { report } = JSON.parse(Buffer.from(data).toString()) as { report: RecoveryReport };
    return [{ phase: report.phase, rounds: report.rounds.length }];
  });
}

/** Polls until `check` returns a value other than undefined; fails with `what` after the timeout. */
export async function eventually<T>(
  what: string,
  check: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Waits until the recovery's report shows `phase`. In backing_off, its next status read is the one right before its call. */
export const reachesPhase = (recoveries: BatchRecoveries, batchId: string, phase: RecoveryReport['phase']) =>
  eventually(`the recovery to reach ${phase}`, async () =>
    (await recoveries.report(batchId)).phase === phase ? true : undefined,
  );

/**
 * Runs `run` beside a worker of the test's own, on a task queue of its own, against the API at `anchorBaseUrl`: the
 * product's workflows and activities, with those `replace` returns (if given) in place of the product's.
 */
export async function withOwnWorker<T>(
  anchorBaseUrl: string,
  replace: RecoveryWorkerOptions['replaceActivities'],
  run: (recoveries: BatchRecoveries, client: Client) => Promise<T>,
): Promise<T> {
  const taskQueue = uniqueTaskQueue('own-worker');
  const client = await connectClient();
  const connection = await connectWorker();
  try {
    const workers = await createRecoveryWorkers({
      config: workerConfig(taskQueue, anchorBaseUrl),
      connection,
      workflows: workflowBundle(),
      replaceActivities: replace,
    });
    return await workers.runUntil(() => run(new BatchRecoveries(client, taskQueue), client));
  } finally {
    await connection.close();
    await client.connection.close();
  }
}

/**
 * A poller's history once it waits for a registration and nothing else: no activity or timer out, and no workflow task
 * pending (one completed after the last scheduled). It reads nothing more until a registration comes. Not "the last
 * event is a completed task": a task's commands come after it (the marker and search attributes of a patch asked for
 * the first time), and a task that handles a signal and a fired rest's timer at once is the run's last.
 */
export function idlePollerHistory(handle: WorkflowHandle) {
  const { EventType } = proto.temporal.api.enums.v1;
  return eventually('the poller to wait for registrations only', async () => {
    const events = (await handle.fetchHistory()).events ?? [];
    const countOf = (...types: proto.temporal.api.enums.v1.EventType[]) =>
      events.filter((event) => types.includes(event.eventType!)).length;
    const lastOf = (type: proto.temporal.api.enums.v1.EventType) =>
      events.map((event) => event.eventType).lastIndexOf(type);
    const timers =
      countOf(EventType.EVENT_TYPE_TIMER_STARTED) -
      countOf(EventType.EVENT_TYPE_TIMER_FIRED, EventType.EVENT_TYPE_TIMER_CANCELED);
    const activities =
      countOf(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) -
      countOf(
        EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
        EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
        EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
      );
    const taskPending =
      lastOf(EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED) > lastOf(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED);
    return timers === 0 && activities === 0 && !taskPending ? events : undefined;
  });
}

/** The history length of each run of a workflow, once `runs` of them are listed, all closed (visibility lags). */
export function closedRunHistoryLengths(client: Client, workflowId: string, runs: number): Promise<number[]> {
  return eventually(`${runs} closed runs of ${workflowId}`, async () => {
    const lengths: number[] = [];
    for await (const run of client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) {
      if (run.status.name === 'RUNNING') return undefined;
      lengths.push(run.historyLength);
    }
    return lengths.length === runs ? lengths : undefined;
  });
}

/**
 * A batch of one session that fails once, created a day ago, under `newer` settled batches created in the last hour:
 * deep in the list, which is newest first.
 */
export function batchDeepInList(simulator: RunningSimulator, newer: number): SimulatedBatch {
  const now = simulator.clock.now();
  const batch = simulator.createScriptedBatch({
    count: 3,
    script: { '1': ['fail', 'ok'] },
    created_at: new Date(now - 86_400_000).toISOString(),
  });
  simulator.store.seed({
    total: newer,
    fail_every: 0,
    created_from: new Date(now - 3_600_000).toISOString(),
    created_to: new Date(now - 60_000).toISOString(),
  });
  return batch;
}

/** Cancels a batch through the API, as someone at Anchor would: its failed sessions stay failed. */
export async function cancelBatchAtAnchor(simulator: RunningSimulator, batchId: string): Promise<void> {
  const answer = await fetch(`${simulator.url}/v1/batch-sessions/${batchId}`, {
    method: 'PATCH',
    headers: { 'content-type': 'application/json', 'anchor-api-key': TEST_API_KEY },
    body: JSON.stringify({ status: 'cancelled' }),
  });
  if (answer.status !== 200) throw new Error(`the simulator refused the batch's cancel: ${answer.status}`);
}
