/**
 * A storm of bad ends against a webhook that takes about one message a second, as Slack's incoming webhooks do.
 * Usage:
 *   npm run bench:webhook-storm -- [--ends 300] [--workers 1] [--rate 1] [--burst 5] [--repeats 3]
 *     [--compare-checkout <dir>]
 * `--ends` recoveries wait for batches that stay pending for an hour, on `--workers` worker processes sharing one task
 * queue (and its notifications queue); an operator cancels them all at once, and each ends `operator_cancelled`,
 * notified. The webhook (the benchmark's own, over real HTTP) takes `--rate` messages a
 * second with bursts of `--burst`, and answers 429 with a Retry-After beyond that. Printed per variant: the messages
 * the webhook took, the 429s it answered, the ends delivered, failed and unknown (from the recoveries' histories),
 * and the time from the cancels to the last recovery closed.
 * `--compare-checkout` runs a second variant, `compared`, on the worker of a checkout of other code (an earlier
 * commit: `git worktree add <dir> <commit>`, a link to this node_modules, and this code's bench/worker-process.ts,
 * which passes the webhook), in the same run, alternating with this code's.
 */
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { defaultPayloadConverter } from '@temporalio/common';
import type { NotifyResult } from '../activities/notify-activities.js';
import { BatchRecoveries } from '../client/recoveries.js';
import {
  compareCheckoutArg,
  forEachLimit,
  formatSummary,
  numberArg,
  startBenchStack,
  startBenchWorker,
} from './harness.js';

const ends = numberArg('ends', 300);
const workerCount = numberArg('workers', 1);
const rate = numberArg('rate', 1);
const burst = numberArg('burst', 5);
const repeats = numberArg('repeats', 3);
const compareCheckout = compareCheckoutArg();
const HOUR_MS = 3_600_000;

type Variant = 'current' | 'compared';

interface StormFigures {
  messages: number;
  tooManyRequests: number;
  delivered: number;
  failed: number;
  unknown: number;
  secondsToLastEnd: number;
}

/** A webhook that takes `rate` messages a second with bursts of `burst` (a token bucket); 429 beyond that. */
async function startRateLimitedWebhook() {
  const counts = { messages: 0, tooManyRequests: 0 };
  let tokens = burst;
  let refilledAt = Date.now();
  const server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      const now = Date.now();
      tokens = Math.min(burst, tokens + ((now - refilledAt) / 1_000) * rate);
      refilledAt = now;
      if (tokens >= 1) {
        tokens -= 1;
        counts.messages += 1;
        response.writeHead(200).end('ok');
      } else {
        counts.tooManyRequests += 1;
        const retryAfter = Math.ceil((1 - tokens) / rate);
        response.writeHead(429, { 'retry-after': String(retryAfter) }).end('rate_limited');
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/services/T0/B0/bench`,
    /** The counts since the last take, and a full bucket for the next run. */
    take() {
      const taken = { ...counts };
      Object.assign(counts, { messages: 0, tooManyRequests: 0 });
      tokens = burst;
      refilledAt = Date.now();
      return taken;
    },
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

const stack = await startBenchStack({ queueDelayMs: 10, attemptDurationMs: 40 });
const webhook = await startRateLimitedWebhook();
const figures: Record<Variant, StormFigures[]> = { current: [], compared: [] };
const variants: Variant[] = compareCheckout ? ['current', 'compared'] : ['current'];

async function run(variant: Variant): Promise<StormFigures> {
  const taskQueue = `bench-storm-${randomUUID().slice(0, 8)}`;
  const workers = [];
  for (let index = 0; index < workerCount; index += 1) {
    workers.push(
      await startBenchWorker({
        kind: 'product',
        stack,
        taskQueue,
        maxCallsPerSecond: 100,
        workersSharingBudget: workerCount,
        notifyWebhookUrl: webhook.url,
        ...(variant === 'compared' && { checkout: compareCheckout }),
      }),
    );
  }
  try {
    const recoveries = new BatchRecoveries(stack.client, taskQueue);
    const batches = Array.from({ length: ends }, () =>
      stack.simulator.createScriptedBatch({ count: 1, pending_phase: { ms: HOUR_MS } }),
    );
    for (const batch of batches) await recoveries.start({ batchId: batch.id });
    await forEachLimit(batches, 20, async (batch) => {
      while ((await recoveries.report(batch.id)).phase !== 'waiting_for_batch') {
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    });
    webhook.take();
    const cancelledAt = Date.now();
    await forEachLimit(batches, 50, (batch) => recoveries.cancel(batch.id));
    await forEachLimit(batches, 20, (batch) => recoveries.result(batch.id).then(() => undefined));
    const taken = webhook.take();
    const tally = { delivered: 0, failed: 0, unknown: 0, skipped: 0, 'not completed': 0 };
    let lastEnd = cancelledAt;
    await forEachLimit(batches, 20, async (batch) => {
      const events = (await recoveries.handle(batch.id).fetchHistory()).events ?? [];
      const closedAt = events.at(-1)!.eventTime!;
      lastEnd = Math.max(lastEnd, closedAt.seconds!.toNumber() * 1_000 + (closedAt.nanos ?? 0) / 1e6);
      const notify = events.find(
        (event) => event.activityTaskScheduledEventAttributes?.activityType?.name === 'notifyRecoveryEnd',
      );
      if (!notify) throw new Error(`the recovery of ${batch.id} scheduled no notification`);
      const completed = events.find(
        (event) => Number(event.activityTaskCompletedEventAttributes?.scheduledEventId) === Number(notify.eventId),
      )?.activityTaskCompletedEventAttributes?.result?.payloads?.[0];
      tally[completed ? defaultPayloadConverter.fromPayload<NotifyResult>(completed).status : 'not completed'] += 1;
    });
    // A worker without the webhook (a checkout whose bench/worker-process.ts does not pass it) measures nothing.
    if (tally.skipped > 0) throw new Error(`${variant}: ${tally.skipped} notifications skipped: no webhook configured`);
    return {
      ...taken,
      delivered: tally.delivered,
      // An attempt that timed out, or ran out of attempts, delivered nothing either.
      failed: tally.failed + tally['not completed'],
      unknown: tally.unknown,
      secondsToLastEnd: (lastEnd - cancelledAt) / 1_000,
    };
  } finally {
    await Promise.all(workers.map((worker) => worker.stop()));
    stack.simulator.reset();
  }
}

const describe = (run: StormFigures) =>
  `${run.messages} messages, ${run.tooManyRequests} 429s; ends delivered ${run.delivered}, failed ${run.failed}, ` +
  `unknown ${run.unknown}; the last closed ${run.secondsToLastEnd.toFixed(1)} s after the cancels`;

try {
  for (let repeat = 0; repeat < repeats; repeat += 1) {
    // Alternating which goes first, so that neither always runs on a fresher server.
    const order = repeat % 2 === 0 ? variants : [...variants].reverse();
    for (const variant of order) {
      const measured = await run(variant);
      figures[variant].push(measured);
      console.error(`repeat ${repeat + 1}, ${variant}: ${describe(measured)}`);
    }
  }
} finally {
  await webhook.close();
  await stack.stop();
}

console.log(
  `\n${ends} recoveries cancelled at once on ${workerCount} worker(s), a webhook of ${rate} message/s with bursts ` +
    `of ${burst}; median (min, max) of ${repeats} repeats:`,
);
for (const variant of variants) {
  const runs = figures[variant];
  const of = (pick: (run: StormFigures) => number, digits = 0) => formatSummary(runs.map(pick), digits);
  console.log(
    `${variant.padEnd(9)} messages ${of((run) => run.messages)}; 429s ${of((run) => run.tooManyRequests)}; ends ` +
      `delivered ${of((run) => run.delivered)}, failed ${of((run) => run.failed)}, unknown ` +
      `${of((run) => run.unknown)}; last end after the cancels ${of((run) => run.secondsToLastEnd, 1)} s`,
  );
}
if (compareCheckout) {
  const ratio = (pick: (run: StormFigures) => number) =>
    formatSummary(figures.current.map((run, index) => pick(run) / Math.max(1, pick(figures.compared[index]!))));
  console.log(
    `ratios per repeat (current / compared): messages ${ratio((run) => run.messages)}; 429s ` +
      `${ratio((run) => run.tooManyRequests)}; last end after the cancels ${ratio((run) => run.secondsToLastEnd)}`,
  );
}
