import type { WorkflowHandle } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import { PolicyChangeRejectedError, RecoveryEndedError } from '../../client/recoveries.js';
import type { WorkerConfig } from '../../worker/config.js';
import type { RecoverBatchInput } from '../../workflows/input.js';
import { RECOVERY_MEMO_KEY, type RecoveryMemo } from '../../workflows/recovery-details.js';
import { recoveryRoundsKey } from '../../workflows/search-attributes.js';
import {
  cancelBatchAtAnchor,
  eventually,
  FAST_POLICY,
  memoWrites,
  startRecoveryEnv,
  type RecoveryEnv,
} from '../helpers/recovery-env.js';

let env: RecoveryEnv;

/**
 * The workers' API timeout here: answers held 1.5 s (and one 6 s) keep a call out while the test steers. The tests'
 * usual 2 s left 0.5 s, and a stall of the loaded machine turned a held answer into a timeout, a call of unknown
 * outcome the test did not expect.
 */
const HELD_ANSWER_TIMEOUT = { timeoutMs: 9_000 };

beforeAll(async () => {
  env = await startRecoveryEnv();
  await env.startWorker(undefined, {}, HELD_ANSWER_TIMEOUT);
});
afterAll(() => env.close());

const SLOW_ROUNDS = { ...FAST_POLICY, roundBackoff: { initialInterval: '1h', maximumInterval: '1h' } };
const oneFailingSession = () => env.simulator.createScriptedBatch({ count: 4, script: { '2': ['fail', 'ok'] } });
const phaseIs =
  (batchId: string, phase: string, recoveries = env.recoveries) =>
  async () =>
    (await recoveries.report(batchId)).phase === phase ? true : undefined;
/** Whether a workflow task has completed since the recovery's first signal of that name: the signal was handled. */
const signalHandled = (handle: WorkflowHandle, signalName: string) => async () => {
  const events = (await handle.fetchHistory()).events ?? [];
  const signals = events.map((event) => event.workflowExecutionSignaledEventAttributes?.signalName);
  const signalledAt = signals.lastIndexOf(signalName);
  return signalledAt >= 0 && events.slice(signalledAt).some((event) => event.workflowTaskCompletedEventAttributes)
    ? true
    : undefined;
};

test('retryNow skips the wait before the next retry call', async () => {
  const batch = oneFailingSession();
  await env.recoveries.start({ batchId: batch.id, ...SLOW_ROUNDS });
  await eventually('the recovery to back off', phaseIs(batch.id, 'backing_off'));
  expect(env.simulator.ledger.forBatch(batch.id).retries).toHaveLength(0);

  await env.recoveries.retryNow(batch.id);
  const report = await env.recoveries.result(batch.id);
  expect(report.outcome).toBe('recovered');
  expect(report.rounds).toHaveLength(1);
});

test('a signal that changes nothing a wait reads leaves it waiting on the same timer', async () => {
  const batch = oneFailingSession();
  await env.recoveries.start({ batchId: batch.id, ...SLOW_ROUNDS });
  await eventually('the recovery to back off', phaseIs(batch.id, 'backing_off'));
  const handle = env.recoveries.handle(batch.id);

  // Not paused: the resume wakes the backoff, whose predicate (retryNow, pause, policy change) still does not hold.
  await env.recoveries.resume(batch.id);
  await eventually('the resume to be handled', signalHandled(handle, 'resumeRecovery'));
  expect((await env.recoveries.report(batch.id)).phase).toBe('backing_off');
  expect(env.simulator.ledger.forBatch(batch.id).retries).toHaveLength(0);

  await env.recoveries.retryNow(batch.id);
  expect((await env.recoveries.result(batch.id)).outcome).toBe('recovered');
  const events = (await handle.fetchHistory()).events ?? [];
  // One backoff timer, started once and cancelled by the retryNow: the resume neither ended nor re-armed it.
  expect(events.filter((event) => event.timerStartedEventAttributes)).toHaveLength(1);
  expect(events.filter((event) => event.timerCanceledEventAttributes)).toHaveLength(1);
  expect(env.simulator.ledger.forBatch(batch.id).retries).toHaveLength(1);
});

/**
 * A recovery backing off an hour on a task queue of its own, whose worker a test stops while signals arrive, so that
 * one workflow task brings them all.
 */
async function backingOffOnOwnQueue(pausedEnv: RecoveryEnv) {
  const workers = await pausedEnv.startWorker();
  const batch = pausedEnv.simulator.createScriptedBatch({ count: 4, script: { '2': ['fail', 'ok'] } });
  await pausedEnv.recoveries.start({ batchId: batch.id, ...SLOW_ROUNDS });
  await eventually('the recovery to back off', phaseIs(batch.id, 'backing_off', pausedEnv.recoveries));
  return { workers, batch };
}

test('a pause and a resume taken in one workflow task leave the backoff to run its course', async () => {
  const pausedEnv = await startRecoveryEnv();
  try {
    const { workers, batch } = await backingOffOnOwnQueue(pausedEnv);
    workers.shutdown();
    await eventually('the workers to stop', () => (workers.stopped ? true : undefined));

    await pausedEnv.recoveries.pause(batch.id);
    await pausedEnv.recoveries.resume(batch.id);
    await pausedEnv.startWorker();
    const handle = pausedEnv.recoveries.handle(batch.id);
    await eventually('the task with both signals to complete', signalHandled(handle, 'resumeRecovery'));
    // The pause woke the backoff, but nothing held by the end of the task: still backing off, no call.
    expect(await pausedEnv.recoveries.report(batch.id)).toMatchObject({ phase: 'backing_off', paused: false });
    expect(pausedEnv.simulator.ledger.forBatch(batch.id).retries).toHaveLength(0);

    await pausedEnv.recoveries.retryNow(batch.id);
    expect((await pausedEnv.recoveries.result(batch.id)).outcome).toBe('recovered');
    expect(pausedEnv.simulator.ledger.forBatch(batch.id).retries).toHaveLength(1);
  } finally {
    await pausedEnv.close();
  }
});

test('a resume and a pause taken in one workflow task during a hold hold on, in the same run', async () => {
  const pausedEnv = await startRecoveryEnv();
  try {
    const { workers, batch } = await backingOffOnOwnQueue(pausedEnv);
    await pausedEnv.recoveries.pause(batch.id);
    await eventually('the recovery to hold', phaseIs(batch.id, 'paused', pausedEnv.recoveries));
    workers.shutdown();
    await eventually('the workers to stop', () => (workers.stopped ? true : undefined));

    const handle = pausedEnv.recoveries.handle(batch.id);
    const { runId } = await handle.describe();
    await pausedEnv.recoveries.resume(batch.id);
    await pausedEnv.recoveries.pause(batch.id);
    await pausedEnv.startWorker();
    const run = pausedEnv.client.workflow.getHandle(handle.workflowId, runId);
    await eventually('the task with both signals to complete', signalHandled(run, 'pauseRecovery'));
    // Before, the resume ended the hold's wait and the pause made it continue as new, its history far from due: a
    // command the releases before never sent, so their histories of this failed to replay.
    const events = (await run.fetchHistory()).events ?? [];
    expect(events.filter((event) => event.workflowExecutionContinuedAsNewEventAttributes)).toHaveLength(0);
    expect(await pausedEnv.recoveries.report(batch.id)).toMatchObject({ phase: 'paused', continuedAsNew: 0 });
    expect(pausedEnv.simulator.ledger.forBatch(batch.id).retries).toHaveLength(0);

    await pausedEnv.recoveries.resume(batch.id);
    await pausedEnv.recoveries.retryNow(batch.id);
    expect((await pausedEnv.recoveries.result(batch.id)).outcome).toBe('recovered');
    expect(pausedEnv.simulator.ledger.forBatch(batch.id).retries).toHaveLength(1);
  } finally {
    await pausedEnv.close();
  }
});

test('a paused recovery makes no retry call until resumed', async () => {
  const batch = oneFailingSession();
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY });
  await env.recoveries.pause(batch.id);
  await eventually('the recovery to hold at its first retry', phaseIs(batch.id, 'paused'));
  expect(env.simulator.ledger.forBatch(batch.id).retries).toHaveLength(0);
  expect((await env.recoveries.report(batch.id)).paused).toBe(true);

  await env.recoveries.resume(batch.id);
  const report = await env.recoveries.result(batch.id);
  expect(report.outcome).toBe('recovered');
  expect(report.paused).toBe(false);
  expect(env.simulator.ledger.forBatch(batch.id).retries).toHaveLength(1);
});

/** A rate limit on the batch's next retry call: not sent, and sent again after the Retry-After. */
const rateLimitNextCall = (batchId: string) =>
  env.simulator.faults.add('retry', { type: 'rate_limit', retryAfterSeconds: 5, times: 1, batchId });
/** The round's call was not sent, and the recovery waits its Retry-After to send it again. */
const waitingToSendAgain = (batchId: string) => async () => {
  const report = await env.recoveries.report(batchId);
  return report.lastError?.type === 'rate_limited' && report.nextRetryAt !== null && report.phase === 'retrying'
    ? true
    : undefined;
};
const appliedRetries = (batchId: string) => env.simulator.ledger.forBatch(batchId).retries;

/** An always-failing batch's recovery, once its first round is done and it backs off an hour before the second. */
async function backingOffAfterFirstRound() {
  const batch = env.simulator.createScriptedBatch({ count: 4, script: { '2': 'always-fail' } });
  await env.recoveries.start({ batchId: batch.id, ...SLOW_ROUNDS });
  await eventually('the first backoff', phaseIs(batch.id, 'backing_off'));
  await env.recoveries.retryNow(batch.id);
  await eventually('the first round and the second backoff', async () => {
    const report = await env.recoveries.report(batch.id);
    return report.rounds.length === 1 && report.phase === 'backing_off' ? true : undefined;
  });
  return batch;
}

/** The same, once its second round's call was not sent (a 429) and waits to go again. */
async function secondCallWaitingToGoAgain() {
  const batch = await backingOffAfterFirstRound();
  rateLimitNextCall(batch.id);
  await env.recoveries.retryNow(batch.id);
  await eventually('the call not sent, waiting to go again', waitingToSendAgain(batch.id));
  return batch;
}

/**
 * A recovery whose first retry call is out, to be answered with a 5xx after a while: not applied, but the round cannot
 * know until it has read the batch.
 */
async function lostAnswerCallOut(policy: Partial<RecoverBatchInput> = {}) {
  const batch = oneFailingSession();
  env.simulator.faults.add('retry', { type: 'error', statusCode: 503, latencyMs: 1_500, times: 1, batchId: batch.id });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY, ...policy });
  await eventually('the retry call to reach the API', () =>
    env.simulator.ledger.forBatch(batch.id).calls.find((call) => call.path.endsWith('/retry')),
  );
  return batch;
}

test('a pause while a call that was not sent waits to go again holds the call until resumed', async () => {
  const batch = oneFailingSession();
  rateLimitNextCall(batch.id);
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY });
  await eventually('the call not sent, waiting to go again', waitingToSendAgain(batch.id));
  await env.recoveries.pause(batch.id);
  // Either end of the Retry-After: held, or sent (as it was before) without waiting out this wait's timeout.
  const phase = await eventually('the call held or sent', async () => {
    const { phase } = await env.recoveries.report(batch.id);
    return phase === 'paused' || appliedRetries(batch.id).length > 0 ? phase : undefined;
  });
  expect(phase).toBe('paused');
  expect(appliedRetries(batch.id)).toHaveLength(0);

  await env.recoveries.resume(batch.id);
  const report = await env.recoveries.result(batch.id);
  expect(report.outcome).toBe('recovered');
  expect(report.rounds).toMatchObject([{ round: 1, retriedSessions: 1, callsSent: 1, callsNotSent: 1 }]);
  expect(appliedRetries(batch.id)).toHaveLength(1);
});

/** A rate limit whose Retry-After outlasts the test: the round's wait to send the call again is on until its end. */
const rateLimitNextCallForAnHour = (batchId: string) =>
  env.simulator.faults.add('retry', { type: 'rate_limit', retryAfterSeconds: 3_600, times: 1, batchId });
/** The recovery's memo writes since the one that began the round's wait to send again, by phase. */
const memoPhasesSinceResendWait = async (handle: WorkflowHandle) => {
  const phases = memoWrites(await handle.fetchHistory()).map((memo) => memo.phase);
  return phases.slice(phases.lastIndexOf('retrying'));
};

test("a pause while a round's first call waits out a 429's Retry-After shows paused at once, a resume the wait again", async () => {
  const batch = oneFailingSession();
  rateLimitNextCallForAnHour(batch.id);
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY });
  await eventually('the call not sent, waiting to go again', waitingToSendAgain(batch.id));
  const { nextRetryAt } = await env.recoveries.report(batch.id);
  const handle = env.recoveries.handle(batch.id);

  await env.recoveries.pause(batch.id);
  await eventually('the pause to be handled', signalHandled(handle, 'pauseRecovery'));
  // Before, `retrying` with the call's time until its Retry-After ended (an hour), though the pause held the call.
  expect(await env.recoveries.report(batch.id)).toMatchObject({ phase: 'paused', paused: true, nextRetryAt: null });
  expect(await memoPhasesSinceResendWait(handle)).toEqual(['retrying', 'paused']);

  await env.recoveries.resume(batch.id);
  await eventually('the resume to be handled', signalHandled(handle, 'resumeRecovery'));
  // The Retry-After still holds: the call goes when it said, not at the resume.
  expect(await env.recoveries.report(batch.id)).toMatchObject({ phase: 'retrying', paused: false, nextRetryAt });
  expect(await memoPhasesSinceResendWait(handle)).toEqual(['retrying']);
  expect(env.retryPosts(batch.id)).toHaveLength(1);

  await env.recoveries.cancel(batch.id);
  const report = await env.recoveries.result(batch.id);
  expect(report).toMatchObject({ outcome: 'operator_cancelled', rounds: [] });
  expect(env.retryPosts(batch.id)).toHaveLength(1);
});

test("a pause while a round's later call waits out a 429's Retry-After shows paused at once", async () => {
  const batch = await lostAnswerCallOut();
  // The first call is out: the rule is for the next.
  rateLimitNextCallForAnHour(batch.id);
  await eventually('the second call not sent, waiting to go again', waitingToSendAgain(batch.id));
  const handle = env.recoveries.handle(batch.id);

  await env.recoveries.pause(batch.id);
  await eventually('the pause to be handled', signalHandled(handle, 'pauseRecovery'));
  expect(await env.recoveries.report(batch.id)).toMatchObject({ phase: 'paused', nextRetryAt: null, rounds: [] });
  expect(await memoPhasesSinceResendWait(handle)).toEqual(['retrying', 'paused']);

  await env.recoveries.cancel(batch.id);
  const report = await env.recoveries.result(batch.id);
  expect(report.outcome).toBe('operator_cancelled');
  expect(report.rounds).toMatchObject([{ round: 1, callsSent: 1, callsNotSent: 1, reconcileEffect: 'no_effect' }]);
  expect(env.retryPosts(batch.id)).toHaveLength(2);
  expect(appliedRetries(batch.id)).toHaveLength(0);
});

test('a round whose call was not sent while paused holds at once, and at the end of the wait reads nothing', async () => {
  const batch = oneFailingSession();
  // Answered after a while, so the pause comes while the call is out.
  env.simulator.faults.add('retry', {
    type: 'rate_limit',
    retryAfterSeconds: 1,
    latencyMs: 1_500,
    times: 1,
    batchId: batch.id,
  });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY });
  await eventually('the retry call to reach the API', () => (env.retryPosts(batch.id).length > 0 ? true : undefined));
  await env.recoveries.pause(batch.id);
  const waiting = await eventually('the call not sent', async () => {
    const report = await env.recoveries.report(batch.id);
    return report.lastError?.type === 'rate_limited' ? report : undefined;
  });
  // Before, `retrying` with the call's time for the whole wait, and during the read after it.
  expect(waiting).toMatchObject({ phase: 'paused', nextRetryAt: null });

  const handle = env.recoveries.handle(batch.id);
  const events = await eventually('the wait to end and its workflow task to complete', async () => {
    const events = (await handle.fetchHistory()).events ?? [];
    const resendTimer = events.find((event) =>
      Buffer.from(event.userMetadata?.summary?.data ?? []).includes('wait before resending round 1'),
    )?.timerStartedEventAttributes?.timerId;
    const firedAt = events.findIndex((event) => event.timerFiredEventAttributes?.timerId === resendTimer);
    return resendTimer &&
      firedAt >= 0 &&
      events.slice(firedAt).some((event) => event.workflowTaskCompletedEventAttributes)
      ? events.slice(firedAt)
      : undefined;
  });
  // Held with no read of the batch: the resume reads it afresh.
  expect(events.filter((event) => event.activityTaskScheduledEventAttributes)).toHaveLength(0);
  expect(await env.recoveries.report(batch.id)).toMatchObject({ phase: 'paused', nextRetryAt: null });

  await env.recoveries.resume(batch.id);
  const report = await env.recoveries.result(batch.id);
  expect(report.outcome).toBe('recovered');
  expect(report.rounds).toMatchObject([{ round: 1, retriedSessions: 1, callsSent: 1, callsNotSent: 1 }]);
  expect(env.retryPosts(batch.id)).toHaveLength(2);
  expect(appliedRetries(batch.id)).toHaveLength(1);
});

test('a pause while a call whose answer was lost is out ends the round there, once the batch shows it had no effect', async () => {
  const batch = await lostAnswerCallOut();
  await env.recoveries.pause(batch.id);
  const phase = await eventually('the recovery held, or a call applied', async () => {
    const { phase } = await env.recoveries.report(batch.id);
    return phase === 'paused' || appliedRetries(batch.id).length > 0 ? phase : undefined;
  });
  expect(phase).toBe('paused');
  expect(appliedRetries(batch.id)).toHaveLength(0);
  expect((await env.recoveries.report(batch.id)).rounds).toMatchObject([
    { round: 1, callsSent: 1, reconcileEffect: 'no_effect', reconcileReason: expect.stringMatching(/paused/) },
  ]);

  await env.recoveries.resume(batch.id);
  const report = await env.recoveries.result(batch.id);
  expect(report.outcome).toBe('recovered');
  expect(report.rounds).toHaveLength(2);
  expect(appliedRetries(batch.id)).toHaveLength(1);
});

test("a pause that ends the last round's sending holds the recovery: more rounds and a resume carry it on", async () => {
  const batch = await lostAnswerCallOut({ maxRounds: 1 });
  await env.recoveries.pause(batch.id);
  // Before, the round that the pause ended was the last: the recovery ended `exhausted`, paused.
  const held = await eventually('the recovery held, or ended', async () => {
    const report = await env.recoveries.report(batch.id);
    return report.phase === 'paused' || report.phase === 'done' ? report : undefined;
  });
  expect(held).toMatchObject({ phase: 'paused', outcome: null, rounds: [{ reconcileEffect: 'no_effect' }] });

  await env.recoveries.updatePolicy(batch.id, { maxRounds: 2 });
  await env.recoveries.resume(batch.id);
  const report = await env.recoveries.result(batch.id);
  expect(report.outcome).toBe('recovered');
  expect(report.rounds).toHaveLength(2);
  expect(appliedRetries(batch.id)).toHaveLength(1);
});

test('rounds lowered during a pause that holds a round stop it: the resume sends no call', async () => {
  const batch = await secondCallWaitingToGoAgain();
  await env.recoveries.pause(batch.id);
  await eventually('the round held', phaseIs(batch.id, 'paused'));

  await env.recoveries.updatePolicy(batch.id, { maxRounds: 1 });
  await env.recoveries.resume(batch.id);
  const report = await env.recoveries.result(batch.id);
  expect(report.outcome).toBe('exhausted');
  expect(report.rounds).toHaveLength(1);
  expect(appliedRetries(batch.id)).toHaveLength(1);
});

test("a retryNow while a round's call waits to go again is taken by that round, not the next round's backoff", async () => {
  const batch = env.simulator.createScriptedBatch({ count: 4, script: { '2': ['fail', 'fail', 'ok'] } });
  await env.recoveries.start({ batchId: batch.id, ...SLOW_ROUNDS });
  await eventually('the first backoff', phaseIs(batch.id, 'backing_off'));
  rateLimitNextCall(batch.id);
  await env.recoveries.retryNow(batch.id);
  await eventually('the call not sent, waiting to go again', waitingToSendAgain(batch.id));
  await env.recoveries.retryNow(batch.id);

  const report = await eventually('the first round, then the second backoff or round', async () => {
    const report = await env.recoveries.report(batch.id);
    return report.rounds.length > 1 || (report.rounds.length === 1 && report.phase === 'backing_off')
      ? report
      : undefined;
  });
  expect(report.rounds).toHaveLength(1);
  expect(report.phase).toBe('backing_off');
  expect(appliedRetries(batch.id)).toHaveLength(1);
  await env.recoveries.cancel(batch.id);
  expect((await env.recoveries.result(batch.id)).outcome).toBe('operator_cancelled');
});

test("lowering maxRounds to the rounds done while a round's call waits to go again sends it no more", async () => {
  const batch = await secondCallWaitingToGoAgain();

  await env.recoveries.updatePolicy(batch.id, { maxRounds: 1 });
  const report = await env.recoveries.result(batch.id);
  expect(report.outcome).toBe('exhausted');
  expect(report.rounds).toHaveLength(1);
  expect(appliedRetries(batch.id)).toHaveLength(1);
});

test("lowering maxRounds while a round's later call waits to go again, after one without effect, sends it no more", async () => {
  const batch = await backingOffAfterFirstRound();
  // The second round's call answered 503 (the batch shows no effect), its next 429: it waits to go again.
  env.simulator.faults.add('retry', { type: 'error', statusCode: 503, times: 1, batchId: batch.id });
  rateLimitNextCall(batch.id);
  await env.recoveries.retryNow(batch.id);
  await eventually('the later call not sent, waiting to go again', waitingToSendAgain(batch.id));

  await env.recoveries.updatePolicy(batch.id, { maxRounds: 1 });
  const report = await env.recoveries.result(batch.id);

  // Before: the call went out after its Retry-After, a second round's retry beyond the rounds asked for.
  expect(report.outcome).toBe('exhausted');
  expect(appliedRetries(batch.id)).toHaveLength(1);
  expect(report.rounds).toHaveLength(2);
  expect(report.rounds[1]).toMatchObject({ round: 2, callsSent: 1, callsNotSent: 1, reconcileEffect: 'no_effect' });
  expect(report.rounds[1]?.reconcileReason).toMatch(/its rounds were lowered to the rounds done$/);
});

test('a policy change applies to the rounds still to come; an invalid one is rejected naming the field', async () => {
  const batch = oneFailingSession();
  await env.recoveries.start({ batchId: batch.id, ...SLOW_ROUNDS });
  await eventually('the recovery to back off', phaseIs(batch.id, 'backing_off'));

  const rejected = await env.recoveries.updatePolicy(batch.id, { maxRetries: 9 }).catch((err: unknown) => err);
  expect(rejected).toBeInstanceOf(PolicyChangeRejectedError);
  expect((rejected as Error).message).toMatch(/rejected: .*maxRetries: Too big/);
  await expect(env.recoveries.updatePolicy(batch.id, { roundBackof: {} } as never)).rejects.toThrow(
    /roundBackof: unknown field/,
  );
  // Before: 30 ms.
  await expect(env.recoveries.updatePolicy(batch.id, { roundBackoff: { initialInterval: '30' } })).rejects.toThrow(
    /rejected: Invalid policy change: roundBackoff\.initialInterval: "30" has no unit: write "30s"/,
  );
  await expect(
    env.recoveries.updatePolicy(batch.id, { poll: { initialInterval: '1000000000y', maximumInterval: '1000000000y' } }),
  ).rejects.toThrow(/poll\.initialInterval: must be at most 1h; poll\.maximumInterval: must be at most 1h/);
  // A change of nothing, as the Web UI can send one: before, accepted as a success that changed nothing.
  for (const nothing of [null, {}]) {
    await expect(env.recoveries.updatePolicy(batch.id, nothing as never)).rejects.toThrow(
      /rejected: Invalid policy change: give at least one of maxRounds, maxRetries/,
    );
  }

  const updated = await env.recoveries.updatePolicy(batch.id, {
    maxRounds: 5,
    maxRetries: 3,
    roundBackoff: { initialInterval: '100ms' },
  });
  expect(updated.maxRounds).toBe(5);
  const report = await env.recoveries.result(batch.id);
  expect(report.outcome).toBe('recovered');
  expect(env.simulator.ledger.forBatch(batch.id).retries.map((retry) => retry.body.max_retries)).toEqual([3]);
});

test('lowering maxRounds to the rounds already done during the backoff ends the recovery without another call', async () => {
  const batch = await backingOffAfterFirstRound();

  await env.recoveries.updatePolicy(batch.id, { maxRounds: 1 });
  const report = await env.recoveries.result(batch.id);
  expect(report.outcome).toBe('exhausted');
  expect(env.simulator.ledger.forBatch(batch.id).retries).toHaveLength(1);
});

/** Status reads of the batch the simulator has taken so far, answered or not. */
const statusReads = (batchId: string) =>
  env.simulator.ledger.forBatch(batchId).calls.filter((call) => call.method === 'GET').length;
/** Retry calls the simulator has taken for the batch, applied or refused. */
const retryCalls = (batchId: string) =>
  env.simulator.ledger.forBatch(batchId).calls.filter((call) => call.path.endsWith('/retry')).length;

test("lowering maxRounds to the rounds done while a round's status read is out sends no call", async () => {
  const batch = await backingOffAfterFirstRound();
  const readsBefore = statusReads(batch.id);
  env.simulator.faults.add('status', { type: 'latency', latencyMs: 3_000, times: 1, batchId: batch.id });
  await env.recoveries.retryNow(batch.id);
  await eventually("round 2's status read to be out", () => statusReads(batch.id) > readsBefore || undefined);

  await env.recoveries.updatePolicy(batch.id, { maxRounds: 1 });
  const report = await env.recoveries.result(batch.id);
  // Before, the read's answer let the round go on to its call: a second call, past the rounds the operator had left.
  expect(report.outcome).toBe('exhausted');
  expect(report.rounds).toHaveLength(1);
  expect(retryCalls(batch.id)).toBe(1);
});

test('a round whose status read answers in a task run past the deadline sends no call: it ends at the deadline', async () => {
  // Its own task queue: its workers stop while the read is out, so the task with its answer runs past the deadline.
  const lateEnv = await startRecoveryEnv();
  try {
    const workers = await lateEnv.startWorker();
    const batch = lateEnv.simulator.createScriptedBatch({ count: 4, script: { '2': ['fail', 'ok'] } });
    await lateEnv.recoveries.start({ batchId: batch.id, ...SLOW_ROUNDS, deadline: '8s' });
    await eventually('the recovery to back off', phaseIs(batch.id, 'backing_off', lateEnv.recoveries));
    const deadlineAt = Date.parse((await lateEnv.recoveries.report(batch.id)).deadlineAt ?? '');
    expect(deadlineAt).toBeGreaterThan(Date.now());
    const reads = () => lateEnv.simulator.ledger.forBatch(batch.id).calls.filter((call) => call.method === 'GET');
    const readsBefore = reads().length;
    lateEnv.simulator.faults.add('status', { type: 'latency', latencyMs: 1_000, times: 1, batchId: batch.id });
    await lateEnv.recoveries.retryNow(batch.id);
    await eventually("the round's status read to be out", () => reads().length > readsBefore || undefined);
    // A graceful stop lets the read's attempt finish: its answer is in the history, its workflow task not yet run.
    workers.shutdown();
    await eventually('the workers to stop', () => (workers.stopped ? true : undefined));
    expect(reads().at(-1)?.statusCode).toBe(200);
    await eventually('the deadline to pass', () => Date.now() > deadlineAt + 500 || undefined, 20_000);

    await lateEnv.startWorker();
    const report = await lateEnv.recoveries.result(batch.id);
    // Before, the answer let the round go on to its call, past the deadline.
    expect(report.outcome).toBe('deadline');
    expect(report.rounds).toHaveLength(0);
    expect(lateEnv.simulator.ledger.forBatch(batch.id).calls.filter((call) => call.path.endsWith('/retry'))).toEqual(
      [],
    );
  } finally {
    await lateEnv.close();
  }
});

test("a round's later call whose wait to go again ends in a task run past the deadline is not sent", async () => {
  // Its own task queue: its workers stop while the call waits its Retry-After, so the timer's task runs past the
  // deadline.
  const lateEnv = await startRecoveryEnv();
  try {
    const workers = await lateEnv.startWorker();
    const batch = lateEnv.simulator.createScriptedBatch({ count: 4, script: { '2': 'always-fail' } });
    // The first call answered 503 (the batch shows no effect), the next 429: it waits 5 s to go again.
    lateEnv.simulator.faults.add('retry', { type: 'error', statusCode: 503, times: 1, batchId: batch.id });
    lateEnv.simulator.faults.add('retry', { type: 'rate_limit', retryAfterSeconds: 5, times: 1, batchId: batch.id });
    await lateEnv.recoveries.start({ batchId: batch.id, ...FAST_POLICY, deadline: '20s' });
    const waiting = async () => {
      // No report before the first workflow task has run.
      const report = await lateEnv.recoveries.report(batch.id).catch(() => undefined);
      return report?.lastError?.type === 'rate_limited' && report.nextRetryAt !== null ? report : undefined;
    };
    const deadlineAt = Date.parse((await eventually('the later call waiting to go again', waiting)).deadlineAt ?? '');
    workers.shutdown();
    await eventually('the workers to stop', () => (workers.stopped ? true : undefined));
    await eventually('the deadline to pass', () => Date.now() > deadlineAt + 500 || undefined, 30_000);

    await lateEnv.startWorker();
    const report = await lateEnv.recoveries.result(batch.id);
    // Before, the call went out once the timer's task ran, past the deadline.
    expect(report.outcome).toBe('deadline');
    expect(
      lateEnv.simulator.ledger.forBatch(batch.id).calls.filter((call) => call.path.endsWith('/retry')),
    ).toHaveLength(2);
    expect(report.rounds).toHaveLength(1);
    expect(report.rounds[0]?.reconcileReason).toMatch(/the deadline has passed$/);
  } finally {
    await lateEnv.close();
  }
}, 90_000);

test('a batch cancelled during the backoff gets no retry call: the recovery ends batch_cancelled', async () => {
  const batch = oneFailingSession();
  await env.recoveries.start({ batchId: batch.id, ...SLOW_ROUNDS });
  await eventually('the recovery to back off', phaseIs(batch.id, 'backing_off'));
  await cancelBatchAtAnchor(env.simulator, batch.id);

  await env.recoveries.retryNow(batch.id);
  const report = await env.recoveries.result(batch.id);
  // Before, a cancelled batch read before the call was settled with failures: the call went out (the simulator
  // refuses it; the contract does not say the API would).
  expect(report.outcome).toBe('batch_cancelled');
  expect(report.rounds).toHaveLength(0);
  expect(retryCalls(batch.id)).toBe(0);
});

/** The recovery's report once its run has continued as new at least once. */
const continuedAsNew = (batchId: string) => async () => {
  const report = await env.recoveries.report(batchId);
  return report.continuedAsNew >= 1 ? report : undefined;
};

test('signals to a paused recovery continue it as new once its history is due: it holds on in the next run', async () => {
  const batch = oneFailingSession();
  await env.recoveries.start({ batchId: batch.id, ...SLOW_ROUNDS, continueAsNewAfterEvents: 50 });
  await eventually('the recovery to back off', phaseIs(batch.id, 'backing_off'));
  await env.recoveries.pause(batch.id);
  await eventually('the recovery to hold', phaseIs(batch.id, 'paused'));

  // Each pause wakes the hold and adds to its history. Before, the hold never continued as new: an automation
  // steering it could grow its history to the server's limits, where the server ends the run with no report.
  const report = await eventually(
    'the hold to continue as new',
    async () => {
      await env.recoveries.pause(batch.id);
      return await continuedAsNew(batch.id)();
    },
    60_000,
  );
  expect(report).toMatchObject({ paused: true });
  await eventually('the next run to hold', phaseIs(batch.id, 'paused'));
  expect(appliedRetries(batch.id)).toHaveLength(0);

  await env.recoveries.resume(batch.id);
  await env.recoveries.retryNow(batch.id);
  const ended = await env.recoveries.result(batch.id);
  expect(ended.outcome).toBe('recovered');
  expect(appliedRetries(batch.id)).toHaveLength(1);
});

test('signals during a wait for the batch without a poller continue it as new once its history is due', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 2, pending_phase: { ms: 600_000 } });
  // One status read a minute: its retries add no event, so only the signals below grow the history.
  const poll = { initialInterval: '1m', backoffCoefficient: 1, maximumInterval: '1m' };
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY, poll, continueAsNewAfterEvents: 50 });
  const handle = env.recoveries.handle(batch.id);
  // Read from its history: a report asked before the first workflow task has run has nothing to say.
  await eventually('the status read to be out', async () =>
    ((await handle.fetchHistory()).events ?? []).some(
      (event) => event.activityTaskScheduledEventAttributes?.activityType?.name === 'awaitBatchSettled',
    )
      ? true
      : undefined,
  );
  const firstRunId = (await handle.describe()).runId;

  // Before, the wait went on in the same run until the batch settled: steering could grow its history to the limits.
  await eventually(
    'the wait to continue as new',
    async () => {
      await env.recoveries.resume(batch.id);
      return (await handle.describe()).runId !== firstRunId ? true : undefined;
    },
    60_000,
  );
  // Until the next run's first workflow task has run, it has no report to give.
  const next = await eventually('the next run to wait for its batch', async () => {
    const report = await env.recoveries.report(batch.id).catch(() => undefined);
    return report?.continuedAsNew === 1 && report.phase === 'waiting_for_batch' ? report : undefined;
  });
  expect(next.rounds).toEqual([]);
  expect(appliedRetries(batch.id)).toEqual([]);

  await env.recoveries.cancel(batch.id);
  expect((await env.recoveries.result(batch.id)).outcome).toBe('operator_cancelled');
});

test('signals during a backoff continue it as new once its history is due: the next run keeps its retry time', async () => {
  const batch = oneFailingSession();
  // No settle time from the API: the next run cannot date the backoff from the settle, only from what it is handed.
  env.simulator.faults.add('status', { type: 'omit_field', field: 'data.actual_completion_time', batchId: batch.id });
  await env.recoveries.start({ batchId: batch.id, ...SLOW_ROUNDS, continueAsNewAfterEvents: 50 });
  await eventually('the recovery to back off', phaseIs(batch.id, 'backing_off'));
  const { nextRetryAt } = await env.recoveries.report(batch.id);
  expect(nextRetryAt).not.toBeNull();

  // A resume of a recovery not paused wakes the backoff and changes nothing else.
  await eventually(
    'the backoff to continue as new',
    async () => {
      await env.recoveries.resume(batch.id);
      return await continuedAsNew(batch.id)();
    },
    60_000,
  );
  // Before, the wait never continued as new; dated from the next run's start, its retry would have moved on.
  const next = await eventually('the next run to back off', async () => {
    const report = await env.recoveries.report(batch.id);
    return report.phase === 'backing_off' ? report : undefined;
  });
  expect(next.nextRetryAt).toBe(nextRetryAt);
  expect(appliedRetries(batch.id)).toHaveLength(0);

  await env.recoveries.retryNow(batch.id);
  expect((await env.recoveries.result(batch.id)).outcome).toBe('recovered');
  expect(appliedRetries(batch.id)).toHaveLength(1);
});

test('a round continued as new while its call waits to go again goes on in the next run, without a second backoff', async () => {
  const batch = oneFailingSession();
  // Calls not sent again and again: the round's history comes due in its wait to send again.
  env.simulator.faults.add('retry', { type: 'rate_limit', retryAfterSeconds: 0, times: 12, batchId: batch.id });
  await env.recoveries.start({ batchId: batch.id, ...SLOW_ROUNDS, continueAsNewAfterEvents: 50 });
  await eventually('the recovery to back off', phaseIs(batch.id, 'backing_off'));
  await env.recoveries.retryNow(batch.id);

  // Before, the next run waited the round's backoff again (the hour the retryNow had skipped), and the call with it.
  const applied = await eventually('the round to go on in the next run', async () => {
    const report = await env.recoveries.report(batch.id);
    return appliedRetries(batch.id).length > 0 ? report : undefined;
  });
  expect(applied.continuedAsNew).toBeGreaterThanOrEqual(1);
  const report = await env.recoveries.result(batch.id);
  expect(report.outcome).toBe('recovered');
  expect(report.rounds).toMatchObject([{ round: 1, callsNotSent: 12, callsSent: 1 }]);
  expect(appliedRetries(batch.id)).toHaveLength(1);
});

test('a cancel during a retry call waits for it, so the call is in the report', async () => {
  const batch = oneFailingSession();
  env.simulator.faults.add('retry', { type: 'latency', latencyMs: 1_500, times: 1, batchId: batch.id });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY });
  await eventually('the retry call to reach the API', () =>
    env.simulator.ledger.forBatch(batch.id).calls.find((call) => call.path.endsWith('/retry')),
  );

  await env.recoveries.cancel(batch.id);
  const report = await env.recoveries.result(batch.id);
  expect(report.outcome).toBe('operator_cancelled');
  expect(report.rounds).toEqual([expect.objectContaining({ round: 1, retriedSessions: 1, apiStatus: 200 })]);
});

/** The report of each memo the events wrote, in order. */
const memoReports = (events: temporal.api.history.v1.IHistoryEvent[]) =>
  events.flatMap((event) => {
    const data = event.workflowPropertiesModifiedEventAttributes?.upsertedMemo?.fields?.[RECOVERY_MEMO_KEY]?.data;
    return data ? [(JSON.parse(Buffer.from(data).toString()) as RecoveryMemo).report] : [];
  });

test('cancelling a recovery ends it with outcome operator_cancelled and its report', async () => {
  const batch = oneFailingSession();
  await env.recoveries.start({ batchId: batch.id, ...SLOW_ROUNDS });
  await eventually('the recovery to back off', phaseIs(batch.id, 'backing_off'));

  await env.recoveries.cancel(batch.id);
  const report = await env.recoveries.result(batch.id);
  expect(report.outcome).toBe('operator_cancelled');
  expect(report.stillFailing.total).toBe(1);
  expect((await env.recoveries.handle(batch.id).describe()).status.name).toBe('COMPLETED');
});

/**
 * A recovery of a batch with one session failing for good, backing off after a settle the poller's list showed
 * (counters, no sessions), on a worker that runs the poller (`anchor`: its API client's settings); `check` gets it,
 * the env is closed after.
 */
async function afterListedSettle(
  check: (pollerEnv: RecoveryEnv, batchId: string, statusReads: () => unknown[]) => Promise<void>,
  input: Partial<RecoverBatchInput> = {},
  anchor: Partial<WorkerConfig['anchor']> = HELD_ANSWER_TIMEOUT,
): Promise<void> {
  const pollerEnv = await startRecoveryEnv();
  try {
    await pollerEnv.startPollerWorker(anchor);
    const batch = pollerEnv.simulator.createScriptedBatch({ count: 4, script: { '2': 'always-fail' } });
    const statusReads = () =>
      pollerEnv.simulator.ledger
        .forBatch(batch.id)
        .calls.filter((call) => call.endpoint === 'GET /v1/batch-sessions/{batch_id}');
    await pollerEnv.recoveries.start({ batchId: batch.id, ...SLOW_ROUNDS, ...input });
    const backingOff = await eventually('the recovery to back off', async () => {
      const report = await pollerEnv.recoveries.report(batch.id);
      return report.phase === 'backing_off' ? report : undefined;
    });
    // The list counted the failing session, and showed none.
    expect(backingOff.stillFailing).toEqual({ total: 1, sessions: [] });
    expect(statusReads()).toHaveLength(0);
    await check(pollerEnv, batch.id, statusReads);
  } finally {
    await pollerEnv.close();
  }
}

test("cancelling a recovery after a settle the poller's list showed reads the sessions still failing for its report", () =>
  afterListedSettle(async (pollerEnv, batchId, statusReads) => {
    await pollerEnv.recoveries.cancel(batchId);
    const report = await pollerEnv.recoveries.result(batchId);
    // Before, `(not read: the last status gave counts only)`, where an exhausted end lists them.
    expect(report).toMatchObject({ outcome: 'operator_cancelled', rounds: [] });
    expect(report.stillFailing).toEqual({ total: 1, sessions: [expect.objectContaining({ itemIndex: 2 })] });
    expect(statusReads()).toHaveLength(1);
  }));

test("a pause sent while a cancel's read is out is refused: the end is stored before the read", () =>
  afterListedSettle(async (pollerEnv, batchId) => {
    pollerEnv.simulator.faults.add('status', { type: 'latency', latencyMs: 1_500, times: 1, batchId });
    await pollerEnv.recoveries.cancel(batchId);
    const handle = pollerEnv.recoveries.handle(batchId);
    await eventually("the cancel's read to be out", async () => {
      const { events } = await handle.fetchHistory();
      const read = (event: (typeof events & object)[number]) =>
        event.activityTaskScheduledEventAttributes?.activityType?.name === 'readBatchBeforeRetry';
      return events?.some(read) ? true : undefined;
    });

    // Before, accepted (the memo said nothing of the end yet) and dropped by the ended workflow.
    await expect(pollerEnv.recoveries.pause(batchId)).rejects.toThrow(RecoveryEndedError);
    const report = await pollerEnv.recoveries.result(batchId);
    expect(report).toMatchObject({ outcome: 'operator_cancelled', paused: false });
    expect(report.stillFailing.sessions).toHaveLength(1);
    const { events } = await handle.fetchHistory();
    expect(
      events?.filter((event) => event.workflowExecutionSignaledEventAttributes?.signalName === 'pauseRecovery'),
    ).toHaveLength(0);
  }));

test("a cancel's end time is in its report from the end on: in the query and the memo while its read is out", () =>
  afterListedSettle(async (pollerEnv, batchId) => {
    // The read's answer waits 6 s (within the client's 9 s and the end read's 10 s): the test reads the memo and
    // queries meanwhile, a few calls that take well under that on a loaded machine (1.5 s did not always do).
    pollerEnv.simulator.faults.add('status', { type: 'latency', latencyMs: 6_000, times: 1, batchId });
    await pollerEnv.recoveries.cancel(batchId);
    const handle = pollerEnv.recoveries.handle(batchId);
    // The memo written as the end was set, before the read was scheduled.
    const stored = await eventually('the end stored', async () => {
      const memo = (await handle.describe()).memo?.[RECOVERY_MEMO_KEY] as RecoveryMemo | undefined;
      return memo?.report.outcome ? memo.report : undefined;
    });
    const queried = await pollerEnv.recoveries.report(batchId);

    // Before, null until the read had answered (6 s here), and for good if the run was terminated meanwhile.
    expect(stored).toMatchObject({ outcome: 'operator_cancelled', finishedAt: expect.any(String) });
    expect(queried).toMatchObject({ outcome: 'operator_cancelled', finishedAt: stored.finishedAt });
    // Queried while the read was out: its delayed answer had not come.
    expect(queried.stillFailing.sessions).toHaveLength(0);
    const report = await pollerEnv.recoveries.result(batchId);
    expect(report.finishedAt).toBe(stored.finishedAt);
    expect(report.stillFailing.sessions).toHaveLength(1);
    const memo = (await handle.describe()).memo?.[RECOVERY_MEMO_KEY] as RecoveryMemo;
    expect(memo.report.finishedAt).toBe(stored.finishedAt);
  }));

test("a deadline after a settle the poller's list showed reads the sessions still failing, once the end is stored", () =>
  afterListedSettle(
    async (pollerEnv, batchId, statusReads) => {
      const handle = pollerEnv.recoveries.handle(batchId);
      const report = await pollerEnv.recoveries.result(batchId);
      const events = (await handle.fetchHistory()).events ?? [];

      // Before, `(not read: the last status gave counts only)` and no read at all.
      expect(report).toMatchObject({ outcome: 'deadline', rounds: [] });
      expect(report.stillFailing).toEqual({ total: 1, sessions: [expect.objectContaining({ itemIndex: 2 })] });
      expect(statusReads()).toHaveLength(1);
      // A status read only, no retry call after the deadline, and its end time is the deadline's, not the read's.
      expect(pollerEnv.simulator.ledger.forBatch(batchId).retries).toHaveLength(0);
      expect(Date.parse(report.finishedAt!)).toBeGreaterThanOrEqual(Date.parse(report.deadlineAt));
      const reads = events.filter(
        (event) => event.activityTaskScheduledEventAttributes?.activityType?.name === 'readBatchBeforeRetry',
      );
      expect(reads).toHaveLength(1);
      // Bounded: 10 s in all, retries and time in the queue included.
      expect(Number(reads[0]!.activityTaskScheduledEventAttributes!.scheduleToCloseTimeout!.seconds)).toBe(10);
      // The end, with its time, was stored before the read was scheduled.
      const readAt = events.indexOf(reads[0]!);
      const storedBefore = memoReports(events.slice(0, readAt)).at(-1);
      expect(storedBefore).toMatchObject({ outcome: 'deadline', finishedAt: report.finishedAt });
      expect(storedBefore?.stillFailing.sessions).toHaveLength(0);
    },
    // Long enough for the poller's cycle and wake, and the test's look at the backoff, on a loaded machine.
    { deadline: '10s' },
  ));

test('a deadline that passes before the next round ends the recovery with what still fails', async () => {
  const batch = oneFailingSession();
  await env.recoveries.start({ batchId: batch.id, ...SLOW_ROUNDS, deadline: '2s' });
  const report = await env.recoveries.result(batch.id);
  expect(report.outcome).toBe('deadline');
  expect(report.stillFailing).toEqual({ total: 1, sessions: [expect.objectContaining({ itemIndex: 2 })] });
  expect(env.simulator.ledger.forBatch(batch.id).retries).toHaveLength(0);
});

test('a long recovery continues as new with a bounded history, its report and deadline continuous', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': 'always-fail' } });
  await env.recoveries.start({
    batchId: batch.id,
    ...FAST_POLICY,
    roundBackoff: { initialInterval: '10ms', maximumInterval: '10ms' },
    maxRounds: 8,
    continueAsNewAfterEvents: 50,
  });
  const firstRun = await env.recoveries.handle(batch.id).describe();
  const report = await env.recoveries.result(batch.id);
  const lastRun = await env.recoveries.handle(batch.id).describe();

  expect(report.outcome).toBe('exhausted');
  expect(report.rounds.map((round) => round.round)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  expect(report.continuedAsNew).toBeGreaterThanOrEqual(1);
  expect(lastRun.runId).not.toBe(firstRun.runId);
  expect(report.deadlineAt).toBe(new Date(firstRun.startTime.getTime() + 24 * 3600_000).toISOString());
  expect(lastRun.typedSearchAttributes.get(recoveryRoundsKey)).toBe(8);

  const firstHistory = await env.client.workflow.getHandle(firstRun.workflowId, firstRun.runId).fetchHistory();
  const lastHistory = await env.recoveries.handle(batch.id).fetchHistory();
  console.info(
    `continue-as-new: ${report.continuedAsNew} times; first run ${firstHistory.events?.length} events, last run ${lastHistory.events?.length} events, 8 rounds in all`,
  );
  // The limit is checked at each settle, so a run may pass it by one round: the wait (5 events with its task), the
  // status read (6), the backoff timer when the settle is younger than the backoff (5), the snapshot read (6), the
  // call (6) and the progress writes (3). The last run also holds the final settle and the end: the wait and the
  // read (11), the notify activity and its task (8), the progress writes (2) and the completion.
  const ROUND_EVENTS = 5 + 6 + 5 + 6 + 6 + 3;
  const END_EVENTS = 11 + 8 + 2 + 1;
  expect(firstHistory.events?.length).toBeLessThanOrEqual(50 + ROUND_EVENTS);
  expect(lastHistory.events?.length).toBeLessThanOrEqual(50 + ROUND_EVENTS + END_EVENTS);
});
