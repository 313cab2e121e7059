import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Client } from '@temporalio/client';
import { parse } from 'yaml';
import { BatchRecoveries } from '../../client/recoveries.js';
import { startSimulator, type RunningSimulator } from '../../simulator/index.js';
import { batchStatusPollerTaskQueue, notificationTaskQueue } from '../../workflows/definitions.js';
import type { sweepFailedBatches } from '../../workflows/sweep-failed-batches.js';
import { killLeftoverChildren, repoRoot } from '../client/child-process.js';
import { spawnWorkerProcess, WORKER_STARTED, type WorkerProcess } from '../deployment/worker-process.js';
import { answerWith, startHostileServer } from '../helpers/hostile-server.js';
import { eventually, FAST_POLICY, TEST_API_KEY } from '../helpers/recovery-env.js';
import { connectClient, temporalAddress, uniqueTaskQueue } from '../helpers/temporal.js';
import { startWebhookReceiver } from '../notify/webhook-receiver.js';

// The alert rules and the dashboard: checked and unit-tested with promtool (Debian's `prometheus` package, or
// the pinned build test/global-setup.js makes), and every metric they name is one a real worker process exports.

const run = promisify(execFile);
const prometheusDir = `${repoRoot}deploy/prometheus`;
/** Set by test/global-setup.js. */
const promtool = process.env.TEST_PROMTOOL as string;

interface Rule {
  alert?: string;
  expr: string;
}

async function alertRules(): Promise<Rule[]> {
  const file = parse(await readFile(`${prometheusDir}/alerts.yml`, 'utf8')) as { groups: { rules: Rule[] }[] };
  return file.groups.flatMap((group) => group.rules);
}

interface Panel {
  title: string;
  targets: { expr: string }[];
}

async function dashboardPanels(): Promise<Panel[]> {
  const dashboard = JSON.parse(await readFile(`${repoRoot}deploy/grafana/anchor-batch-recovery.json`, 'utf8')) as {
    panels: Panel[];
  };
  return dashboard.panels;
}

async function dashboardExpressions(): Promise<string[]> {
  return (await dashboardPanels()).flatMap((panel) => panel.targets.map((target) => target.expr));
}

/** The query of the dashboard's panel whose title starts with `title`. */
async function panelExpr(title: string): Promise<string> {
  return (await dashboardPanels()).find((panel) => panel.title.startsWith(title))!.targets[0]!.expr;
}

/** The lines of a worker's metrics endpoint that match `pattern`. */
async function metricSamples(worker: WorkerProcess, pattern: RegExp): Promise<string[]> {
  const text = await (await fetch(`http://127.0.0.1:${worker.metricsPort}/metrics`)).text();
  return text.split('\n').filter((line) => pattern.test(line));
}

/**
 * The samples of a metric workflow code counts, once there are `count`: the SDK hands a workflow's metrics to the
 * exporter after its task, so they may come after the workflow's end that the test waited for.
 */
async function workflowMetricSamples(worker: WorkerProcess, pattern: RegExp, count: number): Promise<string[]> {
  await eventually(`${count} samples matching ${pattern}`, async () =>
    (await metricSamples(worker, pattern)).length === count ? true : undefined,
  );
  return metricSamples(worker, pattern);
}

/** A TCP proxy to the suite's Temporal server; once closed, the connections through it end and new ones are refused. */
async function startTemporalProxy(): Promise<{ address: string; close(): Promise<void> }> {
  const [host, port] = temporalAddress().split(':');
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(Number(port), host);
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      sockets.add(from);
      from.pipe(to);
      from.on('close', () => to.destroy());
      from.on('error', () => to.destroy());
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      const closed = new Promise((resolve) => server.close(resolve));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}

const metricNames = (expr: string) => expr.match(/\b(?:anchor|temporal)_[a-z_]+\b/g) ?? [];

afterAll(killLeftoverChildren);

test('promtool accepts the rules and the scrape config', async () => {
  const rules = await run(promtool, ['check', 'rules', 'alerts.yml'], { cwd: prometheusDir });
  const config = await run(promtool, ['check', 'config', 'prometheus.yml'], { cwd: prometheusDir });

  expect(rules.stdout).toContain(`SUCCESS: ${(await alertRules()).length} rules found`);
  expect(config.stdout).toContain('is valid prometheus config file syntax');
});

test('promtool unit tests pass, with a test case for every alert', async () => {
  const tests = parse(await readFile(`${prometheusDir}/alerts.test.yml`, 'utf8')) as {
    tests: { alert_rule_test: { alertname: string; exp_alerts: unknown[] }[] }[];
  };
  const firingCases = new Set(
    tests.tests.flatMap((group) =>
      group.alert_rule_test.filter((entry) => entry.exp_alerts.length > 0).map((entry) => entry.alertname),
    ),
  );

  const result = await run(promtool, ['test', 'rules', 'alerts.test.yml'], { cwd: prometheusDir });

  expect(result.stdout).toContain('SUCCESS');
  expect([...firingCases].sort()).toEqual((await alertRules()).map((rule) => rule.alert).sort());
});

// Grafana's range variables as the panel would be viewed: the last hour, at one point a minute.
const GRAFANA_RANGE = { $__range: '1h', $__rate_interval: '1m' };

/**
 * A sample every 15 s, as prometheus.yml scrapes. At one a minute, a panel's [1m] range held two samples on Debian's
 * Prometheus 2 and one on compose's 3, whose ranges leave out their start: too few for increase() there.
 */
const SAMPLE_INTERVAL = '15s';

/** Runs a promtool test of `expr`, with the range variables set, against `series`, where `exp_samples` expect. */
async function promqlTest(
  expr: string,
  series: { series: string; values: string }[],
  evalTime: string,
  expected: unknown,
) {
  const resolved = Object.entries(GRAFANA_RANGE).reduce((text, [name, value]) => text.replaceAll(name, value), expr);
  const dir = await mkdtemp(path.join(tmpdir(), 'dashboard-promql-'));
  try {
    const file = path.join(dir, 'panel.test.yml');
    const test = {
      rule_files: [],
      evaluation_interval: '1m',
      tests: [
        {
          interval: SAMPLE_INTERVAL,
          input_series: series,
          promql_expr_test: [{ expr: resolved, eval_time: evalTime, exp_samples: expected }],
        },
      ],
    };
    await writeFile(file, JSON.stringify(test));
    // promtool says what failed on stderr.
    return await run(promtool, ['test', 'rules', file]).then(
      (result) => result.stdout,
      (err: { stdout: string; stderr: string }) => `${err.stdout}${err.stderr}`,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// The SDK's counters start at 1 in a fresh worker process: increase() alone sees no change in a series whose first
// sample is already the first event (alerts.yml says how RecoveryEndedBadly counts them).
test("the dashboard's recoveries ended and bad ends count a fresh worker's first ends, as RecoveryEndedBadly does", async () => {
  const labels = 'namespace="default",taskQueue="q",workflowType="recoverBatch"';
  const series = [
    // A worker started 5 minutes in: its first recovery ended exhausted, the next two failed, the others recovered.
    { series: `anchor_recoveries{${labels},outcome="exhausted"}`, values: '_x20 1x100' },
    { series: `anchor_recoveries{${labels},outcome="failed"}`, values: '_x24 2x96' },
    { series: `anchor_recoveries{${labels},outcome="recovered"}`, values: '_x28 1+0.25x92' },
  ];

  // The minute after the exhausted end: it is out of the interval, the failed ends just in.
  const ended = await promqlTest(await panelExpr('Recoveries ended, by outcome'), series, '6m', [
    { labels: '{outcome="exhausted"}', value: 0 },
    { labels: '{outcome="failed"}', value: 2 },
  ]);
  const badEnds = await promqlTest(await panelExpr('Bad ends in the range'), series, '30m', [
    { labels: '{outcome="exhausted"}', value: 1 },
    { labels: '{outcome="failed"}', value: 2 },
  ]);

  expect([ended, badEnds]).toEqual([expect.stringContaining('SUCCESS'), expect.stringContaining('SUCCESS')]);
});

test("the dashboard's workflow task failures count a fresh worker's first one, as RecoveryStuckRunning does", async () => {
  const labels = 'namespace="default",task_queue="q",workflow_type="recoverBatch"';
  const series = [
    // After a deploy, a stuck recovery's next attempt fails on a worker that had none yet; the old worker is gone.
    { series: `temporal_workflow_task_execution_failed{${labels},instance="old"}`, values: '3x20' },
    { series: `temporal_workflow_task_execution_failed{${labels},instance="new"}`, values: '_x24 1x96' },
  ];

  const result = await promqlTest(await panelExpr('Workflow task failures'), series, '6m', [
    { labels: '{workflow_type="recoverBatch"}', value: 1 },
  ]);

  expect(result).toContain('SUCCESS');
});

test("the dashboard's batches sweeps left count a fresh worker's first sweep, as SweepsKeepLeavingBatches does", async () => {
  const labels = 'namespace="default",taskQueue="q",workflowType="sweepFailedBatches"';
  const series = [
    // A worker started 5 minutes in: its first sweep, the run that ended it, left 3 batches over maxStarts.
    { series: `anchor_sweep_batches_left{${labels},reason="over_limit"}`, values: '_x20 3x100' },
    { series: `anchor_sweep_batches_left{${labels},reason="start_failed"}`, values: '_x20 0x100' },
  ];

  const result = await promqlTest(await panelExpr('Batches sweeps left'), series, '5m', [
    { labels: '{reason="over_limit"}', value: 3 },
    { labels: '{reason="start_failed"}', value: 0 },
  ]);

  expect(result).toContain('SUCCESS');
});

// A worker whose counts fail keeps its last value: the panel showed a stale count long after the recoveries had ended,
// where RecoveryPastDeadline leaves it out.
test("the dashboard's recoveries past their deadline leave out a worker whose counts fail, as RecoveryPastDeadline does", async () => {
  const worker = (instance: string) => `instance="${instance}",job="anchor-recovery-worker",namespace="default"`;
  const series = [
    // worker-1 counted 1 until 5m, then its counts fail; worker-2 counts 0 throughout.
    { series: `anchor_recoveries_past_deadline{${worker('worker-1:9464')}}`, values: '1x160' },
    {
      series: `anchor_recoveries_past_deadline_counted_at_seconds{${worker('worker-1:9464')}}`,
      values: '0+15x20 300x140',
    },
    { series: `anchor_recoveries_past_deadline{${worker('worker-2:9464')}}`, values: '0x160' },
    { series: `anchor_recoveries_past_deadline_counted_at_seconds{${worker('worker-2:9464')}}`, values: '0+15x160' },
  ];

  const panel = await panelExpr('Recoveries running past their deadline');
  const result = await promqlTest(panel, series, '25m', [{ labels: '{namespace="default"}', value: 0 }]);

  expect(result).toContain('SUCCESS');
});

describe('against a worker process', () => {
  let simulator: RunningSimulator;
  let client: Client;

  beforeAll(async () => {
    simulator = await startSimulator({ apiKeys: [TEST_API_KEY], attemptDurationMs: 40, queueDelayMs: 10 });
    client = await connectClient();
  });
  afterAll(async () => {
    await client?.connection.close();
    await simulator?.close();
  });

  /** A worker process on `taskQueue` against the simulator, once it polls: `env` on top of the usual settings. */
  async function startWorker(taskQueue: string, env: NodeJS.ProcessEnv = {}, preload?: string) {
    const worker = await spawnWorkerProcess(
      {
        TEMPORAL_TASK_QUEUE: taskQueue,
        ANCHOR_BASE_URL: simulator.url,
        ANCHOR_API_KEY: TEST_API_KEY,
        WORKFLOW_BUNDLE_PATH: process.env.TEST_WORKFLOW_BUNDLE,
        ...env,
      },
      preload,
    );
    await worker.waitForOutput(WORKER_STARTED);
    return worker;
  }

  test('every metric the rules and the dashboard name is one the worker exports; its polls of both queues counted', async () => {
    const taskQueue = uniqueTaskQueue('alerts');
    const startedAfter = Math.floor(Date.now() / 1000);
    const worker = await startWorker(taskQueue);
    const recoveries = new BatchRecoveries(client, taskQueue);
    // A recovery with a round, and one that fails on an API error: every product counter gets a sample.
    const batch = simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
    const missing = randomUUID();
    await recoveries.start({ batchId: batch.id, ...FAST_POLICY });
    await recoveries.start({ batchId: missing, ...FAST_POLICY });
    expect((await recoveries.result(batch.id)).outcome).toBe('recovered');
    await expect(recoveries.result(missing)).rejects.toThrow(/failed/);

    const samples = await metricSamples(worker, /^[a-z]/);
    worker.child.kill('SIGTERM');
    await worker.closed;
    const exported = new Set(samples.map((line) => line.split(/[{ ]/)[0]));

    const named = new Set(
      [...(await alertRules()).map((rule) => rule.expr), ...(await dashboardExpressions())].flatMap(metricNames),
    );
    // Emitted only once a workflow task fails; the name is the SDK's (temporal_workflow_task_execution_failed).
    named.delete('temporal_workflow_task_execution_failed');
    // Emitted only once an end notification's activity fails for good; a test below has the worker export it.
    named.delete('anchor_notifications_not_completed');
    // Emitted only once a sweep ends: the tests of SweepsKeepLeavingBatches, SweepsSkippedPastRetention and
    // SweepsListPastContract below read
    // them from a worker process.
    named.delete('anchor_sweep_batches_left');
    named.delete('anchor_sweep_batches_past_retention');
    named.delete('anchor_sweep_batches_past_contract');
    // Emitted only once a poll fails: a test below has the worker lose Temporal.
    named.delete('temporal_long_request_failure');
    expect(named.size).toBeGreaterThan(10);
    expect([...named].filter((name) => !exported.has(name))).toEqual([]);

    // The rules count a series new since the last window only in a worker that started within it (or was scraped then).
    const startTime = samples.find((line) => line.startsWith('anchor_worker_start_time_seconds'));
    expect(startTime).toMatch(/^anchor_worker_start_time_seconds \d+$/);
    expect(Number(startTime!.split(' ')[1])).toBeGreaterThanOrEqual(startedAfter);

    // The gauges carry one label each, as docs/deployment.md says: every worker counts the namespace's recoveries past
    // their deadline (RecoveryPastDeadline takes the max) and says when it last did (PastDeadlineCountFailing), and its
    // share of its own queue's budget.
    const gauges = /^anchor_(recoveries_past_deadline(_counted_at_seconds)?|workers_sharing_budget)\{/;
    expect(samples.filter((line) => gauges.test(line)).sort()).toEqual([
      expect.stringMatching(
        new RegExp(
          `^anchor_recoveries_past_deadline_counted_at_seconds\\{namespace="${client.options.namespace}"\\} \\d+$`,
        ),
      ),
      expect.stringMatching(
        new RegExp(`^anchor_recoveries_past_deadline\\{namespace="${client.options.namespace}"\\} \\d+$`),
      ),
      `anchor_workers_sharing_budget{taskQueue="${taskQueue}"} 1`,
    ]);

    // WorkerNotPolling sums these by task queue: each queue the worker polls has its own series, the poller's and the
    // notifications' included, so a worker that stops polling any one is caught.
    const polled = samples
      .filter((line) => line.startsWith('temporal_long_request{'))
      .map((line) => `${/task_queue="([^"]+)"/.exec(line)?.[1]} ${/operation="([^"]+)"/.exec(line)?.[1]}`);
    expect(polled).toEqual(
      expect.arrayContaining([
        `${taskQueue} PollWorkflowTaskQueue`,
        `${taskQueue} PollActivityTaskQueue`,
        `${batchStatusPollerTaskQueue(taskQueue)} PollWorkflowTaskQueue`,
        `${notificationTaskQueue(taskQueue)} PollActivityTaskQueue`,
      ]),
    );
  });

  // The SDK counts a poll when it sends it and retries a failed one for as long as the worker runs, so a worker that
  // lost Temporal went on counting polls, and WorkerNotPolling never fired. Each failed poll counts in the failures too.
  test('a worker that loses Temporal counts its polls failing, over the share TemporalPollsFailing fires at', async () => {
    const taskQueue = uniqueTaskQueue('alerts-lost-temporal');
    const proxy = await startTemporalProxy();
    const worker = await startWorker(taskQueue, { TEMPORAL_ADDRESS: proxy.address });
    const polls = async () => {
      const lines = await metricSamples(worker, /^temporal_long_request(_failure)?\{.*operation="Poll/);
      const total = (name: string) =>
        lines.filter((line) => line.startsWith(`${name}{`)).reduce((sum, line) => sum + Number(line.split(' ')[1]), 0);
      const codes = lines.filter((line) => line.startsWith('temporal_long_request_failure{'));
      return {
        sent: total('temporal_long_request'),
        failed: total('temporal_long_request_failure'),
        codes: new Set(codes.map((line) => /status_code="([^"]+)"/.exec(line)?.[1])),
      };
    };
    const before = await polls();
    await proxy.close();

    // From its first failure on, as the alert sees an outage: the polls in flight when Temporal went away are behind.
    const failing = await eventually('a failed poll', async () => {
      const now = await polls();
      return now.failed > 0 ? now : undefined;
    });
    const after = await eventually('20 more failed polls', async () => {
      const now = await polls();
      return now.failed >= failing.failed + 20 ? now : undefined;
    });
    worker.child.kill('SIGKILL');
    await worker.closed;

    expect(before.failed).toBe(0);
    expect((after.failed - failing.failed) / (after.sent - failing.sent)).toBeGreaterThan(0.5);
    expect([...after.codes].every((code) => code === 'TRANSPORT_ERROR' || code === 'UNAVAILABLE')).toBe(true);
  });

  // A webhook that refuses every message (a Slack webhook revoked answers 404) loses every notification: the recovery's
  // history says so, and only NotificationsFailing tells the operators who wait for those messages.
  test('a notification the webhook refuses counts in anchor_notifications, which NotificationsFailing reads', async () => {
    const taskQueue = uniqueTaskQueue('alerts-notify');
    const receiver = await startWebhookReceiver([404]);
    try {
      const worker = await startWorker(taskQueue, { NOTIFY_WEBHOOK_URL: receiver.url });
      const recoveries = new BatchRecoveries(client, taskQueue);
      const missing = randomUUID();
      await recoveries.start({ batchId: missing, ...FAST_POLICY });
      await expect(recoveries.result(missing)).rejects.toThrow(/failed/);

      const counted = await metricSamples(worker, /^anchor_notifications/);
      worker.child.kill('SIGTERM');
      await worker.closed;

      expect(receiver.requests).toHaveLength(1);
      // The activity returned its status: the workflow counts no notification that did not complete.
      expect(counted).toEqual([
        `anchor_notifications{activityType="notifyRecoveryEnd",namespace="${client.options.namespace}",status="failed",taskQueue="${notificationTaskQueue(taskQueue)}"} 1`,
      ]);
    } finally {
      await receiver.close();
    }
  });

  // The activity counts only the status it returns: one that never returns one (no worker polls its queue, every
  // attempt crashes) was counted nowhere, and no alert told the operators who wait for those messages.
  test('a notification whose activity never completes counts once in anchor_notifications_not_completed', async () => {
    const taskQueue = uniqueTaskQueue('alerts-not-completed');
    const receiver = await startWebhookReceiver([]);
    try {
      const worker = await startWorker(
        taskQueue,
        { NOTIFY_WEBHOOK_URL: receiver.url },
        './test/crashing-notifications.js',
      );
      const recoveries = new BatchRecoveries(client, taskQueue);
      const missing = randomUUID();
      await recoveries.start({ batchId: missing, ...FAST_POLICY });
      await expect(recoveries.result(missing)).rejects.toThrow(/failed/);

      const counted = await workflowMetricSamples(worker, /^anchor_notifications/, 1);
      worker.child.kill('SIGTERM');
      await worker.closed;

      const events = (await recoveries.handle(missing).fetchHistory()).events ?? [];
      const notify = events.find(
        (event) => event.activityTaskScheduledEventAttributes?.activityType?.name === 'notifyRecoveryEnd',
      )!;
      const ofNotify = <T extends { scheduledEventId?: unknown }>(attributes?: T | null): T[] =>
        attributes && Number(attributes.scheduledEventId) === Number(notify.eventId) ? [attributes] : [];
      const started = events.flatMap((event) => ofNotify(event.activityTaskStartedEventAttributes));
      const failed = events.flatMap((event) => ofNotify(event.activityTaskFailedEventAttributes));
      expect(receiver.requests).toHaveLength(0);
      // Failed on its third and last attempt, with the crash: it never returned a status.
      expect(started.map((attributes) => attributes.attempt)).toEqual([3]);
      expect(failed.map((attributes) => attributes.failure?.message)).toEqual([
        'notifyRecoveryEnd crashed before it returned a status',
      ]);
      expect(counted).toEqual([
        `anchor_notifications_not_completed{namespace="${client.options.namespace}",notificationTaskQueue="${notificationTaskQueue(taskQueue)}",taskQueue="${taskQueue}",workflowType="recoverBatch"} 1`,
      ]);
    } finally {
      await receiver.close();
    }
  });

  // The report counts what a round whose answer was lost retried from the batch (the sessions that had failed, when
  // the batch shows the call took effect): the dashboard's sessions retried must count the same.
  test('a round reconciled from the batch counts in anchor_retried_sessions the sessions its report says it retried', async () => {
    const taskQueue = uniqueTaskQueue('alerts-reconciled');
    const worker = await startWorker(taskQueue, { ANCHOR_REQUEST_TIMEOUT_MS: '2000' });
    const recoveries = new BatchRecoveries(client, taskQueue);
    const batch = simulator.createScriptedBatch({ count: 4, script: { '2': ['fail', 'ok'] } });
    // Applied 3 s after it arrived: after the worker's 2 s request timeout, before the reconcile read.
    simulator.faults.add('retry', { type: 'latency', latencyMs: 3_000, times: 1, batchId: batch.id });
    await recoveries.start({ batchId: batch.id, ...FAST_POLICY });
    const report = await recoveries.result(batch.id);

    const counted = await metricSamples(worker, /^anchor_(retry_calls|retried_sessions)\{/);
    worker.child.kill('SIGTERM');
    await worker.closed;

    expect(report.rounds).toEqual([
      expect.objectContaining({ reconciled: true, reconcileEffect: 'took_effect', retriedSessions: 1 }),
    ]);
    const labels = `activityType="reconcileRetry",namespace="${client.options.namespace}"`;
    expect(counted.sort()).toEqual([
      `anchor_retried_sessions{${labels},taskQueue="${taskQueue}"} 1`,
      `anchor_retry_calls{${labels},reconciled="true",sessionsCounted="true",taskQueue="${taskQueue}"} 1`,
    ]);
  });

  // The API took the call but its answer could not be read: how many sessions it retried is unknown. Counted as 0 in
  // anchor_retried_sessions it looked known, and the dashboard's sessions retried showed nothing of the round.
  test('a round whose answer is unreadable counts as a call with sessions not counted, and no sessions', async () => {
    const taskQueue = uniqueTaskQueue('alerts-unreadable');
    const worker = await startWorker(taskQueue);
    const recoveries = new BatchRecoveries(client, taskQueue);
    const batch = simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
    simulator.faults.add('retry', { type: 'mistyped_field', times: 1, batchId: batch.id });
    await recoveries.start({ batchId: batch.id, ...FAST_POLICY });
    const report = await recoveries.result(batch.id);

    const counted = await metricSamples(worker, /^anchor_(retry_calls|retried_sessions)\{/);
    worker.child.kill('SIGTERM');
    await worker.closed;

    expect(report.rounds).toEqual([
      // The report takes the sessions that had failed: the API retried them, it did not say how many.
      expect.objectContaining({
        retriedSessions: 1,
        apiStatus: 200,
        apiMessage: expect.stringMatching(/^answer unreadable/),
      }),
    ]);
    expect(counted).toEqual([
      `anchor_retry_calls{activityType="announceAndSendRetry",namespace="${client.options.namespace}",reconciled="false",sessionsCounted="false",taskQueue="${taskQueue}"} 1`,
    ]);
  });

  // An API may send -1 for a count it does not know. Added to anchor_retried_sessions, it made the SDK's counter throw
  // inside the call's classification, and the call the API took was recorded as outcome unknown, then reconciled. The
  // answer is now unreadable, so applied with its count not taken (the round's failed sessions, as for any unreadable
  // answer), where the report took the -1 and lowered its totals.
  test('a retry answer with a negative retried_sessions is applied, and counts as a call with sessions not counted', async () => {
    const taskQueue = uniqueTaskQueue('alerts-negative-count');
    const worker = await startWorker(taskQueue);
    const recoveries = new BatchRecoveries(client, taskQueue);
    const batch = simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
    const field = 'data.retried_sessions';
    simulator.faults.add('retry', { type: 'mistyped_field', field, value: -1, times: 1, batchId: batch.id });
    await recoveries.start({ batchId: batch.id, ...FAST_POLICY });
    const report = await recoveries.result(batch.id);

    const counted = await metricSamples(worker, /^anchor_(retry_calls|retried_sessions)\{/);
    worker.child.kill('SIGTERM');
    await worker.closed;

    expect(report.outcome).toBe('recovered');
    expect(report.rounds).toEqual([
      expect.objectContaining({
        retriedSessions: 1,
        apiStatus: 200,
        apiMessage: expect.stringContaining('answer unreadable (data.retried_sessions: '),
        reconciled: false,
      }),
    ]);
    expect(simulator.ledger.forBatch(batch.id).retries).toHaveLength(1);
    expect(counted).toEqual([
      `anchor_retry_calls{activityType="announceAndSendRetry",namespace="${client.options.namespace}",reconciled="false",sessionsCounted="false",taskQueue="${taskQueue}"} 1`,
    ]);
  });

  // AnchorApiAuthErrors is the alert that says "check ANCHOR_API_KEY": with no recovery running, the sweep's
  // listing is the only call that meets a revoked key, and it must count as every other call does.
  test("a sweep's listing refused by the API counts in anchor_api_errors, which AnchorApiAuthErrors reads", async () => {
    const taskQueue = uniqueTaskQueue('alerts-sweep');
    const worker = await startWorker(taskQueue, {
      ANCHOR_API_KEY: 'a-revoked-key',
      ANCHOR_BATCH_STATUS_POLLER: 'false',
    });
    const sweep = await client.workflow.start<typeof sweepFailedBatches>('sweepFailedBatches', {
      taskQueue,
      workflowId: `sweep-${randomUUID()}`,
      args: [{}],
    });
    await expect(sweep.result()).rejects.toThrow(/failed/);

    const errors = await metricSamples(worker, /^anchor_api_errors\{/);
    worker.child.kill('SIGTERM');
    await worker.closed;

    // unauthorized is permanent: the listing is tried once.
    expect(errors).toEqual([
      `anchor_api_errors{activityType="listFailedBatches",kind="unauthorized",namespace="${client.options.namespace}",taskQueue="${taskQueue}"} 1`,
    ]);
  });

  // SweepsKeepLeavingBatches reads what the run that ends a sweep counts: each batch the sweep left once, however often
  // it continued as new (the runs before carry their counts to it and count nothing).
  test('a sweep that continued as new counts the batches it left over maxStarts once, in anchor_sweep_batches_left', async () => {
    simulator.reset();
    const taskQueue = uniqueTaskQueue('alerts-sweep-left');
    const worker = await startWorker(taskQueue, { ANCHOR_BATCH_STATUS_POLLER: 'false' });
    const minutesAgo = (minutes: number) => new Date(Date.now() - minutes * 60_000).toISOString();
    const failedBatch = (minutes: number, failing: number) =>
      simulator.createScriptedBatch({
        count: 3,
        script: Object.fromEntries(Array.from({ length: failing }, (_, at) => [String(at), ['fail', 'ok']])),
        created_at: minutesAgo(minutes),
      });
    const started = failedBatch(1, 1);
    failedBatch(2, 1);
    failedBatch(3, 1);
    // Older and without failed sessions: read after the sweep continued as new, by a run that leaves no batch out.
    for (let minutes = 10; minutes < 50; minutes += 1) failedBatch(minutes, 0);
    const sweep = await client.workflow.start<typeof sweepFailedBatches>('sweepFailedBatches', {
      taskQueue,
      workflowId: `sweep-${randomUUID()}`,
      args: [{ pageSize: 1, maxStarts: 1, continueAsNewAfterEvents: 50, recovery: FAST_POLICY }],
    });
    const result = await sweep.result();
    const runId = (await sweep.describe()).runId;
    expect((await new BatchRecoveries(client, taskQueue).result(started.id)).outcome).toBe('recovered');

    const counted = await workflowMetricSamples(worker, /^anchor_sweep_batches_left\{/, 2);
    worker.child.kill('SIGTERM');
    await worker.closed;

    expect(runId).not.toBe(sweep.firstExecutionRunId);
    expect(result.counts).toMatchObject({ started: 1, over_limit: 2, start_failed: 0 });
    const labels = `namespace="${client.options.namespace}"`;
    const queue = `taskQueue="${taskQueue}",workflowType="sweepFailedBatches"`;
    expect(counted.sort()).toEqual([
      `anchor_sweep_batches_left{${labels},reason="over_limit",${queue}} 2`,
      `anchor_sweep_batches_left{${labels},reason="start_failed",${queue}} 0`,
    ]);
  });

  // No later sweep reaches back to a batch past the retention: before, only the sweep's result told that a failed
  // batch was given up on for good.
  test('a failed batch past the retention counts in anchor_sweep_batches_past_retention, which SweepsSkippedPastRetention reads', async () => {
    simulator.reset();
    const taskQueue = uniqueTaskQueue('alerts-sweep-retention');
    const { config } = await client.workflowService.describeNamespace({ namespace: client.options.namespace });
    const retentionHours = Number(config?.workflowExecutionRetentionTtl?.seconds ?? 0) / 3_600;
    expect(retentionHours).toBeGreaterThan(0);
    const hoursAgo = (hours: number) => new Date(Date.now() - hours * 3_600_000).toISOString();
    const failedBatch = (hours: number) =>
      simulator.createScriptedBatch({ count: 2, script: { '0': ['fail', 'ok'] }, created_at: hoursAgo(hours) });
    const pastRetention = [failedBatch(retentionHours + 1), failedBatch(retentionHours + 2)];
    const worker = await startWorker(taskQueue, { ANCHOR_BATCH_STATUS_POLLER: 'false' });
    const sweep = await client.workflow.start<typeof sweepFailedBatches>('sweepFailedBatches', {
      taskQueue,
      workflowId: `sweep-${randomUUID()}`,
      args: [{ lookback: `${Math.ceil(retentionHours) + 3}h`, recovery: FAST_POLICY }],
    });
    const result = await sweep.result();

    const counted = await workflowMetricSamples(worker, /^anchor_sweep_batches_past_retention\{/, 1);
    worker.child.kill('SIGTERM');
    await worker.closed;

    expect(result.counts).toMatchObject({ scanned: 2, started: 0, past_retention: 2 });
    expect(result.skipped.map((entry) => entry.batchId).sort()).toEqual(pastRetention.map((batch) => batch.id).sort());
    const labels = `namespace="${client.options.namespace}",taskQueue="${taskQueue}"`;
    expect(counted).toEqual([`anchor_sweep_batches_past_retention{${labels},workflowType="sweepFailedBatches"} 2`]);
  });

  // Before, only the sweep's result told of a failed batch listed with no UUID (never recovered) or of a list that
  // ignored the window.
  test('batches a list past its contract showed count in anchor_sweep_batches_past_contract, which SweepsListPastContract reads', async () => {
    const daysAgo = new Date(Date.now() - 10 * 86_400_000).toISOString();
    const listed = {
      data: {
        batches: [
          { batch_id: 'not-a-uuid', status: 'failed', failed_requests: 1, created_at: new Date().toISOString() },
          { batch_id: randomUUID(), status: 'failed', failed_requests: 1, created_at: daysAgo },
          { batch_id: randomUUID(), status: 'completed', failed_requests: 0, created_at: daysAgo },
        ],
        pagination: { has_next: false },
      },
    };
    const list = await startHostileServer(answerWith(200, 'application/json', JSON.stringify(listed)));
    try {
      const taskQueue = uniqueTaskQueue('alerts-sweep-contract');
      const worker = await startWorker(taskQueue, { ANCHOR_BASE_URL: list.url, ANCHOR_BATCH_STATUS_POLLER: 'false' });
      const result = await client.workflow.execute<typeof sweepFailedBatches>('sweepFailedBatches', {
        taskQueue,
        workflowId: `sweep-${randomUUID()}`,
        args: [{ lookback: '1h', recovery: FAST_POLICY }],
      });

      const counted = await workflowMetricSamples(worker, /^anchor_sweep_batches_past_contract\{/, 2);
      worker.child.kill('SIGTERM');
      await worker.closed;

      expect(result.counts).toMatchObject({ scanned: 3, started: 0, invalid_batch_id: 1, outside_window: 2 });
      const labels = `namespace="${client.options.namespace}"`;
      const queue = `taskQueue="${taskQueue}",workflowType="sweepFailedBatches"`;
      expect(counted.sort()).toEqual([
        `anchor_sweep_batches_past_contract{${labels},reason="invalid_batch_id",${queue}} 1`,
        `anchor_sweep_batches_past_contract{${labels},reason="outside_window",${queue}} 2`,
      ]);
      // The sweep read the list, and nothing else: no batch was read or retried.
      expect(list.calls.map((call) => `${call.method} ${call.path.split('?')[0]}`)).toEqual(['GET /v1/batch-sessions']);
    } finally {
      await list.close();
    }
  });
});
