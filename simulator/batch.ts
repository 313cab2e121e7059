import type {
  BatchSessionItem,
  BatchStatus,
  BatchStatusDetail,
  BatchSummary,
  ProgressPhase,
} from '../anchor-api/schemas.js';

export type AttemptOutcome = 'ok' | 'fail';

/** Decides each attempt's outcome when it is scheduled; `attempt` is 1 for the first try. */
export type OutcomePolicy = (itemIndex: number, attempt: number) => AttemptOutcome;

export interface AttemptTiming {
  /** Time a queued attempt waits before a pod starts working on it. */
  queueDelayMs: number;
  /** Time from start to success or failure. */
  attemptDurationMs: number;
}

export interface Credentials {
  sessionId: string;
  token: string;
}

interface Attempt {
  queuedAt: number;
  startAt: number;
  endAt: number;
  outcome: AttemptOutcome;
  number: number;
  credentials: Credentials | undefined;
}

interface SessionView {
  status: BatchStatus;
  attempt: Attempt;
  started: boolean;
  retryCount: number;
}

/** Answer shapes the contract allows: see `answer` in scripts.ts. */
export interface AnswerShape {
  sessions: boolean;
  retryCount: boolean;
  nulls: boolean;
}

export const FULL_ANSWER: AnswerShape = { sessions: true, retryCount: true, nulls: false };

/** The all-zero `pending` answer of a batch the API has accepted but not started (see `pending_phase`). */
export interface PendingPhase {
  /** Sessions start this long after creation; until then every read is the all-zero answer. */
  ms: number;
  /** The first this many status reads get the all-zero answer, whatever the time. */
  reads: number;
}

/** Optional fields of a status answer and of its sessions that `nulls` sends as null when they have no value. */
const NULLABLE_BATCH_FIELDS = ['actual_completion_time', 'error'] as const;
const NULLABLE_SESSION_FIELDS = [
  'session_id',
  'cdp_url',
  'live_view_url',
  'error',
  'started_at',
  'completed_at',
  'metadata',
] as const;

export interface BatchSnapshot {
  /** The status answer's `data`, shaped as the batch's `answer` says (so possibly with nulls). */
  detail: Record<string, unknown>;
  /** Until this time (exclusive) the snapshot stays valid unless the batch is mutated; Infinity once nothing is scheduled. */
  validUntil: number;
}

const FAILURE_REASONS = [
  'Browser pod failed to start: provisioning timed out',
  'Browser pod failed to start: node out of capacity',
  'Browser pod failed to start: proxy handshake failed',
];

/**
 * A batch whose state is a pure function of the clock: each session holds its scheduled attempts
 * (outcome drawn when scheduled) and every read derives statuses from "now". No timers.
 */
export class SimulatedBatch {
  readonly id: string;
  readonly createdAt: number;
  readonly configuration: Record<string, unknown> | undefined;
  readonly metadata: Record<string, unknown> | undefined;
  private readonly sessions: Attempt[][];
  private readonly timing: AttemptTiming;
  private readonly outcomeOf: OutcomePolicy;
  private readonly errorChars: number | undefined;
  private readonly newCredentials: () => Credentials;
  private readonly answer: AnswerShape;
  private readonly pendingPhaseEndsAt: number;
  private pendingReadsLeft: number;
  private cancelledAt: number | undefined;
  private retried = false;
  /** Bumped on every mutation so cached snapshots can be invalidated. */
  version = 0;

  constructor(init: {
    id: string;
    createdAt: number;
    count: number;
    timing: AttemptTiming;
    outcomeOf: OutcomePolicy;
    errorChars?: number | undefined;
    newCredentials: () => Credentials;
    configuration?: Record<string, unknown> | undefined;
    metadata?: Record<string, unknown> | undefined;
    answer?: AnswerShape | undefined;
    pendingPhase?: PendingPhase | undefined;
    /** The first attempts end only once released (`release`): see `hold` in scripts.ts. */
    hold?: boolean | undefined;
  }) {
    this.id = init.id;
    this.createdAt = init.createdAt;
    this.timing = init.timing;
    this.outcomeOf = init.outcomeOf;
    this.errorChars = init.errorChars;
    this.newCredentials = init.newCredentials;
    this.configuration = init.configuration;
    this.metadata = init.metadata;
    this.answer = init.answer ?? FULL_ANSWER;
    this.pendingPhaseEndsAt = init.createdAt + (init.pendingPhase?.ms ?? 0);
    this.pendingReadsLeft = init.pendingPhase?.reads ?? 0;
    this.sessions = Array.from({ length: init.count }, (_, index) =>
      this.scheduleRound(index, this.pendingPhaseEndsAt, 1, 1),
    );
    // An attempt that never ends is processing at every read after its start; release() gives it an end.
    if (init.hold) for (const [first] of this.sessions) if (first !== undefined) first.endAt = Infinity;
  }

  get size(): number {
    return this.sessions.length;
  }

  isCancelled(now: number): boolean {
    return this.cancelledAt !== undefined && this.cancelledAt <= now;
  }

  /** Items whose latest attempt has failed at `now`. */
  failedItems(now: number): number[] {
    return this.sessions.flatMap((attempts, index) => (this.view(attempts, now).status === 'failed' ? [index] : []));
  }

  private finishedItems(now: number): number[] {
    return this.sessions.flatMap((attempts, index) => {
      const { status } = this.view(attempts, now);
      return status === 'failed' || status === 'completed' ? [index] : [];
    });
  }

  status(now: number): BatchStatus {
    return this.summarize(now).status;
  }

  /**
   * Starts a retry round at `now`: up to `maxRetries` attempts for each session it retries, stopping at the first
   * success. `failedOnly` (the contract's retry_failed_only, true by default) retries the failed sessions; false, every
   * session that has finished, completed ones too, whose browsers are replaced. Returns the retried item indexes.
   */
  retry(now: number, maxRetries: number, failedOnly: boolean): number[] {
    const retried = failedOnly ? this.failedItems(now) : this.finishedItems(now);
    for (const index of retried) {
      const attempts = this.sessions[index] ?? [];
      const nextNumber = attempts.length + 1;
      attempts.push(...this.scheduleRound(index, now, nextNumber, maxRetries));
    }
    if (retried.length > 0) {
      this.retried = true;
      this.version += 1;
    }
    return retried;
  }

  /**
   * Lets the first attempts of a held batch end, an attempt's duration after `now` (or after their start, when
   * later), with their scripted outcomes. Returns how many were held.
   */
  release(now: number): number {
    const held = this.sessions.flatMap(([first]) => (first?.endAt === Infinity ? [first] : []));
    for (const attempt of held) attempt.endAt = Math.max(now, attempt.startAt) + this.timing.attemptDurationMs;
    if (held.length > 0) this.version += 1;
    return held.length;
  }

  /** Unsettled sessions become cancelled; settled ones keep their outcome. Returns how many were cancelled. */
  cancel(now: number): number {
    const cancelled = this.sessions.filter((attempts) => isUnsettled(this.view(attempts, now).status)).length;
    this.cancelledAt = now;
    this.version += 1;
    return cancelled;
  }

  /** Consumes one of the status reads that `pending_phase.reads` answers with the all-zero answer. */
  takePendingPhaseRead(): boolean {
    if (this.pendingReadsLeft === 0) return false;
    this.pendingReadsLeft -= 1;
    return true;
  }

  /** The all-zero answer of a batch that has not started: status `pending`, every counter 0. */
  pendingPhaseDetail(): Record<string, unknown> {
    const detail: BatchStatusDetail = {
      batch_id: this.id,
      status: 'pending',
      total_requests: 0,
      completed_requests: 0,
      failed_requests: 0,
      processing_requests: 0,
      pending_requests: 0,
      created_at: iso(this.createdAt),
      sessions: [],
      progress: { percentage: 0, current_phase: 'queued' },
    };
    return this.shape(detail);
  }

  snapshot(now: number): BatchSnapshot {
    if (now < this.pendingPhaseEndsAt)
      return { detail: this.pendingPhaseDetail(), validUntil: this.pendingPhaseEndsAt };
    const summary = this.summarize(now);
    const sessions = this.sessions.map((attempts, index) =>
      toSessionItem(index, this.view(attempts, now), this.errorChars),
    );
    const detail: BatchStatusDetail = {
      batch_id: this.id,
      status: summary.status,
      total_requests: this.sessions.length,
      completed_requests: summary.counts.completed,
      failed_requests: summary.counts.failed,
      processing_requests: summary.counts.processing,
      pending_requests: summary.counts.pending,
      created_at: iso(this.createdAt),
      ...(summary.finishedAt === undefined ? {} : { actual_completion_time: iso(summary.finishedAt) }),
      ...(summary.status === 'failed'
        ? { error: `${summary.counts.failed} of ${this.sessions.length} sessions failed to start` }
        : {}),
      sessions,
      progress: { percentage: summary.percentage, current_phase: summary.phase },
    };
    return { detail: this.shape(detail), validUntil: this.nextChangeAfter(now) };
  }

  summary(now: number): BatchSummary & { status: BatchStatus; created_at: string } {
    if (now < this.pendingPhaseEndsAt) {
      return {
        batch_id: this.id,
        status: 'pending',
        total_requests: 0,
        completed_requests: 0,
        failed_requests: 0,
        created_at: iso(this.createdAt),
      };
    }
    const summary = this.summarize(now);
    return {
      batch_id: this.id,
      status: summary.status,
      total_requests: this.sessions.length,
      completed_requests: summary.counts.completed,
      failed_requests: summary.counts.failed,
      created_at: iso(this.createdAt),
      ...(summary.finishedAt === undefined ? {} : { actual_completion_time: iso(summary.finishedAt) }),
    };
  }

  /** Applies the batch's answer shape: sessions left out, `retry_count` left out, absent fields sent as null. */
  private shape(detail: BatchStatusDetail): Record<string, unknown> {
    const { sessions, ...rest } = detail;
    const shaped: Record<string, unknown> = { ...rest };
    if (this.answer.nulls) for (const field of NULLABLE_BATCH_FIELDS) shaped[field] ??= null;
    if (!this.answer.sessions) return shaped;
    shaped.sessions = (sessions ?? []).map((session) => {
      const { retry_count: retryCount, ...item } = session;
      const shapedItem: Record<string, unknown> = this.answer.retryCount ? { ...item, retry_count: retryCount } : item;
      if (this.answer.nulls) for (const field of NULLABLE_SESSION_FIELDS) shapedItem[field] ??= null;
      return shapedItem;
    });
    return shaped;
  }

  private scheduleRound(index: number, queuedAt: number, firstNumber: number, maxAttempts: number): Attempt[] {
    const round: Attempt[] = [];
    let readyAt = queuedAt;
    for (let number = firstNumber; number < firstNumber + maxAttempts; number += 1) {
      const startAt = round.length === 0 ? queuedAt + this.timing.queueDelayMs : readyAt;
      const outcome = this.outcomeOf(index, number);
      const endAt = startAt + this.timing.attemptDurationMs;
      round.push({
        queuedAt: readyAt,
        startAt,
        endAt,
        outcome,
        number,
        credentials: outcome === 'ok' ? this.newCredentials() : undefined,
      });
      if (outcome === 'ok') break;
      readyAt = endAt;
    }
    return round;
  }

  /** State of one session at `now`: the latest attempt queued by then decides it. */
  private view(attempts: Attempt[], now: number): SessionView {
    const at = this.cancelledAt === undefined ? now : Math.min(now, this.cancelledAt);
    let current = attempts[0] as Attempt;
    let queued = 0;
    for (const attempt of attempts) {
      if (attempt.queuedAt > at) break;
      current = attempt;
      queued += 1;
    }
    let status: BatchStatus;
    if (at < current.startAt) status = 'pending';
    else if (at < current.endAt) status = 'processing';
    else status = current.outcome === 'ok' ? 'completed' : 'failed';
    if (this.isCancelled(now) && isUnsettled(status)) status = 'cancelled';
    return { status, attempt: current, started: at >= current.startAt, retryCount: Math.max(0, queued - 1) };
  }

  private summarize(now: number) {
    const counts = { completed: 0, failed: 0, processing: 0, pending: 0, cancelled: 0 };
    let finishedAt = 0;
    for (const attempts of this.sessions) {
      const view = this.view(attempts, now);
      counts[view.status] += 1;
      finishedAt = Math.max(finishedAt, view.attempt.endAt);
    }
    const total = this.sessions.length;
    const settled = counts.completed + counts.failed;
    let status: BatchStatus;
    if (this.isCancelled(now)) status = 'cancelled';
    // Only a batch that never started is 'pending'; after a retry it is back to 'processing' (contract).
    else if (counts.pending === total && !this.retried) status = 'pending';
    else if (counts.pending + counts.processing > 0) status = 'processing';
    // A batch where some sessions failed reports 'failed' even if others completed (the contract allows either).
    else status = counts.failed > 0 ? 'failed' : 'completed';

    const percentage = total === 0 ? 100 : Math.round((settled / total) * 1000) / 10;
    let phase: ProgressPhase;
    if (status === 'pending') phase = 'queued';
    else if (settled === total) phase = 'ready';
    else phase = percentage < 50 ? 'provisioning' : 'configuring';

    const done = status === 'completed' || status === 'failed' || status === 'cancelled';
    const completionTime = status === 'cancelled' ? (this.cancelledAt ?? now) : finishedAt;
    return { counts, status, percentage, phase, finishedAt: done ? completionTime : undefined };
  }

  private nextChangeAfter(now: number): number {
    if (this.isCancelled(now)) return Infinity;
    let next = this.cancelledAt ?? Infinity;
    for (const attempts of this.sessions) {
      for (const attempt of attempts) {
        for (const time of [attempt.queuedAt, attempt.startAt, attempt.endAt]) {
          if (time > now && time < next) next = time;
        }
      }
    }
    return next;
  }
}

function isUnsettled(status: BatchStatus): boolean {
  return status === 'pending' || status === 'processing';
}

function toSessionItem(index: number, view: SessionView, errorChars: number | undefined): BatchSessionItem {
  const { attempt, status } = view;
  const item: BatchSessionItem = { item_index: index, status, retry_count: view.retryCount };
  if (view.started) item.started_at = iso(attempt.startAt);
  if (status === 'completed' || status === 'failed') item.completed_at = iso(attempt.endAt);
  if (status === 'failed') {
    const reason = `${FAILURE_REASONS[(index + attempt.number) % FAILURE_REASONS.length] ?? 'failed'} (attempt ${attempt.number})`;
    item.error = errorChars === undefined ? reason : reason.padEnd(errorChars, ' | at provisioner.startPod');
  }
  if (status === 'completed' && attempt.credentials !== undefined) {
    const { sessionId, token } = attempt.credentials;
    item.session_id = sessionId;
    item.cdp_url = `wss://connect.anchorbrowser.io?sessionId=${sessionId}&token=${token}`;
    item.live_view_url = `https://live.anchorbrowser.io/inspector.html?sessionId=${sessionId}&token=${token}`;
  }
  return item;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
