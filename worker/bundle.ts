import { bundleWorkflowCode } from '@temporalio/worker';
import { workflowInterceptorModules, workflowPreloadModules, workflowsPath } from './create-worker.js';

/** The workflow code as one bundle, so a worker can start without bundling. */
export async function bundleRecoveryWorkflows(): Promise<string> {
  const { code } = await bundleWorkflowCode({
    workflowsPath,
    workflowInterceptorModules,
    preloadModules: workflowPreloadModules,
    logger: undefined,
  });
  return code;
}
