import { access, chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { composePins, resolveTemporalServer, resolveTemporalUiServer } from '../../dev/temporal-server.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'temporal-server-test-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

/**
 * A stand-in for `go`: `install` leaves a `server` (and a `sql`) in GOBIN after a moment and counts
 * its runs; `mod download -json` answers with a module folder holding the release's schema and configs.
 */
async function fakeGo() {
  const binDir = path.join(dir, 'bin');
  const moduleDir = path.join(dir, 'module');
  const runs = path.join(dir, 'go-runs');
  await mkdir(path.join(moduleDir, 'schema', 'postgresql', 'v12', 'temporal', 'versioned', 'v1.0'), {
    recursive: true,
  });
  await writeFile(path.join(moduleDir, 'schema', 'postgresql', 'v12', 'temporal', 'versioned', 'v1.0', 'a.sql'), '--');
  await mkdir(path.join(moduleDir, 'config', 'dynamicconfig'), { recursive: true });
  await writeFile(path.join(moduleDir, 'config', 'dynamicconfig', 'docker.yaml'), 'limit.x: 1\n');
  await writeFile(path.join(moduleDir, 'config', 'base.yaml'), 'port: 8233\n');
  await writeFile(path.join(moduleDir, 'config', 'docker.yaml'), 'port: 8080\n');
  await mkdir(binDir, { recursive: true });
  const go = path.join(binDir, 'go');
  await writeFile(
    go,
    [
      '#!/bin/sh',
      'if [ "$1" = mod ]; then echo "{\\"Dir\\": \\"' + moduleDir + '\\"}"; exit 0; fi',
      `echo "GOTOOLCHAIN=$GOTOOLCHAIN $*" >> ${runs}`,
      'sleep 1',
      'for name in server sql; do printf "#!/bin/sh\\n" > "$GOBIN/$name"; chmod +x "$GOBIN/$name"; done',
    ].join('\n'),
  );
  await chmod(go, 0o755);
  return { env: { PATH: `${binDir}:/usr/bin:/bin`, XDG_CACHE_HOME: path.join(dir, 'cache') }, runs };
}

test('compose pins one Temporal release for server and admin-tools, and a UI; a floating tag is refused', async () => {
  const pins = await composePins();
  expect(pins.server).toMatch(/^\d+\.\d+\.\d+$/);
  expect(pins.adminTools).toBe(pins.server);
  expect(pins.ui).toMatch(/^\d+\.\d+\.\d+$/);

  const floating = path.join(dir, 'docker-compose.yml');
  await writeFile(
    floating,
    'services:\n  temporal: { image: temporalio/server }\n  temporal-bootstrap: { image: temporalio/admin-tools:1.32.2 }\n  temporal-ui: { image: temporalio/ui:2.54.1 }\n',
  );
  await expect(composePins(floating)).rejects.toThrow(/temporal is not a pinned temporalio\/server image/);
});

test('concurrent callers share one go install of the server and SQL tool, laid out as the images have them', async () => {
  const { env, runs } = await fakeGo();
  const log = () => undefined;
  const [first, second] = await Promise.all([
    resolveTemporalServer('1.2.3', { env, log }),
    resolveTemporalServer('1.2.3', { env, log }),
  ]);

  expect(second).toEqual(first);
  expect((await readFile(runs, 'utf8')).trim().split('\n')).toEqual([
    'GOTOOLCHAIN=auto install go.temporal.io/server/cmd/server@v1.2.3 go.temporal.io/server/cmd/tools/sql@v1.2.3',
  ]);
  expect(first.server).toBe(
    path.join(dir, 'cache', 'anchor-batch-recovery', 'temporal-server-v1.2.3', 'dist', 'temporal-server'),
  );
  await access(first.sqlTool);
  await access(path.join(first.schemaDir, 'postgresql', 'v12', 'temporal', 'versioned', 'v1.0', 'a.sql'));
  await expect(readFile(first.dynamicConfigFile, 'utf8')).resolves.toBe('limit.x: 1\n');
  // Cached: no second build.
  await resolveTemporalServer('1.2.3', { env, log });
  expect((await readFile(runs, 'utf8')).trim().split('\n')).toHaveLength(1);
});

test('the UI server is built from github.com/temporalio/ui-server/v2 with the image configuration files', async () => {
  const { env, runs } = await fakeGo();
  const ui = await resolveTemporalUiServer('2.54.1', { env, log: () => undefined });
  expect((await readFile(runs, 'utf8')).trim()).toBe(
    'GOTOOLCHAIN=auto install github.com/temporalio/ui-server/v2/cmd/server@v2.54.1',
  );
  await access(ui.uiServer);
  await expect(readFile(path.join(ui.configDir, 'docker.yaml'), 'utf8')).resolves.toBe('port: 8080\n');
  await expect(readFile(path.join(ui.configDir, 'base.yaml'), 'utf8')).resolves.toBe('port: 8233\n');
});
