import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
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
  // The README's command. Detached: a process group of its own, which gets the SIGINT as a terminal's Ctrl-C would.
  const start = spawnWatched('npm', ['start'], { env, detached: true });

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

  // The Ctrl-C comes while the process running the stack is not scheduled, as on a loaded machine. A launcher
  // between npm and it that kills a child slow to acknowledge a signal (tsx's gives it 30 ms, then SIGKILL) would
  // cut the stop short here; npm's relay waits. The hold is the fault's length, not a wait for anything.
  const stack = childRunning(start.child.pid!, 'dev/start.ts');
  process.kill(stack, 'SIGSTOP');
  process.kill(-start.child.pid!, 'SIGINT');
  await delay(1_000);
  expect(processesMatching('dev/start.ts')).toContain(stack);
  process.kill(stack, 'SIGCONT');
  // npm ends itself by the signal its script ended on, as a shell expects of a Ctrl-C'd command.
  expect(await start.closed).toEqual({ code: null, signal: 'SIGINT' });

  // With stderr: a stop cut short (CI once saw none of these lines after `Stopping…`) says why there.
  expect({ stdout: start.stdout(), stderr: start.stderr() }).toMatchObject({
    stdout: expect.stringMatching(/^Simulator stopped\nTemporal dev server stopped\nStopped\.$/m),
  });
  expect(processesMatching('server start-dev', dbFilename)).toEqual([]);
}, 240_000);

/**
 * The child of `parent` whose command line names `script`: npm's scripts exec node, so the process that runs it.
 * Only npm's children: another test file's `npm start`, or the developer's own, runs the same command line.
 */
function childRunning(parent: number, script: string): number {
  const children = processesMatching(script).filter(
    (pid) => Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]) === parent,
  );
  expect(children).toEqual([expect.any(Number)]);
  return children[0]!;
}
