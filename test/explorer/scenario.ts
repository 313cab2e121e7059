import type { FaultRuleInput, FaultTarget, ItemScript, ScriptedBatchSpec } from '../../simulator/index.js';
import { SeededRandom } from '../../simulator/random.js';

/** The timeouts a scenario is drawn against; latencies are placed relative to them. */
export interface ExplorerTimings {
  /** The worker's Anchor request timeout. */
  clientTimeoutMs: number;
  /** The documented window: a retry the API applies later than this after its POST arrived is a `late_apply`. */
  windowMs: number;
}

/** Something to do once the batch's ledger shows its `nth` call to an endpoint (1-based). */
export interface StepTrigger {
  target: Extract<FaultTarget, 'status' | 'retry'>;
  nth: number;
}

/** One fault aimed at one call: `after` calls of the target pass untouched first. */
export interface AimedFault {
  target: Extract<FaultTarget, 'status' | 'retry'>;
  rule: FaultRuleInput;
}

export interface Scenario {
  seed: number;
  batch: ScriptedBatchSpec;
  faults: AimedFault[];
  maxRounds: number;
  /** A small deadline lands at whatever step the recovery has reached by then. */
  deadlineMs: number | undefined;
  cancelAt: StepTrigger | undefined;
  /** SIGKILL the worker process at this step, then start a fresh one. */
  killAt: StepTrigger | undefined;
}

/** Status reads a schedule covers: enough for a pending phase, the settle polls and the reads of up to 3 rounds. */
const STATUS_STEPS = 14;
/** Retry POSTs a schedule covers: a round's first send and the resends that follow failures. */
const RETRY_STEPS = 5;
const RETRY_AFTER_SECONDS = 1;
const NULLABLE_FIELDS = [
  'data.actual_completion_time',
  'data.error',
  'data.sessions.0.cdp_url',
  'data.sessions.0.metadata',
  'data.sessions.0.error',
];

type Draw = (random: SeededRandom, timings: ExplorerTimings) => FaultRuleInput;

const pick = <T>(random: SeededRandom, items: readonly T[]): T => items[Math.floor(random.next() * items.length)] as T;
const between = (random: SeededRandom, min: number, max: number) => min + Math.floor(random.next() * (max - min + 1));

/** Past the client timeout but applied within the window: the reconcile read should see it. */
const latencyWithinWindow: Draw = (random, { clientTimeoutMs, windowMs }) => ({
  type: 'latency',
  latencyMs: between(random, clientTimeoutMs + 200, Math.max(clientTimeoutMs + 200, windowMs - 500)),
});
/** Applied after the window: no client can tell, so it is counted as a late apply. */
const latencyBeyondWindow: Draw = (random, { windowMs }) => ({
  type: 'latency',
  latencyMs: between(random, windowMs + 500, windowMs + 2_500),
});

const SHARED_FAULTS: Draw[] = [
  (random) => ({ type: 'error', statusCode: pick(random, [500, 502, 503]) }),
  () => ({ type: 'rate_limit' }),
  () => ({ type: 'rate_limit', retryAfterSeconds: RETRY_AFTER_SECONDS }),
  latencyWithinWindow,
  latencyBeyondWindow,
  () => ({ type: 'hang' }),
  () => ({ type: 'commit_then_drop' }),
];

const STATUS_FAULTS: Draw[] = [
  ...SHARED_FAULTS,
  () => ({ type: 'omit_field', field: 'data.sessions' }),
  (random) => ({ type: 'null_field', field: pick(random, NULLABLE_FIELDS) }),
];

function drawItemScript(random: SeededRandom): ItemScript | undefined {
  const roll = random.next();
  if (roll < 0.45) return undefined;
  if (roll < 0.7) return ['fail', 'ok'];
  if (roll < 0.8) return ['fail', 'fail', 'ok'];
  return 'always-fail';
}

function drawBatch(random: SeededRandom): ScriptedBatchSpec {
  const count = between(random, 1, 6);
  const script: Record<string, ItemScript> = {};
  for (let index = 0; index < count; index += 1) {
    const itemScript = drawItemScript(random);
    if (itemScript !== undefined) script[String(index)] = itemScript;
  }
  const pendingRoll = random.next();
  return {
    count,
    script,
    answer: { sessions: random.chance(0.7), retry_count: random.chance(0.7), nulls: random.chance(0.25) },
    pending_phase:
      pendingRoll < 0.15
        ? { ms: between(random, 100, 600) }
        : pendingRoll < 0.3
          ? { reads: between(random, 1, 4) }
          : {},
  };
}

function drawFaults(random: SeededRandom, timings: ExplorerTimings): AimedFault[] {
  const faults: AimedFault[] = [];
  for (let step = 0; step < STATUS_STEPS; step += 1) {
    if (random.chance(0.2))
      faults.push({
        target: 'status',
        rule: { ...pick(random, STATUS_FAULTS)(random, timings), after: step, times: 1 },
      });
  }
  for (let step = 0; step < RETRY_STEPS; step += 1) {
    if (random.chance(0.35))
      faults.push({
        target: 'retry',
        rule: { ...pick(random, SHARED_FAULTS)(random, timings), after: step, times: 1 },
      });
  }
  return faults;
}

function drawTrigger(random: SeededRandom): StepTrigger {
  return random.chance(0.5)
    ? { target: 'retry', nth: between(random, 1, 2) }
    : { target: 'status', nth: between(random, 1, 8) };
}

/** Everything a seed does, drawn from the seed alone, so `--seed N` replays it. */
export function drawScenario(seed: number, timings: ExplorerTimings): Scenario {
  const random = new SeededRandom(seed);
  const batch = drawBatch(random);
  const faults = drawFaults(random, timings);
  const maxRounds = between(random, 1, 3);
  const deadlineMs = random.chance(0.1) ? between(random, 1_000, 4_000) : undefined;
  const cancelAt = random.chance(0.08) ? drawTrigger(random) : undefined;
  const killAt = random.chance(0.08) ? drawTrigger(random) : undefined;
  return { seed, batch, faults, maxRounds, deadlineMs, cancelAt, killAt };
}

/** One line saying what a seed draws, for replay output. */
export function describeScenario(scenario: Scenario): string {
  const { batch } = scenario;
  const answer = batch.answer ?? {};
  const parts = [
    `${batch.count} sessions ${JSON.stringify(batch.script ?? {})}`,
    answer.sessions === false ? 'counters only' : answer.retry_count === false ? 'no retry_count' : 'full sessions',
    ...(answer.nulls ? ['nulls'] : []),
    ...(batch.pending_phase?.ms ? [`pending ${batch.pending_phase.ms}ms`] : []),
    ...(batch.pending_phase?.reads ? [`pending ${batch.pending_phase.reads} reads`] : []),
    `maxRounds ${scenario.maxRounds}`,
    ...(scenario.deadlineMs === undefined ? [] : [`deadline ${scenario.deadlineMs}ms`]),
    ...(scenario.cancelAt ? [`cancel at ${scenario.cancelAt.target} #${scenario.cancelAt.nth}`] : []),
    ...(scenario.killAt ? [`SIGKILL at ${scenario.killAt.target} #${scenario.killAt.nth}`] : []),
    `faults: ${
      scenario.faults
        .map(({ target, rule }) => {
          const detail =
            'latencyMs' in rule && rule.latencyMs !== undefined
              ? ` ${rule.latencyMs}ms`
              : 'statusCode' in rule && rule.statusCode !== undefined
                ? ` ${rule.statusCode}`
                : 'field' in rule && rule.field !== undefined
                  ? ` ${rule.field}`
                  : rule.type === 'rate_limit' && rule.retryAfterSeconds !== undefined
                    ? ` Retry-After ${rule.retryAfterSeconds}s`
                    : '';
          return `${target} #${(rule.after ?? 0) + 1} ${rule.type}${detail}`;
        })
        .join(', ') || 'none'
    }`,
  ];
  return parts.join('; ');
}
