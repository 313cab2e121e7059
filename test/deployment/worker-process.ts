import getPort from 'get-port';
import { spawnWatched, type WatchedChild } from '../client/child-process.js';
import { currentNode, type NodeRuntime } from '../../dev/node-release.js';

/** What the worker prints once it polls: the first JSON line with msg "Worker started". */
export const WORKER_STARTED = /^\{.*"msg":"Worker started".*\}$/m;

export interface WorkerProcess extends WatchedChild {
  metricsPort: number;
  /** Every JSON line the worker wrote to stdout so far. */
  logEntries(): Record<string, unknown>[];
}

/**
 * Starts `worker/main.ts` as its own process, as the container does, with `env` on top of the test's environment,
 * `preload` (a module of the repository) imported before it, on `node` (its flags before the script, its environment
 * under `env`).
 */
export async function spawnWorkerProcess(
  env: NodeJS.ProcessEnv,
  preload?: string,
  node: NodeRuntime = currentNode(),
): Promise<WorkerProcess> {
  const metricsPort = await getPort();
  const imports = ['--import', 'tsx', ...(preload === undefined ? [] : ['--import', preload])];
  const watched = spawnWatched(node.path, [...node.nodeArgs, ...imports, 'worker/main.ts'], {
    env: { ...process.env, ...node.env, METRICS_PORT: String(metricsPort), LOG_LEVEL: 'INFO', ...env },
  });
  const logEntries = () =>
    watched
      .stdout()
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  return { ...watched, metricsPort, logEntries };
}
