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

/** The NODE_OPTIONS the Docker image runs the worker with (its ENV NODE_OPTIONS line), '' when it sets none. */
export function imageNodeOptions(): string {
  return /^ENV NODE_OPTIONS=(\S+)$/m.exec(readDockerfile())?.[1] ?? '';
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
