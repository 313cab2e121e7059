import { randomUUID } from 'node:crypto';
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

test('a batch without a recovery is reported as such', async () => {
  const batchId = randomUUID();
  const result = await runCli(['report', batchId]);
  expectOneLineError(result, new RegExp(`^error: No recovery found for batch ${batchId}`));
});

test('an unreachable Temporal is named with its address', async () => {
  const result = await runCli(['--address', '127.0.0.1:1', 'report', randomUUID()]);
  expectOneLineError(result, /^error: Cannot reach Temporal at 127\.0\.0\.1:1/, 7);
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
