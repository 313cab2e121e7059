import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode } from '@temporalio/worker';

// `.ts` when run from source (tsx, jest), `.js` when run from the compiled build.
const moduleExtension = path.extname(fileURLToPath(import.meta.url));
export const workflowsPath = fileURLToPath(new URL(`../workflows/index${moduleExtension}`, import.meta.url));
export const workflowInterceptorModules = [
  fileURLToPath(new URL(`../workflows/failure-log-interceptor${moduleExtension}`, import.meta.url)),
  fileURLToPath(new URL(`../workflows/undecodable-signal-interceptor${moduleExtension}`, import.meta.url)),
];

/** The workflow code as one bundle, so a worker can start without bundling. */
export async function bundleRecoveryWorkflows(): Promise<string> {
  const { code } = await bundleWorkflowCode({ workflowsPath, workflowInterceptorModules, logger: undefined });
  return code;
}
