import { DefaultLogger, Runtime, type LogLevel } from '@temporalio/worker';
import { pino, type Logger } from 'pino';

const pinoLevels: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

/**
 * JSON logs on stdout for the worker and the SDK alike. The SDK adds
 * workflowId, activityType and friends to each entry's meta; the product's own
 * entries carry batchId.
 */
export function installJsonLogging(level: LogLevel = 'INFO'): Logger {
  const logger = pino({ level: pinoLevels[level], base: { service: 'anchor-batch-recovery' } });
  Runtime.install({
    logger: new DefaultLogger(level, (entry) => logger[pinoLevels[entry.level]](entry.meta ?? {}, entry.message)),
  });
  return logger;
}
