import { setTimeout as sleep } from 'node:timers/promises';
import { isDeepStrictEqual } from 'node:util';
import {
  Client,
  Connection,
  defaultGrpcRetryOptions,
  isGrpcServiceError,
  makeGrpcRetryInterceptor,
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
  type WorkflowExecutionDescription,
  type WorkflowHandle,
} from '@temporalio/client';
import { ApplicationFailure, defaultPayloadConverter, TerminatedFailure, TimeoutFailure } from '@temporalio/common';
import { optionalTsToDate } from '@temporalio/common/lib/time.js';
import proto from '@temporalio/proto';
import ms from 'ms';
import { DEFAULT_CALL_TIMEOUT_MS, defaultCallDeadline } from './call-deadline.js';
import type { TemporalConnectionConfig } from '../worker/config.js';
import { recentPollerIdentities } from '../worker/task-queue-pollers.js';
import { describeIfStarted } from '../worker/workflow-description.js';
import type { BatchSnapshot } from '../workflows/report.js';
import {
  DEFAULT_TASK_QUEUE,
  getRecoveryReport,
  pauseRecovery,
  RECOVER_BATCH_WORKFLOW,
  RECOVERY_ENDED,
  recoveryWorkflowId,
  resumeRecovery,
  retryNow,
  updateRecoveryPolicy,
  workflowTaskFailures,
  type PolicyChange,
} from '../workflows/definitions.js';
import {
  InvalidInputError,
  parseRecoverBatchInput,
  unitlessDurationProblems,
  type RecoverBatchInput,
  type RecoveryPolicy,
} from '../workflows/input.js';
import type { recoverBatch } from '../workflows/recover-batch.js';
import { RECOVERY_MEMO_KEY, type RecoveryMemo } from '../workflows/recovery-details.js';
import {
  leftCallOfUnknownOutcome,
  newReport,
  recordFailure,
  UNKNOWN_OUTCOME_HOLD_MS,
  type RecoveryReport,
} from '../workflows/report.js';
import {
  recoveryOutcomeKey,
  recoveryRoundsKey,
  retriedSessionsKey,
  stillFailedSessionsKey,
} from '../workflows/search-attributes.js';
import { recoveryStartOptions } from '../workflows/recovery-start.js';
import { TemporalUnreachableError } from '../worker/temporal-unreachable.js';

export { TemporalUnreachableError };

/**
 * A call's error as the CLI shows it: one that means Temporal did not answer names the server, and what gRPC said
 * under the SDK's "Failed to signal Workflow" (the limit, for a call past its deadline); any other error as it is.
 */
export function namingTheServer(err: unknown, address: string): unknown {
  if (!isTemporalUnreachable(err) || err instanceof TemporalUnreachableError || !(err instanceof Error)) return err;
  return new TemporalUnreachableError(address, err);
}

/** The server's address as the connection was given it, for errors that name it. */
function addressOf(client: Client): string {
  return client.connection instanceof Connection ? client.connection.options.address : 'the Temporal server';
}

/** How long one call to Temporal may take while following a recovery: the server answers in milliseconds. */
export const FOLLOW_CALL_TIMEOUT_MS = 15_000;
/**
 * Following a recovery (watch, recover --wait) gives up once Temporal has not answered for this long: the operator
 * learns of it (exit 7) instead of watching a line that no longer changes.
 */
export const LOST_CONTACT_AFTER_MS = 60_000;

/** The answers, and their absence, while following one recovery. */
export class TemporalContact {
  /** When the server last answered; from the start, as nothing was asked before. */
  private lastAnswerAt = Date.now();
  private lostSince: number | undefined;

  constructor(
    private readonly recoveries: BatchRecoveries,
    private readonly batchId: string,
    private readonly lostAfterMs: number = LOST_CONTACT_AFTER_MS,
  ) {}

  /**
   * The call's answer, or undefined when none came (unreachable, or past FOLLOW_CALL_TIMEOUT_MS beyond the query's
   * own timeout, which a call may spend waiting for a worker); throws TemporalUnreachableError once none has come
   * for `lostAfterMs`, and any other error as it is.
   */
  async ask<T>(call: () => Promise<T>): Promise<T | undefined> {
    const timeoutMs = FOLLOW_CALL_TIMEOUT_MS + this.recoveries.queryTimeoutMs;
    try {
      const answer = await this.recoveries.client.connection.withDeadline(Date.now() + timeoutMs, call);
      this.lastAnswerAt = Date.now();
      this.lostSince = undefined;
      return answer;
    } catch (err) {
      if (!isTemporalUnreachable(err)) throw err;
      // Silent since the last answer, not since the first call that went unanswered gave up.
      this.lostSince ??= this.lastAnswerAt;
      if (Date.now() - this.lostSince < this.lostAfterMs) return undefined;
      const since = new Date(this.lostSince).toISOString();
      throw new TemporalUnreachableError(
        addressOf(this.recoveries.client),
        // The server's own error, not a wrapper that names the address again.
        err instanceof TemporalUnreachableError && err.cause instanceof Error ? err.cause : (err as Error),
        `following the recovery of batch ${this.batchId} (no answer since ${since})`,
      );
    }
  }

  /** Since when no answer came, or undefined while they come. */
  get silentSince(): Date | undefined {
    return this.lostSince === undefined ? undefined : new Date(this.lostSince);
  }
}

export class RecoveryNotFoundError extends Error {
  override name = 'RecoveryNotFoundError';
  constructor(
    readonly batchId: string,
    /** Every workflow id looked up, in the order tried: an operator goes on to search for them. */
    readonly workflowIds: readonly string[],
  ) {
    const ids = workflowIds.length === 1 ? `workflow id ${workflowIds[0]}` : `workflow ids ${workflowIds.join(', ')}`;
    super(`No recovery found for batch ${batchId} (looked for ${ids})`);
  }
}

/** The recovery stopped on a permanent error (e.g. the API refused the key); its report up to then is kept. */
export class RecoveryFailedError extends Error {
  override name = 'RecoveryFailedError';
  constructor(
    readonly batchId: string,
    readonly report: ClientRecoveryReport | undefined,
    cause: Error,
  ) {
    super(`Recovery of batch ${batchId} failed: ${cause.message}`, { cause });
  }
}

/**
 * The recovery's workflow was ended from outside (`temporal workflow terminate`, a workflow execution or run timeout),
 * so the recovery wrote no end of its own: what it stored last is all there is.
 */
export class RecoveryTerminatedError extends Error {
  override name = 'RecoveryTerminatedError';
  /** How it ended, in a few words: `terminated (<reason>)` or `timed out`. */
  readonly end: string;
  constructor(
    readonly batchId: string,
    readonly how: 'terminated' | 'timed_out',
    readonly reason: string,
    /** The report it stored last; undefined when it stored none the client can read. */
    readonly stored: StoredReport | undefined,
    cause: Error,
  ) {
    super(
      how === 'terminated'
        ? `The recovery of batch ${batchId} was terminated: ${reason}`
        : `The recovery of batch ${batchId} timed out: ${reason}`,
      { cause },
    );
    this.end = how === 'terminated' ? `terminated (${reason})` : 'timed out';
  }
}

/** A signal, a policy change or a cancel for a recovery that has already ended: there is nothing left to steer. */
export class RecoveryEndedError extends Error {
  override name = 'RecoveryEndedError';
  constructor(
    readonly batchId: string,
    /** Its outcome, or how it stopped without one (`failed (<type>): …`, `terminated (<reason>)`, `timed out`). */
    readonly end: string,
  ) {
    super(`The recovery of batch ${batchId} has already ended: ${end}`);
  }
}

/**
 * No worker polls the recovery's task queue, so a request only a worker can answer was not sent: sent, it would wait
 * unanswered, and apply whenever a worker came, long after the caller gave up on it.
 */
export class NoWorkerPollingError extends Error {
  override name = 'NoWorkerPollingError';
  constructor(
    readonly batchId: string,
    readonly taskQueue: string,
    what: string,
  ) {
    super(
      `No worker polls task queue ${taskQueue}, which runs the recovery of batch ${batchId}: ${what} was not sent. ` +
        'Start a worker (batch-recovery worker) and try again.',
    );
  }
}

/** A policy change was sent, but no worker took it up in time: it was neither applied nor refused, and still may be. */
export class PolicyChangeNotConfirmedError extends Error {
  override name = 'PolicyChangeNotConfirmedError';
  constructor(
    readonly batchId: string,
    readonly timeoutMs: number,
    cause: Error,
  ) {
    super(
      `The policy change for batch ${batchId} was not confirmed within ${ms(timeoutMs)}: no worker took it up. ` +
        `It may still apply when a worker picks the recovery up (batch-recovery report ${batchId} shows maxRounds).`,
      { cause },
    );
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

/** The first run of a recovery's chain, where its start's input is. */
function firstRunIdOf(description: WorkflowExecutionDescription): string {
  return description.raw.workflowExecutionInfo?.firstRunId ?? description.runId;
}

/**
 * The batch's last recovery closed less than UNKNOWN_OUTCOME_HOLD_MS ago and may have left a retry call the API can
 * still apply: one whose outcome it could not reconcile, or one out when it was terminated, which its stored report
 * cannot show. A new recovery, reading the batch before, would retry the same sessions a second time.
 */
export class UnknownOutcomeHoldError extends Error {
  override name = 'UnknownOutcomeHoldError';
  constructor(
    readonly batchId: string,
    readonly closedAt: Date,
    readonly holdUntil: Date,
    /** What it left: `left a retry call whose outcome it could not reconcile`, say. */
    readonly why: string,
  ) {
    super(
      `The last recovery of batch ${batchId}, closed at ${closedAt.toISOString()}, ${why}: the API may still apply ` +
        'it, and a new recovery would retry the same sessions again. Check the batch at Anchor; start one after ' +
        `${holdUntil.toISOString()}, or now with force (--force)`,
    );
  }
}

/**
 * `recover` with a policy for a batch whose recovery already runs: the running recovery keeps its
 * own policy unless the caller asks for the new one to be applied (`applyPolicy`).
 */
export class RecoveryAlreadyRunningError extends Error {
  override name = 'RecoveryAlreadyRunningError';
  constructor(
    readonly batchId: string,
    readonly workflowId: string,
    /** Policy fields that were to be applied but cannot change after the start; none when applying was not asked. */
    readonly fixedFields: readonly string[] = [],
    /** It runs under the batch id as typed (an earlier release did not lower-case it): neither attached to nor doubled. */
    readonly underTypedId = false,
  ) {
    super(
      `A recovery is already running for batch ${batchId} (workflow ${workflowId}); ` +
        (underTypedId
          ? 'an earlier release started it under the batch id as typed, so steer it by its workflow id (the Web UI, ' +
            'or the temporal CLI); no second recovery of the batch was started.'
          : fixedFields.length === 0
            ? 'its policy was left unchanged. Apply the new policy to it with --apply-policy (applyPolicy: true), ' +
              'or attach without policy options.'
            : `${fixedFields.join(', ')} cannot change after the start, so nothing was applied. ` +
              `Leave ${fixedFields.length === 1 ? 'it' : 'them'} out to apply the rest.`),
    );
  }
}

/** No worker answered and the recovery holds no stored report (it started before reports were stored). */
export class NoStoredReportError extends Error {
  override name = 'NoStoredReportError';
  constructor(
    readonly batchId: string,
    reason: string,
    searchAttributes: string,
  ) {
    super(
      `No worker answered for the recovery of batch ${batchId} (${reason}) and it stores no report; ` +
        `its search attributes say: ${searchAttributes}`,
    );
  }
}

/** A report as the workflow fails with it (its failure's first detail), not another detail such as a problem. */
function isRecoveryReport(value: unknown): value is RecoveryReport {
  if (typeof value !== 'object' || value === null) return false;
  const { batchId, rounds } = value as Partial<Record<keyof RecoveryReport, unknown>>;
  return typeof batchId === 'string' && Array.isArray(rounds);
}

/**
 * Errors that mean Temporal itself could not be reached, or did not answer within the call's deadline (a network
 * that drops packets without closing the connection), as opposed to an answer it gave.
 */
export function isTemporalUnreachable(err: unknown): boolean {
  if (err instanceof TemporalUnreachableError) return true;
  const UNAVAILABLE = 14; // the gRPC status of a server that cannot be reached
  const code = grpcCodeOf(err);
  return code === UNAVAILABLE || code === DEADLINE_EXCEEDED;
}

export interface ConnectOptions extends TemporalConnectionConfig {
  connectTimeoutMs?: number;
  /** How long a call that sets no deadline of its own may go unanswered (DEFAULT_CALL_TIMEOUT_MS). */
  callTimeoutMs?: number;
}

export async function connectTemporal({
  address,
  namespace,
  tls,
  apiKey,
  connectTimeoutMs = 5_000,
  callTimeoutMs = DEFAULT_CALL_TIMEOUT_MS,
}: ConnectOptions): Promise<Client> {
  try {
    const connection = await Connection.connect({
      address,
      tls,
      apiKey,
      connectTimeout: connectTimeoutMs,
      interceptors: [defaultCallDeadline(callTimeoutMs), makeGrpcRetryInterceptor(defaultGrpcRetryOptions())],
    });
    return new Client({ connection, namespace });
  } catch (err) {
    // A refused key or certificate is no outage: the server's own words, exit 1, where 7 (unreachable) is what a
    // script may wait out and try again, and the message sent an operator to the network.
    const code = grpcCodeOf(err);
    if (code === UNAUTHENTICATED || code === PERMISSION_DENIED) {
      const refusal = err instanceof Error && err.cause instanceof Error ? err.cause : (err as Error);
      throw new Error(`Temporal at ${address} refused this client's credentials: ${refusal.message}`, { cause: err });
    }
    throw new TemporalUnreachableError(address, err as Error);
  }
}

/** The gRPC statuses of a server that refuses who the client is, or what it may do. */
const UNAUTHENTICATED = 16;
const PERMISSION_DENIED = 7;

export interface StartedRecovery {
  batchId: string;
  workflowId: string;
  runId: string;
  /** True when a recovery was already running for the batch and this call joined it. */
  attached: boolean;
  /** True when the caller's policy was applied to the running recovery (`applyPolicy`). */
  policyApplied: boolean;
}

export interface StartOptions {
  /**
   * When a recovery already runs for the batch and `input` carries policy fields: true applies
   * them through the `updateRecoveryPolicy` update (as updatePolicy does, with its errors); otherwise
   * the start is refused with RecoveryAlreadyRunningError. Without policy fields the call attaches either way.
   */
  applyPolicy?: boolean;
  /**
   * Starts a new recovery even when the batch's last one closed less than UNKNOWN_OUTCOME_HOLD_MS ago with a retry call
   * of unknown outcome (otherwise UnknownOutcomeHoldError): once the batch shows that call was not applied.
   */
  force?: boolean;
}

/**
 * Where a report comes from: a worker's answer to the query, or what the server stored (no worker answered). A stored
 * one lists the latest rounds only: `roundsOmitted` counts the rounds before them, its own `omittedRounds` among them.
 */
export type ReportSource =
  { kind: 'live' } | { kind: 'final' } | { kind: 'stored'; recordedAt: string; reason: string; roundsOmitted: number };

/**
 * A report as this client hands it out: the recovery's own, or one made here of a start whose input cannot be read
 * (one not started yet, or refused), whose maximum of rounds and deadline are not known: null. Before, `0` rounds
 * and the start time.
 */
export type ClientRecoveryReport = Omit<RecoveryReport, 'maxRounds' | 'deadlineAt'> & {
  maxRounds: number | null;
  deadlineAt: string | null;
};

/** The report a recovery stored in its memo, for when no worker can answer or none ever will. */
export interface StoredReport {
  report: ClientRecoveryReport;
  source: Extract<ReportSource, { kind: 'stored' }>;
}

/** What waiting a while for a recovery to end came to. */
export type RecoveryEnding = { ended: true; report: RecoveryReport } | { ended: false; reason: string };

export interface ResultOptions {
  /** How long without an answer from Temporal before it gives up (TemporalUnreachableError); 60 s by default. */
  lostContactAfterMs?: number;
}

export interface UpdatePolicyOptions {
  /** How long to wait for a worker to take the change up and answer; DEFAULT_UPDATE_TIMEOUT_MS by default. */
  timeoutMs?: number;
}

/** Where a recovery stands while the batch is in flight: the pending status read's last answer. */
export interface RecoveryProgress {
  report: ClientRecoveryReport;
  running: boolean;
  source: ReportSource;
  poll: { attempt: number; message: string; batch: Omit<BatchSnapshot, 'failing'> | null } | null;
  /** The recovery reads its batch itself (a status read is pending); else, waiting, it waits for the poller. */
  readsBatchItself?: boolean;
  /** How many times in a row the recovery's pending workflow task has failed or timed out; 0 when it has none. */
  workflowTaskFailures: number;
}

export type RecoveryHandle = WorkflowHandle<typeof recoverBatch>;

// Shared with the sweep's activities, so it lives below client/; re-exported for the library's users.
export { recoveryStartOptions } from '../workflows/recovery-start.js';

/** The fields of the policy an update can change; deadline and continueAsNewAfterEvents are fixed at start. */
const CHANGEABLE_POLICY_FIELDS = ['maxRounds', 'maxRetries', 'retryFailedOnly', 'roundBackoff', 'poll'] as const;

/**
 * What the recovery's pending workflow task tells of why no worker answered, or null when it has none. A task that
 * fails again and again (a bug, a non-determinism error after a deploy) is not a slow worker, and says so. Times,
 * not ages: the plain progress view prints a line each time this changes.
 */
export function pendingWorkflowTaskFact(
  task: proto.temporal.api.workflow.v1.IPendingWorkflowTaskInfo | null | undefined,
): string | null {
  if (!task) return null;
  const failures = workflowTaskFailures(task);
  if (failures > 0)
    return `its workflow task has failed or timed out ${failures} time${failures === 1 ? '' : 's'} in a row (see the worker's log)`;
  const since = (at: Date | undefined) => at?.toISOString() ?? 'an unknown time';
  return task.state === proto.temporal.api.enums.v1.PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_STARTED
    ? `a worker has held its workflow task since ${since(optionalTsToDate(task.startedTime))}`
    : `its workflow task has waited for a worker since ${since(optionalTsToDate(task.scheduledTime))}`;
}

/** Between calls that went unanswered: a refused connection fails at once. */
const NO_ANSWER_PAUSE_MS = 1_000;
/** How long `result` waits for the end in one long poll, before it asks the server again how the recovery stands. */
const RESULT_WAIT_MS = 30_000;

/** How long `progress` waits for a worker to answer the report query before reading the stored report. */
export const DEFAULT_QUERY_TIMEOUT_MS = 3_000;

/**
 * How long `updatePolicy` waits for a worker to take a change up and answer. A worker that polls answers within a
 * second; longer means it is gone (a server remembers pollers for minutes) or stuck, and waiting on helps nobody.
 */
export const DEFAULT_UPDATE_TIMEOUT_MS = 10_000;

const DEADLINE_EXCEEDED = 4; // the gRPC status of a call that outlived its deadline
const CANCELLED = 1;

function grpcCodeOf(err: unknown): number | undefined {
  const cause = err instanceof Error && err.cause ? err.cause : err;
  return isGrpcServiceError(cause) ? Number(cause.code) : undefined;
}

/**
 * Whether a wait for the end stopped at its deadline (a time in ms). The long poll's call past it fails as
 * DEADLINE_EXCEEDED, and now and then as CANCELLED ("Call cancelled", about 1 in 30 on a busy machine).
 */
function endedByDeadline(err: unknown, deadline: number): boolean {
  const code = grpcCodeOf(err);
  return code === DEADLINE_EXCEEDED || (code === CANCELLED && Date.now() >= deadline);
}

/**
 * A report made here of a start whose input cannot be read: its maximum of rounds and its deadline are not known,
 * whatever `report` was made with.
 */
function reportWithoutPolicy(report: RecoveryReport): ClientRecoveryReport {
  return { ...report, maxRounds: null, deadlineAt: null };
}

/** The client's operations on recoveries, one per batch; the CLI is a thin layer over this. */
export class BatchRecoveries {
  constructor(
    readonly client: Client,
    readonly taskQueue: string = DEFAULT_TASK_QUEUE,
    readonly queryTimeoutMs: number = DEFAULT_QUERY_TIMEOUT_MS,
  ) {}

  /**
   * Recoveries a release before batch ids were lower-cased started under the id as typed, found by `describe` for
   * an id typed the same way: by the lower-case batch id.
   */
  private readonly upperCaseWorkflowIds = new Map<string, string>();

  handle(batchId: string): RecoveryHandle {
    // As recoveryStartOptions names it: a UUID is the same in either case.
    const lowerCase = batchId.toLowerCase();
    const workflowId = this.upperCaseWorkflowIds.get(lowerCase) ?? recoveryWorkflowId(lowerCase);
    return this.client.workflow.getHandle<typeof recoverBatch>(workflowId);
  }

  /**
   * Starts a recovery, or attaches to the one already running for the batch. Attaching never
   * drops a policy silently: see StartOptions.applyPolicy.
   */
  async start(
    input: RecoverBatchInput,
    { applyPolicy = false, force = false }: StartOptions = {},
  ): Promise<StartedRecovery> {
    // As the workflow refuses them (a deadline of "3600" read as 3.6 s), before anything is started.
    const unitless = unitlessDurationProblems(input);
    if (unitless.length > 0) throw new InvalidInputError(unitless);
    const options = recoveryStartOptions(input, this.taskQueue);
    const [{ batchId }] = options.args;
    const { workflowId } = options;
    // Under the id as typed (an earlier release named one so), and in upper case whatever case it was typed in: before,
    // a lower-case id started a second recovery beside a running upper-case one.
    for (const spelling of new Set([input.batchId, batchId.toUpperCase()]))
      if (spelling !== batchId) await this.refuseStartBesideRecoveryUnder(spelling);
    if (!force) await this.refuseStartAfterUnknownOutcome(batchId);
    try {
      const handle = await this.client.workflow.start<typeof recoverBatch>(RECOVER_BATCH_WORKFLOW, options);
      return { batchId, workflowId, runId: handle.firstExecutionRunId, attached: false, policyApplied: false };
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    }
    const description = await this.handle(batchId).describe();
    const attached = { batchId, workflowId, runId: description.runId, attached: true };
    const given = Object.keys(input).filter((key) => key !== 'batchId');
    if (given.length === 0) return { ...attached, policyApplied: false };
    const asked = parseRecoverBatchInput(options.args[0]);
    if (!applyPolicy) {
      // The same input as the running recovery's start (two starts racing, a retried script) is no new policy.
      if (isDeepStrictEqual(asked, await this.startPolicy(workflowId, firstRunIdOf(description))))
        return { ...attached, policyApplied: false };
      throw new RecoveryAlreadyRunningError(batchId, workflowId);
    }
    // Applied whatever the start was: a change since may have moved the running policy away from it, and the caller
    // asked for this one.
    // A field that cannot change is no change when it is what the recovery started with (a retried script).
    const fixed = given.filter((key) => !(CHANGEABLE_POLICY_FIELDS as readonly string[]).includes(key));
    const started = fixed.length > 0 ? await this.startPolicy(workflowId, firstRunIdOf(description)) : undefined;
    const changed = fixed.filter((key) => {
      const field = key as keyof RecoveryPolicy;
      return !isDeepStrictEqual(asked[field], started?.[field]);
    });
    if (changed.length > 0) throw new RecoveryAlreadyRunningError(batchId, workflowId, changed);
    const change = Object.fromEntries(
      CHANGEABLE_POLICY_FIELDS.filter((key) => input[key] !== undefined).map((key) => [key, input[key]]),
    ) as PolicyChange;
    // Only fields it started with: before, an empty change was sent, which the workflow refuses (exit 1), or which
    // waited for a worker (exit 10), where the same start without --apply-policy attaches.
    if (Object.keys(change).length === 0) return { ...attached, policyApplied: false };
    await this.updatePolicy(batchId, change);
    return { ...attached, policyApplied: true };
  }

  /**
   * Before, a recovery started again by hand (after an `exhausted` one, with more rounds; after a failed one, its key
   * fixed) read the batch at once, and retried again sessions a call of the last one still being applied would retry.
   * The sweeps hold such a batch as long (`held`). Looked up by the batch's own id, not cached: a recovery an earlier
   * release started under the id in upper case is not the one the start makes, nor the one later calls should find.
   */
  private async refuseStartAfterUnknownOutcome(batchId: string): Promise<void> {
    const description = await describeIfStarted(this.client, recoveryWorkflowId(batchId));
    const closedAt = description?.closeTime;
    if (description === undefined || description.status.name === 'RUNNING' || closedAt === undefined) return;
    const holdUntil = new Date(closedAt.getTime() + UNKNOWN_OUTCOME_HOLD_MS);
    if (Date.now() >= holdUntil.getTime()) return;
    const refuse = (why: string) => new UnknownOutcomeHoldError(batchId, closedAt, holdUntil, why);
    // Its memo is written at rests only: a call out when it was ended from outside is in no report.
    if (description.status.name === 'TERMINATED' || description.status.name === 'TIMED_OUT')
      throw refuse(
        `was ${description.status.name === 'TERMINATED' ? 'terminated' : 'timed out'}, and may have had a retry call ` +
          'out then, which its stored report cannot show',
      );
    // The run described: a run started since (a sweep's) would hold the wait for it until its end.
    const run = { workflowId: description.workflowId, runId: description.runId };
    const report = await this.finalReport(batchId, undefined, run).catch((err: unknown) => {
      if (err instanceof RecoveryFailedError) return err.report;
      throw err;
    });
    if (leftCallOfUnknownOutcome(report)) throw refuse('left a retry call whose outcome it could not reconcile');
  }

  /**
   * A release before batch ids were lower-cased named a recovery by the id as typed: one of those still running for
   * the batch is steered by its own workflow id, and a second recovery of the batch is not started beside it.
   */
  private async refuseStartBesideRecoveryUnder(spelling: string): Promise<void> {
    const workflowId = recoveryWorkflowId(spelling);
    const running = (await describeIfStarted(this.client, workflowId))?.status.name === 'RUNNING';
    if (running) throw new RecoveryAlreadyRunningError(spelling, workflowId, [], true);
  }

  /** The policy a recovery's chain was started with: the input of its first run's first event. */
  private async startPolicy(workflowId: string, firstRunId: string): Promise<RecoveryPolicy | undefined> {
    const { history } = await this.client.workflowService.getWorkflowExecutionHistory({
      namespace: this.client.options.namespace,
      execution: { workflowId, runId: firstRunId },
      maximumPageSize: 1,
    });
    const payload = history?.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
    if (!payload) return undefined;
    try {
      return parseRecoverBatchInput(defaultPayloadConverter.fromPayload(payload));
    } catch {
      return undefined;
    }
  }

  /** The live report of a running recovery, or the final one of a finished recovery. */
  async report(batchId: string): Promise<ClientRecoveryReport> {
    return (await this.progress(batchId)).report;
  }

  async progress(batchId: string): Promise<RecoveryProgress> {
    const description = await this.describe(batchId);
    const running = description.status.name === 'RUNNING';
    const { report, source } = running
      ? await this.liveOrStoredReport(batchId, description)
      : { report: await this.finalReport(batchId), source: { kind: 'final' } as const };
    const pending = description.raw.pendingActivities?.find(
      (activity) => activity.activityType?.name === 'awaitBatchSettled',
    );
    const failure = pending?.lastFailure;
    const detail = failure?.applicationFailureInfo?.details?.payloads?.[0];
    return {
      report,
      running,
      source,
      workflowTaskFailures: workflowTaskFailures(description.raw.pendingWorkflowTask),
      readsBatchItself: pending !== undefined,
      poll: failure
        ? {
            attempt: pending?.attempt ?? 0,
            message: failure.message ?? '',
            batch: detail ? defaultPayloadConverter.fromPayload<Omit<BatchSnapshot, 'failing'>>(detail) : null,
          }
        : null,
    };
  }

  /**
   * Waits for the recovery to end and returns its final report. TemporalUnreachableError once the server has not
   * answered for LOST_CONTACT_AFTER_MS.
   */
  async result(batchId: string, { lostContactAfterMs }: ResultOptions = {}): Promise<RecoveryReport> {
    const contact = new TemporalContact(this, batchId, lostContactAfterMs);
    for (;;) {
      const description = await contact.ask(() => this.describe(batchId));
      if (description?.status.name === 'RUNNING') {
        // A long poll, renewed: one held by a network that went silent ends with its deadline, and is asked about.
        // Its error path reads the recovery again, within the outer deadline.
        const pollDeadline = Date.now() + RESULT_WAIT_MS;
        try {
          return await this.client.connection.withDeadline(pollDeadline + FOLLOW_CALL_TIMEOUT_MS, () =>
            this.finalReport(batchId, pollDeadline),
          );
        } catch (err) {
          if (!endedByDeadline(err, pollDeadline)) throw err;
          // Ended well before its deadline (a server or a proxy short of time): not asked again at once.
          if (Date.now() < pollDeadline - NO_ANSWER_PAUSE_MS) await sleep(NO_ANSWER_PAUSE_MS);
          continue;
        }
      }
      const report = description && (await contact.ask(() => this.finalReport(batchId)));
      if (report) return report;
      await sleep(NO_ANSWER_PAUSE_MS);
    }
  }

  /**
   * Waits at most `timeoutMs` for the recovery to end: its final report, or why it has not ended. No wait at all when
   * no worker polls its task queue: nothing would run it meanwhile.
   */
  async waitForEnd(batchId: string, timeoutMs: number): Promise<RecoveryEnding> {
    const description = await this.describe(batchId);
    if (description.status.name !== 'RUNNING') return { ended: true, report: await this.finalReport(batchId) };
    if (!(await this.hasLivePollers(description.taskQueue)))
      return { ended: false, reason: `no worker polls task queue ${description.taskQueue}` };
    const deadline = Date.now() + timeoutMs;
    try {
      return { ended: true, report: await this.finalReport(batchId, deadline) };
    } catch (err) {
      if (!endedByDeadline(err, deadline)) throw err;
      return { ended: false, reason: `not within ${ms(timeoutMs)}` };
    }
  }

  /**
   * Asks the recovery to stop; it ends with outcome `operator_cancelled` and its report once a worker runs it. The
   * server records the request at once, worker or not. RecoveryEndedError when it has already ended, or has decided
   * its end and is notifying it: a cancel would change nothing, and the recovery would not end operator_cancelled.
   */
  async cancel(batchId: string): Promise<void> {
    await this.steerable(batchId);
    await this.handle(batchId).cancel().catch(this.notFoundOrEnded(batchId));
  }

  /** RecoveryEndedError when the recovery has ended, or has decided its end and is notifying it. */
  async retryNow(batchId: string): Promise<void> {
    await this.steerable(batchId);
    await this.handle(batchId).signal(retryNow).catch(this.notFoundOrEnded(batchId));
  }

  /** RecoveryEndedError when the recovery has ended, or has decided its end and is notifying it. */
  async pause(batchId: string): Promise<void> {
    await this.steerable(batchId);
    await this.handle(batchId).signal(pauseRecovery).catch(this.notFoundOrEnded(batchId));
  }

  /** RecoveryEndedError when the recovery has ended, or has decided its end and is notifying it. */
  async resume(batchId: string): Promise<void> {
    await this.steerable(batchId);
    await this.handle(batchId).signal(resumeRecovery).catch(this.notFoundOrEnded(batchId));
  }

  /**
   * Changes the policy of the rounds to come and returns the report with it applied. Only a worker can apply or
   * refuse it, so it is not sent when no worker polls the recovery's task queue (NoWorkerPollingError), and waited
   * for at most `timeoutMs` (PolicyChangeNotConfirmedError: it may still apply later).
   */
  async updatePolicy(
    batchId: string,
    change: PolicyChange,
    { timeoutMs = DEFAULT_UPDATE_TIMEOUT_MS }: UpdatePolicyOptions = {},
  ): Promise<RecoveryReport> {
    const description = await this.steerable(batchId);
    if (!(await this.hasLivePollers(description.taskQueue)))
      throw new NoWorkerPollingError(batchId, description.taskQueue, 'the policy change');
    try {
      return await this.client.connection.withDeadline(Date.now() + timeoutMs, () =>
        this.handle(batchId).executeUpdate(updateRecoveryPolicy, { args: [change] }),
      );
    } catch (err) {
      // Refused by the workflow itself when its end was decided after the check above.
      if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure) {
        const { type, details } = err.cause;
        const end = details?.[0];
        if (type === RECOVERY_ENDED) throw new RecoveryEndedError(batchId, typeof end === 'string' ? end : 'unknown');
      }
      if (err instanceof WorkflowUpdateFailedError && err.cause)
        throw new PolicyChangeRejectedError(batchId, err.cause);
      if (err instanceof WorkflowUpdateRPCTimeoutOrCancelledError)
        throw new PolicyChangeNotConfirmedError(batchId, timeoutMs, err);
      return this.notFoundOrEnded(batchId)(err);
    }
  }

  /**
   * The live report when a worker answers the query; else the report the workflow stored in its
   * memo, which is as old as its last change (no worker, no change).
   */
  private async liveOrStoredReport(
    batchId: string,
    description: WorkflowExecutionDescription,
  ): Promise<{ report: ClientRecoveryReport; source: ReportSource }> {
    let reason = 'no worker polls the task queue';
    if (await this.hasLivePollers(description.taskQueue)) {
      try {
        const report = await this.client.connection.withDeadline(Date.now() + this.queryTimeoutMs, () =>
          this.handle(batchId).query(getRecoveryReport),
        );
        return { report, source: { kind: 'live' } };
      } catch (err) {
        if (err instanceof WorkflowNotFoundError)
          throw new RecoveryNotFoundError(batchId, [this.handle(batchId).workflowId]);
        reason = `no worker answered within ${this.queryTimeoutMs} ms`;
      }
    }
    const taskFact = pendingWorkflowTaskFact(description.raw.pendingWorkflowTask);
    if (taskFact) reason = `${reason}; ${taskFact}`;
    return this.storedReport(batchId, description, reason);
  }

  /** The report the workflow stored in its memo, which is as old as its last change; `reason` says why it is read. */
  private async storedReport(
    batchId: string,
    description: WorkflowExecutionDescription,
    reason: string,
  ): Promise<StoredReport> {
    const memo = description.memo?.[RECOVERY_MEMO_KEY] as RecoveryMemo | undefined;
    const attributes = description.typedSearchAttributes;
    // The start sets RecoveryOutcome `running`; the first workflow task writes RecoveryRounds, or only `failed` when it
    // refuses the input.
    const outcome = attributes.get(recoveryOutcomeKey);
    const untouched = attributes.get(recoveryRoundsKey) === undefined && (outcome ?? 'running') === 'running';
    if (!memo && untouched) {
      // No workflow task has run yet (no worker has picked the recovery up): the report as it starts.
      const policy = await this.startPolicy(description.workflowId, firstRunIdOf(description));
      const startedAt = description.startTime;
      const report = policy
        ? newReport(
            batchId,
            description.workflowId,
            startedAt,
            new Date(startedAt.getTime() + policy.deadline),
            policy.maxRounds,
          )
        : reportWithoutPolicy(newReport(batchId, description.workflowId, startedAt, startedAt, 1));
      return {
        report,
        source: {
          kind: 'stored',
          recordedAt: startedAt.toISOString(),
          reason: `${reason}; not started yet`,
          roundsOmitted: 0,
        },
      };
    }
    if (!memo) {
      const facts = [
        `outcome ${attributes.get(recoveryOutcomeKey) ?? 'unknown'}`,
        `${attributes.get(recoveryRoundsKey) ?? '?'} rounds`,
        `${attributes.get(retriedSessionsKey) ?? '?'} retried`,
        `${attributes.get(stillFailedSessionsKey) ?? '?'} still failing`,
      ];
      throw new NoStoredReportError(batchId, reason, facts.join(', '));
    }
    // The memo keeps the report's latest rounds: past its rounds kept in full, the ones it left out are older still.
    const roundsOmitted = memo.roundsOmitted > 0 ? memo.roundsOmitted + (memo.report.omittedRounds?.count ?? 0) : 0;
    return { report: memo.report, source: { kind: 'stored', recordedAt: memo.recordedAt, reason, roundsOmitted } };
  }

  /**
   * A running recovery that has not decided its end yet. Steering one that has would be taken and change nothing it
   * does: it is notifying its end, which can take minutes, and its memo already has the outcome (written as the end
   * was decided).
   */
  private async steerable(batchId: string): Promise<WorkflowExecutionDescription> {
    const description = await this.describe(batchId);
    if (description.status.name !== 'RUNNING') throw new RecoveryEndedError(batchId, await this.endOf(batchId));
    const stored = (description.memo?.[RECOVERY_MEMO_KEY] as RecoveryMemo | undefined)?.report;
    const failure = stored?.failure;
    const end = stored?.outcome ?? (failure ? `failed (${failure.type}): ${failure.message}` : undefined);
    if (end) throw new RecoveryEndedError(batchId, `${end} (its end is being notified)`);
    return description;
  }

  /** Whether a worker polled the task queue's workflow tasks within the server's memory of pollers (5 min). */
  async hasLivePollers(taskQueue: string): Promise<boolean> {
    return (await recentPollerIdentities(this.client, taskQueue, 'workflow')).length > 0;
  }

  private async describe(batchId: string): Promise<WorkflowExecutionDescription> {
    return this.handle(batchId)
      .describe()
      .catch((err: unknown) => {
        if (err instanceof WorkflowNotFoundError) return this.describeUpperCaseRecovery(batchId);
        // The bare SDK error names neither the server nor the recovery.
        if (isTemporalUnreachable(err) && !(err instanceof TemporalUnreachableError))
          throw new TemporalUnreachableError(
            addressOf(this.client),
            err as Error,
            `reading the recovery of batch ${batchId}`,
          );
        throw err;
      });
  }

  /**
   * A recovery an earlier release started under the batch id as typed (docs/deployment.md's upgrade note), looked
   * for as typed now and in upper case: found, it is the one this client steers for the batch from now on.
   * RecoveryNotFoundError, naming every workflow id looked for, when there is none either.
   */
  private async describeUpperCaseRecovery(batchId: string): Promise<WorkflowExecutionDescription> {
    const lowerCase = batchId.toLowerCase();
    const lookedFor = [this.handle(batchId).workflowId];
    if (!this.upperCaseWorkflowIds.has(lowerCase)) {
      for (const spelling of new Set([batchId, batchId.toUpperCase()])) {
        if (spelling === lowerCase) continue;
        const workflowId = recoveryWorkflowId(spelling);
        const description = await describeIfStarted(this.client, workflowId);
        if (!description) {
          lookedFor.push(workflowId);
          continue;
        }
        this.upperCaseWorkflowIds.set(lowerCase, workflowId);
        return description;
      }
    }
    throw new RecoveryNotFoundError(batchId, lookedFor);
  }

  /**
   * For a signal, an update or a cancel, the server answers "not found" both when there is no such workflow and when
   * it has ended ("workflow execution already completed"): tell them apart.
   */
  private notFoundOrEnded(batchId: string) {
    return async (err: unknown): Promise<never> => {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
      const description = await this.describe(batchId);
      if (description.status.name === 'RUNNING') throw err;
      throw new RecoveryEndedError(batchId, await this.endOf(batchId));
    };
  }

  /** How an ended recovery ended, in a few words: its outcome, or how it stopped without one. */
  private async endOf(batchId: string): Promise<string> {
    try {
      return (await this.finalReport(batchId)).outcome ?? 'ended without an outcome';
    } catch (err) {
      if (err instanceof RecoveryTerminatedError) return err.end;
      if (!(err instanceof RecoveryFailedError)) throw err;
      const failure = err.report?.failure;
      return failure ? `failed (${failure.type}): ${failure.message}` : `failed: ${(err.cause as Error).message}`;
    }
  }

  /**
   * The final report, of the latest run or of `run`; waits for the end (until `deadline`, a time in ms, when given). A
   * recovery that stopped on a permanent API error still carries its report in the failure; one ended from outside has
   * only what it stored.
   */
  private async finalReport(
    batchId: string,
    deadline?: number,
    run?: { workflowId: string; runId: string },
  ): Promise<RecoveryReport> {
    const handle =
      run === undefined
        ? this.handle(batchId)
        : this.client.workflow.getHandle<typeof recoverBatch>(run.workflowId, run.runId);
    try {
      return await (deadline === undefined
        ? handle.result()
        : this.client.connection.withDeadline(deadline, () => handle.result()));
    } catch (err) {
      if (!(err instanceof WorkflowFailedError)) throw err;
      const cause = err.cause ?? err;
      if (cause instanceof TerminatedFailure || cause instanceof TimeoutFailure)
        throw await this.endedFromOutside(batchId, cause);
      if (!(cause instanceof ApplicationFailure)) throw new RecoveryFailedError(batchId, undefined, cause);
      const detail = cause.details?.[0];
      const report = isRecoveryReport(detail) ? detail : await this.reportOfRefusedStart(batchId, cause);
      throw new RecoveryFailedError(batchId, report, cause);
    }
  }

  /**
   * A recovery that failed without a report of its own: its input was refused (typed into the Web UI), and the
   * failure's details are the problems. The report says so, so that every failed recovery prints alike.
   */
  private async reportOfRefusedStart(batchId: string, failure: ApplicationFailure): Promise<ClientRecoveryReport> {
    const { workflowId, startTime, closeTime } = await this.describe(batchId);
    const report = newReport(batchId, workflowId, startTime, startTime, 1);
    recordFailure(report, failure.type ?? 'unknown', failure.message);
    report.phase = 'done';
    report.finishedAt = (closeTime ?? startTime).toISOString();
    return reportWithoutPolicy(report);
  }

  private async endedFromOutside(
    batchId: string,
    cause: TerminatedFailure | TimeoutFailure,
  ): Promise<RecoveryTerminatedError> {
    const terminated = cause instanceof TerminatedFailure;
    const reason = terminated ? cause.message : 'its workflow execution or run timeout passed';
    const why = `the workflow ${terminated ? 'was terminated' : 'timed out'}, so the recovery wrote no end`;
    // Described again: the memo of when it was ended, not of when the caller began to wait.
    const description = await this.describe(batchId);
    const stored = await this.storedReport(batchId, description, why).then(
      // The recovery wrote no end: it ended when its workflow closed, as a refused start's report says.
      ({ report, source }) => ({
        report: { ...report, finishedAt: report.finishedAt ?? (description.closeTime ?? new Date()).toISOString() },
        source,
      }),
      (err: unknown) => {
        if (err instanceof NoStoredReportError) return undefined;
        throw err;
      },
    );
    return new RecoveryTerminatedError(batchId, terminated ? 'terminated' : 'timed_out', reason, stored, cause);
  }
}

export { workflowUiUrl } from '../workflows/recovery-details.js';
