import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  findGo,
  GO_FALLBACKS,
  goInstall,
  isExecutable,
  projectCacheDir,
  withBuildLock,
  type ProvisionLog,
} from './go-build.js';

/** The one place the pinned Temporal CLI version lives. */
export const TEMPORAL_CLI_VERSION = 'v1.5.1';
export const TEMPORAL_CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal';

export type { ProvisionLog };

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
  return projectCacheDir(`temporal-cli-${TEMPORAL_CLI_VERSION}`, env);
}

async function buildIntoCache(go: string, options: { env: NodeJS.ProcessEnv; log: ProvisionLog; heartbeatMs: number }) {
  const dir = temporalCliCacheDir(options.env);
  const target = path.join(dir, 'temporal');
  return withBuildLock(dir, options.log, async () => {
    if (await isExecutable(target)) return target;
    const staging = await mkdtemp(path.join(dir, 'staging-'));
    try {
      await goInstall({
        go,
        what: `Temporal CLI ${TEMPORAL_CLI_VERSION}`,
        packages: [`${TEMPORAL_CLI_MODULE}@${TEMPORAL_CLI_VERSION}`],
        gobin: staging,
        ...options,
      });
      // rename is atomic: no caller ever sees a half-written executable.
      await rename(path.join(staging, 'temporal'), target);
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
    return target;
  });
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

  const goFallbacks = options.goFallbacks ?? GO_FALLBACKS;
  const go = await findGo(env, goFallbacks);
  if (go) {
    try {
      return await buildIntoCache(go, { env, log, heartbeatMs });
    } catch (err) {
      attempts.push(`go install with ${go}: ${(err as Error).message.split('\n')[0]}`);
    }
  } else {
    attempts.push(`go: not found on PATH nor in ${goFallbacks.join(', ') || 'any other place'}`);
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
