import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { Command, InvalidArgumentError, Option } from 'commander';
import { formatSummary, startExplorer, summarize, type SeedResult } from '../test/explorer/explorer.js';
import { describeScenario } from '../test/explorer/scenario.js';
import { bundleRecoveryWorkflows } from '../worker/bundle.js';
import { MAX_REQUEST_TIMEOUT_MS } from '../worker/config.js';
import { startDevServer } from './dev-server.js';

function positiveInteger(value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 0) throw new InvalidArgumentError('expected a non-negative integer');
  return parsed;
}

/** As the workers it spawns take ANCHOR_REQUEST_TIMEOUT_MS: past its bound they would refuse to start. */
function requestTimeout(value: string): number {
  const parsed = positiveInteger(value);
  if (parsed < 1 || parsed > MAX_REQUEST_TIMEOUT_MS)
    throw new InvalidArgumentError(`expected 1 to ${MAX_REQUEST_TIMEOUT_MS}, as ANCHOR_REQUEST_TIMEOUT_MS`);
  return parsed;
}

const program = new Command('explore')
  .description(
    'Seeded fault-schedule explorer of the retry protocol: runs recoveries against a dev server and the simulator ' +
      'under drawn faults, and checks the simulator ledger against each report (docs/retry-protocol-explorer.md)',
  )
  .addOption(new Option('--seeds <n>', 'how many seeds to run').argParser(positiveInteger).default(200))
  .addOption(
    new Option('--first-seed <n>', 'the first seed; seeds run are first..first+seeds-1')
      .argParser(positiveInteger)
      .default(1),
  )
  .addOption(
    new Option(
      '--seed <n>',
      'replay this seed (repeat, or n,m,…, for several), with what it drew and every violation',
    ).argParser((value: string, previous: number[] = []) => [...previous, ...value.split(',').map(positiveInteger)]),
  )
  .addOption(new Option('--concurrency <k>', 'seeds run at once').argParser(positiveInteger).default(32))
  .addOption(
    new Option('--window-ms <ms>', 'the documented reconcile window; default: client timeout + 5 s').argParser(
      positiveInteger,
    ),
  )
  .addOption(
    new Option('--client-timeout-ms <ms>', "the workers' Anchor request timeout")
      .argParser(requestTimeout)
      .default(2_000),
  )
  .option('--verbose', 'print what each failing seed drew and each violation', false);

const flags = program.parse().opts<{
  seeds: number;
  firstSeed: number;
  seed?: number[];
  concurrency: number;
  windowMs?: number;
  clientTimeoutMs: number;
  verbose: boolean;
}>();

// Workers and the SDK core log errors only: the explorer's own output is the point.
Runtime.install({
  logger: new DefaultLogger('ERROR'),
  telemetryOptions: { logging: { filter: { core: 'ERROR', other: 'ERROR' }, forward: {} } },
});

const seeds = flags.seed ?? Array.from({ length: flags.seeds }, (_, index) => flags.firstSeed + index);

const log = (message: string) => console.error(message);
const server = await startDevServer({ ui: false, log });
const bundlePath = path.join(tmpdir(), `anchor-recovery-explore-${process.pid}.js`);
let explorer: Awaited<ReturnType<typeof startExplorer>> | undefined;
let exitCode = 1;
try {
  await writeFile(bundlePath, await bundleRecoveryWorkflows());
  explorer = await startExplorer({
    temporalAddress: server.address,
    namespace: server.namespace,
    workflowBundlePath: bundlePath,
    clientTimeoutMs: flags.clientTimeoutMs,
    ...(flags.windowMs === undefined ? {} : { windowMs: flags.windowMs }),
  });
  log(
    `Exploring ${seeds.length} seed(s), ${flags.concurrency} at a time; client timeout ${explorer.timings.clientTimeoutMs} ms, ` +
      `window ${explorer.timings.windowMs} ms`,
  );
  const startedAt = Date.now();
  let done = 0;
  const progress = (result: SeedResult) => {
    done += 1;
    if (flags.seed !== undefined || done % 25 === 0 || done === seeds.length)
      log(`  ${done}/${seeds.length} seeds, ${((Date.now() - startedAt) / 1000).toFixed(1)} s`);
    if (flags.seed !== undefined) {
      log(`  seed ${result.seed}: ${describeScenario(result.scenario)}`);
      log(
        `  outcome ${result.outcome}, ${result.rounds} rounds, ${result.appliedRetries} retries applied, ` +
          `${result.durationMs} ms`,
      );
    }
  };
  const results = await explorer.runSeeds(seeds, flags.concurrency, progress);
  const elapsedS = (Date.now() - startedAt) / 1000;
  const summary = summarize(results);
  console.log(formatSummary(summary, { verbose: flags.verbose || flags.seed !== undefined }));
  console.log(
    `Elapsed: ${elapsedS.toFixed(1)} s for ${results.length} seeds (${((results.length / elapsedS) * 60).toFixed(0)} seeds/min)`,
  );
  exitCode = summary.failing.length === 0 ? 0 : 1;
} finally {
  await explorer?.close();
  await server.stop();
  await rm(bundlePath, { force: true });
}
process.exit(exitCode);
