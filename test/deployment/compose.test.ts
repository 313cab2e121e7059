import {
  composeSpecSchema,
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
