import { rm } from 'node:fs/promises';

export default async function globalTeardown() {
  await globalThis.__temporalServer?.stop();
  if (globalThis.__workflowBundlePath) await rm(globalThis.__workflowBundlePath, { force: true });
}
