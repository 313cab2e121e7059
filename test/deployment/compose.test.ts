import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { postgresBinDir } from '../../dev/postgres.js';
import { composePins } from '../../dev/temporal-server.js';
import {
  compareVersions,
  composeSpecSchema,
  MIN_UI_VERSION,
  projectProblems,
  readCompose,
  schemaProblems,
  type ComposeDocument,
} from '../../dev/validate-compose.js';
import { WORKER_ENV_VARIABLES } from '../../worker/config.js';
import { repoRoot } from '../client/child-process.js';

let compose: ComposeDocument;
let schema: object;

beforeAll(async () => {
  compose = await readCompose();
  schema = await composeSpecSchema();
}, 120_000);

test('docker-compose.yml follows the Compose Specification schema', () => {
  expect(schemaProblems(schema, compose)).toEqual([]);
  // The schema is strict enough to catch a misspelt key.
  const misspelt = structuredClone(compose);
  (misspelt.services.worker as Record<string, unknown>).depends = {};
  expect(schemaProblems(schema, misspelt)).not.toEqual([]);
});

test('docker-compose.yml follows the project rules: pinned images, ordered start, scalable worker, the workflow search attributes', () => {
  expect(projectProblems(compose)).toEqual([]);
});

test('the project rules catch a worker that cannot scale, a floating tag, an unhealthy dependency and a missing search attribute', () => {
  const broken = structuredClone(compose);
  broken.services.worker = { ...broken.services.worker, container_name: 'worker', ports: ['9464:9464'] };
  broken.services['temporal-ui'] = { ...broken.services['temporal-ui'], image: 'temporalio/ui:latest' };
  delete broken.services.temporal?.healthcheck;
  const bootstrap = broken.services['temporal-bootstrap']?.environment as Record<string, string>;
  bootstrap.SEARCH_ATTRIBUTES = 'AnchorBatchId=Keyword';
  expect(projectProblems(broken)).toEqual(
    expect.arrayContaining([
      'worker: a container_name prevents --scale worker=N',
      'worker: a host port prevents --scale worker=N',
      'temporal-ui: image temporalio/ui:latest is not pinned',
      'temporal-bootstrap: waits for temporal to be healthy, but temporal has no healthcheck',
      expect.stringMatching(/^temporal-bootstrap: SEARCH_ATTRIBUTES is "AnchorBatchId=Keyword"/),
    ]),
  );
});

test('compose ships what the cluster target tests: one Temporal release, a UI no older than the tests drive, no bash, no open doors', async () => {
  const services = compose.services;
  const pins = await composePins();
  expect(services.temporal?.image).toBe(`temporalio/server:${pins.server}`);
  expect(services['temporal-schema']?.image).toBe(`temporalio/admin-tools:${pins.server}`);
  expect(pins.adminTools).toBe(pins.server);
  expect(compareVersions(pins.ui, MIN_UI_VERSION)).toBeGreaterThanOrEqual(0);

  const temporalEnv = services.temporal?.environment as Record<string, string>;
  expect(temporalEnv.TEMPORAL_ALLOW_NO_AUTH).toBe('true');
  expect(services.temporal?.ports).toBeUndefined();
  const healthcheck = (services.temporal?.healthcheck as { test: string[] }).test;
  expect(healthcheck).toEqual(['CMD-SHELL', 'wget -q -O /dev/null "http://$$(hostname):7243/api/v1/cluster-info"']);

  expect(services['temporal-ui']?.ports).toEqual(['${TEMPORAL_UI_BIND:-127.0.0.1}:${TEMPORAL_UI_PORT:-8080}:8080']);

  const sweep = services['sweep-schedule']!;
  expect([...(sweep.entrypoint as string[]), ...(sweep.command as string[])]).toEqual([
    'node',
    'dist/client/cli.js',
    'schedule',
    'upsert',
    '--every',
    '${SWEEP_EVERY:-15m}',
    '--lookback',
    '${SWEEP_LOOKBACK:-24h}',
    '--max-starts',
    '${SWEEP_MAX_STARTS:-200}',
  ]);
  expect(sweep.restart).toBe('no');
  expect(sweep.depends_on).toEqual({ 'temporal-bootstrap': { condition: 'service_completed_successfully' } });
  expect((sweep.environment as Record<string, string>).TEMPORAL_UI_URL).toBe(
    '${TEMPORAL_UI_URL:-http://127.0.0.1:8080}',
  );
});

test('the project rules catch split Temporal versions, a bash health check, implicit no-auth, an old or open UI and no schedule job', () => {
  const broken = structuredClone(compose);
  const services = broken.services;
  services['temporal-schema'] = { ...services['temporal-schema'], image: 'temporalio/admin-tools:1.31.5' };
  services.temporal = {
    ...services.temporal,
    environment: { DB: 'postgres12' },
    healthcheck: { test: ['CMD', 'bash', '-c', 'exec 3<>/dev/tcp/$$(hostname)/7233'] },
  };
  services['temporal-ui'] = { ...services['temporal-ui'], image: 'temporalio/ui:2.34.0', ports: ['8080:8080'] };
  delete services['sweep-schedule'];
  expect(projectProblems(broken)).toEqual(
    expect.arrayContaining([
      expect.stringMatching(/^temporal-schema: admin-tools 1\.31\.5 does not match server /),
      'temporal: the healthcheck uses bash, which the server image (1.30+) does not have',
      'temporal: TEMPORAL_ALLOW_NO_AUTH must be set explicitly (true or false)',
      `temporal-ui: temporalio/ui:2.34.0 is older than ${MIN_UI_VERSION}, the UI the tests drive`,
      'temporal-ui: port "8080:8080" is not bound to 127.0.0.1 by default',
      'no one-shot service upserts the sweep schedule (batch-recovery schedule upsert)',
    ]),
  );
});

/** A volume's host and container paths, for `./host:/container[:ro]`. */
function mounts(service: { volumes?: unknown[] } | undefined): Record<string, string> {
  return Object.fromEntries(
    (service?.volumes ?? []).map((volume) => {
      const [host, container, mode] = String(volume).split(':');
      expect(host!.startsWith('./') ? mode : 'ro').toBe('ro');
      return [container!, host!];
    }),
  );
}

const readYaml = async <T>(file: string) => parse(await readFile(`${repoRoot}${file}`, 'utf8')) as T;

test('the worker gets the notification settings from the environment, empty by default', () => {
  const env = compose.services.worker?.environment as Record<string, string>;
  expect(env).toMatchObject({
    NOTIFY_WEBHOOK_URL: '${NOTIFY_WEBHOOK_URL:-}',
    NOTIFY_OUTCOMES: '${NOTIFY_OUTCOMES:-}',
    TEMPORAL_UI_URL: '${TEMPORAL_UI_URL:-}',
    PAST_DEADLINE_CHECK_INTERVAL_MS: '${PAST_DEADLINE_CHECK_INTERVAL_MS:-}',
    PAST_DEADLINE_GRACE_MS: '${PAST_DEADLINE_GRACE_MS:-}',
  });
});

test('compose passes every worker setting on to the worker, so a value set in .env takes effect', () => {
  const env = compose.services.worker?.environment as Record<string, string>;
  // The image sets the bundle's path, and compose the metrics port (the next test); everything else comes from the
  // operator's environment.
  const notPassed = WORKER_ENV_VARIABLES.filter(
    (name) => !['WORKFLOW_BUNDLE_PATH', 'METRICS_PORT'].includes(name) && !env[name]?.startsWith(`\${${name}:`),
  );
  expect(notPassed).toEqual([]);
});

test('the monitoring profile runs Prometheus on the repository rules, scraping every worker, and a provisioned Grafana', async () => {
  const { prometheus, grafana, worker } = compose.services;
  expect(prometheus?.profiles).toEqual(['monitoring']);
  expect(grafana?.profiles).toEqual(['monitoring']);
  const profiled = Object.entries(compose.services).filter(([, service]) => service.profiles?.includes('monitoring'));
  expect(profiled.map(([name]) => name).sort()).toEqual(['grafana', 'prometheus']);
  expect(prometheus?.ports).toEqual(['127.0.0.1:${PROMETHEUS_PORT:-9090}:9090']);
  expect(grafana?.ports).toEqual(['127.0.0.1:${GRAFANA_PORT:-3000}:3000']);

  // Prometheus: the config it is told to load, and the rule file beside it, are the repository's.
  expect(prometheus?.command).toContain('--config.file=/etc/prometheus/prometheus.yml');
  expect(mounts(prometheus)).toMatchObject({
    '/etc/prometheus/prometheus.yml': './deploy/prometheus/prometheus.yml',
    '/etc/prometheus/alerts.yml': './deploy/prometheus/alerts.yml',
  });
  const config = await readYaml<{
    rule_files: string[];
    scrape_configs: { dns_sd_configs: { names: string[]; port: number }[] }[];
  }>('deploy/prometheus/prometheus.yml');
  expect(config.rule_files).toEqual(['alerts.yml']);
  // The worker service by name, on the port it exposes and its METRICS_PORT defaults to.
  expect(config.scrape_configs[0]?.dns_sd_configs).toEqual([
    expect.objectContaining({ names: ['worker'], type: 'A', port: 9464 }),
  ]);
  expect(worker?.expose).toEqual(['9464']);
  // Fixed, not read from .env: a METRICS_PORT set there moved the endpoint away from the port Prometheus scrapes, and
  // every worker showed as down (RecoveryWorkerDown, NoRecoveryWorker). In its own container the port clashes with
  // nothing, so there is no reason to change it.
  expect((worker?.environment as Record<string, string>).METRICS_PORT).toBe('9464');
  const example = await readFile(`${repoRoot}.env.example`, 'utf8');
  expect(example).not.toMatch(/^METRICS_PORT=/m);

  // Grafana: the datasource points at the Prometheus service, the dashboard provider at the mounted JSON.
  const grafanaMounts = mounts(grafana);
  expect(grafanaMounts).toMatchObject({
    '/etc/grafana/provisioning/datasources': './deploy/grafana/provisioning/datasources',
    '/etc/grafana/provisioning/dashboards': './deploy/grafana/provisioning/dashboards',
    '/etc/grafana/dashboards/anchor-batch-recovery.json': './deploy/grafana/anchor-batch-recovery.json',
  });
  const datasources = await readYaml<{ datasources: { type: string; url: string; isDefault: boolean }[] }>(
    'deploy/grafana/provisioning/datasources/prometheus.yml',
  );
  expect(datasources.datasources).toEqual([
    expect.objectContaining({ type: 'prometheus', url: 'http://prometheus:9090', isDefault: true }),
  ]);
  const dashboards = await readYaml<{ providers: { type: string; options: { path: string } }[] }>(
    'deploy/grafana/provisioning/dashboards/anchor-batch-recovery.yml',
  );
  expect(dashboards.providers).toEqual([
    expect.objectContaining({ type: 'file', options: { path: '/etc/grafana/dashboards' } }),
  ]);
});

// The simulator's admin paths take no token under compose, and it was published on every interface.
test('the project rules catch any port published beyond loopback: a monitoring UI, the simulator', () => {
  expect(compose.services.simulator?.ports).toEqual(['127.0.0.1:${SIMULATOR_PORT:-4010}:4010']);
  const broken = structuredClone(compose);
  broken.services.prometheus = { ...broken.services.prometheus, ports: ['9090:9090'] };
  broken.services.grafana = { ...broken.services.grafana, ports: ['0.0.0.0:3000:3000'] };
  broken.services.simulator = { ...broken.services.simulator, ports: ['${SIMULATOR_PORT:-4010}:4010'] };
  expect(projectProblems(broken).sort()).toEqual([
    'grafana: port "0.0.0.0:3000:3000" is not bound to 127.0.0.1 by default',
    'prometheus: port "9090:9090" is not bound to 127.0.0.1 by default',
    'simulator: port "${SIMULATOR_PORT:-4010}:4010" is not bound to 127.0.0.1 by default',
  ]);
});

// Compose shipped PostgreSQL 16 while the suite ran on Debian's 15: the pin said it was what the tests run. Checked in
// the cluster run, on the PostgreSQL it runs on: the dev-server run needs none installed.
const onCluster = process.env.TEST_TEMPORAL_TARGET === 'cluster';
(onCluster ? test : test.skip)(
  "compose's PostgreSQL is the major version `npm run test:cluster` runs the suite on",
  async () => {
    const { stdout } = await promisify(execFile)(path.join(await postgresBinDir(), 'postgres'), ['--version']);
    const tested = /\(PostgreSQL\) (\d+)\./.exec(stdout)?.[1];
    expect(tested).toMatch(/^\d+$/);
    expect(compose.services.postgresql?.image).toMatch(new RegExp(`^postgres:${tested}\\.\\d+(-|$)`));
  },
);

// `docker compose run` starts the service's dependencies first, and starts again a one-shot one that has exited:
// each command the docs gave ran temporal-bootstrap again before it. The docs run them with the stack up.
test('every `docker compose run` in the README and docs names a compose service, and one with dependencies --no-deps', async () => {
  const docs = ['README.md', 'docs/deployment.md', 'docs/scaling.md'];
  const commands: { doc: string; flags: string[]; service: string }[] = [];
  for (const doc of docs) {
    const text = await readFile(`${repoRoot}${doc}`, 'utf8');
    for (const [, flags, service] of text.matchAll(/docker compose run((?:\s+--?[\w-]+)*)\s+([\w-]+)/g))
      commands.push({ doc, flags: flags!.trim().split(/\s+/), service: service! });
  }

  expect(commands.length).toBeGreaterThan(0);
  for (const { doc, flags, service } of commands) {
    const definition = compose.services[service];
    expect({ doc, service, defined: definition !== undefined }).toEqual({ doc, service, defined: true });
    if (definition?.depends_on !== undefined)
      expect({ doc, service, flags }).toEqual({ doc, service, flags: expect.arrayContaining(['--no-deps']) });
  }
});

test('.env.example documents every variable the worker reads, as a line of its own, set or commented out', async () => {
  const example = await readFile(`${repoRoot}.env.example`, 'utf8');
  const documented = new Set([...example.matchAll(/^(?:# )?([A-Z][A-Z0-9_]*)=/gm)].map((match) => match[1]));
  expect(WORKER_ENV_VARIABLES.filter((name) => !documented.has(name))).toEqual([]);
});
