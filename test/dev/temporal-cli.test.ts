import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  resolveTemporalCli,
  TEMPORAL_CLI_VERSION,
  temporalCliCacheDir,
  TemporalCliUnavailableError,
} from '../../dev/temporal-cli.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'temporal-cli-test-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

async function executable(file: string, body: string) {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, `#!/bin/sh\n${body}\n`);
  await chmod(file, 0o755);
  return file;
}

/** A stand-in for `go install` that takes a moment, counts its runs and leaves a `temporal` in GOBIN. */
async function fakeGo() {
  const binDir = path.join(dir, 'bin');
  const runs = path.join(dir, 'go-runs');
  await executable(
    path.join(binDir, 'go'),
    `echo "$*" >> ${runs}\nsleep 1\nprintf '#!/bin/sh\\necho built' > "$GOBIN/temporal"\nchmod +x "$GOBIN/temporal"`,
  );
  return { env: { PATH: `${binDir}:/usr/bin:/bin`, XDG_CACHE_HOME: path.join(dir, 'cache') }, runs };
}

test('TEMPORAL_CLI_PATH wins, and a wrong one is an error rather than a reason to build', async () => {
  const cli = await executable(path.join(dir, 'my-temporal'), 'echo mine');
  await expect(resolveTemporalCli({ env: { TEMPORAL_CLI_PATH: cli } })).resolves.toBe(cli);
  await expect(resolveTemporalCli({ env: { TEMPORAL_CLI_PATH: path.join(dir, 'missing') } })).rejects.toThrow(
    /TEMPORAL_CLI_PATH=.*missing: not an executable file/,
  );
});

test('the cached build of the pinned version is used without building', async () => {
  const env = { XDG_CACHE_HOME: path.join(dir, 'cache'), PATH: '' };
  const cached = await executable(path.join(temporalCliCacheDir(env), 'temporal'), 'echo cached');
  expect(cached).toContain(`temporal-cli-${TEMPORAL_CLI_VERSION}`);
  await expect(resolveTemporalCli({ env, goFallbacks: [], allowSdkDownload: false })).resolves.toBe(cached);
});

test('concurrent callers share one go install of the pinned module, and say that they build', async () => {
  const { env, runs } = await fakeGo();
  const messages: string[] = [];
  const log = (message: string) => messages.push(message);
  const [first, second] = await Promise.all([
    resolveTemporalCli({ env, log, goFallbacks: [], heartbeatMs: 200 }),
    resolveTemporalCli({ env, log, goFallbacks: [], heartbeatMs: 200 }),
  ]);

  expect(first).toBe(path.join(temporalCliCacheDir(env), 'temporal'));
  expect(second).toBe(first);
  expect((await readFile(runs, 'utf8')).trim().split('\n')).toEqual([
    `install github.com/temporalio/cli/cmd/temporal@${TEMPORAL_CLI_VERSION}`,
  ]);
  expect(messages[0]).toMatch(/^Building Temporal CLI v1\.5\.1 with .*go \(first time only/);
  expect(messages.some((message) => /still building the Temporal CLI/.test(message))).toBe(true);
});

test('with nothing to use or build it stops with one message on how to install the CLI', async () => {
  const env = { XDG_CACHE_HOME: path.join(dir, 'cache'), PATH: '' };
  const failure = await resolveTemporalCli({ env, goFallbacks: [], allowSdkDownload: false }).catch(
    (err: unknown) => err,
  );

  expect(failure).toBeInstanceOf(TemporalCliUnavailableError);
  const message = (failure as Error).message;
  expect(message).toMatch(/TEMPORAL_CLI_PATH: not set/);
  expect(message).toMatch(/go: not found/);
  expect(message).toContain(`go install github.com/temporalio/cli/cmd/temporal@${TEMPORAL_CLI_VERSION}`);
});
