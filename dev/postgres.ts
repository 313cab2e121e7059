import { execFile } from 'node:child_process';
import { chown, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import getPort from 'get-port';
import { outputTail, spawnOwned, stopChild, unprivilegedUser, type RunAs } from './child-processes.js';
import type { ProvisionLog } from './go-build.js';

/** Where Debian's postgresql package puts the server programs, one folder per major version. */
const DEBIAN_POSTGRESQL_ROOT = '/usr/lib/postgresql';

export interface PostgresOptions {
  /** The superuser, as the postgres image's POSTGRES_USER / POSTGRES_PASSWORD make it. */
  user?: string;
  password?: string;
  log?: ProvisionLog;
  env?: NodeJS.ProcessEnv;
  readyTimeoutMs?: number;
}

export interface RunningPostgres {
  host: string;
  port: number;
  user: string;
  password: string;
  version: string;
  stop(): Promise<void>;
}

/** POSTGRES_BIN_DIR, else the newest /usr/lib/postgresql/<major>/bin. */
export async function postgresBinDir(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (env.POSTGRES_BIN_DIR) return env.POSTGRES_BIN_DIR;
  const majors = await readdir(DEBIAN_POSTGRESQL_ROOT).catch(() => [] as string[]);
  const newest = majors.filter((name) => /^\d+$/.test(name)).sort((a, b) => Number(b) - Number(a))[0];
  if (!newest) {
    throw new Error(
      `no PostgreSQL server in ${DEBIAN_POSTGRESQL_ROOT} (apt-get install postgresql, or set POSTGRES_BIN_DIR)`,
    );
  }
  return path.join(DEBIAN_POSTGRESQL_ROOT, newest, 'bin');
}

async function runAsUser(runAs: RunAs | undefined, command: string, args: string[]) {
  const [file, fileArgs] = runAs
    ? ['/usr/bin/setpriv', [`--reuid=${runAs.uid}`, `--regid=${runAs.gid}`, '--clear-groups', '--', command, ...args]]
    : [command, args];
  return promisify(execFile)(file, fileArgs);
}

/**
 * A throwaway PostgreSQL cluster: initdb in a temporary folder, the server on a free loopback port
 * (no other socket), run as the `postgres` user when this process is root. stop() shuts it down
 * and deletes the folder.
 */
export async function startPostgres(options: PostgresOptions = {}): Promise<RunningPostgres> {
  const user = options.user ?? 'temporal';
  const password = options.password ?? 'temporal';
  const host = '127.0.0.1';
  const bin = await postgresBinDir(options.env);
  const runAs = await unprivilegedUser();
  const dir = await mkdtemp(path.join(tmpdir(), 'anchor-postgres-'));
  const dataDir = path.join(dir, 'data');
  const cleanupDir = () => rm(dir, { recursive: true, force: true });
  try {
    if (runAs) await chown(dir, runAs.uid, runAs.gid);
    const passwordFile = path.join(dir, 'password');
    await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
    if (runAs) await chown(passwordFile, runAs.uid, runAs.gid);
    await runAsUser(runAs, path.join(bin, 'initdb'), [
      '--pgdata',
      dataDir,
      '--username',
      user,
      '--pwfile',
      passwordFile,
      '--auth',
      'scram-sha-256',
      '--encoding',
      'UTF8',
      '--no-sync',
    ]);
  } catch (err) {
    await cleanupDir();
    throw err;
  }

  const port = await getPort({ host });
  // fsync off: a throwaway cluster for tests, nothing to keep after a crash.
  const server = await spawnOwned(
    path.join(bin, 'postgres'),
    ['-D', dataDir, '-h', host, '-p', String(port), '-k', dir, '-c', 'fsync=off', '-c', 'max_connections=200'],
    { runAs, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const tail = outputTail(server);
  const stop = async () => {
    // SIGINT: PostgreSQL's fast shutdown (disconnects clients, no waiting for them).
    await stopChild(server, 'SIGINT', 15_000);
    await cleanupDir();
  };

  const deadline = Date.now() + (options.readyTimeoutMs ?? 30_000);
  for (;;) {
    if (server.exitCode !== null) {
      await cleanupDir();
      throw new Error(`postgres exited with ${server.exitCode}: ${tail()}`);
    }
    try {
      await promisify(execFile)(path.join(bin, 'pg_isready'), ['-h', host, '-p', String(port), '-U', user]);
      break;
    } catch (err) {
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`PostgreSQL not ready on ${host}:${port}: ${String(err)}; ${tail()}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  const { stdout } = await promisify(execFile)(path.join(bin, 'postgres'), ['--version']);
  options.log?.(`PostgreSQL ${stdout.trim()} on ${host}:${port} (data in ${dataDir})`);
  return { host, port, user, password, version: stdout.trim(), stop };
}
