import { Option, type Command } from 'commander';
import ms from 'ms';
import { recoveryListFields } from '../../workflows/input-fields.js';
import { formatTable } from '../format-report.js';
import { listRecoveries, type ListedOutcome, type RecoveryRow } from '../recovery-list.js';
import type { CommandContext } from './context.js';
import { bounded, boundedAsTyped } from './flags.js';

export interface ReportAllOptions {
  since?: string;
  outcome?: ListedOutcome;
  limit?: number;
  json?: boolean;
}

/** One line per recovery, newest first. */
export function formatRecoveryTable(rows: RecoveryRow[]): string {
  if (rows.length === 0) return 'No recoveries found';
  const header = ['batch', 'outcome', 'rounds', 'retried', 'still failing', 'started', 'duration'];
  const lines = rows.map((row) => [
    row.batchId,
    row.outcome,
    String(row.rounds),
    String(row.retriedSessions),
    String(row.stillFailedSessions),
    row.startedAt.toISOString(),
    ms(row.durationMs),
  ]);
  return formatTable([header, ...lines]).join('\n');
}

/** The options `report` takes when no batch id is given; added to the report command cli.ts defines. */
export function addReportAllOptions(report: Command): Command {
  return report
    .option(
      '--since <duration>',
      'without a batch id: recoveries started within this long, 1ms-365d (default 24h)',
      boundedAsTyped('since', recoveryListFields.since),
    )
    .addOption(
      new Option(
        '--outcome <outcome>',
        'without a batch id: only recoveries with this outcome (failed: stopped on a permanent error; running: not ' +
          'ended; terminated, timed_out: ended by the server with none)',
      ).choices(recoveryListFields.outcome.of),
    )
    .option(
      '--limit <n>',
      `without a batch id: recoveries at most, 1-${recoveryListFields.limit.max} (default ${recoveryListFields.limit.default}); past it, a note says so`,
      bounded('limit', recoveryListFields.limit),
    );
}

/**
 * `report <batchId>` refuses the options of the list, naming each: they filter nothing in one batch's report, and
 * were ignored without a word.
 */
export function refuseListOptionsWithBatchId(options: ReportAllOptions): void {
  const flags = (['since', 'outcome', 'limit'] as const).filter((key) => options[key] !== undefined);
  if (flags.length === 0) return;
  const one = flags.length === 1;
  throw new Error(
    `${flags.map((key) => `--${key}`).join(', ')} ${one ? 'applies' : 'apply'} only without a batch id, to the ` +
      `table of all recent recoveries: leave ${one ? 'it' : 'them'} out, or leave out the batch id`,
  );
}

/** `report` without a batch id: every recovery in the window, from Temporal visibility. */
export async function reportAllRecoveries(
  context: CommandContext,
  command: Command,
  options: ReportAllOptions,
): Promise<void> {
  await context.withClient(command, async (client) => {
    const { rows, truncated } = await listRecoveries(client, {
      ...(options.since !== undefined && { since: options.since }),
      ...(options.outcome !== undefined && { outcome: options.outcome }),
      ...(options.limit !== undefined && { limit: options.limit }),
    });
    context.print(options.json ? JSON.stringify(rows, null, 2) : formatRecoveryTable(rows));
    // Beside the rows, not in them: the JSON stays a list of recoveries.
    if (truncated)
      context.note(
        `More recoveries matched than the ${rows.length} shown (the first ${rows.length} visibility listed): ` +
          'narrow --since or --outcome, or raise --limit',
      );
  });
}
