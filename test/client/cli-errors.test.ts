import { randomUUID } from 'node:crypto';
import { createServer, type Http2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { connectClient, temporalNamespace, uniqueTaskQueue } from '../helpers/temporal.js';
import { killLeftoverChildren, runCli } from './child-process.js';

afterEach(killLeftoverChildren);

// Each error is one line on stderr, no stack trace, and exit code 1 (7 when Temporal cannot be reached).
function expectOneLineError(
  result: { code: number | null; stdout: string; stderr: string },
  message: RegExp,
  code = 1,
) {
  expect(result.code).toBe(code);
  expect(result.stdout).toBe('');
  expect(result.stderr.trim().split('\n')).toHaveLength(1);
  expect(result.stderr).toMatch(message);
}

test('a batch id that is not a uuid is refused before any connection, naming the field', async () => {
  // The unreachable address proves no connection is attempted: it would fail with another message.
  const result = await runCli(['--address', '127.0.0.1:1', 'report', 'not-a-uuid']);
  expectOneLineError(result, /batchId: Invalid UUID/);
});

test('a Temporal address that is not host:port is refused before any connection, naming the flag or variable', async () => {
  const flag = await runCli(['--address', 'not an address', 'report', randomUUID()]);
  expectOneLineError(flag, /--address <host:port>' argument 'not an address' is invalid\. expected host:port/);
  // Before, a port past 65535 was taken, and the CLI waited for the connect to time out (exit 7).
  const port = await runCli(['--address', 'localhost:99999', 'report', randomUUID()]);
  expectOneLineError(port, /argument 'localhost:99999' is invalid\. expected host:port with a port of 1-65535/);
  const variable = await runCli(['report', randomUUID()], { TEMPORAL_ADDRESS: 'temporal' });
  expectOneLineError(variable, /value 'temporal' from env 'TEMPORAL_ADDRESS' is invalid\. expected host:port/);
});

test('a blank TEMPORAL_ADDRESS (compose passes unset variables so) takes the default, as the worker does', async () => {
  // Before, refused: "value '' from env 'TEMPORAL_ADDRESS' is invalid", while the worker took localhost:7233.
  const blank = await runCli(['--call-timeout', '1s', 'report', randomUUID()], { TEMPORAL_ADDRESS: '' });
  expect(blank.stderr).not.toMatch(/is invalid/);
  // Unless a server listens there, which then has no such recovery.
  expect(blank.stderr).toMatch(/^error: (Cannot reach Temporal at localhost:7233|No recovery found)/i);
});

test('a number option that is not a number is refused', async () => {
  const result = await runCli(['recover', randomUUID(), '--max-rounds', 'three']);
  expectOneLineError(result, /--max-rounds.*'three' is invalid.*expected a whole number/);
});

test('a number outside the policy bounds is refused with the field name', async () => {
  const result = await runCli(['recover', randomUUID(), '--max-retries', '7']);
  expectOneLineError(result, /maxRetries: Too big/);
});

test('a duration outside the policy bounds is refused with the field name, before any connection', async () => {
  const result = await runCli(['--address', '127.0.0.1:1', 'recover', randomUUID(), '--deadline', '1000000000y']);
  expectOneLineError(result, /--deadline.*'1000000000y' is invalid.*deadline: must be at most 365d/);
});

test('a batch without a recovery is reported as such, with every workflow id looked up', async () => {
  // A letter first, for a spelling in mixed case.
  const batchId = `a${randomUUID().slice(1)}`;
  const lowerCaseId = `recover-batch-${batchId}`;
  const upperCaseId = `recover-batch-${batchId.toUpperCase()}`;
  // Looked up as the lower-case batch id, then in upper case (an earlier release named recoveries as typed).
  const result = await runCli(['report', batchId]);
  expectOneLineError(result, /^error: No recovery found for batch /);
  expect(result.stderr).toBe(
    `error: No recovery found for batch ${batchId} (looked for workflow ids ${lowerCaseId}, ${upperCaseId})\n`,
  );
  const upper = await runCli(['report', batchId.toUpperCase()]);
  expect(upper.stderr).toBe(
    `error: No recovery found for batch ${batchId.toUpperCase()} (looked for workflow ids ${lowerCaseId}, ${upperCaseId})\n`,
  );
  // Typed in mixed case, that spelling too.
  const mixed = `A${batchId.slice(1)}`;
  const typed = await runCli(['report', mixed]);
  expect(typed.stderr).toBe(
    `error: No recovery found for batch ${mixed} (looked for workflow ids ${lowerCaseId}, recover-batch-${mixed}, ${upperCaseId})\n`,
  );
});

test('blank TEMPORAL_UI_URL and TEMPORAL_CALL_TIMEOUT (compose passes unset variables so) take their defaults', async () => {
  const batchId = randomUUID();
  const result = await runCli(['--task-queue', uniqueTaskQueue('blank-variables'), 'recover', batchId], {
    TEMPORAL_UI_URL: '',
    TEMPORAL_CALL_TIMEOUT: '',
  });
  try {
    // Before: "error: val is not a non-empty string or a valid number. val=\"\"" (exit 1), naming no variable; and
    // the call timeout set, a link without its server ("Web UI:      /namespaces/…").
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(
      new RegExp(
        `^Web UI: +http://localhost:8233/namespaces/${temporalNamespace()}/workflows/recover-batch-${batchId}$`,
        'm',
      ),
    );
  } finally {
    const client = await connectClient();
    await client.workflow.getHandle(`recover-batch-${batchId}`).terminate('test done');
    await client.connection.close();
  }
});

test('a Web UI URL with a query or fragment is refused before any connection, naming the flag or variable', async () => {
  // Before, taken: every link printed was `…/?token=1/namespaces/…`, the UI's root or nowhere.
  const flag = await runCli([
    '--address',
    '127.0.0.1:1',
    '--ui-url',
    'https://ui.example/?token=1',
    'report',
    randomUUID(),
  ]);
  expectOneLineError(flag, /^error: --ui-url: expected no query or fragment in the URL/);
  const variable = await runCli(['--address', '127.0.0.1:1', 'report', randomUUID()], {
    TEMPORAL_UI_URL: 'https://ui.example/#top',
  });
  expectOneLineError(variable, /^error: TEMPORAL_UI_URL: expected no query or fragment in the URL/);
  // Not echoed: before, a URL with a password and a token was printed whole.
  const both = await runCli(['--address', '127.0.0.1:1', 'report', randomUUID()], {
    TEMPORAL_UI_URL: 'https://operator:s3cret-pw@ui.example/?token=t0k3n',
  });
  expect(both.code).toBe(1);
  expect(both.stderr).not.toMatch(/s3cret-pw|t0k3n/);
});

test('a Web UI URL with a user name or password is refused, naming the flag or variable, without echoing it', async () => {
  // Before, taken and printed in every `Web UI:` line, while the worker refuses it.
  const flag = await runCli([
    '--address',
    '127.0.0.1:1',
    '--ui-url',
    'https://operator:s3cret-pw@ui.example',
    'report',
    randomUUID(),
  ]);
  expectOneLineError(flag, /^error: --ui-url: expected no user name or password in the URL/);
  const variable = await runCli(['--address', '127.0.0.1:1', 'report', randomUUID()], {
    TEMPORAL_UI_URL: 'https://:s3cret-pw@ui.example/',
  });
  expectOneLineError(variable, /^error: TEMPORAL_UI_URL: expected no user name or password in the URL/);
  for (const refused of [flag, variable]) expect(refused.stderr).not.toMatch(/s3cret-pw|operator/);
});

test("a task queue named as a batch status poller's queue is refused before any connection, as the worker refuses it", async () => {
  // Before, taken: the recovery started there waited for a worker that could never run, and the exit code was 0.
  const flag = await runCli([
    '--address',
    '127.0.0.1:1',
    '--task-queue',
    'q-batch-status-poller',
    'recover',
    randomUUID(),
  ]);
  expectOneLineError(
    flag,
    /--task-queue <name>' argument 'q-batch-status-poller' is invalid\. expected no name ending in -batch-status-poller/,
  );
  const variable = await runCli(['--address', '127.0.0.1:1', 'report', randomUUID()], {
    TEMPORAL_TASK_QUEUE: 'q-batch-status-poller',
  });
  expectOneLineError(variable, /from env 'TEMPORAL_TASK_QUEUE' is invalid\. expected no name ending in/);
});

test('an unreachable Temporal is named with its address', async () => {
  const result = await runCli(['--address', '127.0.0.1:1', 'report', randomUUID()]);
  expectOneLineError(result, /^error: Cannot reach Temporal at 127\.0\.0\.1:1/, 7);
});

/** A server answering every call as Temporal Cloud answers a wrong API key: gRPC status 16, in a trailers-only answer. */
async function startRefusingTemporal(): Promise<{ address: string; server: Http2Server }> {
  const server = createServer();
  server.on('stream', (stream) =>
    stream.respond(
      { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '16', 'grpc-message': 'invalid API key' },
      { endStream: true },
    ),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { address: `127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

test('a Temporal that refuses the credentials is no outage: exit 1 with its words, not 7', async () => {
  const { address, server } = await startRefusingTemporal();
  try {
    const result = await runCli(['--address', address, 'report', randomUUID()]);
    // Before: `Cannot reach Temporal at …` and exit 7, which a script may wait out and try again.
    expectOneLineError(
      result,
      new RegExp(`^error: Temporal at ${address} refused this client's credentials: .*invalid API key`),
    );
  } finally {
    server.close();
  }
});

test('a worker whose credentials Temporal refuses exits 1 with its words, not 7 as for an outage', async () => {
  const { address, server } = await startRefusingTemporal();
  try {
    const result = await runCli(['worker', '--address', address], { ANCHOR_API_KEY: 'worker-key' });
    // Before: `Cannot reach Temporal at …` and exit 7, which a supervisor may wait out.
    expectOneLineError(
      result,
      new RegExp(`^error: Temporal at ${address} refused this worker's credentials: .*invalid API key`),
    );
  } finally {
    server.close();
  }
});

test('a worker that cannot reach Temporal at start exits 7, as every other command does', async () => {
  // Before, its error was a plain one: exit 1, which the README gives to invalid input.
  const result = await runCli(['worker', '--address', '127.0.0.1:1'], { ANCHOR_API_KEY: 'worker-key' });
  expect(result.code).toBe(7);
  expect(result.stderr).toMatch(/Cannot reach Temporal at 127\.0\.0\.1:1/);
});

test('the CLI reads TLS and Temporal Cloud settings like the worker, and names what is wrong with them', async () => {
  const result = await runCli(['report', randomUUID()], {
    TEMPORAL_ADDRESS: 'acme.a1b2c.tmprl.cloud:7233',
    TEMPORAL_NAMESPACE: 'default',
    TEMPORAL_TLS_CERT: '/nonexistent/client.pem',
  });
  expectOneLineError(
    result,
    /TEMPORAL_TLS_CERT: .*TEMPORAL_TLS_KEY: required with TEMPORAL_TLS_CERT.*TEMPORAL_NAMESPACE: a Temporal Cloud namespace/,
  );
});

describe('flags are checked before any connection, naming the flag and the field', () => {
  // The unreachable address proves no connection is attempted: it would fail with exit code 7.
  const offline = (args: string[]) => runCli(['--address', '127.0.0.1:1', ...args]);

  test.each([
    [['--every', '15m', '--max-starts', 'many'], /--max-starts.*'many' is invalid.*maxStarts: expected a whole number/],
    [['--every', '15m', '--fan-out', '1e999'], /--fan-out.*'1e999' is invalid.*fanOut: expected a whole number/],
    [['--every', '15m', '--fan-out', '51'], /--fan-out.*'51' is invalid.*fanOut: Too big: expected number to be <=50/],
    [['--every', '10s'], /--every.*'10s' is invalid.*every: must be at least 1m/],
    [['--every', '15m', '--lookback', 'soon'], /--lookback.*'soon' is invalid.*lookback: expected a duration/],
    [['--every', '900'], /--every.*'900' is invalid.*every: add a unit/],
  ])('schedule upsert %j', async (flags, message) => {
    expectOneLineError(await offline(['schedule', 'upsert', ...flags]), message);
  });

  test('schedule upsert with a lookback under twice --every, or a task queue no worker can poll', async () => {
    // Before, checked once connected: exit 7, Temporal unreachable.
    expectOneLineError(
      await offline(['schedule', 'upsert', '--every', '15m', '--lookback', '20m']),
      /^error: Invalid sweep schedule: lookback: must be at least twice every \(15m\)/,
    );
    expectOneLineError(
      await runCli(['--address', '127.0.0.1:1', 'schedule', 'upsert', '--every', '15m'], {
        TEMPORAL_TASK_QUEUE: 'sweeps\tnightly',
      }),
      /^error: Invalid sweep schedule: taskQueue: must not hold control characters$/m,
    );
  });

  test.each([
    ['upsert', 'empty', '', /'' is invalid\. id: must not be empty/],
    ['describe', 'padded', ' sweep', /' sweep' is invalid\. id: must not begin or end with white space/],
    ['pause', 'too long', 'a'.repeat(201), /is invalid\. id: must be at most 200 characters, got 201/],
    ['unpause', 'with a tab', 'sweep\tnightly', /is invalid\. id: must not hold control characters/],
    ['trigger', 'empty', '', /'' is invalid\. id: must not be empty/],
    ['delete', 'empty', '', /'' is invalid\. id: must not be empty/],
  ])('schedule %s --id %s', async (subcommand, _name, id, message) => {
    // Before, checked once connected: exit 7, Temporal unreachable.
    const every = subcommand === 'upsert' ? ['--every', '15m'] : [];
    expectOneLineError(await offline(['schedule', subcommand, '--id', id, ...every]), message);
  });

  test.each([
    [['--deadline', '3600'], /--deadline.*'3600' is invalid.*deadline: add a unit, e.g. "3600s" or "3600ms"/],
    [['--round-backoff', '30'], /--round-backoff.*'30' is invalid.*roundBackoff.initialInterval: add a unit/],
    [['--max-rounds', '0x10'], /--max-rounds.*'0x10' is invalid.*maxRounds: expected a whole number/],
    [['--max-rounds', '1e2'], /--max-rounds.*'1e2' is invalid.*maxRounds: expected a whole number/],
  ])('recover %j: a duration without a unit, a count in another spelling', async (flags, message) => {
    // Before, "3600" was a deadline of 3.6 s, and "0x10" 16 rounds.
    expectOneLineError(await offline(['recover', randomUUID(), ...flags]), message);
  });

  test.each([
    [
      'recover --deadline',
      ['recover', randomUUID(), '--deadline', ''],
      /--deadline.*'' is invalid.*deadline: expected/,
    ],
    ['cancel --timeout', ['cancel', randomUUID(), '--timeout', ''], /--timeout.*'' is invalid.*timeout: expected/],
    ['report --since', ['report', '--since', ''], /--since.*'' is invalid.*since: expected a duration like "30s"/],
  ])('%s blank', async (_name, args, message) => {
    // Before, ms()'s own "val is not a non-empty string or a valid number. val=\"\"", naming no flag.
    expectOneLineError(await offline(args), message);
  });

  test('report --since', async () => {
    expectOneLineError(await offline(['report', '--since', 'recently']), /--since.*'recently' is invalid.*since: /);
  });

  test.each([
    [['--outcome', 'exhausted'], /^error: --outcome applies only without a batch id, to the table of all recent/],
    [['--since', '1h'], /^error: --since applies only without a batch id/],
    [['--limit', '5', '--since', '1h'], /^error: --since, --limit apply only without a batch id.*leave them out/],
  ])('report <batchId> %j', async (flags, message) => {
    // Before, taken and ignored: the report of the batch, whatever the filter.
    expectOneLineError(await offline(['report', randomUUID(), ...flags]), message);
  });

  test('policy --timeout', async () => {
    expectOneLineError(
      await offline(['policy', randomUUID(), '--max-rounds', '4', '--timeout', '1h']),
      /--timeout.*'1h' is invalid.*timeout: must be at most 10m/,
    );
  });

  test('policy without a policy option', async () => {
    expectOneLineError(
      await offline(['policy', randomUUID()]),
      /^error: No policy options given: set one or more of --max-rounds, --max-retries, --round-backoff, --poll-interval$/m,
    );
  });
});
