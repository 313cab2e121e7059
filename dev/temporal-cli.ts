import { execFile, spawn } from 'node:child_process';
import { access, constants, copyFile, mkdir, mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import lockfile from 'proper-lockfile';

/** The one place the pinned Temporal CLI version lives. */
export const TEMPORAL_CLI_VERSION = 'v1.5.1';
export const TEMPORAL_CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal';

export type ProvisionLog = (message: string) => void;

export interface ResolveTemporalCliOptions {
  log?: ProvisionLog;
  env?: NodeJS.ProcessEnv;
  /** Whether to fall back to the SDK's download of a dev server (needs internet). */
  allowSdkDownload?: boolean;
  /** How often a long build reports that it is still going. */
  heartbeatMs?: number;
  /** Where to look for `go` after PATH. */
  goFallbacks?: string[];
}

export class TemporalCliUnavailableError extends Error {
  override name = 'TemporalCliUnavailableError';
  constructor(readonly attempts: string[]) {
    super(
      [
        'No Temporal CLI could be found or built. Tried:',
        ...attempts.map((attempt) => `  - ${attempt}`),
        'Install it in one of these ways, then run again:',
        `  - with Go 1.22+: go install ${TEMPORAL_CLI_MODULE}@${TEMPORAL_CLI_VERSION}  (then set TEMPORAL_CLI_PATH to $(go env GOPATH)/bin/temporal)`,
        '  - or download a release from https://github.com/temporalio/cli/releases and set TEMPORAL_CLI_PATH to it',
      ].join('\n'),
    );
  }
}

export function temporalCliCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const cacheRoot = env.XDG_CACHE_HOME || path.join(homedir(), '.cache');
  return path.join(cacheRoot, 'anchor-batch-recovery', `temporal-cli-${TEMPORAL_CLI_VERSION}`);
}

async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function findGo(env: NodeJS.ProcessEnv, fallbacks: string[]): Promise<string | undefined> {
  const candidates = (env.PATH ?? '')
    .split(path.delimiter)
    .filter(Boolean)
    .map((dir) => path.join(dir, 'go'));
  candidates.push(...fallbacks);
  for (const candidate of candidates) {
    if (await isExecutable(candidate)) return candidate;
  }
  return undefined;
}

async function goInstall(go: string, gobin: string, env: NodeJS.ProcessEnv, log: ProvisionLog, heartbeatMs: number) {
  const startedAt = Date.now();
  log(`Building Temporal CLI ${TEMPORAL_CLI_VERSION} with ${go} (first time only; this takes a few minutes)`);
  const heartbeat = setInterval(() => {
    log(`  still building the Temporal CLI (${Math.round((Date.now() - startedAt) / 1000)} s)`);
  }, heartbeatMs);
  try {
    await new Promise<void>((resolve, reject) => {
      const child = spawn(go, ['install', `${TEMPORAL_CLI_MODULE}@${TEMPORAL_CLI_VERSION}`], {
        env: { ...env, GOBIN: gobin, GOFLAGS: '-trimpath' },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
      child.on('error', reject);
      child.on('exit', (code) =>
        code === 0 ? resolve() : reject(new Error(`go install exited with ${code}: ${stderr.trim()}`)),
      );
    });
  } finally {
    clearInterval(heartbeat);
  }
  log(`Built the Temporal CLI in ${Math.round((Date.now() - startedAt) / 1000)} s`);
}

async function buildIntoCache(go: string, options: { env: NodeJS.ProcessEnv; log: ProvisionLog; heartbeatMs: number }) {
  const dir = temporalCliCacheDir(options.env);
  const target = path.join(dir, 'temporal');
  await mkdir(dir, { recursive: true });
  // A second caller (another test run, npm start in another terminal) waits for the first build.
  const release = await lockfile.lock(dir, {
    lockfilePath: path.join(dir, 'build.lock'),
    stale: 60_000,
    update: 10_000,
    retries: { retries: 120, minTimeout: 5_000, maxTimeout: 5_000 },
    onCompromised: (err) => options.log(`Temporal CLI build lock lost: ${err.message}`),
  });
  try {
    if (await isExecutable(target)) return target;
    const staging = await mkdtemp(path.join(dir, 'staging-'));
    try {
      await goInstall(go, staging, options.env, options.log, options.heartbeatMs);
      // rename is atomic: no caller ever sees a half-written executable.
      await rename(path.join(staging, 'temporal'), target);
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
    return target;
  } finally {
    await release();
  }
}

async function downloadWithSdk(env: NodeJS.ProcessEnv, log: ProvisionLog): Promise<string> {
  const dir = temporalCliCacheDir(env);
  const downloadDir = path.join(dir, 'sdk-download');
  await mkdir(downloadDir, { recursive: true });
  log('Trying the Temporal SDK download of the dev server');
  const { TestWorkflowEnvironment } = await import('@temporalio/testing');
  const testEnv = await TestWorkflowEnvironment.createLocal({
    server: { executable: { type: 'cached-download', downloadDir } },
  });
  await testEnv.teardown();
  const downloaded = (await readdir(downloadDir)).find((name) => name.startsWith('temporal'));
  if (!downloaded) throw new Error(`the SDK download left no executable in ${downloadDir}`);
  const target = path.join(dir, 'temporal');
  await copyFile(path.join(downloadDir, downloaded), target);
  return target;
}

/**
 * Finds the `temporal` executable: TEMPORAL_CLI_PATH, then the cached build of
 * the pinned version, then a fresh `go install` into that cache, then (with
 * internet) the SDK's own download.
 */
export async function resolveTemporalCli(options: ResolveTemporalCliOptions = {}): Promise<string> {
  const env = options.env ?? process.env;
  const log = options.log ?? ((message) => console.error(message));
  const heartbeatMs = options.heartbeatMs ?? 15_000;
  const attempts: string[] = [];

  if (env.TEMPORAL_CLI_PATH) {
    if (await isExecutable(env.TEMPORAL_CLI_PATH)) return env.TEMPORAL_CLI_PATH;
    // An explicit path that is wrong is a configuration error, not a reason to build.
    throw new TemporalCliUnavailableError([`TEMPORAL_CLI_PATH=${env.TEMPORAL_CLI_PATH}: not an executable file`]);
  }
  attempts.push('TEMPORAL_CLI_PATH: not set');

  const cached = path.join(temporalCliCacheDir(env), 'temporal');
  if (await isExecutable(cached)) return cached;
  attempts.push(`cached build ${cached}: not there`);

  const go = await findGo(env, options.goFallbacks ?? ['/usr/local/go/bin/go']);
  if (go) {
    try {
      return await buildIntoCache(go, { env, log, heartbeatMs });
    } catch (err) {
      attempts.push(`go install with ${go}: ${(err as Error).message.split('\n')[0]}`);
    }
  } else {
    attempts.push('go: not found on PATH nor in /usr/local/go/bin');
  }

  if (options.allowSdkDownload ?? true) {
    try {
      return await downloadWithSdk(env, log);
    } catch (err) {
      attempts.push(`SDK download: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  throw new TemporalCliUnavailableError(attempts);
}

export async function temporalCliVersion(executable: string): Promise<string> {
  const { stdout } = await promisify(execFile)(executable, ['--version']);
  return stdout.trim();
}
