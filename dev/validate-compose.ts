import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parse } from 'yaml';
import { recoverySearchAttributes } from '../workflows/search-attributes.js';

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
  profiles?: string[];
  depends_on?: string[] | Record<string, { condition?: string }>;
  healthcheck?: unknown;
  environment?: Record<string, string> | string[];
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
  const { stdout } = await run('go', ['mod', 'download', '-json', COMPOSE_GO_MODULE], {
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

/** Rules the schema cannot express: what makes this stack start in order, scale, and match the workflow code. */
export function projectProblems(compose: ComposeDocument): string[] {
  const problems: string[] = [];
  const services = compose.services ?? {};
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
  const expected = recoverySearchAttributes
    .map((key) => `${key.name}=${key.type === 'INT' ? 'Int' : 'Keyword'}`)
    .join(' ');
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
