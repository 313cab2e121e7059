import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Worker } from '@temporalio/worker';
import { createPollerRegistrationActivities } from '../../activities/poller-registration-activities.js';
import { createRetryActivities, type RecordedHeartbeat } from '../../activities/retry-activities.js';
import { BatchRecoveries, RecoveryFailedError } from '../../client/recoveries.js';
import { createRecoveryWorkers } from '../../worker/create-worker.js';
import type { SendRetryInput, SendRetryResult } from '../../workflows/retry-protocol.js';
import {
  cancelBatchAtAnchor,
  closedRunHistoryLengths,
  eventually,
  FAST_POLICY,
  reachesPhase,
  startRecoveryEnv,
  withOwnWorker,
  workerConfig,
  workflowBundle,
  type RecoveryEnv,
} from '../helpers/recovery-env.js';
import { connectClient, connectWorker, temporalNamespace, uniqueTaskQueue } from '../helpers/temporal.js';

// One test per way the retry round used to apply a retry twice, skip one, or report what did not happen
// (issue 13). Each asserts what reached "Anchor" (the simulator's ledger, or a server of the test's own).

let env: RecoveryEnv;

beforeAll(async () => {
  env = await startRecoveryEnv();
  await env.startWorker();
});
afterAll(() => env.close());
afterEach(() => env.simulator.faults.clear());

const retryPosts = (batchId: string) => env.retryPosts(batchId);
const appliedRetries = (batchId: string) => env.simulator.ledger.forBatch(batchId).retries;

const LONG_BACKOFF = { roundBackoff: { initialInterval: '1h', maximumInterval: '1h' } };

test('1. a status read slower than the client timeout right before the call never leads to a second call', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 4, script: { '2': ['fail', 'ok'] } });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY, ...LONG_BACKOFF });
  await reachesPhase(env.recoveries, batch.id, 'backing_off');
  // The read right before the call outlasts the worker's 2 s request timeout, twice.
  env.simulator.faults.add('status', { type: 'latency', latencyMs: 3_000, times: 2, batchId: batch.id });
  await env.recoveries.retryNow(batch.id);
  const report = await env.recoveries.result(batch.id);

  expect(appliedRetries(batch.id)).toHaveLength(1);
  expect(retryPosts(batch.id)).toHaveLength(1);
  expect(report.rounds).toEqual([expect.objectContaining({ round: 1, apiStatus: 200, reconciled: false })]);
  expect(report.outcome).toBe('recovered');
});

test('1b. a call the API applies after the client gave up (within the window) is reconciled, not sent again', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 4, script: { '2': ['fail', 'ok'] } });
  // Applied 3 s after it arrived: after the client's 2 s timeout, before the reconcile read.
  env.simulator.faults.add('retry', { type: 'latency', latencyMs: 3_000, times: 1, batchId: batch.id });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY });
  const report = await env.recoveries.result(batch.id);

  expect(appliedRetries(batch.id)).toHaveLength(1);
  expect(retryPosts(batch.id)).toHaveLength(1);
  expect(report.rounds).toEqual([
    expect.objectContaining({ reconciled: true, reconcileEffect: 'took_effect', retriedSessions: 1, callsSent: 1 }),
  ]);
  expect(report.outcome).toBe('recovered');
});

test('2. sessions without retry_count cannot prove a lost call had no effect: no second call', async () => {
  // The retried session fails again at once, so only retry_count could show the call was applied.
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'fail', 'ok'] } });
  env.simulator.faults.add('status', { type: 'omit_field', field: 'data.sessions.0.retry_count', batchId: batch.id });
  env.simulator.faults.add('retry', { type: 'commit_then_drop', times: 1, batchId: batch.id });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY, maxRounds: 1 });
  const report = await env.recoveries.result(batch.id);

  expect(appliedRetries(batch.id)).toHaveLength(1);
  expect(report.rounds).toEqual([
    expect.objectContaining({ reconciled: true, reconcileEffect: 'unknown', callsSent: 1, retriedSessions: 0 }),
  ]);
  expect(report.rounds[0]?.reconcileReason).toMatch(/no retry count for every session/);
  expect(report.outcome).toBe('exhausted');
});

// The contract never says `sessions` lists every session. Summed over part of them, the retry counts "proved" that a
// lost call had no effect when the sessions it retried were simply not listed, and the call went again: applied twice.
test.each([
  ['no session', []],
  ['only sessions the call leaves alone', [{ item_index: 0, status: 'completed', retry_count: 0 }]],
])(
  '2b. a status read that lists %s cannot prove a lost call had no effect: no second call',
  async (_what, sessions) => {
    // As in 2, the retried session fails again at once: the counters cannot show the call either.
    const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'fail', 'ok'] } });
    env.simulator.faults.add('status', {
      type: 'mistyped_field',
      field: 'data.sessions',
      value: sessions,
      batchId: batch.id,
    });
    env.simulator.faults.add('retry', { type: 'commit_then_drop', times: 1, batchId: batch.id });
    await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY, maxRounds: 1 });
    const report = await env.recoveries.result(batch.id);

    expect(retryPosts(batch.id)).toHaveLength(1);
    expect(appliedRetries(batch.id)).toHaveLength(1);
    expect(report.rounds).toEqual([
      expect.objectContaining({ reconciled: true, reconcileEffect: 'unknown', callsSent: 1, retriedSessions: 0 }),
    ]);
    expect(report.outcome).toBe('exhausted');
  },
);

test('3. with counters only, failures that provably sent nothing never use up the round', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
  env.simulator.faults.add('status', { type: 'omit_field', field: 'data.sessions', batchId: batch.id });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY, ...LONG_BACKOFF, maxRounds: 1 });
  await reachesPhase(env.recoveries, batch.id, 'backing_off');
  // A 503 on the read right before the call, then a 429 without Retry-After on the call itself.
  env.simulator.faults.add('status', { type: 'error', statusCode: 503, times: 1, batchId: batch.id });
  env.simulator.faults.add('retry', { type: 'rate_limit', times: 1, batchId: batch.id });
  await env.recoveries.retryNow(batch.id);
  const report = await env.recoveries.result(batch.id);

  expect(retryPosts(batch.id).map((call) => call.statusCode)).toEqual([429, 200]);
  expect(appliedRetries(batch.id)).toHaveLength(1);
  expect(report.rounds).toEqual([
    expect.objectContaining({ apiStatus: 200, reconciled: false, callsSent: 1, callsNotSent: 1, retriedSessions: 1 }),
  ]);
  expect(report.outcome).toBe('recovered');
});

/** The round's call goes out about 2 s before the deadline. */
const CALL_JUST_BEFORE_DEADLINE = { roundBackoff: { initialInterval: '2s' }, deadline: '4s' };

test('4. a call in flight when the deadline passes is still in the report', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '0': ['fail', 'ok'] } });
  // The API applies the call 3 s after it arrived, after the client gave up.
  env.simulator.faults.add('retry', { type: 'latency', latencyMs: 3_000, times: 1, batchId: batch.id });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY, ...CALL_JUST_BEFORE_DEADLINE });
  const report = await env.recoveries.result(batch.id);

  expect(appliedRetries(batch.id)).toHaveLength(1);
  expect(report.rounds).toEqual([
    expect.objectContaining({ round: 1, reconciled: true, reconcileEffect: 'took_effect' }),
  ]);
  expect(report.outcome).toBe('deadline');
});

/** How the API answers a retry call it applied. */
type RetryAnswer = (response: ServerResponse) => void;

const answerRetried: RetryAnswer = (response) =>
  response
    .writeHead(200, { 'content-type': 'application/json' })
    .end(JSON.stringify({ data: { retried_sessions: 1, message: null, status: null } }));

/**
 * A batch API of the test's own: `answer` gets the status read's number (from 1) and how many calls were applied;
 * every retry call is applied, and answered by `answerRetry`.
 */
async function withScriptedApi(
  answer: (read: number, applied: number) => unknown,
  run: (recoveries: BatchRecoveries, posts: () => number) => Promise<void>,
  answerRetry = answerRetried,
): Promise<void> {
  let reads = 0;
  let applied = 0;
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    request.resume();
    request.on('end', () => {
      if (request.method === 'POST' && request.url?.endsWith('/retry')) {
        applied += 1;
        answerRetry(response);
        return;
      }
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer(++reads, applied)));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    await withOwnWorker(url, undefined, (recoveries) => run(recoveries, () => applied));
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

const counters = (status: string, total: number, completed: number, failed: number, inFlight = 0) => ({
  status,
  total_requests: total,
  completed_requests: completed,
  failed_requests: failed,
  processing_requests: inFlight,
  pending_requests: 0,
});

test('5. a just-created batch, pending with every counter at 0, is not settled: no premature clean', async () => {
  const batchId = crypto.randomUUID();
  await withScriptedApi(
    (read, applied) => ({
      data: {
        batch_id: batchId,
        // Reads 1-3: the API has not started the batch; then it runs, one session fails, and a retry fixes it.
        ...(read <= 3
          ? counters('pending', 0, 0, 0)
          : read <= 5
            ? counters('processing', 2, 0, 0, 2)
            : applied === 0
              ? counters('failed', 2, 1, 1)
              : counters('completed', 2, 2, 0)),
      },
    }),
    async (recoveries, posts) => {
      await recoveries.start({ batchId, ...FAST_POLICY });
      const report = await recoveries.result(batchId);

      expect(report.outcome).toBe('recovered');
      expect(report.rounds).toHaveLength(1);
      expect(posts()).toBe(1);
    },
  );
});

test('6. nulls for absent fields and timestamps in other formats are read, not fatal', async () => {
  const batchId = crypto.randomUUID();
  const session = (failed: boolean) => ({
    item_index: 0,
    session_id: null,
    status: failed ? 'failed' : 'completed',
    cdp_url: null,
    live_view_url: null,
    error: failed ? 'pod lost' : null,
    retry_count: failed ? 0 : 1,
    started_at: '2026-11-29 10:00:00',
    completed_at: null,
    metadata: null,
  });
  await withScriptedApi(
    (_read, applied) => ({
      data: {
        batch_id: batchId,
        ...counters(applied === 0 ? 'failed' : 'completed', 1, applied === 0 ? 0 : 1, applied === 0 ? 1 : 0),
        created_at: 'Sun, 29 Nov 2026 10:00:00 GMT',
        actual_completion_time: null,
        error: null,
        progress: null,
        sessions: [session(applied === 0)],
      },
    }),
    async (recoveries, posts) => {
      await recoveries.start({ batchId, ...FAST_POLICY });
      const report = await recoveries.result(batchId);

      expect(report.outcome).toBe('recovered');
      expect(report.rounds).toEqual([expect.objectContaining({ retriedSessions: 1, apiMessage: null })]);
      expect(posts()).toBe(1);
    },
  );
});

test('6b. a 2xx whose body breaks off was applied: the round is recorded from the call, not reconciled', async () => {
  const batchId = crypto.randomUUID();
  await withScriptedApi(
    (_read, applied) => ({
      data: { batch_id: batchId, ...(applied === 0 ? counters('failed', 2, 1, 1) : counters('completed', 2, 2, 0)) },
    }),
    async (recoveries, posts) => {
      await recoveries.start({ batchId, ...FAST_POLICY });
      const report = await recoveries.result(batchId);

      // Before, the reset after the 2xx was an unknown outcome: the round was reconciled from a read of the batch.
      expect(posts()).toBe(1);
      expect(report.rounds).toEqual([
        expect.objectContaining({
          apiStatus: 200,
          reconciled: false,
          retriedSessions: 1,
          apiMessage: expect.stringMatching(/^answer unreadable \(body cut off before its end/),
        }),
      ]);
      expect(report.outcome).toBe('recovered');
    },
    // The headers announce a longer body than comes before the connection breaks.
    (response) => {
      response.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' });
      response.write('{"data":{"retried_sessions":');
      setImmediate(() => response.socket?.destroy());
    },
  );
});

test('7. a retryNow sent while the batch is in flight survives continue-as-new', async () => {
  // Attempts take 6 s, so the batch is in flight long enough to send retryNow and the signals below then.
  const slow = await startRecoveryEnv({ attemptDurationMs: 6_000, queueDelayMs: 10 });
  try {
    await slow.startWorker();
    const batch = slow.simulator.createScriptedBatch({ count: 2, script: { '0': ['fail', 'fail', 'ok'] } });
    await slow.recoveries.start({
      batchId: batch.id,
      ...FAST_POLICY,
      ...LONG_BACKOFF,
      maxRounds: 3,
      continueAsNewAfterEvents: 50,
    });
    await reachesPhase(slow.recoveries, batch.id, 'backing_off');
    await slow.recoveries.retryNow(batch.id);
    await eventually('round 1 to be sent and the batch in flight again', async () => {
      const report = await slow.recoveries.report(batch.id);
      return report.rounds.length === 1 && report.phase === 'waiting_for_batch' ? true : undefined;
    });
    // Without it, the next run would wait out the 1 h backoff.
    await slow.recoveries.retryNow(batch.id);
    // Signals grow the history past 50 events while the batch is in flight, so its wait continues as new
    // (recovery-read-wait-wakes-when-due; before, its settle did). Sent during a backoff, they would continue it as new
    // there, before any retryNow (recovery-continues-as-new-in-holds).
    const handle = slow.recoveries.handle(batch.id);
    const firstRunId = (await handle.describe()).runId;
    await eventually('the history to be due', async () => {
      // Once the run has continued as new, its history is the next run's: no more signals.
      if ((await handle.describe()).runId !== firstRunId) return true;
      if (((await handle.fetchHistory()).events?.length ?? 0) >= 50) return true;
      await slow.recoveries.resume(batch.id);
      return undefined;
    });
    // Until the next run's first workflow task has run, it has no report to give.
    await eventually('the batch to be waited for, in flight', async () => {
      const report = await slow.recoveries.report(batch.id).catch(() => undefined);
      return report?.phase === 'waiting_for_batch' ? true : undefined;
    });
    const report = await slow.recoveries.result(batch.id);

    expect(report.continuedAsNew).toBe(1);
    expect(report.rounds).toHaveLength(2);
    expect(report.outcome).toBe('recovered');
    expect(slow.simulator.ledger.forBatch(batch.id).retries).toHaveLength(2);
  } finally {
    await slow.close();
  }
});

test('8. a worker lost after taking the call and before announcing it sent nothing: the call goes out again', async () => {
  // Counters only: a lost call could not be reconciled, so only the missing announcement proves nothing was sent.
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
  env.simulator.faults.add('status', { type: 'omit_field', field: 'data.sessions', batchId: batch.id });
  let sendCalls = 0;
  let wake!: () => void;
  const recoveryEnded = new Promise<void>((resolve) => (wake = resolve));
  let lateOutcome: Promise<SendRetryResult> | undefined;
  try {
    const report = await withOwnWorker(
      env.simulator.url,
      (activities) => ({
        /** The first call stalls with no heartbeat, as a frozen worker would, past its heartbeat timeout, then wakes. */
        announceAndSendRetry: (input: SendRetryInput) => {
          sendCalls += 1;
          if (sendCalls > 1) return activities.announceAndSendRetry(input);
          lateOutcome = recoveryEnded.then(() => activities.announceAndSendRetry(input));
          return lateOutcome;
        },
      }),
      async (recoveries) => {
        await recoveries.start({ batchId: batch.id, ...FAST_POLICY, maxRounds: 1 });
        const ended = await recoveries.result(batch.id);
        wake();
        // The stalled attempt wakes after the server timed it out: its announcement is refused, and it sends nothing.
        await expect(lateOutcome).resolves.toEqual(
          expect.objectContaining({ kind: 'not_sent', errorType: 'announcement_refused' }),
        );
        return ended;
      },
    );

    expect(sendCalls).toBe(2);
    expect(retryPosts(batch.id).map((call) => call.statusCode)).toEqual([200]);
    expect(appliedRetries(batch.id)).toHaveLength(1);
    expect(report.rounds).toEqual([
      expect.objectContaining({ apiStatus: 200, reconciled: false, callsSent: 1, callsNotSent: 1, retriedSessions: 1 }),
    ]);
    expect(report.lastError).toEqual(
      expect.objectContaining({ type: 'worker_lost', message: expect.stringContaining('before announcing') }),
    );
    expect(report.outcome).toBe('recovered');
  } finally {
    wake();
  }
}, 90_000);

test("8b. on a worker whose clock runs 6 s behind the server's, a call the API applies late is still reconciled, not sent again", async () => {
  // Session 1 fails again on its first retry: a second call would be applied, and seen, as a second retry.
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'fail', 'ok'] } });
  // Applied 5 s after it arrived: after the client's 2 s timeout, within the 2 s + 5 s before the reconcile read.
  env.simulator.faults.add('retry', { type: 'latency', latencyMs: 5_000, times: 1, batchId: batch.id });
  const report = await withOwnWorker(
    env.simulator.url,
    (activities) => ({
      // The one value of the outcome the worker's wall clock dates: what `new Date()` gives on a clock 6 s behind.
      announceAndSendRetry: async (input: SendRetryInput) => {
        const result = await activities.announceAndSendRetry(input);
        if (result.kind !== 'unknown' || result.sentAt === undefined) return result;
        return { ...result, sentAt: new Date(Date.parse(result.sentAt) - 6_000).toISOString() };
      },
    }),
    async (recoveries) => {
      await recoveries.start({ batchId: batch.id, ...FAST_POLICY, maxRounds: 1 });
      return recoveries.result(batch.id);
    },
  );

  // Before, the reconcile read came as the request timed out (3 s after the call, by the API's ledger), found no
  // effect, and the call went again: two calls, both applied.
  expect(retryPosts(batch.id)).toHaveLength(1);
  expect(appliedRetries(batch.id)).toHaveLength(1);
  expect(report.rounds).toEqual([
    expect.objectContaining({ reconciled: true, reconcileEffect: 'took_effect', retriedSessions: 1, callsSent: 1 }),
  ]);
}, 90_000);

test('9. an announcement confirmed too late to leave the request its time sends nothing, and the call goes again', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
  let announcements = 0;
  const report = await withOwnWorker(
    env.simulator.url,
    (_activities, api, client) => {
      // The first confirmation takes 15.5 s of the 20 s heartbeat window, as from a slow server: 3 s are kept for
      // the turn and 2 s as margin, so less than the 1 s a request needs is left.
      const slowFirstConfirmation: RecordedHeartbeat = {
        withDeadline: (deadline, fn) => client.activity.withDeadline(deadline, fn),
        heartbeat: async (taskToken, details) => {
          await client.activity.heartbeat(taskToken, details);
          announcements += 1;
          if (announcements === 1) await new Promise((resolve) => setTimeout(resolve, 15_500));
        },
      };
      const slowlyAnnounced = createRetryActivities(api, slowFirstConfirmation);
      return { announceAndSendRetry: (input: SendRetryInput) => slowlyAnnounced.announceAndSendRetry(input) };
    },
    async (recoveries) => {
      await recoveries.start({ batchId: batch.id, ...FAST_POLICY, maxRounds: 1 });
      return recoveries.result(batch.id);
    },
  );

  expect(announcements).toBe(2);
  expect(retryPosts(batch.id).map((call) => call.statusCode)).toEqual([200]);
  expect(report.rounds).toEqual([
    expect.objectContaining({ apiStatus: 200, reconciled: false, callsSent: 1, callsNotSent: 1, retriedSessions: 1 }),
  ]);
  expect(report.lastError).toEqual(expect.objectContaining({ type: 'no_time_to_send' }));
  expect(report.outcome).toBe('recovered');
}, 90_000);

// A retry endpoint that answers 5xx while reads work: each call's outcome is unknown, and each reconcile shows it had
// no effect. Before, the round sent again every 5 s for as long as that lasted: past the deadline, through a cancel,
// and over a 429's Retry-After, until the history's limit ended the run without a report.
const failingCalls = (batchId: string) =>
  env.simulator.faults.add('retry', { type: 'error', statusCode: 503, batchId });
const endedWithoutEffect = (callsSent: number, why: string, callsNotSent = 0): unknown =>
  expect.objectContaining({
    round: 1,
    callsSent,
    callsNotSent,
    reconciled: true,
    reconcileEffect: 'no_effect',
    retriedSessions: 0,
    reconcileReason: expect.stringContaining(why),
  });

test('10. a retry endpoint that keeps answering 5xx gets at most 5 calls a round, each after proof of no effect', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
  failingCalls(batch.id);
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY, maxRounds: 1 });
  const report = await env.recoveries.result(batch.id);

  expect(retryPosts(batch.id).map((call) => call.statusCode)).toEqual(Array<number>(5).fill(503));
  expect(appliedRetries(batch.id)).toHaveLength(0);
  expect(report.rounds).toEqual([endedWithoutEffect(5, 'a round tries at most 5 calls')]);
  expect(report.outcome).toBe('exhausted');
}, 90_000);

test('11. no call goes out again once the deadline has passed', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '0': ['fail', 'ok'] } });
  failingCalls(batch.id);
  // Its reconcile comes after the deadline.
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY, ...CALL_JUST_BEFORE_DEADLINE });
  const report = await env.recoveries.result(batch.id);

  expect(retryPosts(batch.id)).toHaveLength(1);
  expect(report.rounds).toEqual([endedWithoutEffect(1, 'the deadline has passed')]);
  expect(report.outcome).toBe('deadline');
}, 90_000);

test('12. a cancel ends the round between two calls, and the calls sent are in the report', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
  failingCalls(batch.id);
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY });
  await eventually('the first call', () => (retryPosts(batch.id).length > 0 ? true : undefined));
  await env.recoveries.cancel(batch.id);
  const report = await env.recoveries.result(batch.id);

  const posts = retryPosts(batch.id).length;
  expect(posts).toBeLessThan(3);
  expect(report.rounds).toEqual([endedWithoutEffect(posts, 'the recovery was cancelled')]);
  expect(report.outcome).toBe('operator_cancelled');
}, 90_000);

test('13. a later call of the round answered 429 is sent again after its Retry-After, in the same round', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
  env.simulator.faults.add('retry', { type: 'error', statusCode: 503, times: 1, batchId: batch.id });
  env.simulator.faults.add('retry', { type: 'rate_limit', retryAfterSeconds: 2, times: 1, batchId: batch.id });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY, maxRounds: 3 });
  const report = await env.recoveries.result(batch.id);

  const posts = retryPosts(batch.id);
  expect(posts.map((call) => call.statusCode)).toEqual([503, 429, 200]);
  expect(Date.parse(posts[2]!.at) - Date.parse(posts[1]!.at)).toBeGreaterThanOrEqual(2_000);
  expect(report.rounds).toEqual([
    expect.objectContaining({ round: 1, apiStatus: 200, reconciled: false, callsSent: 2, callsNotSent: 1 }),
  ]);
  expect(report.lastError).toEqual(expect.objectContaining({ type: 'rate_limited' }));
  expect(report.outcome).toBe('recovered');
}, 90_000);

test('13b. a Retry-After past the deadline ends the round without another call', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
  env.simulator.faults.add('retry', { type: 'error', statusCode: 503, times: 1, batchId: batch.id });
  env.simulator.faults.add('retry', { type: 'rate_limit', retryAfterSeconds: 3600, batchId: batch.id });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY, deadline: '30s' });
  const report = await env.recoveries.result(batch.id);

  expect(retryPosts(batch.id).map((call) => call.statusCode)).toEqual([503, 429]);
  expect(report.rounds).toEqual([
    endedWithoutEffect(1, 'the next was not sent (rate_limited), and the deadline comes first', 1),
  ]);
  expect(report.outcome).toBe('deadline');
}, 90_000);

test('14. a resend refused for good stops the recovery with the round that went out in its report', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
  env.simulator.faults.add('retry', { type: 'error', statusCode: 503, times: 1, batchId: batch.id });
  env.simulator.faults.add('retry', { type: 'error', statusCode: 402, batchId: batch.id });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY });
  const failure = await env.recoveries.result(batch.id).then(
    () => undefined,
    (err: unknown) => err,
  );

  expect(failure).toBeInstanceOf(RecoveryFailedError);
  const { report } = failure as RecoveryFailedError;
  expect(retryPosts(batch.id).map((call) => call.statusCode)).toEqual([503, 402]);
  expect(report?.rounds).toEqual([endedWithoutEffect(1, 'the next was refused for good')]);
  expect(report?.failure).toEqual(expect.objectContaining({ type: 'insufficient_credits' }));
}, 90_000);

test('15. calls not sent again and again continue as new once the history is due; the round counts them all from its start', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
  // Each call not sent adds a read, a send, a timer and their workflow tasks.
  env.simulator.faults.add('retry', { type: 'rate_limit', retryAfterSeconds: 0, times: 12, batchId: batch.id });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY, continueAsNewAfterEvents: 50 });
  const report = await env.recoveries.result(batch.id);

  expect(retryPosts(batch.id).map((call) => call.statusCode)).toEqual([...Array<number>(12).fill(429), 200]);
  expect(report.rounds).toEqual([
    expect.objectContaining({ round: 1, apiStatus: 200, callsSent: 1, callsNotSent: 12, retriedSessions: 1 }),
  ]);
  // The round began with its first call not sent, in the first run: its start is carried across the runs.
  expect(Date.parse(report.rounds[0]?.startedAt ?? '')).toBeLessThanOrEqual(retryPosts(batch.id)[0]?.receivedAtMs ?? 0);
  expect(report.outcome).toBe('recovered');
  const workflowId = env.recoveries.handle(batch.id).workflowId;
  const lengths = await closedRunHistoryLengths(env.client, workflowId, report.continuedAsNew + 1);
  expect(lengths.length).toBeGreaterThan(1);
  // The threshold, and what one call not sent adds before the next check.
  for (const length of lengths) expect(length).toBeLessThanOrEqual(50 + 25);
}, 90_000);

test("16. a cancel the worker takes in one workflow task with the answer of the round's status read sends no call", async () => {
  // The workflows and the activities on workers of their own: the read is out on the activities' worker while the
  // workflows' worker stops, so the read's answer and the cancel wait in the server for the next one, which takes
  // them in one workflow task.
  const taskQueue = uniqueTaskQueue('cancel-with-read');
  const client = await connectClient();
  const connection = await connectWorker();
  const recoveries = new BatchRecoveries(client, taskQueue);
  const config = workerConfig(taskQueue, env.simulator.url);
  // The read's 5 s latency is the window for the workflows' worker to stop: with the usual 2 s timeout, the read went
  // again at once and answered after about 2 s.
  const activityWorkers = await createRecoveryWorkers({
    config: { ...config, anchor: { ...config.anchor, timeoutMs: 30_000 } },
    connection,
    workflows: {},
  });
  const activitiesDone = activityWorkers.run();
  const startWorkflowWorker = async () => {
    const worker = await Worker.create({
      connection,
      namespace: temporalNamespace(),
      taskQueue,
      ...workflowBundle(),
      // The registration with the poller is a local activity: it runs beside the workflow code.
      activities: createPollerRegistrationActivities(client),
      enableNonLocalActivities: false,
    });
    return { worker, done: worker.run() };
  };
  let workflowWorker = await startWorkflowWorker();
  try {
    const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
    await recoveries.start({ batchId: batch.id, ...FAST_POLICY, ...LONG_BACKOFF });
    await reachesPhase(recoveries, batch.id, 'backing_off');
    const callsBefore = env.simulator.ledger.forBatch(batch.id).calls.length;
    // Long enough for the workflows' worker to stop (well under a second here) before the read's answer comes.
    env.simulator.faults.add('status', { type: 'latency', latencyMs: 5_000, times: 1, batchId: batch.id });
    await recoveries.retryNow(batch.id);
    await eventually('the status read before the call to reach the API', () =>
      env.simulator.ledger.forBatch(batch.id).calls.length > callsBefore ? true : undefined,
    );
    workflowWorker.worker.shutdown();
    await workflowWorker.done;
    const handle = recoveries.handle(batch.id);
    await eventually('the read to complete', async () => {
      const events = (await handle.fetchHistory()).events ?? [];
      const read = events.find(
        (event) => event.activityTaskScheduledEventAttributes?.activityType?.name === 'readRetrySnapshot',
      );
      return events.some(
        (event) =>
          read !== undefined &&
          event.activityTaskCompletedEventAttributes?.scheduledEventId?.toString() === read.eventId?.toString(),
      )
        ? true
        : undefined;
    });
    await recoveries.cancel(batch.id);
    workflowWorker = await startWorkflowWorker();
    const report = await recoveries.result(batch.id);

    expect(report.outcome).toBe('operator_cancelled');
    expect(report.rounds).toEqual([]);
    expect(retryPosts(batch.id)).toHaveLength(0);
  } finally {
    workflowWorker.worker.shutdown();
    activityWorkers.shutdown();
    await Promise.all([workflowWorker.done, activitiesDone]);
    await connection.close();
    await client.connection.close();
  }
}, 90_000);

test('17. a batch cancelled while the round waited to reconcile gets no call again, though the call had no effect', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
  env.simulator.faults.add('retry', { type: 'error', statusCode: 503, batchId: batch.id, times: 1 });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY, maxRounds: 1 });
  // The round's reconcile read comes 5 s after the answer: someone at Anchor cancels the batch in between.
  await eventually('the first call', () => (retryPosts(batch.id).length > 0 ? true : undefined));
  await cancelBatchAtAnchor(env.simulator, batch.id);
  const report = await env.recoveries.result(batch.id);

  // Before, the proof of no effect sent the call again, for the cancelled batch: the simulator answered 400.
  expect(retryPosts(batch.id).map((call) => call.statusCode)).toEqual([503]);
  expect(report.rounds).toEqual([endedWithoutEffect(1, 'the batch was cancelled')]);
  expect(report.outcome).toBe('batch_cancelled');
}, 90_000);
