/**
 * Many recoveries in flight against the default budget. Usage:
 *   npm run bench:scale -- [--in-flight 1000] [--settling 300] [--window 300] [--budget 10] [--workers 1]
 *                          [--settle-from <s>] [--finish] [--poller off] [--max-cached 250] [--heap-mib 512]
 *                          [--worker-node <version>|image] [--server-priority]
 * Every batch has one session that fails once. `--settling` of them settle during the window, one
 * after another at even spacing; the rest stay in flight past the end, so the recoveries keep
 * polling them (or the poller keeps listing them). The figures:
 *   - settle noticed: the recovery's first wake by the poller, or its first single-batch read, at or after the settle;
 *   - starvation: batches whose settle was not noticed by the end, and batches never read at all;
 *   - retry call after settle, minus the round backoff;
 *   - Anchor HTTP calls/s from the simulator's ledger, against the budget, and as the workers sent them;
 *   - worker RSS and CPU (cores) over the window, workflow task timeouts and first-task delays.
 * --finish waits until every recovery has ended (or --finish-within seconds, default 900) and counts outcomes.
 * --server-priority runs the dev server with its new matcher, which dispatches tasks by priority (the poller's page
 * reads after the retry calls) as compose's server does by default; the dev server of CLI v1.5.1 does not otherwise.
 */
import { randomUUID } from 'node:crypto';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { PRIORITY_DISPATCH_CONFIG } from '../dev/dev-server.js';
import { recoveryStartOptions } from '../client/recoveries.js';
import { optionalTsToMs } from '@temporalio/common/lib/time.js';
import { batchStatusPollerWorkflowId, RECOVER_BATCH_WORKFLOW, recoveryWorkflowId } from '../workflows/definitions.js';
import type { recoverBatch } from '../workflows/recover-batch.js';
import proto from '@temporalio/proto';
import { mostWithinWindow } from '../simulator/ledger.js';
import {
  forEachLimit,
  MIB,
  numberArg,
  percentile,
  startBenchStack,
  startBenchWorker,
  workerNodeArg,
  type BenchWorker,
} from './harness.js';

const inFlight = numberArg('in-flight', 1_000);
const settling = Math.min(inFlight, numberArg('settling', Math.min(inFlight, 300)));
const windowSeconds = numberArg('window', 300);
const budget = numberArg('budget', 10);
const workerCount = numberArg('workers', 1);
/**
 * The settles begin once the starts' first workflow tasks are done, so the window measures the steady state the goals
 * name: 10,000 first tasks ran until 226–310 s in wave 20's runs (the figures print how many ran after it began).
 */
const settleFromSeconds = numberArg('settle-from', Math.ceil(inFlight / 25) + 30);
const finish = process.argv.includes('--finish');
const pollerOff = process.argv.includes('--poller') && process.argv[process.argv.indexOf('--poller') + 1] === 'off';
const maxCachedWorkflows = process.argv.includes('--max-cached') ? numberArg('max-cached', 250) : undefined;
const heapMiB = process.argv.includes('--heap-mib') ? numberArg('heap-mib', 512) : undefined;
const workerNode = workerNodeArg();
const serverPriority = process.argv.includes('--server-priority');

type HistoryEvent = proto.temporal.api.history.v1.IHistoryEvent;
/** An event's time in epoch ms (0 when the event is missing). */
const eventTimeMs = (event: HistoryEvent | undefined) =>
  Number(event?.eventTime?.seconds ?? 0) * 1000 + Math.floor((event?.eventTime?.nanos ?? 0) / 1e6);

const POLL_MAXIMUM_MS = 120_000;
const ROUND_BACKOFF_MS = 30_000;
const GRACE_SECONDS = 60;
/**
 * A batch settles one attempt after its creation, and creation dates lie in the past: so an attempt lasts at
 * least until the window's end, and long enough that the batches meant to settle after it do not, if any.
 */
const attemptMs = (settleFromSeconds + windowSeconds + (settling < inFlight ? GRACE_SECONDS + 120 : 0)) * 1000;

const stack = await startBenchStack({ attemptDurationMs: attemptMs, queueDelayMs: 0 }, undefined, {
  dynamicConfig: serverPriority ? PRIORITY_DISPATCH_CONFIG : {},
});
const taskQueue = `bench-scale-${randomUUID().slice(0, 8)}`;
const workers: BenchWorker[] = [];
const t0 = Date.now();
const settleAt = new Map<string, number>();
const batchIds: string[] = [];
try {
  for (let i = 0; i < workerCount; i += 1) {
    const kind = 'product' as const;
    workers.push(
      await startBenchWorker({
        kind,
        stack,
        taskQueue,
        maxCallsPerSecond: budget,
        workersSharingBudget: workerCount,
        ...(maxCachedWorkflows ? { maxCachedWorkflows } : {}),
        ...(pollerOff ? { poller: 'off' } : {}),
        ...(heapMiB ? { heapMiB } : {}),
        ...(workerNode ? { node: workerNode } : {}),
      }),
    );
  }
  // Created in the past so each settles when planned: a batch settles one attempt after its creation.
  for (let i = 0; i < inFlight; i += 1) {
    const settlesAt =
      i < settling ? t0 + (settleFromSeconds + (windowSeconds * (i + 0.5)) / settling) * 1000 : t0 + attemptMs;
    const batch = stack.simulator.createScriptedBatch({
      count: 4,
      script: { '1': ['fail', 'ok'] },
      created_at: new Date(settlesAt - attemptMs).toISOString(),
    });
    batchIds.push(batch.id);
    if (i < settling) settleAt.set(batch.id, settlesAt);
  }
  await forEachLimit(batchIds, 50, async (batchId) => {
    await stack.client.workflow.start(RECOVER_BATCH_WORKFLOW, recoveryStartOptions({ batchId }, taskQueue));
  });
  const startedAllAt = Date.now();
  console.error(`started ${inFlight} recoveries in ${((startedAllAt - t0) / 1000).toFixed(0)} s`);
  const windowStart = t0 + settleFromSeconds * 1000;
  const windowEnd = windowStart + windowSeconds * 1000;
  const wait = (until: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, until - Date.now())));
  await wait(windowStart);
  for (const worker of workers) worker.mark();
  // The simulator runs in this process: a stall here dates the calls that arrive during it late, all together.
  const simulatorStalls = monitorEventLoopDelay({ resolution: 10 });
  simulatorStalls.enable();
  await wait(windowEnd);
  const windowMeasure = workers.map((worker) => worker.measure());
  let finished = 0;
  const outcomes = new Map<string, number>();
  if (finish) {
    const giveUp = new AbortController();
    await Promise.race([
      forEachLimit(batchIds, 200, async (batchId) => {
        const report = await stack.client.workflow.getHandle<typeof recoverBatch>(`recover-batch-${batchId}`).result();
        finished += 1;
        outcomes.set(String(report.outcome), (outcomes.get(String(report.outcome)) ?? 0) + 1);
      }),
      delay(numberArg('finish-within', 900) * 1000, undefined, { signal: giveUp.signal }).catch(() => undefined),
    ]);
    // A give-up timer still pending would hold the process open for the rest of its 15 minutes.
    giveUp.abort();
  } else {
    await wait(windowEnd + GRACE_SECONDS * 1000);
  }
  const endAt = Date.now();
  const finalMeasure = workers.map((worker) => worker.measure());
  simulatorStalls.disable();
  const sentByWorker = await Promise.all(workers.map((worker) => worker.sentCallsAt()));

  // Settle noticed and retry latencies, from the ledger.
  const { calls } = stack.simulator.ledger.all();
  const reads = new Map<string, number[]>();
  for (const call of calls) {
    if (call.endpoint !== 'GET /v1/batch-sessions/{batch_id}' || call.batchId === undefined) continue;
    const list = reads.get(call.batchId) ?? [];
    list.push(call.receivedAtMs);
    reads.set(call.batchId, list);
  }
  const retryAt = new Map<string, number>();
  for (const call of calls) {
    if (call.endpoint === 'POST /v1/batch-sessions/{batch_id}/retry' && call.batchId && !retryAt.has(call.batchId))
      retryAt.set(call.batchId, call.receivedAtMs);
  }
  // The poller's wake carries what the list showed: the recovery then reads nothing until its round's snapshot.
  const wakes = new Map<string, number[]>();
  if (!pollerOff) {
    await forEachLimit([...settleAt.keys()], 20, async (batchId) => {
      const history = await stack.client.workflow.getHandle(recoveryWorkflowId(batchId)).fetchHistory();
      const times = (history.events ?? [])
        .filter((event) => event.workflowExecutionSignaledEventAttributes?.signalName === 'batchSettled')
        .map((event) => optionalTsToMs(event.eventTime) ?? NaN);
      wakes.set(batchId, times);
    });
  }
  const noticed: number[] = [];
  const retryLag: number[] = [];
  let notNoticed = 0;
  for (const [batchId, at] of settleAt) {
    const seen = [...(reads.get(batchId) ?? []), ...(wakes.get(batchId) ?? [])].filter((time) => time >= at);
    if (seen.length === 0) notNoticed += 1;
    else noticed.push(Math.min(...seen) - at);
    const retry = retryAt.get(batchId);
    if (retry !== undefined) retryLag.push(retry - at - ROUND_BACKOFF_MS);
  }
  const neverRead = batchIds.filter((batchId) => !reads.has(batchId)).length;
  const perSecond = new Map<number, number>();
  for (const call of calls) {
    const second = Math.floor(call.receivedAtMs / 1000);
    perSecond.set(second, (perSecond.get(second) ?? 0) + 1);
  }
  const runSeconds = (endAt - t0) / 1000;
  const tenSecondMax = Math.max(
    ...[...perSecond.keys()].map((second) => {
      let sum = 0;
      for (let s = second; s < second + 10; s += 1) sum += perSecond.get(s) ?? 0;
      return sum / 10;
    }),
  );
  const byEndpoint = new Map<string, number>();
  for (const call of calls) byEndpoint.set(call.endpoint, (byEndpoint.get(call.endpoint) ?? 0) + 1);

  if (!pollerOff) {
    const poller = await stack.client.workflow.getHandle(batchStatusPollerWorkflowId(taskQueue)).describe();
    const raw = poller.raw.pendingActivities ?? [];
    console.error(
      `poller: ${poller.status.name}, run ${poller.runId}, history ${poller.historyLength} events, ` +
        `pending activities ${raw.length} (attempts ${raw.map((a) => a.attempt).join(',')}), ` +
        `pending workflow task: ${JSON.stringify(poller.raw.pendingWorkflowTask ?? null)}`,
    );
    // Each run of the chain, oldest first: whether its workflow tasks kept up with the registrations it took.
    const { EventType, TimeoutType, WorkflowTaskFailedCause } = proto.temporal.api.enums.v1;
    const runs: string[] = [];
    let runId: string | undefined = poller.runId;
    while (runId) {
      const history: proto.temporal.api.history.v1.IHistory = await stack.client.workflow
        .getHandle(poller.workflowId, runId)
        .fetchHistory();
      const events = history.events ?? [];
      const tally = { signals: 0, startToClose: 0, sticky: 0, failed: 0, unhandledCommand: 0 };
      for (const event of events) {
        if (event.eventType === EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED) tally.signals += 1;
        const timeout = event.workflowTaskTimedOutEventAttributes?.timeoutType;
        if (timeout === TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE) tally.startToClose += 1;
        if (timeout === TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START) tally.sticky += 1;
        const failure = event.workflowTaskFailedEventAttributes;
        if (failure) tally.failed += 1;
        if (failure?.cause === WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND)
          tally.unhandledCommand += 1;
      }
      // When the run began, came due (its 5,000th event, the default threshold) and ended, in s after the start.
      const at = (event: HistoryEvent | undefined) =>
        event?.eventTime ? `t+${((eventTimeMs(event) - t0) / 1000).toFixed(0)} s` : '-';
      runs.unshift(
        `${events.length} events, ${tally.signals} signals; workflow tasks timed out ${tally.startToClose} ` +
          `(start-to-close) and ${tally.sticky} (sticky), failed ${tally.failed} (${tally.unhandledCommand} unhandled ` +
          `command); began ${at(events[0])}, 5,000th event ${at(events[4_999])}, last event ${at(events.at(-1))}`,
      );
      runId = events[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId || undefined;
    }
    console.error(`poller runs, oldest first:\n${runs.map((run, i) => `  ${i + 1}: ${run}`).join('\n')}`);
  }
  // Workflow task timeouts and the delay to each recovery's first workflow task, from the histories.
  let timedOut = 0;
  let stickyTimedOut = 0;
  const firstTaskDelays: number[] = [];
  let firstTasksInWindow = 0;
  const { EventType, TimeoutType } = proto.temporal.api.enums.v1;
  await forEachLimit(batchIds, 20, async (batchId) => {
    const history = await stack.client.workflow.getHandle(`recover-batch-${batchId}`).fetchHistory();
    const events = history.events ?? [];
    const timeouts = new Set(
      events
        .filter((event) => event.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT)
        .map((event) => event.workflowTaskTimedOutEventAttributes?.timeoutType),
    );
    if (timeouts.has(TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE)) timedOut += 1;
    if (timeouts.has(TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START)) stickyTimedOut += 1;
    const started = events.find((event) => event.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED);
    if (started) firstTaskDelays.push(eventTimeMs(started) - eventTimeMs(events[0]));
    if (!started || eventTimeMs(started) >= windowStart) firstTasksInWindow += 1;
  });

  const sorted = (values: number[]) => [...values].sort((a, b) => a - b);
  const pct = (values: number[]) => {
    const s = sorted(values);
    const f = (v: number) => `${(v / 1000).toFixed(1)} s`;
    return s.length === 0
      ? 'none'
      : `p50 ${f(percentile(s, 50))}, p90 ${f(percentile(s, 90))}, p99 ${f(percentile(s, 99))}, max ${f(s.at(-1)!)} (n=${s.length})`;
  };
  console.log(
    `\n${inFlight} recoveries in flight on ${workerCount} worker(s), budget ${budget} calls/s, ` +
      `${settling} batches settling over ${windowSeconds} s from t+${settleFromSeconds} s; ` +
      `poller ${pollerOff ? 'off' : 'on'}; server ${serverPriority ? 'dispatches by priority' : 'without priority'}; run ${runSeconds.toFixed(0)} s; starts took ${((startedAllAt - t0) / 1000).toFixed(0)} s`,
  );
  if (finish)
    console.log(
      `finished ${finished} of ${inFlight} recoveries in ${((endAt - t0) / 1000).toFixed(0)} s: ` +
        [...outcomes].map(([outcome, count]) => `${outcome} ${count}`).join(', '),
    );
  console.log(`settle noticed (vs poll.maximumInterval ${POLL_MAXIMUM_MS / 1000} s): ${pct(noticed)}`);
  console.log(
    `starvation: ${notNoticed} of ${settling} settles not noticed by the end; ${neverRead} of ${inFlight} batches never read on their own${pollerOff ? '' : ' (the poller lists them)'}`,
  );
  console.log(
    `retry call after settle minus round backoff (${ROUND_BACKOFF_MS / 1000} s): ${pct(retryLag)}; ${retryAt.size} retries sent`,
  );
  console.log(
    `Anchor calls: ${calls.length} in ${runSeconds.toFixed(0)} s = ${(calls.length / runSeconds).toFixed(2)}/s mean, ` +
      `max ${tenSecondMax.toFixed(1)}/s over any 10 s, max ${stack.simulator.ledger.mostCallsWithin(1_000)} in any 1 s ` +
      `(${stack.simulator.ledger.mostCallsWithin(900)} in any 900 ms); budget ${budget}/s`,
  );
  console.log(`  by endpoint: ${[...byEndpoint].map(([endpoint, count]) => `${endpoint} ${count}`).join(', ')}`);
  // The same calls as the workers sent them: the budget they keep, before the lag between sending and arriving.
  const sent = sentByWorker.flat();
  console.log(
    `  as sent: ${sent.length} calls, max ${mostWithinWindow(sent, 1_000)} in any 1 s ` +
      `(${mostWithinWindow(sent, 900)} in any 900 ms); by worker, max in any 1 s: ` +
      sentByWorker.map((times) => mostWithinWindow(times, 1_000)).join(', '),
  );
  const stallMs = (nanoseconds: number) => (nanoseconds / 1e6).toFixed(0);
  console.log(
    `  the simulator's event loop from the window's start, delay p99 ${stallMs(simulatorStalls.percentile(99))} ms, ` +
      `max ${stallMs(simulatorStalls.max)} ms: calls that arrive while it is held are dated together when it frees`,
  );
  workers.forEach((worker, i) => {
    const during = windowMeasure[i]!;
    console.log(
      `worker ${i + 1}: peak RSS ${(finalMeasure[i]!.peakRssBytes / MIB).toFixed(0)} MiB (whole run), ` +
        `RSS at window end ${(during.rssBytes / MIB).toFixed(0)} MiB, ` +
        `CPU over the window ${(during.cpuSeconds / windowSeconds).toFixed(3)} cores`,
    );
  });
  console.log(
    `executions with WORKFLOW_TASK_TIMED_OUT (start-to-close): ${timedOut}, sticky schedule-to-start: ${stickyTimedOut}; ` +
      `first workflow task after start: ${pct(firstTaskDelays)}; ` +
      `${firstTasksInWindow} ran theirs after the settles began or not at all` +
      (firstTasksInWindow ? ' (the window is not steady state)' : ''),
  );
} finally {
  for (const worker of workers) await worker.stop();
  await stack.stop();
}
