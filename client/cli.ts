#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError, Option } from 'commander';
import ms from 'ms';
import { z } from 'zod';
import {
  DEFAULT_NAMESPACE,
  DEFAULT_TEMPORAL_ADDRESS,
  HOST_PORT_PROBLEM,
  UI_URL_QUERY_PROBLEM,
  hasCredentials,
  hasQueryOrFragment,
  isHostPort,
} from '../worker/config.js';
import { DEFAULT_TASK_QUEUE, isPollerTaskQueue, POLLER_TASK_QUEUE_SUFFIX } from '../workflows/definitions.js';
import { recoveryPolicyFields as fields } from '../workflows/input-fields.js';
import type { RecoverBatchInput } from '../workflows/input.js';
import { roundsDone } from '../workflows/report.js';
import { DEFAULT_CALL_TIMEOUT_MS } from './call-deadline.js';
import { connectWithGlobals, createCommandContext } from './commands/context.js';
import { bounded, trimmedOrDefault } from './commands/flags.js';
import {
  addReportAllOptions,
  refuseListOptionsWithBatchId,
  reportAllRecoveries,
  type ReportAllOptions,
} from './commands/report-all.js';
import { registerScheduleCommands } from './commands/schedule.js';
import { EXIT_CODES, EXIT_CODES_HELP, exitCodeForError, exitCodeForReport } from './exit-codes.js';
import { describeSource, formatReport } from './format-report.js';
import { followRecovery, notLiveView, progressViewFor } from './progress.js';
import {
  BatchRecoveries,
  DEFAULT_UPDATE_TIMEOUT_MS,
  namingTheServer,
  RecoveryEndedError,
  RecoveryFailedError,
  RecoveryTerminatedError,
  workflowUiUrl,
  type ClientRecoveryReport,
  type RecoveryProgress,
} from './recoveries.js';

interface GlobalOptions {
  address: string;
  namespace: string;
  taskQueue: string;
  uiUrl: string;
  callTimeout?: number;
}

interface RecoverOptions {
  maxRounds?: number;
  maxRetries?: number;
  retryAll?: boolean;
  roundBackoff?: number;
  pollInterval?: number;
  deadline?: number;
  wait?: boolean;
  json?: boolean;
  applyPolicy?: boolean;
  force?: boolean;
}

interface PolicyOptions extends Pick<RecoverOptions, 'maxRounds' | 'maxRetries' | 'roundBackoff' | 'pollInterval'> {
  timeout?: number;
}

const DEFAULT_UI_URL = 'http://localhost:8233';

/** How long `cancel` waits for the recovery to end before it says it has not yet. */
const DEFAULT_CANCEL_WAIT_MS = 30_000;

const uuid = z.uuid();

function batchIdArgument(value: string): string {
  const result = uuid.safeParse(value);
  if (!result.success) throw new InvalidArgumentError(`batchId: ${result.error.issues[0]?.message ?? 'Invalid UUID'}`);
  // As typed: BatchRecoveries names the recovery by the lower-case form, and looks for one an earlier release started.
  return value;
}

const maxRounds = bounded('maxRounds', fields.maxRounds);
const maxRetries = bounded('maxRetries', fields.maxRetries);
const roundBackoff = bounded('roundBackoff.initialInterval', fields.roundBackoff.fields.initialInterval);
const pollInterval = bounded('poll.initialInterval', fields.poll.fields.initialInterval);
const deadline = bounded('deadline', fields.deadline);
// A wait long enough for a worker at work, short enough that a script is never stuck on one that is gone.
const timeout = bounded('timeout', { type: 'duration', min: '1s', max: '10m' });
const callTimeout = bounded('callTimeout', { type: 'duration', min: '1s', max: '10m' });

/** Maps the flags onto the workflow input; what is left out takes the workflow's defaults. */
function recoverInput(batchId: string, options: RecoverOptions): RecoverBatchInput {
  const { roundBackoff, pollInterval } = options;
  return {
    batchId,
    ...(options.maxRounds !== undefined && { maxRounds: options.maxRounds }),
    ...(options.maxRetries !== undefined && { maxRetries: options.maxRetries }),
    ...(options.retryAll && { retryFailedOnly: false }),
    // The first wait; later rounds wait longer (the workflow's backoff), never less than this.
    ...(roundBackoff !== undefined && {
      roundBackoff: { initialInterval: roundBackoff, maximumInterval: Math.max(roundBackoff, ms('10m')) },
    }),
    // An operator asking for an interval means a steady one.
    ...(pollInterval !== undefined && {
      poll: { initialInterval: pollInterval, backoffCoefficient: 1, maximumInterval: pollInterval },
    }),
    ...(options.deadline !== undefined && { deadline: options.deadline }),
  };
}

/** Aborted once the reader of stdout has closed it (`watch … | head`): a follower has no one to show its lines to. */
const outputClosed = new AbortController();
/**
 * Follows a recovery until it ends. An operator's Ctrl-C (or a SIGTERM) stops the command, not the recovery, which
 * someone who meant to stop it must know: it is told so, with how to stop it. Before, the process died by the signal
 * and said nothing. Only while following: the worker command's own handlers drain it on these signals.
 */
async function following<T>(batchId: string, follow: () => Promise<T>): Promise<T> {
  const stop = (exitCode: number) => () => {
    process.stderr.write(
      `\nStopped following; the recovery of batch ${batchId} goes on (batch-recovery cancel ${batchId} stops it)\n`,
    );
    process.exit(exitCode);
  };
  const onInterrupt = stop(EXIT_CODES.interrupted);
  const onTerminate = stop(EXIT_CODES.terminated_by_signal);
  process.once('SIGINT', onInterrupt);
  process.once('SIGTERM', onTerminate);
  try {
    return await follow();
  } finally {
    process.off('SIGINT', onInterrupt);
    process.off('SIGTERM', onTerminate);
  }
}

const print = (text: string) => process.stdout.write(`${text}\n`);
const printJson = (value: unknown) => print(JSON.stringify(value, null, 2));

/** Connects for one command and closes the connection afterwards, so the process can exit. */
async function withRecoveries<T>(options: GlobalOptions, run: (recoveries: BatchRecoveries) => Promise<T>): Promise<T> {
  const client = await connectWithGlobals(options);
  try {
    return await run(new BatchRecoveries(client, options.taskQueue));
  } catch (err) {
    throw namingTheServer(err, options.address);
  } finally {
    await client.connection.close();
  }
}

/**
 * Prints a finished (or live, or stored) report and sets the exit code for its outcome; a recovery
 * that failed still shows what it did before the error.
 */
async function showReport(
  options: GlobalOptions,
  json: boolean | undefined,
  getReport: () => Promise<ClientRecoveryReport | RecoveryProgress>,
) {
  let report: ClientRecoveryReport;
  let workflowTaskFailures = 0;
  let storedRoundsOmitted = 0;
  try {
    const got = await getReport();
    if ('source' in got) {
      report = got.report;
      workflowTaskFailures = got.workflowTaskFailures;
      if (got.source.kind === 'stored') storedRoundsOmitted = got.source.roundsOmitted;
      // Where the report comes from is not part of it: in JSON mode it goes to stderr.
      const note = describeSource(got.source);
      if (note) (json ? (text: string) => process.stderr.write(`${text}\n`) : print)(note);
    } else report = got;
  } catch (err) {
    if (err instanceof RecoveryFailedError && err.report) printReport(options, json, err.report);
    if (err instanceof RecoveryTerminatedError && err.stored) {
      const note = describeSource(err.stored.source);
      if (note) (json ? (text: string) => process.stderr.write(`${text}\n`) : print)(note);
      printReport(options, json, err.stored.report, err.end, err.stored.source.roundsOmitted);
    }
    throw err;
  }
  printReport(options, json, report, undefined, storedRoundsOmitted);
  process.exitCode = exitCodeForReport(report, workflowTaskFailures);
}

function printReport(
  options: GlobalOptions,
  json: boolean | undefined,
  report: ClientRecoveryReport,
  endedAs?: string,
  storedRoundsOmitted?: number,
) {
  if (json) printJson(report);
  else {
    const url = workflowUiUrl(options.uiUrl, options.namespace, report.workflowId);
    print(formatReport(report, url, endedAs, storedRoundsOmitted));
  }
}

/**
 * A Web UI URL with a user name or password would be printed in every `Web UI:` line, as the worker refuses it for
 * its links; one with a query or fragment leads nowhere, as every link adds its path after the whole value. Checked
 * once parsed, not by the option's parser: commander's message for a refused value echoes it, and a query is where an
 * auth proxy's token goes (before, a URL with both was echoed whole, its password too).
 */
function refuseUnusableUiUrl(program: Command): void {
  const { uiUrl } = program.opts<GlobalOptions>();
  const source = program.getOptionValueSource('uiUrl') === 'env' ? 'TEMPORAL_UI_URL' : '--ui-url';
  if (URL.canParse(uiUrl) && hasCredentials(uiUrl))
    throw new Error(
      `${source}: expected no user name or password in the URL (every Web UI link printed would show them)`,
    );
  if (hasQueryOrFragment(uiUrl)) throw new Error(`${source}: ${UI_URL_QUERY_PROBLEM}`);
}

export function buildCli(): Command {
  const program = new Command('batch-recovery')
    .description('Recovers AnchorBrowser batches whose sessions failed to start, with a Temporal workflow per batch')
    .addOption(
      new Option('--address <host:port>', 'Temporal frontend')
        .env('TEMPORAL_ADDRESS')
        .default(DEFAULT_TEMPORAL_ADDRESS)
        // Checked here, so that the error names the flag (or the variable) it came from. Blank (an unset variable
        // passed on by compose): the default, as the worker takes it.
        .argParser((value: string) => {
          if (value.trim() === '') return DEFAULT_TEMPORAL_ADDRESS;
          if (!isHostPort(value)) throw new InvalidArgumentError(HOST_PORT_PROBLEM);
          return value;
        }),
    )
    .addOption(
      new Option('--namespace <name>', 'Temporal namespace')
        .env('TEMPORAL_NAMESPACE')
        .default(DEFAULT_NAMESPACE)
        .argParser(trimmedOrDefault(DEFAULT_NAMESPACE)),
    )
    .addOption(
      new Option('--task-queue <name>', 'task queue of the recovery workers')
        .env('TEMPORAL_TASK_QUEUE')
        .default(DEFAULT_TASK_QUEUE)
        // As the worker refuses it: before, a recovery started there waited for a worker that could never run.
        .argParser((value: string) => {
          const queue = trimmedOrDefault(DEFAULT_TASK_QUEUE)(value);
          if (isPollerTaskQueue(queue))
            throw new InvalidArgumentError(
              `expected no name ending in ${POLLER_TASK_QUEUE_SUFFIX}: that is the batch status poller's queue`,
            );
          return queue;
        }),
    )
    .addOption(
      new Option('--ui-url <url>', 'Temporal Web UI, for links')
        .env('TEMPORAL_UI_URL')
        .default(DEFAULT_UI_URL)
        // Checked once parsed (refuseUnusableUiUrl).
        .argParser(trimmedOrDefault(DEFAULT_UI_URL)),
    )
    .addOption(
      new Option(
        '--call-timeout <duration>',
        'how long one call to Temporal may go unanswered, 1s-10m (default 30s; longer waits set their own)',
      )
        .env('TEMPORAL_CALL_TIMEOUT')
        // Blank (an unset variable passed on by compose): the default. Commander keeps the blank if told undefined.
        .argParser((value: string) => (value.trim() === '' ? DEFAULT_CALL_TIMEOUT_MS : callTimeout(value))),
    )
    .hook('preAction', refuseUnusableUiUrl);

  const globals = (command: Command) => command.optsWithGlobals<GlobalOptions>();

  program
    .command('worker')
    .description('run a recovery worker until Ctrl-C (Anchor settings come from ANCHOR_* variables)')
    .action(async (_options, command: Command) => {
      const { address, namespace, taskQueue } = globals(command);
      // Loaded here so the other commands do not pay for the native worker runtime.
      const { runWorker } = await import('../worker/run-worker.js');
      await runWorker({
        ...process.env,
        TEMPORAL_ADDRESS: address,
        TEMPORAL_NAMESPACE: namespace,
        TEMPORAL_TASK_QUEUE: taskQueue,
      });
    });

  program
    .command('recover')
    .description('start the recovery of a batch, or attach to the one already running')
    .argument('<batchId>', 'AnchorBrowser batch id (uuid)', batchIdArgument)
    .option('--max-rounds <n>', 'retry rounds at most, 1-1000 (default 3)', maxRounds)
    .option('--max-retries <n>', 'attempts per failed session in a round, 1-3 (default 1)', maxRetries)
    .option('--retry-all', 'retry every session of the batch, not only the failed ones')
    .option(
      '--round-backoff <duration>',
      'wait before the first retry round, 10ms-24h; later rounds wait longer (default 30s)',
      roundBackoff,
    )
    .option(
      '--poll-interval <duration>',
      'how often to read the batch status while it runs, 10ms-1h (default 5s, growing)',
      pollInterval,
    )
    .option('--deadline <duration>', 'give up after this long, 1s-365d (default 24h)', deadline)
    .option('--wait', 'follow the recovery to its end and print the report')
    .option('--json', 'print only the report as JSON on stdout (with --wait: the final one)')
    .option(
      '--apply-policy',
      'when a recovery already runs for the batch, apply the policy options to it (without this, policy options are refused there)',
    )
    .option(
      '--force',
      "start even though the batch's last recovery left a retry call of unknown outcome less than 6h ago (refused " +
        'without this: the API may still apply that call); give it once the batch shows that call was not applied',
    )
    .action(async (batchId: string, options: RecoverOptions, command: Command) => {
      const global = globals(command);
      await withRecoveries(global, async (recoveries) => {
        const started = await recoveries.start(recoverInput(batchId, options), {
          applyPolicy: options.applyPolicy === true,
          force: options.force === true,
        });
        // In JSON mode stdout carries the report only; the human summary goes to stderr.
        const say = options.json ? (text: string) => process.stderr.write(`${text}\n`) : print;
        say(
          !started.attached
            ? `Started the recovery of batch ${batchId}`
            : started.policyApplied
              ? `Attached to the recovery already running for batch ${batchId} and applied the new policy to it`
              : `Attached to the recovery already running for batch ${batchId}`,
        );
        say(`Workflow id: ${started.workflowId}`);
        say(`Web UI:      ${workflowUiUrl(global.uiUrl, global.namespace, started.workflowId)}`);
        // Before, a start on a queue no worker polls (a mistyped --task-queue) exited 0 with nothing said. `--wait`
        // says it as it follows.
        // A check that cannot be made warns of nothing: the start went through, and the command has done its work.
        const unpolled = async () => !(await recoveries.hasLivePollers(global.taskQueue).catch(() => true));
        if (!started.attached && !options.wait && (await unpolled()))
          process.stderr.write(
            `warning: no worker polls task queue ${global.taskQueue}: the recovery waits until one does ` +
              '(batch-recovery worker, with the same --task-queue)\n',
          );
        if (options.wait) {
          await showReport(global, options.json, () =>
            following(batchId, () =>
              followRecovery(recoveries, batchId, {
                // With --json, why the progress is not live goes to stderr: before, a wait no worker could end was
                // silent.
                view: options.json ? notLiveView(process.stderr) : progressViewFor(process.stdout),
                signal: outputClosed.signal,
              }),
            ),
          );
        } else if (options.json) {
          await showReport(global, true, () => recoveries.progress(batchId));
          process.exitCode = 0;
        }
      });
    });

  program
    .command('watch')
    .description('show the live progress of a recovery until it ends, then its report')
    .argument('<batchId>', 'AnchorBrowser batch id (uuid)', batchIdArgument)
    .action(async (batchId: string, _options, command: Command) => {
      const global = globals(command);
      await withRecoveries(global, (recoveries) =>
        showReport(global, false, () =>
          following(batchId, () =>
            followRecovery(recoveries, batchId, { view: progressViewFor(process.stdout), signal: outputClosed.signal }),
          ),
        ),
      );
    });

  addReportAllOptions(
    program
      .command('report')
      .description('print the report of a recovery; without a batch id, a table of all recent recoveries')
      .argument('[batchId]', 'AnchorBrowser batch id (uuid); omit it for every recovery', batchIdArgument)
      .option('--json', 'print the report as JSON'),
  ).action(async (batchId: string | undefined, options: ReportAllOptions, command: Command) => {
    if (batchId === undefined) return reportAllRecoveries(commandContext, command, options);
    refuseListOptionsWithBatchId(options);
    const global = globals(command);
    await withRecoveries(global, (recoveries) => showReport(global, options.json, () => recoveries.progress(batchId)));
  });

  program
    .command('cancel')
    .description('cancel a recovery; it stops after the call in flight and keeps its report')
    .argument('<batchId>', 'AnchorBrowser batch id (uuid)', batchIdArgument)
    .option('--timeout <duration>', 'how long to wait for the recovery to end, 1s-10m (default 30s)', timeout)
    .action(async (batchId: string, options: { timeout?: number }, command: Command) => {
      await withRecoveries(globals(command), async (recoveries) => {
        try {
          await recoveries.cancel(batchId);
        } catch (err) {
          // Nothing left to cancel: what the operator wanted holds already.
          if (!(err instanceof RecoveryEndedError)) throw err;
          print(err.message);
          return;
        }
        print(`Cancel requested for the recovery of batch ${batchId}`);
        const ending = await recoveries.waitForEnd(batchId, options.timeout ?? DEFAULT_CANCEL_WAIT_MS);
        if (ending.ended) {
          print(`Recovery of batch ${batchId} ended: ${ending.report.outcome}`);
          return;
        }
        // The server keeps the request: the workflow sees it whenever a worker runs it next.
        print(
          `It has not ended yet (${ending.reason}): it ends with outcome operator_cancelled when a worker runs it; ` +
            `batch-recovery report ${batchId} shows it`,
        );
        process.exitCode = EXIT_CODES.no_worker;
      });
    });

  const signalCommand = (
    name: string,
    description: string,
    send: (recoveries: BatchRecoveries, batchId: string) => Promise<void>,
    done: string,
  ) =>
    program
      .command(name)
      .description(description)
      .argument('<batchId>', 'AnchorBrowser batch id (uuid)', batchIdArgument)
      .action(async (batchId: string, _options, command: Command) => {
        await withRecoveries(globals(command), (recoveries) => send(recoveries, batchId));
        print(`${done} (batch ${batchId})`);
      });
  signalCommand(
    'retry-now',
    'skip the current wait and make the next retry call now',
    (r, id) => r.retryNow(id),
    'Asked for a retry now',
  );
  signalCommand('pause', 'hold off retry calls until resumed (status reads go on)', (r, id) => r.pause(id), 'Paused');
  signalCommand('resume', 'resume retry calls of a paused recovery', (r, id) => r.resume(id), 'Resumed');

  program
    .command('policy')
    .description('change the policy of the rounds still to come (validated by the workflow)')
    .argument('<batchId>', 'AnchorBrowser batch id (uuid)', batchIdArgument)
    .option('--max-rounds <n>', 'retry rounds at most, counting those done, 1-1000', maxRounds)
    .option('--max-retries <n>', 'attempts per failed session in a round, 1-3', maxRetries)
    .option(
      '--round-backoff <duration>',
      "the backoff's first wait, 10ms-24h: round n waits it x the coefficient^(n-1), at most max(it, 10m); a backoff underway is measured again",
      roundBackoff,
    )
    .option(
      '--poll-interval <duration>',
      'how often to read the batch status, 10ms-1h; at once while the poller watches the batch, else from the next wait',
      pollInterval,
    )
    .option(
      '--timeout <duration>',
      `how long to wait for a worker to apply the change, 1s-10m (default ${ms(DEFAULT_UPDATE_TIMEOUT_MS)})`,
      timeout,
    )
    .action(async (batchId: string, options: PolicyOptions, command: Command) => {
      const { roundBackoff, poll, maxRounds, maxRetries } = recoverInput(batchId, options);
      const change = { maxRounds, maxRetries, roundBackoff, poll };
      // An empty change would go to the workflow and come back as a success that changed nothing.
      if (Object.values(change).every((value) => value === undefined))
        throw new Error(
          'No policy options given: set one or more of --max-rounds, --max-retries, --round-backoff, --poll-interval',
        );
      const report = await withRecoveries(globals(command), (recoveries) =>
        recoveries.updatePolicy(batchId, change, {
          ...(options.timeout !== undefined && { timeoutMs: options.timeout }),
        }),
      );
      print(`Policy updated (batch ${batchId}): at most ${report.maxRounds} rounds, ${roundsDone(report)} done`);
    });

  const commandContext = createCommandContext();
  registerScheduleCommands(program, commandContext);

  // Every command's --help ends with the exit codes, as the README says: the schedule's and the worker's had none.
  const withExitCodes = (command: Command): void => {
    command.addHelpText('after', EXIT_CODES_HELP);
    command.commands.forEach(withExitCodes);
  };
  withExitCodes(program);
  return program;
}

/** The first line of the message only: a user needs the cause, not a stack or a gRPC dump. */
export function describeError(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0] ?? message;
}

export async function runCli(argv: string[] = process.argv): Promise<void> {
  try {
    await buildCli().parseAsync(argv);
  } catch (err) {
    // A follower stopped as no one reads its output any more: there is no one to tell, and no end it saw to exit with.
    if (outputClosed.signal.aborted && err instanceof Error && err.name === 'AbortError') {
      process.exitCode = EXIT_CODES.output_closed;
      return;
    }
    process.stderr.write(`error: ${describeError(err)}\n`);
    process.exitCode = exitCodeForError(err);
  }
}

// Run when executed (also through the npm bin symlink), not when imported by tests.
if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  // A reader that closed the output (`report … | head`) took what it wanted: the rest is dropped, with no stack trace,
  // and the command ends as it would have, with its exit code; `watch` and `recover --wait` stop following, and exit
  // with output_closed. Later writes to the closed stream fail silently.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    outputClosed.abort();
  });
  await runCli();
}
