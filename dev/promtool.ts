import { mkdtemp, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import {
  findGo,
  goBuildFromModule,
  isExecutable,
  projectCacheDir,
  withBuildLock,
  type ProvisionLog,
} from './go-build.js';

/** promtool of the Prometheus compose pins (prom/prometheus:v3.5.0 is Go module v0.305.0). */
export const PROMTOOL_MODULE_VERSION = 'v0.305.0';
const PROMTOOL_PACKAGE = 'github.com/prometheus/prometheus/cmd/promtool';

/**
 * Finds `promtool` for the alert-rule tests: PROMTOOL_PATH, then `promtool` on the PATH (Debian's `prometheus`),
 * then the cached build of the pinned version, then a build into that cache with Go, as for the Temporal CLI.
 */
export async function resolvePromtool(
  options: { env?: NodeJS.ProcessEnv; log?: ProvisionLog; heartbeatMs?: number } = {},
): Promise<string> {
  const env = options.env ?? process.env;
  if (env.PROMTOOL_PATH) {
    if (await isExecutable(env.PROMTOOL_PATH)) return env.PROMTOOL_PATH;
    throw new Error(`PROMTOOL_PATH=${env.PROMTOOL_PATH}: not an executable file`);
  }
  for (const dir of (env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    if (await isExecutable(path.join(dir, 'promtool'))) return path.join(dir, 'promtool');
  }
  return provisionPinnedPromtool(options);
}

/**
 * promtool of the Prometheus compose pins, from the cache or built into it with Go. CI checks the rules and the
 * dashboard with it too: Debian's (2.42) and compose's (3.5) evaluate some ranges differently (test/alerts).
 */
export async function provisionPinnedPromtool(
  options: { env?: NodeJS.ProcessEnv; log?: ProvisionLog; heartbeatMs?: number } = {},
): Promise<string> {
  const env = options.env ?? process.env;
  const log = options.log ?? ((message) => console.error(message));
  const dir = projectCacheDir(`promtool-${PROMTOOL_MODULE_VERSION}`, env);
  const target = path.join(dir, 'promtool');
  if (await isExecutable(target)) return target;
  const go = await findGo(env);
  if (!go) throw new Error('promtool: not on the PATH, not cached, and no Go to build it (apt-get install prometheus)');
  return withBuildLock(dir, log, async () => {
    if (await isExecutable(target)) return target;
    const staging = await mkdtemp(path.join(dir, 'staging-'));
    try {
      await goBuildFromModule({
        go,
        what: `promtool ${PROMTOOL_MODULE_VERSION}`,
        pkg: `${PROMTOOL_PACKAGE}@${PROMTOOL_MODULE_VERSION}`,
        output: path.join(staging, 'promtool'),
        env,
        log,
        heartbeatMs: options.heartbeatMs ?? 15_000,
      });
      // rename is atomic: no caller ever sees a half-written executable.
      await rename(path.join(staging, 'promtool'), target);
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
    return target;
  });
}
