import { readFile } from 'node:fs/promises';
import { recoveryWorkflowId } from '../../workflows/definitions.js';
import { NOTIFY_QUEUE_MARKER } from '../../workflows/recover-batch.js';
import { repoRoot } from '../client/child-process.js';
import { eventually, FAST_POLICY, startRecoveryEnv, type RecoveryEnv } from '../helpers/recovery-env.js';

// docs/deployment.md's rollback runbook: its table of patch IDs is the one the workflow code asks for, and the query
// it gives finds a running recovery by the patch marker the SDK records in TemporalChangeVersion.

const WORKFLOW_FILES = {
  'workflows/recover-batch.ts': 'recoverBatch',
  'workflows/sweep-failed-batches.ts': 'sweepFailedBatches',
  'workflows/batch-status-poller.ts': 'batchStatusPoller',
} as const;

/** `<patch ID> <workflow>` for each patch the workflow code asks for: named constants and literals alike. */
async function patchesInCode(): Promise<string[]> {
  const patches: string[] = [];
  for (const [file, workflow] of Object.entries(WORKFLOW_FILES)) {
    const source = await readFile(`${repoRoot}${file}`, 'utf8');
    const named = source.matchAll(/const [A-Z_]+_(?:PATCH|MARKER) = '([a-z0-9-]+)'/g);
    const literal = source.matchAll(/(?:patched|applied)\('([a-z0-9-]+)'\)/g);
    for (const [, id] of [...named, ...literal]) patches.push(`${id} ${workflow}`);
  }
  return patches.sort();
}

/** `<patch ID> <workflow>` for each row of the runbook's table. */
async function patchesInRunbook(): Promise<string[]> {
  const docs = await readFile(`${repoRoot}docs/deployment.md`, 'utf8');
  const runbook = docs.slice(docs.indexOf('## Roll back a release'));
  const rows = runbook.matchAll(/^\| `([a-z0-9-]+)` +\| (\w+)[^|]*\| `[0-9a-f]{7}` +\|$/gm);
  return [...rows].map(([, id, workflow]) => `${id} ${workflow}`).sort();
}

test('the runbook lists every patch the workflow code asks for, with its workflow, and no other', async () => {
  const inCode = await patchesInCode();

  expect(inCode.length).toBeGreaterThan(20);
  expect(await patchesInRunbook()).toEqual(inCode);
});

describe('the runbook query', () => {
  let env: RecoveryEnv;

  beforeAll(async () => {
    env = await startRecoveryEnv();
    await env.startWorker();
  });
  afterAll(() => env?.close());

  test("finds a running recovery by its release's marker, and no longer once it ended", async () => {
    const batch = env.simulator.createScriptedBatch({ count: 1, pending_phase: { ms: 600_000 } });
    const workflowId = recoveryWorkflowId(batch.id);
    // The runbook's query, narrowed to this test's recovery.
    const query = (status: string) =>
      `ExecutionStatus = "${status}" AND TemporalChangeVersion IN ("${NOTIFY_QUEUE_MARKER}") ` +
      `AND WorkflowId = "${workflowId}"`;
    const listed = async (status: string) => {
      const ids: string[] = [];
      for await (const execution of env.client.workflow.list({ query: query(status) })) ids.push(execution.workflowId);
      return ids;
    };
    await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY });

    // Visibility lags the history by up to a second or so.
    expect(
      await eventually('the running recovery in the list', async () => {
        const ids = await listed('Running');
        return ids.length > 0 ? ids : undefined;
      }),
    ).toEqual([workflowId]);
    const { typedSearchAttributes } = await env.client.workflow.getHandle(workflowId).describe();
    expect(typedSearchAttributes.getAll().find((pair) => pair.key.name === 'TemporalChangeVersion')?.value).toEqual([
      NOTIFY_QUEUE_MARKER,
    ]);

    await env.recoveries.cancel(batch.id);
    expect((await env.recoveries.result(batch.id)).outcome).toBe('operator_cancelled');
    await eventually('the ended recovery out of the running list', async () =>
      (await listed('Running')).length === 0 ? true : undefined,
    );
    expect(await listed('Completed')).toEqual([workflowId]);
  });
});
