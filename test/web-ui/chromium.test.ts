import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { bundledChromiumDir, resolveChromium } from './chromium.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'chromium-test-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

async function executable(file: string) {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, '#!/bin/sh\necho fake\n');
  await chmod(file, 0o755);
  return file;
}

test('CHROMIUM_PATH wins over the PATH, and a wrong one is an error', async () => {
  const onPath = await executable(path.join(dir, 'bin', 'chromium'));
  const mine = await executable(path.join(dir, 'my-chromium'));
  const PATH = path.dirname(onPath);
  await expect(resolveChromium({ env: { PATH, CHROMIUM_PATH: mine } })).resolves.toBe(mine);
  await expect(resolveChromium({ env: { PATH, CHROMIUM_PATH: path.join(dir, 'missing') } })).rejects.toThrow(
    /CHROMIUM_PATH=.*missing: not an executable file/,
  );
  await expect(resolveChromium({ env: { PATH } })).resolves.toBe(onPath);
});

test('without a system Chromium, the one inside the npm package is unpacked once into the cache and runs', async () => {
  // The real cache: unpacking is 200 MB, done once per machine and shared with the Web UI tests.
  const env = { PATH: path.join(dir, 'empty-bin'), HOME: process.env.HOME, XDG_CACHE_HOME: process.env.XDG_CACHE_HOME };
  const messages: string[] = [];
  const [first, second] = await Promise.all([
    resolveChromium({ env, log: (message) => messages.push(message) }),
    resolveChromium({ env, log: (message) => messages.push(message) }),
  ]);
  expect(first).toBe(path.join(bundledChromiumDir(env), 'browser', 'chromium'));
  expect(second).toBe(first);
  expect(messages.length).toBeLessThanOrEqual(1);
  const { stdout } = await promisify(execFile)(first, ['--version']);
  expect(stdout).toMatch(/^Chromium \d+\./);
}, 60_000);
