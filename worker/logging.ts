import { DefaultLogger, type LogLevel } from '@temporalio/worker';
import { pino, type Logger } from 'pino';

const pinoLevels: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

// Session URLs hand over a live browser: a CDP socket (wss://) or a live view whose token is in the query. A line is
// JSON, so a slash may come escaped (`\/`, `\u002f`, each `\` doubled once more); a URL ends at a quote or a space.
const slash = String.raw`(?:\\*/|\\+u002f)`;
const urlChar = String.raw`(?:[^\s"\\]|\\+(?:/|u002f))`;
const sessionUrl = new RegExp(`wss?:${slash}{2}${urlChar}*|https?:${slash}{2}${urlChar}*?[?&]token=${urlChar}*`, 'gi');

export interface JsonLoggingOptions {
  level?: LogLevel;
  /** Values that must never be written (API keys), wherever they appear: a field, a message, an error's stack. */
  secrets?: string[];
}

/**
 * Removes secrets and session URLs from a line about to be written. The line is JSON, where a secret with a `"`, a `\`
 * or a control character is written escaped: that form goes first, before the bare one could cut it apart.
 */
export function redactLine(line: string, secrets: readonly string[]): string {
  const forms = secrets.flatMap((secret) => [JSON.stringify(secret).slice(1, -1), secret]);
  const withoutSecrets = forms.reduce((text, form) => text.split(form).join('[redacted]'), line);
  return withoutSecrets.replace(sessionUrl, '[redacted-url]');
}

/** A URL as a log line shows it: its user name and password (Basic auth to a proxy before the API) are secrets. */
export function withoutCredentials(url: string): string {
  const parsed = new URL(url);
  if (parsed.username === '' && parsed.password === '') return url;
  parsed.username = '';
  parsed.password = '';
  return parsed.href.replace('://', '://[redacted]@');
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
  return new DefaultLogger(level, (entry) =>
    logger[pinoLevels[entry.level]](describeErrors(entry.meta ?? {}), entry.message),
  );
}

/** Longest failure message written in a log line; the failure itself (in history) keeps the rest. */
export const LOGGED_MESSAGE_MAX_CHARS = 2_000;

interface LoggedError {
  type: string;
  message: string;
  cause?: LoggedError;
}

// Errors from the workflow sandbox come from another realm: `instanceof Error` is false for them.
const isError = (value: unknown): value is Error & { type?: unknown; cause?: unknown } =>
  value instanceof Error || Object.prototype.toString.call(value) === '[object Error]';

/**
 * An error as a log line shows it: JSON has no form for an Error (it writes `{}`), so its type (the
 * failure type of an ApplicationFailure, else the error's name) and message are written, with its causes.
 */
export function describeError(error: Error & { type?: unknown; cause?: unknown }, depth = 0): LoggedError {
  const message = String(error.message);
  const described: LoggedError = {
    type: typeof error.type === 'string' && error.type !== '' ? error.type : String(error.name),
    message: message.length > LOGGED_MESSAGE_MAX_CHARS ? `${message.slice(0, LOGGED_MESSAGE_MAX_CHARS)}…` : message,
  };
  if (isError(error.cause) && depth < 3) described.cause = describeError(error.cause, depth + 1);
  return described;
}

/** Errors in an entry's meta, described; `failureType` (workflows/failure-log-interceptor.ts) names a workflow's failure. */
function describeErrors(meta: Record<string, unknown>): Record<string, unknown> {
  if (!Object.values(meta).some(isError)) return meta;
  const { failureType, ...rest } = meta;
  return Object.fromEntries(
    Object.entries(rest).map(([key, value]) => {
      if (!isError(value)) return [key, value];
      const described = describeError(value);
      return [key, typeof failureType === 'string' ? { ...described, type: failureType } : described];
    }),
  );
}
