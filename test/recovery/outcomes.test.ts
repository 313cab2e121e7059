import { randomUUID } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import { RecoveryFailedError } from '../../client/recoveries.js';
import { recoveryWorkflowId } from '../../workflows/definitions.js';
import { recoveryEnd } from '../../workflows/recovery-details.js';
import { recoverBatch, type CarriedRecovery } from '../../workflows/recover-batch.js';
import type { RecoverBatchInput } from '../../workflows/input.js';
import { newReport, recordRound, roundsDone } from '../../workflows/report.js';
import { anchorBatchIdKey, recoveryOutcomeKey, recoveryRoundsKey } from '../../workflows/search-attributes.js';
import {
  eventually,
  FAST_POLICY,
  memoWrites,
  startRecoveryEnv,
  TEST_API_KEY,
  withOwnWorker,
  type RecoveryEnv,
} from '../helpers/recovery-env.js';

let env: RecoveryEnv;

beforeAll(async () => {
  env = await startRecoveryEnv();
  await env.startWorker();
});
afterAll(() => env.close());

const retryCalls = (batchId: string) =>
  env.simulator.ledger.forBatch(batchId).calls.filter((call) => call.method === 'POST' && call.path.endsWith('/retry'));

test('a batch whose failed sessions succeed on their second attempt recovers in one round', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 10, script: { '2': ['fail', 'ok'], '7': ['fail', 'ok'] } });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY });
  const report = await env.recoveries.result(batch.id);

  expect(report.outcome).toBe('recovered');
  expect(report.rounds).toHaveLength(1);
  expect(report.rounds[0]).toMatchObject({
    round: 1,
    retriedSessions: 2,
    apiStatus: 200,
    failedBefore: 2,
    failedAfter: 0,
    recovered: 2,
    reconciled: false,
  });
  expect(report.totals).toEqual({ retriedSessions: 2, recovered: 2, stillFailed: 0 });
  expect(env.simulator.ledger.forBatch(batch.id).retries).toHaveLength(1);
  expect(env.simulator.ledger.forBatch(batch.id).retries[0]?.body).toEqual({ retry_failed_only: true, max_retries: 1 });
});

test('sessions that need several attempts recover over several rounds', async () => {
  const batch = env.simulator.createScriptedBatch({
    count: 6,
    script: { '1': ['fail', 'fail', 'ok'], '4': ['fail', 'fail', 'fail', 'ok'], '5': ['fail', 'ok'] },
  });
  await env.recoveries.start({ batchId: batch.id, maxRounds: 5, ...FAST_POLICY });
  const report = await env.recoveries.result(batch.id);

  expect(report.outcome).toBe('recovered');
  expect(report.rounds.map((round) => [round.failedBefore, round.retriedSessions, round.failedAfter])).toEqual([
    [3, 3, 2],
    [2, 2, 1],
    [1, 1, 0],
  ]);
  expect(report.totals).toEqual({ retriedSessions: 6, recovered: 3, stillFailed: 0 });
  expect(env.simulator.ledger.forBatch(batch.id).retries).toHaveLength(3);
});

test('a session that always fails exhausts the rounds and is reported with its error and retry count', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 5, script: { '3': 'always-fail', '0': ['fail', 'ok'] } });
  await env.recoveries.start({ batchId: batch.id, maxRounds: 2, maxRetries: 2, ...FAST_POLICY });
  const report = await env.recoveries.result(batch.id);

  expect(report.outcome).toBe('exhausted');
  expect(report.rounds).toHaveLength(2);
  expect(report.totals).toEqual({ retriedSessions: 3, recovered: 1, stillFailed: 1 });
  expect(report.stillFailing.total).toBe(1);
  expect(report.stillFailing.sessions).toEqual([{ itemIndex: 3, error: expect.any(String), retryCount: 4 }]);
  expect(env.simulator.ledger.forBatch(batch.id).retries.map((retry) => retry.body.max_retries)).toEqual([2, 2]);
});

test('a batch with nothing failed is clean and is never retried', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 4 });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY });
  const report = await env.recoveries.result(batch.id);

  expect(report.outcome).toBe('clean');
  expect(report.rounds).toEqual([]);
  expect(retryCalls(batch.id)).toHaveLength(0);
});

test('a cancelled batch ends the recovery as batch_cancelled without a retry', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': 'always-fail' } });
  await fetch(`${env.simulator.url}/v1/batch-sessions/${batch.id}`, {
    method: 'PATCH',
    headers: { 'content-type': 'application/json', 'anchor-api-key': TEST_API_KEY },
    body: JSON.stringify({ status: 'cancelled' }),
  });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY });
  const report = await env.recoveries.result(batch.id);

  expect(report.outcome).toBe('batch_cancelled');
  expect(retryCalls(batch.id)).toHaveLength(0);
});

test('an unknown batch fails the recovery at once as batch_not_found', async () => {
  const batchId = '0b6c3f52-3c55-4d7e-9a51-8f0e0b7d2a11';
  await env.recoveries.start({ batchId, ...FAST_POLICY });
  const failure = await env.recoveries.result(batchId).catch((err: unknown) => err);

  expect(failure).toBeInstanceOf(RecoveryFailedError);
  expect((failure as RecoveryFailedError).message).toContain(batchId);
  expect(((failure as RecoveryFailedError).cause as { type?: string }).type).toBe('batch_not_found');
  expect(env.simulator.ledger.forBatch(batchId).calls).toHaveLength(1);
});

test('a bug in workflow code ends the recovery failed, with its report, not running', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
  // An answer the workflow cannot read, as a bug of ours would leave it: reading its outcome throws a TypeError in
  // workflow code. Left to fail the workflow task, that error would retry for ever with the recovery `running`.
  const unreadable = () => Promise.resolve(null as never);
  const failure = await withOwnWorker(
    env.simulator.url,
    () => ({ sendRetry: unreadable, announceAndSendRetry: unreadable }),
    async (recoveries) => {
      await recoveries.start({ batchId: batch.id, ...FAST_POLICY });
      return recoveries.result(batch.id).catch((err: unknown) => err);
    },
  );

  expect(failure).toBeInstanceOf(RecoveryFailedError);
  const { report } = failure as RecoveryFailedError;
  // A report that stopped on a failure keeps its outcome null; the search attribute says failed.
  expect(report).toMatchObject({ outcome: null, phase: 'done', failure: { type: 'TypeError' } });
  expect(report?.finishedAt).not.toBeNull();
  const description = await env.client.workflow.getHandle(recoveryWorkflowId(batch.id)).describe();
  expect(description.status.name).toBe('FAILED');
  expect(description.typedSearchAttributes.get(recoveryOutcomeKey)).toBe('failed');
  expect(env.retryPosts(batch.id)).toHaveLength(0);
});

test('invalid input ends the workflow at once with a non-retryable error naming the field', async () => {
  const workflowId = `invalid-input-${Date.now()}`;
  const failure = await env.client.workflow
    .execute('recoverBatch', {
      taskQueue: env.taskQueue,
      workflowId,
      args: [
        {
          batchId: 'not-a-uuid',
          maxRetries: 7,
          poll: { initialInterval: 'soon' },
          deadline: '1000000000y',
          maxRound: 2,
        },
      ],
    })
    .catch((err: unknown) => err);

  expect(failure).toBeInstanceOf(WorkflowFailedError);
  const cause = (failure as WorkflowFailedError).cause as { type?: string; message: string; nonRetryable?: boolean };
  expect(cause.type).toBe('InvalidRecoveryInput');
  expect(cause.nonRetryable).toBe(true);
  expect(cause.message).toMatch(/batchId: .*UUID/i);
  expect(cause.message).toMatch(/maxRetries: /);
  expect(cause.message).toMatch(/poll\.initialInterval: expected a duration/);
  expect(cause.message).toMatch(/maxRound: unknown field/);
  expect(cause.message).toMatch(/deadline: must be at most 365d/);
});

test("a start under another workflow id than the batch's recovery id ends at once naming workflowId, calling no API", async () => {
  // Before: the Web UI's start form took any id, and a sweep, which looks for a batch's recovery under that id only,
  // started a second recovery of the batch beside it: the batch's retries went out twice.
  const batch = env.simulator.createScriptedBatch({ count: 2, script: { '1': ['fail', 'ok'] } });
  const typedByHand = `typed-by-hand-${batch.id}`;
  const failure = await env.client.workflow
    .execute(recoverBatch, { taskQueue: env.taskQueue, workflowId: typedByHand, args: [{ batchId: batch.id }] })
    .catch((err: unknown) => err);

  expect(failure).toBeInstanceOf(WorkflowFailedError);
  const cause = (failure as WorkflowFailedError).cause as { type?: string; message: string; nonRetryable?: boolean };
  expect(cause.type).toBe('InvalidRecoveryInput');
  expect(cause.nonRetryable).toBe(true);
  expect(cause.message).toBe(
    `workflowId: expected "${recoveryWorkflowId(batch.id)}", the batch's recovery id (one recovery per batch: a ` +
      `sweep looks for a batch's recovery under that id only), got "${typedByHand}"`,
  );
  expect(env.simulator.ledger.forBatch(batch.id).calls).toEqual([]);
  const refused = await env.client.workflow.getHandle(typedByHand).describe();
  expect(refused.typedSearchAttributes.get(recoveryOutcomeKey)).toBe('failed');
  expect(refused.typedSearchAttributes.get(anchorBatchIdKey)).toBe(batch.id);

  // The batch's own recovery, under its id, then recovers it with one retry.
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY });
  expect(await env.recoveries.result(batch.id)).toMatchObject({ outcome: 'recovered' });
  expect(retryCalls(batch.id)).toHaveLength(1);
});

test("a start under the batch's recovery id in upper case ends at once, beside its recovery under the lower-case id", async () => {
  // Before: accepted (a release before wave 35 named recoveries so), it ran beside the recovery the CLI and the sweeps
  // start under the lower-case id, and both sent the batch's retry call.
  const batch = env.simulator.createScriptedBatch({ count: 2, script: { '1': ['fail', 'ok'] } });
  const upperCaseId = recoveryWorkflowId(batch.id.toUpperCase());
  const failure = await env.client.workflow
    .execute(recoverBatch, { taskQueue: env.taskQueue, workflowId: upperCaseId, args: [{ batchId: batch.id }] })
    .catch((err: unknown) => err);

  expect(failure).toBeInstanceOf(WorkflowFailedError);
  const cause = (failure as WorkflowFailedError).cause as { type?: string; message: string };
  expect(cause.type).toBe('InvalidRecoveryInput');
  expect(cause.message).toMatch(new RegExp(`^workflowId: expected "${recoveryWorkflowId(batch.id)}", `));
  expect(env.simulator.ledger.forBatch(batch.id).calls).toEqual([]);
});

test('durations typed as digits alone, as the Web UI takes them, end the workflow naming each field', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 2, script: { '1': ['fail', 'ok'] } });
  const typed = { batchId: batch.id, deadline: '3600', roundBackoff: { initialInterval: '30' } };
  // Before: read as milliseconds, a deadline of 3.6 s that ended the recovery at once.
  const failure = await env.client.workflow
    .execute(recoverBatch, { taskQueue: env.taskQueue, workflowId: recoveryWorkflowId(batch.id), args: [typed] })
    .catch((err: unknown) => err);

  expect(failure).toBeInstanceOf(WorkflowFailedError);
  const cause = (failure as WorkflowFailedError).cause as { type?: string; message: string };
  expect(cause.type).toBe('InvalidRecoveryInput');
  expect(cause.message).toBe(
    'Invalid input: deadline: "3600" has no unit: write "3600s" for seconds, or the number 3600 for ms; ' +
      'roundBackoff.initialInterval: "30" has no unit: write "30s" for seconds, or the number 30 for ms',
  );
  expect(env.simulator.ledger.forBatch(batch.id).calls).toEqual([]);
  // The library refuses them before it starts anything; a number is milliseconds, as before.
  await expect(env.recoveries.start({ batchId: randomUUID(), deadline: '3600' })).rejects.toThrow(
    /^Invalid input: deadline: "3600" has no unit/,
  );
  const numbered = env.simulator.createScriptedBatch({ count: 2, script: { '1': ['fail', 'ok'] } });
  await env.recoveries.start({ batchId: numbered.id, ...FAST_POLICY, deadline: 3_600_000 });
  expect((await env.recoveries.result(numbered.id)).outcome).toBe('recovered');
});

test("an empty duration, as the Web UI's start form can send, ends the workflow naming the field", async () => {
  // Before: ms() threw a plain error in the workflow, whose task then failed again and again: a recovery stuck
  // running, with no report.
  const failure = await env.client.workflow
    .execute('recoverBatch', {
      taskQueue: env.taskQueue,
      workflowId: `empty-duration-${Date.now()}`,
      args: [{ batchId: '6f1c2a9e-4b7d-4c1e-9a3f-2d5e8b7c0a14', deadline: '' }],
    })
    .catch((err: unknown) => err);

  expect(failure).toBeInstanceOf(WorkflowFailedError);
  const cause = (failure as WorkflowFailedError).cause as { type?: string; message: string };
  expect(cause.type).toBe('InvalidRecoveryInput');
  expect(cause.message).toMatch(/deadline: expected a duration like "30s", "250ms" or "2h", got ""/);
});

test('the client rejects invalid input before starting anything, naming the field', async () => {
  await expect(env.recoveries.start({ batchId: '1234', maxRounds: 0 })).rejects.toThrow(/batchId: .*maxRounds: /s);
});

test('a run continued as new with input this release refuses stops with the report it carried, not bare', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': 'always-fail' } });
  const workflowId = recoveryWorkflowId(batch.id);
  // What an earlier run of the chain carried: one round sent. The input stands for a policy a newer release's
  // bounds refuse (no current bound was ever tightened, so an out-of-range value plays it).
  const report = newReport(batch.id, workflowId, new Date(), new Date(Date.now() + 3_600_000), 3);
  recordRound(report, {
    round: 1,
    startedAt: new Date().toISOString(),
    retriedSessions: 1,
    apiStatus: 200,
    apiMessage: null,
    failedBefore: 1,
    failedAfter: null,
    recovered: null,
    reconciled: false,
  });
  await env.client.workflow.start(recoverBatch, {
    taskQueue: env.taskQueue,
    workflowId,
    args: [{ batchId: batch.id, ...FAST_POLICY, maxRounds: 0 }, { report }],
  });
  const failure = await env.recoveries.result(batch.id).catch((err: unknown) => err);

  expect(failure).toBeInstanceOf(RecoveryFailedError);
  const stopped = (failure as RecoveryFailedError).report;
  expect(stopped?.rounds).toHaveLength(1);
  expect(stopped?.phase).toBe('done');
  expect(stopped?.failure?.type).toBe('InvalidRecoveryInput');
  expect(stopped?.failure?.message).toMatch(/continued as new with: .*maxRounds: /);
  const handle = env.recoveries.handle(batch.id);
  const description = await handle.describe();
  expect(description.status.name).toBe('FAILED');
  expect(description.typedSearchAttributes.get(recoveryOutcomeKey)).toBe('failed');
  expect(description.typedSearchAttributes.get(recoveryRoundsKey)).toBe(1);
  expect(description.typedSearchAttributes.get(anchorBatchIdKey)).toBe(batch.id);
  expect(memoWrites(await handle.fetchHistory())).toEqual([{ phase: 'done', rounds: 1 }]);
  expect(env.retryPosts(batch.id)).toHaveLength(0);
});

test('a run continued as new with a refused batch id of 3,000 characters typed by hand stops with its report', async () => {
  // Past the server's size of a search attribute's value (2 KB): before, the server refused the report's upsert and
  // terminated the run, which ended with no report.
  const batchId = 'x'.repeat(3_000);
  const workflowId = `carried-long-batch-id-${Date.now()}`;
  const report = newReport(batchId, workflowId, new Date(), new Date(Date.now() + 3_600_000), 3);
  const handle = await env.client.workflow.start(recoverBatch, {
    taskQueue: env.taskQueue,
    workflowId,
    args: [{ batchId, ...FAST_POLICY }, { report }],
  });
  const description = await eventually('the run to fail', async () => {
    const described = await handle.describe();
    return described.status.name === 'RUNNING' ? undefined : described;
  });

  expect(description.status.name).toBe('FAILED');
  expect(description.typedSearchAttributes.get(recoveryOutcomeKey)).toBe('failed');
  expect(description.typedSearchAttributes.get(anchorBatchIdKey)).toBeUndefined();
  const failure = await handle.result().catch((err: unknown) => err);
  expect(failure).toBeInstanceOf(WorkflowFailedError);
  expect(memoWrites(await handle.fetchHistory())).toEqual([{ phase: 'done', rounds: 0 }]);
  // The end a notification is sent for is bounded too.
  const stopped = { ...report, failure: { type: 'InvalidRecoveryInput', message: 'refused' } };
  expect(recoveryEnd(stopped)?.batchId).toHaveLength(200);
});

describe("a carried state typed by hand in the Web UI's start form (recoverBatch's second argument)", () => {
  // Before, a report the run could not read threw a TypeError in every workflow task: the recovery stayed running, its
  // task failing, with no report. A carried deadline that is not a date once stood in this file for a bug of ours (the
  // SDK threw on the time limits computed from it); it is now refused here with the rest.
  const refusedAtOnce = async (batchId: string, carried: unknown) => {
    const workflowId = `carried-${Date.now()}-${Math.random().toString(36).slice(2)}`;
    const failure = await env.client.workflow
      .execute('recoverBatch', { taskQueue: env.taskQueue, workflowId, args: [{ batchId, ...FAST_POLICY }, carried] })
      .catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(WorkflowFailedError);
    const cause = (failure as WorkflowFailedError).cause as { type?: string; message: string; nonRetryable?: boolean };
    expect(cause.type).toBe('InvalidRecoveryInput');
    expect(cause.nonRetryable).toBe(true);
    expect(cause.message).toMatch(/^Invalid carried state \(the second argument\): /);
    const description = await env.client.workflow.getHandle(workflowId).describe();
    expect(description.status.name).toBe('FAILED');
    expect(description.typedSearchAttributes.get(recoveryOutcomeKey)).toBe('failed');
    expect(description.typedSearchAttributes.get(anchorBatchIdKey)).toBe(batchId);
    // Nothing of the batch was read or retried.
    expect(env.simulator.ledger.forBatch(batchId).calls).toHaveLength(0);
    return cause.message;
  };

  test('a report with no fields fails the recovery at once, naming each field it lacks', async () => {
    const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': 'always-fail' } });
    const message = await refusedAtOnce(batch.id, { report: {} });

    for (const field of [
      'batchId',
      'workflowId',
      'phase',
      'paused',
      'startedAt',
      'deadlineAt',
      'maxRounds',
      'continuedAsNew',
      'rounds',
      'totals',
      'stillFailing',
    ])
      expect(message).toContain(`carried.report.${field}: expected `);
  });

  test('a state far larger than any a run hands on fails the recovery at once, whatever field holds it', async () => {
    // Before, a field the run does not read, or a text, was taken at any length, and the report that held it went
    // into every memo write and update result of the recovery.
    const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': 'always-fail' } });
    const report = newReport(batch.id, recoveryWorkflowId(batch.id), new Date(), new Date(Date.now() + 3_600_000), 3);
    const message = await refusedAtOnce(batch.id, { report: { ...report, notes: 'x'.repeat(500_000) } });

    expect(message).toBe(
      'Invalid carried state (the second argument): carried: expected at most 480000 characters of JSON, as one ' +
        'run of a recovery hands the next',
    );
  });

  test("a carried roundStartedAt longer than a date is cut to 40 characters in its round's report", async () => {
    // Before, the round took it at any length, and the report that held it went into every memo write and update result.
    const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
    const workflowId = recoveryWorkflowId(batch.id);
    const report = newReport(batch.id, workflowId, new Date(), new Date(Date.now() + 3_600_000), 3);
    const roundStartedAt = `${new Date().toISOString()}${'x'.repeat(10_000)}`;
    const ended = await env.client.workflow.execute(recoverBatch, {
      taskQueue: env.taskQueue,
      workflowId,
      args: [
        { batchId: batch.id, ...FAST_POLICY },
        { report, callsNotSent: 1, roundStartedAt },
      ],
    });

    expect(ended.outcome).toBe('recovered');
    expect(ended.rounds[0]?.startedAt).toBe(roundStartedAt.slice(0, 40));
  });

  test("another batch's report fails the recovery at once, naming the batchId", async () => {
    const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': 'always-fail' } });
    const other = env.simulator.createScriptedBatch({ count: 3, script: { '1': 'always-fail' } });
    const report = newReport(other.id, recoveryWorkflowId(other.id), new Date(), new Date(Date.now() + 3_600_000), 3);
    const message = await refusedAtOnce(batch.id, { report });

    expect(message).toBe(
      "Invalid carried state (the second argument): carried.report.batchId: expected the input's batchId: a report " +
        'of the batch this recovery recovers',
    );
    expect(env.simulator.ledger.forBatch(other.id).calls).toHaveLength(0);
  });

  test('a garbled report fails the recovery at once, naming each bad field and no good one', async () => {
    const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': 'always-fail' } });
    const good = newReport(batch.id, recoveryWorkflowId(batch.id), new Date(), new Date(Date.now() + 3_600_000), 3);
    const report = {
      ...good,
      phase: 'sleeping',
      deadlineAt: 'not a date',
      rounds: 'x',
      totals: { retriedSessions: 1, recovered: '1', stillFailed: 0 },
      stillFailing: {
        sessions: Array.from({ length: 26 }, (_, i) => ({ itemIndex: i, error: null, retryCount: 0 })),
        total: 26,
      },
      batch: { status: 'failed', total: 3, completed: 2, failed: 1, observedAt: 7, failing: [] },
      lastError: 'rate limited',
    };
    const message = await refusedAtOnce(batch.id, { report, roundStartedAt: 12 });

    const named = [...message.matchAll(/(carried[\w.]*): expected/g)].map(([, field]) => field);
    expect(named).toEqual([
      'carried.roundStartedAt',
      'carried.report.phase',
      'carried.report.deadlineAt',
      'carried.report.rounds',
      'carried.report.totals',
      'carried.report.stillFailing',
      'carried.report.batch',
      'carried.report.lastError',
    ]);
    expect(message).toContain(
      'carried.report.stillFailing: expected an object with total (an integer) and sessions: ' +
        'a list of at most 25 sessions',
    );
  });

  test('garbled fields beside a good report fail the recovery at once, naming each', async () => {
    const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': 'always-fail' } });
    const report = newReport(batch.id, recoveryWorkflowId(batch.id), new Date(), new Date(Date.now() + 3_600_000), 3);
    // Before, the run went on with them: `callsNotSent: 'abc'` became 'abc1' in the round's report, and its wait to
    // send again NaN.
    const message = await refusedAtOnce(batch.id, {
      report,
      callsNotSent: 'abc',
      pollerWaitStartedAt: 5,
      retryNowRequested: 'yes',
      resetToReconcile: 1,
    });

    expect(message).toBe(
      'Invalid carried state (the second argument): carried.callsNotSent: expected an integer of 0 or more, or null; ' +
        'carried.pollerWaitStartedAt: expected a text or null; ' +
        'carried.retryNowRequested: expected true, false or null; ' +
        'carried.resetToReconcile: expected true, false or null',
    );
  });

  test('what a continued run hands the next still starts a recovery', async () => {
    const batch = env.simulator.createScriptedBatch({ count: 2, script: { '1': 'always-fail' } });
    const workflowId = recoveryWorkflowId(batch.id);
    const roundBackoff = { initialInterval: '10ms', backoffCoefficient: 1, maximumInterval: '10ms' };
    const chain = await env.client.workflow.start(recoverBatch, {
      taskQueue: env.taskQueue,
      workflowId,
      args: [{ batchId: batch.id, ...FAST_POLICY, roundBackoff, maxRounds: 6, continueAsNewAfterEvents: 50 }],
    });
    expect((await env.recoveries.result(batch.id)).continuedAsNew).toBeGreaterThan(0);
    const firstRun = await env.client.workflow.getHandle(workflowId, chain.firstExecutionRunId).fetchHistory();
    const continued = firstRun.events?.find(
      (event) => event.workflowExecutionContinuedAsNewEventAttributes,
    )?.workflowExecutionContinuedAsNewEventAttributes;
    const [input, carried] = (continued?.input?.payloads ?? []).map(
      (payload) => JSON.parse(Buffer.from(payload.data ?? []).toString()) as unknown,
    ) as [RecoverBatchInput, CarriedRecovery];
    expect(carried.report.rounds.length).toBeGreaterThan(0);

    // The same state, as an operator copies it into a new start of the batch's recovery, once the chain has ended:
    // the recovery goes on with the rounds it carried.
    const copy = await env.client.workflow.execute(recoverBatch, {
      taskQueue: env.taskQueue,
      workflowId,
      args: [{ ...input, maxRounds: carried.report.rounds.length + 1 }, carried],
    });
    expect(copy.outcome).toBe('exhausted');
    const roundsOf = (rounds: CarriedRecovery['report']['rounds']) => rounds.map((r) => [r.round, r.startedAt]);
    expect(roundsOf(copy.rounds.slice(0, carried.report.rounds.length))).toEqual(roundsOf(carried.report.rounds));
    expect(roundsDone(copy)).toBe(carried.report.rounds.length + 1);
  });
});
