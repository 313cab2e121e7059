import type { IncomingMessage, ServerResponse } from 'node:http';
import { text } from 'node:stream/consumers';
import { RecoveryFailedError } from '../../client/recoveries.js';
import {
  answerSwitchingProtocols,
  proxyTo,
  startRecoveryEnvBehindHostileServer,
  type HostileServer,
} from '../helpers/hostile-server.js';
import { FAST_POLICY, TEST_API_KEY, type RecoveryEnv } from '../helpers/recovery-env.js';

// A retry call answered with a redirect or a 101, from a server of the test's own in front of the simulator: the
// server read the call and may have acted on it, so its outcome is unknown. Before, the recovery stopped at once, with
// no round in its report, whether the call had been applied or not.

let env: RecoveryEnv;
let hostile: HostileServer;
let close: () => Promise<void>;

beforeAll(async () => {
  ({ env, hostile, close } = await startRecoveryEnvBehindHostileServer());
}, 60_000);
afterAll(() => close?.());

const retryPosts = (batchId: string) =>
  hostile.calls.filter((call) => call.method === 'POST' && call.path.includes(batchId)).length;
const appliedRetries = (batchId: string) => env.simulator.ledger.forBatch(batchId).retries;

/** Hands the retry POST to the simulator, which applies it, then answers 303 See Other in place of its answer. */
function applyThenSeeOther(request: IncomingMessage, response: ServerResponse): void {
  if (request.method !== 'POST') return proxyTo(env.simulator.url)(request, response);
  void text(request)
    .then((body) =>
      fetch(`${env.simulator.url}${request.url}`, {
        method: 'POST',
        headers: { 'anchor-api-key': TEST_API_KEY, 'content-type': 'application/json' },
        body,
      }),
    )
    .then(() => response.writeHead(303, { location: '/v1/batch-sessions' }).end());
}

async function failureOf(batchId: string): Promise<RecoveryFailedError> {
  const failure = await env.recoveries.result(batchId).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(failure).toBeInstanceOf(RecoveryFailedError);
  return failure as RecoveryFailedError;
}

test('a 303 to a retry call the API applied is reconciled: the round is recorded and no second call goes out', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
  hostile.on(batch.id, applyThenSeeOther);
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY });
  const report = await env.recoveries.result(batch.id);

  expect(retryPosts(batch.id)).toBe(1);
  expect(appliedRetries(batch.id)).toHaveLength(1);
  expect(report.rounds).toEqual([
    expect.objectContaining({
      round: 1,
      callsSent: 1,
      reconciled: true,
      reconcileEffect: 'took_effect',
      retriedSessions: 1,
      apiMessage: expect.stringContaining('unexpected_status') as unknown,
    }),
  ]);
  expect(report.outcome).toBe('recovered');
}, 60_000);

test.each([
  [
    'a 307 redirect',
    (_request: IncomingMessage, response: ServerResponse) => {
      response.writeHead(307, { location: 'https://elsewhere.example/v1/retry' }).end();
    },
    307,
  ],
  ['a 101 (Switching Protocols)', answerSwitchingProtocols, 101],
])(
  '%s to a retry call the API did not apply stops the recovery once reconciled, with the round in its report',
  async (_, answer, status) => {
    const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
    hostile.on(batch.id, (request, response) =>
      request.method === 'POST' ? answer(request, response) : proxyTo(env.simulator.url)(request, response),
    );
    await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY });
    const { report } = await failureOf(batch.id);

    // Once: the same answer would come to a call sent again.
    expect(retryPosts(batch.id)).toBe(1);
    expect(appliedRetries(batch.id)).toHaveLength(0);
    expect(report?.rounds).toEqual([
      expect.objectContaining({
        round: 1,
        callsSent: 1,
        reconciled: true,
        reconcileEffect: 'no_effect',
        retriedSessions: 0,
        reconcileReason: expect.stringContaining('its answer (unexpected_status) does not change') as unknown,
      }),
    ]);
    expect(report?.failure).toEqual({
      type: 'unexpected_status',
      message: expect.stringContaining(`(HTTP ${status})`) as unknown,
    });
  },
  60_000,
);
