import { eventually, FAST_POLICY, startRecoveryEnv, type RecoveryEnv } from '../helpers/recovery-env.js';

// The round backoff counts from the batch's settle as the API dates it (actual_completion_time), so the
// time it took to notice the settle (a poll interval, a list cycle of the batch status poller) is not added.
let env: RecoveryEnv;

beforeAll(async () => {
  env = await startRecoveryEnv();
  await env.startWorker();
});
afterAll(() => env.close());

const oneFailingSession = (createdAt?: Date) =>
  env.simulator.createScriptedBatch({
    count: 4,
    script: { '2': ['fail', 'ok'] },
    ...(createdAt && { created_at: createdAt.toISOString() }),
  });
const backoff = (interval: string) => ({
  ...FAST_POLICY,
  roundBackoff: { initialInterval: interval, maximumInterval: interval },
});

test('the next retry is due one backoff after the batch settled, not after the recovery noticed it', async () => {
  const batch = oneFailingSession();
  await env.recoveries.start({ batchId: batch.id, ...backoff('1h') });
  const report = await eventually('the recovery to back off', async () => {
    const current = await env.recoveries.report(batch.id);
    return current.phase === 'backing_off' ? current : undefined;
  });
  const settledAt = report.batch?.settledAt;
  expect(settledAt).toBeDefined();
  // The settle the API reports comes before the recovery's read of it.
  expect(Date.parse(settledAt!)).toBeLessThanOrEqual(Date.parse(report.batch!.observedAt));
  expect(report.nextRetryAt).toBe(new Date(Date.parse(settledAt!) + 3_600_000).toISOString());
  await env.recoveries.handle(batch.id).cancel();
});

test('a batch that settled longer than one backoff ago is retried at once, with no backoff timer', async () => {
  const batch = oneFailingSession(new Date(Date.now() - 10 * 60_000));
  await env.recoveries.start({ batchId: batch.id, ...backoff('1m') });
  const report = await env.recoveries.result(batch.id);

  expect(report.outcome).toBe('recovered');
  expect(env.simulator.ledger.forBatch(batch.id).retries).toHaveLength(1);
  // Labels are payloads in the history: decoded, the round's call is there and no backoff timer is.
  const { events } = await env.recoveries.handle(batch.id).fetchHistory();
  const labels = (events ?? []).flatMap((event) => {
    const data = event.userMetadata?.summary?.data;
    return data ? [Buffer.from(data as unknown as string, 'base64').toString('utf8')] : [];
  });
  expect(labels).toContain('"retry round 1"');
  expect(labels.filter((label) => label.includes('backoff before'))).toEqual([]);
});
