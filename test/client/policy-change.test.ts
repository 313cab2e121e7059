import { PolicyChangeRejectedError } from '../../client/recoveries.js';
import { FAST_POLICY, reachesPhase, startRecoveryEnv, type RecoveryEnv } from '../helpers/recovery-env.js';

// The policy update as the client library sends it (and the Web UI's update form, which takes any JSON), to a
// recovery run by an in-process worker.

let env: RecoveryEnv;

beforeAll(async () => {
  env = await startRecoveryEnv();
  await env.startWorker();
});
afterAll(() => env.close());

test('a policy change whose groups set no field is refused, naming each, and accepts no update', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': 'always-fail' } });
  const handle = env.recoveries.handle(batch.id);
  await env.recoveries.start({
    batchId: batch.id,
    ...FAST_POLICY,
    roundBackoff: { initialInterval: '1h', maximumInterval: '1h' },
  });
  try {
    await reachesPhase(env.recoveries, batch.id, 'backing_off');
    const groupFields = 'initialInterval, backoffCoefficient, maximumInterval';

    // Before, accepted as a success that changed nothing.
    const rejected = await env.recoveries.updatePolicy(batch.id, { roundBackoff: {} }).catch((err: unknown) => err);
    expect(rejected).toBeInstanceOf(PolicyChangeRejectedError);
    expect((rejected as Error).message).toMatch(
      new RegExp(`rejected: Invalid policy change: roundBackoff: give at least one of ${groupFields}$`),
    );
    await expect(env.recoveries.updatePolicy(batch.id, { roundBackoff: {}, poll: {} })).rejects.toThrow(
      `roundBackoff: give at least one of ${groupFields}; poll: give at least one of ${groupFields}`,
    );
    const accepted = async () =>
      ((await handle.fetchHistory()).events ?? []).filter(
        (event) => event.workflowExecutionUpdateAcceptedEventAttributes,
      ).length;
    expect(await accepted()).toBe(0);

    // A change beside an empty group is a change.
    expect((await env.recoveries.updatePolicy(batch.id, { roundBackoff: {}, maxRounds: 4 })).maxRounds).toBe(4);
    expect(await accepted()).toBe(1);
  } finally {
    await handle.terminate('test done');
  }
});
