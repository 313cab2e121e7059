import { randomUUID } from 'node:crypto';
import { formatProgressLine, progressState } from '../../client/progress.js';
import { RECOVER_BATCH_WORKFLOW, recoveryWorkflowId } from '../../workflows/definitions.js';
import { RECOVERY_MEMO_KEY, ROUNDS_SHOWN, type RecoveryMemo } from '../../workflows/recovery-details.js';
import { REPORT_LIMITS } from '../../workflows/report.js';
import { eventually, FAST_POLICY, startRecoveryEnv, type RecoveryEnv } from '../helpers/recovery-env.js';
import { killLeftoverChildren, runCli } from './child-process.js';

// The memo keeps the latest ROUNDS_SHOWN rounds of the report, which itself keeps the first and the last ones past
// REPORT_LIMITS: a report read from it lists neither the oldest rounds nor those the report had already left out.

let env: RecoveryEnv;
beforeEach(async () => {
  env = await startRecoveryEnv();
});
afterEach(async () => {
  await killLeftoverChildren();
  await env.close();
});

const memoOf = async (batchId: string) =>
  (await env.recoveries.handle(batchId).describe()).memo?.[RECOVERY_MEMO_KEY] as RecoveryMemo | undefined;

test('a stored report of a recovery past the rounds the memo keeps counts every round done', async () => {
  const { firstRounds, lastRounds } = REPORT_LIMITS;
  const batch = env.simulator.createScriptedBatch({ count: 2, script: { '1': 'always-fail' } });
  const workers = await env.startWorker();
  await env.recoveries.start({
    batchId: batch.id,
    ...FAST_POLICY,
    roundBackoff: { initialInterval: '10ms', backoffCoefficient: 1, maximumInterval: '10ms' },
    maxRounds: 1000,
  });
  try {
    // Past the rounds the report lists in full, so that it has left some out before the memo drops the oldest.
    await eventually(
      'the memo to store a report that left rounds out',
      async () => ((await memoOf(batch.id))?.report.omittedRounds ? true : undefined),
      120_000,
    );
    workers.shutdown();
    await eventually('the workers to stop', () => (workers.stopped ? true : undefined));
    const memo = await memoOf(batch.id);
    const done = memo!.report.rounds.at(-1)!.round;
    const firstListed = done - ROUNDS_SHOWN + 1;
    expect(memo!.report.omittedRounds?.count).toBe(done - firstRounds - lastRounds);

    const report = await runCli(['--task-queue', env.taskQueue, 'report', batch.id]);
    expect(report.code).toBe(0);
    const lines = report.stdout.split('\n');
    expect(lines).toContain(`Rounds: ${done} of at most 1000`);
    const header = lines.findIndex((line) => line.startsWith('  round  '));
    expect(lines[header + 1]).toBe(`  … rounds 1-${firstListed - 1} left out: the stored report keeps the latest 20`);
    expect(lines[header + 2]).toMatch(new RegExp(`^ {2}${firstListed} `));
    expect(lines.filter((line) => line.startsWith('  … '))).toHaveLength(1);
    expect(report.stdout).toMatch(
      new RegExp(`^Stored report: .*; its ${firstListed - 1} oldest rounds are not listed\\.$`, 'm'),
    );

    // watch's line counts them too.
    const progress = await env.recoveries.progress(batch.id);
    expect(progress.source.kind).toBe('stored');
    expect(formatProgressLine(progressState(progress))).toContain(`| round ${done}/1000 |`);
  } finally {
    await env.recoveries.handle(batch.id).terminate('test done');
  }
}, 180_000);

test('a stored report of a recovery not started yet, whose input cannot be read, gives no maximum of rounds', async () => {
  // As the Web UI starts one: the input is checked by the workflow's first task, which no worker has run.
  const batchId = randomUUID();
  const handle = await env.client.workflow.start(RECOVER_BATCH_WORKFLOW, {
    taskQueue: env.taskQueue,
    workflowId: recoveryWorkflowId(batchId),
    args: [{ batchId, maxRounds: 'five' }],
  });
  try {
    const report = await runCli(['--task-queue', env.taskQueue, 'report', batchId]);
    const json = await runCli(['--task-queue', env.taskQueue, 'report', batchId, '--json']);

    expect(report.code).toBe(0);
    const lines = report.stdout.split('\n');
    // Before, `Rounds: none yet (at most 0)`, and watch's line `round 0/0`.
    expect(lines.filter((line) => line.startsWith('Rounds:'))).toEqual(['Rounds: none yet']);
    expect(report.stdout).not.toContain('at most');
    // Before, the start time as its deadline, and in JSON `maxRounds: 0` with that deadline.
    const { startTime } = await handle.describe();
    expect(lines.filter((line) => line.startsWith('Started:'))).toEqual([
      `Started:  ${startTime.toISOString()}   deadline: unknown (its input cannot be read)`,
    ]);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({
      batchId,
      startedAt: startTime.toISOString(),
      maxRounds: null,
      deadlineAt: null,
    });
    const progress = await env.recoveries.progress(batchId);
    expect(progress.source).toMatchObject({ kind: 'stored' });
    expect(formatProgressLine(progressState(progress))).toMatch(
      /^no status read yet \| round 0 \| waiting for the batch to settle \| stored report of /,
    );
  } finally {
    await handle.terminate('test done');
  }
});
