import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { Client } from '@temporalio/client';
import { NativeConnection, Runtime, Worker, type WorkerOptions } from '@temporalio/worker';
import { AnchorApiClient } from '../anchor-api/index.js';
import { createNotifyActivities, type NotifyActivities } from '../activities/notify-activities.js';
import { createRecoveryActivities } from '../activities/recovery-activities.js';
import { createRetryActivities } from '../activities/retry-activities.js';
import { createSweepActivities } from '../activities/sweep-activities.js';
import { createPollerActivities } from '../activities/poller-activities.js';
import {
  createPollerRegistrationActivities,
  type PollerRegistrationOptions,
} from '../activities/poller-registration-activities.js';
import {
  BATCH_STATUS_POLLER_WORKFLOW,
  batchStatusPollerTaskQueue,
  batchStatusPollerWorkflowId,
  notificationTaskQueue,
} from '../workflows/definitions.js';
import { followWorkersSharingBudget, WORKERS_SHARING_BUDGET_METRIC } from './budget-share.js';
import type { WorkerConfig } from './config.js';
import { isolateTimeoutAbortsWorker, limitWorkflowStackTraces } from './node-runtime.js';
import { keepBatchStatusPollerRunning, POLLER_CHECK_INTERVAL_MS } from './poller-keeper.js';
import { RecoveryWorkers } from './recovery-workers.js';
import { bundleRecoveryWorkflows } from './bundle.js';
import { workerLifeState } from './while-running.js';

export type WorkflowSource = Pick<WorkerOptions, 'workflowsPath' | 'workflowBundle'>;

export interface RecoveryWorkerOptions {
  config: WorkerConfig;
  connection: NativeConnection;
  /** A prebuilt bundle skips bundling at start; tests share one. */
  workflows?: WorkflowSource;
  /** Activities of a test's own in place of the product's: a start that counts, a call that stalls. */
  replaceActivities?: (activities: WorkerActivities, api: AnchorApiClient, client: Client) => Partial<WorkerActivities>;
  /** How often a worker with the poller checks that it runs; POLLER_CHECK_INTERVAL_MS unless a test sets it shorter. */
  pollerCheckIntervalMs?: number;
}

/**
 * The server's limiter is a token bucket holding one second of tasks: after an idle spell it lets that second
 * through on top of the rate. At 0.9 of the budget, any 10 s holds at most 9 s + 0.9 s of calls, within the budget.
 */
export const TASK_RATE_SHARE_OF_BUDGET = 0.9;

/**
 * How far apart one worker sends its calls. Its share of the budget B, with N = workersSharingBudget, is ⌊B / N⌋
 * whole calls a second (B / N below one a second); it sends them evenly spaced at TASK_RATE_SHARE_OF_BUDGET of that
 * rate, the rate the server hands out tasks at anyway. Then no one second holds more than its share, even where the
 * network brings two calls up to 1/9 of a second nearer each other than they left: up to about 100 ms was measured
 * on a busy machine, and more for calls sent in a burst, which the simulator reads one after another.
 */
export function callSpacingOfShare(limits: WorkerConfig['limits']): number {
  const share = limits.maxCallsPerSecond / (limits.workersSharingBudget ?? 1);
  const wholeCalls = share >= 1 ? Math.floor(share) : share;
  return 1_000 / (wholeCalls * TASK_RATE_SHARE_OF_BUDGET);
}

/**
 * The SDK's default identity, `pid@hostname`, with a random suffix: workers count each other by identity
 * (budget-share.ts), and two containers on the host's network share a hostname and can share a pid (1).
 */
function uniqueWorkerIdentity(): string {
  return `${process.pid}@${hostname()}-${randomBytes(3).toString('hex')}`;
}

/**
 * The end notifications a worker holds at once. They wait on the worker's one line to the webhook, which sends the
 * ends waiting together as one message, one message every N s with N workers on the queue
 * (activities/webhook-digest.ts): 5 × N seconds of messages of 20 ends, so a storm of bad ends (an Anchor outage)
 * reaches the webhook as a few messages.
 */
const CONCURRENT_NOTIFICATIONS = 100;

/**
 * The poller's worker keeps its queue's poller cached, and a run it continued as new while the old one leaves: none
 * else runs there.
 */
const POLLER_WORKER_CACHED_WORKFLOWS = 4;

/**
 * Every activity the recoveries' task queue hosts, for the workflows of this release and the calls older histories
 * still schedule: their end notification included, which recoveries from before the queue of notifications schedule
 * here.
 */
export function createWorkerActivities(
  api: AnchorApiClient,
  client: Client,
  notify: NotifyActivities,
  registration?: PollerRegistrationOptions,
) {
  return {
    ...createRecoveryActivities(api),
    ...createRetryActivities(api, client.activity),
    ...createSweepActivities(api, client),
    ...createPollerActivities(api),
    ...createPollerRegistrationActivities(client, registration),
    ...notify,
  };
}

export type WorkerActivities = ReturnType<typeof createWorkerActivities>;

/**
 * A worker process's three workers: the recoveries' task queue (workflows and every Anchor call, its task rate the
 * Anchor budget), the batch status poller's (batchStatusPollerTaskQueue) and the queue of the recoveries' end
 * notifications, which calls no Anchor endpoint and takes none of it.
 */
export async function createRecoveryWorkers({
  config,
  connection,
  workflows,
  replaceActivities,
  pollerCheckIntervalMs = POLLER_CHECK_INTERVAL_MS,
}: RecoveryWorkerOptions): Promise<RecoveryWorkers> {
  // The server's bucket can hand the queue up to two seconds of its rate in one second; each worker's own share,
  // counted over its HTTP calls, keeps every second of the queue's calls within the budget.
  const configuredWorkers = config.limits.workersSharingBudget ?? 1;
  // More than configured while more workers take the queue's activities (followWorkersSharingBudget below). They
  // share the webhook too: each takes its share of the webhook's pace as it does of the Anchor budget.
  let workersSharing = configuredWorkers;
  const callSpacingMs = () => callSpacingOfShare({ ...config.limits, workersSharingBudget: workersSharing });
  /** The configured share: the server's pace for the queue and for this worker's tasks are set from it. */
  const callsPerSecondHere = 1_000 / callSpacingMs();
  const api = new AnchorApiClient({ ...config.anchor, callSpacingMs });
  const identity = uniqueWorkerIdentity();
  // The sweep starts recoveries, recoveries register with the poller, and a retry call is announced to the server
  // before it is sent, through a client on the worker's own connection; under the worker's identity, which the
  // announcement records as the activity's last heartbeat.
  const client = new Client({ connection, namespace: config.temporal.namespace, identity });
  // Before the workers: a worker created and never run holds the connection, which then cannot close.
  if (config.batchStatusPoller) await startBatchStatusPoller(client, config.temporal.taskQueue);
  // One for both queues, so the worker has one line to the webhook.
  const notify = createNotifyActivities(config.notify, () => workersSharing);
  // Switched off explicitly (ANCHOR_BATCH_STATUS_POLLER=false), not merely left unset: a poller started before, still
  // running, would otherwise keep taking this worker's recoveries.
  const created = createWorkerActivities(api, client, notify, { registers: config.batchStatusPoller !== false });
  const activities = { ...created, ...replaceActivities?.(created, api, client) };
  // Before the worker creates its workflow thread and sandboxes, which take the limit as they are created.
  if (config.limits.workflowStackTraceFrames !== undefined)
    limitWorkflowStackTraces(config.limits.workflowStackTraceFrames);
  // Bundled once for both workers that run workflows, when no prebuilt bundle is given. A prebuilt bundle has the
  // interceptors built in (worker/bundle.ts); naming them again draws the SDK's warning that they are ignored.
  const workflowSource = workflows ?? { workflowBundle: { code: await bundleRecoveryWorkflows() } };
  /** What the two workers that run workflows share. */
  const workflowWorkerOptions = {
    connection,
    namespace: config.temporal.namespace,
    ...workflowSource,
    ...(config.limits.isolateExecutionTimeoutMs === undefined
      ? {}
      : { isolateExecutionTimeout: config.limits.isolateExecutionTimeoutMs }),
    shutdownGraceTime: '30s',
    identity,
  } satisfies Partial<WorkerOptions>;
  const recoveries = await Worker.create({
    ...workflowWorkerOptions,
    taskQueue: config.temporal.taskQueue,
    activities,
    maxConcurrentActivityTaskExecutions: config.limits.maxConcurrentActivities,
    maxConcurrentWorkflowTaskExecutions: config.limits.maxConcurrentWorkflowTasks,
    ...(config.limits.maxCachedWorkflows === undefined ? {} : { maxCachedWorkflows: config.limits.maxCachedWorkflows }),
    // Every activity task makes at most one Anchor call, so this server-side limit caps the calls over any 10 s
    // across all workers on the queue, more workers than workersSharingBudget included (docs/scaling.md).
    maxTaskQueueActivitiesPerSecond: callsPerSecondHere * configuredWorkers,
    // Takes tasks no faster than this worker may send their calls, so the server does not hand one worker
    // more of the queue's rate than its share and leave the calls waiting here. While it counts more workers than
    // configured, it sends slower than this, and the queue's rate is shared among more takers.
    maxActivitiesPerSecond: callsPerSecondHere,
  });
  // The poller's own cache and workflow thread, whatever the recoveries do (batchStatusPollerTaskQueue). Only the
  // wakes' local activity: its page reads go to the recoveries' queue, whose task rate is the budget, and no page read
  // could run here outside it.
  const poller = await Worker.create({
    ...workflowWorkerOptions,
    taskQueue: batchStatusPollerTaskQueue(config.temporal.taskQueue),
    activities: { wakeRecoveries: activities.wakeRecoveries },
    maxCachedWorkflows: POLLER_WORKER_CACHED_WORKFLOWS,
    // The SDK's least with a cache: one poller's task at a time, and a run it continued as new.
    maxConcurrentWorkflowTaskExecutions: 2,
  });
  const notifications = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: notificationTaskQueue(config.temporal.taskQueue),
    activities: notify,
    maxConcurrentActivityTaskExecutions: CONCURRENT_NOTIFICATIONS,
    // An end waits in the webhook's queue and has heartbeated `waiting` by the time it is sent: its `sending` must
    // reach the server within 100 ms, not up to 0.8 × the heartbeat timeout later, or a crash mid-request would send
    // it twice. The recoveries' worker keeps the default: only runs from before the notifications queue notify there.
    maxHeartbeatThrottleInterval: '100ms',
    shutdownGraceTime: '30s',
    identity,
  });
  const { logger, metricMeter } = Runtime.instance();
  const workerState = () => workerLifeState(recoveries);
  const runtimeRisk = isolateTimeoutAbortsWorker();
  if (runtimeRisk) logger.warn(runtimeRisk, { isolateExecutionTimeoutMs: config.limits.isolateExecutionTimeoutMs });
  followWorkersSharingBudget({
    client,
    taskQueue: config.temporal.taskQueue,
    identity,
    configured: configuredWorkers,
    budgetPerSecond: config.limits.maxCallsPerSecond,
    onChange: (workers) => {
      workersSharing = workers;
      logger.info('Anchor budget shared by a new number of workers', {
        workers,
        configured: configuredWorkers,
        budgetPerSecond: config.limits.maxCallsPerSecond,
        callsPerSecondHere: Number((1_000 / callSpacingMs()).toFixed(2)),
      });
    },
    gauge: metricMeter.createGauge(
      WORKERS_SHARING_BUDGET_METRIC,
      'int',
      'workers',
      'Workers this one counts as sharing the Anchor budget: ANCHOR_WORKERS_SHARING_BUDGET, or more when more take the task queue',
    ),
    logger,
    state: workerState,
  });
  if (config.batchStatusPoller) {
    const { taskQueue } = config.temporal;
    keepBatchStatusPollerRunning({
      client,
      taskQueue,
      intervalMs: pollerCheckIntervalMs,
      logger,
      state: workerState,
      start: () => startBatchStatusPoller(client, taskQueue),
    });
  }
  return new RecoveryWorkers(recoveries, poller, notifications);
}

/** Every worker of the queue asks for the same poller; the first start creates it, the others find it running. */
export async function startBatchStatusPoller(client: Client, taskQueue: string): Promise<void> {
  await client.workflow.start(BATCH_STATUS_POLLER_WORKFLOW, {
    taskQueue: batchStatusPollerTaskQueue(taskQueue),
    workflowId: batchStatusPollerWorkflowId(taskQueue),
    args: [{}],
    workflowIdConflictPolicy: 'USE_EXISTING',
  });
}
