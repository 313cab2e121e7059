import type { Client } from '@temporalio/client';
import type { MetricGauge } from '@temporalio/common';
import ms from 'ms';
import { RECOVER_BATCH_WORKFLOW } from '../workflows/definitions.js';
import { recoveryDeadlineKey, recoveryRoundsKey } from '../workflows/search-attributes.js';

/** The gauge's name on /metrics; deploy/prometheus/alerts.yml alerts on it (RecoveryPastDeadline). */
export const PAST_DEADLINE_METRIC = 'anchor_recoveries_past_deadline';

/**
 * When the count last succeeded, in Unix seconds (0 until the first success): the gauge above keeps its last value
 * while counts fail, and alerts.yml alerts on this one growing old (PastDeadlineCountFailing).
 */
export const PAST_DEADLINE_COUNTED_AT_METRIC = 'anchor_recoveries_past_deadline_counted_at_seconds';

/** The least a count is given to answer, however short the interval (tests set one of 200 ms). */
const MIN_COUNT_TIMEOUT_MS = 10_000;

/** A failing count's error, as much of it as a log line needs. */
const MAX_ERROR_LENGTH = 300;

/**
 * The visibility query for recoveries still running `graceMs` after their deadline. A recovery may
 * legitimately outlive its deadline by a few minutes (a reconciliation, the end notification).
 *
 * And for those started `graceMs` ago that no workflow task of ours has completed since: every
 * release's first task writes RecoveryRounds (0 before a round), which no start sets. The CLI and
 * sweeps set RecoveryDeadline and AnchorBatchId at start (recovery-start.ts), so a start of theirs
 * on a task queue no worker polls (a name mistyped) was found only past its deadline, a day later
 * by default; the Web UI's start form and `temporal workflow start` set neither. Such a recovery
 * stays Running with no other alert: its queue's workers are healthy, and no task of it ever fails.
 */
export function pastDeadlineQuery(now: Date, graceMs: number): string {
  const cutoff = new Date(now.getTime() - graceMs).toISOString();
  const deadline = recoveryDeadlineKey.name;
  const neverRun = `${recoveryRoundsKey.name} IS NULL AND StartTime < "${cutoff}"`;
  return [
    `WorkflowType = "${RECOVER_BATCH_WORKFLOW}"`,
    `ExecutionStatus = "Running"`,
    `(${deadline} < "${cutoff}" OR (${neverRun}))`,
  ].join(' AND ');
}

/** How many recoveries of the client's namespace are still running past their deadline (visibility is eventually consistent). */
export async function countRecoveriesPastDeadline(client: Client, graceMs: number, now = new Date()): Promise<number> {
  const { count } = await client.workflow.count(pastDeadlineQuery(now, graceMs));
  return count;
}

/**
 * Counts as countRecoveriesPastDeadline does, but fails with no answer within `timeoutMs`: a count that never returns
 * (a connection gone silent, a server that holds the call) would hold up every later one. The call goes with that
 * deadline, which ends it on the worker's NativeConnection too (it ignores an abort signal in SDK 1.24, and sends no
 * deadline of its own), and the count fails at the deadline whatever the call does.
 */
async function countWithin(client: Client, graceMs: number, timeoutMs: number): Promise<number> {
  let timer: NodeJS.Timeout | undefined;
  const unanswered = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms(timeoutMs)}`)), timeoutMs);
  });
  try {
    return await Promise.race([
      client.withDeadline(Date.now() + timeoutMs, () => countRecoveriesPastDeadline(client, graceMs)),
      unanswered,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export interface PastDeadlineGaugeOptions {
  client: Client;
  gauge: MetricGauge;
  /** Set to the time of every successful count (PAST_DEADLINE_COUNTED_AT_METRIC). */
  countedAtGauge: MetricGauge;
  logger: { warn(fields: object, message: string): void };
  intervalMs: number;
  graceMs: number;
  /**
   * How long a count may go unanswered before it fails and the next may run. Absent: the interval, and at least
   * MIN_COUNT_TIMEOUT_MS, as a visibility store under load can take seconds to answer a count that is not stuck.
   */
  countTimeoutMs?: number;
}

export interface RunningGauge {
  stop(): void;
}

/**
 * Sets the gauge now and every `intervalMs`, one count at a time, each given `countTimeoutMs`, and `countedAtGauge`
 * to when it succeeded. A failing count, or one with no answer in time, keeps the last value and logs why; it never
 * stops the worker. Every worker of a namespace reports the same count.
 */
export function startPastDeadlineGauge({
  client,
  gauge,
  countedAtGauge,
  logger,
  intervalMs,
  graceMs,
  countTimeoutMs = Math.max(intervalMs, MIN_COUNT_TIMEOUT_MS),
}: PastDeadlineGaugeOptions): RunningGauge {
  const namespace = client.options.namespace;
  // Exported from the start: a worker whose counts fail from the first one must not leave the alert without a series.
  countedAtGauge.set(0, { namespace });
  let counting = false;
  const update = async () => {
    if (counting) return;
    counting = true;
    try {
      gauge.set(await countWithin(client, graceMs, countTimeoutMs), { namespace });
      countedAtGauge.set(Math.floor(Date.now() / 1000), { namespace });
    } catch (err) {
      const error = (err instanceof Error ? err.message : String(err)).slice(0, MAX_ERROR_LENGTH);
      logger.warn({ metric: PAST_DEADLINE_METRIC, error }, 'Counting recoveries past their deadline failed');
    } finally {
      counting = false;
    }
  };
  void update();
  const timer = setInterval(() => void update(), intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
