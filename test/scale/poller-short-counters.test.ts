import { FAST_POLICY, type RecoveryEnv, startRecoveryEnv } from '../helpers/recovery-env.js';

// A batch the list shows finished before its counters account for every request: only its recovery's own read, which
// sees its sessions and when it completed, can tell whether the failures the counters show are all of them.

let env: RecoveryEnv;

beforeAll(async () => {
  env = await startRecoveryEnv();
  await env.startPollerWorker();
});
afterAll(() => env.close());

test.each([
  // Before: woken with those counters, the recovery ended `clean` with no call and its failed session left failing.
  { case: 'completed 10 minutes ago, past the 5 its counters had to catch up', completedAgoMs: 600_000 },
  // Before: in flight to the poller for good, the recovery held to its deadline.
  { case: 'with no completion time', completedAgoMs: undefined },
])(
  'a batch listed $case, 0 failed of 2 counted of 3, is read by its recovery and retried',
  async ({ completedAgoMs }) => {
    const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
    const listed = {
      batch_id: batch.id,
      status: 'completed',
      total_requests: 3,
      completed_requests: 2,
      failed_requests: 0,
      ...(completedAgoMs !== undefined && {
        actual_completion_time: new Date(Date.now() - completedAgoMs).toISOString(),
      }),
    };
    env.simulator.faults.clear('list');
    env.simulator.faults.add('list', { type: 'mistyped_field', field: 'data.batches.0', value: listed });

    await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY });
    const report = await env.recoveries.result(batch.id);

    expect(report.outcome).toBe('recovered');
    expect(env.retryPosts(batch.id)).toHaveLength(1);
  },
);
