import type { Client } from '@temporalio/client';
import type { MetricGauge } from '@temporalio/common';
import proto from '@temporalio/proto';
import {
  DEPARTED_WORKER_HOLD_MS,
  followWorkersSharingBudget,
  WorkersSharingBudget,
} from '../../worker/budget-share.js';
import { recentPollerIdentities } from '../../worker/task-queue-pollers.js';
import { eventually, startRecoveryEnv, type RecoveryEnv } from '../helpers/recovery-env.js';

const { TaskQueueKind } = proto.temporal.api.enums.v1;

describe('counting the workers that share the budget', () => {
  test('the configured number is the floor, and this worker is always one of them', () => {
    expect(new WorkersSharingBudget(2, 'self').count([], 0)).toBe(2);
    expect(new WorkersSharingBudget(1, 'self').count([], 0)).toBe(1);
    expect(new WorkersSharingBudget(1, 'self').count(['self'], 0)).toBe(1);
    expect(new WorkersSharingBudget(1, 'self').count(['other'], 0)).toBe(2);
    expect(new WorkersSharingBudget(3, 'self').count(['self', 'other'], 0)).toBe(3);
  });

  test('a newcomer counts from the first list that names it; a worker no longer listed, until the hold has passed', () => {
    const workers = new WorkersSharingBudget(1, 'self');
    expect(workers.count(['self'], 0)).toBe(1);
    expect(workers.count(['self', 'a', 'b'], 5_000)).toBe(3);
    // b leaves the list (shutting down, or too busy to poll) and may still be sending.
    expect(workers.count(['self', 'a'], 10_000)).toBe(3);
    expect(workers.count(['self', 'a'], 5_000 + DEPARTED_WORKER_HOLD_MS)).toBe(3);
    expect(workers.count(['self', 'a'], 5_001 + DEPARTED_WORKER_HOLD_MS)).toBe(2);
    // Listed again: counted again at once, and held from then.
    expect(workers.count(['self', 'a', 'b'], 6_000 + DEPARTED_WORKER_HOLD_MS)).toBe(3);
    expect(workers.count([], 6_000 + 2 * DEPARTED_WORKER_HOLD_MS)).toBe(3);
    expect(workers.count([], 6_001 + 2 * DEPARTED_WORKER_HOLD_MS)).toBe(1);
  });
});

/** One outstanding activity poll on the env's queue: the server puts it on one of the queue's partitions. */
function pollOnce(env: RecoveryEnv, identity: string, signal: AbortSignal): void {
  env.client
    .withAbortSignal(signal, () =>
      env.client.withDeadline(Date.now() + 60_000, () =>
        env.client.workflowService.pollActivityTaskQueue({
          namespace: env.client.options.namespace,
          taskQueue: { name: env.taskQueue, kind: TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
          identity,
        }),
      ),
    )
    // Aborted when the test ends; the queue has no activity task to hand out.
    .catch(() => undefined);
}

test('pollers are listed from every partition of the queue, not only the root', async () => {
  const env = await startRecoveryEnv();
  const polls = new AbortController();
  try {
    const workers = await env.startWorker();
    // Eight pollers of one poll each: each poll lands on one of the queue's partitions (4 by default), and a poll
    // on another is forwarded to the root only while that partition has no other poll forwarded. The root's own
    // list (legacy DescribeTaskQueue, what wave 11 read) named 2 and 3 of the 8 in two runs.
    const single = Array.from({ length: 8 }, (_, i) => `single-poll-${i}`);
    for (const identity of single) pollOnce(env, identity, polls.signal);
    const listed = await eventually('every poller to be listed', async () => {
      const identities = await recentPollerIdentities(env.client, env.taskQueue, 'activity');
      return single.every((identity) => identities.includes(identity)) ? identities : undefined;
    });
    expect([...listed].sort()).toEqual([workers.recoveries.options.identity, ...single].sort());
  } finally {
    polls.abort();
    await env.close();
  }
});

test('a count that keeps failing is logged once, and again when it fails after a success; the worker goes on', async () => {
  const env = await startRecoveryEnv();
  let state: 'running' | 'after' = 'running';
  try {
    let namespace = 'no-such-namespace';
    let counts = 0;
    // The env's client, asking the real server, in a namespace the test switches, its counts counted.
    const client = {
      options: {
        get namespace() {
          return namespace;
        },
      },
      workflowService: {
        describeTaskQueue: (request: proto.temporal.api.workflowservice.v1.IDescribeTaskQueueRequest) => {
          counts += 1;
          return env.client.workflowService.describeTaskQueue(request);
        },
      },
    } as unknown as Client;
    const warnings: Record<string, unknown>[] = [];
    const gauged: number[] = [];
    followWorkersSharingBudget({
      client,
      taskQueue: env.taskQueue,
      identity: 'this-worker',
      configured: 1,
      budgetPerSecond: 10,
      onChange: () => {},
      gauge: { set: (value: number) => gauged.push(value) } as unknown as MetricGauge,
      logger: { warn: (_message, meta) => warnings.push(meta ?? {}) },
      state: () => state,
    });
    await eventually('three failed counts', () => (counts >= 3 ? true : undefined), 20_000);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ workers: 1, error: expect.stringContaining('no-such-namespace') });

    namespace = env.client.options.namespace;
    const succeededAt = counts + 1;
    await eventually('a count that succeeds', () => (counts > succeededAt ? true : undefined), 20_000);
    expect(warnings).toHaveLength(1);
    namespace = 'no-such-namespace';
    const failingAgainAt = counts;
    await eventually('a failed count after the success', () => (warnings.length > 1 ? true : undefined), 20_000);
    expect(warnings).toHaveLength(2);
    expect(counts).toBeGreaterThan(failingAgainAt);
    // No count changed the configured one: the gauge was set once, at the start.
    expect(gauged).toEqual([1]);
  } finally {
    // Its next tick stops the timer.
    state = 'after';
    await env.close();
  }
}, 90_000);
