/**
 * One benchmark worker in a process of its own, so its CPU and RSS are measured apart from the
 * dev server, the simulator and the driver. Started by bench/harness.ts; reports `ready` over IPC
 * and runs until SIGTERM. Asked `sent-calls` over IPC, it answers when each of its Anchor requests left.
 */
import { DefaultLogger, NativeConnection, Runtime, Worker, type LogLevel } from '@temporalio/worker';
import { AnchorApiClient } from '../anchor-api/index.js';
import { recordHttpRequests } from '../dev/http-requests.js';
import { loadWorkerConfig } from '../worker/config.js';
import { createRecoveryWorkers } from '../worker/create-worker.js';
import { createBenchActivities } from './activities.js';

export interface BenchWorkerEnv {
  BENCH_WORKER_KIND: 'product' | 'baseline';
  BENCH_TEMPORAL_ADDRESS: string;
  BENCH_TASK_QUEUE: string;
  BENCH_ANCHOR_URL: string;
  BENCH_ANCHOR_KEY: string;
  BENCH_BUNDLE_PATH: string;
  BENCH_MAX_CALLS_PER_SECOND: string;
  /** How many benchmark workers share the budget (ANCHOR_WORKERS_SHARING_BUDGET). */
  BENCH_WORKERS_SHARING_BUDGET?: string;
  BENCH_MAX_CACHED_WORKFLOWS?: string;
  /** 'off' runs the product without its batch status poller. */
  BENCH_POLLER?: string;
  /** The product's NOTIFY_WEBHOOK_URL, with every bad end notified, operators' cancels included. */
  BENCH_NOTIFY_WEBHOOK_URL?: string;
  /** Worker variables, as JSON, that the product worker reads over those above (`--compare-worker-env`). */
  BENCH_PRODUCT_ENV?: string;
  /** Set by hand, not by the harness: the SDK's log level in the bench worker (ERROR by default). */
  BENCH_WORKER_LOG_LEVEL?: LogLevel;
  /**
   * Set by hand: every this many seconds, the worker prints where its memory is (RSS, this thread's V8 heap,
   * external memory), to tell the main thread's heap from the SDK's workflow thread and native memory.
   */
  BENCH_WORKER_MEMORY_LOG_SECONDS?: string;
}

/** What the worker answers to `sent-calls`: when each Anchor request left it, in ms since the epoch. */
export interface SentCallsMessage {
  sentCallsAt: number[];
}

/** Answers `sent-calls` over IPC with when each of this worker's Anchor requests left it. */
function recordAnchorRequests(anchorUrl: string): void {
  const sentAt: number[] = [];
  recordHttpRequests(anchorUrl, (sentAtMs) => sentAt.push(sentAtMs));
  process.on('message', (message) => {
    if (message === 'sent-calls') process.send?.({ sentCallsAt: sentAt } satisfies SentCallsMessage);
  });
  // A listener keeps the IPC channel, and so the process, alive: the worker's end after SIGTERM is its exit.
  process.channel?.unref();
}

/** What Node.js 22.16 and later answer for a worker thread's isolate (`Worker.getHeapStatistics`). */
interface ThreadHeap {
  used_heap_size: number;
  total_heap_size: number;
}

/**
 * Prints the process's memory by kind every `seconds`, in MiB. Where Node.js can read another thread's heap (from
 * 22.16), the SDK's workflow thread is split out of the rest.
 */
function logMemory(seconds: number): void {
  const mib = (bytes: number) => Math.round(bytes / 2 ** 20);
  const startedAt = Date.now();
  const threadHeaps: (() => Promise<ThreadHeap>)[] = [];
  process.on('worker', (thread) => {
    const { getHeapStatistics } = thread as { getHeapStatistics?: () => Promise<ThreadHeap> };
    if (getHeapStatistics) threadHeaps.push(() => getHeapStatistics.call(thread));
  });
  setInterval(() => {
    void (async () => {
      const { rss, heapTotal, heapUsed, external, arrayBuffers } = process.memoryUsage();
      const threads = await Promise.all(threadHeaps.map((read) => read().catch(() => undefined)));
      const live = threads.filter((heap): heap is ThreadHeap => heap !== undefined);
      const threadsTotal = live.reduce((sum, heap) => sum + heap.total_heap_size, 0);
      const at = Math.round((Date.now() - startedAt) / 1000);
      console.error(
        `memory at ${at} s: rss ${mib(rss)}, main heap ${mib(heapUsed)} of ${mib(heapTotal)}, ` +
          `external ${mib(external)} (array buffers ${mib(arrayBuffers)}), ` +
          live
            .map((heap) => `worker thread heap ${mib(heap.used_heap_size)} of ${mib(heap.total_heap_size)}, `)
            .join('') +
          `rest (${live.length ? '' : 'workflow thread, '}native) ${mib(rss - heapTotal - external - threadsTotal)} MiB`,
      );
    })();
  }, seconds * 1000).unref();
}

async function main() {
  const env = process.env as unknown as BenchWorkerEnv;
  recordAnchorRequests(env.BENCH_ANCHOR_URL);
  if (env.BENCH_WORKER_MEMORY_LOG_SECONDS) logMemory(Number(env.BENCH_WORKER_MEMORY_LOG_SECONDS));
  // Errors only by default; BENCH_WORKER_LOG_LEVEL=WARN shows slow or failing workflow tasks when a run goes wrong.
  Runtime.install({ logger: new DefaultLogger(env.BENCH_WORKER_LOG_LEVEL ?? 'ERROR') });
  const connection = await NativeConnection.connect({ address: env.BENCH_TEMPORAL_ADDRESS });
  const anchor = { baseUrl: env.BENCH_ANCHOR_URL, apiKey: env.BENCH_ANCHOR_KEY, timeoutMs: 15_000 };
  const limits = {
    maxCallsPerSecond: Number(env.BENCH_MAX_CALLS_PER_SECOND),
    maxConcurrentActivities: 20,
    maxConcurrentWorkflowTasks: 20,
    ...(env.BENCH_MAX_CACHED_WORKFLOWS ? { maxCachedWorkflows: Number(env.BENCH_MAX_CACHED_WORKFLOWS) } : {}),
  };
  const workflowBundle = { codePath: env.BENCH_BUNDLE_PATH };
  // The product worker reads its settings the way the real one does, defaults included.
  const productConfig = () =>
    loadWorkerConfig({
      TEMPORAL_ADDRESS: env.BENCH_TEMPORAL_ADDRESS,
      TEMPORAL_TASK_QUEUE: env.BENCH_TASK_QUEUE,
      ANCHOR_BASE_URL: env.BENCH_ANCHOR_URL,
      ANCHOR_API_KEY: env.BENCH_ANCHOR_KEY,
      ANCHOR_MAX_CALLS_PER_SECOND: env.BENCH_MAX_CALLS_PER_SECOND,
      ...(env.BENCH_WORKERS_SHARING_BUDGET ? { ANCHOR_WORKERS_SHARING_BUDGET: env.BENCH_WORKERS_SHARING_BUDGET } : {}),
      ANCHOR_BATCH_STATUS_POLLER: env.BENCH_POLLER === 'off' ? 'false' : 'true',
      ...(env.BENCH_MAX_CACHED_WORKFLOWS ? { WORKER_MAX_CACHED_WORKFLOWS: env.BENCH_MAX_CACHED_WORKFLOWS } : {}),
      ...(env.BENCH_NOTIFY_WEBHOOK_URL && {
        NOTIFY_WEBHOOK_URL: env.BENCH_NOTIFY_WEBHOOK_URL,
        NOTIFY_OUTCOMES: 'exhausted,deadline,failed,batch_cancelled,operator_cancelled',
      }),
      ...(JSON.parse(env.BENCH_PRODUCT_ENV ?? '{}') as Record<string, string>),
    });
  const worker =
    env.BENCH_WORKER_KIND === 'product'
      ? await createRecoveryWorkers({ connection, workflows: { workflowBundle }, config: productConfig() })
      : await Worker.create({
          connection,
          taskQueue: env.BENCH_TASK_QUEUE,
          workflowBundle,
          activities: createBenchActivities(new AnchorApiClient(anchor)),
          maxConcurrentActivityTaskExecutions: limits.maxConcurrentActivities,
          maxConcurrentWorkflowTaskExecutions: limits.maxConcurrentWorkflowTasks,
          maxTaskQueueActivitiesPerSecond: limits.maxCallsPerSecond,
          ...(limits.maxCachedWorkflows ? { maxCachedWorkflows: limits.maxCachedWorkflows } : {}),
        });
  process.once('SIGTERM', () => worker.shutdown());
  const running = worker.run();
  process.send?.('ready');
  await running;
  await connection.close();
}

await main();
