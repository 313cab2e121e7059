import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { RecoveryFailedError } from '../../client/recoveries.js';
import { BATCH_FAILED_WITHOUT_FAILED_SESSIONS } from '../../workflows/definitions.js';
import { proxyTo, startRecoveryEnvBehindHostileServer, type HostileServer } from '../helpers/hostile-server.js';
import { eventually, FAST_POLICY, TEST_API_KEY, type RecoveryEnv } from '../helpers/recovery-env.js';

// Status answers the contract allows (every field optional) and the simulator never sends, from a server of the test's
// own in front of it, to a worker whose recoveries read their batch themselves.

let env: RecoveryEnv;
let hostile: HostileServer;
let close: () => Promise<void>;

beforeAll(async () => {
  ({ env, hostile, close } = await startRecoveryEnvBehindHostileServer());
}, 60_000);
afterAll(() => close?.());

const json = (response: ServerResponse, status: number, body: unknown) =>
  response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));

async function endOf(batchId: string) {
  try {
    return { outcome: (await env.recoveries.result(batchId)).outcome, failure: undefined };
  } catch (err) {
    if (!(err instanceof RecoveryFailedError)) throw err;
    return { outcome: undefined, failure: err.report?.failure };
  }
}

test('a batch in flight whose reads leave out its pending and processing counters and sessions is waited for', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, hold: true, script: { '1': ['fail', 'ok'] } });
  let partialReads = 0;
  // The simulator's answer less three optional fields while the batch is in flight.
  hostile.on(batch.id, (request, response) => {
    if (request.method !== 'GET') return proxyTo(env.simulator.url)(request, response);
    void fetch(`${env.simulator.url}${request.url}`, { headers: { 'anchor-api-key': TEST_API_KEY } })
      .then((answer) => answer.json() as Promise<{ data: Record<string, unknown> }>)
      .then(({ data }) => {
        if (data.status === 'processing' || data.status === 'pending') {
          partialReads += 1;
          delete data.pending_requests;
          delete data.processing_requests;
          delete data.sessions;
        }
        json(response, 200, { data });
      });
  });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY });
  await eventually('a read of the batch in flight', () => (partialReads > 0 ? true : undefined));
  batch.release(env.simulator.clock.now());
  // Before, the first such read failed the recovery for good (malformed_response).
  expect(await endOf(batch.id)).toEqual({ outcome: 'recovered', failure: undefined });
  expect(env.simulator.ledger.forBatch(batch.id).retries).toHaveLength(1);
}, 60_000);

const SESSION_URL = 'wss://connect.anchorbrowser.io/devtools/browser/7d0f4f3c-6c0e-4a57-9b5e-0f1c2a3b4c5d';

/** A batch the API reports `failed`, with the given counters, and 400 (nothing to retry) to any retry call. */
function failedAsAWhole(
  counters: Record<string, number>,
  completedAgoMs: number,
): { batchId: string; posts: () => number } {
  const batchId = randomUUID();
  let posts = 0;
  hostile.on(batchId, (request, response) => {
    if (request.method === 'GET')
      return json(response, 200, {
        data: {
          batch_id: batchId,
          status: 'failed',
          ...counters,
          error: `Batch failed: browser configuration rejected (proxy_${SESSION_URL.slice('wss://'.length)} reset)`,
          // Its one session's URL, which the error quotes without its scheme: no pattern recognises it there.
          sessions: [{ item_index: 0, status: 'completed', cdp_url: SESSION_URL }],
          actual_completion_time: new Date(Date.now() - completedAgoMs).toISOString(),
        },
      });
    posts += 1;
    return json(response, 400, { error: { code: 400, message: 'No failed sessions to retry' } });
  });
  return { batchId, posts: () => posts };
}

test.each([
  ['counters all 0', { total_requests: 0, completed_requests: 0, failed_requests: 0 }, 0],
  ['counters behind past their catch-up', { total_requests: 5, completed_requests: 0, failed_requests: 0 }, 600_000],
])(
  'a batch `failed` with no failed session (%s) stops its recovery with a report, not `clean`',
  async (_, counters, ago) => {
    const { batchId, posts } = failedAsAWhole({ ...counters, processing_requests: 0, pending_requests: 0 }, ago);
    await env.recoveries.start({ batchId, ...FAST_POLICY });
    // Before, it ended `clean`.
    expect(await endOf(batchId)).toEqual({
      outcome: undefined,
      failure: {
        type: BATCH_FAILED_WITHOUT_FAILED_SESSIONS,
        message:
          'The API reports the batch failed, and no failed session to retry: Batch failed: browser configuration ' +
          'rejected (proxy_[url removed] reset)',
      },
    });
    expect(posts()).toBe(0);
  },
  60_000,
);

test('a recovery whose round fixed every session ends `recovered`, though the API keeps calling the batch failed', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 2, script: { '1': ['fail', 'ok'] } });
  // The contract does not say a batch that failed goes back to `completed` once a retry fixed it.
  hostile.on(batch.id, (request, response) => {
    if (request.method !== 'GET') return proxyTo(env.simulator.url)(request, response);
    void fetch(`${env.simulator.url}${request.url}`, { headers: { 'anchor-api-key': TEST_API_KEY } })
      .then((answer) => answer.json() as Promise<{ data: Record<string, unknown> }>)
      .then(({ data }) => {
        if (data.status === 'completed') data.status = 'failed';
        json(response, 200, { data });
      });
  });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY });
  expect(await endOf(batch.id)).toEqual({ outcome: 'recovered', failure: undefined });
  expect(env.simulator.ledger.forBatch(batch.id).retries).toHaveLength(1);
}, 60_000);
