import { WorkflowUpdateFailedError } from '@temporalio/client';
import { RawValue, type LogMetadata, type Payload } from '@temporalio/common';
import { Runtime } from '@temporalio/worker';
import {
  batchStatusPollerWorkflowId,
  recoveryWorkflowId,
  updateRecoveryPolicy,
  workflowTaskFailures,
} from '../../workflows/definitions.js';
import { eventually, FAST_POLICY, startRecoveryEnv, type RecoveryEnv } from '../helpers/recovery-env.js';

// A signal whose argument the worker cannot decode: from a client with an encryption codec, and JSON that is not.
const SEALED = 'sealed-by-a-codec';
const NOT_JSON = '{"batchId": "cut short';
const UNKNOWN_ENCODING: Payload = {
  metadata: { encoding: Buffer.from('binary/encrypted') },
  data: Buffer.from(SEALED),
};
const INVALID_JSON: Payload = { metadata: { encoding: Buffer.from('json/plain') }, data: Buffer.from(NOT_JSON) };

let env: RecoveryEnv;
const warnings: { message: string; meta?: LogMetadata }[] = [];
const logger = Runtime.instance().logger;
const warn = logger.warn.bind(logger);

beforeAll(async () => {
  // The worker's log, where the workflows' warnings arrive through the SDK's sink.
  logger.warn = (message, meta) => {
    warnings.push({ message, ...(meta && { meta }) });
    warn(message, meta);
  };
  env = await startRecoveryEnv();
  await env.startPollerWorker();
});
afterAll(async () => {
  await env.close();
  logger.warn = warn;
});

const SLOW_ROUNDS = { ...FAST_POLICY, roundBackoff: { initialInterval: '1h', maximumInterval: '1h' } };
const oneFailingSession = () => env.simulator.createScriptedBatch({ count: 4, script: { '2': ['fail', 'ok'] } });

/** Sent as the reviewer did, past the client's payload converter: the payload reaches the history as it is. */
async function signalWith(workflowId: string, signalName: string, payload: Payload): Promise<void> {
  await env.client.workflowService.signalWorkflowExecution({
    namespace: env.client.options.namespace,
    workflowExecution: { workflowId },
    signalName,
    identity: 'undecodable-signal-test',
    input: { payloads: [payload] },
  });
}

/** Waits for a workflow task to complete after the last `signalName` signal; a failed one fails the test at once. */
async function signalTaken(workflowId: string, signalName: string): Promise<void> {
  await eventually(`the ${signalName} signal to be taken`, async () => {
    const events = (await env.client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
    const signalled = events.map((event) => event.workflowExecutionSignaledEventAttributes?.signalName);
    const last = signalled.lastIndexOf(signalName);
    if (last < 0) return undefined;
    const after = events.slice(last);
    const failed = after.find((event) => event.workflowTaskFailedEventAttributes);
    if (failed) {
      throw new Error(`workflow task failed: ${failed.workflowTaskFailedEventAttributes?.failure?.message}`);
    }
    return after.some((event) => event.workflowTaskCompletedEventAttributes) ? true : undefined;
  });
}

async function failedTasks(workflowId: string): Promise<string[]> {
  const events = (await env.client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
  return events.flatMap((event) => event.workflowTaskFailedEventAttributes?.failure?.message ?? []);
}

/** The warnings naming `signal` as one whose argument was left out; none may quote a payload. */
function undecodableWarnings(signal: string) {
  const logged = JSON.stringify(warnings);
  expect(logged).not.toContain(SEALED);
  expect(logged).not.toContain(NOT_JSON);
  return warnings.filter(({ message, meta }) => /cannot be decoded/.test(message) && meta?.['signal'] === signal);
}

test('a recovery takes a retryNow and a batchSettled it cannot decode as bare signals, and recovers', async () => {
  const batch = oneFailingSession();
  const workflowId = recoveryWorkflowId(batch.id);
  await env.recoveries.start({ batchId: batch.id, ...SLOW_ROUNDS });
  await eventually('the recovery to back off', async () =>
    (await env.recoveries.report(batch.id)).phase === 'backing_off' ? true : undefined,
  );

  // An update with such an argument is rejected before it is accepted, and leaves the recovery as it was.
  const update = env.client.workflow
    .getHandle(workflowId)
    .executeUpdate(updateRecoveryPolicy.name, { args: [RawValue.fromPayload(UNKNOWN_ENCODING)] });
  await expect(update).rejects.toBeInstanceOf(WorkflowUpdateFailedError);

  await signalWith(workflowId, 'batchSettled', INVALID_JSON);
  await signalTaken(workflowId, 'batchSettled');
  await signalWith(workflowId, 'retryNow', UNKNOWN_ENCODING);
  await signalTaken(workflowId, 'retryNow');

  const report = await env.recoveries.result(batch.id);
  expect(report.outcome).toBe('recovered');
  expect(report.rounds).toHaveLength(1);
  expect(await failedTasks(workflowId)).toEqual([]);
  expect(undecodableWarnings('batchSettled')).toHaveLength(1);
  expect(undecodableWarnings('retryNow')).toHaveLength(1);
});

test('a recovery paused by a signal it cannot decode ends at its deadline with its report', async () => {
  const batch = oneFailingSession();
  const workflowId = recoveryWorkflowId(batch.id);
  await env.recoveries.start({ batchId: batch.id, ...SLOW_ROUNDS, deadline: '8s' });
  await eventually('the recovery to back off', async () =>
    (await env.recoveries.report(batch.id)).phase === 'backing_off' ? true : undefined,
  );

  await signalWith(workflowId, 'pauseRecovery', UNKNOWN_ENCODING);
  await signalTaken(workflowId, 'pauseRecovery');
  expect((await env.recoveries.report(batch.id)).paused).toBe(true);

  const report = await env.recoveries.result(batch.id);
  expect(report.outcome).toBe('deadline');
  expect(report.stillFailing.total).toBe(1);
  expect(await failedTasks(workflowId)).toEqual([]);
  expect(undecodableWarnings('pauseRecovery')).toHaveLength(1);
});

test('the poller takes registrations it cannot decode as none, and goes on waking recoveries', async () => {
  const pollerId = batchStatusPollerWorkflowId(env.taskQueue);
  await signalWith(pollerId, 'watchBatch', UNKNOWN_ENCODING);
  await signalTaken(pollerId, 'watchBatch');
  await signalWith(pollerId, 'watchBatches', INVALID_JSON);
  await signalTaken(pollerId, 'watchBatches');

  const { raw } = await env.client.workflow.getHandle(pollerId).describe();
  expect(workflowTaskFailures(raw.pendingWorkflowTask)).toBe(0);
  expect(await failedTasks(pollerId)).toEqual([]);
  const batch = oneFailingSession();
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY });
  expect((await env.recoveries.result(batch.id)).outcome).toBe('recovered');
  expect(undecodableWarnings('watchBatch')).toHaveLength(1);
  expect(undecodableWarnings('watchBatches')).toHaveLength(1);
});
