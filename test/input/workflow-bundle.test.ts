import { readFile } from 'node:fs/promises';

// The worker loads the workflow modules once per workflow thread (preloadModules, worker/create-worker.ts), but each
// package here still costs every thread its load and its memory, and runs again for every workflow if it ever falls
// out of the preloaded set: schema libraries (zod) and HTTP clients stay outside.
test('the workflow bundle holds only the Temporal SDK and small helpers, no zod', async () => {
  const bundlePath = process.env.TEST_WORKFLOW_BUNDLE;
  if (!bundlePath) throw new Error('TEST_WORKFLOW_BUNDLE is not set: run the tests through jest');
  const code = await readFile(bundlePath, 'utf8');
  const packages = new Set(
    [...code.matchAll(/\.\/node_modules\/((?:@[^/"]+\/)?[^/"]+)\//g)].map((match) => match[1] as string),
  );
  expect([...packages].sort()).toEqual(['@temporalio/common', '@temporalio/workflow', 'long', 'ms', 'nexus-rpc']);
  expect(code).not.toMatch(/node_modules\/zod\//);
});

test('the bundle preloads every workflow and interceptor module, so none runs again for each workflow', async () => {
  const code = await readFile(process.env.TEST_WORKFLOW_BUNDLE!, 'utf8');
  const preload = /exports\.preloadModules = function preloadModules\(\) \{([^}]*)\}/.exec(code)?.[1] ?? '';
  const preloaded = [...preload.matchAll(/"(\.\/workflows\/[^"]+)"\)/g)].map((match) => match[1]);
  expect(preloaded.sort()).toEqual([
    './workflows/failure-log-interceptor.ts',
    './workflows/index.ts',
    './workflows/undecodable-signal-interceptor.ts',
  ]);
});
