import { readFile } from 'node:fs/promises';

// Every cached workflow runs the bundle's module code in its own sandbox context, so each package
// here costs memory and CPU per workflow: schema libraries (zod) and HTTP clients stay outside.
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
