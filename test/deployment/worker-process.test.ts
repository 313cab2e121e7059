import getPort from 'get-port';
import type { Client } from '@temporalio/client';
import { BatchRecoveries, RecoveryFailedError } from '../../client/recoveries.js';
import { startSimulator, type RunningSimulator } from '../../simulator/index.js';
import { recoveryWorkflowId } from '../../workflows/definitions.js';
import { killLeftoverChildren, spawnWatched } from '../client/child-process.js';
import { eventually, FAST_POLICY, TEST_API_KEY } from '../helpers/recovery-env.js';
import { connectClient, uniqueTaskQueue } from '../helpers/temporal.js';
import { spawnWorkerProcess, WORKER_STARTED, type WorkerProcess } from './worker-process.js';

// One worker process, as deployed: started from the prebuilt bundle, scraped, read, and stopped with SIGTERM.

let simulator: RunningSimulator;
let client: Client;
let recoveries: BatchRecoveries;
let worker: WorkerProcess;
let batchId: string;
let taskQueue: string;

/** The value of the one sample of `name` whose labels include `labels`; undefined when there is none. */
function sample(metrics: string, name: string, labels: Record<string, string>): number | undefined {
  const line = metrics
    .split('\n')
    .find(
      (candidate) =>
        candidate.startsWith(`${name}{`) &&
        Object.entries(labels).every(([label, value]) => candidate.includes(`${label}="${value}"`)),
    );
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

beforeAll(async () => {
  simulator = await startSimulator({ apiKeys: [TEST_API_KEY], attemptDurationMs: 40, queueDelayMs: 10 });
  client = await connectClient();
  taskQueue = uniqueTaskQueue('deployment');
  recoveries = new BatchRecoveries(client, taskQueue);
  worker = await spawnWorkerProcess({
    TEMPORAL_TASK_QUEUE: taskQueue,
    ANCHOR_BASE_URL: simulator.url,
    ANCHOR_API_KEY: TEST_API_KEY,
    WORKFLOW_BUNDLE_PATH: process.env.TEST_WORKFLOW_BUNDLE,
    // DEBUG adds the SDK's per-activity entries: more lines that must carry ids and must not leak secrets.
    LOG_LEVEL: 'DEBUG',
  });
  await worker.waitForOutput(WORKER_STARTED);
});

afterAll(async () => {
  await killLeftoverChildren();
  await client?.connection.close();
  await simulator?.close();
});

test('a worker process started from the prebuilt bundle runs a recovery to completion', async () => {
  const started = worker.logEntries().find((entry) => entry.msg === 'Worker started');
  expect(started?.workflowBundle).toBe(process.env.TEST_WORKFLOW_BUNDLE);
  // The bundle has the workflow interceptors built in (the failure log test below shows them at work): naming them
  // to the worker as well drew the SDK's warning that they are ignored, at every start.
  expect(worker.logEntries().filter((entry) => /interceptors/.test(String(entry.msg)))).toEqual([]);

  const batch = simulator.createScriptedBatch({ count: 6, script: { '1': ['fail', 'ok'], '4': ['fail', 'ok'] } });
  batchId = batch.id;
  await recoveries.start({ batchId, ...FAST_POLICY });
  const report = await recoveries.result(batchId);

  expect(report.outcome).toBe('recovered');
  expect(report.totals).toEqual({ retriedSessions: 2, recovered: 2, stillFailed: 0 });
});

test('the Prometheus endpoint exports the product metrics of that recovery', async () => {
  const response = await fetch(`http://127.0.0.1:${worker.metricsPort}/metrics`);
  expect(response.status).toBe(200);
  const metrics = await response.text();

  // The product's counters come through the SDK's meter with no prefix or suffix, labelled by queue and namespace.
  expect(sample(metrics, 'anchor_recoveries', { outcome: 'recovered', taskQueue })).toBe(1);
  expect(sample(metrics, 'anchor_retry_calls', { reconciled: 'false', taskQueue })).toBe(1);
  expect(sample(metrics, 'anchor_retried_sessions', { taskQueue })).toBe(2);
  // The SDK's own metrics share the endpoint, under its temporal_ prefix.
  expect(metrics).toMatch(/^temporal_workflow_completed\{/m);
});

test('the JSON logs of that recovery carry workflowId and batchId, and no API key or session URL', () => {
  const entries = worker.logEntries();
  const workflowId = recoveryWorkflowId(batchId);
  const finished = entries.find((entry) => entry.msg === 'Recovery finished');
  expect(finished).toMatchObject({ batchId, workflowId, outcome: 'recovered', level: 30 });
  // Activity entries: the SDK adds the workflow the activity runs for.
  expect(
    entries.some((entry) => entry.activityType === 'announceAndSendRetry' && entry.workflowId === workflowId),
  ).toBe(true);
  const output = worker.stdout() + worker.stderr();
  expect(output).not.toContain(TEST_API_KEY);
  expect(output).not.toMatch(/wss:\/\//);
  expect(output).not.toMatch(/[?&]token=/);
});

test('failure log lines carry the failure type and its redacted message', async () => {
  // A session fails, so the recovery reads its batch (right before its retry call) and meets the refused key.
  const batch = simulator.createScriptedBatch({ count: 2, script: { '0': ['fail', 'ok'] } });
  const token = 'tok3n5ecret9f1c2a';
  simulator.faults.add('status', {
    type: 'error',
    statusCode: 401,
    message: `key refused for wss://connect.anchorbrowser.io?sessionId=s1&token=${token}`,
    batchId: batch.id,
  });
  await recoveries.start({ batchId: batch.id, ...FAST_POLICY });
  await expect(recoveries.result(batch.id)).rejects.toThrow(RecoveryFailedError);

  const workflowId = recoveryWorkflowId(batch.id);
  const failureLines = () =>
    worker.logEntries().filter((entry) => entry.workflowId === workflowId && /failed$/.test(String(entry.msg)));
  // The worker's stdout reaches the test through a pipe: the last line may arrive after the result.
  const failures = await eventually('both failure lines in the log', () =>
    failureLines().length >= 2 ? failureLines() : undefined,
  );
  expect(failures.map((entry) => entry.msg).sort()).toEqual(['Activity failed', 'Workflow failed']);
  for (const entry of failures) {
    expect(entry.error).toEqual({
      type: 'unauthorized',
      message: expect.stringMatching(/HTTP 401.*: key refused for \[(url removed|redacted)/),
    });
  }
  expect(worker.stdout()).not.toContain(token);
});

test('SIGTERM stops the worker process cleanly', async () => {
  worker.child.kill('SIGTERM');
  const { code, signal } = await worker.closed;
  expect({ code, signal }).toEqual({ code: 0, signal: null });
  expect(worker.logEntries().map((entry) => entry.msg)).toContain('Worker stopped');
});

test('npm start with an address and a key is this worker, and a SIGTERM sent to npm alone stops it cleanly', async () => {
  // Detached only so that a failure's cleanup reaches a worker left behind; the SIGTERM goes to npm alone, as a
  // container runtime whose command is `npm start` sends it.
  const npmStart = spawnWatched('npm', ['start'], {
    env: {
      ...process.env,
      TEMPORAL_TASK_QUEUE: uniqueTaskQueue('npm-start'),
      ANCHOR_BASE_URL: simulator.url,
      ANCHOR_API_KEY: TEST_API_KEY,
      WORKFLOW_BUNDLE_PATH: process.env.TEST_WORKFLOW_BUNDLE,
      METRICS_PORT: String(await getPort()),
      LOG_LEVEL: 'INFO',
    },
    detached: true,
  });
  await npmStart.waitForOutput(WORKER_STARTED, 120_000);
  npmStart.child.kill('SIGTERM');
  expect(await npmStart.closed).toEqual({ code: 0, signal: null });
  expect(npmStart.stdout()).toMatch(/^\{.*"msg":"Worker stopped".*\}$/m);
});
