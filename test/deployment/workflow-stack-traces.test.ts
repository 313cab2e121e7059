import { FAST_POLICY, startRecoveryEnv, type RecoveryEnv } from '../helpers/recovery-env.js';

// The SDK takes a stack trace of every promise a workflow creates, for the Web UI's stack trace view; the worker caps
// their frames (WORKER_WORKFLOW_STACK_TRACE_FRAMES) to spend less CPU on each. The view must still show where the
// workflow waits.

const FRAMES = 6;

let env: RecoveryEnv;
beforeAll(async () => {
  env = await startRecoveryEnv();
  await env.startWorker(undefined, { workflowStackTraceFrames: FRAMES });
});
afterAll(() => env.close());

/** What the SDK answers to the Web UI's `__enhanced_stack_trace` query, the parts read here. */
interface EnhancedStackTrace {
  stacks: { locations: { file_path?: string; function_name?: string }[] }[];
}

test("a waiting recovery's stack traces keep the frames where it waits, at most the configured frames", async () => {
  const batch = env.simulator.createScriptedBatch({ count: 1, pending_phase: { ms: 600_000 } });
  const { workflowId } = await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY });
  const handle = env.client.workflow.getHandle(workflowId);
  const waitsForBatch = (trace: EnhancedStackTrace) =>
    trace.stacks.some(
      ({ locations: [innermost] }) =>
        innermost?.function_name === 'waitForSettledBatch' &&
        innermost.file_path?.endsWith('workflows/recover-batch.ts'),
    );
  let trace = await handle.query<EnhancedStackTrace>('__enhanced_stack_trace');
  while (!waitsForBatch(trace)) trace = await handle.query<EnhancedStackTrace>('__enhanced_stack_trace');

  // One frame of the limit is the SDK's promise hook, which it leaves out. The deepest stacks are those of the
  // workflow's start, 9 frames below the hook with V8's default of 10.
  expect(Math.max(...trace.stacks.map((stack) => stack.locations.length))).toBe(FRAMES - 1);
  await handle.terminate('test finished');
}, 60_000);
