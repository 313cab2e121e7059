import { PRIORITY_DISPATCH_CONFIG, startDevServer, type DevServer } from '../../dev/dev-server.js';
import { BATCH_PAGE_SIZE } from '../../workflows/batch-status-poller.js';
import { PAGES_IN_FLIGHT } from '../../workflows/list-pages.js';
import type { LedgerCall } from '../../simulator/index.js';
import { eventually, FAST_POLICY, startRecoveryEnv, type RecoveryEnv } from '../helpers/recovery-env.js';

/**
 * A server that dispatches by priority, with one partition, so that the order of dispatch is the matcher's alone,
 * not a draw of which partition a poll lands on.
 */
const PRIORITY_DISPATCH = {
  ...PRIORITY_DISPATCH_CONFIG,
  'matching.numTaskqueueReadPartitions': 1,
  'matching.numTaskqueueWritePartitions': 1,
};

const LIST = 'GET /v1/batch-sessions';
const STATUS = 'GET /v1/batch-sessions/{batch_id}';
const RETRY = 'POST /v1/batch-sessions/{batch_id}/retry';

let server: DevServer;
let env: RecoveryEnv;

beforeAll(async () => {
  server = await startDevServer({ ui: false, dynamicConfig: PRIORITY_DISPATCH });
  env = await startRecoveryEnv({}, { address: server.address, namespace: server.namespace });
  // Two calls a second, one at a time: the poller's page reads queue up on the server.
  await env.startPollerWorker({}, { maxCallsPerSecond: 2, maxConcurrentActivities: 1 });
}, 120_000);
afterAll(async () => {
  await env?.close();
  await server?.stop();
});

test("a settled batch's read and retry call go ahead of the poller's page reads queued before them", async () => {
  // The oldest batch, so on the list's last page: pending for minutes, it keeps every cycle reading all the pages.
  const pending = env.simulator.createScriptedBatch({ count: 1, pending_phase: { ms: 600_000 } });
  for (let i = 0; i < PAGES_IN_FLIGHT * BATCH_PAGE_SIZE; i += 1) env.simulator.createScriptedBatch({ count: 1 });
  // The newest, on page 1: 2 s after it is created, once both recoveries watch it, it settles with a session failed,
  // and a later cycle's page 1 shows it.
  const settling = env.simulator.createScriptedBatch({
    count: 2,
    script: { '1': ['fail', 'ok'] },
    pending_phase: { ms: 2_000 },
  });
  // The poller cycles every 50 ms (the shortest poll interval it watches); no re-registration within the test.
  const policy = { ...FAST_POLICY, poll: { ...FAST_POLICY.poll, maximumInterval: '1m' } };
  await env.recoveries.start({ batchId: pending.id, ...policy });
  await env.recoveries.start({ batchId: settling.id, ...policy, maxRounds: 1 });

  const calls = () => env.simulator.ledger.all().calls;
  const retryAt = await eventually(
    'the retry call',
    () => {
      const index = calls().findIndex((call) => call.endpoint === RETRY && call.batchId === settling.id);
      return index === -1 ? undefined : index;
    },
    60_000,
  );
  const pageOf = (call: LedgerCall) =>
    call.endpoint === LIST ? Number(new URL(call.path, env.simulator.url).searchParams.get('page')) : undefined;
  // The cycle whose page 1 showed the settle: the last page 1 read before the round's snapshot read.
  const statusAt = calls().findIndex((call) => call.endpoint === STATUS && call.batchId === settling.id);
  expect(statusAt).toBeGreaterThan(-1);
  expect(statusAt).toBeLessThan(retryAt);
  const pageOnesBefore = calls()
    .slice(0, statusAt)
    .flatMap((call, index) => (pageOf(call) === 1 ? [index] : []));
  const cycleStart = pageOnesBefore.at(-1) ?? -1;
  expect(cycleStart).toBeGreaterThan(-1);
  // That cycle then queued its other pages side by side, at the lowest priority, and reads no page 1 again before
  // it has read them all.
  const pagesOfCycle = await eventually(
    'the rest of the cycle',
    () => {
      const pages = calls()
        .slice(cycleStart + 1)
        .filter((call) => call.endpoint === LIST);
      return pages.length >= PAGES_IN_FLIGHT ? pages.slice(0, PAGES_IN_FLIGHT) : undefined;
    },
    60_000,
  );
  expect(pagesOfCycle.map(pageOf).sort((a, b) => a! - b!)).toEqual(
    Array.from({ length: PAGES_IN_FLIGHT }, (_, i) => i + 2),
  );
  // In the order they were queued, the call would come after all ten pages (as it does on a server without the new
  // matcher). It goes at the next dispatch instead: in four runs here, 10, 10, 10 and 8 pages came after it (a page
  // the worker took while the recovery's workflow task scheduled the call can go before it).
  const pagesAfterRetry = pagesOfCycle.filter((call) => call.seq > calls()[retryAt]!.seq);
  expect(pagesAfterRetry.length).toBeGreaterThanOrEqual(PAGES_IN_FLIGHT / 2);
});
