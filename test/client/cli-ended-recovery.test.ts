import { randomUUID } from 'node:crypto';
import { RECOVER_BATCH_WORKFLOW } from '../../workflows/definitions.js';
import { recoveryStartOptions } from '../../workflows/recovery-start.js';
import type { RecoveryReport } from '../../workflows/report.js';
import { recoveryOutcomeKey } from '../../workflows/search-attributes.js';
import { eventually, startRecoveryEnv, type RecoveryEnv } from '../helpers/recovery-env.js';
import { uniqueTaskQueue } from '../helpers/temporal.js';
import { killLeftoverChildren, runCli } from './child-process.js';

// Commands for recoveries that have ended, on their own or from outside; one in-process worker for the file.

let env: RecoveryEnv;

beforeAll(async () => {
  env = await startRecoveryEnv();
  await env.startWorker();
});
afterEach(killLeftoverChildren);
afterAll(() => env.close());

const cli = (args: string[]) => runCli(['--task-queue', env.taskQueue, ...args]);
const fast = ['--poll-interval', '50ms', '--round-backoff', '100ms'];

/** A recovery backing off for an hour, once its memo holds that (what a stored report shows). */
async function recoveryBackingOff(): Promise<string> {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': 'always-fail' } });
  expect((await cli(['recover', batch.id, '--poll-interval', '50ms', '--round-backoff', '1h'])).code).toBe(0);
  await eventually('the recovery to back off', async () => {
    const progress = await env.recoveries.progress(batch.id);
    return progress.report.phase === 'backing_off' && progress.source.kind === 'live' ? true : undefined;
  });
  return batch.id;
}

test('signals and policy for a recovery that has ended name its outcome; for no recovery, say there is none', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '0': 'always-fail' } });
  expect((await cli(['recover', batch.id, ...fast, '--max-rounds', '1', '--wait', '--json'])).code).toBe(2);

  for (const command of [['pause'], ['resume'], ['retry-now'], ['policy', '--max-rounds', '5']]) {
    const [name, ...options] = command as [string, ...string[]];
    const result = await cli([name, batch.id, ...options]);
    expect({ command: name, code: result.code, stderr: result.stderr }).toEqual({
      command: name,
      code: 1,
      stderr: `error: The recovery of batch ${batch.id} has already ended: exhausted\n`,
    });
  }
  const cancelled = await cli(['cancel', batch.id]);
  expect(cancelled).toMatchObject({
    code: 0,
    stdout: `The recovery of batch ${batch.id} has already ended: exhausted\n`,
  });

  const none = randomUUID();
  expect((await cli(['pause', none])).stderr).toMatch(new RegExp(`^error: No recovery found for batch ${none}`));
});

test('a terminated recovery: report, watch and cancel say so, and report prints what it stored', async () => {
  const batchId = await recoveryBackingOff();
  await env.recoveries.handle(batchId).terminate('stopped by an operator');
  const said = `error: The recovery of batch ${batchId} was terminated: stopped by an operator\n`;
  const closedAt = (await env.recoveries.handle(batchId).describe()).closeTime!.toISOString();

  const report = await cli(['report', batchId]);
  expect(report.code).toBe(9);
  expect(report.stderr).toBe(said);
  expect(report.stdout).toMatch(
    /^Stored report: the workflow was terminated, so the recovery wrote no end\. Recorded at \S+ \(.+ ago\)\.$/m,
  );
  expect(report.stdout).toMatch(/^Outcome: +terminated \(stopped by an operator\)$/m);
  // Its end is when the workflow closed (before, no end: the deadline in its place).
  expect(report.stdout).toMatch(new RegExp(`^Started: +\\S+ +finished: ${closedAt}$`, 'm'));
  expect(report.stdout).toMatch(/^Still failing: 1 session$/m);

  const json = await cli(['report', batchId, '--json']);
  expect(json.code).toBe(9);
  expect(JSON.parse(json.stdout) as RecoveryReport).toMatchObject({
    batchId,
    phase: 'backing_off',
    outcome: null,
    finishedAt: closedAt,
  });
  expect(json.stderr).toMatch(/^Stored report: the workflow was terminated/);
  expect(json.stderr.endsWith(said)).toBe(true);

  const watch = await cli(['watch', batchId]);
  expect(watch.code).toBe(9);
  expect(watch.stdout).toMatch(/^Outcome: +terminated \(stopped by an operator\)$/m);
  expect(watch.stderr).toBe(said);

  const cancel = await cli(['cancel', batchId]);
  expect(cancel.code).toBe(0);
  expect(cancel.stdout).toBe(
    `The recovery of batch ${batchId} has already ended: terminated (stopped by an operator)\n`,
  );
  const pause = await cli(['pause', batchId]);
  expect(pause.code).toBe(1);
  expect(pause.stderr).toMatch(/has already ended: terminated \(stopped by an operator\)$/m);
});

test('a recovery whose workflow timed out is reported as timed out, with the report it had', async () => {
  const batchId = randomUUID();
  // No worker polls this queue: the recovery never runs, and times out after a second.
  await env.client.workflow.start(RECOVER_BATCH_WORKFLOW, {
    ...recoveryStartOptions({ batchId }, uniqueTaskQueue('nobody')),
    workflowExecutionTimeout: '1s',
  });
  await eventually('the workflow to time out', async () =>
    (await env.recoveries.handle(batchId).describe()).status.name === 'TIMED_OUT' ? true : undefined,
  );

  const report = await cli(['report', batchId]);

  expect(report.code).toBe(9);
  expect(report.stderr).toBe(
    `error: The recovery of batch ${batchId} timed out: its workflow execution or run timeout passed\n`,
  );
  expect(report.stdout).toMatch(/^Outcome: +timed out$/m);
  const closedAt = (await env.recoveries.handle(batchId).describe()).closeTime!.toISOString();
  expect(report.stdout).toMatch(new RegExp(`^Started: +\\S+ +finished: ${closedAt}$`, 'm'));
  expect(report.stdout).toMatch(/^Rounds: none$/m);
});

test('report --outcome takes failed and running, the other values RecoveryOutcome has', async () => {
  // No such batch: the API answers 404 and the recovery fails.
  const failed = randomUUID();
  await env.recoveries.start({ batchId: failed });
  await expect(env.recoveries.result(failed)).rejects.toThrow(/failed/);
  const running = await recoveryBackingOff();
  // Terminated while its RecoveryOutcome said running: not running any more.
  const terminated = await recoveryBackingOff();
  await eventually('the terminated one to publish its outcome', async () =>
    (await env.recoveries.handle(terminated).describe()).typedSearchAttributes.get(recoveryOutcomeKey) === 'running'
      ? true
      : undefined,
  );
  await env.recoveries.handle(terminated).terminate('test done');
  // Started where no worker polls: it has run no workflow task, and is still running.
  const unpicked = randomUUID();
  await env.client.workflow.start(
    RECOVER_BATCH_WORKFLOW,
    recoveryStartOptions({ batchId: unpicked }, uniqueTaskQueue('nobody')),
  );

  try {
    const listed = async (outcome: string) => {
      const result = await cli(['report', '--since', '1h', '--outcome', outcome, '--json']);
      expect(result.code).toBe(0);
      return (JSON.parse(result.stdout) as { batchId: string; outcome: string }[]).map((row) => row.batchId);
    };
    // Visibility is seconds behind.
    const failedRows = await eventually('the failed recovery listed', async () => {
      const rows = await listed('failed');
      return rows.includes(failed) ? rows : undefined;
    });
    expect(failedRows).not.toContain(running);
    // Until visibility has the terminate, the terminated one is listed as running too: wait for it to drop out.
    // Before, only a recovery's first workflow task wrote RecoveryOutcome: the one no worker took was never listed.
    const runningRows = await eventually('the running recoveries listed, and not the terminated one', async () => {
      const rows = await listed('running');
      return rows.includes(running) && rows.includes(unpicked) && !rows.includes(terminated) ? rows : undefined;
    });
    expect(runningRows).not.toContain(failed);
    // And its report is still the one it starts with, not "it stores no report".
    const report = await cli(['report', unpicked]);
    expect(report.stdout).toMatch(/^Outcome: +running \(waiting for batch\)$/m);
    expect(report.stdout).toMatch(/not started yet/);
  } finally {
    await env.recoveries.handle(running).terminate('test done');
    await env.recoveries.handle(unpicked).terminate('test done');
  }
});
