import { activityInfo, heartbeat } from '@temporalio/activity';
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  WorkflowIdReusePolicy,
  WorkflowNotFoundError,
  type Client,
} from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { AnchorApiClient } from '../anchor-api/index.js';
import { recoveryStartOptions } from '../client/recoveries.js';
import { RECOVER_BATCH_WORKFLOW, recoveryWorkflowId } from '../workflows/definitions.js';
import type { RecoverBatchInput } from '../workflows/input.js';
import type { recoverBatch } from '../workflows/recover-batch.js';
import type { RecoveryOverrides, SweepStatus } from '../workflows/sweep-input.js';
import { toActivityFailure } from './failures.js';

export interface ListRecentBatchesInput {
  statuses: SweepStatus[];
  createdAfter: string;
  createdBefore: string;
  pageSize: number;
}

export interface ListBatchPageInput {
  status: SweepStatus;
  page: number;
  createdAfter: string;
  createdBefore: string;
  pageSize: number;
}

export interface ListedBatchPage {
  batches: ListedBatch[];
  /** False on the last page, and on an empty page whatever the API claims, so a wrong has_next cannot loop forever. */
  hasNext: boolean;
}

/** All the sweep keeps of a listed batch, so the activity result stays small however many batches there are. */
export interface ListedBatch {
  batch_id: string;
  failed_requests: number;
  status: SweepStatus;
}

export interface StartBatchRecoveryInput {
  batchId: string;
  recovery: RecoveryOverrides;
}

/**
 * Failures of an earlier recovery that a new one would repeat: the sweep skips
 * such a batch instead of starting a failing workflow every sweep. A wrong key
 * or missing credits are not here: an operator fixes those, and the next sweep
 * should then recover the batch.
 */
const REPEATING_FAILURES = new Set([
  'batch_not_found',
  'malformed_response',
  'bad_request',
  'unexpected_status',
  'InvalidRecoveryInput',
]);

/** The failure type of the batch's last recovery when it failed in a way a new one would repeat. */
async function repeatingFailureOf(client: Client, workflowId: string): Promise<string | undefined> {
  const handle = client.workflow.getHandle(workflowId);
  const status = await handle.describe().then(
    (description) => description.status.name,
    (err: unknown) => {
      if (err instanceof WorkflowNotFoundError) return undefined;
      throw err;
    },
  );
  if (status !== 'FAILED') return undefined;
  const failure = await handle.result().then(
    () => undefined,
    (err: unknown) => (err instanceof WorkflowFailedError ? err.cause : undefined),
  );
  const type = failure instanceof ApplicationFailure ? failure.type : undefined;
  return type && REPEATING_FAILURES.has(type) ? type : undefined;
}

export type StartBatchRecoveryResult =
  | { outcome: 'started'; workflowId: string }
  | { outcome: 'already_running' | 'already_ended' | 'permanently_failed'; workflowId: string };

/** Memo on recoveries a sweep starts: which sweep run started it (also shown in the Web UI). */
interface SweepMemo {
  startedBySweep: string;
}

export function createSweepActivities(api: AnchorApiClient, client: Client) {
  return {
    /**
     * One page of one status's batches created in the window: exactly one Anchor call, so the
     * task queue's task rate limit counts it as the one call it is.
     */
    async listBatchPage(input: ListBatchPageInput): Promise<ListedBatchPage> {
      let answer;
      try {
        answer = await api.listBatches({
          status: input.status,
          page: input.page,
          limit: input.pageSize,
          created_after: input.createdAfter,
          created_before: input.createdBefore,
        });
      } catch (err) {
        throw toActivityFailure(err);
      }
      const batches: ListedBatch[] = [];
      for (const batch of answer.batches ?? []) {
        if (batch.batch_id === undefined) continue;
        batches.push({ batch_id: batch.batch_id, failed_requests: batch.failed_requests ?? 0, status: input.status });
      }
      return { batches, hasNext: Boolean(answer.pagination?.has_next) && (answer.batches ?? []).length > 0 };
    },

    /**
     * Sweeps started before one page per task: kept so they finish.
     * Every page of the batches created in the window, one status at a time
     * (the endpoint filters on one status). `createdBefore` pins the window's
     * end, so batches created while paging do not shift the pages; a batch that
     * still moves between pages is kept once.
     */
    async listRecentBatches(input: ListRecentBatchesInput): Promise<ListedBatch[]> {
      const listed = new Map<string, ListedBatch>();
      for (const status of input.statuses) {
        for (let page = 1; ; page += 1) {
          heartbeat({ status, page });
          let answer;
          try {
            answer = await api.listBatches({
              status,
              page,
              limit: input.pageSize,
              created_after: input.createdAfter,
              created_before: input.createdBefore,
            });
          } catch (err) {
            throw toActivityFailure(err);
          }
          const batches = answer.batches ?? [];
          for (const batch of batches) {
            if (batch.batch_id === undefined || listed.has(batch.batch_id)) continue;
            listed.set(batch.batch_id, {
              batch_id: batch.batch_id,
              failed_requests: batch.failed_requests ?? 0,
              status,
            });
          }
          // An empty page ends the scan even if the API claims more, so a wrong has_next cannot loop forever.
          if (!answer.pagination?.has_next || batches.length === 0) break;
        }
      }
      return [...listed.values()];
    },

    /**
     * Starts a batch's recovery through the Temporal client rather than as a
     * child of the sweep: a child's start cannot tell a running recovery from
     * one that already ended (both are "already exists"), and the sweep must
     * skip an ended one instead of retrying an exhausted batch every sweep.
     * A client start also gives the recovery the same shape as one started
     * from the CLI: no parent, so it outlives the sweep with nothing to configure.
     */
    async startBatchRecovery({ batchId, recovery }: StartBatchRecoveryInput): Promise<StartBatchRecoveryResult> {
      const workflowId = recoveryWorkflowId(batchId);
      const sweepRun = activityInfo().workflowExecution?.runId;
      const input: RecoverBatchInput = { ...recovery, batchId };
      if (await repeatingFailureOf(client, workflowId)) return { outcome: 'permanently_failed', workflowId };
      try {
        await client.workflow.start<typeof recoverBatch>(RECOVER_BATCH_WORKFLOW, {
          // The core's id rule: one recovery per batch, so overlapping sweeps never double up.
          ...recoveryStartOptions(input, activityInfo().taskQueue),
          // A recovery that ended with an outcome is not redone; one that failed or was terminated may be.
          workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
          ...(sweepRun !== undefined && { memo: { startedBySweep: sweepRun } satisfies SweepMemo }),
        });
        return { outcome: 'started', workflowId };
      } catch (err) {
        if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      }
      const description = await client.workflow.getHandle(workflowId).describe();
      if (description.status.name !== 'RUNNING') return { outcome: 'already_ended', workflowId };
      // An earlier attempt of this activity may have started it before its answer was lost.
      const memo = description.memo as Partial<SweepMemo> | undefined;
      return {
        outcome: sweepRun !== undefined && memo?.startedBySweep === sweepRun ? 'started' : 'already_running',
        workflowId,
      };
    },
  };
}

export type SweepActivities = ReturnType<typeof createSweepActivities>;
