import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Worker } from '@temporalio/worker';
import { formatProgressLine, progressState } from '../../client/progress.js';
import { workflowUiUrl } from '../../client/recoveries.js';
import { recoveryWorkflowId } from '../../workflows/definitions.js';
import type { RecoveryReport } from '../../workflows/report.js';
import { recentPollerIdentities } from '../../worker/task-queue-pollers.js';
import { eventually, startRecoveryEnv, type RecoveryEnv } from '../helpers/recovery-env.js';
import { connectWorker, temporalNamespace } from '../helpers/temporal.js';
import { killLeftoverChildren, runCli, spawnTypeScript } from './child-process.js';

// `policy` and `cancel` need a worker to take them up: without one they must end, and say what became of the request.
// A wait for the end says that no worker runs the recovery, also with --json.

let env: RecoveryEnv;

beforeEach(async () => {
  env = await startRecoveryEnv();
});
afterEach(async () => {
  await killLeftoverChildren();
  await env.close();
});

const cli = (args: string[]) => runCli(['--task-queue', env.taskQueue, ...args]);

/**
 * Starts a recovery and runs `use` with a worker whose every workflow task fails: it polls the task queue, but never
 * runs the recovery, which is terminated afterwards.
 */
async function withStuckRecovery(use: (batchId: string) => Promise<void>): Promise<void> {
  const batchId = randomUUID();
  await env.recoveries.start({ batchId });
  const connection = await connectWorker();
  try {
    const worker = await Worker.create({
      connection,
      namespace: temporalNamespace(),
      taskQueue: env.taskQueue,
      workflowsPath: fileURLToPath(new URL('./failing-workflows.ts', import.meta.url)),
    });
    await worker.runUntil(async () => {
      await eventually('the stuck worker among the pollers', async () =>
        (await recentPollerIdentities(env.client, env.taskQueue, 'workflow')).length > 0 ? true : undefined,
      );
      await use(batchId);
    });
  } finally {
    await connection.close();
    await env.recoveries.handle(batchId).terminate('test done');
  }
}

test('policy with no worker polling is refused at once, and nothing applies when a worker starts later', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': 'always-fail' } });
  const fast = ['--poll-interval', '50ms', '--round-backoff', '100ms'];
  expect((await cli(['recover', batch.id, ...fast, '--max-rounds', '1'])).code).toBe(0);

  const policy = await cli(['policy', batch.id, '--max-rounds', '5']);
  const applied = await cli(['recover', batch.id, ...fast, '--max-rounds', '5', '--apply-policy']);

  for (const refused of [policy, applied]) {
    expect(refused.code).toBe(10);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toBe(
      `error: No worker polls task queue ${env.taskQueue}, which runs the recovery of batch ${batch.id}: ` +
        'the policy change was not sent. Start a worker (batch-recovery worker) and try again.\n',
    );
  }
  await env.startWorker();
  const report = await env.recoveries.result(batch.id);
  expect(report).toMatchObject({ outcome: 'exhausted', maxRounds: 1 });
  expect(report.rounds).toHaveLength(1);
});

test('policy that no worker takes up within --timeout says it was not confirmed and may still apply', async () => {
  await withStuckRecovery(async (batchId) => {
    const policy = await cli(['policy', batchId, '--max-rounds', '5', '--timeout', '2s']);

    expect(policy.code).toBe(10);
    expect(policy.stderr).toBe(
      `error: The policy change for batch ${batchId} was not confirmed within 2s: no worker took it up. ` +
        `It may still apply when a worker picks the recovery up (batch-recovery report ${batchId} shows maxRounds).\n`,
    );
  });
});

test('cancel with no worker polling says the cancel is recorded and the recovery has not ended, without waiting', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': 'always-fail' } });
  expect((await cli(['recover', batch.id, '--poll-interval', '50ms', '--round-backoff', '1h'])).code).toBe(0);

  const cancelled = await cli(['cancel', batch.id]);

  expect(cancelled.code).toBe(10);
  expect(cancelled.stdout).toBe(
    `Cancel requested for the recovery of batch ${batch.id}\n` +
      `It has not ended yet (no worker polls task queue ${env.taskQueue}): it ends with outcome operator_cancelled ` +
      `when a worker runs it; batch-recovery report ${batch.id} shows it\n`,
  );
  // The server kept the request: the first worker to run the recovery ends it so.
  await env.startWorker();
  expect((await env.recoveries.result(batch.id)).outcome).toBe('operator_cancelled');
});

test('cancel waits at most --timeout for a recovery a worker polls for but does not end', async () => {
  await withStuckRecovery(async (batchId) => {
    const cancelled = await cli(['cancel', batchId, '--timeout', '2s']);

    expect({ code: cancelled.code, stderr: cancelled.stderr }).toEqual({ code: 10, stderr: '' });
    expect(cancelled.stdout).toMatch(
      new RegExp(`^Cancel requested for the recovery of batch ${batchId}\\nIt has not ended yet \\(not within 2s\\)`),
    );
  });
});

test('a wait for the end that reaches its deadline says so, however the call past the deadline fails', async () => {
  await withStuckRecovery(async (batchId) => {
    await env.recoveries.cancel(batchId);
    // The long poll's call past the deadline failed now and then as CANCELLED, not DEADLINE_EXCEEDED: `cancel`
    // exited 1 with `Failed to get Workflow execution history` (2 of 3 CI runs).
    const endings = [];
    for (let i = 0; i < 20; i += 1) endings.push(await env.recoveries.waitForEnd(batchId, 700));
    expect(endings).toEqual(Array.from({ length: 20 }, () => ({ ended: false, reason: 'not within 700ms' })));
  });
}, 90_000);

test('recover --wait --json with no worker polling says so on stderr, and its stdout stays the report alone', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 2, script: { '1': ['fail', 'ok'] } });
  const workflowId = recoveryWorkflowId(batch.id);
  const following = spawnTypeScript(
    'client/cli.ts',
    [
      ...['--task-queue', env.taskQueue, '--ui-url', 'http://ui.test', 'recover', batch.id],
      ...['--poll-interval', '50ms', '--round-backoff', '100ms', '--wait', '--json'],
    ],
    { env: process.env },
  );
  const started = [
    `Started the recovery of batch ${batch.id}`,
    `Workflow id: ${workflowId}`,
    `Web UI:      ${workflowUiUrl('http://ui.test', temporalNamespace(), workflowId)}`,
  ];
  // Before, nothing past these lines: the wait was a silent one. The CLI's cold start can take most of a minute.
  const stderr = await eventually(
    'the CLI to say why the progress is not live',
    () => (following.stderr().split('\n').length > started.length + 1 ? following.stderr() : undefined),
    90_000,
  );
  const notLive = formatProgressLine(progressState(await env.recoveries.progress(batch.id)));
  expect(notLive).toMatch(/\| stored report of .* \(no worker polls the task queue; .*; not started yet\)$/);
  expect(stderr).toBe([...started, notLive, ''].join('\n'));
  expect(following.stdout()).toBe('');

  await env.startWorker();
  const { code } = await following.closed;

  expect(code).toBe(0);
  expect(JSON.parse(following.stdout()) as RecoveryReport).toMatchObject({ batchId: batch.id, outcome: 'recovered' });
}, 150_000);
