import type { Client, WorkflowExecutionInfo } from '@temporalio/client';
import { RECOVER_BATCH_WORKFLOW } from '../workflows/definitions.js';
import { validateInput, type Typeable } from '../workflows/fields.js';
import { recoveryListFields } from '../workflows/input-fields.js';
import { RECOVERY_MEMO_KEY, type RecoveryMemo } from '../workflows/recovery-details.js';
import {
  anchorBatchIdKey,
  recoveryOutcomeKey,
  recoveryRoundsKey,
  retriedSessionsKey,
  stillFailedSessionsKey,
} from '../workflows/search-attributes.js';

/** One recovery as visibility knows it: the search attributes the workflow publishes as it goes. */
export interface RecoveryRow {
  batchId: string;
  workflowId: string;
  /**
   * The recovery's outcome once it has one (also while it notifies its end); otherwise the workflow's status (running,
   * failed, terminated, …).
   */
  outcome: string;
  rounds: number;
  retriedSessions: number;
  stillFailedSessions: number;
  startedAt: Date;
  /** From the recovery's start, across its continues-as-new; until now while it runs. */
  durationMs: number;
}

export type ListRecoveriesOptions = Typeable<typeof recoveryListFields>;

/** What `outcome` filters on: the RecoveryOutcome search attribute's values, `failed` and `running` included. */
export type ListedOutcome = NonNullable<ListRecoveriesOptions['outcome']>;

/**
 * The rows whose outcome is their workflow's status (toRecoveryRow): a recovery ended by the server wrote no outcome.
 * Before, `--outcome` did not take them, though the rows said them.
 */
const OUTCOME_BY_STATUS: Partial<Record<ListedOutcome, string>> = { terminated: 'Terminated', timed_out: 'TimedOut' };

/** The visibility query for the options; values are validated, so quoting them is safe. */
export function recoveryListQuery(startedAfter: Date, outcome?: ListedOutcome): string {
  const status = outcome === undefined ? undefined : OUTCOME_BY_STATUS[outcome];
  return [
    `WorkflowType = '${RECOVER_BATCH_WORKFLOW}'`,
    `StartTime > '${startedAfter.toISOString()}'`,
    // A recovery that continued as new is one recovery: list only its latest run.
    `ExecutionStatus != 'ContinuedAsNew'`,
    ...(outcome === undefined
      ? []
      : [status === undefined ? `${recoveryOutcomeKey.name} = '${outcome}'` : `ExecutionStatus = '${status}'`]),
    // A recovery terminated before it had an outcome keeps `running`; its row says `terminated`, so it is left out.
    ...(outcome === 'running' ? [`ExecutionStatus = 'Running'`] : []),
  ].join(' AND ');
}

export interface RecoveryList {
  /** Newest first. */
  rows: RecoveryRow[];
  /** More recoveries matched than `limit`: the rows are the first `limit` in the order visibility listed them. */
  truncated: boolean;
}

/** Recoveries across batches, newest first, from Temporal visibility (eventually consistent: seconds behind). */
export async function listRecoveries(client: Client, options: ListRecoveriesOptions = {}): Promise<RecoveryList> {
  const { since, outcome, limit } = validateInput(recoveryListFields, options, 'recovery list options');
  const now = new Date();
  const rows: RecoveryRow[] = [];
  let truncated = false;
  for await (const execution of client.workflow.list({
    query: recoveryListQuery(new Date(now.getTime() - since), outcome),
  })) {
    if (rows.length >= limit) {
      truncated = true;
      break;
    }
    rows.push(toRecoveryRow(execution, now));
  }
  return { rows: rows.sort((a, b) => b.startedAt.getTime() - a.startedAt.getTime()), truncated };
}

export function toRecoveryRow(execution: WorkflowExecutionInfo, now: Date): RecoveryRow {
  const attributes = execution.typedSearchAttributes;
  const status = execution.status.name;
  const outcome = attributes.get(recoveryOutcomeKey);
  // Running, its end decided and being notified (up to 5 min): ended, as steering says, and --outcome finds it so.
  const ended = status === 'RUNNING' && outcome !== undefined && outcome !== 'running';
  // Visibility lists a recovery by its latest run, which a continue-as-new started later than the recovery; the
  // report in its memo has the recovery's start. Without one (not run yet, from before memos, unreadable), the run's.
  const memo = execution.memo?.[RECOVERY_MEMO_KEY] as Partial<RecoveryMemo> | undefined;
  const memoStart = memo?.report?.startedAt === undefined ? NaN : Date.parse(memo.report.startedAt);
  const startedAt = Number.isNaN(memoStart) ? execution.startTime : new Date(memoStart);
  return {
    batchId: attributes.get(anchorBatchIdKey) ?? '',
    workflowId: execution.workflowId,
    outcome: status === 'COMPLETED' || ended ? (outcome ?? 'completed') : status.toLowerCase(),
    rounds: attributes.get(recoveryRoundsKey) ?? 0,
    retriedSessions: attributes.get(retriedSessionsKey) ?? 0,
    stillFailedSessions: attributes.get(stillFailedSessionsKey) ?? 0,
    startedAt,
    durationMs: (execution.closeTime ?? now).getTime() - startedAt.getTime(),
  };
}
