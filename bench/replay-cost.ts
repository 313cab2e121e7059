/**
 * Workflow-code CPU per one-round recovery, measured by replaying one recorded history of each variant many
 * times in this process: the part of the worker's CPU that our workflow code decides, without the server,
 * the activities or the network, so it moves little between runs. Each variant is also replayed with the SDK's
 * per-promise stack-trace hook off, side by side, to show what a fix of temporalio/sdk-typescript#1587 would
 * leave of the gap, and with the hook's stack traces at V8's default of 10 frames as well as at the worker's
 * WORKER_WORKFLOW_STACK_TRACE_FRAMES, to show what that setting saves. Usage:
 *   npm run bench:replay-cost -- [--replays 300] [--repeats 3]
 */
import { AsyncLocalStorage, createHook } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import vm from 'node:vm';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
// Not a public API: the holder of the hook, which no worker option turns off. Replays run in this thread, so this
// is the instance they use.
import { globalHandlers } from '@temporalio/worker/lib/workflow/vm-shared.js';
import type { temporal } from '@temporalio/proto';
import { loadWorkerConfig } from '../worker/config.js';
import { limitWorkflowStackTraces } from '../worker/node-runtime.js';
import {
  buildBenchBundles,
  formatSummary,
  numberArg,
  startBenchStack,
  startBenchWorker,
  type BenchStack,
} from './harness.js';
import { startVariant, VARIANTS, workerKind, type Variant } from './variants.js';

// The replay workers' state changes are not figures.
Runtime.install({ logger: new DefaultLogger('WARN') });

const replays = numberArg('replays', 300);
const repeats = numberArg('repeats', 3);
/** The frames V8 keeps in a stack trace unless told otherwise: what a worker without the setting runs with. */
const V8_DEFAULT_FRAMES = 10;
/** What the product worker sets by default (WORKER_WORKFLOW_STACK_TRACE_FRAMES). */
const workerFrames = loadWorkerConfig({ ANCHOR_API_KEY: 'bench' }).limits.workflowStackTraceFrames!;

/** Sessions that end before the naive workflow's second read: the histories every earlier replay figure used. */
const SESSION_MS = 500;

async function recordOne(stack: BenchStack, variant: Variant): Promise<temporal.api.history.v1.IHistory> {
  const taskQueue = `bench-replay-${variant}-${randomUUID().slice(0, 8)}`;
  const worker = await startBenchWorker({
    kind: workerKind(variant),
    stack,
    taskQueue,
    maxCallsPerSecond: 1_000,
  });
  try {
    const batch = stack.simulator.createScriptedBatch({ count: 5, script: { '2': ['fail', 'ok'] } });
    const workflowId = await startVariant(stack.client, variant, taskQueue, batch, {
      pollMs: 1_000,
      backoffMs: 1_000,
      sessionMs: SESSION_MS,
    });
    const handle = stack.client.workflow.getHandle(workflowId);
    await handle.result();
    return handle.fetchHistory();
  } finally {
    await worker.stop();
  }
}

// The replays below run after the stack has stopped, on the same bundles.
const bundles = await buildBenchBundles();
const stack = await startBenchStack({ attemptDurationMs: SESSION_MS, queueDelayMs: 0 }, bundles);
const histories = new Map<Variant, temporal.api.history.v1.IHistory>();
try {
  for (const variant of VARIANTS) histories.set(variant, await recordOne(stack, variant));
} finally {
  await stack.stop();
}

async function replayAll(variant: Variant, count: number): Promise<void> {
  const history = histories.get(variant)!;
  const codePath = variant === 'recoverBatch' ? bundles.product : bundles.baseline;
  const copies = Array.from({ length: count }, (_, i) => ({ workflowId: `replay-${i}`, history }));
  for await (const result of Worker.runReplayHistories({ workflowBundle: { codePath } }, copies)) {
    if (result.error) throw result.error;
  }
}

/** Replays run with the hook's stack traces cut at `frames`: each replay worker's sandbox takes the limit set now. */
async function replayCpuMs(variant: Variant, frames = V8_DEFAULT_FRAMES): Promise<number> {
  limitWorkflowStackTraces(frames);
  const before = process.cpuUsage();
  await replayAll(variant, replays);
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1000 / replays;
}

/**
 * replayCpuMs with the SDK's stack-trace hooks off. Each replay worker installs them again when it loads its
 * bundle, so the install is held off until the replays are done.
 */
async function replayCpuMsWithoutStackTraceHook(variant: Variant): Promise<number> {
  const install = globalHandlers.install.bind(globalHandlers);
  globalHandlers.uninstall();
  globalHandlers.install = () => undefined;
  try {
    return await replayCpuMs(variant);
  } finally {
    globalHandlers.install = install;
  }
}

/**
 * Promises the workflow code creates per recovery, an exact count: the SDK captures and source-maps a stack trace
 * for each (temporalio/sdk-typescript#1587), which made them the largest part of recoverBatch's workflow CPU. The
 * workflow sandbox's promises are those of another realm than this one's. Counted in a pass of its own, as the
 * counting hook costs time.
 */
async function sandboxPromisesPerRecovery(variant: Variant): Promise<number> {
  const count = 10;
  let promises = 0;
  const hook = createHook({
    init(_asyncId, type, _triggerAsyncId, resource) {
      if (type === 'PROMISE' && !(resource instanceof Promise)) promises += 1;
    },
  });
  hook.enable();
  try {
    await replayAll(variant, count);
  } finally {
    hook.disable();
  }
  return promises / count;
}

/**
 * Stack frames the SDK's hook maps through the bundle's source map per recovery, an exact count, with its stack
 * traces cut at `frames`: the hook's cost grows with them.
 */
async function mappedFramesPerRecovery(variant: Variant, frames: number): Promise<number> {
  const count = 10;
  let mapped = 0;
  const consumers = globalHandlers.bundleFilenameToSourceMapConsumer;
  const get = consumers.get.bind(consumers);
  consumers.get = (filename: string) => {
    const consumer = get(filename);
    if (!consumer) return consumer;
    return Object.assign(Object.create(consumer) as typeof consumer, {
      originalPositionFor: (...args: Parameters<typeof consumer.originalPositionFor>) => {
        mapped += 1;
        return consumer.originalPositionFor(...args);
      },
    });
  };
  limitWorkflowStackTraces(frames);
  try {
    await replayAll(variant, count);
  } finally {
    // The instance's own property goes, and Map's method shows through again.
    delete (consumers as Partial<typeof consumers>).get;
  }
  return mapped / count;
}

/**
 * Calls into the workflow sandbox per recovery, an exact count: the SDK runs each with its isolate watchdog
 * (`isolateExecutionTimeout`), for which Node.js starts and joins a thread, whatever the call does. Counted as the
 * difference between replays of 20 copies and of 10, which leaves out the calls each replay worker makes once.
 */
async function sandboxCallsPerRecovery(variant: Variant): Promise<number> {
  let calls = 0;
  const original = Object.getOwnPropertyDescriptor(vm.Script.prototype, 'runInContext')!;
  const counted = new Proxy(original.value as (...args: unknown[]) => unknown, {
    apply(target, thisArg, args) {
      calls += 1;
      return Reflect.apply(target, thisArg, args);
    },
  });
  Object.defineProperty(vm.Script.prototype, 'runInContext', { ...original, value: counted });
  try {
    await replayAll(variant, 10);
    const forTen = calls;
    calls = 0;
    await replayAll(variant, 20);
    return (calls - forTen) / 10;
  } finally {
    Object.defineProperty(vm.Script.prototype, 'runInContext', original);
  }
}

/**
 * What a promise costs without the SDK's hook, and what a call into a sandbox costs with the watchdog, in µs: awaits
 * and calls in a context set up as the SDK sets up the sandbox's (its microtasks run as each call ends; an
 * AsyncLocalStorage in use, as the SDK's cancellation scopes keep one, so Node.js tracks every promise).
 */
function sandboxUnitCostsUs(): { await: number; watchdog: number } {
  const storage = new AsyncLocalStorage<object>();
  return storage.run({}, () => {
    const context = vm.createContext({}, { microtaskMode: 'afterEvaluate' });
    vm.runInContext('globalThis.awaitMany = async (n) => { for (let i = 0; i < n; i += 1) await null; }', context);
    const awaits = 1_000;
    const calls = 2_000;
    const script = new vm.Script(`awaitMany(${awaits})`);
    const cpuUsPerCall = (options: vm.RunningScriptOptions) => {
      const before = process.cpuUsage();
      for (let i = 0; i < calls; i += 1) script.runInContext(context, options);
      const used = process.cpuUsage(before);
      return (used.user + used.system) / calls;
    };
    const bare = cpuUsPerCall({});
    const watched = cpuUsPerCall({ timeout: 5_000 });
    return { await: bare / awaits, watchdog: watched - bare };
  });
}

const results = new Map<Variant, number[]>(VARIANTS.map((variant) => [variant, []]));
const resultsAtWorkerFrames = new Map<Variant, number[]>(VARIANTS.map((variant) => [variant, []]));
const resultsWithoutHook = new Map<Variant, number[]>(VARIANTS.map((variant) => [variant, []]));
const promises = new Map<Variant, number>();
const mappedFrames = new Map<Variant, { atDefault: number; atWorker: number }>();
const sandboxCalls = new Map<Variant, number>();
const unitCosts: { await: number; watchdog: number }[] = [];
try {
  for (let repeat = 1; repeat <= repeats; repeat += 1) {
    for (const variant of VARIANTS) {
      results.get(variant)!.push(await replayCpuMs(variant));
      resultsAtWorkerFrames.get(variant)!.push(await replayCpuMs(variant, workerFrames));
      resultsWithoutHook.get(variant)!.push(await replayCpuMsWithoutStackTraceHook(variant));
    }
    unitCosts.push(sandboxUnitCostsUs());
  }
  for (const variant of VARIANTS) {
    promises.set(variant, await sandboxPromisesPerRecovery(variant));
    sandboxCalls.set(variant, await sandboxCallsPerRecovery(variant));
    mappedFrames.set(variant, {
      atDefault: await mappedFramesPerRecovery(variant, V8_DEFAULT_FRAMES),
      atWorker: await mappedFramesPerRecovery(variant, workerFrames),
    });
  }
} finally {
  await bundles.remove();
}
for (const variant of VARIANTS) {
  const events = histories.get(variant)!.events?.length ?? 0;
  const frames = mappedFrames.get(variant)!;
  console.log(
    `${variant.padEnd(13)} ${events} events | replay CPU/recovery ${formatSummary(results.get(variant)!, 2)} ms | ` +
      `at ${workerFrames} frames ${formatSummary(resultsAtWorkerFrames.get(variant)!, 2)} ms | ` +
      `without the stack-trace hook ${formatSummary(resultsWithoutHook.get(variant)!, 2)} ms | ` +
      `workflow promises/recovery ${promises.get(variant)!.toFixed(1)} | frames source-mapped/recovery ` +
      `${frames.atDefault.toFixed(1)} (at ${workerFrames} frames ${frames.atWorker.toFixed(1)}) | ` +
      `calls into the sandbox/recovery ${sandboxCalls.get(variant)!.toFixed(2)}`,
  );
}
const ratioToNaive = (cpu: Map<Variant, number[]>) =>
  cpu.get('recoverBatch')!.map((ms, i) => ms / cpu.get('naive')![i]!);
console.log(`recoverBatch/naive replay CPU ${formatSummary(ratioToNaive(results))}`);
console.log(
  `recoverBatch/naive replay CPU at ${workerFrames} frames for both ${formatSummary(ratioToNaive(resultsAtWorkerFrames))}` +
    `; recoverBatch at ${workerFrames} frames / at ${V8_DEFAULT_FRAMES} ` +
    formatSummary(resultsAtWorkerFrames.get('recoverBatch')!.map((ms, i) => ms / results.get('recoverBatch')![i]!)),
);
console.log(
  `recoverBatch/naive replay CPU without the stack-trace hook ${formatSummary(ratioToNaive(resultsWithoutHook))}`,
);
console.log(
  `without the stack-trace hook, an await in a sandbox-like context ` +
    `${formatSummary(
      unitCosts.map((cost) => cost.await),
      3,
    )} µs; ` +
    `the isolate watchdog per call into it ${formatSummary(
      unitCosts.map((cost) => cost.watchdog),
      1,
    )} µs`,
);
