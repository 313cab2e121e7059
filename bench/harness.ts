import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import proto from '@temporalio/proto';
import { bundleWorkflowCode } from '@temporalio/worker';
import { startDevServer, type DevServer, type DevServerOptions } from '../dev/dev-server.js';
import { currentNode, imageNodeVersion, imageRuntime, nodeBinary, type NodeRuntime } from '../dev/node-release.js';
import { startSimulator, type RunningSimulator, type SimulatorOptions } from '../simulator/index.js';
import { bundleRecoveryWorkflows } from '../worker/bundle.js';
import type { BenchWorkerEnv, SentCallsMessage } from './worker-process.js';

const workerScript = fileURLToPath(new URL('./worker-process.ts', import.meta.url));

export const BENCH_API_KEY = 'bench-api-key';

/** Both workflow bundles, written to a temporary folder: the product's and the baselines' (bench/workflows). */
export interface BenchBundles {
  product: string;
  baseline: string;
  remove(): Promise<void>;
}

export async function buildBenchBundles(): Promise<BenchBundles> {
  const dir = await mkdtemp(path.join(tmpdir(), 'anchor-bench-'));
  // A bench that exits early (a worker died, a limit was hit) skips its finally blocks; 'exit' still runs, and only
  // synchronous work, so the folder goes with the process however it ends.
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const product = path.join(dir, 'product.js');
  const baseline = path.join(dir, 'baseline.js');
  await writeFile(product, await bundleRecoveryWorkflows());
  const baselinePath = fileURLToPath(new URL('./workflows/index.ts', import.meta.url));
  await writeFile(baseline, (await bundleWorkflowCode({ workflowsPath: baselinePath, logger: undefined })).code);
  return { product, baseline, remove: () => rm(dir, { recursive: true, force: true }) };
}

export interface BenchStack {
  server: DevServer;
  simulator: RunningSimulator;
  client: Client;
  bundles: BenchBundles;
  stop(): Promise<void>;
}

/**
 * A dev server (with `serverOptions`), a simulator and a client, with both workflow bundles: `bundles` when given
 * (they outlive the stack), else built for it and removed when it stops.
 */
export async function startBenchStack(
  simulatorOptions: SimulatorOptions,
  bundles?: BenchBundles,
  serverOptions: Pick<DevServerOptions, 'dynamicConfig'> = {},
): Promise<BenchStack> {
  const ownBundles = bundles ?? (await buildBenchBundles());
  const server = await startDevServer({ ...serverOptions, ui: false });
  const simulator = await startSimulator({ apiKeys: [BENCH_API_KEY], ...simulatorOptions });
  // The figures read the poller's history, a page of which outgrew gRPC's default 4 MiB on a loaded machine (the
  // throughput benchmark stopped at 4.1 MiB): the reads are the benchmark's, not a limit of the product's.
  const connection = await Connection.connect({
    address: server.address,
    channelArgs: { 'grpc.max_receive_message_length': 64 * MIB },
  });
  const client = new Client({ connection });
  return {
    server,
    simulator,
    client,
    bundles: ownBundles,
    async stop() {
      await client.connection.close();
      await simulator.close();
      await server.stop();
      if (!bundles) await ownBundles.remove();
    },
  };
}

const CLOCK_TICKS_PER_SECOND = 100;
const PAGE_SIZE = 4096;

/** CPU seconds (user + system, every thread) a process has used so far, from /proc. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}

/**
 * Node's own threads: the worker threads that run the workflow sandboxes, and V8's and libuv's helpers. Node 20 names
 * them all `node`; Node 24 names them, and its main thread `MainThread`. The SDK's Rust core names its own threads.
 */
const NODE_THREAD_NAMES = new Set([
  'node',
  'WorkerThread',
  'V8Worker',
  'DelayedTaskSche',
  'SignalInspector',
  'libuv-worker',
]);

/**
 * CPU seconds so far by thread: the main thread (activities, the client, the SDK's JavaScript side), the SDK's Rust
 * core (its tokio and workflow-processing threads), and Node's other threads, where the workflow sandboxes run
 * beside V8's compiler and garbage-collector helpers.
 */
export function cpuSecondsByThread(pid: number): Record<ThreadKind, number> {
  const byKind: Record<ThreadKind, number> = { main: 0, core: 0, sandboxes: 0 };
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // The thread ended since the listing.
    }
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const kind = tid === String(pid) ? 'main' : NODE_THREAD_NAMES.has(name) ? 'sandboxes' : 'core';
    byKind[kind] += (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
  }
  return byKind;
}

export type ThreadKind = 'main' | 'core' | 'sandboxes';

export function rssBytes(pid: number): number {
  const statm = readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ');
  return Number(statm[1]) * PAGE_SIZE;
}

export interface BenchWorker {
  pid: number;
  /** Starts a new measurement window: CPU from now, peak RSS from now. */
  mark(): void;
  /** CPU seconds (in all, and by thread) and peak RSS since mark(). */
  measure(): {
    cpuSeconds: number;
    cpuSecondsByThread: Record<ThreadKind, number>;
    peakRssBytes: number;
    rssBytes: number;
  };
  /** When each of the worker's Anchor requests left it (ms since the epoch), so far. */
  sentCallsAt(): Promise<number[]>;
  stop(): Promise<void>;
}

export interface BenchWorkerOptions {
  kind: 'product' | 'baseline';
  stack: BenchStack;
  taskQueue: string;
  maxCallsPerSecond: number;
  /** How many of the benchmark's workers share maxCallsPerSecond; absent: 1. */
  workersSharingBudget?: number;
  maxCachedWorkflows?: number;
  /** 'off' runs the product without its batch status poller. */
  poller?: 'off';
  /** The product's webhook for end notifications; every bad end is notified. */
  notifyWebhookUrl?: string;
  /** V8's old-space limit for the worker process (node --max-old-space-size). */
  heapMiB?: number;
  /** A product bundle built from other code (an earlier commit), run on this code's activities and worker unless `checkout`. */
  bundlePath?: string;
  /**
   * A checkout of other code (an earlier commit, with node_modules): its bench/worker-process.ts runs the worker, so
   * its activities and wiring run too. With `bundlePath`, a bundle built from the same checkout.
   */
  checkout?: string;
  /** The Node.js that runs the worker (workerNodeArg); absent: this process's. */
  node?: NodeRuntime;
  /** Worker variables (worker/config.ts) the product worker reads over the benchmark's own settings. */
  productEnv?: Record<string, string>;
}

/**
 * `--worker-node <version>`: the workers run on that Node.js release instead of this process's (`image`: the one the
 * Docker image runs them on, with the image's node flags and runtime environment). The image's release need not be
 * the one the benchmark and the tests run on.
 */
export function workerNodeArg(): NodeRuntime | undefined {
  const index = process.argv.indexOf('--worker-node');
  if (index === -1) return undefined;
  const asked = process.argv[index + 1] ?? '';
  let node: NodeRuntime;
  try {
    node =
      asked === 'image'
        ? { path: nodeBinary(imageNodeVersion()), ...imageRuntime() }
        : { ...currentNode(), path: nodeBinary(asked) };
  } catch (err) {
    throw new Error(`--worker-node (a version, or image): ${(err as Error).message}`);
  }
  const env = Object.entries(node.env).map(([name, value]) => `${name}=${value}`);
  console.error(`workers run on ${[...env, node.path, ...node.nodeArgs].join(' ')}`);
  return node;
}

function waitForExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Spawns a worker process and samples its RSS every 100 ms until stopped. */
export async function startBenchWorker(options: BenchWorkerOptions): Promise<BenchWorker> {
  const env: BenchWorkerEnv = {
    BENCH_WORKER_KIND: options.kind,
    BENCH_TEMPORAL_ADDRESS: options.stack.server.address,
    BENCH_TASK_QUEUE: options.taskQueue,
    BENCH_ANCHOR_URL: options.stack.simulator.url,
    BENCH_ANCHOR_KEY: BENCH_API_KEY,
    BENCH_BUNDLE_PATH:
      options.bundlePath ??
      (options.kind === 'product' ? options.stack.bundles.product : options.stack.bundles.baseline),
    BENCH_MAX_CALLS_PER_SECOND: String(options.maxCallsPerSecond),
    ...(options.workersSharingBudget ? { BENCH_WORKERS_SHARING_BUDGET: String(options.workersSharingBudget) } : {}),
    ...(options.maxCachedWorkflows ? { BENCH_MAX_CACHED_WORKFLOWS: String(options.maxCachedWorkflows) } : {}),
    ...(options.poller ? { BENCH_POLLER: options.poller } : {}),
    ...(options.notifyWebhookUrl ? { BENCH_NOTIFY_WEBHOOK_URL: options.notifyWebhookUrl } : {}),
    ...(options.productEnv ? { BENCH_PRODUCT_ENV: JSON.stringify(options.productEnv) } : {}),
  };
  const heap = options.heapMiB ? [`--max-old-space-size=${options.heapMiB}`] : [];
  const script = options.checkout ? path.join(options.checkout, 'bench', 'worker-process.ts') : workerScript;
  // The benchmark's own environment and NODE_OPTIONS come after the image's, so that they override them.
  const nodeOptions = [options.node?.env.NODE_OPTIONS, process.env.NODE_OPTIONS].filter(Boolean).join(' ');
  const nodeArgs = [...(options.node?.nodeArgs ?? []), ...heap, '--import', 'tsx', script];
  const child = spawn(options.node?.path ?? process.execPath, nodeArgs, {
    env: { ...options.node?.env, ...process.env, ...env, ...(nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`bench worker exited with ${code} before it was ready`)));
  });
  const pid = child.pid!;
  let cpuAtMark = cpuSeconds(pid);
  let byThreadAtMark = cpuSecondsByThread(pid);
  let peak = rssBytes(pid);
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssBytes(pid));
  }, 100);
  let stopping = false;
  const startedAt = Date.now();
  // A worker that dies mid-run (a crash of the SDK's workflow thread aborts the process) ends the benchmark with
  // what happened and when, not with the sampler failing to read a process that is gone.
  child.once('exit', (code, signal) => {
    clearInterval(sampler);
    if (stopping) return;
    const after = ((Date.now() - startedAt) / 1000).toFixed(0);
    console.error(`bench worker ${pid} died ${after} s after it was ready (exit code ${code}, signal ${signal})`);
    process.exit(1);
  });
  return {
    pid,
    mark() {
      cpuAtMark = cpuSeconds(pid);
      byThreadAtMark = cpuSecondsByThread(pid);
      peak = rssBytes(pid);
    },
    measure() {
      const rss = rssBytes(pid);
      peak = Math.max(peak, rss);
      const byThread = cpuSecondsByThread(pid);
      for (const kind of Object.keys(byThread) as ThreadKind[]) byThread[kind] -= byThreadAtMark[kind];
      return {
        cpuSeconds: cpuSeconds(pid) - cpuAtMark,
        cpuSecondsByThread: byThread,
        peakRssBytes: peak,
        rssBytes: rss,
      };
    },
    sentCallsAt() {
      return new Promise((resolve, reject) => {
        const onExit = () => reject(new Error('bench worker exited before it told its sent calls'));
        const onMessage = (message: unknown) => {
          if (typeof message !== 'object' || message === null || !('sentCallsAt' in message)) return;
          child.off('message', onMessage);
          child.off('exit', onExit);
          resolve((message as SentCallsMessage).sentCallsAt);
        };
        child.on('message', onMessage);
        child.once('exit', onExit);
        child.send('sent-calls', (error) => {
          if (error) reject(error);
        });
      });
    },
    async stop() {
      stopping = true;
      clearInterval(sampler);
      child.kill('SIGTERM');
      await waitForExit(child);
    },
  };
}

/** Runs `work` over `items` with at most `concurrency` at a time. */
export async function forEachLimit<T>(items: T[], concurrency: number, work: (item: T) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

export interface HistoryFigures {
  /** Executions with a workflow task the worker took but did not finish within its 10 s. */
  startToClose: number;
  /** Executions with a task that waited over 5 s for its sticky worker and went back to the shared queue. */
  scheduleToStart: number;
  /** History events per execution, median: the server's work per recovery, which bounds throughput here. */
  medianEvents: number;
  /** Events by type in the first execution's history: shows whether two variants have the same shape. */
  firstHistoryShape: Record<string, number>;
}

/** How many of the workflows' histories hold a WORKFLOW_TASK_TIMED_OUT event, by timeout type, and their sizes. */
export async function inspectHistories(client: Client, workflowIds: string[]): Promise<HistoryFigures> {
  const { EventType, TimeoutType } = proto.temporal.api.enums.v1;
  const counts: HistoryFigures = { startToClose: 0, scheduleToStart: 0, medianEvents: 0, firstHistoryShape: {} };
  const lengths: number[] = [];
  await forEachLimit(workflowIds, 20, async (workflowId) => {
    const history = await client.workflow.getHandle(workflowId).fetchHistory();
    lengths.push(history.events?.length ?? 0);
    if (workflowId === workflowIds[0]) {
      for (const event of history.events ?? []) {
        const type = EventType[event.eventType ?? 0]!.replace('EVENT_TYPE_', '');
        counts.firstHistoryShape[type] = (counts.firstHistoryShape[type] ?? 0) + 1;
      }
    }
    const types = new Set(
      (history.events ?? [])
        .filter((event) => event.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT)
        .map((event) => event.workflowTaskTimedOutEventAttributes?.timeoutType),
    );
    if (types.has(TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE)) counts.startToClose += 1;
    if (types.has(TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START)) counts.scheduleToStart += 1;
  });
  counts.medianEvents = percentile(
    lengths.sort((a, b) => a - b),
    50,
  );
  return counts;
}

/** Events of one type in every run of a workflow id (a continued-as-new chain counts whole). */
export async function countEvents(
  client: Client,
  workflowId: string,
  eventType: proto.temporal.api.enums.v1.EventType,
): Promise<{ events: number; runs: number }> {
  let events = 0;
  let runs = 0;
  for await (const execution of client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) {
    runs += 1;
    const history = await client.workflow.getHandle(workflowId, execution.runId).fetchHistory();
    events += (history.events ?? []).filter((event) => event.eventType === eventType).length;
  }
  return { events, runs };
}

/** Workflow tasks completed by every run of a workflow id. */
export async function countWorkflowTasks(client: Client, workflowId: string): Promise<{ tasks: number; runs: number }> {
  const { events, runs } = await countEvents(
    client,
    workflowId,
    proto.temporal.api.enums.v1.EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
  );
  return { tasks: events, runs };
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export function summary(values: number[]): { min: number; median: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  return { min: sorted[0] ?? NaN, median: percentile(sorted, 50), max: sorted.at(-1) ?? NaN };
}

export function formatSummary(values: number[], digits = 2): string {
  const { min, median, max } = summary(values);
  return `${median.toFixed(digits)} (min ${min.toFixed(digits)}, max ${max.toFixed(digits)})`;
}

/** --name value pairs from argv, with defaults. */
export function numberArg(name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`);
  if (index === -1) return fallback;
  const value = Number(process.argv[index + 1]);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name}: expected a positive number`);
  return value;
}

/**
 * `--compare-worker-env NAME=VALUE[,NAME=VALUE…]`: worker variables (worker/config.ts) for a product worker run beside
 * this code's with its settings, to measure a setting in the same run; absent: undefined.
 */
export function compareWorkerEnvArg(): Record<string, string> | undefined {
  const index = process.argv.indexOf('--compare-worker-env');
  if (index === -1) return undefined;
  const pairs = (process.argv[index + 1] ?? '').split(',').map((pair) => pair.split('='));
  if (pairs.some(([name, value]) => !name || value === undefined))
    throw new Error('--compare-worker-env: expected NAME=VALUE[,NAME=VALUE…]');
  return Object.fromEntries(pairs) as Record<string, string>;
}

/**
 * `--compare-bundle <file>`: a product bundle built from other code (an earlier commit's `npm run build:bundle --
 * <file>`), to run beside this code's in the same run; absent: undefined.
 */
export function compareBundleArg(): string | undefined {
  const index = process.argv.indexOf('--compare-bundle');
  if (index === -1) return undefined;
  const bundle = path.resolve(process.argv[index + 1] ?? '');
  if (!existsSync(bundle)) throw new Error(`--compare-bundle: no bundle at ${bundle}`);
  return bundle;
}

/**
 * `--compare-checkout <dir>`: a checkout of other code (an earlier commit: `git worktree add <dir> <commit>` and a link
 * to this node_modules in it), whose worker runs beside this code's in the same run; absent: undefined.
 */
export function compareCheckoutArg(): string | undefined {
  const index = process.argv.indexOf('--compare-checkout');
  if (index === -1) return undefined;
  const checkout = path.resolve(process.argv[index + 1] ?? '');
  if (!existsSync(path.join(checkout, 'bench', 'worker-process.ts'))) {
    throw new Error(`--compare-checkout <dir>: no checkout with bench/worker-process.ts at ${checkout}`);
  }
  return checkout;
}

/** Builds the product bundle of the checkout `checkout` (compareCheckoutArg) into `output`, with its own bundler. */
export async function buildCheckoutBundle(checkout: string, output: string): Promise<void> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'worker/build-bundle.ts', output], {
    cwd: checkout,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`building the bundle of ${checkout} failed (exit ${code})`);
}

export const MIB = 1024 * 1024;
