import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const readDockerfile = () => readFileSync(path.join(repoRoot, 'Dockerfile'), 'utf8');

/** The Node.js release the Docker image runs the worker on: the version in the Dockerfile's NODE_IMAGE. */
export function imageNodeVersion(): string {
  const version = /^ARG NODE_IMAGE=node:(\d+\.\d+\.\d+)-/m.exec(readDockerfile())?.[1];
  if (version === undefined) throw new Error('Dockerfile: no ARG NODE_IMAGE=node:<x.y.z>-… line');
  return version;
}

/**
 * How the Docker image runs the worker beyond its Node.js release: the flags its CMD gives `node` before the script,
 * and the environment its ENV lines tune the runtime with (NODE_OPTIONS, glibc's MALLOC_*). Other ENV lines name the
 * image's own paths and modes, and are left out.
 */
export interface ImageRuntime {
  nodeArgs: string[];
  env: Record<string, string>;
}

/** A Node.js binary, and the flags and environment a worker process runs on it with. */
export interface NodeRuntime extends ImageRuntime {
  path: string;
}

/** The Node.js running this process, with no flags or environment of its own. */
export const currentNode = (): NodeRuntime => ({ path: process.execPath, nodeArgs: [], env: {} });

export function imageRuntime(): ImageRuntime {
  const dockerfile = readDockerfile();
  const runtimeFrom = dockerfile.search(/^FROM .* AS runtime$/m);
  if (runtimeFrom === -1) throw new Error('Dockerfile: no FROM … AS runtime stage');
  const runtimeStage = dockerfile.slice(runtimeFrom);
  const env: Record<string, string> = {};
  for (const [, name, value] of runtimeStage.matchAll(/^ENV (NODE_OPTIONS|MALLOC_[A-Z_]+)=("[^"]*"|\S+)$/gm)) {
    env[name!] = value!.startsWith('"') ? (JSON.parse(value!) as string) : value!;
  }
  const cmd = /^CMD (\[.*\])$/m.exec(runtimeStage)?.[1];
  if (cmd === undefined) throw new Error('Dockerfile: no CMD ["node", …] line in the runtime stage');
  const [command, ...args]: string[] = JSON.parse(cmd) as string[];
  if (command !== 'node') throw new Error(`Dockerfile: the runtime's CMD runs ${command}, not node`);
  return { nodeArgs: args.filter((arg) => arg.startsWith('--')), env };
}

/**
 * The path of a Node.js binary of `version`, other than the one running: the npm registry's `node` package ships the
 * binaries, and npm keeps it in its cache after the first call (about 30 MB).
 */
export function nodeBinary(version: string): string {
  if (!/^\d+\.\d+\.\d+$/.test(version)) throw new Error(`expected a Node.js version such as 24.11.1, got '${version}'`);
  const binary = execFileSync(
    'npm',
    ['exec', '--yes', `--package=node@${version}`, '--', 'node', '-p', 'process.execPath'],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
  ).trim();
  const running = execFileSync(binary, ['--version'], { encoding: 'utf8' }).trim();
  if (running !== `v${version}`) throw new Error(`${binary} is Node.js ${running}, not v${version}`);
  return binary;
}
