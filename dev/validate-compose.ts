import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parse } from 'yaml';
import { recoverySearchAttributes } from '../workflows/search-attributes.js';
import { requireGo } from './go-build.js';

/*
 * Checks docker-compose.yml without a Docker engine: against the Compose
 * Specification's JSON schema (the one Docker Compose itself validates with,
 * from the pinned compose-go module, fetched through the Go module proxy),
 * against the project's own rules, and with Debian's `docker-compose config`
 * when that is installed.
 */

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
export const composeFile = path.join(repoRoot, 'docker-compose.yml');
const COMPOSE_GO_MODULE = 'github.com/compose-spec/compose-go/v2@v2.16.2';
const run = promisify(execFile);

interface Service {
  image?: string;
  build?: unknown;
  container_name?: string;
  ports?: unknown[];
  expose?: unknown[];
  volumes?: unknown[];
  profiles?: string[];
  depends_on?: string[] | Record<string, { condition?: string }>;
  healthcheck?: unknown;
  environment?: Record<string, string> | string[];
  entrypoint?: string[] | string;
  command?: string[] | string;
  restart?: string;
}
export interface ComposeDocument {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

export async function readCompose(file = composeFile): Promise<ComposeDocument> {
  // merge: compose resolves YAML merge keys (<<) before validating, so must we.
  return parse(await readFile(file, 'utf8'), { merge: true }) as ComposeDocument;
}

/** The schema file from the Go module cache (downloaded on first use). */
export async function composeSpecSchema(): Promise<object> {
  const go = await requireGo(process.env, 'read the Compose Specification schema');
  const { stdout } = await run(go, ['mod', 'download', '-json', COMPOSE_GO_MODULE], {
    env: { ...process.env, GOFLAGS: '-mod=mod' },
  });
  const { Dir } = JSON.parse(stdout) as { Dir: string };
  return JSON.parse(await readFile(path.join(Dir, 'schema', 'compose-spec.json'), 'utf8')) as object;
}

export function schemaProblems(schema: object, document: unknown): string[] {
  const ajv = new Ajv2020({ allErrors: true, strict: false });
  const validate = ajv.compile(schema);
  if (validate(document)) return [];
  return (validate.errors ?? []).map((error) => `${error.instancePath || '(root)'}: ${error.message ?? 'invalid'}`);
}

/** A tag with at least major.minor, or a digest: `latest` or a bare major would move under us. */
const isPinned = (image: string) => /@sha256:[0-9a-f]{64}$/.test(image) || /:[^:/]*\d+\.\d+[^:/]*$/.test(image);

/** Search attribute types as `temporal operator search-attribute create --type` names them. */
const temporalCliTypeNames: Record<string, string> = { KEYWORD: 'Keyword', INT: 'Int', DATETIME: 'Datetime' };

/** The SEARCH_ATTRIBUTES deploy/bootstrap-temporal.sh registers: workflows/search-attributes.ts, as Name=Type pairs. */
export const bootstrapSearchAttributes = () =>
  recoverySearchAttributes.map((key) => `${key.name}=${temporalCliTypeNames[key.type]}`).join(' ');

/** The Web UI version the tests drive (the dev server's); compose must not ship an older one. */
export const MIN_UI_VERSION = '2.42.1';

const tagOf = (image: string | undefined) => image?.split(':')[1] ?? '';
const environmentOf = (service: Service | undefined) =>
  Array.isArray(service?.environment)
    ? Object.fromEntries(service.environment.map((entry) => entry.split('=', 2) as [string, string]))
    : (service?.environment ?? {});
const words = (value: string[] | string | undefined) => (Array.isArray(value) ? value : (value ?? '').split(/\s+/));
/** ${NAME:-default} → default, as compose resolves it when NAME is unset. */
const withDefaults = (value: string) => value.replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1');

export function compareVersions(a: string, b: string): number {
  const [pa, pb] = [a, b].map((version) => version.split('.').map(Number));
  for (let i = 0; i < 3; i++) if ((pa![i] ?? 0) !== (pb![i] ?? 0)) return (pa![i] ?? 0) - (pb![i] ?? 0);
  return 0;
}

/** The Temporal images: one release for server and admin-tools, a health check the image can run, and no open doors. */
function temporalProblems(services: Record<string, Service>): string[] {
  const problems: string[] = [];
  const server = tagOf(services.temporal?.image);
  for (const tool of ['temporal-schema', 'temporal-bootstrap']) {
    const tag = tagOf(services[tool]?.image);
    if (tag !== server) problems.push(`${tool}: admin-tools ${tag} does not match server ${server}`);
  }
  if (JSON.stringify(services.temporal?.healthcheck ?? {}).includes('bash')) {
    problems.push('temporal: the healthcheck uses bash, which the server image (1.30+) does not have');
  }
  if (!['true', 'false'].includes(environmentOf(services.temporal).TEMPORAL_ALLOW_NO_AUTH ?? '')) {
    problems.push('temporal: TEMPORAL_ALLOW_NO_AUTH must be set explicitly (true or false)');
  }
  const ui = services['temporal-ui'];
  if (compareVersions(tagOf(ui?.image), MIN_UI_VERSION) < 0) {
    problems.push(`temporal-ui: ${ui?.image ?? 'missing'} is older than ${MIN_UI_VERSION}, the UI the tests drive`);
  }
  const upserts = Object.entries(services).filter(([, service]) =>
    [...words(service.entrypoint), ...words(service.command)].join(' ').includes('schedule upsert'),
  );
  if (upserts.length !== 1)
    problems.push('no one-shot service upserts the sweep schedule (batch-recovery schedule upsert)');
  for (const [name, service] of upserts) {
    if (service.restart !== 'no') problems.push(`${name}: a one-shot job needs restart: 'no'`);
    const waits = (service.depends_on as Record<string, { condition?: string }> | undefined)?.['temporal-bootstrap'];
    if (waits?.condition !== 'service_completed_successfully') {
      problems.push(`${name}: must wait for temporal-bootstrap to complete (the namespace and search attributes)`);
    }
    if (!environmentOf(service).TEMPORAL_UI_URL)
      problems.push(`${name}: TEMPORAL_UI_URL is not set for the CLI's links`);
  }
  return problems;
}

/** Rules the schema cannot express: what makes this stack start in order, scale, and match the workflow code. */
export function projectProblems(compose: ComposeDocument): string[] {
  const problems: string[] = [];
  const services = compose.services ?? {};
  problems.push(...temporalProblems(services));
  // Nothing published has a login that holds: the Web UIs have none of their own (Grafana's is admin/admin until
  // changed), the simulator's admin paths no token. An override file opens one on purpose.
  for (const [name, service] of Object.entries(services)) {
    for (const port of service.ports ?? []) {
      if (typeof port !== 'string' || !withDefaults(port).startsWith('127.0.0.1:')) {
        problems.push(`${name}: port ${JSON.stringify(port)} is not bound to 127.0.0.1 by default`);
      }
    }
  }
  for (const [name, service] of Object.entries(services)) {
    if (service.image && !service.build && !isPinned(service.image))
      problems.push(`${name}: image ${service.image} is not pinned`);
    const dependencies = service.depends_on ?? {};
    if (Array.isArray(dependencies)) problems.push(`${name}: depends_on needs conditions, not a list`);
    for (const [dependency, { condition } = {}] of Object.entries(Array.isArray(dependencies) ? {} : dependencies)) {
      if (!condition) problems.push(`${name}: depends_on ${dependency} has no condition`);
      if (condition === 'service_healthy' && !services[dependency]?.healthcheck) {
        problems.push(`${name}: waits for ${dependency} to be healthy, but ${dependency} has no healthcheck`);
      }
    }
  }
  const worker = services.worker;
  if (!worker) problems.push('worker: missing');
  else {
    if (!worker.build) problems.push('worker: must be built from the Dockerfile');
    if (worker.container_name) problems.push('worker: a container_name prevents --scale worker=N');
    if (worker.ports?.length) problems.push('worker: a host port prevents --scale worker=N');
    if (!worker.healthcheck) problems.push('worker: no healthcheck');
  }
  if (!services.simulator?.profiles?.includes('demo')) problems.push('simulator: must be in the demo profile only');
  const registered = (services['temporal-bootstrap']?.environment as Record<string, string> | undefined)
    ?.SEARCH_ATTRIBUTES;
  const expected = bootstrapSearchAttributes();
  if (registered?.trim() !== expected) {
    problems.push(
      `temporal-bootstrap: SEARCH_ATTRIBUTES is "${registered ?? ''}", workflows/search-attributes.ts needs "${expected}"`,
    );
  }
  return problems;
}

/** `docker-compose config` resolves variables, merges anchors and applies its own schema; no engine needed. */
export async function dockerComposeConfigProblems(
  envFile: string,
  env: NodeJS.ProcessEnv = {},
): Promise<string[] | 'not installed'> {
  try {
    await run('docker-compose', ['--env-file', envFile, '-f', composeFile, 'config', '--quiet'], {
      cwd: repoRoot,
      env: { ...process.env, ...env },
    });
    return [];
  } catch (err) {
    const failure = err as NodeJS.ErrnoException & { stderr?: string };
    if (failure.code === 'ENOENT') return 'not installed';
    return [
      `docker-compose config (${path.relative(repoRoot, envFile)}): ${failure.stderr?.trim() || failure.message}`,
    ];
  }
}

async function main(): Promise<void> {
  const compose = await readCompose();
  const problems = [...schemaProblems(await composeSpecSchema(), compose), ...projectProblems(compose)];
  console.log(`compose-spec schema (${COMPOSE_GO_MODULE}) and project rules: ${problems.length} problem(s)`);
  // The example leaves the API key blank on purpose; the demo env is complete.
  for (const [envFile, env] of [
    ['.env.example', { ANCHOR_API_KEY: 'placeholder' }],
    ['deploy/demo.env', {}],
  ] as const) {
    const result = await dockerComposeConfigProblems(path.join(repoRoot, envFile), env);
    if (result === 'not installed') {
      console.log('docker-compose config: skipped, docker-compose is not installed (apt-get install docker-compose)');
      break;
    }
    console.log(`docker-compose config with ${envFile}: ${result.length === 0 ? 'ok' : 'failed'}`);
    problems.push(...result);
  }
  for (const problem of problems) console.error(`  - ${problem}`);
  if (problems.length > 0) process.exitCode = 1;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
