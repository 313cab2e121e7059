import {
  batchDeepInList,
  eventually,
  FAST_POLICY,
  type RecoveryEnv,
  startRecoveryEnv,
} from '../helpers/recovery-env.js';

// A list that sends no pagination, as the contract allows: the poller reads on while pages are full, and an empty page
// ends its cycle. Before, the cycle ended at page 1, so a watched batch further down was handed back every cycle and
// its recovery read the batch on its own.

let env: RecoveryEnv;

/** A session attempt takes a minute of the simulator's clock: a batch settles only when the test moves it on. */
const ATTEMPT_MS = 60_000;
/** Batches listed before the deep one: with it, two full pages of 100, and page 3 lists none. */
const NEWER_BATCHES = 199;
const LIST = 'GET /v1/batch-sessions';
const STATUS = 'GET /v1/batch-sessions/{batch_id}';

beforeAll(async () => {
  env = await startRecoveryEnv({ attemptDurationMs: ATTEMPT_MS, queueDelayMs: 0 });
  await env.startPollerWorker();
});
afterAll(() => env.close());

const polledEvery = (interval: string) => ({
  ...FAST_POLICY,
  poll: { initialInterval: interval, backoffCoefficient: 1, maximumInterval: interval },
});

const pagesOf = (calls: { endpoint: string; path: string }[]) =>
  calls
    .filter((call) => call.endpoint === LIST)
    .map((call) => Number(new URL(call.path, 'http://list').searchParams.get('page')));

test('with no pagination, full pages are read on to an empty one: a batch on page 2 is woken from the list', async () => {
  const deep = batchDeepInList(env.simulator, NEWER_BATCHES);
  env.simulator.faults.add('list', { type: 'omit_field', field: 'data.pagination' });
  // Settles the deep batch; and the API's clock now runs 10 min ahead, so a batch created next is dated after the
  // cycle's created_before: no page shows it.
  env.simulator.clock.advance(600_000);
  const unlisted = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });

  // A cycle for the unlisted batch alone reads every page, up to the empty one, then hands it back.
  await env.recoveries.start({ batchId: unlisted.id, ...polledEvery('1s') });
  const ownRead = await eventually('the unlisted batch to be read by its recovery', () =>
    env.simulator.ledger.forBatch(unlisted.id).calls.find((call) => call.endpoint === STATUS),
  );
  const before = env.simulator.ledger.all().calls.filter((call) => call.receivedAtMs < ownRead.receivedAtMs);
  // Before: [1], the cycle ended at the first page.
  expect(pagesOf(before)).toEqual([1, 2, 3]);

  // The deep batch, settled, is woken from page 2 of the list: its recovery reads nothing of its own to retry it.
  await env.recoveries.start({ batchId: deep.id, ...polledEvery('1s') });
  await eventually('the retry call', () => (env.retryPosts(deep.id).length === 1 ? true : undefined), 60_000);
  env.simulator.clock.advance(ATTEMPT_MS);
  const report = await env.recoveries.result(deep.id);

  expect(report.outcome).toBe('recovered');
  expect(env.retryPosts(deep.id)).toHaveLength(1);
  // Before: handed back every cycle, its recovery read the batch itself.
  expect(env.simulator.ledger.forBatch(deep.id).calls.filter((call) => call.method === 'GET')).toHaveLength(1);
  await env.recoveries.handle(unlisted.id).terminate('test finished');
}, 120_000);
