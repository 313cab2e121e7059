import { randomUUID } from 'node:crypto';
import { WorkflowNotFoundError } from '@temporalio/client';
import type { SimulatorOptions } from '../../simulator/index.js';
import { RecoveryAlreadyRunningError } from '../../client/recoveries.js';
import type { RecoveryReport } from '../../workflows/report.js';
import { DEFAULT_TASK_QUEUE, RECOVER_BATCH_WORKFLOW, recoveryWorkflowId } from '../../workflows/definitions.js';
import { eventually, reachesPhase, startRecoveryEnv, type RecoveryEnv } from '../helpers/recovery-env.js';
import { temporalNamespace, uniqueTaskQueue } from '../helpers/temporal.js';
import { killLeftoverChildren, runCli, spawnTypeScript } from './child-process.js';

// The CLI runs as a child process against the test dev server; the worker runs in the test.

let env: RecoveryEnv | undefined;

async function recoveryEnv(options: SimulatorOptions = {}): Promise<RecoveryEnv> {
  env = await startRecoveryEnv(options);
  return env;
}

afterEach(async () => {
  await killLeftoverChildren();
  await env?.close();
  env = undefined;
});

/** The CLI on the env's task queue; short intervals so a recovery takes a second or two. */
const fastRecovery = ['--poll-interval', '50ms', '--round-backoff', '100ms'];
const cliOn = (env: RecoveryEnv, args: string[]) => runCli(['--task-queue', env.taskQueue, ...args]);

test('recover --wait --json follows the recovery and prints only the report; report --json repeats it', async () => {
  const env = await recoveryEnv();
  const batch = env.simulator.createScriptedBatch({
    id: randomUUID(),
    count: 8,
    script: { '1': ['fail', 'ok'], '5': ['fail', 'ok'] },
  });
  await env.startWorker();

  const recovered = await cliOn(env, ['recover', batch.id, ...fastRecovery, '--wait', '--json']);

  expect(recovered.code).toBe(0);
  const report = JSON.parse(recovered.stdout) as RecoveryReport;
  expect(report.outcome).toBe('recovered');
  expect(report.rounds).toHaveLength(1);
  expect(report.rounds[0]).toMatchObject({ retriedSessions: 2, failedBefore: 2, failedAfter: 0, recovered: 2 });
  expect(recovered.stderr).toContain(`Started the recovery of batch ${batch.id}`);

  const again = await cliOn(env, ['report', batch.id, '--json']);
  expect(again.code).toBe(0);
  const reread = JSON.parse(again.stdout) as RecoveryReport;
  expect(reread.outcome).toBe('recovered');
  expect(reread.rounds).toEqual(report.rounds);
});

test('recover --retry-all asks the API to retry every session, and the report gives what the API retried', async () => {
  const env = await recoveryEnv();
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
  await env.startWorker();

  const recovered = await cliOn(env, ['recover', batch.id, ...fastRecovery, '--retry-all', '--wait', '--json']);

  expect(recovered.code).toBe(0);
  const report = JSON.parse(recovered.stdout) as RecoveryReport;
  // The simulator took retry_failed_only only for true before: it retried the failed session alone.
  expect(report.rounds[0]).toMatchObject({ retriedSessions: 3, failedBefore: 1, failedAfter: 0 });
  const retries = env.simulator.ledger.forBatch(batch.id).retries;
  expect(retries.map((retry) => [retry.body.retry_failed_only, retry.retriedItems])).toEqual([[false, [0, 1, 2]]]);
});

test('recover for a batch whose recovery is running attaches to it', async () => {
  // No worker: the recovery stays running for as long as the test needs.
  const env = await recoveryEnv();
  const batchId = randomUUID();
  try {
    const first = await cliOn(env, ['recover', batchId]);
    const second = await cliOn(env, ['recover', batchId]);

    expect(first.code).toBe(0);
    expect(first.stdout).toContain(`Started the recovery of batch ${batchId}`);
    expect(second.code).toBe(0);
    expect(second.stdout).toContain(`Attached to the recovery already running for batch ${batchId}`);
    const workflowIds = [first, second].map((result) => result.stdout.match(/Workflow id: (\S+)/)?.[1]);
    expect(workflowIds[0]).toBe(`recover-batch-${batchId}`);
    expect(workflowIds[1]).toBe(workflowIds[0]);
  } finally {
    await env.recoveries.handle(batchId).terminate('test done');
  }
});

test('watch shows plain progress lines when not on a terminal, then the report', async () => {
  // A manual clock holds the batch in flight until the test moves it.
  const env = await recoveryEnv({ clockMode: 'manual' });
  const batch = env.simulator.createScriptedBatch({ id: randomUUID(), count: 5 });
  await env.startWorker();
  expect((await cliOn(env, ['recover', batch.id, ...fastRecovery])).code).toBe(0);

  const watch = spawnTypeScript('client/cli.ts', ['--task-queue', env.taskQueue, 'watch', batch.id], {
    env: process.env,
  });
  await watch.waitForOutput(/^0\/5 sessions settled, 0 failed \| round 0\/3 \| waiting for the batch to settle$/m);
  env.simulator.clock.advance(60_000);
  const { code } = await watch.closed;

  expect(code).toBe(0);
  expect(watch.stdout()).toMatch(/^Outcome: +clean$/m);
  expect(watch.stdout()).not.toContain('\u001b'); // no terminal control sequences in a pipe
});

test('cancel stops a running recovery and prints its outcome', async () => {
  const env = await recoveryEnv({ clockMode: 'manual' });
  const batch = env.simulator.createScriptedBatch({ id: randomUUID(), count: 3 });
  await env.startWorker();
  expect((await cliOn(env, ['recover', batch.id, ...fastRecovery])).code).toBe(0);

  const cancelled = await cliOn(env, ['cancel', batch.id]);

  expect(cancelled.code).toBe(0);
  expect(cancelled.stdout).toBe(
    `Cancel requested for the recovery of batch ${batch.id}\nRecovery of batch ${batch.id} ended: operator_cancelled\n`,
  );
  expect((await env.recoveries.report(batch.id)).outcome).toBe('operator_cancelled');
});

test('pause, policy, resume and retry-now steer a running recovery from the CLI', async () => {
  const env = await recoveryEnv();
  const batch = env.simulator.createScriptedBatch({ id: randomUUID(), count: 4, script: { '2': ['fail', 'ok'] } });
  await env.startWorker();
  expect((await cliOn(env, ['recover', batch.id, '--poll-interval', '50ms', '--round-backoff', '1h'])).code).toBe(0);

  const paused = await cliOn(env, ['pause', batch.id]);
  expect(paused).toMatchObject({ code: 0, stdout: expect.stringContaining('Paused') });
  const rejected = await cliOn(env, ['policy', batch.id, '--max-retries', '5']);
  expect(rejected.code).toBe(1);
  expect(rejected.stderr).toMatch(/maxRetries: Too big/);
  const policy = await cliOn(env, ['policy', batch.id, '--max-rounds', '4', '--max-retries', '2']);
  expect(policy).toMatchObject({ code: 0, stdout: expect.stringContaining('at most 4 rounds') });
  expect((await env.recoveries.report(batch.id)).paused).toBe(true);

  expect((await cliOn(env, ['resume', batch.id])).code).toBe(0);
  expect((await cliOn(env, ['retry-now', batch.id])).code).toBe(0);
  const report = await env.recoveries.result(batch.id);
  expect(report.outcome).toBe('recovered');
  expect(report.maxRounds).toBe(4);
  expect(env.simulator.ledger.forBatch(batch.id).retries.map((retry) => retry.body.max_retries)).toEqual([2]);
});

test('recover with a policy for a running recovery is refused, or applied with --apply-policy', async () => {
  const env = await recoveryEnv();
  const batch = env.simulator.createScriptedBatch({ count: 4, script: { '2': 'always-fail' } });
  await env.startWorker();
  try {
    expect((await cliOn(env, ['recover', batch.id, '--poll-interval', '50ms', '--round-backoff', '1h'])).code).toBe(0);
    await reachesPhase(env.recoveries, batch.id, 'backing_off');

    const refused = await cliOn(env, ['recover', batch.id, '--max-rounds', '5']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^error: A recovery is already running for batch .*--apply-policy/);
    await expect(env.recoveries.start({ batchId: batch.id, maxRounds: 5 })).rejects.toThrow(
      RecoveryAlreadyRunningError,
    );
    expect((await env.recoveries.report(batch.id)).maxRounds).toBe(3);

    const applied = await cliOn(env, ['recover', batch.id, '--max-rounds', '5', '--apply-policy']);
    expect(applied.code).toBe(0);
    expect(applied.stdout).toContain(`Attached to the recovery already running for batch ${batch.id} and applied`);
    expect((await env.recoveries.report(batch.id)).maxRounds).toBe(5);

    // The start's own policy again, asked to be applied: it is, though it equals what the recovery started with.
    const back = await cliOn(env, [
      'recover',
      batch.id,
      '--poll-interval',
      '50ms',
      '--round-backoff',
      '1h',
      '--max-rounds',
      '3',
      '--apply-policy',
    ]);
    expect(back.code).toBe(0);
    expect(back.stdout).toContain('and applied');
    expect((await env.recoveries.report(batch.id)).maxRounds).toBe(3);

    // A deadline equal to the start's (the default 24h) is no change: the rest is applied.
    const same = await cliOn(env, ['recover', batch.id, '--deadline', '24h', '--max-rounds', '4', '--apply-policy']);
    expect(same.code).toBe(0);
    expect((await env.recoveries.report(batch.id)).maxRounds).toBe(4);
    // That deadline alone (a script run again): before, an empty change was sent, and the workflow refused it (exit 1).
    const sameAlone = await cliOn(env, ['recover', batch.id, '--deadline', '24h', '--apply-policy']);
    expect(sameAlone.code).toBe(0);
    expect(sameAlone.stdout).not.toContain('and applied');
    expect((await env.recoveries.report(batch.id)).maxRounds).toBe(4);

    const fixed = await cliOn(env, ['recover', batch.id, '--deadline', '1h', '--apply-policy']);
    expect(fixed.code).toBe(1);
    expect(fixed.stderr).toMatch(/deadline cannot change after the start, so nothing was applied\. Leave it out/);
    // It was given: advising it would send the operator round in a circle.
    expect(fixed.stderr).not.toMatch(/with --apply-policy/);
  } finally {
    await env.recoveries.handle(batch.id).terminate('test done');
  }
});

test('a namespace and task queue with spaces around them, or blank, are read as the worker reads them', async () => {
  // No worker: the recoveries stay running until the test terminates them.
  const env = await recoveryEnv();
  const namespace = temporalNamespace();
  const [spaced, blank] = [randomUUID(), randomUUID()];
  try {
    // Before, " default" was a namespace the server did not know (exit 1); a task queue with a line break at its end
    // (a secret file) started the recovery on a queue no worker polls.
    const recover = await runCli([
      '--namespace',
      ` ${namespace} `,
      '--task-queue',
      `${env.taskQueue}\n`,
      'recover',
      spaced,
    ]);
    expect(recover.code).toBe(0);
    expect(recover.stdout).toContain(`/namespaces/${namespace}/workflows/${recoveryWorkflowId(spaced)}\n`);
    expect((await env.recoveries.handle(spaced).describe()).taskQueue).toBe(env.taskQueue);
    // Blank, as compose passes an unset variable: the default, as for the worker. Before, "Missing
    // WorkflowOptions.taskQueue" (exit 1).
    const defaults = await runCli(['recover', blank], { TEMPORAL_TASK_QUEUE: '', TEMPORAL_NAMESPACE: ' ' });
    expect(defaults.code).toBe(0);
    expect((await env.recoveries.handle(blank).describe()).taskQueue).toBe(DEFAULT_TASK_QUEUE);
  } finally {
    for (const batchId of [spaced, blank])
      await env.recoveries
        .handle(batchId)
        .terminate('test done')
        .catch(() => undefined);
  }
});

test('a batch id typed in upper case names the same recovery: recover attaches, report finds it', async () => {
  const env = await recoveryEnv();
  const batch = env.simulator.createScriptedBatch({ count: 4, script: { '2': 'always-fail' } });
  await env.startWorker();
  const upper = batch.id.toUpperCase();
  try {
    expect((await cliOn(env, ['recover', upper, '--poll-interval', '50ms', '--round-backoff', '1h'])).code).toBe(0);
    await reachesPhase(env.recoveries, batch.id, 'backing_off');

    const again = await cliOn(env, ['recover', batch.id, '--poll-interval', '50ms', '--round-backoff', '1h']);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`Attached to the recovery already running for batch ${batch.id}`);
    const report = await cliOn(env, ['report', upper]);
    expect(report.code).toBe(0);
    expect(report.stdout).toContain(`(workflow recover-batch-${batch.id})`);
    expect((await env.recoveries.start({ batchId: upper })).attached).toBe(true);
    // The API was asked about the batch by its own id: the simulator knows no other.
    expect(env.simulator.ledger.forBatch(batch.id).calls.length).toBeGreaterThan(0);
  } finally {
    await env.recoveries.handle(batch.id).terminate('test done');
  }
});

/**
 * A recovery of a new batch as a release before lower-casing started it, under the upper-case id; on a queue no worker
 * polls, so it stays running.
 */
async function startUpperCaseRecovery(env: RecoveryEnv) {
  const batchId = randomUUID();
  const upper = batchId.toUpperCase();
  const legacy = await env.client.workflow.start(RECOVER_BATCH_WORKFLOW, {
    taskQueue: uniqueTaskQueue('nobody'),
    workflowId: recoveryWorkflowId(upper),
    args: [{ batchId: upper }],
  });
  return { batchId, upper, legacy };
}

test('a recovery an earlier release started under an upper-case batch id is not doubled by a lower-case one', async () => {
  const env = await recoveryEnv();
  const { batchId, upper, legacy } = await startUpperCaseRecovery(env);
  try {
    // Typed in either case: before, the batch id in lower case, as the API and the sweeps print it, started a second.
    for (const typed of [upper, batchId]) {
      const recover = await cliOn(env, ['recover', typed]);
      expect(recover.code).toBe(1);
      expect(recover.stderr).toContain(`(workflow recover-batch-${upper}); an earlier release started it`);
    }
    await expect(env.recoveries.start({ batchId })).rejects.toThrow(RecoveryAlreadyRunningError);
    await expect(env.recoveries.handle(batchId).describe()).rejects.toThrow(WorkflowNotFoundError);
  } finally {
    await legacy.terminate('test done');
  }
});

test('a recovery an earlier release started under a mixed-case batch id is not doubled when typed the same way', async () => {
  const env = await recoveryEnv();
  // Letters in its first part, so that the mixed-case id differs from the lower-case one.
  const batchId = `abcdef12${randomUUID().slice(8)}`;
  const mixed = `${batchId.slice(0, 8).toUpperCase()}${batchId.slice(8)}`;
  const legacy = await env.client.workflow.start(RECOVER_BATCH_WORKFLOW, {
    taskQueue: uniqueTaskQueue('nobody'),
    workflowId: recoveryWorkflowId(mixed),
    args: [{ batchId: mixed }],
  });
  try {
    const recover = await cliOn(env, ['recover', mixed]);
    expect(recover.code).toBe(1);
    expect(recover.stderr).toContain(`(workflow recover-batch-${mixed}); an earlier release started it`);
    await expect(env.recoveries.handle(batchId).describe()).rejects.toThrow(WorkflowNotFoundError);
  } finally {
    await legacy.terminate('test done');
  }
});

test('a recovery an earlier release started under an upper-case batch id is found and steered by the batch id', async () => {
  const env = await recoveryEnv();
  const { batchId, upper, legacy } = await startUpperCaseRecovery(env);
  try {
    // Before, each said "No recovery found for batch …" (exit 1).
    for (const typed of [upper, batchId]) {
      const report = await cliOn(env, ['report', typed, '--json']);
      expect(report.code).toBe(0);
      expect((JSON.parse(report.stdout) as RecoveryReport).batchId.toLowerCase()).toBe(batchId);
    }
    expect((await cliOn(env, ['pause', batchId])).code).toBe(0);
    const cancel = await cliOn(env, ['cancel', upper, '--timeout', '1s']);
    expect(cancel.stdout).toContain(`Cancel requested for the recovery of batch ${upper}`);
    expect(cancel.code).toBe(10);
    const events = (await legacy.fetchHistory()).events ?? [];
    const signals = events.flatMap((event) => event.workflowExecutionSignaledEventAttributes?.signalName ?? []);
    expect(signals).toEqual(['pauseRecovery']);
    expect(events.filter((event) => event.workflowExecutionCancelRequestedEventAttributes)).toHaveLength(1);
    await expect(env.recoveries.handle(batchId).describe()).rejects.toThrow(WorkflowNotFoundError);
  } finally {
    await legacy.terminate('test done');
  }
});

test('report and watch with every worker down read the stored report and say how old it is', async () => {
  const env = await recoveryEnv();
  const batch = env.simulator.createScriptedBatch({ count: 4, script: { '1': 'always-fail' } });
  const workers = await env.startWorker();
  try {
    expect((await cliOn(env, ['recover', batch.id, '--poll-interval', '50ms', '--round-backoff', '1h'])).code).toBe(0);
    const live = await eventually('the recovery to back off', async () => {
      const progress = await env.recoveries.progress(batch.id);
      // A query slower than its timeout falls back to the stored report: wait for a live answer.
      return progress.report.phase === 'backing_off' && progress.source.kind === 'live' ? progress : undefined;
    });
    expect(live.source).toEqual({ kind: 'live' });
    workers.shutdown();
    await eventually('the workers to stop', () => (workers.stopped ? true : undefined));

    const report = await cliOn(env, ['report', batch.id]);
    expect(report.code).toBe(0);
    expect(report.stdout).toMatch(
      /^Stored report: no worker (answered within 3000 ms|polls the task queue)\. Recorded at \S+ \(.+ ago\)\.$/m,
    );
    expect(report.stdout).toMatch(/^Outcome: +running \(backing off, next retry at \S+\)$/m);
    expect(report.stdout).toMatch(/^Still failing: 1 session$/m);

    const json = await cliOn(env, ['report', batch.id, '--json']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ batchId: batch.id, phase: 'backing_off', outcome: null });
    expect(json.stderr).toMatch(/^Stored report: /m);

    // One process, so killing it closes its output.
    const watch = spawnTypeScript('client/cli.ts', ['--task-queue', env.taskQueue, 'watch', batch.id], {
      env: process.env,
    });
    await watch.waitForOutput(
      /^4\/4 sessions settled, 1 failed \| round 0\/3 \| next retry at .* \| stored report of \S+ \(no worker (answered within 3000 ms|polls the task queue)(; [^)]+)?\)$/m,
    );
  } finally {
    await killLeftoverChildren();
    await env.recoveries.handle(batch.id).terminate('test done');
  }
});
