import { InvalidArgumentError, type Command } from 'commander';
import ms from 'ms';
import { recentPollerIdentities } from '../../worker/task-queue-pollers.js';
import { sweepFields, sweepScheduleFields } from '../../workflows/input-fields.js';
import {
  checkSweepScheduleOptions,
  DEFAULT_SWEEP_SCHEDULE_ID,
  deleteSweepSchedule,
  describeSweepSchedule,
  pauseSweepSchedule,
  scheduleIdProblems,
  SweepScheduleNotFoundError,
  triggerSweepSchedule,
  unpauseSweepSchedule,
  upsertSweepSchedule,
  type SweepScheduleSummary,
} from '../schedules.js';
import type { CommandContext, TemporalGlobals } from './context.js';
import { bounded, boundedAsTyped } from './flags.js';

interface UpsertOptions {
  id: string;
  every: string;
  lookback?: string;
  maxStarts?: number;
  fanOut?: number;
}

export function scheduleUiUrl(uiBaseUrl: string, namespace: string, scheduleId: string): string {
  return `${uiBaseUrl.replace(/\/$/, '')}/namespaces/${encodeURIComponent(namespace)}/schedules/${encodeURIComponent(scheduleId)}`;
}

/** An --id is checked as it is parsed, so a bad one is refused before connecting, naming the flag and the field. */
function scheduleIdArgument(value: string): string {
  const problems = scheduleIdProblems(value);
  if (problems.length > 0) throw new InvalidArgumentError(problems.join('; '));
  return value;
}

/** The schedule as an operator reads it in a terminal. */
export function formatSweepSchedule(summary: SweepScheduleSummary): string {
  const lines = [
    `Schedule ${summary.scheduleId}: ${summary.everyMs === null ? 'on a spec set outside this CLI (see the Web UI)' : `every ${ms(summary.everyMs)}`}, ${summary.paused ? 'paused' : 'active'}${summary.note ? ` (${summary.note})` : ''}`,
    `Sweep input: ${JSON.stringify(summary.sweep)}   task queue: ${summary.taskQueue}`,
    `Runs: ${summary.runsTaken} taken, ${summary.runsSkippedForOverlap} skipped while a sweep was running`,
    `Next runs: ${summary.nextRunsAt.map((at) => at.toISOString()).join(', ') || 'none'}`,
  ];
  if (summary.inputProblems.length > 0) {
    lines.push(
      'Sweep input refused by this release, so every sweep fails at once (InvalidSweepInput): ' +
        `${summary.inputProblems.join('; ')}. \`schedule upsert\` replaces it`,
    );
  }
  if (summary.runningSweeps.length > 0) lines.push(`Running now: ${summary.runningSweeps.join(', ')}`);
  for (const run of summary.recentRuns) lines.push(`  ran ${run.scheduledAt.toISOString()}  ${run.workflowId}`);
  return lines.join('\n');
}

/** `schedule upsert|describe|pause|unpause|trigger|delete`: the Temporal Schedule that runs the sweep. */
export function registerScheduleCommands(program: Command, context: CommandContext): Command {
  const schedule = program
    .command('schedule')
    .description('manage the schedule that sweeps for failed batches and recovers them');
  const withId = (command: Command) =>
    command.option('--id <scheduleId>', 'schedule id', scheduleIdArgument, DEFAULT_SWEEP_SCHEDULE_ID);

  withId(schedule.command('upsert'))
    .description('create the sweep schedule, or replace its input with these options (its paused state is kept)')
    .requiredOption(
      '--every <duration>',
      'how often to sweep, e.g. 15m, 1m-30d',
      boundedAsTyped('every', sweepScheduleFields.every),
    )
    .option(
      '--lookback <duration>',
      'sweep batches created within this long, 1m-90d (default 24h)',
      boundedAsTyped('lookback', sweepFields.lookback),
    )
    .option(
      '--max-starts <n>',
      'recoveries one sweep starts at most, 1-1000 (default 200)',
      bounded('maxStarts', sweepFields.maxStarts),
    )
    .option(
      '--fan-out <n>',
      'recovery starts in flight at once, 1-50 (default 10)',
      bounded('fanOut', sweepFields.fanOut),
    )
    .action(async (options: UpsertOptions, command: Command) => {
      const scheduleOptions = (taskQueue: string | undefined) => ({
        scheduleId: options.id,
        every: options.every,
        taskQueue,
        ...(options.lookback !== undefined && { lookback: options.lookback }),
        ...(options.maxStarts !== undefined && { maxStarts: options.maxStarts }),
        ...(options.fanOut !== undefined && { fanOut: options.fanOut }),
      });
      // Refused before connecting, as each flag is: checked once connected, a lookback under twice --every or a task
      // queue with control characters exited 7 against an unreachable server, not 1. The queue as the program's
      // option holds it; the upsert takes it from the globals the connection was made with.
      checkSweepScheduleOptions(scheduleOptions(command.optsWithGlobals<Partial<TemporalGlobals>>().taskQueue));
      await context.withClient(command, async (client, globals) => {
        const { created, movedFromTaskQueue } = await upsertSweepSchedule(client, scheduleOptions(globals.taskQueue));
        context.print(`${created ? 'Created' : 'Updated'} schedule ${options.id}, sweeping every ${options.every}`);
        // An upsert without --task-queue takes the default queue: a schedule set up on another moved silently, and
        // its sweeps waited for a worker there, while SKIP skipped every later one.
        if (movedFromTaskQueue !== undefined) {
          context.print(`Moved its sweeps from task queue ${movedFromTaskQueue} to task queue ${globals.taskQueue}`);
          // A check that cannot be made warns of nothing: the update went through.
          const pollers = await recentPollerIdentities(client, globals.taskQueue, 'workflow').catch(() => undefined);
          if (pollers?.length === 0)
            context.note(
              `warning: no worker polls task queue ${globals.taskQueue}: the schedule's sweeps wait there until one ` +
                `does (give --task-queue ${movedFromTaskQueue} to move them back)`,
            );
        }
        context.print(`Web UI: ${scheduleUiUrl(globals.uiUrl, globals.namespace, options.id)}`);
      });
    });

  withId(schedule.command('describe'))
    .description('show the schedule, its next runs and recent sweeps')
    .option('--json', 'print the description as JSON')
    .action(async (options: { id: string; json?: boolean }, command: Command) => {
      await context.withClient(command, async (client) => {
        const summary = await describeSweepSchedule(client, options.id);
        context.print(options.json ? JSON.stringify(summary, null, 2) : formatSweepSchedule(summary));
      });
    });

  withId(schedule.command('pause'))
    .description('stop sweeping until unpaused; running recoveries go on')
    .option('--note <text>', 'why, shown with the schedule')
    .action(async (options: { id: string; note?: string }, command: Command) => {
      await context.withClient(command, (client) => pauseSweepSchedule(client, options.id, options.note));
      context.print(`Paused schedule ${options.id}`);
    });

  withId(schedule.command('unpause'))
    .description('resume sweeping')
    .option('--note <text>', 'why, shown with the schedule')
    .action(async (options: { id: string; note?: string }, command: Command) => {
      await context.withClient(command, (client) => unpauseSweepSchedule(client, options.id, options.note));
      context.print(`Unpaused schedule ${options.id}`);
    });

  withId(schedule.command('trigger'))
    .description(
      'sweep now, and name the sweep this trigger started (exit 11 when it started none: a sweep still ran, or none ' +
        'started within 5s, or it cannot tell which sweep started is its own)',
    )
    .action(async (options: { id: string }, command: Command) => {
      const { workflowId } = await context.withClient(command, (client) => triggerSweepSchedule(client, options.id));
      context.print(`Triggered schedule ${options.id}: started sweep ${workflowId}`);
    });

  withId(schedule.command('delete'))
    .description('delete the schedule; sweeps and recoveries already started keep running')
    .option('--if-exists', 'exit 0 when there is no such schedule, as a teardown script that may run twice needs')
    .action(async (options: { id: string; ifExists?: boolean }, command: Command) => {
      const deleted = await context.withClient(command, (client) =>
        deleteSweepSchedule(client, options.id).then(
          () => true,
          (err: unknown) => {
            if (options.ifExists && err instanceof SweepScheduleNotFoundError) return false;
            throw err;
          },
        ),
      );
      context.print(deleted ? `Deleted schedule ${options.id}` : `No schedule ${options.id} to delete`);
    });

  return schedule;
}
