import { NativeConnection } from '@temporalio/worker';
import { loadWorkerConfig } from './config.js';
import { createRecoveryWorker, type WorkflowSource } from './create-worker.js';
import { installJsonLogging } from './logging.js';

/**
 * Runs the worker until SIGINT/SIGTERM. The SDK then stops polling and gives
 * in-flight activities the grace time to finish; what does not finish is
 * handed back to the server and retried elsewhere.
 */
export async function runWorker(env: NodeJS.ProcessEnv = process.env, workflows?: WorkflowSource): Promise<void> {
  const config = loadWorkerConfig(env);
  const logger = installJsonLogging();
  const connection = await NativeConnection.connect({ address: config.temporal.address }).catch((err: Error) => {
    throw new Error(`Cannot reach Temporal at ${config.temporal.address}: ${err.message}`);
  });
  try {
    const worker = await createRecoveryWorker({ config, connection, workflows });
    logger.info(
      { taskQueue: config.temporal.taskQueue, namespace: config.temporal.namespace, anchorBaseUrl: config.anchor.baseUrl },
      'Worker started',
    );
    await worker.run();
    logger.info('Worker stopped');
  } finally {
    await connection.close();
  }
}
