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
import { randomOutcomes, scriptedOutcomes, ScriptedBatchSpecSchema, type ScriptedBatchSpec } from './scripts.js';
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
      configuration: parsed.configuration,
      metadata: parsed.metadata,
      answer: { sessions: parsed.answer.sessions, retryCount: parsed.answer.retry_count, nulls: parsed.answer.nulls },
      pendingPhase: parsed.pending_phase,
    });
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
    // Map keeps insertion order, so reversing it breaks created_at ties newest-first.
    const matching = [...this.batches.values()]
      .reverse()
      .filter((batch) => batch.createdAt > after && batch.createdAt < before)
      .filter((batch) => filter.status === undefined || batch.status(now) === filter.status)
      .sort((a, b) => b.createdAt - a.createdAt);
    const totalPages = Math.ceil(matching.length / filter.limit);
    const start = (filter.page - 1) * filter.limit;
    return {
      batches: matching.slice(start, start + filter.limit).map((batch) => batch.summary(now)),
      pagination: {
        current_page: filter.page,
        total_pages: totalPages,
        total_records: matching.length,
        has_next: filter.page < totalPages,
        has_prev: filter.page > 1,
      },
    };
  }

  clear(): void {
    this.batches.clear();
    this.statusCache.clear();
  }

  private add(init: {
    id: string;
    count: number;
    createdAt: number;
    outcomeOf: OutcomePolicy;
    configuration?: Record<string, unknown> | undefined;
    metadata?: Record<string, unknown> | undefined;
    answer?: AnswerShape | undefined;
    pendingPhase?: PendingPhase | undefined;
  }): SimulatedBatch {
    const random = this.options.random;
    const batch = new SimulatedBatch({
      ...init,
      timing: this.options.timing,
      newCredentials: () => ({ sessionId: random.uuid(), token: random.hex(40) }),
    });
    this.batches.set(batch.id, batch);
    return batch;
  }
}
