import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { msNumberToTs } from '@temporalio/common/lib/time.js';
import proto from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { EXIT_CODES, STUCK_AFTER_TASK_FAILURES } from '../../client/exit-codes.js';
import { pendingWorkflowTaskFact } from '../../client/recoveries.js';
import { formatProgressLine, progressState } from '../../client/progress.js';
import { eventually, startRecoveryEnv, type RecoveryEnv } from '../helpers/recovery-env.js';
import { connectWorker, temporalNamespace } from '../helpers/temporal.js';
import { killLeftoverChildren, runCli } from './child-process.js';

const { PENDING_WORKFLOW_TASK_STATE_SCHEDULED, PENDING_WORKFLOW_TASK_STATE_STARTED } =
  proto.temporal.api.enums.v1.PendingWorkflowTaskState;
const at = (iso: string) => msNumberToTs(Date.parse(iso));
const ISO_TIME = String.raw`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z`;

describe('pendingWorkflowTaskFact', () => {
  test('says nothing without a pending workflow task', () => {
    expect(pendingWorkflowTaskFact(undefined)).toBeNull();
    expect(pendingWorkflowTaskFact(null)).toBeNull();
  });

  test('tells a task waiting for a worker from one a worker holds, by the time each began', () => {
    const scheduled = {
      state: PENDING_WORKFLOW_TASK_STATE_SCHEDULED,
      attempt: 1,
      scheduledTime: at('2026-12-01T03:00:00Z'),
    };
    expect(pendingWorkflowTaskFact(scheduled)).toBe(
      'its workflow task has waited for a worker since 2026-12-01T03:00:00.000Z',
    );
    const started = {
      ...scheduled,
      state: PENDING_WORKFLOW_TASK_STATE_STARTED,
      startedTime: at('2026-12-01T03:00:02Z'),
    };
    expect(pendingWorkflowTaskFact(started)).toBe('a worker has held its workflow task since 2026-12-01T03:00:02.000Z');
  });

  test('says a task that keeps failing is failing, whatever its state', () => {
    const failing = {
      state: PENDING_WORKFLOW_TASK_STATE_STARTED,
      attempt: 2,
      scheduledTime: at('2026-12-01T03:00:00Z'),
    };
    expect(pendingWorkflowTaskFact(failing)).toBe(
      "its workflow task has failed or timed out 1 time in a row (see the worker's log)",
    );
    expect(pendingWorkflowTaskFact({ ...failing, attempt: 5 })).toBe(
      "its workflow task has failed or timed out 4 times in a row (see the worker's log)",
    );
  });
});

describe('a stored report says why no worker answered', () => {
  let env: RecoveryEnv;
  beforeEach(async () => {
    env = await startRecoveryEnv();
  });
  afterEach(async () => {
    // A wait that does not end (before this change, on a stuck recovery) leaves its CLI process to kill.
    await killLeftoverChildren();
    await env.close();
  });

  test('a recovery no worker has picked up: its first workflow task waits for one', async () => {
    const batchId = randomUUID();
    await env.recoveries.start({ batchId });
    try {
      const progress = await env.recoveries.progress(batchId);
      expect(progress.source).toMatchObject({ kind: 'stored' });
      const reason = progress.source.kind === 'stored' ? progress.source.reason : '';
      expect(reason).toMatch(
        new RegExp(
          `^no worker polls the task queue; its workflow task has waited for a worker since ${ISO_TIME}; not started yet$`,
        ),
      );
      expect(formatProgressLine(progressState(progress))).toMatch(
        new RegExp(
          `^no status read yet \\| round 0/3 \\| waiting for the batch to settle \\| stored report of ${ISO_TIME} \\(no worker polls the task queue; .*; not started yet\\)$`,
        ),
      );
    } finally {
      await env.recoveries.handle(batchId).terminate('test done');
    }
  });

  test('a recovery whose workflow tasks keep failing: the count of failures, not a slow worker', async () => {
    const connection = await connectWorker();
    const worker = await Worker.create({
      connection,
      namespace: temporalNamespace(),
      taskQueue: env.taskQueue,
      workflowsPath: fileURLToPath(new URL('./failing-workflows.ts', import.meta.url)),
    });
    const batchId = randomUUID();
    await worker.runUntil(async () => {
      await env.recoveries.start({ batchId });
      try {
        await eventually(
          `the workflow task to fail ${STUCK_AFTER_TASK_FAILURES} times in a row`,
          async () => {
            const { raw } = await env.recoveries.handle(batchId).describe();
            return (raw.pendingWorkflowTask?.attempt ?? 0) > STUCK_AFTER_TASK_FAILURES ? true : undefined;
          },
          60_000,
        );
        const progress = await env.recoveries.progress(batchId);
        expect(progress.workflowTaskFailures).toBeGreaterThanOrEqual(STUCK_AFTER_TASK_FAILURES);
        const reason = progress.source.kind === 'stored' ? progress.source.reason : '';
        expect(reason).toMatch(
          /^no worker answered within 3000 ms; its workflow task has failed or timed out \d+ times in a row \(see the worker's log\); not started yet$/,
        );

        // A script reading the exit code tells a stuck recovery from one that is merely running (0).
        const report = await runCli(['--task-queue', env.taskQueue, 'report', batchId]);
        expect(report.code).toBe(EXIT_CODES.stuck);
        expect(report.stdout).toMatch(
          /^Stored report: .*its workflow task has failed or timed out \d+ times in a row/m,
        );
        // Those that wait for the end stop waiting, with the same exit code: before, they waited until a deploy.
        for (const waiting of [
          ['watch', batchId],
          ['recover', batchId, '--wait'],
        ]) {
          const ended = await runCli(['--task-queue', env.taskQueue, ...waiting]);
          expect({ command: waiting[0], code: ended.code }).toEqual({ command: waiting[0], code: EXIT_CODES.stuck });
          expect(ended.stdout).toMatch(
            /^Stored report: .*its workflow task has failed or timed out \d+ times in a row/m,
          );
        }
      } finally {
        await env.recoveries.handle(batchId).terminate('test done');
      }
    });
    await connection.close();
  }, 120_000);
});
