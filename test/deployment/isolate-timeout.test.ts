import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Client } from '@temporalio/client';
import { bundleWorkflowCode } from '@temporalio/worker';
import { currentNode, imageNodeVersion, imageRuntime, nodeBinary, type NodeRuntime } from '../../dev/node-release.js';
import { asyncContextFrameInUse } from '../../worker/node-runtime.js';
import { RECOVER_BATCH_WORKFLOW } from '../../workflows/definitions.js';
import { killLeftoverChildren } from '../client/child-process.js';
import { eventually, TEST_API_KEY } from '../helpers/recovery-env.js';
import { connectClient, uniqueTaskQueue } from '../helpers/temporal.js';
import { spawnWorkerProcess, WORKER_STARTED, type WorkerProcess } from './worker-process.js';

// A workflow task that runs past the worker's isolateExecutionTimeout, on the Node.js the image runs the worker on
// (with the image's node flags and runtime environment, so that they are shown to start a worker too), and on the one
// the tests run on. The image's fails the task and lives on; Node.js before 24 aborts the whole worker, and the worker
// says so in its log when it starts (worker/node-runtime.ts).

const ISOLATE_TIMEOUT_MS = 300;
const CORRUPTED = /async hook stack has become corrupted/;
const RUNTIME_WARNING = /aborts the whole worker process instead of failing the task/;

let client: Client;
let bundleDir: string;
let bundlePath: string;

beforeAll(async () => {
  client = await connectClient();
  bundleDir = await mkdtemp(path.join(tmpdir(), 'spinning-bundle-'));
  bundlePath = path.join(bundleDir, 'workflows.js');
  const { code } = await bundleWorkflowCode({
    workflowsPath: path.join(path.dirname(fileURLToPath(import.meta.url)), 'spinning-workflows.ts'),
    logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} },
  });
  await writeFile(bundlePath, code);
});

afterAll(async () => {
  await killLeftoverChildren();
  await client?.connection.close();
  await rm(bundleDir, { recursive: true, force: true });
});

/** A worker process on `node` whose recoverBatch spins, and one recovery started on its queue. */
async function spinOn(node: NodeRuntime): Promise<{ worker: WorkerProcess; workflowId: string }> {
  const taskQueue = uniqueTaskQueue('isolate-timeout');
  const worker = await spawnWorkerProcess(
    {
      TEMPORAL_TASK_QUEUE: taskQueue,
      ANCHOR_API_KEY: TEST_API_KEY,
      ANCHOR_BATCH_STATUS_POLLER: 'false',
      WORKFLOW_BUNDLE_PATH: bundlePath,
      WORKER_ISOLATE_EXECUTION_TIMEOUT_MS: String(ISOLATE_TIMEOUT_MS),
    },
    undefined,
    node,
  );
  await worker.waitForOutput(WORKER_STARTED);
  const workflowId = `spinning-${taskQueue}`;
  await client.workflow.start(RECOVER_BATCH_WORKFLOW, { taskQueue, workflowId, args: [] });
  return { worker, workflowId };
}

const taskFailures = async (workflowId: string) =>
  ((await client.workflow.getHandle(workflowId).fetchHistory()).events ?? []).flatMap((event) => {
    const message = event.workflowTaskFailedEventAttributes?.failure?.message;
    return message === undefined || message === null ? [] : [message];
  });

test("on the image's Node.js, a task past the isolate timeout fails, and the worker lives on", async () => {
  const { worker, workflowId } = await spinOn({ path: nodeBinary(imageNodeVersion()), ...imageRuntime() });
  // Twice: the worker ran the task again after the first timeout, so it was still there to run it.
  const failures = await eventually(
    'two timed-out workflow tasks',
    async () => {
      const found = await taskFailures(workflowId);
      return found.length >= 2 ? found : undefined;
    },
    60_000,
  );
  expect(failures[0]).toBe(`Script execution timed out after ${ISOLATE_TIMEOUT_MS}ms`);
  expect(worker.child.exitCode).toBeNull();
  expect(worker.stderr()).not.toMatch(CORRUPTED);
  expect(worker.logEntries().filter((entry) => RUNTIME_WARNING.test(String(entry.msg)))).toEqual([]);
  await client.workflow.getHandle(workflowId).terminate('test done');
  worker.child.kill('SIGTERM');
  await worker.closed;
}, 180_000);

// Only where the tests' own Node.js is affected (20, or 22 without the flag): on a newer one there is nothing to show.
const onAffectedNode = asyncContextFrameInUse() ? test.skip : test;

onAffectedNode(
  'on Node.js 20, the same task aborts the worker, which warned of it at start',
  async () => {
    const { worker, workflowId } = await spinOn(currentNode());
    expect(worker.logEntries().filter((entry) => RUNTIME_WARNING.test(String(entry.msg)))).toHaveLength(1);
    const { code } = await worker.closed;
    expect(code).not.toBe(0);
    expect(worker.stderr()).toMatch(CORRUPTED);
    await client.workflow.getHandle(workflowId).terminate('test done');
  },
  120_000,
);
