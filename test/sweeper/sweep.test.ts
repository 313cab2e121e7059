import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { InterceptingCall, ListenerBuilder, RequesterBuilder, status, type Interceptor } from '@grpc/grpc-js';
import { Client, Connection, WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { Worker, type NativeConnection } from '@temporalio/worker';
import { ANCHOR_ENDPOINTS } from '../../anchor-api/endpoints.js';
import type { BatchRecoveries } from '../../client/recoveries.js';
import { createSweepActivities } from '../../activities/sweep-activities.js';
import { createRecoveryWorkers } from '../../worker/create-worker.js';
import type { RecoveryWorkers } from '../../worker/recovery-workers.js';
import { recoveryWorkflowId } from '../../workflows/definitions.js';
import type { CarriedSweep, sweepFailedBatches } from '../../workflows/sweep-failed-batches.js';
import type { RecoveryReport } from '../../workflows/report.js';
import {
  newSweepResult,
  parseSweepInput,
  type SweepFailedBatchesInput,
  type SweepResult,
} from '../../workflows/sweep-input.js';
import {
  eventually,
  FAST_POLICY,
  localActivityMarkers,
  reachesPhase,
  startRecoveryEnv,
  workerConfig,
  workflowBundle,
  type RecoveryEnv,
  withOwnWorker,
  PRODUCT_API_TIMEOUT,
} from '../helpers/recovery-env.js';
import { connectWorker, temporalAddress, temporalNamespace, uniqueTaskQueue } from '../helpers/temporal.js';

let env: RecoveryEnv;

beforeAll(async () => {
  env = await startRecoveryEnv();
  await env.startWorker(undefined, {}, PRODUCT_API_TIMEOUT);
});
/** Workers a test started on a task queue of its own, stopped here: also when the test failed or timed out. */
const ownWorkers: { workers: RecoveryWorkers; connection: NativeConnection; running: Promise<void> }[] = [];
afterAll(async () => {
  for (const { workers, connection, running } of ownWorkers) {
    workers.shutdown();
    await running;
    await connection.close();
  }
  await env.close();
});
// Each test starts from an empty team; its recoveries have ended before the next test starts.
beforeEach(() => env.simulator.reset());

const minutesAgo = (minutes: number) => new Date(Date.now() - minutes * 60_000).toISOString();

/** A settled batch created `minutes` ago; `failing` of its sessions failed and succeed when retried. */
function batchCreated(minutes: number, failing: number): string {
  const script = Object.fromEntries(
    Array.from({ length: failing }, (_, index) => [String(index), ['fail', 'ok'] as ('fail' | 'ok')[]]),
  );
  return env.simulator.createScriptedBatch({ count: 3, script, created_at: minutesAgo(minutes) }).id;
}

const startSweep = (input: SweepFailedBatchesInput) =>
  env.client.workflow.start<typeof sweepFailedBatches>('sweepFailedBatches', {
    taskQueue: env.taskQueue,
    workflowId: `sweep-test-${randomUUID()}`,
    args: [input],
  });
const sweep = async (input: SweepFailedBatchesInput): Promise<SweepResult> => (await startSweep(input)).result();

const ids = (entries: { batchId: string }[]) => entries.map((entry) => entry.batchId).sort();
const outcomesOf = async (batchIds: string[]) =>
  Promise.all(batchIds.map(async (batchId) => (await env.recoveries.result(batchId)).outcome));

test('a sweep recovers the batches with failed sessions created within the lookback, reading every page', async () => {
  const failedInside = [5, 10, 20, 30, 40].map((minutes) => batchCreated(minutes, 1));
  const cleanInside = [15, 25].map((minutes) => batchCreated(minutes, 0));
  const failedOutside = [3 * 60, 5 * 60].map((minutes) => batchCreated(minutes, 2));

  const handle = await startSweep({ lookback: '2h', pageSize: 2, recovery: { ...FAST_POLICY, maxRounds: 2 } });
  const result = await handle.result();

  expect(ids(result.started)).toEqual([...failedInside].sort());
  for (const { batchId, workflowId } of result.started) expect(workflowId).toBe(recoveryWorkflowId(batchId));
  // Batches without failures are only counted.
  expect(result.skipped).toEqual([]);
  expect(result.failure).toBeNull();
  expect(result.counts).toEqual({
    scanned: 7,
    started: 5,
    other_status: 0,
    invalid_batch_id: 0,
    outside_window: 0,
    listed_again: 0,
    no_failed_sessions: 2,
    already_running: 0,
    already_ended: 0,
    permanently_failed: 0,
    over_limit: 0,
    start_failed: 0,
    past_retention: 0,
    held: 0,
  });
  expect(Date.parse(result.window.createdBefore) - Date.parse(result.window.createdAfter)).toBe(2 * 3_600_000);

  // The 7 batches of the window at 2 a page, in any status (a status filter would shift the pages as
  // recoveries change statuses), all within the window the workflow computed.
  const listCalls = env.simulator.ledger.all().calls.filter((call) => call.endpoint === ANCHOR_ENDPOINTS.listBatches);
  const queries = listCalls.map((call) => new URL(call.path, env.simulator.url).searchParams);
  // Pages after the first are read side by side, so the calls may arrive in any order.
  expect(queries.map((query) => [query.get('status'), query.get('page')]).sort()).toEqual([
    [null, '1'],
    [null, '2'],
    [null, '3'],
    [null, '4'],
  ]);
  for (const query of queries) expect(query.get('created_after')).toBe(result.window.createdAfter);
  // One page per activity task: the queue's task rate limit is then a limit on Anchor calls.
  const { events } = await handle.fetchHistory();
  const listingTasks = (events ?? []).filter(
    (event) => event.activityTaskScheduledEventAttributes?.activityType?.name === 'listFailedBatches',
  );
  expect(listingTasks).toHaveLength(listCalls.length);
  // And its only activity tasks: the starts, which call Temporal and not Anchor, run in local activities, outside
  // the queue's task rate (a marker each in the sweep's history).
  const activityTasks = (events ?? []).filter((event) => event.activityTaskScheduledEventAttributes);
  expect(activityTasks).toHaveLength(listCalls.length);
  expect(localActivityMarkers({ events }, 'startBatchRecovery')).toHaveLength(5);

  // The recoveries run on their own, with the sweep's recovery input, and only for the picked batches.
  expect(await outcomesOf(failedInside)).toEqual(failedInside.map(() => 'recovered'));
  expect((await env.recoveries.report(failedInside[0] as string)).maxRounds).toBe(2);
  for (const batchId of [...cleanInside, ...failedOutside])
    expect(env.simulator.ledger.forBatch(batchId).retries).toEqual([]);
});

test('overlapping sweeps start one recovery per batch; later sweeps skip running and ended recoveries', async () => {
  const batches = [5, 10, 15].map((minutes) => batchCreated(minutes, 2));
  // Recoveries that wait an hour before retrying, so they are still running when the other sweeps look.
  const recovery = { ...FAST_POLICY, roundBackoff: { initialInterval: '1h', maximumInterval: '1h' } };

  const [first, second] = await Promise.all([startSweep({ recovery }), startSweep({ recovery })]);
  const results = await Promise.all([first.result(), second.result()]);
  const started = results.flatMap((result) => ids(result.started));
  const skipped = results.flatMap((result) => result.skipped);
  expect(started.sort()).toEqual([...batches].sort());
  expect(ids(skipped)).toEqual([...batches].sort());
  expect(new Set(skipped.map((entry) => entry.reason))).toEqual(new Set(['already_running']));

  const runIds = await Promise.all(
    batches.map(async (batchId) => (await env.recoveries.handle(batchId).describe()).runId),
  );
  const third = await sweep({ recovery });
  expect(third.started).toEqual([]);
  expect(third.counts.already_running).toBe(3);

  // An ended recovery is not redone: the batch still has failed sessions, but the operator stopped it.
  for (const batchId of batches) await env.recoveries.cancel(batchId);
  expect(await outcomesOf(batches)).toEqual(batches.map(() => 'operator_cancelled'));
  const fourth = await sweep({ recovery });
  expect(fourth.started).toEqual([]);
  expect(fourth.skipped.map((entry) => entry.reason)).toEqual(['already_ended', 'already_ended', 'already_ended']);
  const runIdsAfter = await Promise.all(
    batches.map(async (batchId) => (await env.recoveries.handle(batchId).describe()).runId),
  );
  expect(runIdsAfter).toEqual(runIds);
});

test('a batch whose last recovery failed in a way a new one would repeat is held, not restarted', async () => {
  const batchId = batchCreated(5, 1);
  // The status endpoint denies the batch, so its recovery fails with batch_not_found.
  env.simulator.faults.add('status', { type: 'error', statusCode: 404, batchId });
  await env.recoveries.start({ batchId, ...FAST_POLICY });
  await expect(env.recoveries.result(batchId)).rejects.toThrow(/Batch not found/);
  const failedRun = (await env.recoveries.handle(batchId).describe()).runId;

  const result = await sweep({ lookback: '1h' });
  // It sent no retry call: held for REPEATING_FAILURE_HOLD_MS, left to a later sweep.
  expect(result.skipped).toEqual([{ batchId, reason: 'held' }]);
  expect(result.counts.held).toBe(1);
  expect((await env.recoveries.handle(batchId).describe()).runId).toBe(failedRun);
});

/** The tests' hold: long enough that the first sweep, right after a failure, runs within it on a loaded machine. */
const TEST_HOLD_MS = 15_000;

/** Runs `test` on a worker of the product's sweep activities with a hold of TEST_HOLD_MS in place of hours. */
function withShortHold(
  test: (recoveries: BatchRecoveries, sweepHere: () => Promise<SweepResult>) => Promise<void>,
): Promise<void> {
  const shortHold: Parameters<typeof withOwnWorker>[1] = (_activities, api, client) =>
    createSweepActivities(api, client, { repeatingFailureHoldMs: TEST_HOLD_MS });
  return withOwnWorker(env.simulator.url, shortHold, (recoveries) =>
    test(recoveries, () =>
      env.client.workflow.execute<typeof sweepFailedBatches>('sweepFailedBatches', {
        taskQueue: recoveries.taskQueue,
        workflowId: `sweep-test-${randomUUID()}`,
        args: [{ lookback: '1h', recovery: FAST_POLICY }],
      }),
    ),
  );
}

/**
 * A client of the suite's server that records the calls it makes, and answers a read of a workflow's result or history
 * with INTERNAL while `failHistory` holds: a server failing one kind of call.
 */
async function clientWithFailingHistory() {
  const calls: string[] = [];
  const state = { failHistory: false };
  // The answer still goes through (a listener that held it back would hold the status too): the status fails it.
  const failed = new ListenerBuilder()
    .withOnReceiveStatus((received, next) =>
      next({ ...received, code: status.INTERNAL, details: 'failed by the test' }),
    )
    .build();
  const failing = new RequesterBuilder().withStart((metadata, _listener, next) => next(metadata, failed)).build();
  const interceptor: Interceptor = (options, nextCall) => {
    const method = options.method_definition.path.split('/').pop() ?? '';
    calls.push(method);
    const fails = state.failHistory && method === 'GetWorkflowExecutionHistory';
    return new InterceptingCall(nextCall(options), fails ? failing : undefined);
  };
  const connection = await Connection.connect({ address: temporalAddress(), interceptors: [interceptor] });
  return { client: new Client({ connection, namespace: temporalNamespace() }), calls, state };
}

test('a sweep starts no recovery beside one it finds running, or one whose failure it cannot read', async () => {
  // Before, a failure that could not be read was taken as none, and a recovery started beside one that had failed
  // after a retry call, sending the batch's retries again; and the sweep started one beside a running recovery,
  // counting on the server to refuse it, which it does not once that recovery has failed.
  const faulty = await clientWithFailingHistory();
  try {
    await withOwnWorker(
      env.simulator.url,
      (_activities, api) => createSweepActivities(api, faulty.client),
      async (recoveries) => {
        const failedAfterACall = env.simulator.createScriptedBatch({
          count: 3,
          script: { '0': ['fail', 'fail', 'ok'] },
          created_at: minutesAgo(6),
        }).id;
        await recoveries.start({
          batchId: failedAfterACall,
          ...FAST_POLICY,
          roundBackoff: { initialInterval: '1s', maximumInterval: '1s' },
        });
        await eventually(
          'the first retry call',
          () => env.simulator.ledger.forBatch(failedAfterACall).retries.length > 0 || undefined,
        );
        env.simulator.faults.add('status', { type: 'error', statusCode: 404, batchId: failedAfterACall });
        await expect(recoveries.result(failedAfterACall)).rejects.toThrow(/Batch not found/);
        const running = batchCreated(5, 1);
        await recoveries.start({
          batchId: running,
          ...FAST_POLICY,
          roundBackoff: { initialInterval: '1h', maximumInterval: '1h' },
        });
        await reachesPhase(recoveries, running, 'backing_off');
        faulty.state.failHistory = true;
        faulty.calls.splice(0);

        const result = await env.client.workflow.execute<typeof sweepFailedBatches>('sweepFailedBatches', {
          taskQueue: recoveries.taskQueue,
          workflowId: `sweep-test-${randomUUID()}`,
          args: [{ lookback: '1h', recovery: FAST_POLICY }],
        });
        await recoveries.handle(running).terminate('test over');

        expect(result.started).toEqual([]);
        expect(result.skipped).toEqual(
          expect.arrayContaining([
            { batchId: failedAfterACall, reason: 'start_failed' },
            { batchId: running, reason: 'already_running' },
          ]),
        );
        expect(faulty.calls).not.toContain('StartWorkflowExecution');
        expect(faulty.calls).toContain('GetWorkflowExecutionHistory');
        expect(env.simulator.ledger.forBatch(failedAfterACall).retries).toHaveLength(1);
      },
    );
  } finally {
    await faulty.client.connection.close();
  }
});

test('a batch whose recovery failed in a way a new one would repeat before any retry call is started again once the hold has passed; one after a call is not', async () => {
  await withShortHold(async (recoveries, sweepHere) => {
    const notFound = (batchId: string) =>
      env.simulator.faults.add('status', { type: 'error', statusCode: 404, batchId });
    // An incident after a recovery's first retry call: the status endpoint answers 404 for the batch, and the
    // recovery fails with batch_not_found. That call was applied, and a new recovery would send the batch's retries
    // again.
    const afterACall = env.simulator.createScriptedBatch({
      count: 3,
      script: { '0': ['fail', 'fail', 'ok'] },
      created_at: minutesAgo(6),
    }).id;
    await recoveries.start({
      batchId: afterACall,
      ...FAST_POLICY,
      roundBackoff: { initialInterval: '1s', maximumInterval: '1s' },
    });
    await eventually(
      'the first retry call',
      () => env.simulator.ledger.forBatch(afterACall).retries.length > 0 || undefined,
    );
    notFound(afterACall);
    await expect(recoveries.result(afterACall)).rejects.toThrow(/Batch not found/);
    // The same incident before a recovery sent any retry call. Failed last, right before the sweep below: its hold
    // then starts as late as it can, and a slow recovery above cannot use it up before the sweep.
    const beforeAnyCallCreatedAt = minutesAgo(5);
    const beforeAnyCall = env.simulator.createScriptedBatch({
      count: 3,
      script: { '0': ['fail', 'ok'] },
      created_at: beforeAnyCallCreatedAt,
    }).id;
    notFound(beforeAnyCall);
    await recoveries.start({ batchId: beforeAnyCall, ...FAST_POLICY });
    await expect(recoveries.result(beforeAnyCall)).rejects.toThrow(/Batch not found/);
    const failed = await Promise.all(
      [beforeAnyCall, afterACall].map((batchId) => recoveries.handle(batchId).describe()),
    );
    const within = await sweepHere();
    env.simulator.faults.clear('status');
    const lastClosed = Math.max(...failed.map((description) => description.closeTime?.getTime() ?? Infinity));
    await eventually('the hold to pass', () => Date.now() > lastClosed + TEST_HOLD_MS || undefined);

    const past = await sweepHere();

    expect(within.skipped).toEqual(
      expect.arrayContaining([
        { batchId: beforeAnyCall, reason: 'held' },
        { batchId: afterACall, reason: 'permanently_failed' },
      ]),
    );
    expect(within.counts).toMatchObject({ started: 0, held: 1, permanently_failed: 1 });
    // Held, it is left to a later sweep: the next of the schedule reaches back to it, so the hold cannot outlast the
    // window. Before, a batch held past its lookback was in no later window once the hold had passed.
    expect(within.oldestLeftCreatedAt).toBe(beforeAnyCallCreatedAt);
    // Before, every later sweep skipped both as permanently_failed, and the first batch was never recovered.
    expect(past.started).toEqual([{ batchId: beforeAnyCall, workflowId: recoveryWorkflowId(beforeAnyCall) }]);
    expect(past.skipped).toEqual([{ batchId: afterACall, reason: 'permanently_failed' }]);
    expect((await recoveries.result(beforeAnyCall)).outcome).toBe('recovered');
    expect((await recoveries.handle(beforeAnyCall).describe()).runId).not.toBe(failed[0]?.runId);
    expect(env.simulator.ledger.forBatch(afterACall).retries).toHaveLength(1);
  });
});

test('a batch whose recovery stopped at a redirect to its retry call, shown to have had no effect, is held, then started again', async () => {
  await withShortHold(async (recoveries, sweepHere) => {
    const createdAt = minutesAgo(5);
    const batchId = env.simulator.createScriptedBatch({
      count: 3,
      script: { '0': ['fail', 'ok'] },
      created_at: createdAt,
    }).id;
    env.simulator.faults.add('retry', { type: 'error', statusCode: 307, times: 1, batchId });
    await recoveries.start({ batchId, ...FAST_POLICY });
    await expect(recoveries.result(batchId)).rejects.toThrow(/unexpected status \(HTTP 307\)/);
    const failed = await recoveries.handle(batchId).describe();
    const within = await sweepHere();
    await eventually(
      'the hold to pass',
      () => Date.now() > (failed.closeTime?.getTime() ?? Infinity) + TEST_HOLD_MS || undefined,
    );

    const past = await sweepHere();

    // Before, its round (no effect) made it permanently_failed: a proxy's short incident left it to no later sweep.
    expect(within.skipped).toEqual([{ batchId, reason: 'held' }]);
    expect(past.started).toEqual([{ batchId, workflowId: recoveryWorkflowId(batchId) }]);
    expect((await recoveries.result(batchId)).outcome).toBe('recovered');
    expect(env.simulator.ledger.forBatch(batchId).retries).toHaveLength(1);
  });
});

test('a batch whose recovery was terminated, which may have had a call out then, is held, then started again', async () => {
  await withShortHold(async (recoveries, sweepHere) => {
    const batchId = env.simulator.createScriptedBatch({
      count: 3,
      script: { '0': ['fail', 'ok'] },
      created_at: minutesAgo(5),
    }).id;
    await recoveries.start({ batchId, ...FAST_POLICY, roundBackoff: { initialInterval: '1h', maximumInterval: '1h' } });
    await eventually('the round waiting its backoff', async () =>
      (await recoveries.report(batchId)).phase === 'backing_off' ? true : undefined,
    );
    await recoveries.handle(batchId).terminate('stuck, said the operator');
    const terminated = await recoveries.handle(batchId).describe();
    const within = await sweepHere();
    await eventually('the hold to pass', () =>
      Date.now() > (terminated.closeTime?.getTime() ?? Infinity) + TEST_HOLD_MS ? true : undefined,
    );

    const past = await sweepHere();

    // Before, redone at once: its stored report cannot show a call out when it was terminated.
    expect(within.skipped).toEqual([{ batchId, reason: 'held' }]);
    expect(past.started).toEqual([{ batchId, workflowId: recoveryWorkflowId(batchId) }]);
    await recoveries.handle(batchId).terminate('test over');
  });
});

test('a batch whose recovery failed on a revoked key right after a retry call of unknown outcome is started again only once the hold has passed', async () => {
  await withShortHold(async (recoveries, sweepHere) => {
    // The retried session fails again, so the batch still has a failed session for the sweeps to see.
    const batchId = env.simulator.createScriptedBatch({
      count: 3,
      script: { '0': ['fail', 'fail', 'ok'] },
      created_at: minutesAgo(5),
    }).id;
    // The API applies the retry call and the answer is lost; the key is revoked before the recovery reads the batch
    // to reconcile, so the call's outcome stays unknown and the recovery fails as unauthorized.
    env.simulator.faults.add('retry', { type: 'commit_then_drop', times: 1, batchId });
    await recoveries.start({ batchId, ...FAST_POLICY });
    await eventually('the retry call', () => env.simulator.ledger.forBatch(batchId).retries.length > 0 || undefined);
    env.simulator.faults.add('status', { type: 'error', statusCode: 401, batchId });
    const failure = await recoveries.result(batchId).catch((err: unknown) => err);
    expect(((failure as WorkflowFailedError).cause as ApplicationFailure).type).toBe('unauthorized');
    const report = ((failure as WorkflowFailedError).cause as ApplicationFailure).details?.[0] as RecoveryReport;
    expect(report.rounds).toEqual([expect.objectContaining({ reconciled: true, reconcileEffect: 'unknown' })]);
    const failedRun = await recoveries.handle(batchId).describe();
    // The operator fixes the key.
    env.simulator.faults.clear('status');

    const within = await sweepHere();
    await eventually(
      'the hold to pass',
      () => Date.now() > (failedRun.closeTime?.getTime() ?? Infinity) + TEST_HOLD_MS || undefined,
    );
    const past = await sweepHere();

    // Before, the first sweep after the fix started a new recovery at once.
    expect(within.started).toEqual([]);
    expect(within.skipped).toEqual([{ batchId, reason: 'held' }]);
    expect(past.started).toEqual([{ batchId, workflowId: recoveryWorkflowId(batchId) }]);
    expect((await recoveries.result(batchId)).outcome).toBe('recovered');
    expect((await recoveries.handle(batchId).describe()).runId).not.toBe(failedRun.runId);
    // The lost call, and the new recovery's one.
    expect(env.simulator.ledger.forBatch(batchId).retries).toHaveLength(2);
  });
});

test('a batch whose recovery was refused for its input at a start of its own (the Web UI) is recovered by the sweep; one a sweep started is not', async () => {
  const [typedBadly, sweptBadly] = [batchCreated(5, 1), batchCreated(6, 1)];
  // The Web UI's form can send an empty duration; a sweep's own input is checked by its run, so its recovery is
  // refused only by workers of another release, which would refuse it again.
  const refused = async (batchId: string, memo?: Record<string, unknown>) => {
    const handle = await env.client.workflow.start('recoverBatch', {
      taskQueue: env.taskQueue,
      workflowId: recoveryWorkflowId(batchId),
      args: [{ batchId, deadline: '' }],
      ...(memo && { memo }),
    });
    await expect(handle.result()).rejects.toThrow(WorkflowFailedError);
  };
  await refused(typedBadly);
  await refused(sweptBadly, { startedBySweep: 'an-earlier-sweep-run' });

  const result = await sweep({ lookback: '1h', recovery: FAST_POLICY });

  // Before, both were skipped as permanently_failed, by every sweep: the first batch was never recovered.
  expect(ids(result.started)).toEqual([typedBadly]);
  expect(result.skipped).toEqual([{ batchId: sweptBadly, reason: 'permanently_failed' }]);
  expect(await outcomesOf([typedBadly])).toEqual(['recovered']);
});

test('a sweep starts at most maxStarts recoveries, newest batches first, with at most fanOut starts in flight', async () => {
  const newestFirst = [5, 10, 15, 20, 25].map((minutes) => batchCreated(minutes, 1));
  // A worker of this test's own, whose start activity counts the starts in flight: a local activity leaves only
  // its result in the history, so the history cannot tell how many ran at once.
  const taskQueue = uniqueTaskQueue('sweep-fan-out');
  let inFlight = 0;
  let mostInFlight = 0;
  const connection = await connectWorker();
  const workers = await createRecoveryWorkers({
    config: workerConfig(taskQueue, env.simulator.url),
    connection,
    workflows: workflowBundle(),
    replaceActivities: (activities) => ({
      async startBatchRecovery(input) {
        inFlight += 1;
        mostInFlight = Math.max(mostInFlight, inFlight);
        try {
          return await activities.startBatchRecovery(input);
        } finally {
          inFlight -= 1;
        }
      },
    }),
  });
  ownWorkers.push({ workers, connection, running: workers.run() });

  const result = await env.client.workflow.execute<typeof sweepFailedBatches>('sweepFailedBatches', {
    taskQueue,
    workflowId: `sweep-test-${randomUUID()}`,
    args: [{ maxStarts: 3, fanOut: 2, recovery: FAST_POLICY }],
  });

  // The recoveries run on the sweep's task queue, so on this worker.
  expect(await outcomesOf(newestFirst.slice(0, 3))).toEqual(['recovered', 'recovered', 'recovered']);
  expect(ids(result.started)).toEqual(newestFirst.slice(0, 3).sort());
  expect(result.skipped).toEqual(newestFirst.slice(3).map((batchId) => ({ batchId, reason: 'over_limit' })));
  expect(result.counts).toMatchObject({ started: 3, over_limit: 2 });
  expect(mostInFlight).toBe(2);
});

test('a sweep that continues as new carries when the oldest batch it left over maxStarts was created', async () => {
  const failedBatchCreated = (minutes: number) =>
    env.simulator.createScriptedBatch({ count: 3, script: { '0': ['fail', 'ok'] }, created_at: minutesAgo(minutes) });
  const started = failedBatchCreated(1);
  const left = [failedBatchCreated(2), failedBatchCreated(3)];
  // The newest, on the first page: listed by the first run only, still processing.
  const unsettled = env.simulator.createScriptedBatch({ count: 1, created_at: minutesAgo(0.5), hold: true });
  // Older and without failed sessions: read after the continue-as-new, by a run that leaves no batch out.
  for (let minutes = 10; minutes < 50; minutes += 1) batchCreated(minutes, 0);

  const handle = await startSweep({ pageSize: 1, maxStarts: 1, continueAsNewAfterEvents: 50, recovery: FAST_POLICY });
  const result = await handle.result();

  expect((await handle.describe()).runId).not.toBe(handle.firstExecutionRunId);
  expect(result.started).toEqual([{ batchId: started.id, workflowId: recoveryWorkflowId(started.id) }]);
  // Listed on pages read once maxStarts recoveries started: counted, not listed in `skipped`.
  expect(result.skipped).toEqual([]);
  expect(result.counts).toMatchObject({
    scanned: 44,
    started: 1,
    over_limit: 2,
    no_failed_sessions: 40,
    other_status: 1,
  });
  // Before, no result said where the batches left out were: a later sweep's window could leave them behind.
  expect(result.oldestLeftCreatedAt).toBe(new Date(Math.min(...left.map((batch) => batch.createdAt))).toISOString());
  expect(result.oldestUnsettledCreatedAt).toBe(new Date(unsettled.createdAt).toISOString());
  expect(await outcomesOf([started.id])).toEqual(['recovered']);
});

test('a batch created before the namespace retention is reported, not recovered, nor reached back to; one within is', async () => {
  const { config } = await env.client.workflowService.describeNamespace({ namespace: env.client.options.namespace });
  const retentionHours = Number(config?.workflowExecutionRetentionTtl?.seconds ?? 0) / 3_600;
  // 24 h on the dev server, the suite's usual one.
  expect(retentionHours).toBeGreaterThan(3);
  const recent = batchCreated(5, 1);
  const withinRetention = batchCreated((retentionHours - 2) * 60, 1);
  // A recovery of it may have ended (exhausted, say) and been deleted by retention since: the sweep would find no
  // record of it and send its retries again. The sweep keeps a margin of minutes.
  const pastRetention = batchCreated((retentionHours + 2) * 60, 1);
  // Still processing: the one within the retention is reached back to, the one past it is not, as no sweep would
  // start its recovery.
  const heldFor = (minutes: number) =>
    env.simulator.createScriptedBatch({ count: 1, created_at: minutesAgo(minutes), hold: true });
  const unsettledWithin = heldFor((retentionHours - 1) * 60);
  heldFor((retentionHours + 1) * 60);

  const result = await sweep({ lookback: `${Math.ceil(retentionHours) + 3}h`, recovery: FAST_POLICY });

  // Before, all three were started.
  expect(ids(result.started)).toEqual([recent, withinRetention].sort());
  expect(result.skipped).toEqual([{ batchId: pastRetention, reason: 'past_retention' }]);
  expect(result.counts).toMatchObject({ scanned: 5, started: 2, past_retention: 1, other_status: 2 });
  // Not left out as over_limit or start_failed are: the next sweep of its schedule does not reach back to it.
  expect(result.oldestLeftCreatedAt).toBeNull();
  expect(result.oldestUnsettledCreatedAt).toBe(new Date(unsettledWithin.createdAt).toISOString());
  expect(await outcomesOf([recent, withinRetention])).toEqual(['recovered', 'recovered']);
  await expect(env.recoveries.handle(pastRetention).describe()).rejects.toBeInstanceOf(WorkflowNotFoundError);
  expect(env.simulator.ledger.forBatch(pastRetention).retries).toEqual([]);
});

test('a batch listed without its count of failed sessions is handed to a recovery, which reads the batch', async () => {
  const failed = batchCreated(5, 1);
  const clean = batchCreated(10, 0);
  // The contract requires no field of a listed batch. One batch a page, so that the fault takes it from each.
  env.simulator.faults.add('list', { type: 'omit_field', field: 'data.batches.0.failed_requests' });

  const result = await sweep({ lookback: '1h', pageSize: 1, recovery: FAST_POLICY });

  // Before, both were counted as having no failed session, and the failed one was never recovered.
  expect(ids(result.started)).toEqual([failed, clean].sort());
  expect(result.counts).toMatchObject({ scanned: 2, started: 2, no_failed_sessions: 0 });
  expect(await outcomesOf([failed, clean])).toEqual(['recovered', 'clean']);
  expect(env.simulator.ledger.forBatch(clean).retries).toEqual([]);
});

test('invalid sweep input ends the sweep at once with a non-retryable error naming each field', async () => {
  const failure = await env.client.workflow
    .execute('sweepFailedBatches', {
      taskQueue: env.taskQueue,
      workflowId: `sweep-invalid-${randomUUID()}`,
      args: [
        {
          lookback: 'a while',
          statuses: ['pending'],
          pageSize: 500,
          fanOut: 0,
          recovery: { maxRounds: 0, maxRound: 2 },
        },
      ],
    })
    .catch((err: unknown) => err);

  expect(failure).toBeInstanceOf(WorkflowFailedError);
  const cause = (failure as WorkflowFailedError).cause as { type?: string; message: string; nonRetryable?: boolean };
  expect(cause.type).toBe('InvalidSweepInput');
  expect(cause.nonRetryable).toBe(true);
  expect(cause.message).toMatch(/lookback: expected a duration/);
  expect(cause.message).toMatch(/statuses\.0: /);
  expect(cause.message).toMatch(/pageSize: /);
  expect(cause.message).toMatch(/fanOut: /);
  expect(cause.message).toMatch(/recovery\.maxRounds: /);
  expect(cause.message).toMatch(/recovery\.maxRound: unknown field/);
  expect(env.simulator.ledger.all().calls).toEqual([]);
});

// A run continued as new gets the input the sweep began with; a release that tightened a bound since refuses it.
test('a continued run whose input this release refuses fails with the report the runs before carried', async () => {
  const window = { createdAfter: minutesAgo(60), createdBefore: minutesAgo(0) };
  const carried: CarriedSweep = {
    window,
    nextPage: 3,
    result: {
      started: [{ batchId: randomUUID(), workflowId: 'recover-batch-earlier' }],
      skipped: [{ batchId: randomUUID(), reason: 'over_limit' }],
      counts: { ...newSweepResult(window, ['failed'], 4).counts, started: 1, over_limit: 3 },
      oldestLeftCreatedAt: minutesAgo(50),
    },
  };
  const failure = await env.client.workflow
    .execute<typeof sweepFailedBatches>('sweepFailedBatches', {
      taskQueue: env.taskQueue,
      workflowId: `sweep-refused-continued-${randomUUID()}`,
      args: [{ lookback: '1h', pageSize: 500, statuses: ['failed'] }, carried],
    })
    .catch((err: unknown) => err);

  expect(failure).toBeInstanceOf(WorkflowFailedError);
  const cause = (failure as WorkflowFailedError).cause as ApplicationFailure;
  // Before: InvalidSweepInput with no details, so the runs' report and the batches they left were lost.
  expect(cause.type).toBe('SweepFailed');
  expect(cause.nonRetryable).toBe(true);
  const report = cause.details?.[0] as SweepResult;
  expect(report.failure).toEqual({
    type: 'InvalidSweepInput',
    message: expect.stringMatching(/pageSize: /) as unknown,
  });
  expect(report).toMatchObject({
    window: carried.window,
    statuses: ['failed'],
    started: carried.result.started,
    skipped: carried.result.skipped,
    oldestLeftCreatedAt: carried.result.oldestLeftCreatedAt,
    counts: { scanned: 4, started: 1, over_limit: 3 },
  });
  expect(env.simulator.ledger.all().calls).toEqual([]);
});

// The Web UI's start form takes a second argument: what one run of a sweep hands the next, typed by hand.
test('a carried state typed by hand that a run cannot read fails the sweep at once, naming each field', async () => {
  const startWith = (carried: unknown) =>
    env.client.workflow
      .execute('sweepFailedBatches', {
        taskQueue: env.taskQueue,
        workflowId: `sweep-carried-typed-${randomUUID()}`,
        args: [{ lookback: '1h' }, carried],
      })
      .catch((err: unknown) => err);
  const window = { createdAfter: minutesAgo(60), createdBefore: minutesAgo(0) };

  // Before: every workflow task threw a TypeError on the missing result, and the sweep stayed running.
  const withoutResult = await startWith({ window, nextPage: 2 });
  const garbled = await startWith({
    window: { createdAfter: 'yesterday' },
    nextPage: 0,
    result: { started: 'none', skipped: [], counts: { scanned: -1, retried: 2 }, reachedBack: { cut: 'no' } },
  });

  const causeOf = (failure: unknown) => {
    expect(failure).toBeInstanceOf(WorkflowFailedError);
    return (failure as WorkflowFailedError).cause as ApplicationFailure;
  };
  expect(causeOf(withoutResult)).toMatchObject({ type: 'InvalidSweepInput', nonRetryable: true });
  expect(causeOf(withoutResult).message).toBe(
    'Invalid carried state (the second argument): carried.result: expected an object: the result so far',
  );
  const problems = causeOf(garbled).message;
  expect(problems).toMatch(/carried\.window: expected an object with createdAfter and createdBefore, dates/);
  expect(problems).toMatch(/carried\.nextPage: expected an integer of 1 or more/);
  expect(problems).toMatch(/carried\.result\.started: expected a list of at most 100 objects/);
  expect(problems).toMatch(/carried\.result\.counts: expected an object of counts of 0 or more/);
  expect(problems).toMatch(/carried\.result\.reachedBack: expected null or an object/);
  expect(problems).not.toMatch(/skipped/);
  // A skip of a reason no count holds: before, it reached the result as given.
  const unknownReason = await startWith({
    window,
    nextPage: 2,
    result: { started: [], skipped: [{ batchId: randomUUID(), reason: 'retried_twice' }], counts: {} },
  });
  expect(causeOf(unknownReason).message).toMatch(/carried\.result\.skipped: expected reasons each one of/);
  expect(env.simulator.ledger.all().calls).toEqual([]);
});

test('left-out sweep input takes the defaults', () => {
  const policy = parseSweepInput({});
  expect(policy).toMatchObject({
    lookback: 24 * 3_600_000,
    statuses: ['failed', 'completed'],
    pageSize: 100,
    maxStarts: 200,
    fanOut: 10,
  });
  expect(policy.recovery).toMatchObject({ maxRounds: 3, maxRetries: 1 });
  expect(() => parseSweepInput({ lookback: '0s' })).toThrow(/lookback: must be at least 1m/);
});

test('a sweep whose listing fails for good ends with its report in the failure', async () => {
  batchCreated(5, 1);
  env.simulator.faults.add('list', { type: 'error', statusCode: 401, message: 'key revoked, token=abc123secret' });
  const failure = await sweep({ lookback: '1h' }).catch((err: unknown) => err);

  expect(failure).toBeInstanceOf(WorkflowFailedError);
  const cause = (failure as WorkflowFailedError).cause as ApplicationFailure;
  expect(cause).toBeInstanceOf(ApplicationFailure);
  expect(cause.type).toBe('SweepFailed');
  expect(cause.nonRetryable).toBe(true);
  const report = cause.details?.[0] as SweepResult;
  expect(report.failure).toEqual({
    type: 'unauthorized',
    message: expect.stringMatching(
      /^Anchor API refused the API key \(HTTP 401\) on GET \/v1\/batch-sessions: key revoked, token=\[redacted\]$/,
    ) as unknown,
  });
  expect(report.counts).toMatchObject({ scanned: 0, started: 0 });
  expect(JSON.stringify(failure)).not.toContain('abc123secret');
  // One listing call: a refused key is not retried.
  expect(
    env.simulator.ledger.all().calls.filter((call) => call.endpoint === ANCHOR_ENDPOINTS.listBatches),
  ).toHaveLength(1);
});

test('a scheduled sweep that cannot find its last completed sweep sweeps its lookback, then fails saying so', async () => {
  const batchId = batchCreated(5, 1);
  // Visibility down, as the lookup meets it: its own worker, so the rest of the suite looks up as usual.
  const taskQueue = uniqueTaskQueue('sweep-lookup-fails');
  const connection = await connectWorker();
  const workers = await createRecoveryWorkers({
    config: workerConfig(taskQueue, env.simulator.url),
    connection,
    workflows: workflowBundle(),
    replaceActivities: () => ({
      findLastCompletedSweep: () =>
        Promise.reject(ApplicationFailure.nonRetryable('visibility is down', 'Unavailable')),
    }),
  });
  ownWorkers.push({ workers, connection, running: workers.run() });
  const schedule = await env.client.schedule.create({
    scheduleId: `sweep-test-${randomUUID()}`,
    spec: { intervals: [{ every: '1h' }] },
    action: {
      type: 'startWorkflow',
      workflowType: 'sweepFailedBatches',
      taskQueue,
      workflowId: `sweep-lookup-fails-${randomUUID()}`,
      args: [{ lookback: '1h', recovery: FAST_POLICY }],
    },
    state: { paused: true },
  });
  try {
    await schedule.trigger();
    const sweepId = await eventually('the triggered sweep', async () => {
      const { recentActions } = (await schedule.describe()).info;
      return recentActions[0]?.action.workflow.workflowId;
    });
    const failure = await env.client.workflow
      .getHandle(sweepId)
      .result()
      .catch((err: unknown) => err);

    // Before, the sweep failed at the lookup and started nothing.
    expect(failure).toBeInstanceOf(WorkflowFailedError);
    const report = ((failure as WorkflowFailedError).cause as ApplicationFailure).details?.[0] as SweepResult;
    expect(report.started).toEqual([{ batchId, workflowId: recoveryWorkflowId(batchId) }]);
    expect(report.reachedBack).toBeNull();
    expect(report.failure).toEqual({
      type: 'last_sweep_unknown',
      message: expect.stringMatching(/^could not find .*\(visibility is down\): swept the lookback alone/) as unknown,
    });
    expect(await outcomesOf([batchId])).toEqual(['recovered']);
  } finally {
    await schedule.delete();
  }
});

test('a listing that fails mid-way resumes from the last page it read', async () => {
  const failed = [5, 10, 15, 20, 25, 30].map((minutes) => batchCreated(minutes, 1));
  // The third list call fails once: a page after the first, read on its own task, retried on its own.
  env.simulator.faults.add('list', { type: 'error', statusCode: 503, times: 1, after: 2 });
  const handle = await startSweep({ lookback: '1h', pageSize: 1, recovery: FAST_POLICY });
  const listPages = () =>
    env.simulator.ledger
      .all()
      .calls.filter((call) => call.endpoint === ANCHOR_ENDPOINTS.listBatches)
      .map((call) => Number(new URL(call.path, env.simulator.url).searchParams.get('page')));
  const result = await handle.result();

  expect(ids(result.started)).toEqual([...failed].sort());
  expect(result.counts).toMatchObject({ scanned: 6, started: 6 });
  // Every page read once, but the one that failed, which the retry read again: not page 1.
  const pages = listPages();
  const repeated = pages.filter((page, index) => pages.indexOf(page) !== index);
  expect(repeated).toHaveLength(1);
  expect(repeated[0]).toBeGreaterThan(1);
  expect([...new Set(pages)].sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6]);
});

test('a list whose total_pages says it ended before a page that has_next says comes is read on to its end', async () => {
  const failed = [5, 10, 15].map((minutes) => batchCreated(minutes, 1));
  // Page 1 answers has_next with total_pages 1 (a capped or stale count); the later answers are exact.
  env.simulator.faults.add('list', {
    type: 'mistyped_field',
    field: 'data.pagination.total_pages',
    value: 1,
    times: 1,
  });
  const result = await sweep({ lookback: '1h', pageSize: 1, recovery: FAST_POLICY });

  expect(ids(result.started)).toEqual([...failed].sort());
  expect(result.counts).toMatchObject({ scanned: 3, started: 3 });
});

test('a batch a shifted list shows on two pages is started, and counted, once', async () => {
  const failed = [5, 10, 15].map((minutes) => batchCreated(minutes, 1));
  // The second list call shows the newest batch again, as an offset page does after a row came in at the top.
  env.simulator.faults.add('list', {
    type: 'mistyped_field',
    field: 'data.batches.0.batch_id',
    value: failed[0],
    after: 1,
    times: 1,
  });
  // Recoveries that wait an hour before retrying: still running when the repeated batch comes.
  const recovery = { ...FAST_POLICY, roundBackoff: { initialInterval: '1h', maximumInterval: '1h' } };
  const result = await sweep({ lookback: '1h', pageSize: 1, recovery });
  const started = result.started.map((entry) => entry.batchId);
  for (const batchId of started) await env.recoveries.cancel(batchId);
  expect(await outcomesOf(started)).toEqual(started.map(() => 'operator_cancelled'));

  // Each batch started once, and counted once; before, the newest was started and counted twice.
  expect(new Set(started).size).toBe(started.length);
  expect(result.counts.started).toBe(started.length);
  expect(started).toContain(failed[0]);
  // Its repeat is counted as listed again, so the counts add up to the batches scanned; before, it was in none.
  expect(result.counts).toMatchObject({ scanned: 3, listed_again: 1 });
  const { scanned, ...counted } = result.counts;
  expect(Object.values(counted).reduce((sum, count) => sum + count, 0)).toBe(scanned);
});

test('a batch whose recovery an earlier release started under its upper-case id, ended with its outcome, is skipped as ended, not retried again', async () => {
  const batchId = env.simulator.createScriptedBatch({
    count: 2,
    script: { '0': 'always-fail' },
    created_at: minutesAgo(5),
  }).id;
  // Named by the id in upper case, as a release before wave 35 did, and run by a worker of that release's kind: the
  // current workflow refuses to start under that id.
  const taskQueue = uniqueTaskQueue('earlier-release');
  const connection = await connectWorker();
  try {
    const earlier = await Worker.create({
      connection,
      namespace: temporalNamespace(),
      taskQueue,
      workflowsPath: fileURLToPath(new URL('./earlier-release-workflows.ts', import.meta.url)),
    });
    await earlier.runUntil(async () => {
      const upperCase = await env.client.workflow.start('recoverBatch', {
        taskQueue,
        workflowId: recoveryWorkflowId(batchId.toUpperCase()),
        args: [{ batchId, ...FAST_POLICY, maxRounds: 1 }],
      });
      expect(await upperCase.result()).toMatchObject({ outcome: 'exhausted' });
    });
  } finally {
    await connection.close();
  }

  const result = await sweep({ lookback: '1h', recovery: FAST_POLICY });

  // Before, the sweep started recover-batch-<lower-case id>, which sent the batch's retries again.
  expect(result.started).toEqual([]);
  expect(result.skipped).toEqual([{ batchId, reason: 'already_ended' }]);
  await expect(env.client.workflow.getHandle(recoveryWorkflowId(batchId)).describe()).rejects.toBeInstanceOf(
    WorkflowNotFoundError,
  );
  expect(env.retryPosts(batchId)).toEqual([]);
});

test('a batch whose recovery an earlier release started under its upper-case id is skipped as running, not doubled', async () => {
  const batchId = batchCreated(5, 1);
  // As a release before wave 35 named a recovery started with the id typed in upper case (an API that reads UUIDs in
  // either case recovers the batch under it); on a queue no worker polls, so it stays running.
  const upperCase = await env.client.workflow.start('recoverBatch', {
    taskQueue: uniqueTaskQueue('nobody'),
    workflowId: recoveryWorkflowId(batchId.toUpperCase()),
    args: [{ batchId: batchId.toUpperCase() }],
  });
  try {
    const result = await sweep({ lookback: '1h', recovery: FAST_POLICY });

    // Before, the sweep started recover-batch-<lower-case id> beside it: two recoveries sending retries of one batch.
    expect(result.started).toEqual([]);
    expect(result.skipped).toEqual([{ batchId, reason: 'already_running' }]);
    expect(result.counts).toMatchObject({ started: 0, already_running: 1 });
    await expect(env.client.workflow.getHandle(recoveryWorkflowId(batchId)).describe()).rejects.toBeInstanceOf(
      WorkflowNotFoundError,
    );
    expect(env.retryPosts(batchId)).toEqual([]);
  } finally {
    await upperCase.terminate('test over');
  }
});
