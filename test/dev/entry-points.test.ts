import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { killLeftoverChildren, processesMatching, repoRoot, spawnWatched } from '../client/child-process.js';

// The README's entry points, run as written: `npm run dev-server`, and `batch-recovery` on the PATH after
// `npm run build` and `npm link`.

let scratch: string;
beforeAll(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), 'entry-points-'));
});
afterEach(killLeftoverChildren);
afterAll(() => rm(scratch, { recursive: true, force: true }));

test('npm run dev-server starts a dev server the CLI can reach, and Ctrl-C stops it', async () => {
  // Detached: its own process group, which Ctrl-C in a terminal signals as a whole.
  const server = spawnWatched('npm', ['run', 'dev-server'], {
    env: { ...process.env, DEV_TEMPORAL_DB: path.join(scratch, 'dev.sqlite') },
    detached: true,
  });
  const [, address] = (await server.waitForOutput(/Temporal dev server ready: address (\S+),/, 120_000)) as string[];
  const connection = await Connection.connect({ address: address as string });
  try {
    const { namespaceInfo } = await connection.workflowService.describeNamespace({ namespace: 'default' });
    expect(namespaceInfo?.name).toBe('default');
  } finally {
    await connection.close();
  }
  process.kill(-(server.child.pid as number), 'SIGINT');
  // npm ends itself by the signal its script ended on, as a shell expects of a Ctrl-C'd command.
  expect(await server.closed).toEqual({ code: null, signal: 'SIGINT' });
  expect(server.stdout()).toContain('Temporal dev server stopped');
  await expect(Connection.connect({ address: address as string, connectTimeout: 1_000 })).rejects.toThrow();
}, 180_000);

test('npm run simulator stops on a SIGTERM sent to npm alone, as a supervisor or a container runtime sends it', async () => {
  // A key of its own, to tell this simulator from those other test files start.
  const apiKey = `entry-points-${randomUUID()}`;
  // Detached only so that a failure's cleanup reaches a simulator left behind; the SIGTERM goes to npm alone.
  const simulator = spawnWatched('npm', ['run', 'simulator', '--', '--port', '0', '--api-keys', apiKey], {
    env: process.env,
    detached: true,
  });
  await simulator.waitForOutput(/^SIMULATOR_URL=/m, 60_000);
  expect(processesMatching('simulator/main.ts', apiKey)).toHaveLength(1);
  simulator.child.kill('SIGTERM');
  expect(await simulator.closed).toEqual({ code: null, signal: 'SIGTERM' });
  expect(simulator.stdout()).toMatch(/^Simulator stopped$/m);
  expect(processesMatching('simulator/main.ts', apiKey)).toEqual([]);
}, 120_000);

test('after npm run build and npm link, batch-recovery runs from the PATH', async () => {
  const build = spawnWatched('npm', ['run', 'build'], { env: process.env });
  expect((await build.closed).code).toBe(0);
  const cli = path.join(repoRoot, 'dist/client/cli.js');
  expect((await stat(cli)).mode & 0o111).toBe(0o111);

  // A prefix of the test's own stands for the global one, so the machine's global packages are left alone.
  const prefix = path.join(scratch, 'prefix');
  const env = { ...process.env, NPM_CONFIG_PREFIX: prefix };
  const link = spawnWatched('npm', ['link', '--no-audit', '--no-fund'], { env });
  expect((await link.closed).code).toBe(0);

  const run = spawnWatched('batch-recovery', ['recover', randomUUID(), '--deadline', '1000000000y'], {
    env: { ...env, PATH: `${path.join(prefix, 'bin')}${path.delimiter}${process.env.PATH}` },
  });
  expect((await run.closed).code).toBe(1);
  expect(run.stderr()).toMatch(/'1000000000y' is invalid\. deadline: must be at most 365d/);
}, 180_000);
