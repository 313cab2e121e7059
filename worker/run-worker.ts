import { Client } from '@temporalio/client';
import { NativeConnection, Runtime } from '@temporalio/worker';
import { batchStatusPollerTaskQueue, notificationTaskQueue } from '../workflows/definitions.js';
import { loadWorkerConfig, taskQueueCollisionWarning, type WorkerConfig } from './config.js';
import { createRecoveryWorkers, type WorkflowSource } from './create-worker.js';
import {
  PAST_DEADLINE_COUNTED_AT_METRIC,
  PAST_DEADLINE_METRIC,
  startPastDeadlineGauge,
  type RunningGauge,
} from './past-deadline-gauge.js';
import { withoutCredentials } from './logging.js';
import { installWorkerRuntime } from './runtime.js';
import { TemporalUnreachableError } from './temporal-unreachable.js';

/** The gauge's name on /metrics: the Anchor budget, ANCHOR_MAX_CALLS_PER_SECOND, its workers share. */
export const CALLS_PER_SECOND_BUDGET_METRIC = 'anchor_calls_per_second_budget';

/** The prebuilt bundle the image ships (WORKFLOW_BUNDLE_PATH); else bundle at start. */
function workflowSource(config: WorkerConfig): WorkflowSource | undefined {
  return config.workflowBundlePath ? { workflowBundle: { codePath: config.workflowBundlePath } } : undefined;
}

export interface RunWorkerOptions {
  /** Called once the worker polls its task queue. */
  onPolling?: () => void;
}

/** How the native connection describes gRPC's UNAUTHENTICATED and PERMISSION_DENIED (tonic's `Code` descriptions). */
const REFUSED_CREDENTIALS =
  /The request does not have valid authentication credentials|The caller does not have permission to execute/;

/**
 * Runs the worker until SIGINT/SIGTERM. The SDK then stops polling and gives
 * in-flight activities the grace time to finish; what does not finish is
 * handed back to the server and retried elsewhere.
 */
export async function runWorker(
  env: NodeJS.ProcessEnv = process.env,
  { onPolling }: RunWorkerOptions = {},
): Promise<void> {
  const config = loadWorkerConfig(env);
  const logger = installWorkerRuntime({
    logLevel: config.observability?.logLevel,
    metricsPort: config.observability?.metricsPort,
    secrets: [config.anchor.apiKey, config.temporal.apiKey ?? '', config.notify?.webhookUrl ?? ''],
  });
  const { address, namespace, taskQueue, tls, apiKey } = config.temporal;
  const connection = await NativeConnection.connect({ address, tls, apiKey }).catch((err: Error) => {
    // A refused key or certificate is no outage (exit 1, as for the CLI's commands), where 7 is what a supervisor may
    // wait out. The native error carries no gRPC code, only the words of the Rust gRPC library for it.
    if (REFUSED_CREDENTIALS.test(err.message))
      throw new Error(`Temporal at ${address} refused this worker's credentials: ${err.message}`, { cause: err });
    throw new TemporalUnreachableError(address, err);
  });
  let pastDeadlineGauge: RunningGauge | undefined;
  try {
    const source = workflowSource(config);
    const workers = await createRecoveryWorkers({ config, connection, workflows: source });
    logger.info(
      {
        taskQueue,
        notificationTaskQueue: notificationTaskQueue(taskQueue),
        batchStatusPollerTaskQueue: batchStatusPollerTaskQueue(taskQueue),
        namespace,
        temporalAddress: address,
        tls: Boolean(tls),
        anchorBaseUrl: withoutCredentials(config.anchor.baseUrl),
        workflowBundle: config.workflowBundlePath ?? null,
        metricsPort: config.observability?.metricsPort ?? null,
      },
      'Worker started',
    );
    const collision = taskQueueCollisionWarning(taskQueue);
    if (collision) logger.warn({ taskQueue }, collision);
    const pastDeadline = config.observability?.pastDeadline;
    if (config.observability?.metricsPort) {
      // Beside anchor_workers_sharing_budget, for AnchorBudgetSharedByTooManyWorkers: more workers than its whole
      // calls a second can send more than it in one second.
      Runtime.instance()
        .metricMeter.createGauge(
          CALLS_PER_SECOND_BUDGET_METRIC,
          'float',
          'calls',
          'ANCHOR_MAX_CALLS_PER_SECOND: the Anchor calls a second all workers on the task queue share',
        )
        .set(config.limits.maxCallsPerSecond, { taskQueue });
    }
    if (pastDeadline) {
      const { metricMeter } = Runtime.instance();
      pastDeadlineGauge = startPastDeadlineGauge({
        client: new Client({ connection, namespace }),
        gauge: metricMeter.createGauge(
          PAST_DEADLINE_METRIC,
          'int',
          'recoveries',
          'Recoveries still running past their deadline (and its grace)',
        ),
        // Whole seconds: the alert's threshold is minutes, and the SDK's int gauge is a u64.
        countedAtGauge: metricMeter.createGauge(
          PAST_DEADLINE_COUNTED_AT_METRIC,
          'int',
          'seconds',
          'When the count of recoveries past their deadline last succeeded, in Unix seconds (0: not yet)',
        ),
        logger,
        ...pastDeadline,
      });
    }
    // run() has started every worker's poll loops by the time it returns its promise.
    const running = workers.run();
    onPolling?.();
    await running;
    logger.info('Worker stopped');
  } finally {
    pastDeadlineGauge?.stop();
    // After a start that failed with a worker created, that worker still holds the connection: closing it fails, and
    // must not hide why the start failed.
    await connection
      .close()
      .catch((err: Error) => logger.warn({ error: err.message }, 'Temporal connection not closed'));
  }
}
