import { randomBytes, randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import type { Client } from '@temporalio/client';
import { formatReport } from '../client/format-report.js';
import { followRecovery, progressViewFor } from '../client/progress.js';
import { BatchRecoveries, connectTemporal, workflowUiUrl } from '../client/recoveries.js';
import { startSimulator, type RunningSimulator, type ScriptedBatchSpec } from '../simulator/index.js';
import { runWorker } from '../worker/run-worker.js';
import { recentPollerIdentities } from '../worker/task-queue-pollers.js';
import { DEFAULT_TASK_QUEUE } from '../workflows/definitions.js';
import type { RecoverBatchInput } from '../workflows/input.js';
import { startLocalDevServer } from './dev-server.js';
import { endBySignal } from './stop-signals.js';

// `npm start`: with TEMPORAL_ADDRESS and ANCHOR_API_KEY set, the production worker.
// Otherwise whatever is missing runs here: a Temporal dev server with its Web UI,
// an AnchorBrowser simulator with a demo batch whose recovery is shown; the
// worker runs in this process. Ctrl-C stops everything.

const print = (text: string) => process.stdout.write(`${text}\n`);

interface TemporalTarget {
  address: string;
  namespace: string;
  uiUrl: string;
}

/** Item index → outcome of each attempt: most sessions start, some need one or two retries, one never does. */
const DEMO_SCRIPT: ScriptedBatchSpec['script'] = {
  '3': ['fail', 'ok'],
  '7': ['fail', 'ok'],
  '12': ['fail', 'ok'],
  '18': ['fail', 'ok'],
  '25': ['fail', 'ok'],
  '31': ['fail', 'ok'],
  '22': ['fail', 'fail', 'ok'],
  '36': 'always-fail',
};
const DEMO_SESSIONS = 40;

/** Short intervals so the demo ends in seconds; production defaults are minutes. */
const demoPolicy = (batchId: string): RecoverBatchInput => ({
  batchId,
  maxRounds: 3,
  roundBackoff: { initialInterval: '2s', backoffCoefficient: 1.5, maximumInterval: '5s' },
  poll: { initialInterval: '1s', backoffCoefficient: 1, maximumInterval: '1s' },
  deadline: '10m',
});

/**
 * A Ctrl-C reaches this process more than once: from the terminal (the whole
 * process group) and relayed by npm. Copies within this window are the same
 * press; only a later one gives up waiting for a clean stop.
 */
const SAME_PRESS_MS = 1_000;

/** One signal stops the stack (the worker listens itself); a second press gives up waiting. */
function onShutdownSignals(): AbortSignal {
  const shutdown = new AbortController();
  let firstAt = 0;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (!shutdown.signal.aborted) {
        firstAt = Date.now();
        print('Stopping (press Ctrl-C again to force)…');
        shutdown.abort(signal);
      } else if (Date.now() - firstAt > SAME_PRESS_MS) {
        process.exit(130);
      }
    });
  }
  return shutdown.signal;
}

async function startLocalTemporal(env: NodeJS.ProcessEnv): Promise<TemporalTarget & { stop(): Promise<void> }> {
  const server = await startLocalDevServer(env, print);
  return { address: server.address, namespace: server.namespace, uiUrl: server.uiUrl ?? '', stop: () => server.stop() };
}

/** How often the demo asks the server whether the worker's polls have reached it. */
const POLLER_CHECK_MS = 250;

/**
 * Until the server lists a poller of the task queue's workflow tasks. The progress view says "no worker polls the
 * task queue" until it does, and the server keeps a describe's answer for 5 s; asked only once the worker polls, it
 * answers with that worker at the first or second ask.
 */
async function untilServerSeesPoller(client: Client, taskQueue: string, signal: AbortSignal): Promise<void> {
  while ((await recentPollerIdentities(client, taskQueue, 'workflow')).length === 0) {
    await delay(POLLER_CHECK_MS, undefined, { signal });
  }
}

async function runDemo(
  simulator: RunningSimulator,
  recoveries: BatchRecoveries,
  temporal: TemporalTarget,
  signal: AbortSignal,
) {
  await untilServerSeesPoller(recoveries.client, recoveries.taskQueue, signal);
  const batch = simulator.createScriptedBatch({ id: randomUUID(), count: DEMO_SESSIONS, script: DEMO_SCRIPT });
  print(
    `Demo batch ${batch.id}: ${DEMO_SESSIONS} sessions; 7 fail to start and recover on retry, 1 always fails ` +
      '(expected outcome: exhausted after 3 rounds, 1 session still failing)',
  );
  const started = await recoveries.start(demoPolicy(batch.id));
  const url = workflowUiUrl(temporal.uiUrl, temporal.namespace, started.workflowId);
  print(`Recovery workflow ${started.workflowId}: ${url}`);
  const { report } = await followRecovery(recoveries, batch.id, { view: progressViewFor(process.stdout), signal });
  print(`\n${formatReport(report, url)}\n`);
  // On the usual ports the CLI's defaults (localhost:7233, :8233) already point here.
  const usualPorts = temporal.address.endsWith(':7233') && temporal.uiUrl.endsWith(':8233');
  const cliFlags = usualPorts ? '' : ` --address ${temporal.address} --ui-url ${temporal.uiUrl}`;
  print(`Try: npm run cli --${cliFlags} report ${batch.id}`);
}

async function runLocalStack(env: NodeJS.ProcessEnv, signal: AbortSignal): Promise<void> {
  const cleanups: Array<() => Promise<void>> = [];
  try {
    const temporal: TemporalTarget = env.TEMPORAL_ADDRESS
      ? {
          address: env.TEMPORAL_ADDRESS,
          namespace: env.TEMPORAL_NAMESPACE ?? 'default',
          uiUrl: env.TEMPORAL_UI_URL ?? 'http://localhost:8233',
        }
      : await startLocalTemporal(env).then((server) => {
          cleanups.push(async () => {
            await server.stop();
            print('Temporal dev server stopped');
          });
          return server;
        });
    print(`Temporal Web UI: ${temporal.uiUrl}`);
    if (signal.aborted) return;

    let simulator: RunningSimulator | undefined;
    const workerEnv = {
      // The demo's own output is the progress and the report; the worker's JSON logs would break into them.
      LOG_LEVEL: 'WARN',
      ...env,
      TEMPORAL_ADDRESS: temporal.address,
      TEMPORAL_NAMESPACE: temporal.namespace,
    };
    if (!env.ANCHOR_API_KEY) {
      // A fresh key per run: the simulator only answers the worker started here.
      const apiKey = `sim-${randomBytes(16).toString('hex')}`;
      const sim = await startSimulator({ apiKeys: [apiKey], queueDelayMs: 200, attemptDurationMs: 1_500 });
      simulator = sim;
      cleanups.push(async () => {
        await sim.close();
        print('Simulator stopped');
      });
      Object.assign(workerEnv, { ANCHOR_BASE_URL: sim.url, ANCHOR_API_KEY: apiKey });
      print(`AnchorBrowser simulator: ${sim.url}`);
    }
    if (signal.aborted) return;

    const client = await connectTemporal({ address: temporal.address, namespace: temporal.namespace });
    cleanups.push(() => client.connection.close());
    // A Ctrl-C during the connect: the worker below would install its own signal handlers after it and run on.
    if (signal.aborted) return;
    const recoveries = new BatchRecoveries(client, env.TEMPORAL_TASK_QUEUE ?? DEFAULT_TASK_QUEUE);
    // The demo ends with the worker, whether a signal or an error stopped it.
    const workerEnded = new AbortController();
    const demoSignal = AbortSignal.any([signal, workerEnded.signal]);
    // The demo starts once the worker below polls: a recovery needs none to start, but its first progress lines
    // would say that no worker polls the task queue.
    let demo: Promise<void> = Promise.resolve();
    const startDemo = (sim: RunningSimulator) => {
      demo = runDemo(sim, recoveries, temporal, demoSignal).then(
        () => {
          print('Running until Ctrl-C.');
        },
        (err: Error) => {
          if (!demoSignal.aborted) print(`Demo failed: ${err.message.split('\n')[0]}`);
        },
      );
    };
    try {
      await runWorker(workerEnv, { onPolling: simulator && (() => startDemo(simulator)) });
    } finally {
      workerEnded.abort();
      await demo;
    }
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup();
  }
}

async function main(env: NodeJS.ProcessEnv): Promise<void> {
  if (env.TEMPORAL_ADDRESS && env.ANCHOR_API_KEY) return runWorker(env);
  const shutdown = onShutdownSignals();
  await runLocalStack(env, shutdown);
  print('Stopped.');
  if (shutdown.aborted) endBySignal(shutdown.reason as NodeJS.Signals);
}

main(process.env).catch((err: unknown) => {
  process.stderr.write(`error: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]}\n`);
  process.exitCode = 1;
});
