import { randomUUID } from 'node:crypto';
import {
  SimulatedBatch,
  type AnswerShape,
  type AttemptTiming,
  type OutcomePolicy,
  type PendingPhase,
} from './batch.js';
import type { SimulatorClock } from './clock.js';
import type { SeededRandom } from './random.js';
import {
  randomOutcomes,
  scriptedOutcomes,
  ScriptedBatchSpecSchema,
  type ScriptedBatchSpec,
  type SeedSpec,
} from './scripts.js';
import type { BatchStatus, BatchSummary } from '../anchor-api/schemas.js';

export interface BatchStoreOptions {
  clock: SimulatorClock;
  random: SeededRandom;
  timing: AttemptTiming;
  /** Chance that any unscripted attempt fails. */
  failureProbability: number;
}

export interface ListFilter {
  status?: BatchStatus | undefined;
  page: number;
  limit: number;
  created_after?: string | undefined;
  created_before?: string | undefined;
}

export class DuplicateBatchIdError extends Error {
  constructor(readonly batchId: string) {
    super(`a batch with id ${batchId} already exists`);
    this.name = 'DuplicateBatchIdError';
  }
}

interface CachedStatus {
  version: number;
  validUntil: number;
  body: string;
}

/** All batches of the simulated team, plus a cache of serialized status bodies (1,000-session batches are big). */
export class BatchStore {
  private readonly batches = new Map<string, SimulatedBatch>();
  /**
   * The same batches by creation time, oldest first (ties in insertion order), so a page of the list is a
   * slice found by binary search, not a sort of every batch: sweeps page through 100,000 batches.
   */
  private readonly byCreation: SimulatedBatch[] = [];
  private readonly statusCache = new Map<string, CachedStatus>();
  private readonly options: BatchStoreOptions;

  constructor(options: BatchStoreOptions) {
    this.options = options;
  }

  get timing(): AttemptTiming {
    return this.options.timing;
  }

  // Batch ids come from crypto, not the seeded generator: tests share one Temporal server, where a
  // recovery's workflow id derives from the batch id, so ids must differ across simulator instances.
  create(init: {
    count: number;
    configuration?: Record<string, unknown> | undefined;
    metadata?: Record<string, unknown> | undefined;
  }): SimulatedBatch {
    const outcomeOf = randomOutcomes(this.options.random, this.options.failureProbability);
    return this.add({ ...init, id: randomUUID(), createdAt: this.options.clock.now(), outcomeOf });
  }

  createScripted(spec: ScriptedBatchSpec): SimulatedBatch {
    const parsed = ScriptedBatchSpecSchema.parse(spec);
    const id = parsed.id ?? randomUUID();
    if (this.batches.has(id)) throw new DuplicateBatchIdError(id);
    return this.add({
      id,
      count: parsed.count,
      createdAt: parsed.created_at === undefined ? this.options.clock.now() : Date.parse(parsed.created_at),
      outcomeOf: scriptedOutcomes(parsed.script),
      errorChars: parsed.error_chars,
      configuration: parsed.configuration,
      metadata: parsed.metadata,
      answer: { sessions: parsed.answer.sessions, retryCount: parsed.answer.retry_count, nulls: parsed.answer.nulls },
      pendingPhase: parsed.pending_phase,
      hold: parsed.hold,
    });
  }

  /**
   * Many small batches at once, for scale tests: `total` one-session batches created evenly between
   * `created_from` and `created_to`; every `fail_every`-th one (0 for none) failed its session, which a
   * retry recovers. Returns the ids of the failed ones, newest first (the list's order).
   */
  seed(spec: SeedSpec): string[] {
    const from = Date.parse(spec.created_from);
    const step = spec.total > 1 ? (Date.parse(spec.created_to) - from) / (spec.total - 1) : 0;
    const failOnce = scriptedOutcomes({ '0': ['fail', 'ok'] });
    const succeed = scriptedOutcomes({});
    const failed: string[] = [];
    for (let index = 0; index < spec.total; index += 1) {
      const fails = spec.fail_every > 0 && index % spec.fail_every === 0;
      const batch = this.add({
        id: randomUUID(),
        count: 1,
        createdAt: Math.round(from + index * step),
        outcomeOf: fails ? failOnce : succeed,
      });
      if (fails) failed.push(batch.id);
    }
    return failed.reverse();
  }

  get(batchId: string): SimulatedBatch | undefined {
    return this.batches.get(batchId);
  }

  /** The batch's status body as JSON text, reused until the batch changes or time reaches its next transition. */
  statusBody(batch: SimulatedBatch): string {
    if (batch.takePendingPhaseRead()) return JSON.stringify({ data: batch.pendingPhaseDetail() });
    const now = this.options.clock.now();
    const cached = this.statusCache.get(batch.id);
    if (cached !== undefined && cached.version === batch.version && now < cached.validUntil) return cached.body;
    const snapshot = batch.snapshot(now);
    const body = JSON.stringify({ data: snapshot.detail });
    this.statusCache.set(batch.id, { version: batch.version, validUntil: snapshot.validUntil, body });
    return body;
  }

  list(filter: ListFilter): {
    batches: BatchSummary[];
    pagination: {
      current_page: number;
      total_pages: number;
      total_records: number;
      has_next: boolean;
      has_prev: boolean;
    };
  } {
    const now = this.options.clock.now();
    const after = filter.created_after === undefined ? -Infinity : Date.parse(filter.created_after);
    const before = filter.created_before === undefined ? Infinity : Date.parse(filter.created_before);
    // Oldest-first indexes of the window's first and past-last batch: created_after < createdAt < created_before.
    const low = this.firstCreatedAfter(after, true);
    const high = this.firstCreatedAfter(before, false);
    const inWindow = Math.max(0, high - low);
    const start = (filter.page - 1) * filter.limit;
    const page: SimulatedBatch[] = [];
    let total = inWindow;
    if (filter.status === undefined) {
      // Newest first: the window read backwards.
      for (let index = high - 1 - start; index >= low && page.length < filter.limit; index -= 1) {
        page.push(this.byCreation[index] as SimulatedBatch);
      }
    } else {
      // A status depends on the time, so it is derived per read: one pass over the window, no sort.
      total = 0;
      for (let index = high - 1; index >= low; index -= 1) {
        const batch = this.byCreation[index] as SimulatedBatch;
        if (batch.status(now) !== filter.status) continue;
        if (total >= start && page.length < filter.limit) page.push(batch);
        total += 1;
      }
    }
    const totalPages = Math.ceil(total / filter.limit);
    return {
      batches: page.map((batch) => batch.summary(now)),
      pagination: {
        current_page: filter.page,
        total_pages: totalPages,
        total_records: total,
        has_next: filter.page < totalPages,
        has_prev: filter.page > 1,
      },
    };
  }

  /** Index of the first batch (oldest first) created after `time`, or at it too when `strictly` is false. */
  private firstCreatedAfter(time: number, strictly: boolean): number {
    let low = 0;
    let high = this.byCreation.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      const createdAt = (this.byCreation[middle] as SimulatedBatch).createdAt;
      if (strictly ? createdAt <= time : createdAt < time) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  clear(): void {
    this.batches.clear();
    this.byCreation.length = 0;
    this.statusCache.clear();
  }

  private add(init: {
    id: string;
    count: number;
    createdAt: number;
    outcomeOf: OutcomePolicy;
    errorChars?: number | undefined;
    configuration?: Record<string, unknown> | undefined;
    metadata?: Record<string, unknown> | undefined;
    answer?: AnswerShape | undefined;
    pendingPhase?: PendingPhase | undefined;
    hold?: boolean | undefined;
  }): SimulatedBatch {
    const random = this.options.random;
    const batch = new SimulatedBatch({
      ...init,
      timing: this.options.timing,
      newCredentials: () => ({ sessionId: random.uuid(), token: random.hex(40) }),
    });
    this.batches.set(batch.id, batch);
    // After every batch created at the same time or earlier: appending in the usual case.
    const position = this.firstCreatedAfter(batch.createdAt, true);
    if (position === this.byCreation.length) this.byCreation.push(batch);
    else this.byCreation.splice(position, 0, batch);
    return batch;
  }
}
