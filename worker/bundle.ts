import { bundleWorkflowCode } from '@temporalio/worker';
import { workflowInterceptorModules, workflowsPath } from './create-worker.js';

/** The workflow code as one bundle, so a worker can start without bundling. */
export async function bundleRecoveryWorkflows(): Promise<string> {
  const { code } = await bundleWorkflowCode({ workflowsPath, workflowInterceptorModules, logger: undefined });
  return code;
}
