import { spawn } from 'node:child_process';
import { access, constants, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';
import lockfile from 'proper-lockfile';

export type ProvisionLog = (message: string) => void;

/** ~/.cache/anchor-batch-recovery/<name>: where the pinned Go programs are built once per machine. */
export function projectCacheDir(name: string, env: NodeJS.ProcessEnv = process.env): string {
  const cacheRoot = env.XDG_CACHE_HOME || path.join(homedir(), '.cache');
  return path.join(cacheRoot, 'anchor-batch-recovery', name);
}

export async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Where the Go toolchain is when it is not on the PATH: the official tarball's place, and this machine's. */
export const GO_FALLBACKS = ['/usr/local/go/bin/go'];

export async function findGo(env: NodeJS.ProcessEnv, fallbacks = GO_FALLBACKS): Promise<string | undefined> {
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

/** The Go toolchain, or an error that says what needs it. */
export async function requireGo(env: NodeJS.ProcessEnv, neededTo: string): Promise<string> {
  const go = await findGo(env);
  if (!go) throw new Error(`go is needed to ${neededTo}: not found on PATH nor in ${GO_FALLBACKS.join(', ')}`);
  return go;
}

export interface GoInstallOptions {
  go: string;
  /** What is being built, for the progress messages ("Temporal CLI v1.5.1"). */
  what: string;
  /** Full package paths with @version. */
  packages: string[];
  gobin: string;
  env: NodeJS.ProcessEnv;
  log: ProvisionLog;
  heartbeatMs: number;
  /** Extra environment for `go`, e.g. GOTOOLCHAIN when a module needs a newer Go than the local one. */
  goEnv?: NodeJS.ProcessEnv;
}

/** Runs a build of `what`, saying when it starts and ends and, every `heartbeatMs`, that it is still going. */
async function withHeartbeat(
  options: { go: string; what: string; log: ProvisionLog; heartbeatMs: number },
  build: () => Promise<void>,
): Promise<void> {
  const { go, what, log } = options;
  const startedAt = Date.now();
  log(`Building ${what} with ${go} (first time only; this takes a few minutes)`);
  const heartbeat = setInterval(() => {
    log(`  still building the ${what.replace(/ v\d.*$/, '')} (${Math.round((Date.now() - startedAt) / 1000)} s)`);
  }, options.heartbeatMs);
  try {
    await build();
  } finally {
    clearInterval(heartbeat);
  }
  log(`Built the ${what} in ${Math.round((Date.now() - startedAt) / 1000)} s`);
}

/** `go install` of the given packages into `gobin`, with a heartbeat while it runs. */
export function goInstall(options: GoInstallOptions): Promise<void> {
  return withHeartbeat(options, () =>
    runGo(options.go, ['install', ...options.packages], {
      env: { ...options.env, ...options.goEnv, GOBIN: options.gobin, GOFLAGS: '-trimpath' },
    }),
  );
}

/**
 * Builds one package of a module whose go.mod has replace directives, which `go install pkg@version` refuses:
 * from a throwaway module that requires it, into `output`.
 */
export async function goBuildFromModule(options: {
  go: string;
  what: string;
  /** Full package path with @version. */
  pkg: string;
  output: string;
  env: NodeJS.ProcessEnv;
  log: ProvisionLog;
  heartbeatMs: number;
}): Promise<void> {
  const [pkgPath] = options.pkg.split('@');
  const work = await mkdtemp(path.join(tmpdir(), 'go-build-'));
  try {
    await withHeartbeat(options, async () => {
      for (const args of [
        ['mod', 'init', 'anchor-batch-recovery/go-build'],
        ['get', options.pkg],
        ['build', '-trimpath', '-o', options.output, pkgPath!],
      ]) {
        await runGo(options.go, args, { cwd: work, env: options.env });
      }
    });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function runGo(go: string, args: string[], options: { cwd?: string; env: NodeJS.ProcessEnv }): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const child = spawn(go, args, { ...options, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`go ${args[0]} exited with ${code}: ${stderr.trim()}`)),
    );
  });
}

/**
 * Runs `build` holding the cache folder's build lock: a second caller (another test run, npm start
 * in another terminal, another engineer's checkout) waits for the first build instead of repeating it.
 */
export async function withBuildLock<T>(dir: string, log: ProvisionLog, build: () => Promise<T>): Promise<T> {
  await mkdir(dir, { recursive: true });
  const release = await lockfile.lock(dir, {
    lockfilePath: path.join(dir, 'build.lock'),
    stale: 60_000,
    update: 10_000,
    retries: { retries: 240, minTimeout: 5_000, maxTimeout: 5_000 },
    onCompromised: (err) => log(`build lock on ${dir} lost: ${err.message}`),
  });
  try {
    return await build();
  } finally {
    await release();
  }
}
