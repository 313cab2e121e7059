import { STUCK_AFTER_TASK_FAILURES } from '../workflows/definitions.js';
import {
  isTemporalUnreachable,
  NoWorkerPollingError,
  type ClientRecoveryReport,
  PolicyChangeNotConfirmedError,
  RecoveryFailedError,
  RecoveryTerminatedError,
} from './recoveries.js';
import { TEMPORAL_UNREACHABLE_EXIT_CODE } from '../worker/temporal-unreachable.js';
import { SweepNotStartedError, SweepStartUnconfirmedError, TRIGGER_CONFIRM_MS } from './schedules.js';

/**
 * What the commands exit with, so a script or a cron job can tell the ends apart (like `terraform plan
 * -detailed-exitcode`): for `recover --wait`, `watch` and `report <batchId>`, 0 only when nothing is left failing.
 */
export const EXIT_CODES = {
  /** recovered or clean; also a recovery still running (`report`) or just started (`recover`), a command done. */
  ok: 0,
  /** Usage errors, invalid input, no such recovery, one already ended (signals, policy), a refused policy. */
  error: 1,
  exhausted: 2,
  deadline: 3,
  batch_cancelled: 4,
  operator_cancelled: 5,
  /** The recovery stopped on a permanent error (e.g. the API refused the key, the batch does not exist). */
  failed: 6,
  /** Temporal could not be reached, or a call went unanswered for 30 s (60 s while a recovery was followed). */
  unreachable: TEMPORAL_UNREACHABLE_EXIT_CODE,
  /**
   * `report`, `watch`, `recover --wait`: the recovery is running, but its workflow task has failed
   * STUCK_AFTER_TASK_FAILURES times in a row.
   */
  stuck: 8,
  /** The recovery's workflow was terminated or timed out: it wrote no end, and its stored report is printed. */
  terminated: 9,
  /**
   * What was asked needs a worker and none took it up: `policy` not sent (no worker polls the task queue) or not
   * confirmed in time (it may still apply); `cancel` requested, but the recovery had not ended within its wait.
   */
  no_worker: 10,
  /**
   * `schedule trigger` started no sweep: the schedule skipped it, as a sweep still ran (overlap policy SKIP), or
   * started none within TRIGGER_CONFIRM_MS; or it cannot tell whether one of the sweeps started since is its own.
   */
  not_started: 11,
  /**
   * `watch`, `recover --wait`: the reader closed the output (`| head`) before the recovery ended, so the command
   * stopped following it and cannot say how it ended. 128 + SIGPIPE, as a shell reports a command a closed pipe
   * stopped. Before, it exited 0, and a script under `set -o pipefail` took the recovery for recovered.
   */
  output_closed: 141,
  /**
   * `watch`, `recover --wait` stopped by Ctrl-C (SIGINT) or SIGTERM: they say on stderr that the recovery goes on. 128 +
   * the signal's number, as a shell reports a command a signal stopped (other commands die by the signal).
   */
  interrupted: 130,
  terminated_by_signal: 143,
} as const;

// Shared with the poller registrations, so it lives below client/; re-exported for the library's users.
export { STUCK_AFTER_TASK_FAILURES };

/** `workflowTaskFailures`: how many times in a row the pending workflow task of a running recovery has failed. */
export function exitCodeForReport(report: ClientRecoveryReport, workflowTaskFailures = 0): number {
  if (report.failure) return EXIT_CODES.failed;
  if (report.outcome === null && workflowTaskFailures >= STUCK_AFTER_TASK_FAILURES) return EXIT_CODES.stuck;
  switch (report.outcome) {
    case null:
    case 'recovered':
    case 'clean':
      return EXIT_CODES.ok;
    default:
      return EXIT_CODES[report.outcome];
  }
}

export function exitCodeForError(err: unknown): number {
  if (err instanceof RecoveryFailedError) return EXIT_CODES.failed;
  if (err instanceof RecoveryTerminatedError) return EXIT_CODES.terminated;
  if (err instanceof NoWorkerPollingError || err instanceof PolicyChangeNotConfirmedError) return EXIT_CODES.no_worker;
  if (err instanceof SweepNotStartedError || err instanceof SweepStartUnconfirmedError) return EXIT_CODES.not_started;
  if (isTemporalUnreachable(err)) return EXIT_CODES.unreachable;
  return EXIT_CODES.error;
}

/** The table the CLI's --help and the README show. */
export const EXIT_CODES_HELP = `
Exit codes:
  0  recovered or clean (report: also a recovery still running); any other command: done
  1  error: invalid input, no such recovery, one already ended (signals, policy), a refused policy
  2  exhausted: sessions still fail after the last round
  3  deadline: the deadline passed first
  4  batch_cancelled: the batch was cancelled
  5  operator_cancelled: an operator cancelled the recovery
  6  failed: the recovery stopped on a permanent error
  7  Temporal could not be reached, or did not answer: a call for 30 s, watch and recover --wait for 60 s
  8  stuck (report, watch, recover --wait): the recovery runs, but its workflow task keeps failing (worker's log)
  9  terminated: the recovery's workflow was terminated or timed out; its stored report is printed
 10  no worker took it up: policy not sent (no worker polls) or not confirmed in time (it may still apply);
     cancel requested, but the recovery has not ended yet (it ends when a worker runs it)
 11  schedule trigger started no sweep: one still ran (skipped), or none started in ${TRIGGER_CONFIRM_MS / 1_000} s;
     or sweeps started it cannot tell for its own
130  watch or recover --wait interrupted (Ctrl-C): it says the recovery goes on (cancel stops it)
141  output closed (watch, recover --wait): the reader closed it (| head) before the recovery ended
143  watch or recover --wait stopped by SIGTERM: it says the recovery goes on (cancel stops it)`;
