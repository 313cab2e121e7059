import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { access, constants, mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import lockfile from 'proper-lockfile';

/** The Chromium that ships inside the @sparticuz/chromium npm package (a devDependency). */
const BUNDLED_PACKAGE = '@sparticuz/chromium';

export interface ResolveChromiumOptions {
  env?: NodeJS.ProcessEnv;
  log?: (message: string) => void;
}

async function isExecutable(file: string): Promise<boolean> {
  return access(file, constants.X_OK).then(
    () => true,
    () => false,
  );
}

/** The package's folder (its exports hide package.json, so from its entry point: build/index.js). */
const bundledPackageDir = () => path.resolve(createRequire(import.meta.url).resolve(BUNDLED_PACKAGE), '..', '..');

function bundledVersion(): string {
  const manifest = JSON.parse(readFileSync(path.join(bundledPackageDir(), 'package.json'), 'utf8'));
  return (manifest as { version: string }).version;
}

export function bundledChromiumDir(env: NodeJS.ProcessEnv = process.env): string {
  const cacheRoot = env.XDG_CACHE_HOME || path.join(homedir(), '.cache');
  return path.join(cacheRoot, 'anchor-batch-recovery', `chromium-${bundledVersion()}`);
}

/**
 * Unpacks the package's Chromium (with the libraries it loads from its own folder) into the
 * shared cache. The package unpacks into os.tmpdir(), so a child process does it with TMPDIR
 * pointing at a staging folder, which is then renamed into place: concurrent test runs wait on
 * the lock and never see a half-written browser.
 */
async function unpackBundledChromium(env: NodeJS.ProcessEnv, log: (message: string) => void): Promise<string> {
  const dir = bundledChromiumDir(env);
  const target = path.join(dir, 'browser');
  const executable = path.join(target, 'chromium');
  await mkdir(dir, { recursive: true });
  const release = await lockfile.lock(dir, {
    lockfilePath: path.join(dir, 'unpack.lock'),
    stale: 60_000,
    update: 10_000,
    retries: { retries: 60, minTimeout: 2_000, maxTimeout: 2_000 },
  });
  try {
    if (await isExecutable(executable)) return executable;
    log(`Unpacking the Chromium of ${BUNDLED_PACKAGE} into ${dir} (first time only)`);
    const staging = await mkdtemp(path.join(dir, 'staging-'));
    try {
      const script = `import('${BUNDLED_PACKAGE}').then((m) => m.default.executablePath()).then((p) => console.log(p))`;
      const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
        env: { ...env, TMPDIR: staging },
        cwd: bundledPackageDir(),
      });
      if (stdout.trim() !== path.join(staging, 'chromium')) {
        throw new Error(`${BUNDLED_PACKAGE} unpacked to ${stdout.trim()}, expected ${staging}/chromium`);
      }
      await rename(staging, target);
    } catch (err) {
      await rm(staging, { recursive: true, force: true });
      throw err;
    }
    return executable;
  } finally {
    await release();
  }
}

/**
 * The browser for the Web UI tests: CHROMIUM_PATH, else `chromium` or `chromium-browser` on the
 * PATH (Debian's package), else the Chromium inside the project's own npm install, so that
 * `npm ci && npm test` needs nothing installed by hand.
 */
export async function resolveChromium(options: ResolveChromiumOptions = {}): Promise<string> {
  const env = options.env ?? process.env;
  const log = options.log ?? ((message) => console.error(message));
  if (env.CHROMIUM_PATH) {
    if (await isExecutable(env.CHROMIUM_PATH)) return env.CHROMIUM_PATH;
    throw new Error(`CHROMIUM_PATH=${env.CHROMIUM_PATH}: not an executable file`);
  }
  for (const dir of (env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    for (const name of ['chromium', 'chromium-browser']) {
      const candidate = path.join(dir, name);
      if (await isExecutable(candidate)) return candidate;
    }
  }
  return unpackBundledChromium(env, log);
}
