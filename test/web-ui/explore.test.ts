import { upsertSweepSchedule } from '../../client/schedules.js';
import { eventually, FAST_POLICY } from '../helpers/recovery-env.js';
import { startUiEnv, type UiEnv } from './ui-env.js';

let env: UiEnv;
beforeAll(async () => {
  env = await startUiEnv();
}, 120_000);
afterAll(() => env?.close());

test('explore', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 4, script: { '2': ['fail', 'ok'] } });
  const started = await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY, roundBackoff: { initialInterval: '1h', maximumInterval: '1h' } });
  await eventually('backing off', async () => ((await env.recoveries.report(batch.id)).phase === 'backing_off' ? true : undefined));
  const { page } = env;
  await page.goto(`/namespaces/default/workflows?query=${encodeURIComponent(`AnchorBatchId="${batch.id}"`)}`);
  await page.getByText(started.workflowId).first().waitFor();
  await env.screenshot('x-list');
  await env.dumpDom('x-list');
  await page.goto(`/namespaces/default/workflows/${started.workflowId}/${started.runId}/history`);
  await page.getByText(started.workflowId).first().waitFor();
  await page.waitForTimeout(3000);
  await env.screenshot('x-workflow');
  await env.dumpDom('x-workflow');
  await page.goto(`/namespaces/default/workflows/start-workflow`);
  await page.waitForTimeout(3000);
  await env.screenshot('x-start');
  await env.dumpDom('x-start');
  await upsertSweepSchedule(env.client, { every: '1h', taskQueue: env.taskQueue });
  await page.goto(`/namespaces/default/schedules`);
  await page.waitForTimeout(3000);
  await env.screenshot('x-schedules');
  await env.dumpDom('x-schedules');
  await page.goto(`/namespaces/default/schedules/anchor-batch-sweep`);
  await page.waitForTimeout(3000);
  await env.screenshot('x-schedule');
  await env.dumpDom('x-schedule');
  expect(1).toBe(1);
}, 120_000);
