import { defaultPayloadConverter } from '@temporalio/common';
import type { Locator, Page } from 'playwright-core';
import { describeSweepSchedule, upsertSweepSchedule, DEFAULT_SWEEP_SCHEDULE_ID } from '../../client/schedules.js';
import { recoveryWorkflowId } from '../../workflows/definitions.js';
import type { SweepResult } from '../../workflows/sweep-input.js';
import { eventually, FAST_POLICY, reachesPhase } from '../helpers/recovery-env.js';
import { startUiEnv, type UiEnv } from './ui-env.js';

// The real Temporal Web UI (2.42.1 served by the dev server; on the cluster target, the version
// compose pins) in Chromium (Debian's, else the one inside @sparticuz/chromium): what an
// operator does by hand, checked through the client library. Screenshots of every step go to
// test-artifacts/web-ui/.

let env: UiEnv;
let page: Page;

beforeAll(async () => {
  env = await startUiEnv();
  page = env.page;
}, 120_000);
afterAll(() => env?.close());

const SLOW_ROUNDS = { ...FAST_POLICY, roundBackoff: { initialInterval: '1h', maximumInterval: '1h' } };
const oneFailingSession = () => env.simulator.createScriptedBatch({ count: 4, script: { '2': ['fail', 'ok'] } });
const workflowsUrl = (query?: string) =>
  `/namespaces/${env.namespace}/workflows${query ? `?query=${encodeURIComponent(query)}` : ''}`;

/**
 * Waits for `locator` to show, reloading the page between tries: the list pages read
 * visibility once per load, and a workflow or schedule run may be indexed a moment later.
 * Each try waits longer than the last (up to 8 s): with fixed 3 s tries, CI's loaded cluster
 * run once timed out on a workflow page whose screenshot, taken just after the last try,
 * showed Completed; a page that takes over 3 s to render was reloaded before it showed.
 */
async function showsAfterReloads(locator: Locator, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let tryMs = 3_000; ; tryMs = Math.min(tryMs * 2, 8_000)) {
    try {
      await locator.waitFor({ state: 'visible', timeout: tryMs });
      return;
    } catch (err) {
      if (Date.now() > deadline) {
        // What the page showed instead, for the failure's reader.
        const shown = await env.screenshot(`timed-out-${what.replaceAll(' ', '-')}`);
        throw new Error(`Timed out waiting for ${what} (the page as it was: ${shown})`, { cause: err });
      }
      await page.reload();
    }
  }
}

/** The status badge in a workflow page's header ("Running", "Completed", …). */
const headerStatus = (status: string) => page.locator('header').getByText(status, { exact: true }).first();

test('recoveries are listed, filtered by AnchorBatchId, and a recovery opens with its status and batch id', async () => {
  const recovered = oneFailingSession();
  const other = oneFailingSession();
  await env.recoveries.start({ batchId: recovered.id, ...FAST_POLICY });
  await env.recoveries.start({ batchId: other.id, ...SLOW_ROUNDS });
  expect((await env.recoveries.result(recovered.id)).outcome).toBe('recovered');
  const recoveredId = recoveryWorkflowId(recovered.id);
  const otherId = recoveryWorkflowId(other.id);

  await page.goto(workflowsUrl('WorkflowType = "recoverBatch"'));
  await showsAfterReloads(page.getByRole('link', { name: recoveredId }), 'both recoveries in the list');
  await page.getByRole('link', { name: otherId }).waitFor();
  await env.screenshot('1a-recoveries-list');

  await page.goto(workflowsUrl(`AnchorBatchId = "${recovered.id}"`));
  const row = page.getByTestId('workflows-summary-configurable-table-row');
  await showsAfterReloads(row.getByRole('link', { name: recoveredId }), 'the filtered recovery');
  expect(await row.count()).toBe(1);
  await row.getByText('Completed', { exact: true }).waitFor();
  await expect(page.getByRole('link', { name: otherId }).count()).resolves.toBe(0);
  await env.screenshot('1b-filtered-by-batch-id');

  await row.getByRole('link', { name: recoveredId }).click();
  await page.waitForURL(new RegExp(`/workflows/${recoveredId}/`));
  await headerStatus('Completed').waitFor();
  // The input shows the batch id; the result is the report with the outcome.
  await page.getByTestId('input-and-result').getByText(recovered.id).first().waitFor();
  await page.getByTestId('input-and-result').getByText('"recovered"').first().waitFor();
  await env.screenshot('1c-recovery-completed');

  await page.getByTestId('search-attributes-tab').click();
  // A read-only JSON view of the indexed fields.
  await page.getByText('"AnchorBatchId"', { exact: true }).waitFor();
  await page.getByText(`"${recovered.id}"`, { exact: true }).waitFor();
  await page.getByText('"RecoveryOutcome"', { exact: true }).waitFor();
  await env.screenshot('1d-search-attributes');
});

test('"Send a Signal" retryNow skips the long round backoff of a running recovery', async () => {
  const batch = oneFailingSession();
  const started = await env.recoveries.start({ batchId: batch.id, ...SLOW_ROUNDS });
  await reachesPhase(env.recoveries, batch.id, 'backing_off');

  await page.goto(`/namespaces/${env.namespace}/workflows/${started.workflowId}/${started.runId}/history`);
  await headerStatus('Running').waitFor();
  await page.getByRole('button', { name: 'More Actions' }).click();
  await page.getByRole('menuitem', { name: 'Send a Signal' }).click();
  // The page renders its actions twice (two layouts); only the open dialog is in the accessibility tree.
  const modal = page.getByRole('dialog', { name: 'Send a Signal' });
  await modal.getByTestId('signal-select-button').click();
  // The UI lists the workflow's signals (from the SDK's workflow metadata query).
  await modal.getByRole('option', { name: 'retryNow' }).click();
  await expect(modal.getByTestId('signal-select').inputValue()).resolves.toBe('retryNow');
  await modal.getByRole('listbox').waitFor({ state: 'hidden' });
  await env.screenshot('2a-send-signal-retryNow');
  await modal.getByRole('button', { name: 'Submit' }).click();
  // UI 2.54 repeats the toast's text in a live region for screen readers.
  await page.getByText('Workflow signaled.').first().waitFor();

  const report = await env.recoveries.result(batch.id);
  expect(report.outcome).toBe('recovered');
  expect(report.rounds).toHaveLength(1);
  expect(env.simulator.ledger.forBatch(batch.id).retries).toHaveLength(1);
  await showsAfterReloads(headerStatus('Completed'), 'the recovery to show Completed');
  await env.screenshot('2b-after-retryNow-completed');
  // The signal's event shows its name: in the timeline above the history (UI 2.42) or in the
  // event's details in the history table (UI 2.54, whose timeline is a tab of its own).
  await page
    .locator('svg text', { hasText: 'retryNow' })
    .or(page.getByText('retryNow', { exact: true }))
    .filter({ visible: true })
    .first()
    .waitFor();
  await page.getByText('Signal Name', { exact: true }).first().waitFor();
});

test('a recovery started from the Start Workflow form runs to completion', async () => {
  const batch = oneFailingSession();
  const workflowId = recoveryWorkflowId(batch.id);
  const input = { batchId: batch.id, maxRounds: 2, ...FAST_POLICY };

  await page.goto(workflowsUrl());
  // A button in UI 2.42, a link in 2.54 (which also adds "Start Workflow Like This One" to every row).
  await page
    .getByRole('button', { name: 'Start Workflow', exact: true })
    .or(page.getByRole('link', { name: 'Start Workflow', exact: true }))
    .click();
  await page.waitForURL(/\/workflows\/start-workflow/);
  await page.getByLabel('Workflow ID').fill(workflowId);
  await page.getByLabel('Task Queue').fill(env.taskQueue);
  await page.getByLabel('Workflow Type').fill('recoverBatch');
  // Input → Data is a JSON code editor (a contenteditable textbox without a name), the last textbox of the form.
  const data = page.getByRole('textbox').last();
  await data.fill(JSON.stringify(input));
  // Leaving the editor reformats the JSON and moves the button down: blur before clicking it.
  await data.blur();
  await expect(data.textContent()).resolves.toContain(`"batchId": "${batch.id}"`);
  // The batch id as a search attribute too, so the recovery is listed under its batch before a worker runs it. UI
  // 2.42 keeps the section under More options.
  const customAttributes = page.getByRole('heading', { name: 'Custom Search Attributes' });
  if (!(await customAttributes.isVisible())) await page.getByRole('button', { name: 'More options' }).click();
  await page.getByRole('button', { name: 'Add', exact: true }).first().click();
  await page.getByRole('button', { name: 'Select Attribute' }).click();
  await page.getByRole('option', { name: 'AnchorBatchId' }).click();
  await page.getByLabel('Value', { exact: true }).fill(batch.id);
  await env.screenshot('3a-start-workflow-form');
  await page.getByTestId('start-workflow-button').click();
  const started = page.getByRole('link', { name: 'Workflow started successfully' });
  await started.waitFor();
  await env.screenshot('3b-start-workflow-started');
  await started.click();
  await page.waitForURL(new RegExp(`/workflows/${workflowId}/`));

  const report = await env.recoveries.result(batch.id);
  expect(report).toMatchObject({ batchId: batch.id, outcome: 'recovered', rounds: [expect.anything()] });
  const description = await env.recoveries.handle(batch.id).describe();
  expect(description).toMatchObject({ workflowId, type: 'recoverBatch', taskQueue: env.taskQueue });
  const { events } = await env.recoveries.handle(batch.id).fetchHistory();
  const startAttributes = events?.[0]?.workflowExecutionStartedEventAttributes?.searchAttributes?.indexedFields;
  expect(defaultPayloadConverter.fromPayload(startAttributes?.AnchorBatchId ?? {})).toBe(batch.id);
  await showsAfterReloads(headerStatus('Completed'), 'the started recovery to show Completed');
  await env.screenshot('3c-started-recovery-completed');
});

test('the sweep schedule is paused (with a reason) and triggered from the Schedules page', async () => {
  await upsertSweepSchedule(env.client, { every: '1h', taskQueue: env.taskQueue, recovery: { ...FAST_POLICY } });
  const failed = env.simulator.createScriptedBatch({
    count: 2,
    script: { '1': ['fail', 'ok'] },
    created_at: new Date(Date.now() - 60_000).toISOString(),
  });

  await page.goto(`/namespaces/${env.namespace}/schedules`);
  await showsAfterReloads(
    page.getByRole('link', { name: DEFAULT_SWEEP_SCHEDULE_ID }),
    'the sweep schedule in the list',
  );
  await env.screenshot('4a-schedules-list');
  await page.getByRole('link', { name: DEFAULT_SWEEP_SCHEDULE_ID }).click();
  await page.getByTestId('schedule-name').getByText(DEFAULT_SWEEP_SCHEDULE_ID).waitFor();

  await page.getByRole('button', { name: 'Pause', exact: true }).click();
  const pauseModal = page.getByRole('dialog', { name: 'Pause Schedule?' });
  await pauseModal.getByTestId('pause-reason').fill('paused from the Web UI test');
  await env.screenshot('4b-pause-with-reason');
  await pauseModal.getByTestId('confirm-modal-button').click();
  const paused = await eventually('the schedule to be paused', async () => {
    const summary = await describeSweepSchedule(env.client);
    return summary.paused ? summary : undefined;
  });
  expect(paused.note).toBe('paused from the Web UI test');
  // The page may read the schedule back before the server applied the pause.
  await showsAfterReloads(
    page.getByRole('button', { name: 'Unpause', exact: true }),
    'the schedule page to show Paused',
  );
  await page.getByText('paused from the Web UI test', { exact: true }).waitFor();
  await env.screenshot('4c-schedule-paused');

  await page.getByRole('button', { name: 'Schedule Actions' }).click();
  await page.getByTestId('trigger-schedule').click();
  const triggerModal = page.getByRole('dialog', { name: 'Trigger Immediately' });
  await triggerModal.getByTestId('confirm-modal-button').click();
  const run = await eventually('a sweep run of the schedule', async () => {
    const summary = await describeSweepSchedule(env.client);
    return summary.recentRuns[0];
  });
  expect(run.workflowId).toMatch(new RegExp(`^${DEFAULT_SWEEP_SCHEDULE_ID}-`));
  const sweep = (await env.client.workflow.getHandle(run.workflowId).result()) as SweepResult;
  expect(sweep.started).toContainEqual({ batchId: failed.id, workflowId: recoveryWorkflowId(failed.id) });
  expect((await describeSweepSchedule(env.client)).paused).toBe(true);

  await showsAfterReloads(page.getByText(run.workflowId).first(), 'the sweep run on the schedule page');
  await env.screenshot('4d-schedule-triggered');
});

test('a recovery page reads without JSON: summary, live details with the rounds table, labelled activities and timers', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 4, script: { '2': 'always-fail' } });
  const started = await env.recoveries.start({ batchId: batch.id, ...SLOW_ROUNDS });
  await reachesPhase(env.recoveries, batch.id, 'backing_off');
  await env.recoveries.retryNow(batch.id);
  await eventually('round 1 to be sent and the recovery to back off before round 2', async () => {
    const report = await env.recoveries.report(batch.id);
    return report.rounds.length === 1 && report.phase === 'backing_off' ? true : undefined;
  });

  try {
    await page.goto(`/namespaces/${env.namespace}/workflows/${started.workflowId}/${started.runId}/history`);
    await headerStatus('Running').waitFor();
    // UI 2.42 draws the timeline above the event history; 2.54 has it on a tab of its own.
    const timelineTab = page.getByRole('tab', { name: 'Timeline', exact: true });
    if ((await timelineTab.count()) > 0) await timelineTab.click();
    await env.screenshot('5a-recovery-timeline');
    // The timeline labels each activity with its summary and each timer with its own (SVG text in 2.42).
    for (const label of [
      'awaitBatchSettled • status read',
      'announceAndSendRetry • retry round 1',
      'backoff before round 2',
    ]) {
      await page
        .locator('svg text', { hasText: label })
        .or(page.getByText(label))
        .filter({ visible: true })
        .first()
        .waitFor();
    }

    await page.getByRole('tab', { name: 'User Metadata' }).click();
    // The UI renders each markdown text in a frame of its own: summary, details, then current details.
    const rendered = page.locator('iframe[title="output"]');
    const summary = rendered.nth(0).contentFrame();
    const staticDetails = rendered.nth(1).contentFrame();
    const currentDetails = rendered.last().contentFrame();
    // The static summary: the batch and the policy in one line; the details: the policy as a table.
    await summary
      .getByText(`Recover batch ${batch.id} · up to 3 rounds of failed sessions · 1 attempt per session · backoff 1h`)
      .waitFor();
    await staticDetails.getByRole('cell', { name: 'Round backoff' }).waitFor();
    // The live details (a metadata query the worker answers): phase, the rounds table, what still fails.
    await currentDetails.getByText('Backing off', { exact: true }).waitFor();
    await currentDetails.getByRole('heading', { name: 'Rounds (1 of at most 3)' }).waitFor();
    const rounds = currentDetails.getByRole('table').first();
    await expect(rounds.getByRole('columnheader').allInnerTexts()).resolves.toEqual([
      'Round',
      'Started',
      'Retried',
      'API status',
      'Failed before → after',
      'Recovered',
    ]);
    await expect(rounds.getByRole('row').nth(1).getByRole('cell').allInnerTexts()).resolves.toEqual([
      '1',
      expect.stringMatching(/ UTC$/),
      '1',
      '200',
      '1 → 1',
      '0',
    ]);
    await currentDetails.getByRole('heading', { name: 'Still failing (1)' }).waitFor();
    await currentDetails.getByRole('cell', { name: /^Browser pod failed to start/ }).waitFor();
    await env.screenshot('5b-recovery-user-metadata');
    // Every event with a summary: listed with its kind and state below the metadata (UI 2.42), or
    // labelled "<activity type> • <summary>" on the timeline tab (UI 2.54, which has no such list).
    if ((await timelineTab.count()) > 0) await timelineTab.click();
    for (const label of ['status read', 'retry round 1', 'backoff before round 1', 'backoff before round 2']) {
      await page
        .getByText(label, { exact: true })
        .or(page.getByText(new RegExp(` • ${label}$`)))
        .filter({ visible: true })
        .first()
        .waitFor();
    }
  } finally {
    await env.recoveries.handle(batch.id).terminate('test done');
  }
});
