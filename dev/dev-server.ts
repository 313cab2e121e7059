import type { ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import getPort from 'get-port';
import { recoverySearchAttributes } from '../workflows/search-attributes.js';
import { spawnOwned, stopChild } from './child-processes.js';
import { resolveTemporalCli, temporalCliCacheDir, type ProvisionLog } from './temporal-cli.js';

export interface DevServerOptions {
  /** Persist the server's state across restarts in this SQLite file. */
  dbFilename?: string;
  namespace?: string;
  /** Serve the Web UI (default true). */
  ui?: boolean;
  port?: number;
  uiPort?: number;
  log?: ProvisionLog;
  readyTimeoutMs?: number;
  /** Server settings by dynamic-config key (`matching.useNewMatcher`, ...), each passed as a JSON value. */
  dynamicConfig?: Record<string, string | number | boolean>;
}

export interface DevServer {
  /** host:port of the frontend gRPC service. */
  readonly address: string;
  readonly namespace: string;
  readonly uiUrl: string | undefined;
  readonly pid: number | undefined;
  stop(): Promise<void>;
}

/**
 * Dynamic config under which the server dispatches tasks by priority: the new matcher is off by default in the dev
 * server's Temporal (v1.29) and on in compose's (v1.32).
 */
export const PRIORITY_DISPATCH_CONFIG = { 'matching.useNewMatcher': true } as const;

const HOST = '127.0.0.1';

const cliTypeNames: Record<string, string> = { KEYWORD: 'Keyword', INT: 'Int', DATETIME: 'Datetime' };

function searchAttributeArgs(): string[] {
  return recoverySearchAttributes.flatMap((key) => ['--search-attribute', `${key.name}=${cliTypeNames[key.type]}`]);
}

async function waitUntilReady(
  address: string,
  namespace: string,
  uiUrl: string | undefined,
  child: ChildProcess,
  stderrTail: () => string,
  timeoutMs: number,
) {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error(`temporal server start-dev exited with ${child.exitCode}: ${stderrTail()}`);
    }
    try {
      const connection = await Connection.connect({ address, connectTimeout: 1_000 });
      try {
        await connection.workflowService.describeNamespace({ namespace });
      } finally {
        await connection.close();
      }
      if (uiUrl) {
        const response = await fetch(uiUrl);
        if (!response.ok) throw new Error(`Web UI answered ${response.status}`);
      }
      return;
    } catch (err) {
      lastError = err;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  throw new Error(`Temporal dev server not ready after ${timeoutMs} ms: ${String(lastError)}; ${stderrTail()}`);
}

/**
 * Starts `temporal server start-dev` on loopback with the project's search
 * attributes and waits until it serves the namespace (and the Web UI).
 */
export async function startDevServer(options: DevServerOptions = {}): Promise<DevServer> {
  const executable = await resolveTemporalCli({ log: options.log });
  const namespace = options.namespace ?? 'default';
  const ui = options.ui ?? true;
  const port = options.port ?? (await getPort({ host: HOST }));
  const uiPort = options.uiPort ?? (await getPort({ host: HOST, exclude: [port] }));
  const args = [
    'server',
    'start-dev',
    '--ip',
    HOST,
    '--port',
    String(port),
    '--namespace',
    namespace,
    '--log-level',
    'error',
    ...searchAttributeArgs(),
    ...(ui ? ['--ui-port', String(uiPort)] : ['--headless']),
    ...(options.dbFilename ? ['--db-filename', options.dbFilename] : []),
    ...Object.entries(options.dynamicConfig ?? {}).flatMap(([key, value]) => [
      '--dynamic-config-value',
      `${key}=${JSON.stringify(value)}`,
    ]),
  ];
  // Stopped by the kernel if this process dies without running its cleanup (SIGKILL, a crashed test runner).
  const child = await spawnOwned(executable, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));

  const address = `${HOST}:${port}`;
  const uiUrl = ui ? `http://${HOST}:${uiPort}` : undefined;
  const stop = () => stopChild(child);
  try {
    await waitUntilReady(address, namespace, uiUrl, child, () => stderr.trim(), options.readyTimeoutMs ?? 60_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return { address, namespace, uiUrl, pid: child.pid, stop };
}

/**
 * The dev server an operator runs locally (`npm start`, `npm run dev-server`): with its Web UI, its state
 * kept next to the cached Temporal CLI (or in DEV_TEMPORAL_DB) so past runs stay browsable, and on the
 * usual ports when they are free, so the CLI's defaults (localhost:7233, :8233) reach it.
 */
export async function startLocalDevServer(
  env: NodeJS.ProcessEnv,
  log: ProvisionLog,
): Promise<DevServer & { dbFilename: string }> {
  const dbFilename = env.DEV_TEMPORAL_DB ?? path.join(path.dirname(temporalCliCacheDir(env)), 'dev-server.sqlite');
  await mkdir(path.dirname(dbFilename), { recursive: true });
  const port = await getPort({ host: HOST, port: 7233 });
  const uiPort = await getPort({ host: HOST, port: 8233, exclude: [port] });
  log(`Starting the Temporal dev server (state in ${dbFilename})…`);
  const server = await startDevServer({ ui: true, dbFilename, port, uiPort, log });
  return Object.assign(server, { dbFilename });
}
