import { Command, InvalidArgumentError, Option } from 'commander';
import { stopOnSignals } from '../dev/stop-signals.js';
import { ADMIN_PREFIX } from './admin-routes.js';
import { DEFAULT_SIMULATOR_OPTIONS, startSimulator } from './server.js';

function integer(value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 0) throw new InvalidArgumentError('expected a non-negative integer');
  return parsed;
}

function probability(value: string): number {
  const parsed = Number(value);
  if (!(parsed >= 0 && parsed <= 1)) throw new InvalidArgumentError('expected a number between 0 and 1');
  return parsed;
}

const program = new Command('anchor-simulator')
  .description('Standalone AnchorBrowser batch-sessions API simulator (contract: anchor-batch-sessions.openapi.yaml)')
  .addOption(
    new Option('--port <port>', 'TCP port, 0 for any free one').env('SIMULATOR_PORT').argParser(integer).default(4010),
  )
  .addOption(
    new Option('--host <host>', 'interface to bind').env('SIMULATOR_HOST').default(DEFAULT_SIMULATOR_OPTIONS.host),
  )
  .addOption(
    new Option('--api-keys <keys>', 'comma-separated accepted anchor-api-key values')
      .env('SIMULATOR_API_KEYS')
      .default(DEFAULT_SIMULATOR_OPTIONS.apiKeys.join(',')),
  )
  .addOption(
    new Option('--admin-token <token>', `require x-simulator-admin-token on ${ADMIN_PREFIX}/*`).env(
      'SIMULATOR_ADMIN_TOKEN',
    ),
  )
  .addOption(
    new Option('--failure-probability <p>', 'chance each attempt fails')
      .env('SIMULATOR_FAILURE_PROBABILITY')
      .argParser(probability)
      .default(DEFAULT_SIMULATOR_OPTIONS.failureProbability),
  )
  .addOption(
    new Option('--seed <n>', 'RNG seed')
      .env('SIMULATOR_SEED')
      .argParser(integer)
      .default(DEFAULT_SIMULATOR_OPTIONS.seed),
  )
  .addOption(
    new Option('--attempt-duration-ms <ms>', 'time one session attempt takes')
      .env('SIMULATOR_ATTEMPT_DURATION_MS')
      .argParser(integer)
      .default(DEFAULT_SIMULATOR_OPTIONS.attemptDurationMs),
  )
  .addOption(
    new Option('--queue-delay-ms <ms>', 'time an attempt waits before starting')
      .env('SIMULATOR_QUEUE_DELAY_MS')
      .argParser(integer)
      .default(DEFAULT_SIMULATOR_OPTIONS.queueDelayMs),
  )
  .addOption(
    new Option('--clock <mode>', 'real: time flows; manual: only POST /_simulator/clock/advance moves it')
      .env('SIMULATOR_CLOCK')
      .choices(['real', 'manual'])
      .default(DEFAULT_SIMULATOR_OPTIONS.clockMode),
  )
  .addOption(new Option('--log', 'log every request').env('SIMULATOR_LOG').default(false));

program.parse();
const flags = program.opts<{
  port: number;
  host: string;
  apiKeys: string;
  adminToken?: string;
  failureProbability: number;
  seed: number;
  attemptDurationMs: number;
  queueDelayMs: number;
  clock: 'real' | 'manual';
  log: boolean;
}>();

const simulator = await startSimulator({
  port: flags.port,
  host: flags.host,
  apiKeys: flags.apiKeys
    .split(',')
    .map((key) => key.trim())
    .filter((key) => key !== ''),
  ...(flags.adminToken === undefined ? {} : { adminToken: flags.adminToken }),
  failureProbability: flags.failureProbability,
  seed: flags.seed,
  attemptDurationMs: flags.attemptDurationMs,
  queueDelayMs: flags.queueDelayMs,
  clockMode: flags.clock,
  logger: flags.log,
});

stopOnSignals(async () => {
  await simulator.close();
  console.log('Simulator stopped');
});

// First line is machine-readable so a parent process can pick the URL up from stdout.
console.log(`SIMULATOR_URL=${simulator.url}`);
console.log(
  `Anchor simulator listening on ${simulator.url} (admin: ${simulator.url}${ADMIN_PREFIX}, clock: ${flags.clock})`,
);
