/**
 * One-round recoveries on one worker process: recoverBatch beside the same-shape no-op (the
 * ceiling) and the naive workflow (the baseline), in one run, repeated. Usage:
 *   npm run bench:throughput -- [--recoveries 300] [--repeats 3] [--max-calls-per-second 1000] [--poller off]
 *                               [--max-cached <recoveries>] [--session-ms 10000] [--compare-bundle <file>]
 *                               [--own-polling] [--compare-checkout <dir>] [--busy-cores <n>]
 *                               [--compare-worker-env NAME=VALUE[,NAME=VALUE…]] [--worker-node <version>|image]
 * Every batch has one session that fails once, so each recovery needs exactly one retry. By default its sessions run
 * 10 s and every worker caches as many workflows as the run starts: batches of browser sessions run for seconds to
 * minutes, and docs/scaling.md's sizing rule sets the cache to the recoveries active at once, here all of them.
 * `--session-ms 500` is the poller's worst case (a batch that settles before the naive workflow's second read), and
 * `--max-cached 250` the product's default cache, under which 1,000 recoveries open at once are evicted between tasks.
 * The no-op's waits last, idle, until its batch's sessions end, so that it stays a ceiling with long batches too.
 * `--own-polling` adds the variant `ownPolling`: recoverBatch on a worker without the batch status poller, so each
 * recovery reads its own batch on its poll schedule, as the naive workflow does. It has every feature of the product
 * and the naive workflow's polling: beside the naive workflow it gives the features' cost, beside recoverBatch the
 * poller's.
 * `--compare-bundle` adds a fourth variant, `compared`: recoverBatch from a bundle built of other code (an earlier
 * commit's `npm run build:bundle -- <file>`), so a change is measured against its baseline in the same run.
 * `--compare-checkout` adds it too, run by the checkout's own worker, activities and poller wiring, from a bundle that
 * checkout builds: for a change outside the workflow code (a worker's wiring, a queue of its own).
 * `--compare-worker-env` adds it too, or sets its worker's variables: recoverBatch on a worker with other settings
 * (e.g. `WORKER_WORKFLOW_STACK_TRACE_FRAMES=10`, V8's default), so a setting is measured in the same run.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { batchStatusPollerWorkflowId } from '../workflows/definitions.js';
import {
  buildBenchBundles,
  buildCheckoutBundle,
  compareBundleArg,
  compareCheckoutArg,
  compareWorkerEnvArg,
  countWorkflowTasks,
  cpuSeconds,
  inspectHistories,
  forEachLimit,
  formatSummary,
  MIB,
  numberArg,
  startBenchStack,
  startBenchWorker,
  summary,
  type BenchBundles,
  workerNodeArg,
  type BenchStack,
} from './harness.js';
import { startVariant, VARIANTS, workerKind, type Variant } from './variants.js';

const recoveries = numberArg('recoveries', 300);
const repeats = numberArg('repeats', 3);
const maxCallsPerSecond = numberArg('max-calls-per-second', 1_000);
/** Every variant's worker keeps this many workflows cached, so all pay the same evictions, if any. */
const maxCachedWorkflows = numberArg('max-cached', recoveries);
/** `--poller off`: recoverBatch reads its batch on its own, as without the batch status poller. */
const pollerOff = process.argv.includes('--poller') && process.argv[process.argv.indexOf('--poller') + 1] === 'off';
/**
 * How long each session attempt takes on the simulator. At the default the naive workflow reads each batch about
 * ten times while it runs; at 500 ms a batch settles before its second read.
 */
const sessionMs = numberArg('session-ms', 10_000);
const compareCheckout = compareCheckoutArg();
/** The compared checkout, and the file its own bundle is built into for this run. */
const checkout =
  compareCheckout === undefined
    ? undefined
    : { dir: compareCheckout, bundle: path.join(tmpdir(), `checkout-bundle-${randomUUID()}.js`) };
const compareBundle = checkout?.bundle ?? compareBundleArg();
const compareWorkerEnv = compareWorkerEnvArg();
const compared = compareBundle !== undefined || compareWorkerEnv !== undefined;
const ownPolling = process.argv.includes('--own-polling');
/**
 * `--busy-cores <n>`: n processes that spin while each run measures, as other work on a shared host would; their CPU
 * is not the worker's, so it is in no figure, but the worker gets less of the machine.
 */
const busyCores = numberArg('busy-cores', 0);
/** Every variant's worker runs on this Node.js binary (`--worker-node`), so the ratios compare like with like. */
const workerNode = workerNodeArg();
/**
 * `compared`: recoverBatch from the compared bundle (same worker, activities and poller, other workflow code).
 * `ownPolling`: recoverBatch on a worker without the poller.
 */
type Run = Variant | 'compared' | 'ownPolling';
const RUNS: Run[] = [
  ...VARIANTS,
  ...(compared ? ['compared' as const] : []),
  ...(ownPolling ? ['ownPolling' as const] : []),
];
const POLL_MS = 1_000;
const BACKOFF_MS = 1_000;

interface Measurement {
  cpuMsPerRecovery: number;
  /** The worker's CPU per recovery by thread (bench/harness.ts cpuSecondsByThread). */
  mainThreadMs: number;
  coreThreadsMs: number;
  sandboxThreadsMs: number;
  /** The dev server's CPU per recovery: the other side of every event and task. */
  serverCpuMs: number;
  /** This process's CPU per recovery: the simulator answering the Anchor calls, and the starts and result waits. */
  simulatorCpuMs: number;
  peakRssMiB: number;
  recoveriesPerSecond: number;
  /** Executions with a WORKFLOW_TASK_TIMED_OUT: the worker too busy to finish a task in 10 s. */
  taskTimeouts: number;
  /** Executions whose task waited over 5 s for its sticky worker (a busy worker, or a busy server). */
  stickyTimeouts: number;
  historyEvents: number;
}

/**
 * One variant's run on a dev server and a simulator of its own: a server that already holds the histories of the
 * variants run before it spends more per recovery (a product variant run third took up to 1.5 × its time run first).
 */
async function runOnce(bundles: BenchBundles, variant: Run, repeat: number): Promise<Measurement> {
  const stack = await startBenchStack({ attemptDurationMs: sessionMs, queueDelayMs: 0 }, bundles);
  const busy = Array.from({ length: busyCores }, () =>
    spawn(process.execPath, ['-e', 'for (;;);'], { stdio: 'ignore' }),
  );
  try {
    return await measure(stack, variant, repeat);
  } finally {
    for (const loop of busy) loop.kill('SIGKILL');
    await stack.stop();
  }
}

async function measure(stack: BenchStack, run: Run, repeat: number): Promise<Measurement> {
  const variant: Variant = run === 'compared' || run === 'ownPolling' ? 'recoverBatch' : run;
  const taskQueue = `bench-throughput-${run}-${repeat}-${randomUUID().slice(0, 8)}`;
  const withoutPoller = pollerOff || run === 'ownPolling';
  const worker = await startBenchWorker({
    kind: workerKind(variant),
    ...(run === 'compared'
      ? { bundlePath: compareBundle, productEnv: compareWorkerEnv, checkout: compareCheckout }
      : {}),
    stack,
    taskQueue,
    maxCallsPerSecond,
    maxCachedWorkflows,
    ...(withoutPoller ? { poller: 'off' as const } : {}),
    ...(workerNode ? { node: workerNode } : {}),
  });
  try {
    const batches = Array.from({ length: recoveries }, () =>
      stack.simulator.createScriptedBatch({ count: 5, script: { '2': ['fail', 'ok'] } }),
    );
    const workflowIds: string[] = [];
    worker.mark();
    const serverCpuAtStart = cpuSeconds(stack.server.pid!);
    const ownCpuAtStart = process.cpuUsage();
    const startedAt = Date.now();
    await forEachLimit(batches, 50, async (batch) => {
      workflowIds.push(
        await startVariant(stack.client, variant, taskQueue, batch, {
          pollMs: POLL_MS,
          backoffMs: BACKOFF_MS,
          sessionMs,
        }),
      );
    });
    await forEachLimit(workflowIds, 50, async (workflowId) => {
      await stack.client.workflow.getHandle(workflowId).result();
    });
    const elapsedSeconds = (Date.now() - startedAt) / 1000;
    const { cpuSeconds: workerCpuSeconds, cpuSecondsByThread, peakRssBytes } = worker.measure();
    const serverCpuSeconds = cpuSeconds(stack.server.pid!) - serverCpuAtStart;
    const ownCpu = process.cpuUsage(ownCpuAtStart);
    const perRecoveryMs = (seconds: number) => (seconds * 1000) / recoveries;
    const timeouts = await inspectHistories(stack.client, workflowIds);
    if (repeat === 1) console.error(`${run} history shape: ${JSON.stringify(timeouts.firstHistoryShape)}`);
    if (variant === 'recoverBatch' && !withoutPoller) {
      // The poller's tasks run on the same worker: part of recoverBatch's CPU, not of its histories.
      const poller = await countWorkflowTasks(stack.client, batchStatusPollerWorkflowId(taskQueue));
      console.error(
        `repeat ${repeat} ${run}'s batch status poller: ${poller.tasks} workflow tasks in ${poller.runs} run(s), ` +
          `${(poller.tasks / recoveries).toFixed(2)} per recovery`,
      );
    }
    return {
      cpuMsPerRecovery: perRecoveryMs(workerCpuSeconds),
      mainThreadMs: perRecoveryMs(cpuSecondsByThread.main),
      coreThreadsMs: perRecoveryMs(cpuSecondsByThread.core),
      sandboxThreadsMs: perRecoveryMs(cpuSecondsByThread.sandboxes),
      serverCpuMs: perRecoveryMs(serverCpuSeconds),
      simulatorCpuMs: perRecoveryMs((ownCpu.user + ownCpu.system) / 1e6),
      peakRssMiB: peakRssBytes / MIB,
      recoveriesPerSecond: recoveries / elapsedSeconds,
      taskTimeouts: timeouts.startToClose,
      stickyTimeouts: timeouts.scheduleToStart,
      historyEvents: timeouts.medianEvents,
    };
  } finally {
    await worker.stop();
  }
}

const bundles = await buildBenchBundles();
if (checkout) await buildCheckoutBundle(checkout.dir, checkout.bundle);
const results = new Map<Run, Measurement[]>(RUNS.map((run) => [run, []]));
try {
  for (let repeat = 1; repeat <= repeats; repeat += 1) {
    // Rotate the order so no variant always runs first or last on a machine whose speed drifts.
    const order = RUNS.map((_, i) => RUNS[(i + repeat - 1) % RUNS.length]!);
    for (const variant of order) {
      const measurement = await runOnce(bundles, variant, repeat);
      results.get(variant)!.push(measurement);
      console.error(`repeat ${repeat} ${variant}: ${JSON.stringify(measurement)}`);
    }
  }
} finally {
  await bundles.remove();
  if (checkout) rmSync(checkout.bundle, { force: true });
}

const of = (run: Run, key: keyof Measurement) => results.get(run)!.map((m) => m[key]);
/** Ratios per repeat (the variants of one repeat ran back to back), then min/median/max over repeats. */
const ratio = (a: Run, b: Run, key: keyof Measurement) => of(a, key).map((value, i) => value / of(b, key)[i]!);

console.log(
  `\n${recoveries} one-round recoveries per run, ${repeats} repeats, budget ${maxCallsPerSecond} calls/s, ` +
    `workflow cache ${maxCachedWorkflows} per worker, sessions of ${sessionMs} ms, ` +
    `recoverBatch with the batch status poller ${pollerOff ? 'off' : 'on'}` +
    (busyCores > 0 ? `, ${busyCores} busy loop(s) beside each run` : ''),
);
console.log('median (min, max) over repeats');
for (const variant of RUNS) {
  console.log(
    `${variant.padEnd(13)} CPU/recovery ${formatSummary(of(variant, 'cpuMsPerRecovery'), 1)} ms | ` +
      `peak RSS ${formatSummary(of(variant, 'peakRssMiB'), 0)} MiB | ` +
      `throughput ${formatSummary(of(variant, 'recoveriesPerSecond'))} /s | ` +
      `history events ${formatSummary(of(variant, 'historyEvents'), 0)} | ` +
      `WORKFLOW_TASK_TIMED_OUT executions ${summary(of(variant, 'taskTimeouts')).max} max ` +
      `(sticky schedule-to-start ${summary(of(variant, 'stickyTimeouts')).max} max)`,
  );
}
console.log('where the CPU per recovery goes, median (min, max) over repeats');
for (const variant of RUNS) {
  console.log(
    `${variant.padEnd(13)} worker main thread ${formatSummary(of(variant, 'mainThreadMs'), 1)} ms | ` +
      `SDK core ${formatSummary(of(variant, 'coreThreadsMs'), 1)} ms | ` +
      `sandboxes and V8 helpers ${formatSummary(of(variant, 'sandboxThreadsMs'), 1)} ms | ` +
      `dev server ${formatSummary(of(variant, 'serverCpuMs'), 1)} ms | ` +
      `simulator and driver ${formatSummary(of(variant, 'simulatorCpuMs'), 1)} ms`,
  );
}
console.log(
  `recoverBatch/naive CPU per recovery ${formatSummary(ratio('recoverBatch', 'naive', 'cpuMsPerRecovery'))}; ` +
    `peak RSS ${formatSummary(ratio('recoverBatch', 'naive', 'peakRssMiB'))}`,
);
console.log(
  `recoverBatch throughput vs noop ${formatSummary(ratio('recoverBatch', 'noop', 'recoveriesPerSecond'))}; ` +
    `vs naive ${formatSummary(ratio('recoverBatch', 'naive', 'recoveriesPerSecond'))}`,
);
if (compared) {
  const comparedSource = compareCheckout ?? compareBundle;
  const what = [
    ...(comparedSource === undefined ? [] : [path.basename(comparedSource)]),
    ...Object.entries(compareWorkerEnv ?? {}).map(([name, value]) => `${name}=${value}`),
  ].join(' ');
  console.log(
    `recoverBatch/compared (${what}) worker CPU per recovery ` +
      `${formatSummary(ratio('recoverBatch', 'compared', 'cpuMsPerRecovery'))}; sandboxes ` +
      `${formatSummary(ratio('recoverBatch', 'compared', 'sandboxThreadsMs'))}; dev server ` +
      `${formatSummary(ratio('recoverBatch', 'compared', 'serverCpuMs'))}; throughput ` +
      `${formatSummary(ratio('recoverBatch', 'compared', 'recoveriesPerSecond'))}`,
  );
  console.log(
    `compared/naive CPU per recovery ${formatSummary(ratio('compared', 'naive', 'cpuMsPerRecovery'))}; ` +
      `compared throughput vs noop ${formatSummary(ratio('compared', 'noop', 'recoveriesPerSecond'))}`,
  );
}
if (ownPolling) {
  console.log(
    `ownPolling/naive CPU per recovery (the features' cost) ${formatSummary(ratio('ownPolling', 'naive', 'cpuMsPerRecovery'))}; ` +
      `recoverBatch/ownPolling (the poller's) ${formatSummary(ratio('recoverBatch', 'ownPolling', 'cpuMsPerRecovery'))}; ` +
      `throughput: ownPolling vs noop ${formatSummary(ratio('ownPolling', 'noop', 'recoveriesPerSecond'))}, ` +
      `recoverBatch vs ownPolling ${formatSummary(ratio('recoverBatch', 'ownPolling', 'recoveriesPerSecond'))}`,
  );
}
