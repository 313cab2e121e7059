import { z } from 'zod';
import type { SeededRandom } from './random.js';

export const FAULT_TARGETS = ['status', 'list', 'retry', 'cancel', 'create'] as const;
export type FaultTarget = (typeof FAULT_TARGETS)[number];
export const FaultTargetSchema = z.enum(FAULT_TARGETS);

const firing = {
  /** Fire on the next N matching calls, then expire. Omitted: never expires. */
  times: z.int().min(1).optional(),
  /** Chance of firing on each matching call (seeded). Omitted: always. */
  probability: z.number().min(0).max(1).optional(),
  /** Only calls about this batch. */
  batchId: z.string().optional(),
  /** Let the first N matching calls through untouched, so a schedule can aim at the Nth call of a batch. */
  after: z.int().min(0).optional(),
  /** Real-time delay before the call is handled (or before the other effect). */
  latencyMs: z.int().min(0).optional(),
};

/*
 * error, rate_limit and hang answer without handling the call, so the batch is untouched (a hung
 * call never answers and is never applied, even after the client gave up). latency only delays:
 * the call is handled (a retry applied) once the delay is over, even if the client timed out in
 * between, as a slow server would. The others apply the call first, then spoil the answer:
 * commit_then_drop is the case the core must reconcile (the retry happened, the client never hears
 * about it). `latencyMs` on any rule delays its effect the same way. A call still delayed when the
 * simulator closes is never handled: close() ends it as it ends a hung one.
 */
export const FaultRuleSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('error'),
    /** A 3xx answers as a proxy that redirects the call would: the API never sees it. */
    statusCode: z.int().min(300).max(599).default(500),
    message: z.string().optional(),
    ...firing,
  }),
  z.object({
    type: z.literal('rate_limit'),
    /** Omitted: the 429 carries no Retry-After header. */
    retryAfterSeconds: z.int().min(0).optional(),
    retryAfterFormat: z.enum(['seconds', 'http-date']).default('seconds'),
    ...firing,
  }),
  z.object({ type: z.literal('latency'), ...firing, latencyMs: z.int().min(0) }),
  z.object({ type: z.literal('hang'), ...firing }),
  z.object({ type: z.literal('commit_then_drop'), ...firing }),
  z.object({ type: z.literal('malformed_json'), ...firing }),
  /** Leaves a field out of the answer, e.g. `data.sessions`: the contract requires almost none. */
  z.object({ type: z.literal('omit_field'), field: z.string().min(1), ...firing }),
  /** Sends a field as `null`, e.g. `data.actual_completion_time` or `data.sessions.0.cdp_url`; only where its parent exists. */
  z.object({ type: z.literal('null_field'), field: z.string().min(1), ...firing }),
  z.object({
    type: z.literal('mistyped_field'),
    /** Dot path into the answer, e.g. `data.sessions.3.retry_count`; defaults per endpoint. */
    field: z.string().optional(),
    value: z.unknown().optional(),
    ...firing,
  }),
]);
export type FaultRule = z.output<typeof FaultRuleSchema>;
export type FaultRuleInput = z.input<typeof FaultRuleSchema>;

export const FaultPlanSchema = z.partialRecord(FaultTargetSchema, z.array(FaultRuleSchema));
export type FaultPlan = Partial<Record<FaultTarget, FaultRule[]>>;
export type FaultPlanInput = Partial<Record<FaultTarget, FaultRuleInput[]>>;

interface ActiveRule {
  rule: FaultRule;
  remaining: number;
  /** Matching calls seen so far, for `after`. */
  seen: number;
}

/** Holds the fault rules per endpoint; the first rule that fires on a call decides its fault. */
export class FaultInjector {
  private readonly rules = new Map<FaultTarget, ActiveRule[]>();
  private readonly random: SeededRandom;

  constructor(random: SeededRandom, plan: FaultPlanInput = {}) {
    this.random = random;
    this.replace(plan);
  }

  /** Replaces every rule with the plan's. */
  replace(plan: FaultPlanInput): void {
    const parsed = FaultPlanSchema.parse(plan);
    this.rules.clear();
    for (const target of FAULT_TARGETS) {
      for (const rule of parsed[target] ?? []) this.addParsed(target, rule);
    }
  }

  add(target: FaultTarget, rule: FaultRuleInput): void {
    this.addParsed(target, FaultRuleSchema.parse(rule));
  }

  clear(target?: FaultTarget): void {
    if (target === undefined) this.rules.clear();
    else this.rules.delete(target);
  }

  /** Disarms every rule scoped to one batch, e.g. once a test is done with it. */
  clearBatch(batchId: string): void {
    for (const [target, rules] of this.rules) {
      this.rules.set(
        target,
        rules.filter((active) => active.rule.batchId !== batchId),
      );
    }
  }

  /** The rules still armed, with how many firings each has left. */
  current(): Partial<Record<FaultTarget, (FaultRule & { remaining?: number })[]>> {
    const plan: Partial<Record<FaultTarget, (FaultRule & { remaining?: number })[]>> = {};
    for (const [target, rules] of this.rules) {
      plan[target] = rules.map(({ rule, remaining }) => (Number.isFinite(remaining) ? { ...rule, remaining } : rule));
    }
    return plan;
  }

  /** Decides the fault for one call, consuming a firing of the rule chosen. */
  pick(target: FaultTarget, batchId: string | undefined): FaultRule | undefined {
    const rules = this.rules.get(target);
    if (rules === undefined) return undefined;
    const matching = rules.filter((active) => active.rule.batchId === undefined || active.rule.batchId === batchId);
    // Every matching rule counts the call, whichever fires, so `after` means "the Nth call" for each.
    for (const active of matching) active.seen += 1;
    for (const active of matching) {
      if (active.seen <= (active.rule.after ?? 0)) continue;
      if (active.rule.probability !== undefined && !this.random.chance(active.rule.probability)) continue;
      active.remaining -= 1;
      if (active.remaining <= 0) rules.splice(rules.indexOf(active), 1);
      return active.rule;
    }
    return undefined;
  }

  private addParsed(target: FaultTarget, rule: FaultRule): void {
    const rules = this.rules.get(target) ?? [];
    rules.push({ rule, remaining: rule.times ?? Infinity, seen: 0 });
    this.rules.set(target, rules);
  }
}
