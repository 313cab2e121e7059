import {
  Client,
  Connection,
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type WorkflowHandle,
} from '@temporalio/client';
import { ApplicationFailure, defaultPayloadConverter } from '@temporalio/common';
import type { TemporalConnectionConfig } from '../worker/config.js';
import type { BatchSnapshot } from '../workflows/report.js';
import {
  DEFAULT_TASK_QUEUE,
  getRecoveryReport,
  pauseRecovery,
  RECOVER_BATCH_WORKFLOW,
  recoveryWorkflowId,
  resumeRecovery,
  retryNow,
  updateRecoveryPolicy,
  type PolicyChange,
} from '../workflows/definitions.js';
import { parseRecoverBatchInput, type RecoverBatchInput } from '../workflows/input.js';
import type { recoverBatch } from '../workflows/recover-batch.js';
import type { RecoveryReport } from '../workflows/report.js';
import { recoveryStartOptions } from '../workflows/recovery-start.js';

export class TemporalUnreachableError extends Error {
  override name = 'TemporalUnreachableError';
  constructor(
    readonly address: string,
    cause: Error,
  ) {
    super(`Cannot reach Temporal at ${address}: ${cause.message}`, { cause });
  }
}

export class RecoveryNotFoundError extends Error {
  override name = 'RecoveryNotFoundError';
  constructor(readonly batchId: string) {
    super(`No recovery found for batch ${batchId} (workflow id ${recoveryWorkflowId(batchId)})`);
  }
}

/** The recovery stopped on a permanent error (e.g. the API refused the key); its report up to then is kept. */
export class RecoveryFailedError extends Error {
  override name = 'RecoveryFailedError';
  constructor(
    readonly batchId: string,
    readonly report: RecoveryReport | undefined,
    cause: Error,
  ) {
    super(`Recovery of batch ${batchId} failed: ${cause.message}`, { cause });
  }
}

/** The workflow's validator rejected a policy change; nothing was changed. */
export class PolicyChangeRejectedError extends Error {
  override name = 'PolicyChangeRejectedError';
  constructor(
    readonly batchId: string,
    cause: Error,
  ) {
    super(`Policy change for batch ${batchId} rejected: ${cause.message}`, { cause });
  }
}

export interface ConnectOptions extends TemporalConnectionConfig {
  connectTimeoutMs?: number;
}

export async function connectTemporal({
  address,
  namespace,
  tls,
  apiKey,
  connectTimeoutMs = 5_000,
}: ConnectOptions): Promise<Client> {
  try {
    const connection = await Connection.connect({ address, tls, apiKey, connectTimeout: connectTimeoutMs });
    return new Client({ connection, namespace });
  } catch (err) {
    throw new TemporalUnreachableError(address, err as Error);
  }
}

export interface StartedRecovery {
  batchId: string;
  workflowId: string;
  runId: string;
  /** True when a recovery was already running for the batch and this call joined it. */
  attached: boolean;
}

/** Where a recovery stands while the batch is in flight: the pending status read's last answer. */
export interface RecoveryProgress {
  report: RecoveryReport;
  running: boolean;
  poll: { attempt: number; message: string; batch: Omit<BatchSnapshot, 'failing'> | null } | null;
}

export type RecoveryHandle = WorkflowHandle<typeof recoverBatch>;

// Shared with the sweep's activities, so it lives below client/; re-exported for the library's users.
export { recoveryStartOptions } from '../workflows/recovery-start.js';

/** The client's operations on recoveries, one per batch; the CLI is a thin layer over this. */
export class BatchRecoveries {
  constructor(
    readonly client: Client,
    readonly taskQueue: string = DEFAULT_TASK_QUEUE,
  ) {}

  handle(batchId: string): RecoveryHandle {
    return this.client.workflow.getHandle<typeof recoverBatch>(recoveryWorkflowId(batchId));
  }

  /** Starts a recovery, or attaches to the one already running for the batch. */
  async start(input: RecoverBatchInput): Promise<StartedRecovery> {
    const { batchId } = parseRecoverBatchInput(input);
    const options = recoveryStartOptions(input, this.taskQueue);
    const { workflowId } = options;
    try {
      const handle = await this.client.workflow.start<typeof recoverBatch>(RECOVER_BATCH_WORKFLOW, options);
      return { batchId, workflowId, runId: handle.firstExecutionRunId, attached: false };
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      const description = await this.handle(batchId).describe();
      return { batchId, workflowId, runId: description.runId, attached: true };
    }
  }

  /** The live report of a running recovery, or the final one of a finished recovery. */
  async report(batchId: string): Promise<RecoveryReport> {
    return (await this.progress(batchId)).report;
  }

  async progress(batchId: string): Promise<RecoveryProgress> {
    const handle = this.handle(batchId);
    const description = await this.describe(batchId);
    const running = description.status.name === 'RUNNING';
    const report = running ? await handle.query(getRecoveryReport) : await this.finalReport(batchId);
    const pending = description.raw.pendingActivities?.find(
      (activity) => activity.activityType?.name === 'awaitBatchSettled',
    );
    const failure = pending?.lastFailure;
    const detail = failure?.applicationFailureInfo?.details?.payloads?.[0];
    return {
      report,
      running,
      poll: failure
        ? {
            attempt: pending?.attempt ?? 0,
            message: failure.message ?? '',
            batch: detail ? defaultPayloadConverter.fromPayload<Omit<BatchSnapshot, 'failing'>>(detail) : null,
          }
        : null,
    };
  }

  /** Waits for the recovery to end and returns its final report. */
  async result(batchId: string): Promise<RecoveryReport> {
    await this.describe(batchId);
    return this.finalReport(batchId);
  }

  /** Asks the recovery to stop; it ends with outcome `operator_cancelled` and its report. */
  async cancel(batchId: string): Promise<void> {
    await this.describe(batchId);
    await this.handle(batchId).cancel();
  }

  async retryNow(batchId: string): Promise<void> {
    await this.handle(batchId).signal(retryNow).catch(this.notFound(batchId));
  }

  async pause(batchId: string): Promise<void> {
    await this.handle(batchId).signal(pauseRecovery).catch(this.notFound(batchId));
  }

  async resume(batchId: string): Promise<void> {
    await this.handle(batchId).signal(resumeRecovery).catch(this.notFound(batchId));
  }

  async updatePolicy(batchId: string, change: PolicyChange): Promise<RecoveryReport> {
    try {
      return await this.handle(batchId).executeUpdate(updateRecoveryPolicy, { args: [change] });
    } catch (err) {
      if (err instanceof WorkflowUpdateFailedError && err.cause)
        throw new PolicyChangeRejectedError(batchId, err.cause);
      return this.notFound(batchId)(err);
    }
  }

  private async describe(batchId: string) {
    return this.handle(batchId).describe().catch(this.notFound(batchId));
  }

  private notFound(batchId: string) {
    return (err: unknown): never => {
      throw err instanceof WorkflowNotFoundError ? new RecoveryNotFoundError(batchId) : err;
    };
  }

  /** A recovery that stopped on a permanent API error still carries its report in the failure. */
  private async finalReport(batchId: string): Promise<RecoveryReport> {
    try {
      return await this.handle(batchId).result();
    } catch (err) {
      if (!(err instanceof WorkflowFailedError)) throw err;
      const cause = err.cause ?? err;
      const report =
        cause instanceof ApplicationFailure ? (cause.details?.[0] as RecoveryReport | undefined) : undefined;
      throw new RecoveryFailedError(batchId, report, cause);
    }
  }
}

export function workflowUiUrl(uiBaseUrl: string, namespace: string, workflowId: string): string {
  return `${uiBaseUrl.replace(/\/$/, '')}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}
