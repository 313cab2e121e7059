import type { RecoveryReport } from '../workflows/report.js';
import { isTemporalUnreachable, RecoveryFailedError } from './recoveries.js';

/**
 * What `recover --wait`, `watch` and `report <batchId>` exit with, so a script or a cron job can
 * tell the ends apart (like `terraform plan -detailed-exitcode`): 0 only when nothing is left failing.
 */
export const EXIT_CODES = {
  /** recovered or clean; also a recovery still running (`report`) or just started (`recover`). */
  ok: 0,
  /** Usage errors, invalid input, no such recovery, a refused policy: the command did not do its job. */
  error: 1,
  exhausted: 2,
  deadline: 3,
  batch_cancelled: 4,
  operator_cancelled: 5,
  /** The recovery stopped on a permanent error (e.g. the API refused the key, the batch does not exist). */
  failed: 6,
  /** Temporal could not be reached. */
  unreachable: 7,
} as const;

export function exitCodeForReport(report: RecoveryReport): number {
  if (report.failure) return EXIT_CODES.failed;
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
  if (isTemporalUnreachable(err)) return EXIT_CODES.unreachable;
  return EXIT_CODES.error;
}

/** The table the CLI's --help and the README show. */
export const EXIT_CODES_HELP = `
Exit codes (recover --wait, watch, report <batchId>):
  0  recovered or clean (report: also a recovery still running)
  1  error: invalid input, no such recovery, a refused policy
  2  exhausted: sessions still fail after the last round
  3  deadline: the deadline passed first
  4  batch_cancelled: the batch was cancelled
  5  operator_cancelled: an operator cancelled the recovery
  6  failed: the recovery stopped on a permanent error
  7  Temporal could not be reached`;
