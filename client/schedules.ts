import { randomInt, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { status } from '@grpc/grpc-js';
import {
  isGrpcServiceError,
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  type Client,
  type ScheduleDescription,
  type ScheduleHandle,
} from '@temporalio/client';
import { msNumberToTs } from '@temporalio/common/lib/time.js';
import proto from '@temporalio/proto';
import ms from 'ms';
import { DEFAULT_TASK_QUEUE } from '../workflows/definitions.js';
import { checkField } from '../workflows/fields.js';
import { sweepScheduleFields } from '../workflows/input-fields.js';
import { InvalidInputError } from '../workflows/input.js';
import type { sweepFailedBatches } from '../workflows/sweep-failed-batches.js';
import {
  parseSweepInput,
  SWEEP_FAILED_BATCHES_WORKFLOW,
  type SweepFailedBatchesInput,
} from '../workflows/sweep-input.js';

export const DEFAULT_SWEEP_SCHEDULE_ID = 'anchor-batch-sweep';
/** Far below the server's 1,000 for the ids of the sweeps it starts, which append the run's time to it. */
const MAX_SCHEDULE_ID_CHARS = 200;
/** The server's longest task queue name (its limit.maxIDLength). */
const MAX_TASK_QUEUE_CHARS = 1_000;
/**
 * The longest one run of a scheduled sweep may take. A run goes on as new after continueAsNewAfterEvents (10,000
 * events by default: about 1,500 pages, minutes at the call budget; a page that keeps failing gives up within the
 * hour), so a run still going after hours is stuck: a workflow task failing on every attempt after a bad deploy holds
 * it open for ever, and the overlap policy (SKIP) skipped every later sweep meanwhile. A sweep ended so records no
 * result, so the next one reaches back to where the last completed sweep's window ended: no batch is left out, and
 * the recoveries it started run on, as they have no parent.
 */
export const SWEEP_RUN_TIMEOUT_MS = 6 * 3_600_000;

export class SweepScheduleNotFoundError extends Error {
  override name = 'SweepScheduleNotFoundError';
  constructor(readonly scheduleId: string) {
    super(`No sweep schedule with id ${scheduleId}`);
  }
}

/**
 * The schedule exists but starts something other than the sweep: another team's schedule in the namespace, an id
 * typed by mistake. Before, upsert replaced its action, spec and policies with the sweep's, and delete deleted it.
 */
export class NotASweepScheduleError extends Error {
  override name = 'NotASweepScheduleError';
  constructor(
    readonly scheduleId: string,
    readonly runs: string,
  ) {
    super(
      `Schedule ${scheduleId} does not run the sweep: it ${runs}; left as it is (give the sweep schedule's --id, ` +
        `${DEFAULT_SWEEP_SCHEDULE_ID} unless set otherwise)`,
    );
  }
}

/** How often the sweep runs, where, and the sweep input it runs with (what is left out takes the sweep's defaults). */
export interface SweepScheduleOptions extends SweepFailedBatchesInput {
  /** e.g. "15m"; at least a minute. */
  every: string | number;
  scheduleId?: string;
  /** Task queue of the workers that run the sweep and the recoveries it starts. */
  taskQueue?: string;
}

export interface UpsertedSweepSchedule {
  scheduleId: string;
  /** False when an existing schedule was updated. */
  created: boolean;
  /**
   * The task queue an updated schedule ran its sweeps on, set only when the upsert moved them to another: a queue
   * left out of the options is the default one, which may be a queue no worker polls.
   */
  movedFromTaskQueue?: string;
}

/** What an operator wants to know about the sweep schedule, without the SDK's raw response. */
export interface SweepScheduleSummary {
  scheduleId: string;
  /** Null when the spec is not the one interval upsert sets (edited in the Web UI to a calendar or cron, say). */
  everyMs: number | null;
  taskQueue: string;
  sweep: SweepFailedBatchesInput;
  /**
   * What this release's sweep refuses in `sweep` (edited in the Web UI, say, or left by a release that took other
   * fields), naming each field: every sweep the schedule starts fails at once with InvalidSweepInput. Empty when valid.
   */
  inputProblems: string[];
  paused: boolean;
  note: string | null;
  nextRunsAt: Date[];
  recentRuns: { scheduledAt: Date; workflowId: string }[];
  runningSweeps: string[];
  runsTaken: number;
  runsSkippedForOverlap: number;
}

/** upsertSweepSchedule's options once checked, with their defaults. */
export interface CheckedSweepScheduleOptions {
  scheduleId: string;
  everyMs: number;
  taskQueue: string;
  sweep: SweepFailedBatchesInput;
}

/**
 * Checks upsertSweepSchedule's options without a connection (the CLI does before it connects); InvalidInputError
 * naming each field.
 */
export function checkSweepScheduleOptions(options: SweepScheduleOptions): CheckedSweepScheduleOptions {
  const { every, scheduleId = DEFAULT_SWEEP_SCHEDULE_ID, taskQueue = DEFAULT_TASK_QUEUE, ...sweep } = options;
  const { value: everyMs, problems: everyProblems } = checkField(sweepScheduleFields.every, every, 'every');
  const problems = [
    ...scheduleIdProblems(scheduleId),
    // One typed with a space around it or a control character in it was taken: every sweep the schedule started
    // waited for ever for a worker on a queue none polls, and the overlap policy (SKIP) skipped every later sweep. An
    // empty one failed with the SDK's 'Missing ScheduleOptions.action.taskQueue', a very long one with the server's
    // 'Failed to create schedule'.
    ...nameProblems('taskQueue', taskQueue, MAX_TASK_QUEUE_CHARS),
    ...everyProblems,
  ];
  try {
    const { lookback: lookbackMs } = parseSweepInput(sweep);
    // A batch still running at a sweep's start is listed by a later sweep only within its lookback (the window
    // reaches back to the last completed sweep's end, not to its start): one interval of it misses those created
    // just before a sweep.
    if (everyProblems.length === 0 && lookbackMs < 2 * everyMs) {
      problems.push(
        `lookback: must be at least twice every (${every}), or batches created between two sweeps can be in no sweep's window`,
      );
    }
  } catch (err) {
    if (!(err instanceof InvalidInputError)) throw err;
    problems.push(...err.problems);
  }
  if (problems.length > 0) throw new InvalidInputError(problems, 'sweep schedule');
  return { scheduleId, everyMs, taskQueue, sweep };
}

/**
 * Creates the sweep schedule, or replaces its spec and input when it exists (its paused state and note are kept):
 * the options declare the whole sweep, and a setting left out takes its default. Inputs are validated first, naming
 * the field.
 */
export async function upsertSweepSchedule(
  client: Client,
  options: SweepScheduleOptions,
): Promise<UpsertedSweepSchedule> {
  const { scheduleId, everyMs, taskQueue, sweep } = checkSweepScheduleOptions(options);
  const spec = { intervals: [{ every: everyMs }] };
  // The operator's input as typed ("24h", not milliseconds), so the Web UI shows it that way.
  const action = {
    type: 'startWorkflow' as const,
    workflowType: SWEEP_FAILED_BATCHES_WORKFLOW,
    taskQueue,
    // The server appends each run's time, e.g. anchor-batch-sweep-2025-01-01T00:15:00Z.
    workflowId: scheduleId,
    args: [sweep] as Parameters<typeof sweepFailedBatches>,
    workflowRunTimeout: SWEEP_RUN_TIMEOUT_MS,
  };
  const policies = {
    // A sweep still running when the next is due (a slow API, many pages) would only rescan the
    // same window: the one-recovery-per-batch id rule already stops double starts, so a second
    // sweep at once only doubles the list calls. Skip it rather than buffer it: the next
    // interval's sweep covers what the skipped one would have (its window reaches back to the last completed one).
    overlap: ScheduleOverlapPolicy.SKIP,
    // After an outage one sweep covers what was missed, back to where the last completed sweep's window ended (at
    // most 90 days, and within the namespace's retention), so only a run missed within the last interval is made up.
    catchupWindow: everyMs,
  };

  try {
    await client.schedule.create({ scheduleId, spec, action, policies });
    return { scheduleId, created: true };
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
  }
  let previousTaskQueue: string | undefined;
  await onSchedule(client, scheduleId, (handle) =>
    handle.update((previous) => {
      // Checked on the description the update itself is made against.
      requireSweepAction(scheduleId, previous.action);
      previousTaskQueue = previous.action.taskQueue;
      return { spec, action, policies, state: { paused: previous.state.paused, note: previous.state.note } };
    }),
  );
  return {
    scheduleId,
    created: false,
    ...(previousTaskQueue !== undefined &&
      previousTaskQueue !== taskQueue && { movedFromTaskQueue: previousTaskQueue }),
  };
}

export async function describeSweepSchedule(
  client: Client,
  scheduleId = DEFAULT_SWEEP_SCHEDULE_ID,
): Promise<SweepScheduleSummary> {
  const { spec, action, state, info } = await describeSweepAction(client, scheduleId);
  const sweep = (action.args?.[0] ?? {}) as SweepFailedBatchesInput;
  return {
    scheduleId,
    everyMs: spec.intervals?.length === 1 && !spec.calendars?.length ? spec.intervals[0]!.every : null,
    taskQueue: action.taskQueue,
    sweep,
    inputProblems: sweepInputProblems(sweep),
    paused: state.paused,
    note: state.note || null,
    nextRunsAt: info.nextActionTimes,
    recentRuns: info.recentActions.map((run) => ({
      scheduledAt: run.scheduledAt,
      workflowId: run.action.workflow.workflowId,
    })),
    runningSweeps: info.runningActions.map((run) => run.workflow.workflowId),
    runsTaken: info.numActionsTaken,
    runsSkippedForOverlap: info.numActionsSkippedOverlap,
  };
}

/**
 * The note a pause or unpause without one leaves. The SDK's own ('Paused via TypeScript SDK"', stray quote included)
 * replaced the operator's.
 */
export const DEFAULT_PAUSE_NOTE = 'paused with batch-recovery schedule pause';
export const DEFAULT_UNPAUSE_NOTE = 'unpaused with batch-recovery schedule unpause';

/** Pauses the schedule; without a note, one already paused is left as it is, so the note saying why is kept. */
export function pauseSweepSchedule(
  client: Client,
  scheduleId = DEFAULT_SWEEP_SCHEDULE_ID,
  note?: string,
): Promise<void> {
  return onSweepSchedule(client, scheduleId, async (handle, { state }) => {
    if (note === undefined && state.paused) return;
    await handle.pause(note ?? DEFAULT_PAUSE_NOTE);
  });
}

/** Unpauses the schedule; without a note, one already active is left as it is, its note kept. */
export function unpauseSweepSchedule(
  client: Client,
  scheduleId = DEFAULT_SWEEP_SCHEDULE_ID,
  note?: string,
): Promise<void> {
  return onSweepSchedule(client, scheduleId, async (handle, { state }) => {
    if (note === undefined && !state.paused) return;
    await handle.unpause(note ?? DEFAULT_UNPAUSE_NOTE);
  });
}

/**
 * How long a trigger waits for the schedule to start the sweep, or to skip it: the server acts on it within a second
 * or so, and says nothing when it starts none.
 */
export const TRIGGER_CONFIRM_MS = 5_000;
/** Between two looks at the schedule while a trigger waits for it. */
const TRIGGER_CHECK_INTERVAL_MS = 200;

/**
 * The schedule started no sweep on a trigger: it skipped it as a sweep still ran (the overlap policy, SKIP), or
 * started none within TRIGGER_CONFIRM_MS, as when it started a sweep earlier in the same second (a schedule starts
 * one workflow a second, temporalio/temporal#3614) or the start failed.
 */
export class SweepNotStartedError extends Error {
  override name = 'SweepNotStartedError';
  constructor(
    readonly scheduleId: string,
    readonly why: { skippedFor: string[] } | { waitedMs: number },
  ) {
    super(
      'skippedFor' in why
        ? `Schedule ${scheduleId} started no sweep: it skipped the trigger, as a sweep was still running (overlap ` +
            `policy SKIP)${why.skippedFor.length > 0 ? `: ${why.skippedFor.join(', ')}` : ''}; ` +
            '`schedule describe` counts it under skipped'
        : `Schedule ${scheduleId} started no sweep within ${ms(why.waitedMs)} of the trigger; ` +
            '`schedule describe` shows whether one has started since',
    );
  }
}

/**
 * The schedule started sweeps around a trigger, but none under the time the trigger sent: another start took its second
 * (and the schedule dropped this one), or the server dates a trigger's sweep by its own clock (its newer scheduler does,
 * until temporalio/temporal#11568) and one of them is this trigger's. Which, if any, cannot be told.
 */
export class SweepStartUnconfirmedError extends Error {
  override name = 'SweepStartUnconfirmedError';
  constructor(
    readonly scheduleId: string,
    readonly startedSince: string[],
  ) {
    super(
      `Schedule ${scheduleId} started ${startedSince.join(', ')} around the trigger, none under the time the trigger ` +
        'sent: another start took its second, or the server dates sweeps by its own clock; whether this ' +
        'trigger started one cannot be told (`schedule describe` lists the sweeps)',
    );
  }
}

/**
 * Runs a sweep now, also when the schedule is paused, and returns the id of the sweep this trigger started once the
 * schedule shows it; SweepNotStartedError when it skipped the trigger (a sweep still runs) or started none within
 * TRIGGER_CONFIRM_MS; SweepStartUnconfirmedError when only sweeps it cannot tell for its own started. Refused,
 * naming the fields, when this release's sweep refuses the schedule's input: the sweep would only fail at once. The
 * overlap policy is named here: the SDK triggers with ALLOW_ALL by default, and pressing trigger again would start
 * sweeps side by side, each making every list call of the window again.
 */
export async function triggerSweepSchedule(
  client: Client,
  scheduleId = DEFAULT_SWEEP_SCHEDULE_ID,
): Promise<{ workflowId: string }> {
  const before = await describeSweepSchedule(client, scheduleId);
  if (before.inputProblems.length > 0) {
    throw new InvalidInputError(
      before.inputProblems,
      `sweep input of schedule ${scheduleId} (every sweep it starts fails at once; \`schedule upsert\` replaces it)`,
    );
  }
  // A trigger in the second of the schedule's last start starts nothing (the sweep's id is the schedule's with the
  // time in seconds), and the server says so to no one.
  // The last start is dated by the server's clock or by the one of the client that triggered it (this one sends its
  // own time): a second at most, however far ahead that clock runs.
  const lastStart = Math.max(0, ...before.recentRuns.map((run) => run.scheduledAt.getTime()));
  const nextSecond = (Math.floor(lastStart / 1_000) + 1) * 1_000;
  if (Date.now() < nextSecond) await sleep(Math.min(nextSecond - Date.now(), 1_000));
  // The sweep this trigger starts is known by this time, which the schedule records as the run's scheduleTime. Before,
  // any run missing from the first read was taken for it: a trigger sent a moment earlier (the Web UI, a second
  // operator) and not yet recorded then was named as started by this one, which the schedule had skipped or dropped.
  // Its nanosecond is drawn at random: two triggers that waited for the same second (two CLIs at once) would otherwise
  // send the same time and both name the one sweep it started, and a whole second is a time the schedule may start a
  // run of its own at. Before, a millisecond was drawn, and one pair of triggers in 999 drew the same one.
  const scheduledTime = {
    seconds: Math.floor(Math.max(Date.now(), nextSecond) / 1_000),
    nanos: randomInt(1, 1_000_000_000),
  };
  await triggerAt(client, scheduleId, scheduledTime);

  const earlier = new Set(before.recentRuns.map((run) => run.workflowId));
  const deadline = Date.now() + TRIGGER_CONFIRM_MS;
  for (;;) {
    // Read as the server sends it: the SDK's describe rounds the runs' times to the millisecond, which two triggers
    // may share.
    const now = await scheduleInfo(client, scheduleId);
    // Only runs that name the workflow they started: a trigger names a sweep, never an empty id.
    const recentRuns = (now.recentActions ?? []).flatMap((run) => {
      const workflowId = run.startWorkflowResult?.workflowId;
      return workflowId ? [{ workflowId, scheduleTime: run.scheduleTime }] : [];
    });
    const started = recentRuns.find((run) => sameTime(run.scheduleTime, scheduledTime));
    if (started) return { workflowId: started.workflowId };
    // A skip with no sweep running is not this trigger's: the schedule counts the skip of a trigger buffered behind
    // another before it records the sweep that other one starts.
    const runningSweeps = (now.runningWorkflows ?? []).flatMap((run) => (run.workflowId ? [run.workflowId] : []));
    if ((now.overlapSkipped?.toNumber() ?? 0) > before.runsSkippedForOverlap && runningSweeps.length > 0)
      throw new SweepNotStartedError(scheduleId, { skippedFor: runningSweeps });
    if (Date.now() >= deadline) {
      const startedSince = recentRuns.map((run) => run.workflowId).filter((workflowId) => !earlier.has(workflowId));
      if (startedSince.length > 0) throw new SweepStartUnconfirmedError(scheduleId, startedSince);
      throw new SweepNotStartedError(scheduleId, { waitedMs: TRIGGER_CONFIRM_MS });
    }
    await sleep(TRIGGER_CHECK_INTERVAL_MS);
  }
}

/** A time to the nanosecond, as a trigger sends it. */
interface TriggerTime {
  seconds: number;
  nanos: number;
}

function sameTime(time: proto.google.protobuf.ITimestamp | null | undefined, { seconds, nanos }: TriggerTime): boolean {
  return String(time?.seconds) === String(seconds) && (time?.nanos ?? 0) === nanos;
}

/** A call of the schedule service on a schedule read before: NOT_FOUND means it was deleted since. */
async function onScheduleService<T>(scheduleId: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (isGrpcServiceError(err) && err.code === status.NOT_FOUND) throw new SweepScheduleNotFoundError(scheduleId);
    throw err;
  }
}

/** The schedule's info as the server sends it, its times to the nanosecond. */
async function scheduleInfo(client: Client, scheduleId: string): Promise<proto.temporal.api.schedule.v1.IScheduleInfo> {
  const { info } = await onScheduleService(scheduleId, () =>
    client.workflowService.describeSchedule({ namespace: client.options.namespace, scheduleId }),
  );
  return info ?? {};
}

/**
 * Triggers the schedule with overlap policy SKIP, its run dated `scheduledTime`: the sweep's id (to the second) and
 * its scheduleTime among the schedule's recent runs (to the nanosecond). The SDK's trigger sends no time (the server
 * takes its own).
 */
async function triggerAt(client: Client, scheduleId: string, scheduledTime: TriggerTime): Promise<void> {
  await onScheduleService(scheduleId, () =>
    client.workflowService.patchSchedule({
      namespace: client.options.namespace,
      scheduleId,
      identity: client.options.identity,
      requestId: randomUUID(),
      patch: {
        triggerImmediately: {
          overlapPolicy: proto.temporal.api.enums.v1.ScheduleOverlapPolicy.SCHEDULE_OVERLAP_POLICY_SKIP,
          scheduledTime: { ...msNumberToTs(scheduledTime.seconds * 1_000), nanos: scheduledTime.nanos },
        },
      },
    }),
  );
}

/** Deletes the schedule; sweeps and recoveries already started keep running. */
export function deleteSweepSchedule(client: Client, scheduleId = DEFAULT_SWEEP_SCHEDULE_ID): Promise<void> {
  return onSweepSchedule(client, scheduleId, (handle) => handle.delete());
}

function sweepInputProblems(sweep: unknown): string[] {
  try {
    parseSweepInput(sweep);
    return [];
  } catch (err) {
    if (err instanceof InvalidInputError) return err.problems;
    throw err;
  }
}

/** The schedule's description, once it is known to run the sweep. */
async function describeSweepAction(client: Client, scheduleId: string): Promise<ScheduleDescription> {
  const description = await onSchedule(client, scheduleId, (handle) => handle.describe());
  requireSweepAction(scheduleId, description.action);
  return description;
}

/** Runs `operation` on the schedule once a description showed it runs the sweep; `operation` is given it. */
async function onSweepSchedule<T>(
  client: Client,
  scheduleId: string,
  operation: (handle: ScheduleHandle, description: ScheduleDescription) => Promise<T>,
): Promise<T> {
  const description = await describeSweepAction(client, scheduleId);
  return onSchedule(client, scheduleId, (handle) => operation(handle, description));
}

function requireSweepAction(scheduleId: string, action: ScheduleDescription['action']): void {
  // startWorkflow is the only action a schedule has.
  if (action.workflowType !== SWEEP_FAILED_BATCHES_WORKFLOW)
    throw new NotASweepScheduleError(scheduleId, `starts ${action.workflowType} workflows`);
}

/**
 * An id typed with a space around it (a shell variable, say) named a second schedule beside the sweep's: two sweeps,
 * which the overlap policy does not keep apart. An empty one failed with the SDK's 'Missing
 * ScheduleOptions.scheduleId', a very long one with the server's 'Failed to create schedule'.
 */
export function scheduleIdProblems(scheduleId: string): string[] {
  return nameProblems('id', scheduleId, MAX_SCHEDULE_ID_CHARS);
}

/** What makes a name unfit for a schedule id or a task queue, each problem naming the field. */
function nameProblems(field: string, name: string, maxChars: number): string[] {
  if (name === '') return [`${field}: must not be empty`];
  if (/[\u0000-\u001f\u007f]/.test(name)) return [`${field}: must not hold control characters`];
  if (name.length > maxChars) return [`${field}: must be at most ${maxChars} characters, got ${name.length}`];
  if (name.trim() !== name) return [`${field}: must not begin or end with white space, got ${JSON.stringify(name)}`];
  return [];
}

async function onSchedule<T>(
  client: Client,
  scheduleId: string,
  operation: (handle: ScheduleHandle) => Promise<T>,
): Promise<T> {
  const problems = scheduleIdProblems(scheduleId);
  if (problems.length > 0) throw new InvalidInputError(problems, 'sweep schedule');
  try {
    return await operation(client.schedule.getHandle(scheduleId));
  } catch (err) {
    throw err instanceof ScheduleNotFoundError ? new SweepScheduleNotFoundError(scheduleId) : err;
  }
}
