import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import type { LogLevel } from '@temporalio/common';
import type { TLSConfig } from '@temporalio/worker';
import { z } from 'zod';
import {
  DEFAULT_TASK_QUEUE,
  isPollerTaskQueue,
  NOTIFICATION_TASK_QUEUE_SUFFIX,
  POLLER_TASK_QUEUE_SUFFIX,
} from '../workflows/definitions.js';
import { InvalidInputError } from '../workflows/input.js';
import type { NotifyConfig } from '../activities/notify-activities.js';
import { NOTIFIABLE_OUTCOMES } from '../workflows/recovery-details.js';

/**
 * A count or a time in milliseconds, in decimal digits: Number() also reads "0x10", "1e3" and "0b11", which nobody
 * means as a count, and the CLI refuses them in its flags too.
 */
const wholeNumber = (rule: z.ZodNumber) =>
  z.string().trim().regex(/^\d+$/, 'expected a whole number in decimal digits').transform(Number).pipe(rule);
/** A rate, in decimal digits with an optional fraction ("2.5"): as for counts, "0x10" and "1e3" are refused. */
const decimalNumber = (rule: z.ZodNumber) =>
  z
    .string()
    .trim()
    .regex(/^(\d+(\.\d*)?|\.\d+)$/, 'expected a number in decimal digits, like 10 or 2.5')
    .transform(Number)
    .pipe(rule);
const positiveInt = (fallback: number) => wholeNumber(z.number().int().positive()).default(fallback);
/** Far more than a workflow's stack is deep: the worker's own frames above it are cut off anyway. */
const MAX_STACK_TRACE_FRAMES = 100;
const STACK_TRACE_FRAMES_RANGE = `expected 1-${MAX_STACK_TRACE_FRAMES}`;
/** Where the worker and the CLI find Temporal when nothing says: a local dev server. */
export const DEFAULT_TEMPORAL_ADDRESS = 'localhost:7233';
export const DEFAULT_NAMESPACE = 'default';
/** One call in 1,000 s: spaced 1,111 s apart, within a Node.js timer (24.8 days) even shared by 1,000 workers. */
const MIN_CALLS_PER_SECOND = 0.001;
/** Worker processes on one task queue: far more than a budget of calls per second is shared among in practice. */
const MAX_WORKERS_SHARING_BUDGET = 1_000;
/** At 322 KiB a cached workflow (docs/scaling.md), about 31 GiB; 1e9 aborts the worker (36 GB reserved at start). */
const MAX_CACHED_WORKFLOWS = 100_000;
/** Node.js timers hold at most 2^31 - 1 ms (about 24.8 days); a longer one fires after 1 ms. */
const MAX_TIMER_MS = 2_147_483_647;
const milliseconds = (fallback: number, min = 1) =>
  wholeNumber(z.number().int().min(min).max(MAX_TIMER_MS)).default(fallback);
/**
 * A call waits for its turn under the budget up to its request timeout, then sends for up to as long again: 2 × 25 s
 * leaves 10 s of the 1 min start-to-close of the reads' activities (awaitBatchSettled, readBatchPage) for the rest of
 * the attempt. An unannounced retry call (3 s turn, 30 s start-to-close) fits too.
 */
export const MAX_REQUEST_TIMEOUT_MS = 25_000;

/**
 * A key sent in a header: a line break at its end (a key read from a secret file) is trimmed; any other space or
 * control character would make every call fail as a network error, not as the key refused, so it is refused here.
 */
const headerKey = (required?: string) =>
  (required === undefined ? z.string() : z.string({ error: required }))
    .trim()
    .regex(/^[\x21-\x7e]+$/, 'expected printable characters without spaces');

/** An http(s) URL without a user name or password; the message, `why` included, does not echo the URL. */
const urlWithoutCredentials = (why: string) =>
  z.url({ protocol: /^https?$/, error: 'expected an http(s) URL' }).refine((url) => {
    // Zod runs this also for a value the URL check refused, which that check has named.
    return !URL.canParse(url) || !hasCredentials(url);
  }, `expected no user name or password in the URL (${why})`);

/** The URL names a user or a password, which every link or log line made of it would show. */
export function hasCredentials(url: string): boolean {
  const { username, password } = new URL(url);
  return username !== '' || password !== '';
}

/**
 * A webhook takes its secret in its path, as Slack's do: a user name or password is refused at start, as an operator's
 * mistake (the worker's HTTP client would send them as a Basic authorization, which a webhook does not ask for).
 */
const webhookUrl = urlWithoutCredentials('send them in its path or query, as Slack does');

export const UI_URL_QUERY_PROBLEM =
  'expected no query or fragment in the URL (each link adds /namespaces/<namespace>/workflows/<id> to it)';

/** A Web UI base URL the links cannot be built on, as the worker's TEMPORAL_UI_URL and the CLI's --ui-url take it. */
export function hasQueryOrFragment(url: string): boolean {
  // A `?` or `#` can only start a query or fragment here: in the path they would be percent-encoded.
  return /[?#]/.test(url);
}

/**
 * The base of the link each notification posts to the webhook's channel: a password in it would be posted with every
 * message, to everyone who reads the channel. A query or fragment is refused too: each link adds its path after the
 * whole value (`…/?x=1/namespaces/…`, a link to the UI's root or nowhere), and the Web UI's routes take none in their
 * base; a query is also where an auth proxy's token would go, which every link would post. The message does not echo
 * the URL, for the same reason.
 */
const uiUrl = urlWithoutCredentials("every notification's link would show them to the webhook's channel").refine(
  (url) => !URL.canParse(url) || !hasQueryOrFragment(url),
  UI_URL_QUERY_PROBLEM,
);

export const HOST_PORT_PROBLEM =
  'expected host:port with a port of 1-65535, e.g. temporal:7233 or ns.acct.tmprl.cloud:7233';

/** A Temporal frontend's address, as the worker's TEMPORAL_ADDRESS and the CLI's --address take it. */
export function isHostPort(value: string): boolean {
  const port = Number(/^(\[[0-9a-fA-F:.]+\]|[^\s:/[\]]+):(\d{1,5})$/.exec(value)?.[2]);
  return port >= 1 && port <= 65_535;
}

const hostPort = z.string().refine(isHostPort, HOST_PORT_PROBLEM);

const errorCode = (err: unknown) => (err as NodeJS.ErrnoException).code ?? String(err);

/** A file the worker must be able to read at start; read once, so a bad path fails the start, not the first connection. */
const pemFile = z.string().transform((file, ctx) => {
  try {
    return { file, contents: readFileSync(file) };
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `cannot read ${file} (${errorCode(err)})` });
    return z.NEVER;
  }
});

/**
 * A directory passes a read check too, then fails at start as a bare "EISDIR" that names neither the variable nor
 * the path, after the worker has connected to Temporal.
 */
const readableFile = z.string().superRefine((file, ctx) => {
  try {
    accessSync(file, constants.R_OK);
  } catch {
    ctx.addIssue({ code: 'custom', message: `cannot read ${file}` });
    return;
  }
  if (statSync(file).isDirectory()) {
    ctx.addIssue({
      code: 'custom',
      message: `${file} is a directory: expected the bundle file (npm run build:bundle)`,
    });
  }
});

const tlsFlag = z.stringbool();

const workerEnvSchema = z.object({
  TEMPORAL_ADDRESS: hostPort.default(DEFAULT_TEMPORAL_ADDRESS),
  /**
   * Names lose the spaces around them (a line break from a secret file, a space after `=`): kept, a worker would poll
   * a queue no client starts recoveries on. The CLI trims its --namespace and --task-queue alike.
   */
  TEMPORAL_NAMESPACE: z.string().trim().default(DEFAULT_NAMESPACE),
  /** Its poller's queue is this name and POLLER_TASK_QUEUE_SUFFIX; a queue that ends so is taken for a poller's. */
  TEMPORAL_TASK_QUEUE: z
    .string()
    .trim()
    .default(DEFAULT_TASK_QUEUE)
    .refine(
      (queue) => !isPollerTaskQueue(queue),
      `must not end in ${POLLER_TASK_QUEUE_SUFFIX}: the batch status poller's queue beside each task queue ends so`,
    ),
  /** Temporal Cloud API key; turns TLS on unless TEMPORAL_TLS=false. */
  TEMPORAL_API_KEY: headerKey().optional(),
  TEMPORAL_TLS: tlsFlag.optional(),
  TEMPORAL_TLS_CERT: pemFile.optional(),
  TEMPORAL_TLS_KEY: pemFile.optional(),
  TEMPORAL_TLS_CA: pemFile.optional(),
  TEMPORAL_TLS_SERVER_NAME: z.string().optional(),
  ANCHOR_BASE_URL: z
    .url({ protocol: /^https?$/, error: 'expected an http(s) URL' })
    .default('https://api.anchorbrowser.io'),
  ANCHOR_API_KEY: headerKey('required: the AnchorBrowser API key'),
  ANCHOR_REQUEST_TIMEOUT_MS: wholeNumber(
    z
      .number()
      .int()
      .min(1)
      .max(
        MAX_REQUEST_TIMEOUT_MS,
        `expected at most ${MAX_REQUEST_TIMEOUT_MS} (a read waits its turn up to its request timeout, then sends: both within the 1 min of its attempt)`,
      ),
  ).default(15_000),
  /**
   * Shared by every worker on the task queue: the server enforces it over 10 s, each worker its share of every second.
   * Below MIN_CALLS_PER_SECOND a worker's calls would be spaced further apart than a Node.js timer holds, and each
   * call waiting its turn would wake every millisecond (with a TimeoutOverflowWarning each time) instead.
   */
  ANCHOR_MAX_CALLS_PER_SECOND: decimalNumber(
    z.number().min(MIN_CALLS_PER_SECOND, `expected at least ${MIN_CALLS_PER_SECOND} (one call in 1,000 s)`),
  ).default(10),
  /**
   * How many workers on the task queue share ANCHOR_MAX_CALLS_PER_SECOND: each sends at most its share in any
   * one second. Fewer than run keeps every 10 s within the budget, not every second: see docs/scaling.md. They pace
   * the webhook by it too, one message in N s each: a count in the millions overflows that timer, which then fires at
   * once.
   */
  ANCHOR_WORKERS_SHARING_BUDGET: wholeNumber(
    z
      .number()
      .int()
      .positive()
      .max(
        MAX_WORKERS_SHARING_BUDGET,
        `expected 1-${MAX_WORKERS_SHARING_BUDGET} (the worker processes on the task queue)`,
      ),
  ).default(1),
  WORKER_MAX_CONCURRENT_ACTIVITIES: positiveInt(20),
  /** At least 2, and at most WORKER_MAX_CACHED_WORKFLOWS: the SDK would raise or lower it with only a warning. */
  WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: wholeNumber(z.number().int().min(2)).default(20),
  /**
   * Workflows kept in memory between their tasks. Recoveries sit idle for minutes between wakes, so
   * evicting them costs a short replay, while each cached one costs memory: see docs/scaling.md.
   */
  WORKER_MAX_CACHED_WORKFLOWS: wholeNumber(
    z
      .number()
      .int()
      .min(2)
      .max(
        MAX_CACHED_WORKFLOWS,
        `expected 2-${MAX_CACHED_WORKFLOWS}: the SDK reserves memory for the whole cache at start, and 1e9 aborts the worker`,
      ),
  ).default(250),
  /**
   * How long one activation may run workflow code before the SDK stops it and fails the task (the SDK's default is
   * 5 s). Ours never loops unbounded, so reaching it means a starved or paused thread, not a runaway: and on Node.js
   * 20 (or 22 without AsyncContextFrame), reaching it inside an async function aborts the whole worker
   * (worker/node-runtime.ts).
   */
  WORKER_ISOLATE_EXECUTION_TIMEOUT_MS: milliseconds(30_000),
  /**
   * Frames kept in each stack trace taken inside workflow code (V8's default is 10). The SDK takes one for every
   * promise a workflow creates, for the Web UI's stack trace view, and pays for each frame: see
   * worker/node-runtime.ts.
   */
  WORKER_WORKFLOW_STACK_TRACE_FRAMES: wholeNumber(
    z.number().int().min(1, STACK_TRACE_FRAMES_RANGE).max(MAX_STACK_TRACE_FRAMES, STACK_TRACE_FRAMES_RANGE),
  ).default(6),
  /** One poller per task queue reads the list endpoint for every waiting recovery: see docs/scaling.md. */
  ANCHOR_BATCH_STATUS_POLLER: z.stringbool().default(true),
  /** Opt-in: the SDK runtime serves Prometheus metrics on this port. */
  METRICS_PORT: wholeNumber(z.number().int().min(1).max(65_535)).optional(),
  /** With METRICS_PORT: how often the anchor_recoveries_past_deadline gauge counts, in milliseconds. */
  PAST_DEADLINE_CHECK_INTERVAL_MS: milliseconds(60_000),
  /** How long past its deadline a running recovery counts: a reconciliation or the end notification may outlive it. */
  PAST_DEADLINE_GRACE_MS: milliseconds(300_000, 0),
  LOG_LEVEL: z
    .string()
    .toUpperCase()
    .pipe(z.enum(['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'] satisfies LogLevel[]))
    .default('INFO'),
  /** A Slack-compatible incoming webhook told when a recovery ends badly; a secret (never logged). */
  NOTIFY_WEBHOOK_URL: webhookUrl.optional(),
  /** Which ends are posted, comma-separated. */
  NOTIFY_OUTCOMES: z
    .string()
    .transform((value) => value.split(',').map((outcome) => outcome.trim()))
    .pipe(z.array(z.enum(NOTIFIABLE_OUTCOMES)).min(1))
    .default(['exhausted', 'deadline', 'failed']),
  /** The Temporal Web UI, for the notification's link to the recovery. */
  TEMPORAL_UI_URL: uiUrl.optional(),
  /** A bundle from `npm run build:bundle`; without it the worker bundles the workflows at start. */
  WORKFLOW_BUNDLE_PATH: readableFile.optional(),
});

/** Every variable the worker reads: the compose file passes each one on (test/deployment/compose.test.ts). */
export const WORKER_ENV_VARIABLES = Object.keys(workerEnvSchema.shape);

/** The variables that say how to reach Temporal: the worker and the CLI read the same ones. */
const temporalEnvSchema = workerEnvSchema.pick({
  TEMPORAL_ADDRESS: true,
  TEMPORAL_NAMESPACE: true,
  TEMPORAL_API_KEY: true,
  TEMPORAL_TLS: true,
  TEMPORAL_TLS_CERT: true,
  TEMPORAL_TLS_KEY: true,
  TEMPORAL_TLS_CA: true,
  TEMPORAL_TLS_SERVER_NAME: true,
});
type TemporalEnv = z.output<typeof temporalEnvSchema>;

export interface TemporalConnectionConfig {
  address: string;
  namespace: string;
  /**
   * Absent: plaintext (a local server or the compose stack); false: plaintext also with an API key, with which the SDK
   * turns TLS on when it is absent.
   */
  tls?: TLSConfig | false;
  apiKey?: string;
}

export interface WorkerConfig {
  temporal: TemporalConnectionConfig & { taskQueue: string };
  anchor: { baseUrl: string; apiKey: string; timeoutMs: number };
  limits: {
    maxCallsPerSecond: number;
    /** Workers on the task queue sharing maxCallsPerSecond; absent: 1. */
    workersSharingBudget?: number;
    maxConcurrentActivities: number;
    maxConcurrentWorkflowTasks: number;
    /** Absent: the SDK's default, sized from the machine's memory. */
    maxCachedWorkflows?: number;
    /** Absent: the SDK's default (5 s). */
    isolateExecutionTimeoutMs?: number;
    /** Absent: V8's default (10), or what an earlier worker in the process set. */
    workflowStackTraceFrames?: number;
  };
  /**
   * true: start the task queue's batch status poller and keep it running. false: its recoveries register with no
   * poller and poll their batches on their own. Absent (in-process workers, tests): it starts none, and its recoveries
   * register with one that runs.
   */
  batchStatusPoller?: boolean;
  /** Read by the worker process only; in-process workers (tests) leave it out. */
  observability?: { logLevel: LogLevel; metricsPort?: number; pastDeadline?: { intervalMs: number; graceMs: number } };
  workflowBundlePath?: string;
  /** Absent: recovery ends are not posted anywhere. */
  notify?: NotifyConfig;
}

const isTemporalCloud = (address: string) => /\.tmprl\.cloud:\d+$/.test(address);

/**
 * Rules that span several of the variables saying how to reach Temporal; checked on the raw values so they are
 * reported alongside the per-variable ones.
 */
function temporalCrossVariableProblems(env: Record<string, string>): string[] {
  const problems: string[] = [];
  const { TEMPORAL_TLS_CERT: cert, TEMPORAL_TLS_KEY: key, TEMPORAL_ADDRESS: address = '' } = env;
  if (cert && !key)
    problems.push('TEMPORAL_TLS_KEY: required with TEMPORAL_TLS_CERT (the client certificate needs its key)');
  if (key && !cert)
    problems.push('TEMPORAL_TLS_CERT: required with TEMPORAL_TLS_KEY (the key needs its client certificate)');
  const tlsFiles = ['TEMPORAL_TLS_CERT', 'TEMPORAL_TLS_CA', 'TEMPORAL_TLS_SERVER_NAME'].filter((name) => env[name]);
  if (tlsFlag.safeParse(env.TEMPORAL_TLS).data === false && tlsFiles.length > 0) {
    problems.push(`TEMPORAL_TLS: is false, but ${tlsFiles.join(', ')} ${tlsFiles.length > 1 ? 'are' : 'is'} set`);
  }
  if (isTemporalCloud(address)) {
    if (!env.TEMPORAL_API_KEY && !cert) {
      problems.push('TEMPORAL_API_KEY: Temporal Cloud needs an API key, or TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY');
    }
    if (!/^[\w-]+\.[\w-]+$/.test(env.TEMPORAL_NAMESPACE?.trim() ?? '')) {
      problems.push('TEMPORAL_NAMESPACE: a Temporal Cloud namespace looks like <namespace>.<account>');
    }
  }
  return problems;
}

/**
 * The worker's rules across variables: those of the connection, and of the settings only the worker reads, which the
 * CLI, sharing the environment, does not check (a conflict among them does not stop `batch-recovery report`).
 */
function workerCrossVariableProblems(env: Record<string, string>): string[] {
  const problems = temporalCrossVariableProblems(env);
  const budget = workerEnvSchema.shape.ANCHOR_MAX_CALLS_PER_SECOND.safeParse(env.ANCHOR_MAX_CALLS_PER_SECOND).data;
  const sharing = workerEnvSchema.shape.ANCHOR_WORKERS_SHARING_BUDGET.safeParse(env.ANCHOR_WORKERS_SHARING_BUDGET).data;
  if (budget !== undefined && sharing !== undefined && sharing > 1 && sharing > budget) {
    problems.push(
      `ANCHOR_WORKERS_SHARING_BUDGET: ${sharing} workers cannot share ANCHOR_MAX_CALLS_PER_SECOND=${budget}: each needs at least one call a second`,
    );
  }
  const tasks = workerEnvSchema.shape.WORKER_MAX_CONCURRENT_WORKFLOW_TASKS.safeParse(
    env.WORKER_MAX_CONCURRENT_WORKFLOW_TASKS,
  ).data;
  const cached = workerEnvSchema.shape.WORKER_MAX_CACHED_WORKFLOWS.safeParse(env.WORKER_MAX_CACHED_WORKFLOWS).data;
  if (tasks !== undefined && cached !== undefined && tasks > cached) {
    problems.push(
      `WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: ${tasks} is more than WORKER_MAX_CACHED_WORKFLOWS=${cached}: a workflow task needs its workflow in the cache`,
    );
  }
  return problems;
}

function tlsConfig(e: TemporalEnv): TLSConfig | false | undefined {
  if (e.TEMPORAL_TLS === false) return false;
  const wanted =
    e.TEMPORAL_TLS ??
    Boolean(e.TEMPORAL_API_KEY || e.TEMPORAL_TLS_CERT || e.TEMPORAL_TLS_CA || e.TEMPORAL_TLS_SERVER_NAME);
  if (!wanted) return undefined;
  return {
    ...(e.TEMPORAL_TLS_CERT && e.TEMPORAL_TLS_KEY
      ? { clientCertPair: { crt: e.TEMPORAL_TLS_CERT.contents, key: e.TEMPORAL_TLS_KEY.contents } }
      : {}),
    ...(e.TEMPORAL_TLS_CA ? { serverRootCACertificate: e.TEMPORAL_TLS_CA.contents } : {}),
    ...(e.TEMPORAL_TLS_SERVER_NAME ? { serverNameOverride: e.TEMPORAL_TLS_SERVER_NAME } : {}),
  };
}

/** One line per problem, each starting with the variable's name, so an operator knows what to fix. */
function describeIssues(error: z.ZodError): string[] {
  return error.issues.map(
    (issue) => `${issue.path.length ? issue.path.map(String).join('.') : '(input)'}: ${issue.message}`,
  );
}

/** Empty variables count as unset, as compose passes `${VAR:-}` through as an empty string. */
function setVariables(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(
    Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined && entry[1].trim() !== ''),
  );
}

/**
 * Validates `env` with `schema`, reporting every problem, per variable and across variables (`crossProblems`, the
 * rules of the variables the schema reads), at once.
 */
function parseEnv<T extends z.ZodType>(
  schema: T,
  crossProblems: (env: Record<string, string>) => string[],
  env: NodeJS.ProcessEnv,
  what: string,
): z.output<T> {
  const set = setVariables(env);
  const result = schema.safeParse(set);
  const problems = [...(result.success ? [] : describeIssues(result.error)), ...crossProblems(set)];
  if (!result.success || problems.length > 0) throw new InvalidInputError(problems, what);
  return result.data;
}

function temporalConnection(e: TemporalEnv): TemporalConnectionConfig {
  const tls = tlsConfig(e);
  return {
    address: e.TEMPORAL_ADDRESS,
    namespace: e.TEMPORAL_NAMESPACE,
    ...(tls !== undefined ? { tls } : {}),
    ...(e.TEMPORAL_API_KEY ? { apiKey: e.TEMPORAL_API_KEY } : {}),
  };
}

/** How to reach Temporal (address, namespace, TLS, Cloud API key), for the CLI and other clients. */
export function loadTemporalConnectionConfig(env: NodeJS.ProcessEnv = process.env): TemporalConnectionConfig {
  return temporalConnection(
    parseEnv(temporalEnvSchema, temporalCrossVariableProblems, env, 'Temporal connection configuration'),
  );
}

/**
 * Why a task queue named so may take another deployment's work, if it may: the notifications' queue beside each task
 * queue ends in NOTIFICATION_TASK_QUEUE_SUFFIX, so a deployment on `acme-notifications` beside one on `acme` in the
 * same namespace takes that one's notifications (posting them to its own webhook), and that one's workers take its
 * Anchor tasks, which they cannot run. Warned of, not refused: a deployment already running on such a queue has
 * recoveries that no other queue's workers can take.
 */
export function taskQueueCollisionWarning(taskQueue: string): string | undefined {
  if (!taskQueue.endsWith(NOTIFICATION_TASK_QUEUE_SUFFIX)) return undefined;
  const other = taskQueue.slice(0, -NOTIFICATION_TASK_QUEUE_SUFFIX.length);
  return (
    `TEMPORAL_TASK_QUEUE=${taskQueue} is also the notifications' queue of a deployment on ${other}: if one runs in ` +
    `this namespace, each takes the other's tasks. Move new deployments to a queue not ending in ` +
    `${NOTIFICATION_TASK_QUEUE_SUFFIX}`
  );
}

/** Reads the worker's configuration from the environment, reporting every problem at once. */
export function loadWorkerConfig(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const e = parseEnv(workerEnvSchema, workerCrossVariableProblems, env, 'worker configuration');
  return {
    temporal: { ...temporalConnection(e), taskQueue: e.TEMPORAL_TASK_QUEUE },
    anchor: { baseUrl: e.ANCHOR_BASE_URL, apiKey: e.ANCHOR_API_KEY, timeoutMs: e.ANCHOR_REQUEST_TIMEOUT_MS },
    limits: {
      maxCallsPerSecond: e.ANCHOR_MAX_CALLS_PER_SECOND,
      workersSharingBudget: e.ANCHOR_WORKERS_SHARING_BUDGET,
      maxConcurrentActivities: e.WORKER_MAX_CONCURRENT_ACTIVITIES,
      maxConcurrentWorkflowTasks: e.WORKER_MAX_CONCURRENT_WORKFLOW_TASKS,
      maxCachedWorkflows: e.WORKER_MAX_CACHED_WORKFLOWS,
      isolateExecutionTimeoutMs: e.WORKER_ISOLATE_EXECUTION_TIMEOUT_MS,
      workflowStackTraceFrames: e.WORKER_WORKFLOW_STACK_TRACE_FRAMES,
    },
    batchStatusPoller: e.ANCHOR_BATCH_STATUS_POLLER,
    observability: {
      logLevel: e.LOG_LEVEL,
      ...(e.METRICS_PORT && {
        metricsPort: e.METRICS_PORT,
        pastDeadline: { intervalMs: e.PAST_DEADLINE_CHECK_INTERVAL_MS, graceMs: e.PAST_DEADLINE_GRACE_MS },
      }),
    },
    ...(e.WORKFLOW_BUNDLE_PATH ? { workflowBundlePath: e.WORKFLOW_BUNDLE_PATH } : {}),
    ...(e.NOTIFY_WEBHOOK_URL && {
      notify: {
        webhookUrl: e.NOTIFY_WEBHOOK_URL,
        outcomes: e.NOTIFY_OUTCOMES,
        ...(e.TEMPORAL_UI_URL && { uiUrl: e.TEMPORAL_UI_URL }),
      },
    }),
  };
}
