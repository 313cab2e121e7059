// Plain JS because jest loads global setup outside its TypeScript transform; tsx loads the TS modules.
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { tsImport } from 'tsx/esm/api';

// One dev server and one workflow bundle for the whole run; test files reach them through the environment.
export default async function globalSetup() {
  const { startDevServer } = await tsImport('../dev/dev-server.ts', import.meta.url);
  const { bundleRecoveryWorkflows } = await tsImport('../worker/bundle.ts', import.meta.url);
  const server = await startDevServer({ ui: false, log: (message) => console.error(message) });
  globalThis.__temporalDevServer = server;
  process.env.TEMPORAL_ADDRESS = server.address;
  process.env.TEMPORAL_NAMESPACE = server.namespace;
  const bundlePath = path.join(tmpdir(), `anchor-recovery-workflows-${process.pid}.js`);
  await writeFile(bundlePath, await bundleRecoveryWorkflows());
  globalThis.__workflowBundlePath = bundlePath;
  process.env.TEST_WORKFLOW_BUNDLE = bundlePath;
}
