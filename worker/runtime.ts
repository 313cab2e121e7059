import { Runtime, type LogLevel } from '@temporalio/worker';
import type { Logger } from 'pino';
import { createJsonLogger, sdkLoggerFor } from './logging.js';

/**
 * The gauge's name on /metrics: when the worker process started, in Unix seconds. deploy/prometheus/alerts.yml takes a
 * series with no sample a window ago as new only for a worker that started within the window or was scraped then, so
 * that a gap in the scrapes does not fire the whole running totals again.
 */
export const WORKER_START_TIME_METRIC = 'anchor_worker_start_time_seconds';

export interface WorkerRuntimeOptions {
  logLevel?: LogLevel;
  /** Kept out of every log line. */
  secrets?: string[];
  /** Serve Prometheus metrics on this port (all interfaces, so a scraper in another container reaches it). */
  metricsPort?: number;
}

/**
 * Installs the SDK runtime once per process: its logs go through the JSON
 * logger, and its metrics (the SDK's own and the product's, which activities
 * and workflows emit through the SDK's metric meter) to Prometheus when asked.
 */
export function installWorkerRuntime({ logLevel = 'INFO', secrets, metricsPort }: WorkerRuntimeOptions = {}): Logger {
  const logger = createJsonLogger({ level: logLevel, secrets });
  try {
    Runtime.install({
      logger: sdkLoggerFor(logger, logLevel),
      ...(metricsPort === undefined
        ? {}
        : { telemetryOptions: { metrics: { prometheus: { bindAddress: `0.0.0.0:${metricsPort}` } } } }),
    });
  } catch (err) {
    // The SDK's message names neither the variable nor the port ("Address already in use (os error 98)").
    if (metricsPort === undefined) throw err;
    throw new Error(`METRICS_PORT: cannot serve metrics on port ${metricsPort}: ${(err as Error).message}`);
  }
  if (metricsPort !== undefined) {
    // Whole seconds: the SDK's int gauge is a u64, and the alerts' windows are minutes.
    Runtime.instance()
      .metricMeter.createGauge(
        WORKER_START_TIME_METRIC,
        'int',
        'seconds',
        'When the worker process started, in Unix seconds',
      )
      .set(Math.floor(performance.timeOrigin / 1000));
  }
  return logger;
}
