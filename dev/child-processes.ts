import { execFile, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { access } from 'node:fs/promises';
import { promisify } from 'node:util';

const SETPRIV = '/usr/bin/setpriv';

export async function hasSetpriv(): Promise<boolean> {
  return access(SETPRIV).then(
    () => true,
    () => false,
  );
}

export interface RunAs {
  uid: number;
  gid: number;
}

/**
 * PostgreSQL refuses to run as root, and CI runs as root: its processes then run as the `postgres`
 * user Debian's package creates. Undefined when this process is not root (it runs them itself).
 */
export async function unprivilegedUser(name = 'postgres'): Promise<RunAs | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const run = promisify(execFile);
  try {
    const [{ stdout: uid }, { stdout: gid }] = await Promise.all([run('id', ['-u', name]), run('id', ['-g', name])]);
    return { uid: Number(uid.trim()), gid: Number(gid.trim()) };
  } catch {
    throw new Error(
      `running as root, and there is no "${name}" user to run PostgreSQL as (apt-get install postgresql)`,
    );
  }
}

/**
 * Spawns a long-running helper. setpriv makes the kernel stop it if this process dies without
 * running its cleanup (SIGKILL, a crashed test runner), and switches to `runAs` first.
 */
export async function spawnOwned(
  command: string,
  args: string[],
  options: SpawnOptions & { runAs?: RunAs } = {},
): Promise<ChildProcess> {
  const { runAs, ...spawnOptions } = options;
  if (!(await hasSetpriv())) {
    if (runAs) throw new Error(`${SETPRIV} is needed to run ${command} as uid ${runAs.uid}`);
    return spawn(command, args, spawnOptions);
  }
  const user = runAs ? [`--reuid=${runAs.uid}`, `--regid=${runAs.gid}`, '--clear-groups'] : [];
  return spawn(SETPRIV, [...user, '--pdeathsig', 'TERM', '--', command, ...args], spawnOptions);
}

export function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** Stops a child with `signal`, then SIGKILL if it has not exited within `graceMs`. */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill(signal);
  if (!(await waitForExit(child, graceMs))) {
    child.kill('SIGKILL');
    await waitForExit(child, 5_000);
  }
}

/** Keeps the last `limit` characters a child wrote, for error messages. */
export function outputTail(child: ChildProcess, limit = 4000): () => string {
  let tail = '';
  const keep = (chunk: Buffer) => (tail = (tail + chunk.toString()).slice(-limit));
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return () => tail.trim();
}
