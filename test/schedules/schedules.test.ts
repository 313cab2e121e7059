import { randomUUID } from 'node:crypto';
import { ScheduleNotFoundError, ScheduleOverlapPolicy, WorkflowFailedError } from '@temporalio/client';
import { Command } from 'commander';
import { formatSweepSchedule, registerScheduleCommands } from '../../client/commands/schedule.js';
import {
  deleteSweepSchedule,
  describeSweepSchedule,
  SweepNotStartedError,
  SweepScheduleNotFoundError,
  SweepStartUnconfirmedError,
  SWEEP_RUN_TIMEOUT_MS,
  triggerSweepSchedule,
  upsertSweepSchedule,
} from '../../client/schedules.js';
import { recoveryWorkflowId } from '../../workflows/definitions.js';
import type { SweepFailedBatchesInput, SweepResult } from '../../workflows/sweep-input.js';
import { eventually, FAST_POLICY, startRecoveryEnv, type RecoveryEnv } from '../helpers/recovery-env.js';
import { testCommandContext } from '../helpers/sweep-env.js';
import { killLeftoverChildren, runCli } from '../client/child-process.js';

let env: RecoveryEnv;
const created: string[] = [];

beforeAll(async () => {
  env = await startRecoveryEnv();
  await env.startWorker();
});
afterAll(async () => {
  await killLeftoverChildren();
  for (const scheduleId of created) await deleteSweepSchedule(env.client, scheduleId).catch(() => undefined);
  await env.close();
});
// Each test starts from an empty team: before, a batch a failed test left failed was in the next test's window, and
// failed it too.
beforeEach(() => env.simulator.reset());

function newScheduleId(): string {
  const scheduleId = `sweep-test-${randomUUID()}`;
  created.push(scheduleId);
  return scheduleId;
}

test('upserting twice keeps one schedule and updates it in place', async () => {
  const scheduleId = newScheduleId();
  const first = await upsertSweepSchedule(env.client, {
    scheduleId,
    every: '1h',
    taskQueue: env.taskQueue,
    lookback: '2h',
  });
  await env.client.schedule.getHandle(scheduleId).pause('kept across updates');
  const second = await upsertSweepSchedule(env.client, {
    scheduleId,
    every: '2h',
    taskQueue: env.taskQueue,
    maxStarts: 5,
  });

  expect(first).toEqual({ scheduleId, created: true });
  expect(second).toEqual({ scheduleId, created: false });
  const summary = await describeSweepSchedule(env.client, scheduleId);
  expect(summary).toMatchObject({
    everyMs: 2 * 3_600_000,
    sweep: { maxStarts: 5 },
    taskQueue: env.taskQueue,
    paused: true,
  });
  const { policies } = await env.client.schedule.getHandle(scheduleId).describe();
  expect(policies).toMatchObject({ overlap: 'SKIP', catchupWindow: 2 * 3_600_000 });

  const listed = await eventually('the schedule in the schedule list', async () => {
    const matching = [];
    for await (const schedule of env.client.schedule.list())
      if (schedule.scheduleId === scheduleId) matching.push(schedule);
    return matching.length > 0 ? matching : undefined;
  });
  expect(listed).toHaveLength(1);
});

test('the sweeps a schedule starts have a run timeout, also once an upsert updates a schedule made without one', async () => {
  // Before, none: a sweep whose workflow tasks kept failing (a bad deploy) ran for ever, and the overlap policy
  // (SKIP) skipped every later sweep.
  const created = newScheduleId();
  await upsertSweepSchedule(env.client, { scheduleId: created, every: '1h', taskQueue: env.taskQueue, lookback: '2h' });
  // Paused: left active on its hourly interval on the suite's queue, it would start a sweep of its own if the file's
  // minutes crossed hh:00:00, and that sweep would take the failed batches of the tests after this one.
  await env.client.schedule.getHandle(created).pause('only described in this test');
  const { action } = await env.client.schedule.getHandle(created).describe();
  expect(action).toMatchObject({ workflowType: 'sweepFailedBatches', workflowRunTimeout: SWEEP_RUN_TIMEOUT_MS });
  expect(SWEEP_RUN_TIMEOUT_MS).toBe(6 * 3_600_000);

  // A schedule an earlier release made, without a timeout: the next upsert (compose runs one at every `up`) sets it.
  const earlier = newScheduleId();
  const handle = await env.client.schedule.create({
    scheduleId: earlier,
    spec: { intervals: [{ every: '1h' }] },
    action: { type: 'startWorkflow', workflowType: 'sweepFailedBatches', taskQueue: env.taskQueue, args: [{}] },
    state: { paused: true },
  });
  expect((await handle.describe()).action).not.toHaveProperty('workflowRunTimeout', SWEEP_RUN_TIMEOUT_MS);
  await upsertSweepSchedule(env.client, { scheduleId: earlier, every: '1h', taskQueue: env.taskQueue, lookback: '2h' });
  expect((await handle.describe()).action).toMatchObject({ workflowRunTimeout: SWEEP_RUN_TIMEOUT_MS });
});

test('the schedule commands create, pause, unpause, trigger, describe and delete the sweep schedule', async () => {
  const scheduleId = newScheduleId();
  const batch = env.simulator.createScriptedBatch({
    count: 2,
    script: { '1': ['fail', 'ok'] },
    created_at: new Date(Date.now() - 60_000).toISOString(),
  });
  const { context, printed } = testCommandContext(env.client, env.taskQueue);
  const run = async (...args: string[]) => {
    const program = new Command('batch-recovery').exitOverride();
    registerScheduleCommands(program, context);
    printed.length = 0;
    await program.parseAsync(['schedule', ...args, '--id', scheduleId], { from: 'user' });
    return printed.join('\n');
  };

  expect(await run('upsert', '--every', '1h', '--lookback', '2h', '--max-starts', '5', '--fan-out', '2')).toMatch(
    new RegExp(`Created schedule ${scheduleId}.*\\nWeb UI: http://ui.test/namespaces/.+/schedules/${scheduleId}`),
  );
  expect((await describeSweepSchedule(env.client, scheduleId)).sweep).toEqual({
    lookback: '2h',
    maxStarts: 5,
    fanOut: 2,
  });

  await run('pause', '--note', 'maintenance');
  expect(await describeSweepSchedule(env.client, scheduleId)).toMatchObject({ paused: true, note: 'maintenance' });
  expect(await run('describe')).toContain(`Schedule ${scheduleId}: every 1h, paused (maintenance)`);
  await run('unpause');
  expect((await describeSweepSchedule(env.client, scheduleId)).paused).toBe(false);
  // Paused again for the rest, as a trigger runs all the same. Before, left active on its hourly interval (no offset)
  // through the seconds of the sweep, it started one of its own when they crossed hh:00:00 (about 1 run in 1,000),
  // and recentRuns and runsTaken below counted two sweeps.
  await run('pause', '--note', 'only the triggered sweep in this test');

  // The sweep input has no recovery policy, so the started recovery waits the default 30s before retrying: cancelled below.
  const triggered = await run('trigger');
  const sweepId = (await describeSweepSchedule(env.client, scheduleId)).recentRuns[0]?.workflowId ?? '';
  expect(sweepId.startsWith(scheduleId)).toBe(true);
  expect(triggered).toBe(`Triggered schedule ${scheduleId}: started sweep ${sweepId}`);
  const result = (await env.client.workflow.getHandle(sweepId).result()) as SweepResult;
  expect(result.started).toEqual([{ batchId: batch.id, workflowId: recoveryWorkflowId(batch.id) }]);
  await env.recoveries.cancel(batch.id);
  expect((await env.recoveries.result(batch.id)).outcome).toBe('operator_cancelled');

  const described = JSON.parse(await run('describe', '--json')) as {
    recentRuns: { workflowId: string }[];
    runsTaken: number;
  };
  expect(described.recentRuns.map((recent) => recent.workflowId)).toEqual([sweepId]);
  expect(described.runsTaken).toBe(1);

  expect(await run('delete')).toBe(`Deleted schedule ${scheduleId}`);
  await expect(describeSweepSchedule(env.client, scheduleId)).rejects.toBeInstanceOf(SweepScheduleNotFoundError);
  await expect(run('pause')).rejects.toThrow(`No sweep schedule with id ${scheduleId}`);
  // A teardown run twice: the second finds nothing, which --if-exists takes as done.
  await expect(run('delete')).rejects.toThrow(`No sweep schedule with id ${scheduleId}`);
  expect(await run('delete', '--if-exists')).toBe(`No schedule ${scheduleId} to delete`);
});

test('an invalid schedule is refused before anything is created, naming each field', async () => {
  const scheduleId = newScheduleId();
  await expect(
    upsertSweepSchedule(env.client, { scheduleId, every: '10s', lookback: 'soon', fanOut: 0, recovery: FAST_POLICY }),
  ).rejects.toThrow(/every: must be at least 1m; lookback: expected a duration.*; fanOut: /);
  await expect(describeSweepSchedule(env.client, scheduleId)).rejects.toBeInstanceOf(SweepScheduleNotFoundError);
});

test('a schedule whose lookback is under twice its interval, which can leave batches in no sweep, is refused', async () => {
  const scheduleId = newScheduleId();
  await expect(
    upsertSweepSchedule(env.client, { scheduleId, every: '2d', taskQueue: env.taskQueue, lookback: '3d' }),
  ).rejects.toThrow(/^Invalid sweep schedule: lookback: must be at least twice every \(2d\)/);
  await expect(describeSweepSchedule(env.client, scheduleId)).rejects.toBeInstanceOf(SweepScheduleNotFoundError);
});

test('a trigger while a sweep runs is skipped, as the overlap policy says, not run beside it', async () => {
  const scheduleId = newScheduleId();
  // Every list call hangs: the triggered sweep keeps reading its first page.
  env.simulator.faults.add('list', { type: 'hang' });
  try {
    await upsertSweepSchedule(env.client, { scheduleId, every: '1h', taskQueue: env.taskQueue, lookback: '2h' });
    await env.client.schedule.getHandle(scheduleId).pause('only triggered sweeps in this test');
    const { workflowId } = await triggerSweepSchedule(env.client, scheduleId);
    expect(workflowId.startsWith(`${scheduleId}-`)).toBe(true);
    await eventually('the first sweep to run', async () =>
      (await describeSweepSchedule(env.client, scheduleId)).runningSweeps.length === 1 ? true : undefined,
    );

    // Said to the caller, who was told "Triggered" before, and then that it was skipped only if it was.
    await expect(triggerSweepSchedule(env.client, scheduleId)).rejects.toThrow(
      new SweepNotStartedError(scheduleId, { skippedFor: [workflowId] }).message,
    );
    expect(new SweepNotStartedError(scheduleId, { skippedFor: [workflowId] }).message).toBe(
      `Schedule ${scheduleId} started no sweep: it skipped the trigger, as a sweep was still running (overlap ` +
        `policy SKIP): ${workflowId}; \`schedule describe\` counts it under skipped`,
    );
    const summary = await describeSweepSchedule(env.client, scheduleId);
    expect(summary).toMatchObject({ runsTaken: 1, runsSkippedForOverlap: 1, runningSweeps: [workflowId] });
    await env.client.workflow.getHandle(workflowId).terminate('test finished');
  } finally {
    env.simulator.faults.clear('list');
  }
});

test('a trigger in the second of the last start names the sweep it started, never one that did not start', async () => {
  const { scheduleId, handle } = await pausedUnpolledSchedule();
  const { context, printed } = testCommandContext(env.client, env.taskQueue);
  const program = new Command('batch-recovery').exitOverride();
  registerScheduleCommands(program, context);
  // Early in a second, so that both triggers fall in it: a schedule starts one workflow a second, and the server
  // drops the second start (temporalio/temporal#3614). Before, the CLI said "Triggered" all the same.
  await eventually('the start of a second', () => (Date.now() % 1_000 < 100 ? true : undefined));
  // ALLOW_ALL: the schedule does not count the first sweep as running, so the overlap policy does not skip the second,
  // as when the first ended within the second.
  await handle.trigger(ScheduleOverlapPolicy.ALLOW_ALL);
  await eventually('the first sweep to start', async () =>
    (await describeSweepSchedule(env.client, scheduleId)).runsTaken === 1 ? true : undefined,
  );
  await program.parseAsync(['schedule', 'trigger', '--id', scheduleId], { from: 'user' });

  const { recentRuns, runsTaken } = await describeSweepSchedule(env.client, scheduleId);
  const sweepIds = recentRuns.map((run) => run.workflowId);
  expect(runsTaken).toBe(2);
  expect(new Set(sweepIds).size).toBe(2);
  expect(printed).toEqual([`Triggered schedule ${scheduleId}: started sweep ${sweepIds[1]}`]);
  for (const sweepId of sweepIds) await env.client.workflow.getHandle(sweepId).terminate('test finished');
});

test('of two triggers at once, only the one that started the sweep names it, the other claims no start', async () => {
  const { scheduleId, handle } = await pausedUnpolledSchedule();
  // A start early in a second, which the schedule does not count as running (ALLOW_ALL): both triggers below read it
  // and wait for the next second, so that each reads the schedule before the other's trigger reaches it.
  await eventually('the start of a second', () => (Date.now() % 1_000 < 100 ? true : undefined));
  await handle.trigger(ScheduleOverlapPolicy.ALLOW_ALL);
  const earlierSweepId = await eventually(
    'the earlier sweep to start',
    async () => (await describeSweepSchedule(env.client, scheduleId)).recentRuns[0]?.workflowId,
  );

  // Two operators, or a script run twice. Before, each took the run missing from its first read for its own: both
  // said "started sweep" of the one sweep, one of them of a trigger the schedule had skipped.
  const outcomes = await Promise.allSettled([
    triggerSweepSchedule(env.client, scheduleId),
    triggerSweepSchedule(env.client, scheduleId),
  ]);

  const summary = await describeSweepSchedule(env.client, scheduleId);
  const sweepIds = summary.recentRuns.map((run) => run.workflowId);
  try {
    expect(summary.runsTaken).toBe(2);
    expect(sweepIds).toHaveLength(2);
    const sweepId = sweepIds[1];
    const started = outcomes.filter((outcome) => outcome.status === 'fulfilled').map((outcome) => outcome.value);
    const refused = outcomes
      .filter((outcome) => outcome.status === 'rejected')
      .map((outcome): unknown => outcome.reason);
    expect(started).toEqual([{ workflowId: sweepId }]);
    expect(refused).toHaveLength(1);
    // Both triggers fall in one second: the schedule skips the later one (overlap policy SKIP), or drops it, as its
    // sweep would have the same id; it counts a skip only. Dropped, the other's sweep started under another time.
    const skipped = summary.runsSkippedForOverlap;
    expect(skipped).toBeLessThanOrEqual(1);
    expect(refused[0]).toEqual(
      skipped === 1
        ? new SweepNotStartedError(scheduleId, { skippedFor: [sweepId!] })
        : new SweepStartUnconfirmedError(scheduleId, [sweepId!]),
    );
    expect(refused[0]).toBeInstanceOf(skipped === 1 ? SweepNotStartedError : SweepStartUnconfirmedError);
  } finally {
    for (const sweepId of new Set([earlierSweepId, ...sweepIds]))
      await env.client.workflow.getHandle(sweepId).terminate('test finished');
  }
});

test('a trigger names no sweep that another trigger, sending a time in the same millisecond, started', async () => {
  const { scheduleId } = await pausedUnpolledSchedule();
  // Another trigger (a second CLI at once) reaches the schedule just before this one's, with a time in the same
  // second and millisecond, as one pair of triggers in 999 drew when the time sent was drawn to the millisecond: the
  // schedule starts the other's sweep, and skips or drops this one (the same second). Before, this trigger named that
  // sweep as its own. The other trigger is sent to the server like any, only timed by this seam.
  const service = env.client.workflowService;
  let sentMs: number | undefined;
  let sentNanos: number | undefined;
  let otherSentNanos: number | undefined;
  const client = Object.create(env.client, {
    workflowService: {
      value: {
        ...service,
        patchSchedule: async (request: Parameters<typeof service.patchSchedule>[0]) => {
          const trigger = request.patch?.triggerImmediately;
          const time = trigger?.scheduledTime;
          if (trigger && time && sentMs === undefined) {
            const nanos = time.nanos ?? 0;
            sentNanos = nanos;
            const withinMs = nanos % 1_000_000;
            sentMs = Number(time.seconds?.toString()) * 1_000 + (nanos - withinMs) / 1_000_000;
            // The same millisecond, not the same nanosecond.
            const otherNanos = nanos - withinMs + ((withinMs + 1) % 1_000_000);
            otherSentNanos = otherNanos;
            await service.patchSchedule({
              ...request,
              requestId: randomUUID(),
              patch: { triggerImmediately: { ...trigger, scheduledTime: { ...time, nanos: otherNanos } } },
            });
          }
          return service.patchSchedule(request);
        },
      },
    },
  }) as typeof env.client;

  const outcome = await triggerSweepSchedule(client, scheduleId).catch((err: unknown) => err);

  const summary = await describeSweepSchedule(env.client, scheduleId);
  const sweepIds = summary.recentRuns.map((run) => run.workflowId);
  // To the nanosecond, which of the two triggers the schedule took: the server does not promise the one sent first.
  const { info } = await service.describeSchedule({ namespace: env.client.options.namespace, scheduleId });
  const takenNanos = info?.recentActions?.[0]?.scheduleTime?.nanos;
  try {
    expect(summary.runsTaken).toBe(1);
    expect(summary.recentRuns[0]?.scheduledAt.getTime()).toBe(sentMs);
    const sweepId = sweepIds[0]!;
    if (takenNanos === sentNanos) {
      expect(outcome).toEqual({ workflowId: sweepId });
    } else {
      // The other trigger's sweep, in the same millisecond: the case that named it before.
      expect(takenNanos).toBe(otherSentNanos);
      expect(outcome).toEqual(
        summary.runsSkippedForOverlap === 1
          ? new SweepNotStartedError(scheduleId, { skippedFor: [sweepId] })
          : new SweepStartUnconfirmedError(scheduleId, [sweepId]),
      );
      expect(outcome).toBeInstanceOf(
        summary.runsSkippedForOverlap === 1 ? SweepNotStartedError : SweepStartUnconfirmedError,
      );
    }
  } finally {
    for (const sweepId of sweepIds) await env.client.workflow.getHandle(sweepId).terminate('test finished');
  }
});

test('a trigger the schedule starts no sweep for says so on stderr and exits 11', async () => {
  const scheduleId = newScheduleId();
  await upsertSweepSchedule(env.client, { scheduleId, every: '1h', taskQueue: env.taskQueue, lookback: '2h' });
  await env.client.schedule.getHandle(scheduleId).pause('only triggered sweeps in this test');
  // Workflows under the ids the schedule gives its sweeps in the coming minute: every start it makes fails, as the
  // start of a trigger within the second of its last one does.
  const firstSecond = Math.floor(Date.now() / 1_000);
  const occupying = await Promise.all(
    Array.from({ length: 60 }, (_, i) =>
      env.client.workflow.start('occupiesTheSweepId', {
        taskQueue: `${env.taskQueue}-unpolled`,
        workflowId: `${scheduleId}-${new Date((firstSecond + i) * 1_000).toISOString().replace('.000Z', 'Z')}`,
      }),
    ),
  );
  try {
    const triggered = await runCli(['--task-queue', env.taskQueue, 'schedule', 'trigger', '--id', scheduleId]);

    // Before: "Triggered a sweep of schedule …", exit 0.
    expect(triggered).toEqual({
      code: 11,
      stdout: '',
      stderr:
        `error: Schedule ${scheduleId} started no sweep within 5s of the trigger; \`schedule describe\` shows ` +
        'whether one has started since\n',
    });
    expect((await describeSweepSchedule(env.client, scheduleId)).runsTaken).toBe(0);
  } finally {
    await Promise.all(occupying.map((handle) => handle.terminate('test finished')));
  }
});

test('a schedule whose spec was edited outside the CLI is described as such, not as every 0ms', async () => {
  const scheduleId = newScheduleId();
  await upsertSweepSchedule(env.client, { scheduleId, every: '1h', taskQueue: env.taskQueue, lookback: '2h' });
  const handle = env.client.schedule.getHandle(scheduleId);
  try {
    // As the Web UI can set one: a calendar, no interval.
    await handle.update((previous) => ({ ...previous, spec: { calendars: [{ hour: 3, minute: 0 }] } }));
    const summary = await describeSweepSchedule(env.client, scheduleId);

    expect(summary.everyMs).toBeNull();
    expect(formatSweepSchedule(summary)).toMatch(
      new RegExp(`^Schedule ${scheduleId}: on a spec set outside this CLI \\(see the Web UI\\), active$`, 'm'),
    );
  } finally {
    await handle.delete();
  }
});

test('the schedule commands refuse a schedule that does not run the sweep, leaving it as it was', async () => {
  const scheduleId = newScheduleId();
  // Another team's schedule in the namespace, whose id an operator typed by mistake.
  const action = {
    type: 'startWorkflow' as const,
    workflowType: 'nightlyReport',
    taskQueue: 'reports',
    workflowId: scheduleId,
    args: [{ format: 'pdf' }],
  };
  await env.client.schedule.create({
    scheduleId,
    spec: { intervals: [{ every: '1d' }] },
    action,
    state: { paused: true, note: 'theirs' },
  });
  const { context } = testCommandContext(env.client, env.taskQueue);
  const run = async (...args: string[]) => {
    const program = new Command('batch-recovery').exitOverride();
    registerScheduleCommands(program, context);
    await program.parseAsync(['schedule', ...args, '--id', scheduleId], { from: 'user' });
  };
  const refusal = `Schedule ${scheduleId} does not run the sweep: it starts nightlyReport workflows`;

  // Before, upsert replaced its action and spec with a sweep's, and delete deleted it.
  const commands = [['upsert', '--every', '1h'], ['describe'], ['pause'], ['unpause'], ['trigger'], ['delete']];
  for (const command of [...commands, ['delete', '--if-exists']])
    await expect(run(...command)).rejects.toThrow(refusal);
  const after = await env.client.schedule.getHandle(scheduleId).describe();
  expect(after.action).toMatchObject({
    workflowType: 'nightlyReport',
    taskQueue: 'reports',
    args: [{ format: 'pdf' }],
  });
  expect(after.spec.intervals).toMatchObject([{ every: 86_400_000 }]);
  expect(after.state).toMatchObject({ paused: true, note: 'theirs' });
  expect(after.info.numActionsTaken).toBe(0);
});

test('a schedule whose sweep input this release refuses is described as such, and not triggered', async () => {
  const scheduleId = newScheduleId();
  await upsertSweepSchedule(env.client, { scheduleId, every: '1h', taskQueue: env.taskQueue, lookback: '2h' });
  const handle = env.client.schedule.getHandle(scheduleId);
  await handle.pause('only triggered sweeps in this test');
  // As typed in the Web UI's schedule editor, or left by a release that took other fields: every sweep it starts
  // fails at once with InvalidSweepInput.
  await handle.update((previous) => ({
    ...previous,
    action: { ...previous.action, args: [{ lookback: '2h', maxStart: 5, fanOut: 500 }] },
  }));

  const summary = await describeSweepSchedule(env.client, scheduleId);
  expect(summary.inputProblems).toEqual(['fanOut: Too big: expected number to be <=50', 'maxStart: unknown field']);
  expect(formatSweepSchedule(summary)).toContain(
    'Sweep input refused by this release, so every sweep fails at once (InvalidSweepInput): fanOut: Too big: ' +
      'expected number to be <=50; maxStart: unknown field. `schedule upsert` replaces it',
  );
  // Before, describe printed the input as if valid, and trigger started a sweep that failed at once.
  await expect(triggerSweepSchedule(env.client, scheduleId)).rejects.toThrow(
    `Invalid sweep input of schedule ${scheduleId} (every sweep it starts fails at once; \`schedule upsert\` ` +
      'replaces it): fanOut: Too big: expected number to be <=50; maxStart: unknown field',
  );
  expect((await handle.describe()).info.numActionsTaken).toBe(0);
});

test('a schedule id that is empty, padded with white space, has control characters or is too long is refused', async () => {
  const { context } = testCommandContext(env.client, env.taskQueue);
  const run = async (...args: string[]) => {
    const program = new Command('batch-recovery').exitOverride();
    registerScheduleCommands(program, context);
    await program.parseAsync(['schedule', ...args], { from: 'user' });
  };
  const padded = ` ${newScheduleId()}`;
  // Before, a padded id (a shell variable with a space, say) made a second schedule beside the sweep's: two sweeps
  // on two schedules, which the overlap policy does not keep apart. An empty one failed with
  // 'Missing ScheduleOptions.scheduleId', a 2,000-character one with the server's 'Failed to create schedule'.
  const refused: [string, string][] = [
    ['', 'id: must not be empty'],
    [padded, `id: must not begin or end with white space, got "${padded}"`],
    ['sweep\nnightly', 'id: must not hold control characters'],
    ['a'.repeat(2_000), 'id: must be at most 200 characters, got 2000'],
  ];
  for (const [scheduleId, problem] of refused) {
    await expect(
      upsertSweepSchedule(env.client, { scheduleId, every: '1h', taskQueue: env.taskQueue }),
    ).rejects.toThrow(`Invalid sweep schedule: ${problem}`);
    for (const command of ['upsert', 'describe', 'pause', 'unpause', 'trigger', 'delete']) {
      const flags = command === 'upsert' ? ['--every', '1h'] : [];
      // Refused as the flag is read, before connecting.
      await expect(run(command, ...flags, '--id', scheduleId)).rejects.toThrow(`is invalid. ${problem}`);
    }
  }
  await expect(env.client.schedule.getHandle(padded).describe()).rejects.toBeInstanceOf(ScheduleNotFoundError);
});

test('a task queue that is empty, padded with white space, has control characters or is too long is refused', async () => {
  const padded = `${env.taskQueue} `;
  // Before, the padded one and the one with a tab made schedules whose sweeps waited for ever on a queue no worker
  // polls (the overlap policy then skipping every later sweep); an empty one failed with the SDK's 'Missing
  // ScheduleOptions.action.taskQueue', a 2,000-character one with the server's 'Failed to create schedule'.
  const refused: [string, string][] = [
    ['', 'taskQueue: must not be empty'],
    [padded, `taskQueue: must not begin or end with white space, got "${padded}"`],
    ['sweeps\tnightly', 'taskQueue: must not hold control characters'],
    ['q'.repeat(2_000), 'taskQueue: must be at most 1000 characters, got 2000'],
  ];
  for (const [taskQueue, problem] of refused) {
    const scheduleId = newScheduleId();
    await expect(upsertSweepSchedule(env.client, { scheduleId, every: '1h', taskQueue })).rejects.toThrow(
      `Invalid sweep schedule: ${problem}`,
    );
    await expect(describeSweepSchedule(env.client, scheduleId)).rejects.toBeInstanceOf(SweepScheduleNotFoundError);
  }
});

/**
 * A paused schedule of sweeps with this input, each started by the returned trigger, which hands back the sweep it
 * started. Not through upsert: the shortest lookback, a minute, is under twice any interval it takes.
 */
/**
 * A paused sweep schedule of a queue no worker polls, for tests of triggers alone: its sweeps stay running, and start
 * no recovery of another test's batches.
 */
async function pausedUnpolledSchedule() {
  const scheduleId = newScheduleId();
  await upsertSweepSchedule(env.client, {
    scheduleId,
    every: '1h',
    taskQueue: `${env.taskQueue}-unpolled`,
    lookback: '2h',
  });
  const handle = env.client.schedule.getHandle(scheduleId);
  await handle.pause('only triggered sweeps in this test');
  return { scheduleId, handle };
}

async function triggeredSweepSchedule(scheduleId: string, sweepInput: SweepFailedBatchesInput) {
  await env.client.schedule.create({
    scheduleId,
    spec: { intervals: [{ every: '1h' }] },
    action: {
      type: 'startWorkflow',
      workflowType: 'sweepFailedBatches',
      taskQueue: env.taskQueue,
      workflowId: scheduleId,
      args: [sweepInput],
    },
    policies: { overlap: ScheduleOverlapPolicy.SKIP },
    state: { paused: true },
  });
  const seen = new Set<string>();
  let lastScheduledAt = 0;
  return async () => {
    // A schedule starts one workflow a second: a second trigger within it starts none (temporalio/temporal#3614).
    // The second is the one the server dated the last run by, not the one this trigger was sent in: before, a trigger
    // sent in a second's last milliseconds was dated the next one, and a sweep that ended within it left the next
    // trigger in the same second, which started nothing.
    const nextSecond = (Math.floor(lastScheduledAt / 1_000) + 1) * 1_000;
    await eventually('the next second', () => Date.now() >= nextSecond || undefined);
    await env.client.schedule.getHandle(scheduleId).trigger();
    const run = await eventually('the triggered sweep', async () => {
      const { recentRuns } = await describeSweepSchedule(env.client, scheduleId);
      return recentRuns.find((recent) => !seen.has(recent.workflowId));
    });
    seen.add(run.workflowId);
    lastScheduledAt = run.scheduledAt.getTime();
    return env.client.workflow.getHandle(run.workflowId);
  };
}

test('a scheduled sweep after failed ones scans back to where the last completed sweep of its schedule ended', async () => {
  // A quote in the id: the lookup's visibility query takes it as typed.
  const scheduleId = `${newScheduleId()}'s`;
  created.push(scheduleId);
  const triggerSweep = await triggeredSweepSchedule(scheduleId, { lookback: '1m', recovery: FAST_POLICY });

  const firstSweep = await triggerSweep();
  const first = (await firstSweep.result()) as SweepResult;
  expect(first.reachedBack).toBeNull();
  const firstEnd = Date.parse(first.window.createdBefore);
  expect(firstEnd - Date.parse(first.window.createdAfter)).toBe(60_000);
  // Created as the first sweep's window ended, at its very millisecond, which the list's bounds both leave out: in no
  // window but a later sweep's.
  const batch = env.simulator.createScriptedBatch({
    count: 2,
    script: { '1': ['fail', 'ok'] },
    created_at: new Date(firstEnd).toISOString(),
  });
  // Dated within the first sweep's window but listed only after that sweep read it, as when the API's clock is behind
  // Temporal's, or its list behind its writes: in the first window, not in its listing.
  const listedLate = env.simulator.createScriptedBatch({
    count: 2,
    script: { '1': ['fail', 'ok'] },
    created_at: new Date(firstEnd - 10_000).toISOString(),
  });
  env.simulator.faults.add('list', { type: 'error', statusCode: 401 });
  try {
    await expect((await triggerSweep()).result()).rejects.toBeInstanceOf(WorkflowFailedError);
  } finally {
    env.simulator.faults.clear('list');
  }
  // Time has to pass here: the batch must be older than the shortest lookback, a minute, when the next sweep starts.
  await eventually(
    'the batch to be older than the lookback',
    () => Date.now() > firstEnd + 62_000 || undefined,
    90_000,
  );

  const result = (await (await triggerSweep()).result()) as SweepResult;

  // Before, its window was its lookback alone: the batch was in none, and no sweep recovered or reported it. Then a
  // window that started where the first one ended left out a batch created at that millisecond, and then one that
  // started a millisecond before it left out the batch listed late. It starts 30 s before.
  const overlapBeforeFirstEnd = new Date(firstEnd - 30_000).toISOString();
  expect(result.window.createdAfter).toBe(overlapBeforeFirstEnd);
  expect(result.reachedBack).toEqual({
    workflowId: firstSweep.workflowId,
    windowEnd: overlapBeforeFirstEnd,
    cut: false,
  });
  expect(result.started).toEqual(
    expect.arrayContaining([
      { batchId: batch.id, workflowId: recoveryWorkflowId(batch.id) },
      { batchId: listedLate.id, workflowId: recoveryWorkflowId(listedLate.id) },
    ]),
  );
  expect(result.started).toHaveLength(2);
  expect((await env.recoveries.result(batch.id)).outcome).toBe('recovered');
  expect((await env.recoveries.result(listedLate.id)).outcome).toBe('recovered');
}, 150_000);

test('a scheduled sweep reaches back to the oldest batch the last completed sweep left over its maxStarts', async () => {
  const scheduleId = newScheduleId();
  const triggerSweep = await triggeredSweepSchedule(scheduleId, {
    lookback: '1m',
    maxStarts: 1,
    recovery: FAST_POLICY,
  });
  const failedBatchCreated = (msAgo: number) =>
    env.simulator.createScriptedBatch({
      count: 2,
      script: { '1': ['fail', 'ok'] },
      created_at: new Date(Date.now() - msAgo).toISOString(),
    });
  const older = failedBatchCreated(20_000);
  const newer = failedBatchCreated(10_000);

  const firstSweep = await triggerSweep();
  const first = (await firstSweep.result()) as SweepResult;
  expect(first.started).toEqual([{ batchId: newer.id, workflowId: recoveryWorkflowId(newer.id) }]);
  expect(first.skipped).toEqual([{ batchId: older.id, reason: 'over_limit' }]);
  expect(first.oldestLeftCreatedAt).toBe(new Date(older.createdAt).toISOString());
  expect((await env.recoveries.result(newer.id)).outcome).toBe('recovered');
  // Time has to pass here: the batch left out must be older than the shortest lookback when the next sweep starts.
  const leftAt = older.createdAt;
  await eventually(
    'the batch left out to be older than the lookback',
    () => Date.now() > leftAt + 62_000 || undefined,
    90_000,
  );

  const secondSweep = await triggerSweep();
  const second = (await secondSweep.result()) as SweepResult;

  // Before, the first sweep counted as having covered its whole window: the second scanned its lookback alone, the
  // batch left out was in no window, and no sweep recovered or reported it.
  const overlapBefore = new Date(leftAt - 30_000).toISOString();
  expect(second.window.createdAfter).toBe(overlapBefore);
  expect(second.reachedBack).toEqual({ workflowId: firstSweep.workflowId, windowEnd: overlapBefore, cut: false });
  expect(second.started).toEqual([{ batchId: older.id, workflowId: recoveryWorkflowId(older.id) }]);
  expect(second.skipped).toEqual([]);
  // The batches of the test before this one created in the 30 s the window starts before the batch left out: listed
  // too, and recovered already.
  const earlier = env.simulator.store.list({
    created_after: second.window.createdAfter,
    created_before: new Date(older.createdAt).toISOString(),
    page: 1,
    limit: 100,
  }).batches.length;
  expect(second.counts).toMatchObject({
    scanned: 2 + earlier,
    started: 1,
    no_failed_sessions: 1 + earlier,
    over_limit: 0,
  });
  expect(second.oldestLeftCreatedAt).toBeNull();
  expect((await env.recoveries.result(older.id)).outcome).toBe('recovered');
}, 150_000);

test('a scheduled sweep reaches back to the oldest batch the last completed sweep listed still processing', async () => {
  const scheduleId = newScheduleId();
  const triggerSweep = await triggeredSweepSchedule(scheduleId, { lookback: '1m', recovery: FAST_POLICY });
  // Held: still processing at the first sweep, as a batch of thousands of sessions is for 20 minutes.
  const batch = env.simulator.createScriptedBatch({
    count: 2,
    script: { '1': ['fail', 'ok'] },
    created_at: new Date(Date.now() - 10_000).toISOString(),
    hold: true,
  });
  const createdAt = new Date(batch.createdAt).toISOString();

  const firstSweep = await triggerSweep();
  const first = (await firstSweep.result()) as SweepResult;
  expect(first.reachedBack).toBeNull();
  expect(first.oldestUnsettledCreatedAt).toBe(createdAt);
  expect(first.counts.other_status).toBeGreaterThanOrEqual(1);
  expect([...first.started, ...first.skipped].map((item) => item.batchId)).not.toContain(batch.id);
  expect(batch.release(env.simulator.clock.now())).toBe(2);
  await eventually(
    'the batch to settle failed',
    () => batch.status(env.simulator.clock.now()) === 'failed' || undefined,
  );
  // Time has to pass here: the batch must be older than the shortest lookback when the next sweep starts.
  await eventually(
    'the batch to be older than the lookback',
    () => Date.now() > batch.createdAt + 62_000 || undefined,
    90_000,
  );

  const secondSweep = await triggerSweep();
  const second = (await secondSweep.result()) as SweepResult;

  // Before, the first sweep counted as having covered its whole window: the second scanned its lookback alone, the
  // batch, which settled after it dropped out of every later window, was in none, and no sweep recovered or reported it.
  const overlapBefore = new Date(batch.createdAt - 30_000).toISOString();
  expect(second.window.createdAfter).toBe(overlapBefore);
  expect(second.reachedBack).toEqual({ workflowId: firstSweep.workflowId, windowEnd: overlapBefore, cut: false });
  expect(second.started).toEqual([{ batchId: batch.id, workflowId: recoveryWorkflowId(batch.id) }]);
  expect(second.oldestUnsettledCreatedAt).toBeNull();
  expect((await env.recoveries.result(batch.id)).outcome).toBe('recovered');
}, 150_000);
