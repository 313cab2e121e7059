// Plain JS because jest loads global setup outside its TypeScript transform; tsx loads the TS helper.
import { tsImport } from 'tsx/esm/api';

// One dev server for the whole run; test files reach it through the environment.
export default async function globalSetup() {
  const { startDevServer } = await tsImport('../dev/dev-server.ts', import.meta.url);
  const server = await startDevServer({ ui: false, log: (message) => console.error(message) });
  globalThis.__temporalDevServer = server;
  process.env.TEMPORAL_ADDRESS = server.address;
  process.env.TEMPORAL_NAMESPACE = server.namespace;
}
