import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { killLeftoverChildren, processesMatching, spawnWatched } from './child-process.js';

let scratch: string | undefined;

afterEach(async () => {
  await killLeftoverChildren();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

// The whole stack from a cold start (dev server, bundling, demo): minutes on a loaded machine.
test('npm start serves the Web UI, recovers the demo batch and stops everything on Ctrl-C', async () => {
  scratch = await mkdtemp(path.join(tmpdir(), 'npm-start-'));
  // Its own database, so the test finds its dev server by command line and leaves the user's state alone.
  const dbFilename = path.join(scratch, 'temporal.sqlite');
  // No Temporal address nor API key: npm start brings up its own dev server and simulator.
  const env: NodeJS.ProcessEnv = { ...process.env, DEV_TEMPORAL_DB: dbFilename };
  for (const name of ['TEMPORAL_ADDRESS', 'TEMPORAL_NAMESPACE', 'ANCHOR_API_KEY']) delete env[name];
  // Detached: a process group of its own, which gets the SIGINT as a terminal's Ctrl-C would.
  const start = spawnWatched('npx', ['tsx', 'dev/start.ts'], { env, detached: true });

  const [, uiUrl] = await start.waitForOutput(/^Temporal Web UI: (\S+)$/m, 90_000);
  expect((await fetch(uiUrl!)).status).toBe(200);
  const devServers = processesMatching('server start-dev', dbFilename);
  expect(devServers).toHaveLength(1);

  // The demo batch has one session that never starts: three rounds, then exhausted.
  const [, outcome] = await start.waitForOutput(/^Outcome: +(\w+)$/m, 90_000);
  expect(outcome).toBe('exhausted');
  await start.waitForOutput(/^Running until Ctrl-C\.$/m);
  expect(start.stdout()).toMatch(/^Totals: 11 sessions retried, 7 recovered, 1 still failing$/m);
  expect(start.stdout()).toMatch(/^Web UI: http:\/\/\S+\/workflows\/recover-batch-[0-9a-f-]+$/m);
  // The demo waits for its worker's polls to reach the server, so its progress is live from the first line.
  expect(start.stdout()).not.toMatch(/no worker polls/);

  process.kill(-start.child.pid!, 'SIGINT');
  // npx itself dies of the SIGINT; what matters is that the stack below it stopped in order.
  await start.closed;

  // With stderr: a stop cut short (CI once saw none of these lines after `Stopping…`) says why there.
  expect({ stdout: start.stdout(), stderr: start.stderr() }).toMatchObject({
    stdout: expect.stringMatching(/^Simulator stopped\nTemporal dev server stopped\nStopped\.$/m),
  });
  expect(processesMatching('server start-dev', dbFilename)).toEqual([]);
}, 240_000);
