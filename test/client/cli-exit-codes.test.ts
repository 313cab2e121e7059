import { randomUUID } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import { readFileSync } from 'node:fs';
import { EXIT_CODES, EXIT_CODES_HELP } from '../../client/exit-codes.js';
import { RECOVER_BATCH_WORKFLOW, recoveryWorkflowId } from '../../workflows/definitions.js';
import type { RecoveryReport } from '../../workflows/report.js';
import { eventually, startRecoveryEnv, TEST_API_KEY, type RecoveryEnv } from '../helpers/recovery-env.js';
import { killLeftoverChildren, repoRoot, runCli, spawnTypeScript } from './child-process.js';

// The CLI as a child process against the test dev server; one in-process worker for the file.

let env: RecoveryEnv;

beforeAll(async () => {
  env = await startRecoveryEnv();
  await env.startWorker();
});
afterEach(killLeftoverChildren);
afterAll(() => env.close());

const fast = ['--poll-interval', '50ms', '--round-backoff', '100ms'];
const cli = (args: string[]) => runCli(['--task-queue', env.taskQueue, ...args]);

/** `recover --wait --json`: the exit code, and the report parsed from stdout (JSON mode is unchanged). */
async function recoverAndWait(batchId: string, options: string[] = fast) {
  const result = await cli(['recover', batchId, ...options, '--wait', '--json']);
  return { code: result.code, report: JSON.parse(result.stdout) as RecoveryReport, stderr: result.stderr };
}

test('the documented codes are distinct, and only success is 0', () => {
  const codes = Object.values(EXIT_CODES);
  expect(new Set(codes).size).toBe(codes.length);
  expect(EXIT_CODES).toMatchObject({ ok: 0, exhausted: 2, deadline: 3, batch_cancelled: 4 });
});

test('recovered and clean exit 0', async () => {
  const failing = env.simulator.createScriptedBatch({ count: 4, script: { '1': ['fail', 'ok'] } });
  const clean = env.simulator.createScriptedBatch({ count: 3 });

  const recovered = await recoverAndWait(failing.id);
  const nothingToDo = await recoverAndWait(clean.id);

  expect([recovered.code, recovered.report.outcome]).toEqual([0, 'recovered']);
  expect([nothingToDo.code, nothingToDo.report.outcome]).toEqual([0, 'clean']);
});

test('exhausted exits 2 from recover --wait, watch and report', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '0': 'always-fail' } });

  const recovered = await recoverAndWait(batch.id, [...fast, '--max-rounds', '1']);
  const watched = await cli(['watch', batch.id]);
  const reported = await cli(['report', batch.id]);

  expect([recovered.code, recovered.report.outcome]).toEqual([2, 'exhausted']);
  expect(watched.code).toBe(2);
  expect(watched.stdout).toMatch(/^Outcome: +exhausted$/m);
  expect(reported.code).toBe(2);
  expect(reported.stdout).toMatch(/^Outcome: +exhausted$/m);
});

test('a recovery refused for its input exits 6 from report and watch, with the problem, and is listed as failed', async () => {
  // As the Web UI starts one: the input is not checked before the workflow's first task.
  const batchId = randomUUID();
  const handle = await env.client.workflow.start(RECOVER_BATCH_WORKFLOW, {
    taskQueue: env.taskQueue,
    workflowId: recoveryWorkflowId(batchId),
    args: [{ batchId, maxRounds: 'five' }],
  });
  await expect(handle.result()).rejects.toThrow(WorkflowFailedError);

  const reported = await cli(['report', batchId]);
  const watched = await cli(['watch', batchId]);
  const json = await cli(['report', batchId, '--json']);
  // Before, report and watch crashed formatting the failure's first detail (a problem, not a report), exit 1.
  expect([reported.code, watched.code, json.code]).toEqual([6, 6, 6]);
  for (const { stdout } of [reported, watched]) {
    expect(stdout).toMatch(/InvalidRecoveryInput.*maxRounds: Invalid input: expected number, received string/);
    // Before, `Rounds: none yet (at most 0)`: a refused start has no policy.
    expect(stdout).toMatch(/^Rounds: none$/m);
  }
  expect(JSON.parse(json.stdout)).toMatchObject({
    batchId,
    failure: { type: 'InvalidRecoveryInput' },
    phase: 'done',
    // Not known: before, `0` and the start time.
    maxRounds: null,
    deadlineAt: null,
  });
  // Found by outcome, with its batch id: before, it had no search attribute at all.
  await eventually('the listing of failed recoveries to show it', async () => {
    const listed = await cli(['report', '--since', '5m', '--outcome', 'failed', '--json']);
    return listed.stdout.includes(batchId) ? true : undefined;
  });
});

test('deadline exits 3', async () => {
  // The round backoff outlasts the deadline: the recovery ends at the deadline, before its first round.
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '2': 'always-fail' } });

  const result = await recoverAndWait(batch.id, [
    '--poll-interval',
    '50ms',
    '--round-backoff',
    '1h',
    '--deadline',
    '2s',
  ]);

  expect([result.code, result.report.outcome]).toEqual([3, 'deadline']);
  expect(env.simulator.ledger.forBatch(batch.id).retries).toHaveLength(0);
});

test('batch_cancelled exits 4', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': 'always-fail' } });
  await fetch(`${env.simulator.url}/v1/batch-sessions/${batch.id}`, {
    method: 'PATCH',
    headers: { 'content-type': 'application/json', 'anchor-api-key': TEST_API_KEY },
    body: JSON.stringify({ status: 'cancelled' }),
  });

  const result = await recoverAndWait(batch.id);

  expect([result.code, result.report.outcome]).toEqual([4, 'batch_cancelled']);
});

test('operator_cancelled exits 5 for the recover --wait that was following it', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': 'always-fail' } });
  const following = spawnTypeScript(
    'client/cli.ts',
    [
      ...['--task-queue', env.taskQueue, 'recover', batch.id],
      ...['--poll-interval', '50ms', '--round-backoff', '1h', '--wait', '--json'],
    ],
    { env: process.env },
  );
  // The CLI's cold start (tsx compiling it) can take most of the default 30 s on a loaded machine.
  await eventually(
    'the recovery to back off',
    async () => {
      const progress = await env.recoveries.progress(batch.id).catch(() => undefined);
      return progress?.report.phase === 'backing_off' ? true : undefined;
    },
    90_000,
  );

  await env.recoveries.cancel(batch.id);
  const { code } = await following.closed;

  expect(code).toBe(5);
  expect((JSON.parse(following.stdout()) as RecoveryReport).outcome).toBe('operator_cancelled');
}, 150_000);

test('a failed recovery exits 6 and still prints its report', async () => {
  // No such batch: the API answers 404, a permanent error.
  const batchId = randomUUID();

  const result = await cli(['recover', batchId, ...fast, '--wait', '--json']);

  expect(result.code).toBe(6);
  expect((JSON.parse(result.stdout) as RecoveryReport).failure).toMatchObject({ type: 'batch_not_found' });
  expect(result.stderr).toMatch(/^error: Recovery of batch .* failed/m);
  expect((await cli(['report', batchId])).code).toBe(6);
});

test('an unreachable Temporal exits 7 from every command', async () => {
  const batchId = randomUUID();
  const unreachable = ['--address', '127.0.0.1:1'];

  const results = await Promise.all([
    runCli([...unreachable, 'recover', batchId, '--wait']),
    runCli([...unreachable, 'watch', batchId]),
    runCli([...unreachable, 'report', batchId]),
  ]);

  expect(results.map((result) => result.code)).toEqual([7, 7, 7]);
});

test('--help lists the exit codes, of every command', async () => {
  const help = await runCli(['recover', '--help']);

  expect(help.code).toBe(0);
  expect(help.stdout).toMatch(/^ {2}2 {2}exhausted/m);
  expect(help.stdout).toMatch(/^ {2}7 {2}Temporal could not be reached/m);
  expect(help.stdout).toMatch(/^ {2}9 {2}terminated/m);
  expect(help.stdout).toMatch(/^ 10 {2}no worker took it up/m);
  // Before, the schedule's commands and the worker's listed none, and the root's once only.
  for (const command of [[], ['worker'], ['schedule'], ['schedule', 'upsert'], ['schedule', 'trigger']]) {
    const { code, stdout } = await runCli([...command, '--help']);
    expect({ command, code, lists: stdout.match(/^Exit codes:$/gm)?.length }).toEqual({ command, code: 0, lists: 1 });
  }
});

test("the README's exit-code table and --help list the same codes, every one there is", () => {
  const readme = readFileSync(`${repoRoot}README.md`, 'utf8');
  const table = readme.slice(readme.indexOf('**Exit codes**')).split('\n\n')[1] ?? '';
  const inReadme = [...table.matchAll(/^\| (\d+) +\|/gm)].map((match) => Number(match[1]));
  const inHelp = [...EXIT_CODES_HELP.matchAll(/^ {0,2}(\d+) {2}\S/gm)].map((match) => Number(match[1]));

  const codes = Object.values(EXIT_CODES).sort((a, b) => a - b);
  expect(inReadme).toEqual(codes);
  expect(inHelp).toEqual(codes);
});
