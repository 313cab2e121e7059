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
