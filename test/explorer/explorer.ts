import { randomBytes } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { ANCHOR_ENDPOINTS } from '../../anchor-api/endpoints.js';
import { BatchRecoveries, RecoveryFailedError, type ClientRecoveryReport } from '../../client/recoveries.js';
import { startSimulator, type LedgerCall, type RunningSimulator } from '../../simulator/index.js';
import { createRecoveryWorkers } from '../../worker/create-worker.js';
import { recoveryOutcomeKey } from '../../workflows/search-attributes.js';
import { spawnWorkerProcess, WORKER_STARTED, type WorkerProcess } from '../deployment/worker-process.js';
import { FAST_POLICY, TEST_API_KEY } from '../helpers/recovery-env.js';
import {
  checkInvariants,
  INVARIANTS,
  NOTICES,
  type Invariant,
  type Notice,
  type RecoveryEnd,
  type Violation,
} from './invariants.js';
import { describeScenario, drawScenario, type ExplorerTimings, type Scenario, type StepTrigger } from './scenario.js';

/** The test workers' request timeout (test/helpers/recovery-env.ts), and the documented window it implies. */
export const DEFAULT_CLIENT_TIMEOUT_MS = 2_000;
export const DEFAULT_WINDOW_MARGIN_MS = 5_000;

export interface ExplorerOptions {
  temporalAddress: string;
  namespace: string;
  /** A prebuilt workflow bundle, so workers (in-process and child processes) start without bundling. */
  workflowBundlePath: string;
  clientTimeoutMs?: number;
  /** Default: the client timeout + 5 s. */
  windowMs?: number;
  /** A recovery still running this long after its start counts as stuck (`report_written`). */
  recoveryCapMs?: number;
}

export interface SeedResult {
  seed: number;
  scenario: Scenario;
  /** The report's outcome, `failed` for a stopped recovery, `running` for a stuck one. */
  outcome: string;
  rounds: number;
  appliedRetries: number;
  violations: Violation[];
  notices: Partial<Record<Notice, number>>;
  durationMs: number;
}

export interface Explorer {
  readonly timings: ExplorerTimings;
  runSeed(seed: number): Promise<SeedResult>;
  /** Runs the seeds `concurrency` at a time; `onResult` sees each as it ends. */
  runSeeds(seeds: number[], concurrency: number, onResult?: (result: SeedResult) => void): Promise<SeedResult[]>;
  close(): Promise<void>;
}

const POLL_MS = 20;
/** Calls the batch has received must have stopped arriving this long before its ledger is read. */
const QUIET_MS = 250;

export const replayCommand = (seed: number) => `npm run explore -- --seed ${seed}`;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function isTriggerCall(trigger: StepTrigger) {
  const endpoint = trigger.target === 'retry' ? ANCHOR_ENDPOINTS.retryFailedSessions : ANCHOR_ENDPOINTS.getBatch;
  return (call: LedgerCall) => call.endpoint === endpoint;
}

/**
 * One simulator shared by every seed (faults are scoped to each seed's batch), one in-process worker on
 * a shared task queue, and a worker process of its own for each seed that kills its worker.
 */
export async function startExplorer(options: ExplorerOptions): Promise<Explorer> {
  const clientTimeoutMs = options.clientTimeoutMs ?? DEFAULT_CLIENT_TIMEOUT_MS;
  const timings: ExplorerTimings = {
    clientTimeoutMs,
    windowMs: options.windowMs ?? clientTimeoutMs + DEFAULT_WINDOW_MARGIN_MS,
  };
  const recoveryCapMs = options.recoveryCapMs ?? 180_000;
  const simulator: RunningSimulator = await startSimulator({
    apiKeys: [TEST_API_KEY],
    attemptDurationMs: 40,
    queueDelayMs: 10,
  });
  const clientConnection = await Connection.connect({ address: options.temporalAddress });
  const client = new Client({ connection: clientConnection, namespace: options.namespace });
  const sharedTaskQueue = `explore-${process.pid}-${randomBytes(3).toString('hex')}`;
  const workerConnection = await NativeConnection.connect({ address: options.temporalAddress });
  const workers = await createRecoveryWorkers({
    config: {
      temporal: { address: options.temporalAddress, namespace: options.namespace, taskQueue: sharedTaskQueue },
      anchor: { baseUrl: simulator.url, apiKey: TEST_API_KEY, timeoutMs: clientTimeoutMs },
      limits: { maxCallsPerSecond: 100_000, maxConcurrentActivities: 400, maxConcurrentWorkflowTasks: 100 },
    },
    connection: workerConnection,
    workflows: { workflowBundle: { codePath: options.workflowBundlePath } },
  });
  const workersDone = workers.run();
  const workerProcesses = new Set<WorkerProcess>();

  const startWorkerProcess = async (taskQueue: string): Promise<WorkerProcess> => {
    const child = await spawnWorkerProcess({
      TEMPORAL_ADDRESS: options.temporalAddress,
      TEMPORAL_NAMESPACE: options.namespace,
      TEMPORAL_TASK_QUEUE: taskQueue,
      ANCHOR_BASE_URL: simulator.url,
      ANCHOR_API_KEY: TEST_API_KEY,
      ANCHOR_REQUEST_TIMEOUT_MS: String(clientTimeoutMs),
      ANCHOR_MAX_CALLS_PER_SECOND: '1000',
      WORKFLOW_BUNDLE_PATH: options.workflowBundlePath,
    });
    workerProcesses.add(child);
    void child.closed.then(() => workerProcesses.delete(child));
    await child.waitForOutput(WORKER_STARTED, 120_000);
    return child;
  };
  const killWorkerProcess = async (child: WorkerProcess) => {
    if (child.child.exitCode === null && child.child.signalCode === null) child.child.kill('SIGKILL');
    await child.closed;
  };

  async function runSeed(seed: number): Promise<SeedResult> {
    const startedAt = Date.now();
    const scenario = drawScenario(seed, timings);
    const batch = simulator.createScriptedBatch(scenario.batch);
    for (const { target, rule } of scenario.faults) simulator.faults.add(target, { ...rule, batchId: batch.id });
    const ownWorkers: WorkerProcess[] = [];
    const taskQueue =
      scenario.killAt === undefined ? sharedTaskQueue : `explore-kill-${seed}-${randomBytes(3).toString('hex')}`;
    const killedAtMs: number[] = [];
    let finished = false;
    try {
      if (scenario.killAt !== undefined) ownWorkers.push(await startWorkerProcess(taskQueue));
      const recoveries = new BatchRecoveries(client, taskQueue);
      await recoveries.start({
        batchId: batch.id,
        ...FAST_POLICY,
        maxRounds: scenario.maxRounds,
        ...(scenario.deadlineMs === undefined ? {} : { deadline: scenario.deadlineMs }),
      });

      /** Resolves true once the batch's ledger shows the trigger's step, false if the recovery ended first. */
      const reached = async (trigger: StepTrigger): Promise<boolean> => {
        const matches = isTriggerCall(trigger);
        while (!finished) {
          if (simulator.ledger.forBatch(batch.id).calls.filter(matches).length >= trigger.nth) return true;
          await sleep(POLL_MS);
        }
        return false;
      };
      const watchers: Promise<unknown>[] = [];
      if (scenario.killAt !== undefined) {
        watchers.push(
          reached(scenario.killAt).then(async (hit) => {
            const current = ownWorkers.at(-1);
            if (!hit || current === undefined) return;
            await killWorkerProcess(current);
            killedAtMs.push(Date.now());
            if (!finished) ownWorkers.push(await startWorkerProcess(taskQueue));
          }),
        );
      }
      if (scenario.cancelAt !== undefined) {
        watchers.push(
          reached(scenario.cancelAt).then((hit) =>
            hit ? recoveries.cancel(batch.id).catch(() => undefined) : undefined,
          ),
        );
      }

      const end = await awaitEnd(recoveries, batch.id, startedAt);
      finished = true;
      await Promise.all(watchers);
      if (end.kind === 'still_running') await recoveries.handle(batch.id).terminate('explorer: recovery stuck');
      await Promise.all(ownWorkers.map(killWorkerProcess));
      await quiet(batch.id);

      const ledger = simulator.ledger.forBatch(batch.id);
      const settled = simulator.store.get(batch.id);
      const farFuture = Number.MAX_SAFE_INTEGER;
      const verdict = checkInvariants({
        scenario,
        timings,
        end,
        ledger,
        finalBatch: {
          failed: settled?.failedItems(farFuture).length ?? 0,
          cancelled: settled?.isCancelled(farFuture) ?? false,
        },
        killedAtMs,
      });
      const report = end.kind === 'still_running' ? undefined : end.report;
      return {
        seed,
        scenario,
        outcome:
          end.kind === 'still_running' ? 'running' : end.kind === 'stopped' ? 'failed' : String(end.report.outcome),
        rounds: report?.rounds.length ?? 0,
        appliedRetries: ledger.retries.length,
        violations: verdict.violations,
        notices: verdict.notices,
        durationMs: Date.now() - startedAt,
      };
    } finally {
      finished = true;
      await Promise.all(ownWorkers.map(killWorkerProcess));
      simulator.faults.clearBatch(batch.id);
    }
  }

  async function awaitEnd(recoveries: BatchRecoveries, batchId: string, startedAt: number): Promise<RecoveryEnd> {
    const searchOutcome = async () => {
      const description = await recoveries.handle(batchId).describe();
      return description.typedSearchAttributes.get(recoveryOutcomeKey);
    };
    let timer: NodeJS.Timeout | undefined;
    const cap = new Promise<'cap'>((resolve) => {
      timer = setTimeout(() => resolve('cap'), recoveryCapMs);
    });
    try {
      const result = await Promise.race([
        recoveries.result(batchId).then(
          (report) => ({ report }),
          (error: unknown) => ({ error }),
        ),
        cap,
      ]);
      if (result === 'cap') return { kind: 'still_running', waitedMs: Date.now() - startedAt };
      if ('report' in result) return { kind: 'completed', report: result.report, searchOutcome: await searchOutcome() };
      const error = result.error;
      const report: ClientRecoveryReport | undefined = error instanceof RecoveryFailedError ? error.report : undefined;
      return {
        kind: 'stopped',
        report,
        searchOutcome: await searchOutcome(),
        message: describeErrorChain(error),
      };
    } finally {
      clearTimeout(timer);
    }
  }

  /** Waits until the batch's calls are all answered (or hung, or dropped) and no new one arrives. */
  async function quiet(batchId: string): Promise<void> {
    const giveUpAt = Date.now() + timings.windowMs + 10_000;
    let calls = -1;
    while (Date.now() < giveUpAt) {
      const ledger = simulator.ledger.forBatch(batchId);
      const inFlight = ledger.calls.some((call) => call.outcome === 'in_flight');
      if (!inFlight && ledger.calls.length === calls) return;
      calls = inFlight ? -1 : ledger.calls.length;
      await sleep(QUIET_MS);
    }
  }

  return {
    timings,
    runSeed,
    async runSeeds(seeds, concurrency, onResult) {
      const results: SeedResult[] = [];
      let next = 0;
      const lane = async () => {
        while (next < seeds.length) {
          const seed = seeds[next++] as number;
          const result = await runSeed(seed).catch((error: unknown) => {
            throw new Error(`explorer failed to run seed ${seed} (${replayCommand(seed)})`, { cause: error });
          });
          results.push(result);
          onResult?.(result);
        }
      };
      await Promise.all(Array.from({ length: Math.max(1, concurrency) }, lane));
      return results.sort((a, b) => a.seed - b.seed);
    },
    async close() {
      await Promise.all([...workerProcesses].map(killWorkerProcess));
      workers.shutdown();
      await workersDone;
      await workerConnection.close();
      await clientConnection.close();
      await simulator.close();
    },
  };
}

/** An error and its causes, with the Temporal timeout type and retry state where they say why. */
function describeErrorChain(error: unknown): string {
  const parts: string[] = [];
  for (let current: unknown = error; current instanceof Error && parts.length < 5; current = current.cause) {
    const { timeoutType, retryState } = current as { timeoutType?: string | number; retryState?: string | number };
    const extra = [
      ...(timeoutType === undefined ? [] : [`timeoutType ${String(timeoutType)}`]),
      ...(retryState === undefined ? [] : [`retryState ${String(retryState)}`]),
    ];
    parts.push(`${current.name}: ${current.message}${extra.length > 0 ? ` (${extra.join(', ')})` : ''}`);
  }
  return parts.join(' <- ') || String(error);
}

export interface ExplorationSummary {
  seeds: number;
  /** Seeds that broke each invariant. */
  violations: Record<Invariant, number>;
  /** Totals of the figures that are counted, not failed. */
  notices: Record<Notice, number>;
  outcomes: Record<string, number>;
  failing: SeedResult[];
  /** Per-seed wall time, ms: min, median, max. */
  durationsMs: { min: number; median: number; max: number };
}

export function summarize(results: SeedResult[]): ExplorationSummary {
  const violations = Object.fromEntries(INVARIANTS.map((name) => [name, 0])) as Record<Invariant, number>;
  const notices = Object.fromEntries(NOTICES.map((name) => [name, 0])) as Record<Notice, number>;
  const outcomes: Record<string, number> = {};
  for (const result of results) {
    for (const name of new Set(result.violations.map((violation) => violation.invariant))) violations[name] += 1;
    for (const [name, count] of Object.entries(result.notices)) notices[name as Notice] += count;
    outcomes[result.outcome] = (outcomes[result.outcome] ?? 0) + 1;
  }
  const durations = results.map((result) => result.durationMs).sort((a, b) => a - b);
  return {
    durationsMs: {
      min: durations[0] ?? 0,
      median: durations[Math.floor(durations.length / 2)] ?? 0,
      max: durations.at(-1) ?? 0,
    },
    seeds: results.length,
    violations,
    notices,
    outcomes,
    failing: results.filter((result) => result.violations.length > 0),
  };
}

/** Per-invariant counts, then one replay command per failing seed. */
export function formatSummary(summary: ExplorationSummary, options: { verbose?: boolean } = {}): string {
  const lines = [`Seeds run: ${summary.seeds}`, 'Seeds violating each invariant:'];
  for (const name of INVARIANTS) lines.push(`  ${name.padEnd(28)} ${summary.violations[name]}`);
  lines.push('Counted, not violations:');
  for (const name of NOTICES) lines.push(`  ${name.padEnd(28)} ${summary.notices[name]}`);
  lines.push(
    `Outcomes: ${Object.entries(summary.outcomes)
      .map(([outcome, count]) => `${outcome} ${count}`)
      .join(', ')}`,
  );
  const { min, median, max } = summary.durationsMs;
  lines.push(`Seed wall time: min ${min} ms, median ${median} ms, max ${max} ms`);
  if (summary.failing.length > 0) lines.push(`Failing seeds (${summary.failing.length}):`);
  for (const result of summary.failing) {
    const names = [...new Set(result.violations.map((violation) => violation.invariant))].join(', ');
    lines.push(`  ${replayCommand(result.seed)}   # ${names}`);
    if (options.verbose) {
      lines.push(`      ${describeScenario(result.scenario)}`);
      for (const violation of result.violations) lines.push(`      ${violation.invariant}: ${violation.detail}`);
    }
  }
  return lines.join('\n');
}
