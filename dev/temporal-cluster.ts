import { execFile, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import getPort from 'get-port';
import { outputTail, spawnOwned, stopChild } from './child-processes.js';
import type { ProvisionLog } from './go-build.js';
import { startPostgres, type RunningPostgres } from './postgres.js';
import { resolveTemporalCli } from './temporal-cli.js';
import { composePins, resolveTemporalServer, resolveTemporalUiServer } from './temporal-server.js';
import { bootstrapSearchAttributes } from './validate-compose.js';

const DEPLOY_DIR = fileURLToPath(new URL('../deploy/', import.meta.url));
const HOST = '127.0.0.1';

export interface TemporalClusterOptions {
  /** Namespaces to bootstrap (the first is the default one). */
  namespaces?: string[];
  /** Also serve the Web UI version compose pins, built from github.com/temporalio/ui-server/v2. */
  ui?: boolean;
  log?: ProvisionLog;
  readyTimeoutMs?: number;
}

export interface TemporalCluster {
  /** host:port of the frontend gRPC service. */
  readonly address: string;
  readonly namespace: string;
  readonly namespaces: string[];
  readonly uiUrl: string | undefined;
  readonly serverVersion: string;
  readonly uiVersion: string | undefined;
  readonly postgresVersion: string;
  stop(): Promise<void>;
}

async function runScript(script: string, env: NodeJS.ProcessEnv, log: ProvisionLog) {
  try {
    const { stdout } = await promisify(execFile)('sh', [path.join(DEPLOY_DIR, script)], { env });
    for (const line of stdout.trim().split('\n').slice(-1)) log(`${script}: ${line}`);
  } catch (err) {
    const { stdout, stderr } = err as { stdout?: string; stderr?: string };
    throw new Error(`deploy/${script} failed: ${String(err)}\n${stdout ?? ''}\n${stderr ?? ''}`.trim());
  }
}

async function waitFor(what: string, child: ChildProcess, tail: () => string, timeoutMs: number, url: string) {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}: ${tail()}`);
    try {
      const response = await fetch(url);
      if (response.ok) return;
      lastError = new Error(`${url} answered ${response.status}`);
    } catch (err) {
      lastError = err;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`${what} not ready after ${timeoutMs} ms: ${String(lastError)}; ${tail()}`);
}

/**
 * Candidate ports below 32768: the server stores its membership ports in a PostgreSQL smallint
 * (a port from the kernel's ephemeral range fails with "out of range for type smallint").
 * Random, so that concurrent runs on one machine rarely try the same ones.
 */
const lowPorts = () => Array.from({ length: 64 }, () => 10_000 + Math.floor(Math.random() * 22_000));

const pathWith = (...dirs: string[]) => [...dirs, process.env.PATH ?? ''].join(path.delimiter);

/**
 * A production-topology Temporal on loopback: the server version docker-compose.yml pins, built
 * from the Go module proxy, on a throwaway PostgreSQL cluster, with the schema and the namespace
 * set up by the same deploy/ scripts compose runs, the server configured through the same
 * environment variables as its image. stop() stops everything it started, also after a partial start.
 */
export async function startTemporalCluster(options: TemporalClusterOptions = {}): Promise<TemporalCluster> {
  const log = options.log ?? ((message) => console.error(message));
  const namespaces = options.namespaces ?? ['default'];
  const namespace = namespaces[0] ?? 'default';
  const readyTimeoutMs = options.readyTimeoutMs ?? 120_000;
  const pins = await composePins();
  const [server, cli, ui] = await Promise.all([
    resolveTemporalServer(pins.server, { log }),
    resolveTemporalCli({ log }),
    options.ui ? resolveTemporalUiServer(pins.ui, { log }) : undefined,
  ]);

  const cleanups: (() => Promise<unknown>)[] = [];
  const stop = async () => {
    const errors: unknown[] = [];
    for (const cleanup of cleanups.reverse()) await cleanup().catch((err: unknown) => errors.push(err));
    if (errors.length > 0) throw new AggregateError(errors, 'stopping the Temporal cluster');
  };
  try {
    const postgres: RunningPostgres = await startPostgres({ log });
    cleanups.push(() => postgres.stop());
    // What compose's x-temporal-database anchor gives the schema job and the server.
    const database = {
      DB: 'postgres12',
      DB_PORT: String(postgres.port),
      POSTGRES_SEEDS: postgres.host,
      POSTGRES_USER: postgres.user,
      POSTGRES_PWD: postgres.password,
    };
    await runScript(
      'setup-schema.sh',
      {
        ...process.env,
        ...database,
        SQL_PASSWORD: postgres.password,
        TEMPORAL_SCHEMA_DIR: server.schemaDir,
        PATH: pathWith(path.dirname(server.sqlTool)),
      },
      log,
    );

    const scratch = await mkdtemp(path.join(tmpdir(), 'anchor-temporal-'));
    cleanups.push(() => rm(scratch, { recursive: true, force: true }));
    const portNames = [
      'FRONTEND_GRPC_PORT',
      'FRONTEND_HTTP_PORT',
      'FRONTEND_MEMBERSHIP_PORT',
      'HISTORY_GRPC_PORT',
      'HISTORY_MEMBERSHIP_PORT',
      'MATCHING_GRPC_PORT',
      'MATCHING_MEMBERSHIP_PORT',
      'WORKER_GRPC_PORT',
      'WORKER_MEMBERSHIP_PORT',
    ];
    const ports: Record<string, string> = {};
    for (const name of portNames) {
      ports[name] = String(await getPort({ host: HOST, port: lowPorts(), exclude: Object.values(ports).map(Number) }));
    }
    const serverProcess = await spawnOwned(server.server, ['start'], {
      cwd: scratch,
      env: {
        ...process.env,
        ...database,
        ...ports,
        BIND_ON_IP: HOST,
        TEMPORAL_ALLOW_NO_AUTH: 'true',
        DYNAMIC_CONFIG_FILE_PATH: server.dynamicConfigFile,
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const serverTail = outputTail(serverProcess);
    cleanups.push(() => stopChild(serverProcess, 'SIGTERM', 20_000));
    // The compose health check's request: the frontend's HTTP API answers once the cluster serves.
    const httpBase = `http://${HOST}:${ports.FRONTEND_HTTP_PORT}`;
    await waitFor('temporal-server', serverProcess, serverTail, readyTimeoutMs, `${httpBase}/api/v1/cluster-info`);

    const address = `${HOST}:${ports.FRONTEND_GRPC_PORT}`;
    for (const name of namespaces) {
      await runScript(
        'bootstrap-temporal.sh',
        {
          ...process.env,
          TEMPORAL_ADDRESS: address,
          TEMPORAL_NAMESPACE: name,
          NAMESPACE_RETENTION: '24h',
          SEARCH_ATTRIBUTES: bootstrapSearchAttributes(),
          PATH: pathWith(path.dirname(cli)),
        },
        log,
      );
    }

    let uiUrl: string | undefined;
    if (ui) {
      // The UI image runs `ui-server --env docker start` with its config/ folder; the same here,
      // bound to loopback (the image listens on every interface of its container).
      const configDir = path.join(scratch, 'ui', 'config');
      await mkdir(configDir, { recursive: true });
      await writeFile(path.join(configDir, 'base.yaml'), await readFile(path.join(ui.configDir, 'base.yaml')));
      const dockerYaml = await readFile(path.join(ui.configDir, 'docker.yaml'), 'utf8');
      await writeFile(path.join(configDir, 'docker.yaml'), `${dockerYaml}\nhost: ${HOST}\n`);
      const uiPort = await getPort({ host: HOST, port: lowPorts(), exclude: Object.values(ports).map(Number) });
      const uiProcess = await spawnOwned(ui.uiServer, ['--root', path.dirname(configDir), '--env', 'docker', 'start'], {
        env: {
          ...process.env,
          TEMPORAL_ADDRESS: address,
          TEMPORAL_UI_PORT: String(uiPort),
          TEMPORAL_DEFAULT_NAMESPACE: namespace,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const uiTail = outputTail(uiProcess);
      cleanups.push(() => stopChild(uiProcess));
      uiUrl = `http://${HOST}:${uiPort}`;
      await waitFor('temporal-ui-server', uiProcess, uiTail, readyTimeoutMs, uiUrl);
    }

    log(
      `Temporal server ${pins.server} on PostgreSQL at ${address}` +
        (ui ? `, Web UI ${pins.ui} at ${uiUrl}` : '') +
        `; namespaces ${namespaces.join(', ')}`,
    );
    return {
      address,
      namespace,
      namespaces,
      uiUrl,
      serverVersion: pins.server,
      uiVersion: ui ? pins.ui : undefined,
      postgresVersion: postgres.version,
      stop,
    };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}
