import { spawn } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDevServer } from '../dev/dev-server.js';
import { bundleRecoveryWorkflows } from '../worker/bundle.js';

/*
 * Time from spawning `worker/main.ts` to its "Worker started" line (connected,
 * workflows loaded, about to poll), with the prebuilt bundle and with bundling
 * at start. Prints the figures; asserts nothing.
 */
const RUNS = Number(process.env['BENCH_RUNS'] ?? 3);
const repoRoot = fileURLToPath(new URL('..', import.meta.url));
// BENCH_ENTRY=dist/worker/main.js (after npm run build) times the compiled worker, as the image runs it.
const entry = process.env['BENCH_ENTRY'] ?? 'worker/main.ts';
const entryArgs = entry.endsWith('.ts') ? ['--import', 'tsx', entry] : [entry];

function timeToStart(env: NodeJS.ProcessEnv): Promise<number> {
  const startedAt = performance.now();
  const child = spawn(process.execPath, entryArgs, {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  return new Promise((resolve, reject) => {
    let output = '';
    let elapsed: number | undefined;
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (!output.includes('"msg":"Worker started"')) return;
      elapsed = performance.now() - startedAt;
      child.stdout.off('data', onData);
      // One signal only: a second one would skip the graceful shutdown.
      child.kill('SIGTERM');
    };
    child.stdout.on('data', onData);
    child.once('exit', (code) => {
      if (elapsed !== undefined && code === 0) resolve(elapsed);
      else
        reject(
          new Error(
            `worker exited with ${code} ${elapsed === undefined ? 'before starting' : 'on SIGTERM'}:\n${output}`,
          ),
        );
    });
  });
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;

const server = await startDevServer({ ui: false });
const bundlePath = path.join(tmpdir(), `bench-workflow-bundle-${process.pid}.js`);
try {
  await writeFile(bundlePath, await bundleRecoveryWorkflows());
  const common = { TEMPORAL_ADDRESS: server.address, ANCHOR_API_KEY: 'bench-key', LOG_LEVEL: 'INFO', METRICS_PORT: '' };
  const cases = {
    'prebuilt bundle (WORKFLOW_BUNDLE_PATH)': { ...common, WORKFLOW_BUNDLE_PATH: bundlePath },
    'bundling at start': { ...common, WORKFLOW_BUNDLE_PATH: '' },
  };
  for (const [name, env] of Object.entries(cases)) {
    const times: number[] = [];
    for (let run = 0; run < RUNS; run += 1) times.push(await timeToStart(env));
    console.log(
      `${entry}, ${name}: median ${Math.round(median(times))} ms (${times.map((t) => Math.round(t)).join(', ')} ms; ${RUNS} runs)`,
    );
  }
} finally {
  await rm(bundlePath, { force: true });
  await server.stop();
}
