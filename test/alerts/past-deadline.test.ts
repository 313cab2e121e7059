import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import type { MetricGauge, MetricTags } from '@temporalio/common';
import { Runtime } from '@temporalio/worker';
import { BatchRecoveries } from '../../client/recoveries.js';
import {
  countRecoveriesPastDeadline,
  PAST_DEADLINE_COUNTED_AT_METRIC,
  PAST_DEADLINE_METRIC,
  pastDeadlineQuery,
  startPastDeadlineGauge,
} from '../../worker/past-deadline-gauge.js';
import { RECOVER_BATCH_WORKFLOW, recoveryWorkflowId } from '../../workflows/definitions.js';
import { recoveryDeadlineKey } from '../../workflows/search-attributes.js';
import { killLeftoverChildren } from '../client/child-process.js';
import { spawnWorkerProcess, WORKER_STARTED } from '../deployment/worker-process.js';
import { eventually, FAST_POLICY, startRecoveryEnv, TEST_API_KEY } from '../helpers/recovery-env.js';
import { temporalAddress, temporalNamespace, uniqueTaskQueue } from '../helpers/temporal.js';

// The symptom behind the RecoveryPastDeadline alert: recoveries still Running after their deadline,
// found through the RecoveryDeadline search attribute and exported by the worker as a gauge.

/** Workflow ids of the recoveries on `taskQueue` that the gauge's query matches, with a grace of `graceMs`. */
async function pastDeadlineOn(client: Client, taskQueue: string, graceMs = 0): Promise<string[]> {
  const ids: string[] = [];
  const query = `${pastDeadlineQuery(new Date(), graceMs)} AND TaskQueue = "${taskQueue}"`;
  for await (const execution of client.workflow.list({ query })) ids.push(execution.workflowId);
  return ids;
}

/** A gauge's value on a worker's /metrics; undefined until it is exported. */
async function scrapedGauge(metricsPort: number, metric: string): Promise<number | undefined> {
  const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const line = metrics.split('\n').find((candidate) => candidate.startsWith(`${metric}{`));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** A gauge that keeps what it is set to: the runtime's own cannot be read back outside /metrics. */
function recordingGauge(name: string): { gauge: MetricGauge; sets: { value: number; tags?: MetricTags }[] } {
  const sets: { value: number; tags?: MetricTags }[] = [];
  const gauge: MetricGauge = {
    name,
    kind: 'gauge',
    valueType: 'int',
    set: (value, tags) => void sets.push({ value, tags }),
    withTags: () => gauge,
  };
  return { gauge, sets };
}

afterAll(killLeftoverChildren);

test('the workflow sets RecoveryDeadline to the deadline of its report', async () => {
  const env = await startRecoveryEnv();
  try {
    await env.startWorker();
    const batch = env.simulator.createScriptedBatch({ count: 2 });
    await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY, deadline: '1h' });
    const report = await env.recoveries.result(batch.id);

    const description = await env.client.workflow.getHandle(recoveryWorkflowId(batch.id)).describe();
    expect(report.outcome).toBe('clean');
    expect(description.typedSearchAttributes.get(recoveryDeadlineKey)?.toISOString()).toBe(report.deadlineAt);
  } finally {
    await env.close();
  }
});

test('a recovery started without search attributes counts until a worker runs its first task, and not after', async () => {
  const env = await startRecoveryEnv();
  try {
    // In flight for ten minutes: the recovery stays Running, waiting for its batch.
    const batch = env.simulator.createScriptedBatch({ count: 2, pending_phase: { ms: 600_000 } });
    const handle = await env.client.workflow.start(RECOVER_BATCH_WORKFLOW, {
      taskQueue: env.taskQueue,
      workflowId: recoveryWorkflowId(batch.id),
      args: [{ batchId: batch.id, ...FAST_POLICY, deadline: '1h' }],
    });
    try {
      // No worker yet: counted, as the Web UI's start on a queue no worker polls.
      await eventually('the recovery counted', async () =>
        (await pastDeadlineOn(env.client, env.taskQueue)).length === 1 ? true : undefined,
      );
      await env.startWorker();

      // Its first task writes RecoveryDeadline and AnchorBatchId.
      await eventually('the recovery no longer counted', async () =>
        (await pastDeadlineOn(env.client, env.taskQueue)).length === 0 ? true : undefined,
      );
      expect((await handle.describe()).status.name).toBe('RUNNING');
    } finally {
      await handle.terminate('test over');
    }
  } finally {
    await env.close();
  }
});

describe('recoveries that no worker runs', () => {
  let client: Client;
  let idleQueue: string;
  let late: string;
  let onTime: string;
  let startedWithoutDeadline: string;

  beforeAll(async () => {
    client = new Client({
      connection: await Connection.connect({ address: temporalAddress() }),
      namespace: temporalNamespace(),
    });
    // Nothing polls this queue: the recoveries stay Running, their first workflow task never done.
    idleQueue = uniqueTaskQueue('past-deadline');
    const recoveries = new BatchRecoveries(client, idleQueue);
    late = randomUUID();
    onTime = randomUUID();
    await recoveries.start({ batchId: late, deadline: '1s' });
    await recoveries.start({ batchId: onTime, deadline: '1h' });
    // As the Web UI's start form does it: the input alone, no search attribute.
    startedWithoutDeadline = randomUUID();
    await client.workflow.start(RECOVER_BATCH_WORKFLOW, {
      taskQueue: idleQueue,
      workflowId: recoveryWorkflowId(startedWithoutDeadline),
      args: [{ batchId: startedWithoutDeadline, deadline: '1h' }],
    });
  });

  afterAll(async () => {
    for (const batchId of [late, onTime, startedWithoutDeadline]) {
      await client?.workflow.getHandle(recoveryWorkflowId(batchId)).terminate('test over');
    }
    await client?.connection.close();
  });

  // The client library's start sets the deadline and the batch id, as the CLI's and a sweep's do: one of those that no
  // worker took up was counted only past its deadline (a day by default), not once past the grace after its start.
  test('one past its deadline counts; one within its deadline, started by the client library or without a deadline, counts once the grace after its start passed', async () => {
    const graceMs = 1_000;
    const all = [late, onTime, startedWithoutDeadline].map(recoveryWorkflowId).sort();
    const counted = await eventually('every recovery no worker took up counted past the grace', async () => {
      const ids = await pastDeadlineOn(client, idleQueue, graceMs);
      return ids.length >= all.length ? ids.sort() : undefined;
    });

    expect(counted).toEqual(all);
    expect(await countRecoveriesPastDeadline(client, graceMs)).toBeGreaterThanOrEqual(all.length);
    // Within the grace, none counts yet: the deadline passed, and the start was, seconds ago.
    const withinGrace = `${pastDeadlineQuery(new Date(), 3_600_000)} AND TaskQueue = "${idleQueue}"`;
    expect((await client.workflow.count(withinGrace)).count).toBe(0);
  });

  test('a worker process exports the count on /metrics as the gauge the alert reads', async () => {
    // Before the spawn: the worker counts as it starts, which can be before this process reads its start line.
    const startedAt = Math.floor(Date.now() / 1000);
    const worker = await spawnWorkerProcess({
      TEMPORAL_TASK_QUEUE: uniqueTaskQueue('past-deadline-worker'),
      ANCHOR_BASE_URL: 'http://127.0.0.1:9',
      ANCHOR_API_KEY: TEST_API_KEY,
      WORKFLOW_BUNDLE_PATH: process.env.TEST_WORKFLOW_BUNDLE,
      PAST_DEADLINE_CHECK_INTERVAL_MS: '200',
      PAST_DEADLINE_GRACE_MS: '0',
    });
    await worker.waitForOutput(WORKER_STARTED);

    const value = await eventually('the gauge counting the late recovery', async () => {
      const scraped = await scrapedGauge(worker.metricsPort, PAST_DEADLINE_METRIC);
      return scraped !== undefined && scraped >= 1 ? scraped : undefined;
    });
    const countedAt = await scrapedGauge(worker.metricsPort, PAST_DEADLINE_COUNTED_AT_METRIC);
    worker.child.kill('SIGTERM');
    const { code } = await worker.closed;

    expect(value).toBeGreaterThanOrEqual(1);
    // In Unix seconds, as PastDeadlineCountFailing reads it against time().
    expect(countedAt).toBeGreaterThanOrEqual(startedAt);
    expect(countedAt).toBeLessThanOrEqual(Date.now() / 1000);
    expect(code).toBe(0);
  });
});

test('a count that fails is logged, cut short, and keeps the gauge going', async () => {
  const connection = await Connection.connect({ address: temporalAddress() });
  const client = new Client({ connection, namespace: temporalNamespace() });
  await connection.close();
  const warnings: { error: string }[] = [];
  const logger = { warn: (fields: object) => void warnings.push(fields as { error: string }) };
  const { metricMeter } = Runtime.instance();
  const gauge = metricMeter.createGauge('test_past_deadline', 'int');
  const countedAtGauge = metricMeter.createGauge('test_past_deadline_counted_at', 'int');

  const running = startPastDeadlineGauge({ client, gauge, countedAtGauge, logger, intervalMs: 20, graceMs: 0 });
  try {
    await eventually('two failed counts logged', () => (warnings.length >= 2 ? warnings : undefined));
  } finally {
    running.stop();
  }

  expect(warnings[0]?.error.length).toBeGreaterThan(0);
  expect(warnings[0]?.error.length).toBeLessThanOrEqual(300);
});

// A failing count keeps the gauge's last value, so RecoveryPastDeadline alone would go blind: PastDeadlineCountFailing
// reads when the count last succeeded.
test('a successful count sets the time it succeeded; counts that fail leave that time as it was', async () => {
  const connection = await Connection.connect({ address: temporalAddress() });
  const client = new Client({ connection, namespace: temporalNamespace() });
  const warnings: object[] = [];
  const logger = { warn: (fields: object) => void warnings.push(fields) };
  const counted = recordingGauge('test_past_deadline');
  const countedAt = recordingGauge('test_past_deadline_counted_at');
  const startedAt = Math.floor(Date.now() / 1000);

  const running = startPastDeadlineGauge({
    client,
    gauge: counted.gauge,
    countedAtGauge: countedAt.gauge,
    logger,
    intervalMs: 20,
    graceMs: 0,
  });
  let setBeforeFailing: number;
  try {
    await eventually('a successful count', () => (countedAt.sets.length >= 2 ? true : undefined));
    await connection.close();
    // A count already under way when the connection closed may still succeed; every one after it fails.
    await eventually('a failed count', () => (warnings.length >= 1 ? true : undefined));
    setBeforeFailing = countedAt.sets.length;
    await eventually('two more failed counts', () => (warnings.length >= 3 ? true : undefined));
  } finally {
    running.stop();
  }

  const namespace = temporalNamespace();
  // 0 from the start, so a worker whose every count fails still has a series for the alert to read.
  expect(countedAt.sets[0]).toEqual({ value: 0, tags: { namespace } });
  expect(countedAt.sets[1]?.tags).toEqual({ namespace });
  expect(countedAt.sets[1]?.value).toBeGreaterThanOrEqual(startedAt);
  expect(countedAt.sets[1]?.value).toBeLessThanOrEqual(Date.now() / 1000);
  expect(Number.isInteger(countedAt.sets[1]?.value)).toBe(true);
  expect(countedAt.sets).toHaveLength(setBeforeFailing);
  // Set with every count the gauge beside it is set to, and only then.
  expect(countedAt.sets.length - 1).toBe(counted.sets.length);
});

// A count that never returns (a connection gone silent, a server that holds the call) held the one-at-a-time guard
// for good: no count after it ran, and the time of the last one stood still without a warning logged.
test('a count with no answer fails once the interval passes, and the counts after it go on', async () => {
  const connection = await Connection.connect({ address: temporalAddress() });
  const client = new Client({ connection, namespace: temporalNamespace() });
  const count = client.workflow.count.bind(client.workflow);
  let counts = 0;
  client.workflow.count = (query) => (++counts === 1 ? new Promise(() => undefined) : count(query));
  const warnings: { error: string }[] = [];
  const logger = { warn: (fields: object) => void warnings.push(fields as { error: string }) };
  const countedAt = recordingGauge('test_past_deadline_counted_at');

  const running = startPastDeadlineGauge({
    client,
    gauge: recordingGauge('test_past_deadline').gauge,
    countedAtGauge: countedAt.gauge,
    logger,
    intervalMs: 200,
    graceMs: 0,
    countTimeoutMs: 200,
  });
  try {
    await eventually('a count after the one with no answer', () => (countedAt.sets.length >= 2 ? true : undefined));
  } finally {
    running.stop();
    await connection.close();
  }

  expect(warnings[0]).toEqual(expect.objectContaining({ error: 'no answer within 200ms' }));
  expect(counts).toBeGreaterThanOrEqual(2);
});
