import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { API_TEXT_MAX_CHARS } from '../../anchor-api/index.js';
import { BatchRecoveries } from '../../client/recoveries.js';
import { startSimulator, type RunningSimulator } from '../../simulator/index.js';
import type { RecoverBatchInput } from '../../workflows/input.js';
import type { RecoveryReport } from '../../workflows/report.js';
import { killLeftoverChildren } from '../client/child-process.js';
import { spawnWorkerProcess, WORKER_STARTED, type WorkerProcess } from '../deployment/worker-process.js';
import {
  answerHuge,
  answerHugeError,
  answerNeverEnding,
  answerTrickle,
  answerWith,
  proxyTo,
  startHostileServer,
  type HostileAnswer,
  type HostileServer,
} from '../helpers/hostile-server.js';
import { eventually, FAST_POLICY, TEST_API_KEY } from '../helpers/recovery-env.js';
import { connectClient, uniqueTaskQueue } from '../helpers/temporal.js';

// One worker process whose Anchor API is a server of the test's own: it answers hostile batches badly and
// hands every other call to the simulator, so control batches recover on the same worker.

const REQUEST_TIMEOUT_MS = 1_500;
const MB = 1024 * 1024;
/**
 * Measured: about 75 MiB (three bodies cut at 4 MiB, two 3 MB error bodies, ten more cached workflows).
 * Three 50 MB bodies read whole would add at least twice as much (each is buffered, joined and decoded).
 */
const MAX_RSS_GROWTH_KB = 150 * 1024;
/** A failure's message: the API's text is cut to API_TEXT_MAX_CHARS, our words around it are short. */
const MAX_FAILURE_MESSAGE_CHARS = API_TEXT_MAX_CHARS + 500;

let simulator: RunningSimulator;
let hostile: HostileServer;
let client: Client;
let recoveries: BatchRecoveries;
let worker: WorkerProcess;
let toSimulator: HostileAnswer;
/** Calls on no batch registered with `hostile.on` (the list): the simulator's answers unless a test says otherwise. */
let otherCalls: HostileAnswer = (request, response) => toSimulator(request, response);

beforeAll(async () => {
  simulator = await startSimulator({ apiKeys: [TEST_API_KEY], attemptDurationMs: 40, queueDelayMs: 10 });
  toSimulator = proxyTo(simulator.url);
  hostile = await startHostileServer((request, response) => otherCalls(request, response));
  client = await connectClient();
  const taskQueue = uniqueTaskQueue('hostile');
  recoveries = new BatchRecoveries(client, taskQueue);
  worker = await spawnWorkerProcess({
    TEMPORAL_TASK_QUEUE: taskQueue,
    ANCHOR_BASE_URL: hostile.url,
    ANCHOR_API_KEY: TEST_API_KEY,
    ANCHOR_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
    WORKFLOW_BUNDLE_PATH: process.env.TEST_WORKFLOW_BUNDLE,
  });
  await worker.waitForOutput(WORKER_STARTED);
}, 120_000);

afterAll(async () => {
  await killLeftoverChildren();
  await client?.connection.close();
  await hostile?.close();
  await simulator?.close();
});

/** Peak resident memory of the worker process so far, in kB. */
function peakRssKb(): number {
  const status = readFileSync(`/proc/${worker.child.pid as number}/status`, 'utf8');
  return Number(/^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1]);
}

async function recoverControlBatch(): Promise<RecoveryReport> {
  const batch = simulator.createScriptedBatch({ count: 4, script: { '2': ['fail', 'ok'] } });
  await recoveries.start({ batchId: batch.id, ...FAST_POLICY });
  return recoveries.result(batch.id);
}

/** How a recovery ended: its failure's type and message, or its outcome. */
async function endOf(batchId: string): Promise<{ type: string; message: string; report: RecoveryReport }> {
  try {
    const report = await recoveries.handle(batchId).result();
    return {
      type: report.failure?.type ?? report.outcome ?? 'running',
      message: report.failure?.message ?? '',
      report,
    };
  } catch (err) {
    if (!(err instanceof WorkflowFailedError) || !(err.cause instanceof ApplicationFailure)) throw err;
    return {
      type: err.cause.type ?? 'unknown',
      message: err.cause.message,
      report: err.cause.details?.[0] as RecoveryReport,
    };
  }
}

const callsOn = (batchId: string) => hostile.calls.filter((call) => call.path.includes(batchId));

test('hostile answers end each recovery as configured, in bounded memory, and control batches still recover', async () => {
  expect((await recoverControlBatch()).outcome).toBe('recovered');
  const baselineKb = peakRssKb();

  const cases = {
    html: answerWith(200, 'text/html', '<html><body><h1>502 Bad Gateway</h1></body></html>'),
    truncatedJson: answerWith(200, 'application/json', '{"data":{"batch_id":"x","status":"fai'),
    wrongContentType: answerWith(200, 'text/plain', '{"data":{"status":"failed"}}'),
    huge1: answerHuge(200, 50 * MB),
    huge2: answerHuge(200, 50 * MB),
    huge3: answerHuge(200, 50 * MB),
    notFoundHugeMessage: answerHugeError(404, 3 * MB),
    unauthorizedHugeMessage: answerHugeError(401, 3 * MB),
    trickle: answerTrickle(100),
    neverEnds: answerNeverEnding,
  };
  const batchIds = Object.fromEntries(Object.keys(cases).map((name) => [name, randomUUID()])) as Record<
    keyof typeof cases,
    string
  >;
  for (const [name, answer] of Object.entries(cases)) hostile.on(batchIds[name as keyof typeof cases], answer);

  // Failures that no retry fixes end at once; the slow bodies are retried until a short deadline.
  const input = (batchId: string): RecoverBatchInput => ({
    batchId,
    ...FAST_POLICY,
    deadline: batchId === batchIds.trickle || batchId === batchIds.neverEnds ? '5s' : '1h',
  });
  await Promise.all(Object.values(batchIds).map((batchId) => recoveries.start(input(batchId))));
  const ends = Object.fromEntries(
    await Promise.all(Object.entries(batchIds).map(async ([name, batchId]) => [name, await endOf(batchId)] as const)),
  ) as Record<keyof typeof cases, Awaited<ReturnType<typeof endOf>>>;

  const failedAtOnce: [keyof typeof cases, string, RegExp][] = [
    ['html', 'malformed_response', /content type text\/html, expected JSON/],
    ['truncatedJson', 'malformed_response', /body is not JSON/],
    ['wrongContentType', 'malformed_response', /content type text\/plain, expected JSON/],
    ['huge1', 'malformed_response', /body longer than 4194304 bytes, download stopped/],
    ['huge2', 'malformed_response', /body longer than 4194304 bytes/],
    ['huge3', 'malformed_response', /body longer than 4194304 bytes/],
    ['notFoundHugeMessage', 'batch_not_found', /Batch not found \(HTTP 404\).*see \[url removed\] x+ … \[cut at 500/],
    ['unauthorizedHugeMessage', 'unauthorized', /refused the API key \(HTTP 401\).*\[cut at 500/],
  ];
  for (const [name, type, message] of failedAtOnce) {
    expect({ name, type: ends[name].type }).toEqual({ name, type });
    expect(ends[name].message).toMatch(message);
    expect(ends[name].message.length).toBeLessThan(MAX_FAILURE_MESSAGE_CHARS);
    // Failed fast: one status read, no polling.
    expect({ name, calls: callsOn(batchIds[name]).length }).toEqual({ name, calls: 1 });
  }

  // A body that trickles or never ends is cut by the request timeout on every attempt, until the deadline.
  for (const name of ['trickle', 'neverEnds'] as const) {
    const { type, report } = ends[name];
    expect({ name, type }).toEqual({ name, type: 'deadline' });
    expect(report.lastError).toMatchObject({
      type: 'timeout',
      message: expect.stringContaining(`did not answer within ${REQUEST_TIMEOUT_MS} ms`) as unknown,
    });
    // The deadline may pass while an attempt is in flight: that attempt still ends at its timeout.
    const calls = await eventually(`the calls on ${name} to end`, () => {
      const all = callsOn(batchIds[name]);
      return all.every((call) => call.closed) ? all : undefined;
    });
    expect(calls.length).toBeGreaterThanOrEqual(1);
    for (const call of calls) expect(call.cutByClient).toBe(true);
  }
  for (const name of ['huge1', 'huge2', 'huge3'] as const) {
    for (const call of callsOn(batchIds[name])) expect(call.cutByClient).toBe(true);
  }

  const growthKb = peakRssKb() - baselineKb;
  console.log(
    `hostile API: worker peak RSS ${Math.round(baselineKb / 1024)} MiB before, ${Math.round(peakRssKb() / 1024)} MiB after (+${Math.round(growthKb / 1024)} MiB) with three 50 MB bodies`,
  );
  expect(growthKb).toBeLessThan(MAX_RSS_GROWTH_KB);

  // The same worker still recovers a batch, and nothing the hostile answers quoted reached its logs.
  expect((await recoverControlBatch()).outcome).toBe('recovered');
  const output = worker.stdout() + worker.stderr();
  expect(output).not.toMatch(/wss:\/\/|token=|0123456789abcdef0123456789abcdef01234567/);
  expect(output).not.toContain(TEST_API_KEY);
}, 120_000);

test('a Retry-After of 400 digits, on a status read or a retry call, ends the recovery with a report and the worker keeps running', async () => {
  const endless = '9'.repeat(400);
  const rateLimited = (response: ServerResponse) =>
    response
      .writeHead(429, { 'content-type': 'application/json', 'retry-after': endless })
      .end('{"error":{"code":429,"message":"slow down"}}');
  const onRead = randomUUID();
  hostile.on(onRead, (_request, response) => rateLimited(response));
  const onRetry = simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } }).id;
  hostile.on(onRetry, (request, response) =>
    request.method === 'POST' ? rateLimited(response) : toSimulator(request, response),
  );
  // Longer than the test waits for either end, so a recovery that waits out the backoffs instead cannot end in time.
  const deadline = '1h';
  await Promise.all([onRead, onRetry].map((batchId) => recoveries.start({ batchId, ...FAST_POLICY, deadline })));

  // The Retry-After is read as a day, past the deadline: neither the server nor the workflow waits it out.
  const stopped = worker.closed.then(({ code }) => `the worker stopped (exit ${code})`);
  const timer = new AbortController();
  const timedOut = sleep(30_000, 'the recoveries did not end in 30 s', { signal: timer.signal }).catch(() => '');
  const ends = await Promise.race([Promise.all([endOf(onRead), endOf(onRetry)]), stopped, timedOut]);
  timer.abort();
  if (typeof ends === 'string') {
    // Or their result calls would outlive the test's connection.
    await Promise.all([onRead, onRetry].map((batchId) => recoveries.handle(batchId).terminate(ends)));
    throw new Error(`${ends}: ${worker.stdout().slice(-3_000)}`);
  }
  const [read, retry] = ends;
  for (const { type, report } of [read, retry]) {
    expect(type).toBe('deadline');
    expect(report.lastError).toMatchObject({ type: 'rate_limited' });
  }
  expect(read.report.lastError?.message).toContain('retry after 86400000 ms');
  expect(callsOn(onRetry).filter((call) => call.method === 'POST')).toHaveLength(1);

  expect(worker.stdout() + worker.stderr()).not.toMatch(/Worker failed|Invalid millis/);
  expect((await recoverControlBatch()).outcome).toBe('recovered');
}, 120_000);

test('counters that lag an accepted retry call, while the batch shows processing again, get no second call', async () => {
  const batch = simulator.createScriptedBatch({ count: 2, script: { '1': ['fail', 'ok'] } });
  const lagMs = 3_000;
  let lagUntil = 0;
  let lagged = 0;
  const lagging = () => Date.now() < lagUntil;
  /** The simulator's answer, as JSON, to rewrite. */
  const simulatorJson = async (request: IncomingMessage) => {
    const answer = await fetch(new URL(request.url ?? '/', simulator.url), {
      headers: { 'anchor-api-key': request.headers['anchor-api-key'] as string },
    });
    return { status: answer.status, body: (await answer.json()) as { data?: Record<string, unknown> } };
  };
  const answerJson = (response: ServerResponse, status: number, body: unknown) =>
    response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  // The status read before the call, as the API goes on answering it for lagMs after the call, but `processing`.
  let beforeCall: { data?: Record<string, unknown> } | undefined;
  hostile.on(batch.id, (request, response) => {
    if (request.method === 'POST') {
      lagUntil = Date.now() + lagMs;
      toSimulator(request, response);
      return;
    }
    if (lagging() && beforeCall) {
      lagged += 1;
      answerJson(response, 200, { data: { ...beforeCall.data, status: 'processing' } });
      return;
    }
    simulatorJson(request).then(
      ({ status, body }) => {
        if (status === 200) beforeCall = body;
        answerJson(response, status, body);
      },
      () => response.destroy(),
    );
  });
  // The list lags the same way: the batch processing, its counters as before the call (1 completed, 1 failed).
  otherCalls = (request, response) => {
    if (!lagging()) return toSimulator(request, response);
    simulatorJson(request).then(
      ({ status, body }) => {
        const batches = (body.data?.batches ?? []) as Record<string, unknown>[];
        const rewritten = batches.map((summary) => {
          if (summary.batch_id !== batch.id) return summary;
          lagged += 1;
          return { ...summary, status: 'processing', total_requests: 2, completed_requests: 1, failed_requests: 1 };
        });
        answerJson(response, status, { ...body, data: { ...body.data, batches: rewritten } });
      },
      () => response.destroy(),
    );
  };
  try {
    await recoveries.start({ batchId: batch.id, ...FAST_POLICY, deadline: '1h' });
    const report = await recoveries.result(batch.id);

    expect(report.outcome).toBe('recovered');
    expect(report.rounds).toHaveLength(1);
    expect(callsOn(batch.id).filter((call) => call.method === 'POST')).toHaveLength(1);
    // The lag was read, by the poller's list or the recovery's own reads, and taken for what it is.
    expect(lagged).toBeGreaterThan(0);
  } finally {
    otherCalls = (request, response) => toSimulator(request, response);
  }
}, 60_000);

test('a list that repeats one page for ever ends at its first repeat: the batch it never shows is handed back', async () => {
  const batch = simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
  const elsewhere = randomUUID();
  /** The list's pages asked for, and `read` for each read of the batch, in order. */
  const seen: string[] = [];
  otherCalls = (request, response) => {
    const url = new URL(request.url ?? '/', hostile.url);
    if (url.pathname !== '/v1/batch-sessions') {
      if (url.pathname.includes(batch.id) && request.method === 'GET') seen.push('read');
      return toSimulator(request, response);
    }
    seen.push(`list:${url.searchParams.get('page')}`);
    // Whatever page is asked for: the same batch, in flight, and more to come.
    const summary = { batch_id: elsewhere, status: 'processing', total_requests: 2, completed_requests: 0 };
    response
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ data: { batches: [summary], pagination: { has_next: true } } }));
  };
  try {
    // Short: before, the recovery waited for the poller until its deadline, and ended `deadline`.
    await recoveries.start({ batchId: batch.id, ...FAST_POLICY, deadline: '20s' });
    const report = await recoveries.result(batch.id);

    expect(report.outcome).toBe('recovered');
    // The first cycle read page 1, then page 2 repeated it and ended the list: the recovery read its batch itself.
    expect(seen.slice(0, seen.indexOf('read'))).toEqual(['list:1', 'list:2']);
  } finally {
    otherCalls = (request, response) => toSimulator(request, response);
  }
}, 60_000);
