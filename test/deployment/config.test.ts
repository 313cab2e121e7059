import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadTemporalConnectionConfig, loadWorkerConfig, taskQueueCollisionWarning } from '../../worker/config.js';
import { callSpacingOfShare } from '../../worker/create-worker.js';
import { redactLine } from '../../worker/logging.js';
import { InvalidInputError } from '../../workflows/input.js';
import { startSimulator } from '../../simulator/index.js';
import { uniqueTaskQueue } from '../helpers/temporal.js';
import { spawnWorkerProcess, WORKER_STARTED } from './worker-process.js';

let dir: string;
let certFile: string;
let keyFile: string;
let caFile: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'worker-config-'));
  [certFile, keyFile, caFile] = ['client.pem', 'client.key', 'ca.pem'].map((name) => {
    const file = path.join(dir, name);
    writeFileSync(file, `-----BEGIN ${name}-----\n`);
    return file;
  }) as [string, string, string];
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const minimal = { ANCHOR_API_KEY: 'anchor-key' };

function problemsOf(env: NodeJS.ProcessEnv): string[] {
  try {
    loadWorkerConfig(env);
  } catch (err) {
    if (err instanceof InvalidInputError) return err.problems;
    throw err;
  }
  throw new Error('expected the configuration to be rejected');
}

test('defaults give a plaintext connection to a local server and keep the existing WorkerConfig shape', () => {
  expect(loadWorkerConfig(minimal)).toEqual({
    temporal: { address: 'localhost:7233', namespace: 'default', taskQueue: 'anchor-batch-recovery' },
    anchor: { baseUrl: 'https://api.anchorbrowser.io', apiKey: 'anchor-key', timeoutMs: 15_000 },
    limits: {
      maxCallsPerSecond: 10,
      workersSharingBudget: 1,
      maxConcurrentActivities: 20,
      maxConcurrentWorkflowTasks: 20,
      maxCachedWorkflows: 250,
      isolateExecutionTimeoutMs: 30_000,
      workflowStackTraceFrames: 6,
    },
    batchStatusPoller: true,
    observability: { logLevel: 'INFO' },
  });
});

test('the batch status poller can be turned off and the workflow cache sized', () => {
  const config = loadWorkerConfig({
    ...minimal,
    ANCHOR_BATCH_STATUS_POLLER: 'false',
    WORKER_MAX_CACHED_WORKFLOWS: '100',
  });
  expect(config.batchStatusPoller).toBe(false);
  expect(config.limits.maxCachedWorkflows).toBe(100);
  expect(problemsOf({ ...minimal, WORKER_MAX_CACHED_WORKFLOWS: '0' })).toEqual([
    expect.stringMatching(/^WORKER_MAX_CACHED_WORKFLOWS: /),
  ]);
});

test('workers sharing the call budget each need at least one call a second', () => {
  const config = loadWorkerConfig({
    ...minimal,
    ANCHOR_MAX_CALLS_PER_SECOND: '40',
    ANCHOR_WORKERS_SHARING_BUDGET: '3',
  });
  expect(config.limits).toMatchObject({ maxCallsPerSecond: 40, workersSharingBudget: 3 });
  expect(problemsOf({ ...minimal, ANCHOR_MAX_CALLS_PER_SECOND: '2', ANCHOR_WORKERS_SHARING_BUDGET: '3' })).toEqual([
    'ANCHOR_WORKERS_SHARING_BUDGET: 3 workers cannot share ANCHOR_MAX_CALLS_PER_SECOND=2: each needs at least one call a second',
  ]);
  expect(problemsOf({ ...minimal, ANCHOR_WORKERS_SHARING_BUDGET: '0' })).toEqual([
    expect.stringMatching(/^ANCHOR_WORKERS_SHARING_BUDGET: /),
  ]);
  // One worker may have a budget below one call a second: it sends one call per 1 / budget seconds.
  expect(loadWorkerConfig({ ...minimal, ANCHOR_MAX_CALLS_PER_SECOND: '0.5' }).limits.maxCallsPerSecond).toBe(0.5);
});

// The CLI reads the worker's environment too (a shared .env, the compose service): a conflict among settings only the
// worker reads stopped every CLI command with "Invalid Temporal connection configuration".
test("the CLI's connection ignores conflicts among worker-only settings, and still refuses the connection's own", () => {
  const workerOnlyConflicts = {
    ...minimal,
    ANCHOR_MAX_CALLS_PER_SECOND: '2',
    ANCHOR_WORKERS_SHARING_BUDGET: '3',
    WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: '100',
    WORKER_MAX_CACHED_WORKFLOWS: '50',
  };

  expect(loadTemporalConnectionConfig(workerOnlyConflicts)).toEqual({
    address: 'localhost:7233',
    namespace: 'default',
  });
  expect(problemsOf(workerOnlyConflicts)).toEqual([
    expect.stringMatching(/^ANCHOR_WORKERS_SHARING_BUDGET: /),
    expect.stringMatching(/^WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: /),
  ]);
  let refused: unknown;
  try {
    loadTemporalConnectionConfig({ ...workerOnlyConflicts, TEMPORAL_TLS_KEY: keyFile });
  } catch (err) {
    refused = err;
  }
  expect(refused).toBeInstanceOf(InvalidInputError);
  expect((refused as InvalidInputError).problems).toEqual([
    'TEMPORAL_TLS_CERT: required with TEMPORAL_TLS_KEY (the key needs its client certificate)',
  ]);
});

test("a worker sends its share's whole calls evenly spaced, at 0.9 of their rate", () => {
  const spacing = (budget: string, workers: string) =>
    Math.round(
      callSpacingOfShare(
        loadWorkerConfig({ ...minimal, ANCHOR_MAX_CALLS_PER_SECOND: budget, ANCHOR_WORKERS_SHARING_BUDGET: workers })
          .limits,
      ),
    );
  expect(spacing('10', '1')).toBe(111);
  expect(spacing('40', '3')).toBe(85);
  expect(spacing('10', '4')).toBe(556);
  expect(spacing('1.5', '1')).toBe(1111);
  expect(spacing('0.5', '1')).toBe(2222);
});

test('every problem is listed at once, each naming its variable', () => {
  const problems = problemsOf({
    TEMPORAL_ADDRESS: 'temporal',
    TEMPORAL_TLS_CERT: certFile,
    TEMPORAL_TLS_CA: path.join(dir, 'missing-ca.pem'),
    ANCHOR_BASE_URL: 'not a url',
    METRICS_PORT: '70000',
    LOG_LEVEL: 'loud',
  });
  expect(problems).toEqual([
    expect.stringMatching(/^TEMPORAL_ADDRESS: expected host:port/),
    expect.stringMatching(/^TEMPORAL_TLS_CA: cannot read .*missing-ca\.pem \(ENOENT\)$/),
    'ANCHOR_BASE_URL: expected an http(s) URL',
    'ANCHOR_API_KEY: required: the AnchorBrowser API key',
    expect.stringMatching(/^METRICS_PORT: /),
    expect.stringMatching(/^LOG_LEVEL: /),
    expect.stringMatching(/^TEMPORAL_TLS_KEY: required with TEMPORAL_TLS_CERT/),
  ]);
});

test('a TLS key without its certificate is rejected', () => {
  expect(problemsOf({ ...minimal, TEMPORAL_TLS_KEY: keyFile })).toEqual([
    expect.stringMatching(/^TEMPORAL_TLS_CERT: required with TEMPORAL_TLS_KEY/),
  ]);
});

test('a missing or blank Anchor API key is rejected (compose passes unset variables as empty strings)', () => {
  expect(problemsOf({})).toEqual(['ANCHOR_API_KEY: required: the AnchorBrowser API key']);
  expect(problemsOf({ ANCHOR_API_KEY: '  ' })).toEqual(['ANCHOR_API_KEY: required: the AnchorBrowser API key']);
});

test('an Anchor base URL that is not http(s) is rejected', () => {
  expect(problemsOf({ ...minimal, ANCHOR_BASE_URL: 'ftp://api.anchorbrowser.io' })).toEqual([
    'ANCHOR_BASE_URL: expected an http(s) URL',
  ]);
});

test('mTLS to a self-hosted server reads the certificate, key and CA at start', () => {
  const config = loadWorkerConfig({
    ...minimal,
    TEMPORAL_ADDRESS: 'temporal.internal:7233',
    TEMPORAL_TLS_CERT: certFile,
    TEMPORAL_TLS_KEY: keyFile,
    TEMPORAL_TLS_CA: caFile,
    TEMPORAL_TLS_SERVER_NAME: 'temporal.internal',
  });
  expect(config.temporal.tls).toEqual({
    clientCertPair: {
      crt: Buffer.from('-----BEGIN client.pem-----\n'),
      key: Buffer.from('-----BEGIN client.key-----\n'),
    },
    serverRootCACertificate: Buffer.from('-----BEGIN ca.pem-----\n'),
    serverNameOverride: 'temporal.internal',
  });
  expect(config.temporal.apiKey).toBeUndefined();
});

test('Temporal Cloud with an API key connects over TLS; without credentials or with a bare namespace it is rejected', () => {
  const cloud = {
    ...minimal,
    TEMPORAL_ADDRESS: 'recovery.a1b2c.tmprl.cloud:7233',
    TEMPORAL_NAMESPACE: 'recovery.a1b2c',
  };
  const config = loadWorkerConfig({ ...cloud, TEMPORAL_API_KEY: 'cloud-key' });
  expect(config.temporal).toMatchObject({ apiKey: 'cloud-key', tls: {}, namespace: 'recovery.a1b2c' });

  expect(problemsOf({ ...cloud, TEMPORAL_NAMESPACE: 'default' })).toEqual([
    expect.stringMatching(
      /^TEMPORAL_API_KEY: Temporal Cloud needs an API key, or TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY/,
    ),
    'TEMPORAL_NAMESPACE: a Temporal Cloud namespace looks like <namespace>.<account>',
  ]);
});

test('TEMPORAL_TLS=false contradicting TLS files is rejected', () => {
  expect(problemsOf({ ...minimal, TEMPORAL_TLS: 'false', TEMPORAL_TLS_CA: caFile })).toEqual([
    'TEMPORAL_TLS: is false, but TEMPORAL_TLS_CA is set',
  ]);
});

test('TEMPORAL_TLS=false keeps a connection with an API key in plaintext: the worker process starts against a plaintext server', async () => {
  expect(loadWorkerConfig({ ...minimal, TEMPORAL_API_KEY: 'proxy-key', TEMPORAL_TLS: 'false' }).temporal).toMatchObject(
    { apiKey: 'proxy-key', tls: false },
  );
  // The SDK turns TLS on for an API key unless told not to: before, this worker failed to connect and exited 1.
  const simulator = await startSimulator({ apiKeys: ['anchor-key'] });
  const worker = await spawnWorkerProcess({
    TEMPORAL_TASK_QUEUE: uniqueTaskQueue('plaintext-api-key'),
    ANCHOR_BASE_URL: simulator.url,
    ANCHOR_API_KEY: 'anchor-key',
    ANCHOR_BATCH_STATUS_POLLER: 'false',
    WORKFLOW_BUNDLE_PATH: process.env.TEST_WORKFLOW_BUNDLE,
    TEMPORAL_API_KEY: 'proxy-key',
    TEMPORAL_TLS: 'false',
  });
  try {
    const started = await Promise.race([
      worker.waitForOutput(WORKER_STARTED, 30_000).then(() => true),
      worker.closed.then(() => worker.stderr()),
    ]);
    expect(started).toBe(true);
  } finally {
    worker.child.kill('SIGTERM');
    await worker.closed;
    await simulator.close();
  }
});

test('a user name and password in ANCHOR_BASE_URL (a proxy taking Basic auth) are kept out of the log', async () => {
  const simulator = await startSimulator({ apiKeys: ['anchor-key'] });
  const withCredentials = simulator.url.replace('://', '://proxy-user:proxy-password@');
  const worker = await spawnWorkerProcess({
    TEMPORAL_TASK_QUEUE: uniqueTaskQueue('base-url-credentials'),
    ANCHOR_BASE_URL: withCredentials,
    ANCHOR_API_KEY: 'anchor-key',
    ANCHOR_BATCH_STATUS_POLLER: 'false',
    WORKFLOW_BUNDLE_PATH: process.env.TEST_WORKFLOW_BUNDLE,
  });
  try {
    await worker.waitForOutput(WORKER_STARTED);
  } finally {
    worker.child.kill('SIGTERM');
    await worker.closed;
    await simulator.close();
  }
  const started = worker.logEntries().filter((entry) => entry.msg === 'Worker started');
  expect(started.map((entry) => entry.anchorBaseUrl)).toEqual([
    simulator.url.replace('://', '://[redacted]@').replace(/\/?$/, '/'),
  ]);
  expect(worker.stdout() + worker.stderr()).not.toMatch(/proxy-user|proxy-password/);
});

test('a metrics port already in use stops the worker process with an error naming METRICS_PORT', async () => {
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '0.0.0.0', resolve));
  const { port } = taken.address() as AddressInfo;
  try {
    const worker = await spawnWorkerProcess({ ...minimal, METRICS_PORT: String(port) });
    const { code } = await worker.closed;
    expect(code).toBe(1);
    expect(worker.stderr()).toContain(`METRICS_PORT: cannot serve metrics on port ${port}: `);
  } finally {
    taken.close();
  }
});

test('workflow cache and task settings the SDK would change with only a warning are refused, naming the variable', () => {
  expect(
    problemsOf({ ...minimal, WORKER_MAX_CACHED_WORKFLOWS: '1', WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: '1' }),
  ).toEqual([
    expect.stringMatching(/^WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: Too small: expected number to be >=2/),
    expect.stringMatching(/^WORKER_MAX_CACHED_WORKFLOWS: Too small: expected number to be >=2/),
  ]);
  expect(
    problemsOf({ ...minimal, WORKER_MAX_CACHED_WORKFLOWS: '10', WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: '20' }),
  ).toEqual([
    'WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: 20 is more than WORKER_MAX_CACHED_WORKFLOWS=10: a workflow task needs its workflow in the cache',
  ]);
});

test('API keys lose a line break at their end (a secret file); spaces or control characters inside are refused', () => {
  const config = loadWorkerConfig({ ANCHOR_API_KEY: 'anchor-key\n', TEMPORAL_API_KEY: ' cloud-key\r\n' });
  expect(config.anchor.apiKey).toBe('anchor-key');
  expect(config.temporal.apiKey).toBe('cloud-key');
  expect(problemsOf({ ANCHOR_API_KEY: 'anchor key', TEMPORAL_API_KEY: 'cloud\tkey' })).toEqual([
    'TEMPORAL_API_KEY: expected printable characters without spaces',
    'ANCHOR_API_KEY: expected printable characters without spaces',
  ]);
});

test('the namespace and task queue lose the spaces around them, as the CLI drops them', () => {
  // Before, " recovery" made the worker poll a queue no client starts recoveries on.
  const config = loadWorkerConfig({
    ...minimal,
    TEMPORAL_NAMESPACE: ' recovery\n',
    TEMPORAL_TASK_QUEUE: ' recoveries ',
  });
  expect(config.temporal).toMatchObject({ namespace: 'recovery', taskQueue: 'recoveries' });
  const cloud = loadWorkerConfig({
    ...minimal,
    TEMPORAL_ADDRESS: 'recovery.a1b2c.tmprl.cloud:7233',
    TEMPORAL_NAMESPACE: 'recovery.a1b2c\n',
    TEMPORAL_API_KEY: 'cloud-key',
  });
  expect(cloud.temporal.namespace).toBe('recovery.a1b2c');
});

test("a task queue named as a batch status poller's queue is refused, naming the variable", () => {
  // Its poller's queue would end twice in the suffix, and the poller would send its page reads to the wrong queue.
  expect(problemsOf({ ...minimal, TEMPORAL_TASK_QUEUE: 'recoveries-batch-status-poller' })).toEqual([
    "TEMPORAL_TASK_QUEUE: must not end in -batch-status-poller: the batch status poller's queue beside each task queue ends so",
  ]);
  expect(
    loadWorkerConfig({ ...minimal, TEMPORAL_TASK_QUEUE: 'batch-status-poller-recoveries' }).temporal.taskQueue,
  ).toBe('batch-status-poller-recoveries');
});

test("a task queue named as another's notifications' queue is warned of, naming both queues", () => {
  // Beside a deployment on `recoveries`, its workers would take that one's notifications and post them to their
  // webhook. Taken all the same: a deployment already on such a queue has recoveries no other queue's workers take.
  expect(loadWorkerConfig({ ...minimal, TEMPORAL_TASK_QUEUE: 'recoveries-notifications' }).temporal.taskQueue).toBe(
    'recoveries-notifications',
  );
  expect(taskQueueCollisionWarning('recoveries-notifications')).toBe(
    "TEMPORAL_TASK_QUEUE=recoveries-notifications is also the notifications' queue of a deployment on recoveries: if " +
      "one runs in this namespace, each takes the other's tasks. Move new deployments to a queue not ending in " +
      '-notifications',
  );
  expect(taskQueueCollisionWarning('notifications-recoveries')).toBeUndefined();
});

test('millisecond settings past what a Node.js timer holds (2^31 - 1) are refused, as a longer timer fires at once', () => {
  const tooLong = String(2 ** 31);
  expect(
    problemsOf({
      ...minimal,
      ANCHOR_REQUEST_TIMEOUT_MS: tooLong,
      WORKER_ISOLATE_EXECUTION_TIMEOUT_MS: tooLong,
      PAST_DEADLINE_CHECK_INTERVAL_MS: tooLong,
      PAST_DEADLINE_GRACE_MS: tooLong,
    }).map((problem) => problem.split(':')[0]),
  ).toEqual([
    'ANCHOR_REQUEST_TIMEOUT_MS',
    'WORKER_ISOLATE_EXECUTION_TIMEOUT_MS',
    'PAST_DEADLINE_CHECK_INTERVAL_MS',
    'PAST_DEADLINE_GRACE_MS',
  ]);
});

test("an Anchor request timeout a read's turn and request could not both fit in its 1 min attempt is refused", () => {
  expect(problemsOf({ ...minimal, ANCHOR_REQUEST_TIMEOUT_MS: '25001' })).toEqual([
    'ANCHOR_REQUEST_TIMEOUT_MS: expected at most 25000 (a read waits its turn up to its request timeout, then sends: ' +
      'both within the 1 min of its attempt)',
  ]);
  expect(loadWorkerConfig({ ...minimal, ANCHOR_REQUEST_TIMEOUT_MS: '25000' }).anchor.timeoutMs).toBe(25_000);
});

test('budgets, worker counts and cache sizes past what the worker can hold are refused, naming the range', () => {
  // Before, each was taken: a budget of 1e-9 calls a second spaced a worker's calls 1.1e12 ms apart, past a Node.js
  // timer, so each call waiting its turn woke every millisecond (1,153 TimeoutOverflowWarnings in 2 s); a cache of
  // 1e9 workflows aborted the worker after it had logged its start (SIGABRT, "memory allocation of 36507222032 bytes
  // failed").
  expect(
    problemsOf({
      ...minimal,
      ANCHOR_MAX_CALLS_PER_SECOND: '0.000000001',
      WORKER_MAX_CACHED_WORKFLOWS: '1000000000',
      WORKER_WORKFLOW_STACK_TRACE_FRAMES: '0',
    }),
  ).toEqual([
    'ANCHOR_MAX_CALLS_PER_SECOND: expected at least 0.001 (one call in 1,000 s)',
    'WORKER_MAX_CACHED_WORKFLOWS: expected 2-100000: the SDK reserves memory for the whole cache at start, and 1e9 aborts the worker',
    'WORKER_WORKFLOW_STACK_TRACE_FRAMES: expected 1-100',
  ]);
  expect(
    problemsOf({ ...minimal, ANCHOR_MAX_CALLS_PER_SECOND: '1000000000', ANCHOR_WORKERS_SHARING_BUDGET: '2147484' }),
  ).toEqual(['ANCHOR_WORKERS_SHARING_BUDGET: expected 1-1000 (the worker processes on the task queue)']);
  const widest = loadWorkerConfig({
    ...minimal,
    ANCHOR_MAX_CALLS_PER_SECOND: '0.001',
    WORKER_MAX_CACHED_WORKFLOWS: '100000',
    WORKER_WORKFLOW_STACK_TRACE_FRAMES: '100',
  }).limits;
  expect(widest).toMatchObject({
    maxCallsPerSecond: 0.001,
    maxCachedWorkflows: 100_000,
    workflowStackTraceFrames: 100,
  });
  expect(
    loadWorkerConfig({ ...minimal, ANCHOR_MAX_CALLS_PER_SECOND: '1000', ANCHOR_WORKERS_SHARING_BUDGET: '1000' }).limits,
  ).toMatchObject({ maxCallsPerSecond: 1_000, workersSharingBudget: 1_000 });
});

test('counts and milliseconds in another spelling than decimal digits are refused, as the CLI refuses them', () => {
  // Before, Number() read them: "0x10" was 16 activities at once, "1e3" a cache of 1,000 and "0b1" a 1 ms timeout.
  expect(
    problemsOf({
      ...minimal,
      ANCHOR_REQUEST_TIMEOUT_MS: '0b1',
      WORKER_MAX_CONCURRENT_ACTIVITIES: '0x10',
      WORKER_MAX_CACHED_WORKFLOWS: '1e3',
    }),
  ).toEqual([
    'ANCHOR_REQUEST_TIMEOUT_MS: expected a whole number in decimal digits',
    'WORKER_MAX_CONCURRENT_ACTIVITIES: expected a whole number in decimal digits',
    'WORKER_MAX_CACHED_WORKFLOWS: expected a whole number in decimal digits',
  ]);
  // The budget, which may have a fraction, likewise: before, "0x10" was 16 calls a second and "1e1" 10.
  for (const budget of ['0x10', '1e1', '0b1', '10 calls', '-5', '1.2.3', 'Infinity']) {
    expect([budget, problemsOf({ ...minimal, ANCHOR_MAX_CALLS_PER_SECOND: budget })]).toEqual([
      budget,
      ['ANCHOR_MAX_CALLS_PER_SECOND: expected a number in decimal digits, like 10 or 2.5'],
    ]);
  }
  const config = loadWorkerConfig({
    ...minimal,
    ANCHOR_MAX_CALLS_PER_SECOND: ' 2.5\n',
    WORKER_MAX_CONCURRENT_ACTIVITIES: ' 16\n',
    METRICS_PORT: '9464',
  });
  expect(config.limits.maxCallsPerSecond).toBe(2.5);
  expect(config.limits.maxConcurrentActivities).toBe(16);
  expect(config.observability?.metricsPort).toBe(9464);
});

test('a worker cache too large to allocate stops the worker process at start, naming the variable', async () => {
  const worker = await spawnWorkerProcess({ ...minimal, WORKER_MAX_CACHED_WORKFLOWS: '1000000000' });
  const { code } = await worker.closed;
  expect(code).toBe(1);
  expect(worker.stderr().trim().split('\n')).toEqual([
    'Invalid worker configuration:',
    '  - WORKER_MAX_CACHED_WORKFLOWS: expected 2-100000: the SDK reserves memory for the whole cache at start, and 1e9 aborts the worker',
  ]);
});

test('a Temporal that cannot be reached stops the worker process at start with exit 7, as the CLI exits', async () => {
  const worker = await spawnWorkerProcess({ ...minimal, TEMPORAL_ADDRESS: '127.0.0.1:1' });
  const { code } = await worker.closed;
  // Before, 1, as for a configuration to mend.
  expect(code).toBe(7);
  expect(worker.stderr()).toMatch(/^Cannot reach Temporal at 127\.0\.0\.1:1: /m);
});

test('metrics port, log level and the prebuilt bundle are read for the worker process', () => {
  const config = loadWorkerConfig({
    ...minimal,
    METRICS_PORT: '9464',
    LOG_LEVEL: 'debug',
    WORKFLOW_BUNDLE_PATH: caFile,
  });
  expect(config.observability).toEqual({
    logLevel: 'DEBUG',
    metricsPort: 9464,
    pastDeadline: { intervalMs: 60_000, graceMs: 300_000 },
  });
  expect(config.workflowBundlePath).toBe(caFile);
  const tuned = loadWorkerConfig({
    ...minimal,
    METRICS_PORT: '9464',
    PAST_DEADLINE_CHECK_INTERVAL_MS: '15000',
    PAST_DEADLINE_GRACE_MS: '0',
  });
  expect(tuned.observability?.pastDeadline).toEqual({ intervalMs: 15_000, graceMs: 0 });
  expect(problemsOf({ ...minimal, PAST_DEADLINE_CHECK_INTERVAL_MS: '0' })).toEqual([
    expect.stringMatching(/^PAST_DEADLINE_CHECK_INTERVAL_MS: /),
  ]);
  expect(problemsOf({ ...minimal, WORKFLOW_BUNDLE_PATH: path.join(dir, 'nope.js') })).toEqual([
    expect.stringMatching(/^WORKFLOW_BUNDLE_PATH: cannot read .*nope\.js$/),
  ]);
});

test('a WORKFLOW_BUNDLE_PATH naming a directory stops the worker process at start, naming the variable', async () => {
  const worker = await spawnWorkerProcess({
    ...minimal,
    TEMPORAL_TASK_QUEUE: uniqueTaskQueue('bundle-directory'),
    ANCHOR_BATCH_STATUS_POLLER: 'false',
    WORKFLOW_BUNDLE_PATH: dir,
  });
  const { code } = await worker.closed;
  expect(code).toBe(1);
  expect(worker.stderr().trim().split('\n')).toEqual([
    'Invalid worker configuration:',
    `  - WORKFLOW_BUNDLE_PATH: ${dir} is a directory: expected the bundle file (npm run build:bundle)`,
  ]);
});

test('log lines lose API keys and session URLs wherever they are', () => {
  const line = JSON.stringify({
    msg: 'failed with anchor-key',
    err: { stack: 'at anchor-key' },
    cdp: 'wss://connect.anchorbrowser.io?sessionId=s1&token=t1',
    live: 'https://live.anchorbrowser.io/inspector.html?sessionId=s1&token=t1',
    api: 'https://api.anchorbrowser.io/v1/batch-sessions/b1',
  });
  expect(JSON.parse(redactLine(line, ['anchor-key']))).toEqual({
    msg: 'failed with [redacted]',
    err: { stack: 'at [redacted]' },
    cdp: '[redacted-url]',
    live: '[redacted-url]',
    api: 'https://api.anchorbrowser.io/v1/batch-sessions/b1',
  });
});

test('log lines lose a secret with a quote or a backslash, which the serialised line holds escaped', () => {
  const secret = String.raw`k"e\y`;
  const line = JSON.stringify({ msg: `failed with ${secret}`, url: `https://hooks.example/${secret}` });
  const redacted = redactLine(line, [secret]);
  expect(JSON.parse(redacted)).toEqual({ msg: 'failed with [redacted]', url: 'https://hooks.example/[redacted]' });
});

test('log lines lose session URLs written with escaped slashes or in capitals', () => {
  // Text quoting JSON that was written with `\/` (as PHP and some Java libraries write it), then serialised again.
  const quoted = String.raw`{"cdp_url":"wss:\/\/connect.anchorbrowser.io\/devtools\/browser\/s1?token=t1"}`;
  const line = JSON.stringify({
    msg: `upstream said ${quoted} and more`,
    unicode: String.raw`wss:\u002f\u002fconnect.anchorbrowser.io\u002fs1`,
    upper: 'Wss://connect.anchorbrowser.io?token=t1',
    live: 'https://live.anchorbrowser.io/inspector.html?sessionId=s1&Token=t1',
  });
  expect(JSON.parse(redactLine(line, []))).toEqual({
    msg: 'upstream said {"cdp_url":"[redacted-url]"} and more',
    unicode: '[redacted-url]',
    upper: '[redacted-url]',
    live: '[redacted-url]',
  });
});

test('the worker process exits 1 with every configuration problem on its own line', async () => {
  const worker = await spawnWorkerProcess({ ANCHOR_API_KEY: '', ANCHOR_BASE_URL: 'nope', TEMPORAL_TLS_CERT: certFile });
  const { code } = await worker.closed;
  expect(code).toBe(1);
  expect(worker.stderr().trim().split('\n')).toEqual([
    'Invalid worker configuration:',
    '  - ANCHOR_BASE_URL: expected an http(s) URL',
    '  - ANCHOR_API_KEY: required: the AnchorBrowser API key',
    '  - TEMPORAL_TLS_KEY: required with TEMPORAL_TLS_CERT (the client certificate needs its key)',
  ]);
});
