import { createHash } from 'node:crypto';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { isIP } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import got, { RequestError, TimeoutError, type Response } from 'got';
import { closeOnUpgrade } from '../anchor-api/close-on-upgrade.js';
import { parseRetryAfterMs } from '../anchor-api/retry-after.js';
import type { NotifiableOutcome, RecoveryEnd } from '../workflows/recovery-details.js';

export interface WebhookDigestOptions {
  webhookUrl: string;
  /** Waits after a failed request (5xx, 408, 429, not sent), one per failure in a row; an end is sent at most
   *  their count + 1 times. The answer's Retry-After, when longer, is waited instead. */
  retryDelaysMs: readonly number[];
  /** The whole request, from its DNS lookup to the answer's headers (its body is not read). */
  requestTimeoutMs: number;
  /**
   * Each step of opening the connection (DNS lookup, TCP connect, TLS handshake), well below requestTimeoutMs: a
   * request that could not connect never left, so its ends go again (a black-holed address, say), where one that
   * connected and got no answer may have been delivered.
   */
  connectTimeoutMs: number;
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
  /**
   * Ends in one message at most: each is a block of its own, and Slack takes 50 blocks. Fewer go when their text does
   * not fit in one message (MESSAGE_TEXT_MAX).
   */
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
  /**
   * Called when a request that carried the end did not deliver it (it never left, or the webhook answered 5xx, 408
   * or 429) and its activity was cancelled meanwhile (a stopping worker's grace ran out): the end leaves unsettled, and
   * a later attempt may send it.
   */
  onGivenBack(): void;
  /**
   * When its activity's time is up (ms since the epoch): it is not sent unless the answer can come before. Read once,
   * as deliver() takes the end, as that much time from then (Waiting.deadline).
   */
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
 * How long a worker remembers an end a request carried out (delivered, or its answer lost): past the notify
 * activity's 5 min schedule-to-close, so no later attempt of it on this worker sends it again.
 */
const SENT_ENDS_KEPT_MS = 10 * 60_000;
/** Ends remembered at most: about 100 bytes each. More in 10 min than this are forgotten oldest first. */
const MAX_SENT_ENDS_KEPT = 20_000;
/** got's timeouts of the steps before a request can leave, by the step that did not complete. */
const CONNECT_STEPS = { lookup: 'DNS lookup', connect: 'connect', secureConnect: 'TLS handshake' } as const;

/**
 * A connection of its own for every request: a request that failed before its connection was established provably
 * sent nothing only on a fresh one (got dates a reused socket's connect at the request's start), and a reused socket
 * the webhook had closed would fail a request that did leave, an end then `unknown` for nothing. One message a second
 * at most: a handshake each costs little.
 */
const AGENTS = { http: new HttpAgent({ keepAlive: false }), https: new HttpsAgent({ keepAlive: false }) };

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

/** Slack refuses a message (invalid_blocks) with a section whose text is longer than this. */
export const SECTION_TEXT_MAX = 3_000;

/**
 * The most text a digest's blocks hold in all. Slack refuses a message whose blocks' text is too long in all
 * (`msg_blocks_too_long`), at about 13,200 characters and with no documented figure (slackapi/bolt-js#2509; Slack's
 * answer there: 12,000 characters of text, with a buffer for the blocks' containers). Twenty ends with reasons of 300
 * characters that escape to 1,500 made a message of about 35,000: Slack refused it whole, and each of the twenty ends
 * failed as refused. Ends that do not fit go in the next message.
 */
export const MESSAGE_TEXT_MAX = 10_000;

const reasonCut = (left: number) => `… (${left} more characters of the reason left out)`;

/**
 * `Reason: ` and as much of the reason, escaped, as `budget` holds with the marker of what was left out: cut between
 * characters, never inside an escape or a surrogate pair. At least the marker alone.
 */
function cutReason(reason: string, budget: number): string {
  const characters = [...reason];
  const shown: string[] = [];
  let length = 'Reason: '.length;
  for (const [index, character] of characters.entries()) {
    const escaped = mrkdwnText(character);
    if (length + escaped.length + reasonCut(characters.length - index - 1).length > budget) break;
    shown.push(escaped);
    length += escaped.length;
  }
  return `Reason: ${shown.join('')}${reasonCut(characters.length - shown.length)}`;
}

/** An end's first line: its batch and outcome. */
const endHeadline = (end: RecoveryEnd) =>
  `${OUTCOME_ICONS[end.outcome]} Recovery of batch \`${mrkdwnText(end.batchId)}\` ended *${end.outcome}*`;

/**
 * An end's lines, within SECTION_TEXT_MAX as its block's text: a reason too long (an API's error text, escaped) is cut
 * with a marker saying how much was left out; a link too long to fit whole (a long workflow id or Web UI URL) is left
 * out for a line saying so, as a link cut short leads nowhere. The payload's `reason` and `recoveryUrl` stay whole.
 */
function endLines(end: RecoveryEnd, recoveryUrl: string | null): string {
  const headline = endHeadline(end);
  const counts = `${end.rounds} rounds · ${end.retriedSessions} sessions retried · ${end.recovered} recovered · ${end.stillFailed} still failing`;
  const lines = (reason: string | null, link: string | null) =>
    [headline, counts, ...(reason === null ? [] : [reason]), ...(link === null ? [] : [link])].join('\n');
  const reason = end.reason === null ? null : `Reason: ${mrkdwnText(end.reason)}`;
  let link = recoveryUrl ? `<${recoveryUrl}|Open the recovery in the Temporal Web UI>` : null;
  const whole = lines(reason, link);
  if (whole.length <= SECTION_TEXT_MAX) return whole;
  // The link goes only when it does not fit beside the shortest reason line, its marker alone.
  const shortestReason = end.reason === null ? null : `Reason: ${reasonCut([...end.reason].length)}`;
  if (link !== null && lines(shortestReason, link).length > SECTION_TEXT_MAX) {
    link = `(The link to the recovery in the Web UI is left out: its ${recoveryUrl!.length} characters do not fit a Slack block)`;
  }
  if (end.reason === null || lines(reason, link).length <= SECTION_TEXT_MAX) return lines(reason, link);
  // What the other lines leave of the block, less the reason's line break.
  return lines(cutReason(end.reason, SECTION_TEXT_MAX - lines(null, link).length - 1), link);
}

const section = (text: string) => ({ type: 'section', text: { type: 'mrkdwn', text } });

const digestHeader = (ends: number) => `*${ends} recoveries ended* (one message for ends that came together)`;

/**
 * How many of the queued ends, from the first, one message holds: at most `maxEnds`, and blocks within
 * MESSAGE_TEXT_MAX in all. The first end always goes: its message is its one block, within SECTION_TEXT_MAX.
 */
function endsThatFit(queued: readonly Pick<QueuedEnd, 'end' | 'recoveryUrl'>[], maxEnds: number): number {
  let endsText = 0;
  let count = 0;
  for (const { end, recoveryUrl } of queued.slice(0, maxEnds)) {
    const withEnd = endsText + endLines(end, recoveryUrl).length;
    if (count > 0 && digestHeader(count + 1).length + withEnd > MESSAGE_TEXT_MAX) break;
    endsText = withEnd;
    count += 1;
  }
  return count;
}

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
  const header = digestHeader(queued.length);
  const ends = queued.map(({ end, recoveryUrl }) => endLines(end, recoveryUrl));
  return {
    // Slack shows `text` in a notification when a message has blocks, and a receiver that reads no blocks shows only
    // it: the header and each end's batch and outcome (a batch id is a UUID), the rest being in the blocks.
    text: [header, ...queued.map(({ end }) => endHeadline(end))].join('\n'),
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

interface PostTimeouts {
  requestTimeoutMs: number;
  connectTimeoutMs: number;
}

async function post(url: string, key: string, body: string, timeouts: PostTimeouts): Promise<Attempt> {
  const { requestTimeoutMs, connectTimeoutMs } = timeouts;
  let response: Response;
  const stop = new AbortController();
  try {
    response = await got
      .post(url, {
        headers: { 'content-type': 'application/json', 'idempotency-key': key },
        body,
        agent: AGENTS,
        // Not followed: a redirect would take the message (and a 2xx from there would count as delivered) wherever the
        // answer points, a service on the worker's network or a plain-HTTP host; a Slack webhook never redirects.
        followRedirect: false,
        throwHttpErrors: false,
        retry: { limit: 0 },
        timeout: {
          lookup: connectTimeoutMs,
          connect: connectTimeoutMs,
          secureConnect: connectTimeoutMs,
          request: requestTimeoutMs,
        },
        signal: stop.signal,
      })
      .on(
        'request',
        closeOnUpgrade(() => stop.abort()),
      )
      // The status and headers settle a request, and got's promise settles only after the whole body: its first
      // progress event comes as the headers do, so the body (Slack's is `ok` or an error's name) is dropped unread,
      // and one that trickles cannot hold the webhook's one line until the request's timeout, nor fill the memory.
      .on('downloadProgress', () => stop.abort());
  } catch (err) {
    // The answer's headers came (the abort above): the status settles it.
    if (err instanceof RequestError && err.response) response = err.response;
    else return notAnswered(err, new URL(url));
  }
  const status = response.statusCode;
  if (status >= 200 && status < 300) return { kind: 'delivered', httpStatus: status };
  // A 4xx is the receiver refusing this message (Slack: invalid_payload, no_service), and a 3xx says the URL is not
  // the webhook's: sending it again changes nothing.
  if (status >= 500 || status === 408 || status === 429) {
    const retryAfterMs = parseRetryAfterMs(response.headers['retry-after']);
    return { kind: 'failed', httpStatus: status, retryAfterMs };
  }
  return { kind: 'refused', httpStatus: status };
}

/**
 * A request that got no answer: not sent when its connection was never established (refused, unroutable, a name that
 * does not resolve, a DNS lookup, connect or TLS handshake that failed or did not complete in time), as a request
 * leaves only over an established connection, and over TLS only after the handshake; else it may have been delivered.
 */
function notAnswered(error: unknown, url: URL): Attempt {
  const secure = url.protocol === 'https:';
  // Not got's: nothing says how far the request went.
  if (!(error instanceof RequestError)) return { kind: 'unknown', code: (error as Error).name };
  const { timings } = error;
  const connected = timings !== undefined && (secure ? timings.secureConnect : timings.connect) !== undefined;
  // Only the code: an error message may carry the host, and the URL is a secret.
  const code = error.code;
  if (connected) return { kind: 'unknown', code: error instanceof TimeoutError ? 'TimeoutError' : code };
  if (!(error instanceof TimeoutError)) {
    // Node's https client writes before the handshake ends, so a failed one shows as that write's error (EPROTO).
    const handshake = secure && timings?.connect !== undefined;
    return { kind: 'not_sent', code: handshake ? `TLS handshake failed (${code})` : code };
  }
  // The step whose own timeout ran out, or the one the whole request's timeout cut short. An IP literal is not looked
  // up (got fills its lookup time in at the connect): a lookup time missing then does not name the DNS.
  const hostIsName = isIP(url.hostname.replace(/^\[|\]$/g, '')) === 0;
  const step = Object.hasOwn(CONNECT_STEPS, error.event)
    ? (error.event as keyof typeof CONNECT_STEPS)
    : hostIsName && timings?.lookup === undefined
      ? 'lookup'
      : timings?.connect === undefined
        ? 'connect'
        : 'secureConnect';
  return { kind: 'not_sent', code: `${CONNECT_STEPS[step]} timed out` };
}

interface Waiting extends QueuedEnd {
  /**
   * `deadlineAt` on this process's monotonic clock (performance.now()), taken once as the end arrives: what was left
   * of its time by the wall clock then, from then on. A step of the wall clock after that neither ends nor stretches
   * it.
   */
  deadline: number;
  sends: number;
  signal: AbortSignal;
  /** Each settles the end once; later calls do nothing. */
  settle(delivery: EndDelivery): void;
  /** Its activity was cancelled: the end leaves without a delivery (it was not, or not surely, sent). */
  abandon(): void;
}

/**
 * A worker's one line to the webhook. Ends that come together (an Anchor outage, an operator cancelling a sweep's
 * recoveries) go out as one message (or as few as Slack's sizes allow), and requests go out one at a time, spaced by
 * this worker's share of the webhook's pace (`minPostIntervalMs` × the workers posting to it), so a storm of ends makes
 * a few messages instead of a storm of 429s, however many workers it falls on. A request that got an answer settles
 * every end it carried: 2xx delivered, 3xx (not followed) or 4xx refused; after a 5xx, 408 or 429 (or a request that
 * never left) the same ends go out again first, after a backoff or the answer's Retry-After. A request whose answer
 * never came may have been delivered, so its ends are `unknown` and not sent again. An end is never held past its
 * activity's deadline: one that could not be sent and answered in time settles `failed` unsent, so its recovery ends
 * with the reason instead of a timeout.
 */
export class WebhookDigest {
  private readonly queue: Waiting[] = [];
  private draining = false;
  /** When the next request may leave, by performance.now(): a step of the wall clock must not pace the webhook. */
  private nextPostAt = 0;
  private failuresInARow = 0;
  /** A Retry-After too long to wait: until then, ends fail unsent rather than each draw the same answer. */
  private refusal: { until: number; httpStatus: number } | undefined;
  /**
   * The ends requests carried out, by key, with when (performance.now()), oldest first. An attempt whose `sending`
   * heartbeat never reached the server (Temporal unreachable, an event loop stalled past the heartbeat timeout) times
   * out though its end went out, and the server retries it: on this worker it is not sent again.
   */
  private readonly sentEnds = new Map<string, { delivery: EndDelivery; at: number }>();

  constructor(private readonly options: WebhookDigestOptions) {}

  /** Queues an end for the next message. Aborted while it waits, it leaves the queue; once sent, it is settled. */
  deliver(queued: QueuedEnd, signal: AbortSignal): Promise<EndDelivery> {
    return new Promise<EndDelivery>((resolve, reject) => {
      signal.throwIfAborted();
      let settled = false;
      const waiting: Waiting = {
        ...queued,
        deadline: performance.now() + (queued.deadlineAt - Date.now()),
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
        const wait = this.nextPostAt - performance.now();
        // Unreferenced: a stopping worker whose notifications were all cancelled need not wait out a Retry-After.
        if (wait > 0) await sleep(wait, undefined, { ref: false });
        this.failUnsendable();
        // Ends that left the queue while it waited are gone; ends that came meanwhile join this message.
        if (this.queue.length === 0) break;
        const message = this.queue.splice(0, endsThatFit(this.queue, this.options.maxEndsPerMessage));
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
   * Why an end cannot go out in the next request, if it cannot: a request carried it out already (an attempt retried
   * while, or after, the one before it sent it: how that request settled it), the webhook asked for a long wait, or
   * its activity's time would be up before the answer.
   */
  private unsendable(waiting: Waiting): EndDelivery | undefined {
    const sent = this.sentEnd(waiting.key);
    if (sent) return sent;
    const again = waiting.sends > 0 ? 'not sent again' : 'not sent';
    if (this.refusal && Date.now() < this.refusal.until) {
      const until = new Date(this.refusal.until).toISOString();
      const detail = `${again}: the webhook asked to wait until ${until}`;
      return { status: 'failed', httpStatus: this.refusal.httpStatus, ends: 0, detail };
    }
    if (waiting.deadline < Math.max(performance.now(), this.nextPostAt) + this.options.requestTimeoutMs) {
      return { status: 'failed', httpStatus: null, ends: 0, detail: `${again}: its attempt's time ran out` };
    }
    return undefined;
  }

  /** What the request that carried out the end with this key settled it as; undefined if none did. */
  private sentEnd(key: string): EndDelivery | undefined {
    const now = performance.now();
    for (const [oldest, { at }] of this.sentEnds) {
      if (now - at <= SENT_ENDS_KEPT_MS) break;
      this.sentEnds.delete(oldest);
    }
    return this.sentEnds.get(key)?.delivery;
  }

  private rememberSent(message: readonly Waiting[], delivery: EndDelivery): void {
    const at = performance.now();
    for (const { key } of message) {
      this.sentEnds.delete(key);
      this.sentEnds.set(key, { delivery, at });
    }
    for (const oldest of this.sentEnds.keys()) {
      if (this.sentEnds.size <= MAX_SENT_ENDS_KEPT) break;
      this.sentEnds.delete(oldest);
    }
  }

  /** Settles, unsent, the queued ends that cannot go out in the next request (unsendable). */
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
    const { webhookUrl, requestTimeoutMs, connectTimeoutMs, retryDelaysMs } = this.options;
    for (const waiting of message) {
      waiting.sends += 1;
      waiting.onSending();
    }
    const body = JSON.stringify(webhookMessage(message));
    const attempt = await post(webhookUrl, messageKey(message), body, { requestTimeoutMs, connectTimeoutMs });
    // Counted after the answer, so a count that changed during the request spaces the very next one.
    const postIntervalMs = this.postIntervalMs();
    this.nextPostAt = performance.now() + postIntervalMs;
    const ends = message.length;
    const settleAll = (delivery: EndDelivery) => message.forEach((waiting) => waiting.settle(delivery));
    switch (attempt.kind) {
      case 'delivered': {
        this.failuresInARow = 0;
        const delivery: EndDelivery = { status: 'delivered', httpStatus: attempt.httpStatus, ends };
        this.rememberSent(message, delivery);
        return settleAll(delivery);
      }
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
      case 'unknown': {
        const delivery: EndDelivery = {
          status: 'unknown',
          ends,
          detail: `no answer (${attempt.code}): not sent again`,
        };
        this.rememberSent(message, delivery);
        return settleAll(delivery);
      }
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
          // Cancelled while its request was out, and not delivered: it goes no further here.
          if (waiting.signal.aborted) {
            waiting.onGivenBack();
            waiting.abandon();
          } else if (waiting.sends > retryDelaysMs.length)
            waiting.settle({ status: 'failed', httpStatus, ends, detail: `still failing: ${what}` });
          else again.push(waiting);
        }
        for (const waiting of again) waiting.onRetry(what, delayMs);
        this.nextPostAt = performance.now() + delayMs;
        this.queue.unshift(...again);
      }
    }
  }
}
