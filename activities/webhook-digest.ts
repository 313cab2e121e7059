import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseRetryAfterMs } from '../anchor-api/retry-after.js';
import type { NotifiableOutcome, RecoveryEnd } from '../workflows/recovery-details.js';

export interface WebhookDigestOptions {
  webhookUrl: string;
  /** Waits after a failed request (5xx, 408, 429, not sent), one per failure in a row; an end is sent at most
   *  their count + 1 times. The answer's Retry-After, when longer, is waited instead. */
  retryDelaysMs: readonly number[];
  requestTimeoutMs: number;
  /**
   * The least time between two messages to the webhook from all its senders: Slack's incoming webhooks take about one
   * message a second.
   */
  minPostIntervalMs: number;
  /**
   * How many workers post to the webhook, this one included (the task queue's, as counted for the Anchor budget):
   * each posts at most once in their count × minPostIntervalMs, so that together they keep the webhook's pace.
   * Absent: this one alone.
   */
  senders?: () => number;
  /** Ends in one message at most: each is a block of its own, and Slack takes 50 blocks. */
  maxEndsPerMessage: number;
}

/** One recovery end waiting for the webhook. */
export interface QueuedEnd {
  end: RecoveryEnd;
  /** The end's Idempotency-Key (notify-activities.ts). */
  key: string;
  recoveryUrl: string | null;
  /** Called just before each request that carries the end leaves: the activity heartbeats `sending`. */
  onSending(): void;
  /** Called when a request that carried the end failed and the end goes out again after `delayMs`. */
  onRetry(failure: string, delayMs: number): void;
  /** When its activity's time is up (ms since the epoch): it is not sent unless the answer can come before. */
  deadlineAt: number;
}

export type EndDelivery =
  | { status: 'delivered'; httpStatus: number; ends: number }
  | { status: 'failed'; httpStatus: number | null; ends: number; detail: string }
  | { status: 'unknown'; ends: number; detail: string };

type Attempt =
  | { kind: 'delivered' | 'refused'; httpStatus: number }
  | { kind: 'failed'; httpStatus: number; retryAfterMs: number | undefined }
  | { kind: 'not_sent' | 'unknown'; code: string };

/** A Retry-After longer than this is not waited: the ends fail, and their recoveries close with the reason. */
const MAX_RETRY_AFTER_MS = 60_000;
/**
 * Connection errors that prove the request never reached the receiver: refused or unroutable, or a TLS handshake
 * that failed (the port does not speak TLS, or its certificate is not to be trusted), as a request leaves only after
 * the handshake.
 */
const NOT_SENT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
]);

const OUTCOME_ICONS: Record<NotifiableOutcome, string> = {
  exhausted: ':warning:',
  deadline: ':hourglass:',
  failed: ':x:',
  batch_cancelled: ':no_entry_sign:',
  operator_cancelled: ':octagonal_sign:',
};

/**
 * Texts from the API (a failure's reason) or a batch id in Slack's mrkdwn: `<!channel>` would ping the channel, and
 * `<mailto:…|…>` show a link of the API's. Slack asks for these three characters escaped.
 */
const mrkdwnText = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function endLines(end: RecoveryEnd, recoveryUrl: string | null): string {
  const headline = `${OUTCOME_ICONS[end.outcome]} Recovery of batch \`${mrkdwnText(end.batchId)}\` ended *${end.outcome}*`;
  const counts = `${end.rounds} rounds · ${end.retriedSessions} sessions retried · ${end.recovered} recovered · ${end.stillFailed} still failing`;
  const link = recoveryUrl ? `<${recoveryUrl}|Open the recovery in the Temporal Web UI>` : null;
  return [headline, counts, ...(end.reason ? [`Reason: ${mrkdwnText(end.reason)}`] : []), ...(link ? [link] : [])].join(
    '\n',
  );
}

const section = (text: string) => ({ type: 'section', text: { type: 'mrkdwn', text } });

/**
 * A Slack incoming-webhook message for the ends queued together; `metadata` carries the same facts for receivers
 * that parse JSON. One end keeps the message it always had; several make one message with a block per end.
 */
export function webhookMessage(queued: readonly Pick<QueuedEnd, 'end' | 'key' | 'recoveryUrl'>[]) {
  const payload = ({ end, key, recoveryUrl }: (typeof queued)[number]) => ({
    ...end,
    idempotencyKey: key,
    recoveryUrl,
  });
  if (queued.length === 1) {
    const text = endLines(queued[0]!.end, queued[0]!.recoveryUrl);
    return {
      text,
      blocks: [section(text)],
      metadata: { event_type: 'anchor_recovery_ended', event_payload: payload(queued[0]!) },
    };
  }
  const header = `*${queued.length} recoveries ended* (one message for ends that came together)`;
  const ends = queued.map(({ end, recoveryUrl }) => endLines(end, recoveryUrl));
  return {
    text: [header, ...ends].join('\n\n'),
    blocks: [section(header), ...ends.map(section)],
    metadata: { event_type: 'anchor_recovery_ended_digest', event_payload: { ends: queued.map(payload) } },
  };
}

/** The same key for every request of the same ends, in any order: receivers that dedupe can drop repeats. */
function messageKey(queued: readonly QueuedEnd[]): string {
  if (queued.length === 1) return queued[0]!.key;
  const keys = queued.map(({ key }) => key).sort();
  return `digest-${createHash('sha256').update(keys.join('\n')).digest('hex').slice(0, 32)}`;
}

async function post(url: string, key: string, body: string, timeoutMs: number): Promise<Attempt> {
  try {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': key },
      body,
      // Not followed: a redirect would take the message (and a 2xx from there would count as delivered) wherever the
      // answer points, a service on the worker's network or a plain-HTTP host; a Slack webhook never redirects.
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    });
    await response.body?.cancel();
    if (response.ok) return { kind: 'delivered', httpStatus: response.status };
    // A 4xx is the receiver refusing this message (Slack: invalid_payload, no_service), and a 3xx says the URL is not
    // the webhook's: sending it again changes nothing.
    if (response.status >= 500 || response.status === 408 || response.status === 429) {
      const retryAfterMs = parseRetryAfterMs(response.headers.get('retry-after') ?? undefined);
      return { kind: 'failed', httpStatus: response.status, retryAfterMs };
    }
    return { kind: 'refused', httpStatus: response.status };
  } catch (err) {
    // Only the code: an error message may carry the host, and the URL is a secret.
    const cause = (err as { cause?: { code?: unknown } }).cause;
    const code = typeof cause?.code === 'string' ? cause.code : (err as Error).name;
    return { kind: NOT_SENT_CODES.has(code) ? 'not_sent' : 'unknown', code };
  }
}

interface Waiting extends QueuedEnd {
  sends: number;
  signal: AbortSignal;
  /** Each settles the end once; later calls do nothing. */
  settle(delivery: EndDelivery): void;
  /** Its activity was cancelled: the end leaves without a delivery (it was not, or not surely, sent). */
  abandon(): void;
}

/**
 * A worker's one line to the webhook. Ends that come together (an Anchor outage, an operator cancelling a sweep's
 * recoveries) go out as one message, and requests go out one at a time, spaced by this worker's share of the
 * webhook's pace (`minPostIntervalMs` × the workers posting to it), so a storm of ends makes a few messages instead
 * of a storm of 429s, however many workers it falls on. A request that got an answer settles every end it carried:
 * 2xx delivered, 3xx (not followed) or 4xx refused; after a 5xx, 408 or 429 (or a request that never left) the same
 * ends go out again first, after a backoff or the answer's Retry-After. A request whose answer never came may have
 * been delivered, so its ends are `unknown` and not sent again. An end is never held past its activity's deadline:
 * one that could not be sent and answered in time settles `failed` unsent, so its recovery ends with the reason
 * instead of a timeout.
 */
export class WebhookDigest {
  private readonly queue: Waiting[] = [];
  private draining = false;
  private nextPostAt = 0;
  private failuresInARow = 0;
  /** A Retry-After too long to wait: until then, ends fail unsent rather than each draw the same answer. */
  private refusal: { until: number; httpStatus: number } | undefined;

  constructor(private readonly options: WebhookDigestOptions) {}

  /** Queues an end for the next message. Aborted while it waits, it leaves the queue; once sent, it is settled. */
  deliver(queued: QueuedEnd, signal: AbortSignal): Promise<EndDelivery> {
    return new Promise<EndDelivery>((resolve, reject) => {
      signal.throwIfAborted();
      let settled = false;
      const waiting: Waiting = {
        ...queued,
        sends: 0,
        signal,
        settle(delivery) {
          if (settled) return;
          settled = true;
          signal.removeEventListener('abort', leave);
          resolve(delivery);
        },
        abandon() {
          if (settled) return;
          settled = true;
          signal.removeEventListener('abort', leave);
          reject(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)));
        },
      };
      // In a request, the end stays until the answer: send() then drops it rather than send it again.
      const leave = () => {
        const index = this.queue.indexOf(waiting);
        if (index < 0) return;
        this.queue.splice(index, 1);
        waiting.abandon();
      };
      signal.addEventListener('abort', leave);
      const unsendable = this.unsendable(waiting);
      if (unsendable) return waiting.settle(unsendable);
      this.queue.push(waiting);
      if (!this.draining) {
        // drain() catches the webhook's failures; anything else (a bug of ours) must not strand the queue.
        void this.drain().catch((err: unknown) => {
          for (const stranded of this.queue.splice(0)) {
            stranded.settle({ status: 'failed', httpStatus: null, ends: 0, detail: `not sent: ${String(err)}` });
          }
        });
      }
    });
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      while (this.queue.length > 0) {
        // Before the wait too: an end that cannot be sent and answered after it fails now, not at its timeout.
        this.failUnsendable();
        const wait = this.nextPostAt - Date.now();
        // Unreferenced: a stopping worker whose notifications were all cancelled need not wait out a Retry-After.
        if (wait > 0) await sleep(wait, undefined, { ref: false });
        this.failUnsendable();
        // Ends that left the queue while it waited are gone; ends that came meanwhile join this message.
        if (this.queue.length === 0) break;
        const message = this.queue.splice(0, this.options.maxEndsPerMessage);
        try {
          await this.send(message);
        } catch (err) {
          // A bug of ours, not the webhook's answer: the ends may have gone out, so they are not sent again.
          for (const waiting of message) {
            waiting.settle({ status: 'unknown', ends: message.length, detail: `not settled: ${String(err)}` });
          }
        }
      }
    } finally {
      this.draining = false;
    }
  }

  /**
   * Why an end cannot go out in the next request, if it cannot: the webhook asked for a long wait, or its activity's
   * time would be up before the answer.
   */
  private unsendable(waiting: Waiting): EndDelivery | undefined {
    const now = Date.now();
    const again = waiting.sends > 0 ? 'not sent again' : 'not sent';
    if (this.refusal && now < this.refusal.until) {
      const until = new Date(this.refusal.until).toISOString();
      const detail = `${again}: the webhook asked to wait until ${until}`;
      return { status: 'failed', httpStatus: this.refusal.httpStatus, ends: 0, detail };
    }
    if (waiting.deadlineAt < Math.max(now, this.nextPostAt) + this.options.requestTimeoutMs) {
      return { status: 'failed', httpStatus: null, ends: 0, detail: `${again}: its attempt's time ran out` };
    }
    return undefined;
  }

  /** Settles, unsent, the queued ends that cannot go out in the next request. */
  private failUnsendable(): void {
    for (const waiting of [...this.queue]) {
      const unsendable = this.unsendable(waiting);
      if (!unsendable) continue;
      this.queue.splice(this.queue.indexOf(waiting), 1);
      waiting.settle(unsendable);
    }
  }

  /** This worker's share of the webhook's pace: the time between two of its requests. */
  private postIntervalMs(): number {
    return this.options.minPostIntervalMs * Math.max(1, this.options.senders?.() ?? 1);
  }

  private async send(message: Waiting[]): Promise<void> {
    const { webhookUrl, requestTimeoutMs, retryDelaysMs } = this.options;
    for (const waiting of message) {
      waiting.sends += 1;
      waiting.onSending();
    }
    const body = JSON.stringify(webhookMessage(message));
    const attempt = await post(webhookUrl, messageKey(message), body, requestTimeoutMs);
    // Counted after the answer, so a count that changed during the request spaces the very next one.
    const postIntervalMs = this.postIntervalMs();
    this.nextPostAt = Date.now() + postIntervalMs;
    const ends = message.length;
    const settleAll = (delivery: EndDelivery) => message.forEach((waiting) => waiting.settle(delivery));
    switch (attempt.kind) {
      case 'delivered':
        this.failuresInARow = 0;
        return settleAll({ status: 'delivered', httpStatus: attempt.httpStatus, ends });
      case 'refused': {
        this.failuresInARow = 0;
        const { httpStatus } = attempt;
        const redirected = httpStatus >= 300 && httpStatus < 400;
        return settleAll({
          status: 'failed',
          httpStatus,
          ends,
          detail: redirected
            ? `webhook redirected (HTTP ${httpStatus}): not followed`
            : `webhook refused: HTTP ${httpStatus}`,
        });
      }
      case 'unknown':
        return settleAll({ status: 'unknown', ends, detail: `no answer (${attempt.code}): not sent again` });
      default: {
        const httpStatus = attempt.kind === 'failed' ? attempt.httpStatus : null;
        const what = attempt.kind === 'failed' ? `HTTP ${attempt.httpStatus}` : attempt.code;
        const retryAfterMs = attempt.kind === 'failed' ? attempt.retryAfterMs : undefined;
        const backoffMs = retryDelaysMs[Math.min(this.failuresInARow, retryDelaysMs.length - 1)] ?? 0;
        this.failuresInARow += 1;
        if (attempt.kind === 'failed' && retryAfterMs !== undefined && retryAfterMs > MAX_RETRY_AFTER_MS) {
          // parseRetryAfterMs caps it (RETRY_AFTER_MAX_MS): an absurd Retry-After (years) refuses for a day.
          this.refusal = { until: Date.now() + retryAfterMs, httpStatus: attempt.httpStatus };
          return settleAll({
            status: 'failed',
            httpStatus,
            ends,
            detail: `still failing: ${what}, Retry-After ${retryAfterMs} ms`,
          });
        }
        const delayMs = Math.max(backoffMs, retryAfterMs ?? 0, postIntervalMs);
        const again: Waiting[] = [];
        for (const waiting of message) {
          // Cancelled while its request was out, and not delivered: it goes no further.
          if (waiting.signal.aborted) waiting.abandon();
          else if (waiting.sends > retryDelaysMs.length)
            waiting.settle({ status: 'failed', httpStatus, ends, detail: `still failing: ${what}` });
          else again.push(waiting);
        }
        for (const waiting of again) waiting.onRetry(what, delayMs);
        this.nextPostAt = Date.now() + delayMs;
        this.queue.unshift(...again);
      }
    }
  }
}
