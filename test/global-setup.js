// Plain JS because jest loads global setup outside its TypeScript transform; tsx loads the TS modules.
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { tsImport } from 'tsx/esm/api';

/** The namespace the Web UI tests get to themselves on the cluster (its lists are not shared). */
const WEB_UI_NAMESPACE = 'web-ui';

async function startTemporal() {
  const log = (message) => console.error(message);
  if (process.env.TEST_TEMPORAL_TARGET === 'cluster') {
    // npm run test:cluster: the server and UI versions compose pins, on PostgreSQL.
    const { startTemporalCluster } = await tsImport('../dev/temporal-cluster.ts', import.meta.url);
    const cluster = await startTemporalCluster({ namespaces: ['default', WEB_UI_NAMESPACE], ui: true, log });
    process.env.TEST_TEMPORAL_UI_URL = cluster.uiUrl;
    process.env.TEST_TEMPORAL_UI_NAMESPACE = WEB_UI_NAMESPACE;
    return cluster;
  }
  const { startDevServer } = await tsImport('../dev/dev-server.ts', import.meta.url);
  return startDevServer({ ui: false, log });
}

// One Temporal server and one workflow bundle for the whole run; test files reach them through the environment.
export default async function globalSetup() {
  const { bundleRecoveryWorkflows } = await tsImport('../worker/bundle.ts', import.meta.url);
  // The alert-rule tests' promtool: Debian's when installed, else built once with Go like the Temporal CLI.
  const { resolvePromtool } = await tsImport('../dev/promtool.ts', import.meta.url);
  process.env.TEST_PROMTOOL = await resolvePromtool({ log: (message) => console.error(message) });
  const server = await startTemporal();
  globalThis.__temporalServer = server;
  process.env.TEMPORAL_ADDRESS = server.address;
  process.env.TEMPORAL_NAMESPACE = server.namespace;
  const bundlePath = path.join(tmpdir(), `anchor-recovery-workflows-${process.pid}.js`);
  await writeFile(bundlePath, await bundleRecoveryWorkflows());
  globalThis.__workflowBundlePath = bundlePath;
  process.env.TEST_WORKFLOW_BUNDLE = bundlePath;
}
