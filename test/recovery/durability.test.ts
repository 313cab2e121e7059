import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { FAST_POLICY, eventually, startRecoveryEnv, TEST_API_KEY, type RecoveryEnv } from '../helpers/recovery-env.js';
import { temporalAddress, temporalNamespace } from '../helpers/temporal.js';

let env: RecoveryEnv;
const workerProcesses: ChildProcess[] = [];

beforeAll(async () => {
  env = await startRecoveryEnv();
});
afterAll(async () => {
  for (const child of workerProcesses) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  }
  await env.close();
});

/** The production worker entry point, as its own process, on the env's task queue and simulator. */
function spawnWorkerProcess(env: RecoveryEnv): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'worker/main.ts'], {
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: temporalAddress(),
      TEMPORAL_NAMESPACE: temporalNamespace(),
      TEMPORAL_TASK_QUEUE: env.taskQueue,
      ANCHOR_BASE_URL: env.simulator.url,
      ANCHOR_API_KEY: TEST_API_KEY,
      WORKFLOW_BUNDLE_PATH: process.env.TEST_WORKFLOW_BUNDLE,
      LOG_LEVEL: 'WARN',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  workerProcesses.push(child);
  return child;
}

test('starting a recovery twice for the same batch attaches to the one running', async () => {
  await env.startWorker();
  const batch = env.simulator.createScriptedBatch({ count: 4, script: { '0': ['fail', 'ok'] } });
  const input = { batchId: batch.id, ...FAST_POLICY, roundBackoff: { initialInterval: '2s' } };
  const [first, second] = await Promise.all([env.recoveries.start(input), env.recoveries.start(input)]);

  expect(first.workflowId).toBe(second.workflowId);
  expect(first.runId).toBe(second.runId);
  expect([first.attached, second.attached].sort()).toEqual([false, true]);
  const report = await env.recoveries.result(batch.id);
  expect(report.rounds).toHaveLength(1);
  expect(env.simulator.ledger.forBatch(batch.id).retries).toHaveLength(1);
});

test('a worker killed with SIGKILL mid-retry is replaced by another that finishes without a second retry', async () => {
  // Its own task queue, so the in-process worker of the other test cannot pick the work up.
  const killEnv = await startRecoveryEnv();
  try {
    const env = killEnv;
    const batch = env.simulator.createScriptedBatch({ count: 8, script: { '3': ['fail', 'ok'], '6': ['fail', 'ok'] } });
    // The retry is applied only after 4 s: the first worker dies while its call is in flight.
    env.simulator.faults.add('retry', { type: 'latency', latencyMs: 4_000, times: 1, batchId: batch.id });
    const first = spawnWorkerProcess(env);
    await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY });
    await eventually(
      'the retry call to reach the API',
      () => env.simulator.ledger.forBatch(batch.id).calls.find((call) => call.path.endsWith('/retry')),
      60_000,
    );
    first.kill('SIGKILL');
    await once(first, 'exit');
    await eventually('the in-flight retry to be applied', () => env.simulator.ledger.forBatch(batch.id).retries[0]);

    spawnWorkerProcess(env);
    const report = await env.recoveries.result(batch.id);

    expect(report.outcome).toBe('recovered');
    expect(report.rounds).toEqual([
      expect.objectContaining({
        round: 1,
        reconciled: true,
        reconcileEffect: 'took_effect',
        failedBefore: 2,
        failedAfter: 0,
        apiMessage: expect.stringContaining('worker_lost'),
      }),
    ]);
    expect(env.simulator.ledger.forBatch(batch.id).retries).toHaveLength(1);
    expect(env.simulator.ledger.forBatch(batch.id).calls.filter((call) => call.path.endsWith('/retry'))).toHaveLength(
      1,
    );
  } finally {
    await killEnv.close();
  }
}, 90_000);
