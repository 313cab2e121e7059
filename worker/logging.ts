import { DefaultLogger, type LogLevel } from '@temporalio/worker';
import { pino, type Logger } from 'pino';

const pinoLevels: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

// Session URLs hand over a live browser: a CDP socket (wss://) or a live view whose token is in the query.
const sessionUrl = /wss?:\/\/[^\s"\\]*|https?:\/\/[^\s"\\]*[?&]token=[^\s"\\]*/g;

export interface JsonLoggingOptions {
  level?: LogLevel;
  /** Values that must never be written (API keys), wherever they appear: a field, a message, an error's stack. */
  secrets?: string[];
}

/** Removes secrets and session URLs from a line about to be written. */
export function redactLine(line: string, secrets: readonly string[]): string {
  const withoutSecrets = secrets.reduce((text, secret) => text.split(secret).join('[redacted]'), line);
  return withoutSecrets.replace(sessionUrl, '[redacted-url]');
}

/** JSON lines on stdout. Redaction runs on the serialised line, so no field or nesting can slip past it. */
export function createJsonLogger({ level = 'INFO', secrets = [] }: JsonLoggingOptions = {}): Logger {
  const nonEmptySecrets = secrets.filter((secret) => secret !== '');
  return pino({
    level: pinoLevels[level],
    base: { service: 'anchor-batch-recovery' },
    hooks: { streamWrite: (line) => redactLine(line, nonEmptySecrets) },
  });
}

/**
 * The SDK's logger, writing through pino. The SDK puts workflowId, runId,
 * activityType and friends in each entry's meta; the product's own entries
 * add batchId.
 */
export function sdkLoggerFor(logger: Logger, level: LogLevel = 'INFO'): DefaultLogger {
  return new DefaultLogger(level, (entry) => logger[pinoLevels[entry.level]](entry.meta ?? {}, entry.message));
}
