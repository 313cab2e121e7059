import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { goInstall, isExecutable, projectCacheDir, requireGo, withBuildLock, type ProvisionLog } from './go-build.js';

export const TEMPORAL_SERVER_MODULE = 'go.temporal.io/server';
export const TEMPORAL_UI_SERVER_MODULE = 'github.com/temporalio/ui-server/v2';

const COMPOSE_FILE = fileURLToPath(new URL('../docker-compose.yml', import.meta.url));

/** The image versions docker-compose.yml pins: the cluster target builds exactly these. */
export interface ComposePins {
  server: string;
  adminTools: string;
  ui: string;
}

function imageTag(services: Record<string, { image?: string }>, service: string, repository: string): string {
  const image = services[service]?.image ?? '';
  const [name, tag] = image.split(':');
  if (name !== repository || !tag)
    throw new Error(`docker-compose.yml: ${service} is not a pinned ${repository} image`);
  return tag;
}

export async function composePins(composeFile = COMPOSE_FILE): Promise<ComposePins> {
  const { services } = parse(await readFile(composeFile, 'utf8')) as { services: Record<string, { image?: string }> };
  return {
    server: imageTag(services, 'temporal', 'temporalio/server'),
    adminTools: imageTag(services, 'temporal-bootstrap', 'temporalio/admin-tools'),
    ui: imageTag(services, 'temporal-ui', 'temporalio/ui'),
  };
}

export interface ServerBuild {
  version: string;
  /** temporal-server and temporal-sql-tool, named as in the server and admin-tools images. */
  server: string;
  sqlTool: string;
  /** The schema folder laid out as the admin-tools image's /etc/temporal/schema. */
  schemaDir: string;
  /** The server image's default dynamic config (config/dynamicconfig/docker.yaml of the release). */
  dynamicConfigFile: string;
}

export interface UiServerBuild {
  version: string;
  uiServer: string;
  /** The UI image's configuration folder (base.yaml and the env-driven docker.yaml). */
  configDir: string;
}

interface BuildOptions {
  env?: NodeJS.ProcessEnv;
  log?: ProvisionLog;
  heartbeatMs?: number;
}

// A release may need a newer Go than the machine's (1.32 needs 1.26.10): `go` then fetches that
// toolchain through the module proxy, as it does by default where GOTOOLCHAIN is not pinned to local.
const GO_ENV = { GOTOOLCHAIN: 'auto' };

async function moduleDir(go: string, env: NodeJS.ProcessEnv, module: string, version: string): Promise<string> {
  const { stdout } = await promisify(execFile)(go, ['mod', 'download', '-json', `${module}@${version}`], {
    env: { ...env, ...GO_ENV },
  });
  return (JSON.parse(stdout) as { Dir: string }).Dir;
}

/**
 * Builds (once per machine, under a lock, into ~/.cache/anchor-batch-recovery/temporal-server-vX)
 * the Temporal server and SQL tool of `version` from the Go module proxy, and keeps next to them
 * the schema and default dynamic config of the same release. The folder appears complete or not at all.
 */
export async function resolveTemporalServer(version: string, options: BuildOptions = {}): Promise<ServerBuild> {
  const env = options.env ?? process.env;
  const log = options.log ?? ((message) => console.error(message));
  const dir = projectCacheDir(`temporal-server-v${version}`, env);
  const dist = path.join(dir, 'dist');
  const build: ServerBuild = {
    version,
    server: path.join(dist, 'temporal-server'),
    sqlTool: path.join(dist, 'temporal-sql-tool'),
    schemaDir: path.join(dist, 'schema'),
    dynamicConfigFile: path.join(dist, 'dynamicconfig', 'docker.yaml'),
  };
  if (await isExecutable(build.server)) return build;
  const go = await requireGo(env, 'build the Temporal server');
  return withBuildLock(dir, log, async () => {
    if (await isExecutable(build.server)) return build;
    const staging = await mkdtemp(path.join(dir, 'staging-'));
    try {
      await goInstall({
        go,
        what: `Temporal server v${version}`,
        packages: ['cmd/server', 'cmd/tools/sql'].map((pkg) => `${TEMPORAL_SERVER_MODULE}/${pkg}@v${version}`),
        gobin: staging,
        env,
        log,
        heartbeatMs: options.heartbeatMs ?? 30_000,
        goEnv: GO_ENV,
      });
      await rename(path.join(staging, 'server'), path.join(staging, 'temporal-server'));
      await rename(path.join(staging, 'sql'), path.join(staging, 'temporal-sql-tool'));
      const source = await moduleDir(go, env, TEMPORAL_SERVER_MODULE, `v${version}`);
      await mkdir(path.join(staging, 'schema'));
      await cp(path.join(source, 'schema', 'postgresql'), path.join(staging, 'schema', 'postgresql'), {
        recursive: true,
      });
      await mkdir(path.join(staging, 'dynamicconfig'));
      await cp(
        path.join(source, 'config', 'dynamicconfig', 'docker.yaml'),
        build.dynamicConfigFile.replace(dist, staging),
      );
      await rename(staging, dist);
    } catch (err) {
      await rm(staging, { recursive: true, force: true });
      throw err;
    }
    return build;
  });
}

/**
 * The same for the Web UI server of `version` (github.com/temporalio/ui-server/v2, the server of
 * the temporalio/ui image), with the image's configuration files (config/base.yaml, docker.yaml).
 */
export async function resolveTemporalUiServer(version: string, options: BuildOptions = {}): Promise<UiServerBuild> {
  const env = options.env ?? process.env;
  const log = options.log ?? ((message) => console.error(message));
  const dir = projectCacheDir(`temporal-ui-server-v${version}`, env);
  const dist = path.join(dir, 'dist');
  const build: UiServerBuild = {
    version,
    uiServer: path.join(dist, 'temporal-ui-server'),
    configDir: path.join(dist, 'config'),
  };
  if (await isExecutable(build.uiServer)) return build;
  const go = await requireGo(env, 'build the Temporal UI server');
  return withBuildLock(dir, log, async () => {
    if (await isExecutable(build.uiServer)) return build;
    const staging = await mkdtemp(path.join(dir, 'staging-'));
    try {
      await goInstall({
        go,
        what: `Temporal UI server v${version}`,
        packages: [`${TEMPORAL_UI_SERVER_MODULE}/cmd/server@v${version}`],
        gobin: staging,
        env,
        log,
        heartbeatMs: options.heartbeatMs ?? 30_000,
        goEnv: GO_ENV,
      });
      await rename(path.join(staging, 'server'), path.join(staging, 'temporal-ui-server'));
      const source = await moduleDir(go, env, TEMPORAL_UI_SERVER_MODULE, `v${version}`);
      await mkdir(path.join(staging, 'config'));
      for (const file of ['base.yaml', 'docker.yaml']) {
        await cp(path.join(source, 'config', file), path.join(staging, 'config', file));
      }
      await rename(staging, dist);
    } catch (err) {
      await rm(staging, { recursive: true, force: true });
      throw err;
    }
    return build;
  });
}
