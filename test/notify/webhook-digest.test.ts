import { jest } from '@jest/globals';
import dns from 'node:dns';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import {
  MESSAGE_TEXT_MAX,
  SECTION_TEXT_MAX,
  WebhookDigest,
  webhookMessage,
  type EndDelivery,
  type QueuedEnd,
} from '../../activities/webhook-digest.js';
import type { RecoveryEnd } from '../../workflows/recovery-details.js';
import { answerSwitchingProtocols, startHostileServer } from '../helpers/hostile-server.js';
import { eventually } from '../helpers/recovery-env.js';
import { startBlackHole } from './black-hole.js';
import { startWebhookReceiver, type ReceivedRequest, type WebhookReceiver } from './webhook-receiver.js';

// The worker's one line to the webhook, against a receiver of the test's own over real HTTP.

let receiver: WebhookReceiver | undefined;

afterEach(async () => {
  await receiver?.close();
  receiver = undefined;
});

const MIN_INTERVAL_MS = 200;

function digestTo(url: string, options: Partial<ConstructorParameters<typeof WebhookDigest>[0]> = {}) {
  return new WebhookDigest({
    webhookUrl: url,
    retryDelaysMs: [50, 50],
    requestTimeoutMs: 5_000,
    connectTimeoutMs: 1_000,
    minPostIntervalMs: MIN_INTERVAL_MS,
    maxEndsPerMessage: 20,
    ...options,
  });
}

/** A queued end that counts its sends and retries, and the requests the receiver had when each send began. */
function queuedEnd(index: number, receivedBefore?: () => number) {
  const end: RecoveryEnd = {
    batchId: `batch-${index}`,
    outcome: 'exhausted',
    rounds: 3,
    retriedSessions: 2,
    recovered: 1,
    stillFailed: 1,
    reason: null,
  };
  const counts = {
    sends: 0,
    retries: [] as { failure: string; delayMs: number }[],
    receivedAtSends: [] as number[],
    givenBack: 0,
  };
  const queued: QueuedEnd = {
    end,
    key: `recover-batch-batch-${index}/run/exhausted`,
    recoveryUrl: null,
    deadlineAt: Date.now() + 60_000,
    onSending: () => {
      counts.sends += 1;
      if (receivedBefore) counts.receivedAtSends.push(receivedBefore());
    },
    onRetry: (failure, delayMs) => counts.retries.push({ failure, delayMs }),
    onGivenBack: () => (counts.givenBack += 1),
  };
  return { queued, counts };
}

/** The ends' keys a request carried: one end's message, or a digest's. */
function keysIn(request: ReceivedRequest): string[] {
  const metadata = request.body.metadata as { event_type: string; event_payload: Record<string, unknown> };
  if (metadata.event_type === 'anchor_recovery_ended') return [metadata.event_payload.idempotencyKey as string];
  return (metadata.event_payload.ends as { idempotencyKey: string }[]).map((end) => end.idempotencyKey);
}

const neverAborted = () => new AbortController().signal;

test('ends that come while a message is out go in the next, at most 20 a message, one request at a time, spaced', async () => {
  receiver = await startWebhookReceiver(['hold']);
  const digest = digestTo(receiver.url);
  const ends = Array.from({ length: 25 }, (_, index) => queuedEnd(index));
  const first = digest.deliver(ends[0]!.queued, neverAborted());
  await eventually('the first request', () => (receiver!.requests.length === 1 ? true : undefined));

  // 24 more come while the first is out; one of them is cancelled before it is sent.
  const cancel = new AbortController();
  const later = ends
    .slice(1)
    .map(({ queued }, index) => digest.deliver(queued, index === 4 ? cancel.signal : neverAborted()));
  cancel.abort(new Error('activity cancelled'));
  receiver.release(200);
  const [cancelled, ...settled] = await Promise.allSettled([later[4], first, ...later.filter((_, i) => i !== 4)]);

  expect(cancelled).toEqual({ status: 'rejected', reason: new Error('activity cancelled') });
  const deliveries = settled.map((result) => (result as PromiseFulfilledResult<EndDelivery>).value);
  expect(receiver.requests.map(keysIn)).toEqual([
    [ends[0]!.queued.key],
    ends
      .slice(1, 22)
      .filter((_, i) => i !== 4)
      .map(({ queued }) => queued.key),
    ends.slice(22).map(({ queued }) => queued.key),
  ]);
  expect(deliveries).toEqual([
    { status: 'delivered', httpStatus: 200, ends: 1 },
    ...Array.from({ length: 20 }, () => ({ status: 'delivered', httpStatus: 200, ends: 20 })),
    ...Array.from({ length: 3 }, () => ({ status: 'delivered', httpStatus: 200, ends: 3 })),
  ]);
  expect(ends.map(({ counts }) => counts.sends)).toEqual(ends.map((_, index) => (index === 5 ? 0 : 1)));

  const digestRequest = receiver.requests[1]!;
  expect(digestRequest.headers['idempotency-key']).toMatch(/^digest-[0-9a-f]{32}$/);
  expect(digestRequest.body.text).toMatch(/^\*20 recoveries ended\*/);
  expect(digestRequest.body.blocks).toHaveLength(21);
  for (const [previous, next] of [receiver.requests.slice(0, 2), receiver.requests.slice(1, 3)]) {
    expect(next!.receivedAt - previous!.answeredAt!).toBeGreaterThanOrEqual(MIN_INTERVAL_MS);
  }
});

test("a 429's Retry-After is waited before the same ends go again, with the same key; one over 60 s is not", async () => {
  receiver = await startWebhookReceiver([{ status: 429, retryAfter: '1' }]);
  const digest = digestTo(receiver.url);
  const { queued, counts } = queuedEnd(1);

  expect(await digest.deliver(queued, neverAborted())).toEqual({ status: 'delivered', httpStatus: 200, ends: 1 });
  expect(receiver.requests).toHaveLength(2);
  const [limited, resent] = receiver.requests;
  expect(resent!.headers['idempotency-key']).toBe(limited!.headers['idempotency-key']);
  expect(resent!.receivedAt - limited!.answeredAt!).toBeGreaterThanOrEqual(1_000);
  expect(counts).toMatchObject({ sends: 2, retries: [{ failure: 'HTTP 429', delayMs: 1_000 }] });

  const slow = await startWebhookReceiver([{ status: 429, retryAfter: '120' }]);
  const slowDigest = digestTo(slow.url);
  try {
    const other = queuedEnd(2);
    expect(await slowDigest.deliver(other.queued, neverAborted())).toEqual({
      status: 'failed',
      httpStatus: 429,
      ends: 1,
      detail: 'still failing: HTTP 429, Retry-After 120000 ms',
    });
    // Until then, ends fail unsent instead of each drawing the same answer.
    const next = queuedEnd(3);
    expect(await slowDigest.deliver(next.queued, neverAborted())).toEqual({
      status: 'failed',
      httpStatus: 429,
      ends: 0,
      detail: expect.stringMatching(/^not sent: the webhook asked to wait until \d{4}-/),
    });
    expect(slow.requests).toHaveLength(1);
    expect(next.counts.sends).toBe(0);
  } finally {
    await slow.close();
  }
});

test('a Retry-After however long refuses ends for 24 h at most, on this worker; then the next end is sent', async () => {
  receiver = await startWebhookReceiver([{ status: 429, retryAfter: '99999999999' }]);
  const digest = digestTo(receiver.url);
  const refusedAt = Date.now();

  expect(await digest.deliver(queuedEnd(1).queued, neverAborted())).toEqual({
    status: 'failed',
    httpStatus: 429,
    ends: 1,
    detail: 'still failing: HTTP 429, Retry-After 86400000 ms',
  });
  const during = await digest.deliver(queuedEnd(2).queued, neverAborted());
  expect(during).toMatchObject({ status: 'failed', httpStatus: 429, ends: 0 });
  const until = Date.parse(/until (\S+)$/.exec((during as { detail: string }).detail)![1]!);
  expect(until - refusedAt).toBeGreaterThanOrEqual(24 * 3_600_000);
  expect(until - Date.now()).toBeLessThanOrEqual(24 * 3_600_000);

  // A day on, the refusal is over: the next end goes out, and the webhook's 200 delivers it.
  const now = Date.now;
  Date.now = () => now() + 24 * 3_600_000 + 1_000;
  try {
    const next = queuedEnd(3);
    expect(await digest.deliver({ ...next.queued, deadlineAt: Date.now() + 60_000 }, neverAborted())).toEqual({
      status: 'delivered',
      httpStatus: 200,
      ends: 1,
    });
  } finally {
    Date.now = now;
  }
  expect(receiver.requests.map(keysIn)).toEqual([[queuedEnd(1).queued.key], [queuedEnd(3).queued.key]]);
});

test('a message without an answer leaves its ends unknown, not sent again; a refusal fails them', async () => {
  receiver = await startWebhookReceiver(['hold', 'hold', 400]);
  const digest = digestTo(receiver.url, { requestTimeoutMs: 300 });
  const [one, two, three] = [1, 2, 3].map((index) => queuedEnd(index));
  const first = digest.deliver(one!.queued, neverAborted());
  await eventually('the first request', () => (receiver!.requests.length === 1 ? true : undefined));
  const second = digest.deliver(two!.queued, neverAborted());

  expect(await first).toEqual({ status: 'unknown', ends: 1, detail: 'no answer (TimeoutError): not sent again' });
  expect(await second).toEqual({ status: 'unknown', ends: 1, detail: 'no answer (TimeoutError): not sent again' });
  expect(await digest.deliver(three!.queued, neverAborted())).toEqual({
    status: 'failed',
    httpStatus: 400,
    ends: 1,
    detail: 'webhook refused: HTTP 400',
  });
  expect(receiver.requests.map(keysIn)).toEqual([[one!.queued.key], [two!.queued.key], [three!.queued.key]]);
  expect([one, two, three].map((end) => end!.counts.sends)).toEqual([1, 1, 1]);
});

test('an end a request carried out is not sent again by a later attempt on the same worker, delivered or its answer lost', async () => {
  receiver = await startWebhookReceiver([200, 'hold', 200]);
  const digest = digestTo(receiver.url, { requestTimeoutMs: 300 });
  const [delivered, lost, other] = [1, 2, 3].map((index) => queuedEnd(index));
  const deliveredOnce = { status: 'delivered', httpStatus: 200, ends: 1 };
  const lostOnce = { status: 'unknown', ends: 1, detail: 'no answer (TimeoutError): not sent again' };
  expect(await digest.deliver(delivered!.queued, neverAborted())).toEqual(deliveredOnce);
  expect(await digest.deliver(lost!.queued, neverAborted())).toEqual(lostOnce);

  // The next attempts of both activities, as after a heartbeat timeout: the attempts' `sending` heartbeats never
  // reached the server (Temporal unreachable while the requests were out), so it retried them.
  const again = [delivered, lost].map((end) => digest.deliver(end!.queued, neverAborted()));
  expect(await Promise.all(again)).toEqual([deliveredOnce, lostOnce]);
  expect(await digest.deliver(other!.queued, neverAborted())).toEqual(deliveredOnce);
  // Before, each went out a second time.
  expect(receiver.requests.map(keysIn)).toEqual([[delivered!.queued.key], [lost!.queued.key], [other!.queued.key]]);
  expect([delivered, lost].map((end) => end!.counts.sends)).toEqual([1, 1]);
});

test("an end's next attempt that comes while the request of the one before is still out is not sent after it", async () => {
  receiver = await startWebhookReceiver(['hold']);
  const digest = digestTo(receiver.url);
  const { queued } = queuedEnd(1);
  const first = digest.deliver(queued, neverAborted());
  await eventually('the first request', () => (receiver!.requests.length === 1 ? true : undefined));
  // The next attempt, on this worker, while the first attempt's request waits for its answer.
  const again = digest.deliver(queued, neverAborted());
  receiver.release(200);

  const delivered = { status: 'delivered', httpStatus: 200, ends: 1 };
  expect(await Promise.all([first, again])).toEqual([delivered, delivered]);
  // Before, the second waited in the queue and went out once the first was answered.
  expect(receiver.requests).toHaveLength(1);
});

test('the "sending" callback runs before its request arrives; an end cancelled while out and not delivered stops there', async () => {
  receiver = await startWebhookReceiver(['hold']);
  const digest = digestTo(receiver.url);
  const received = () => receiver!.requests.length;
  const cancelled = queuedEnd(1, received);
  const cancel = new AbortController();
  const outcome = digest.deliver(cancelled.queued, cancel.signal);
  await eventually('the request', () => (receiver!.requests.length === 1 ? true : undefined));
  cancel.abort(new Error('activity cancelled'));
  receiver.release(503);

  await expect(outcome).rejects.toThrow('activity cancelled');
  const after = queuedEnd(2, received);
  expect(await digest.deliver(after.queued, neverAborted())).toMatchObject({ status: 'delivered', ends: 1 });
  expect(receiver.requests.map(keysIn)).toEqual([[cancelled.queued.key], [after.queued.key]]);
  // The 503 proves it was not delivered: given back, so that a later attempt sends it rather than report it unknown.
  expect(cancelled.counts).toMatchObject({ sends: 1, retries: [], receivedAtSends: [0], givenBack: 1 });
  expect(after.counts.receivedAtSends).toEqual([1]);
});

test('a webhook that refuses connections: the end is sent retryDelays + 1 times, then fails', async () => {
  const closed = await startWebhookReceiver();
  const url = closed.url;
  await closed.close();
  const { queued, counts } = queuedEnd(1);

  expect(await digestTo(url).deliver(queued, neverAborted())).toEqual({
    status: 'failed',
    httpStatus: null,
    ends: 1,
    detail: 'still failing: ECONNREFUSED',
  });
  expect(counts).toMatchObject({
    sends: 3,
    retries: [
      { failure: 'ECONNREFUSED', delayMs: 200 },
      { failure: 'ECONNREFUSED', delayMs: 200 },
    ],
  });
});

test('a webhook whose connect never completes sent nothing: each try ends at the connect timeout, the end goes again, then fails', async () => {
  // A black-holed address: the SYN is dropped, so the connect hangs until a timeout ends it.
  const hole = await startBlackHole();
  try {
    const { queued, counts } = queuedEnd(1);

    const delivery = await digestTo(hole.url, { connectTimeoutMs: 200, requestTimeoutMs: 5_000 }).deliver(
      queued,
      neverAborted(),
    );

    expect(delivery).toEqual({
      status: 'failed',
      httpStatus: null,
      ends: 1,
      detail: 'still failing: connect timed out',
    });
    expect(counts).toMatchObject({
      sends: 3,
      retries: [
        { failure: 'connect timed out', delayMs: MIN_INTERVAL_MS },
        { failure: 'connect timed out', delayMs: MIN_INTERVAL_MS },
      ],
    });
    // The whole request's timeout, run out before the connect's: not connected, so not sent either.
    const other = queuedEnd(2);
    expect(
      await digestTo(hole.url, { connectTimeoutMs: 5_000, requestTimeoutMs: 300 }).deliver(
        other.queued,
        neverAborted(),
      ),
    ).toEqual({ status: 'failed', httpStatus: null, ends: 1, detail: 'still failing: connect timed out' });
    expect(other.counts.sends).toBe(3);

    // Cancelled while its connect hangs (a stopping worker's grace ran out): given back, for a later attempt to send.
    const cancelled = queuedEnd(3);
    const cancel = new AbortController();
    const outcome = digestTo(hole.url, { connectTimeoutMs: 200 }).deliver(cancelled.queued, cancel.signal);
    await eventually('the connect', () => (cancelled.counts.sends === 1 ? true : undefined));
    cancel.abort(new Error('activity cancelled'));
    await expect(outcome).rejects.toThrow('activity cancelled');
    expect(cancelled.counts).toMatchObject({ sends: 1, retries: [], givenBack: 1 });
  } finally {
    await hole.close();
  }
});

test("an end whose activity's time would run out before an answer fails unsent", async () => {
  receiver = await startWebhookReceiver();
  const { queued, counts } = queuedEnd(1);

  expect(await digestTo(receiver.url).deliver({ ...queued, deadlineAt: Date.now() + 1_000 }, neverAborted())).toEqual({
    status: 'failed',
    httpStatus: null,
    ends: 0,
    detail: "not sent: its attempt's time ran out",
  });
  expect(receiver.requests).toHaveLength(0);
  expect(counts.sends).toBe(0);
});

test('a step back of the wall clock neither delays the next message nor runs its end out of time', async () => {
  receiver = await startWebhookReceiver();
  const digest = digestTo(receiver.url);
  expect(await digest.deliver(queuedEnd(1).queued, neverAborted())).toMatchObject({ status: 'delivered' });

  const now = Date.now.bind(Date);
  jest.spyOn(Date, 'now').mockImplementation(() => now() - 3_600_000);
  try {
    // Its deadline as the activity gives it: by the wall clock, which is now an hour behind.
    const { queued } = queuedEnd(2);
    const delivery = await digest.deliver({ ...queued, deadlineAt: Date.now() + 120_000 }, neverAborted());
    expect(delivery).toMatchObject({ status: 'delivered' });
  } finally {
    jest.restoreAllMocks();
  }
  expect(receiver.requests).toHaveLength(2);
});

test('an end that would have to wait out a Retry-After past its time fails at once, not at its timeout', async () => {
  receiver = await startWebhookReceiver([{ status: 429, retryAfter: '5' }]);
  const { queued, counts } = queuedEnd(1);

  // 8 s left: time for the first request (5 s timeout), not for the 5 s wait and a second.
  const delivery = await digestTo(receiver.url).deliver({ ...queued, deadlineAt: Date.now() + 8_000 }, neverAborted());

  expect(delivery).toEqual({
    status: 'failed',
    httpStatus: null,
    ends: 0,
    detail: "not sent again: its attempt's time ran out",
  });
  expect(receiver.requests).toHaveLength(1);
  expect(counts).toMatchObject({ sends: 1, retries: [{ failure: 'HTTP 429', delayMs: 5_000 }] });
});

test("with N workers posting to the webhook, one worker's requests are N intervals apart, as many as it counts now", async () => {
  receiver = await startWebhookReceiver([503, 503]);
  let senders = 3;
  const digest = digestTo(receiver.url, { retryDelaysMs: [50, 50, 50], senders: () => senders });
  const { queued, counts } = queuedEnd(1);
  const delivered = digest.deliver(queued, neverAborted());
  // The first 503's wait is the worker's share of the pace (3 intervals), not the 50 ms backoff; counted once more
  // workers leave, the next is 2.
  await eventually('the first 503', () => (counts.retries.length === 1 ? true : undefined));
  senders = 2;

  expect(await delivered).toEqual({ status: 'delivered', httpStatus: 200, ends: 1 });
  expect(counts.retries).toEqual([
    { failure: 'HTTP 503', delayMs: 3 * MIN_INTERVAL_MS },
    { failure: 'HTTP 503', delayMs: 2 * MIN_INTERVAL_MS },
  ]);
  const [first, second, third] = receiver.requests;
  expect(second!.receivedAt - first!.answeredAt!).toBeGreaterThanOrEqual(3 * MIN_INTERVAL_MS);
  expect(third!.receivedAt - second!.answeredAt!).toBeGreaterThanOrEqual(2 * MIN_INTERVAL_MS);

  // A new end waits out the last request's share too.
  const next = queuedEnd(2);
  expect(await digest.deliver(next.queued, neverAborted())).toMatchObject({ status: 'delivered' });
  expect(receiver.requests[3]!.receivedAt - third!.answeredAt!).toBeGreaterThanOrEqual(2 * MIN_INTERVAL_MS);
});

test("a reason from the API is escaped for Slack's mrkdwn: it cannot ping the channel or show a link of its own", () => {
  const { queued } = queuedEnd(1);
  const reason = 'unauthorized: key revoked <!channel> see <mailto:ops@evil.example|the runbook> & more';
  const { text } = webhookMessage([{ ...queued, end: { ...queued.end, outcome: 'failed', reason } }]);

  expect(text).toContain(
    'Reason: unauthorized: key revoked &lt;!channel&gt; see &lt;mailto:ops@evil.example|the runbook&gt; &amp; more',
  );
  expect(text).not.toMatch(/<!channel>|<mailto:/);
});

test("every block the sender posts is within Slack's 3,000 characters: a long reason is cut saying how much, a link too long left out", async () => {
  receiver = await startWebhookReceiver();
  // Spaced 1 s: the four ends queued after the first message all wait for the next.
  const digest = digestTo(receiver.url, { minPostIntervalMs: 1_000 });
  const ending = (index: number, reason: string, recoveryUrl: string | null) => {
    const { queued } = queuedEnd(index);
    return { ...queued, end: { ...queued.end, outcome: 'failed' as const, reason }, recoveryUrl };
  };
  const link = 'http://temporal-ui.example:8233/namespaces/default/workflows/recover-batch-batch-1';
  const blockTexts = (request: ReceivedRequest) =>
    (request.body.blocks as { text: { text: string } }[]).map((block) => block.text.text);
  const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

  // One end whose reason is 5,000 plain characters: the block is filled to the character, the link kept whole.
  const plain = 'x'.repeat(5_000);
  expect(await digest.deliver(ending(1, plain, link), neverAborted())).toMatchObject({ status: 'delivered' });
  const [single] = blockTexts(receiver.requests[0]!);
  expect(single).toHaveLength(SECTION_TEXT_MAX);
  expect(receiver.requests[0]!.body.text).toBe(single);
  const [, shown, left] = /\nReason: (x+)… \((\d+) more characters of the reason left out\)\n/.exec(single!)!;
  expect(shown!.length + Number(left)).toBe(5_000);
  expect(single!.endsWith(`\n<${link}|Open the recovery in the Temporal Web UI>`)).toBe(true);
  // The payload keeps the whole reason.
  expect((receiver.requests[0]!.body.metadata as { event_payload: { reason: string } }).event_payload.reason).toBe(
    plain,
  );

  // Several ends in one message: escapes and emoji cut between characters, a link too long to fit left out.
  const escapes = '<!channel> & '.repeat(400);
  const emoji = '😀'.repeat(2_000);
  const longLink = `http://temporal-ui.example:8233/namespaces/default/workflows/${'w'.repeat(3_000)}`;
  const ends = [
    ending(2, escapes, link),
    ending(3, emoji, null),
    ending(4, 'unauthorized', longLink),
    ending(5, 'short', link),
  ];
  const deliveries = await Promise.all(ends.map((queued) => digest.deliver(queued, neverAborted())));
  expect(deliveries.every((delivery) => delivery.status === 'delivered')).toBe(true);
  const digestBlocks = receiver.requests.slice(1).flatMap(blockTexts);
  expect(digestBlocks[0]).toBe('*4 recoveries ended* (one message for ends that came together)');
  const [, cutEscapes, cutEmoji, withoutLink, short] = digestBlocks;
  // Each cut as long as the block allows, short of it by less than the next piece: `&amp;` (5), an emoji (2).
  expect(cutEscapes!.length).toBeLessThanOrEqual(SECTION_TEXT_MAX);
  expect(cutEscapes!.length).toBeGreaterThan(SECTION_TEXT_MAX - '&amp;'.length);
  const [, escapedShown, escapedLeft] = /\nReason: (.*)… \((\d+) more characters of the reason left out\)\n/.exec(
    cutEscapes!,
  )!;
  expect(escapedShown).toMatch(/^(?:[^&<>]|&lt;|&gt;|&amp;)*$/);
  const unescaped = escapedShown!.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
  expect(escapes.startsWith(unescaped)).toBe(true);
  expect(unescaped.length + Number(escapedLeft)).toBe(escapes.length);
  expect(cutEmoji!.length).toBeLessThanOrEqual(SECTION_TEXT_MAX);
  expect(cutEmoji!.length).toBeGreaterThan(SECTION_TEXT_MAX - 2);
  expect(cutEmoji).not.toMatch(loneSurrogate);
  expect(cutEmoji).toMatch(/ \(\d+ more characters of the reason left out\)$/);
  expect(withoutLink).toBe(
    [
      ':x: Recovery of batch `batch-4` ended *failed*',
      '3 rounds · 2 sessions retried · 1 recovered · 1 still failing',
      'Reason: unauthorized',
      `(The link to the recovery in the Web UI is left out: its ${longLink.length} characters do not fit a Slack block)`,
    ].join('\n'),
  );
  expect(short).toContain(`Reason: short\n<${link}|`);
  // The lengths as posted: the header, the two cut, the one without its link, the short one.
  expect(digestBlocks.map((text) => text.length)).toEqual([62, 2_998, 2_999, withoutLink!.length, 248]);
  expect(withoutLink!.length).toBe(228);
});

test("a digest's blocks stay within Slack's whole-message size: ends whose text does not fit go in the next message", async () => {
  receiver = await startWebhookReceiver(['hold']);
  const digest = digestTo(receiver.url);
  const link = 'http://temporal-ui.example:8233/namespaces/default/workflows/recover-batch-batch-1';
  // The longest reason a recovery reports (300 characters), every one escaped for mrkdwn: 1,500 characters. Batch
  // ids of the same length (batch-10 to batch-30), so every end's block is as long.
  const ends = Array.from({ length: 21 }, (_, index) => {
    const { queued } = queuedEnd(10 + index);
    return {
      ...queued,
      end: { ...queued.end, outcome: 'failed' as const, reason: '&'.repeat(300) },
      recoveryUrl: link,
    };
  });
  const first = digest.deliver(ends[0]!, neverAborted());
  await eventually('the first request', () => (receiver!.requests.length === 1 ? true : undefined));
  // Twenty come while the first is out: the next message would hold them all, were it not for their size.
  const later = ends.slice(1).map((queued) => digest.deliver(queued, neverAborted()));
  receiver.release(200);
  const deliveries = await Promise.all([first, ...later]);

  const blockTexts = (request: ReceivedRequest) =>
    (request.body.blocks as { text: { text: string } }[]).map((block) => block.text.text);
  const endText = blockTexts(receiver.requests[0]!)[0]!;
  expect(endText).toHaveLength(1_744);
  // Each end once, in order: alone, then five to a message (a sixth would make 10,526 characters).
  expect(receiver.requests.map(keysIn)).toEqual([
    [ends[0]!.key],
    ...[1, 6, 11, 16].map((from) => ends.slice(from, from + 5).map(({ key }) => key)),
  ]);
  expect(deliveries.map((delivery) => delivery.status)).toEqual(ends.map(() => 'delivered'));
  for (const request of receiver.requests.slice(1)) {
    const texts = blockTexts(request);
    expect(texts.reduce((total, text) => total + text.length, 0)).toBe(62 + 5 * endText.length);
    expect(texts.reduce((total, text) => total + text.length, 0)).toBeLessThanOrEqual(MESSAGE_TEXT_MAX);
    // The notification's text: the header and each end's first line, without the reasons the blocks hold.
    expect(request.body.text).toBe(
      [
        '*5 recoveries ended* (one message for ends that came together)',
        ...keysIn(request).map((key) => `:x: Recovery of batch \`${/batch-\d+/.exec(key)![0]}\` ended *failed*`),
      ].join('\n'),
    );
  }
});

test('a 101 (Switching Protocols) leaves the end unknown at once, its connection closed; the next end still goes', async () => {
  const switching = await startHostileServer(answerSwitchingProtocols);
  try {
    const digest = digestTo(switching.url);
    const [one, two] = [1, 2].map((index) => queuedEnd(index));
    // Before, Node handed the connection over, got's timeout no longer applied, and the sender waited for good.
    expect(await digest.deliver(one!.queued, neverAborted())).toMatchObject({ status: 'unknown', ends: 1 });
    expect(await digest.deliver(two!.queued, neverAborted())).toMatchObject({ status: 'unknown', ends: 1 });
    await eventually('the connections closed', () => (switching.calls.every((call) => call.closed) ? true : undefined));
    expect(switching.calls).toHaveLength(2);
  } finally {
    await switching.close();
  }
});

test('a redirect is not followed: the ends fail as refused, and nothing reaches where it points', async () => {
  // Where a hostile or misconfigured webhook could point the worker: a service on its network, say.
  const elsewhere = await startWebhookReceiver();
  try {
    receiver = await startWebhookReceiver([307, 308, 302, 303].map((status) => ({ status, location: elsewhere.url })));
    const digest = digestTo(receiver.url);
    const ends = [1, 2, 3, 4].map((index) => queuedEnd(index));
    const deliveries = [];
    for (const { queued } of ends) deliveries.push(await digest.deliver(queued, neverAborted()));

    expect(deliveries).toEqual(
      [307, 308, 302, 303].map((httpStatus) => ({
        status: 'failed',
        httpStatus,
        ends: 1,
        detail: `webhook redirected (HTTP ${httpStatus}): not followed`,
      })),
    );
    expect(elsewhere.requests).toHaveLength(0);
    expect(receiver.requests.map(keysIn)).toEqual(ends.map(({ queued }) => [queued.key]));
    expect(ends.map(({ counts }) => counts.sends)).toEqual([1, 1, 1, 1]);
  } finally {
    await elsewhere.close();
  }
});

test("an answer's status settles it without its body: one announced huge and never finished is not waited for", async () => {
  // 1 GiB announced, 1 KiB sent, and the rest never comes.
  const server = createServer((request, response) => {
    request.resume();
    request.on('end', () => response.writeHead(200, { 'content-length': String(2 ** 30) }).write('x'.repeat(1_024)));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const { port } = server.address() as AddressInfo;
    let delivery: EndDelivery | undefined;
    // A request timeout past the wait below (30 s): only dropping the body as the answer came settles it in time.
    const delivering = digestTo(`http://127.0.0.1:${port}/services/T0000/B0000/huge`, { requestTimeoutMs: 40_000 })
      .deliver(queuedEnd(1).queued, neverAborted())
      .then((settled) => (delivery = settled));

    await eventually('the delivery', () => delivery);
    await delivering;
    expect(delivery).toEqual({ status: 'delivered', httpStatus: 200, ends: 1 });
  } finally {
    server.closeAllConnections();
    server.close();
  }
});

test("an answer settles as its headers come: a body that trickles is not waited for, a 503's Retry-After still counts", async () => {
  // Headers at once, then a byte every 50 ms that never ends: first a 503 asking for a 1 s wait, then a 200.
  let answered = 0;
  const server = await startHostileServer((request, response) => {
    request.resume();
    answered += 1;
    const status = answered === 1 ? 503 : 200;
    response.writeHead(status, { 'content-type': 'text/plain', ...(status === 503 && { 'retry-after': '1' }) });
    response.write('o');
    const timer = setInterval(() => response.write('k'), 50);
    response.on('close', () => clearInterval(timer));
  });
  try {
    const { queued, counts } = queuedEnd(1);
    let delivery: EndDelivery | undefined;
    // A request timeout past the wait below (30 s), within the end's 60 s: only answers settled at their headers deliver
    // in time.
    const delivering = digestTo(`${server.url}/services/T0000/B0000/trickle`, { requestTimeoutMs: 40_000 })
      .deliver(queued, neverAborted())
      .then((settled) => (delivery = settled));

    await eventually('the delivery', () => delivery);
    await delivering;
    expect(delivery).toEqual({ status: 'delivered', httpStatus: 200, ends: 1 });
    expect(counts).toMatchObject({ sends: 2, retries: [{ failure: 'HTTP 503', delayMs: 1_000 }], givenBack: 0 });
    // The sender hung up on each body mid-way: it never ended, so only the headers settled them.
    await eventually('both connections closed', () => server.calls.every(({ closed }) => closed) || undefined);
    expect(server.calls.map(({ cutByClient }) => cutByClient)).toEqual([true, true]);
  } finally {
    await server.close();
  }
});

test('a try that timed out before its connection was established names the step that had not completed', async () => {
  // A DNS stub for one name: its lookup never answers, as a resolver that does not reply.
  const lookup = dns.lookup;
  const hung: string[] = [];
  dns.lookup = function (this: unknown, hostname: string, ...rest: unknown[]) {
    if (hostname === 'webhook.test') return void hung.push(hostname);
    return Reflect.apply(lookup, this, [hostname, ...rest]) as void;
  } as typeof dns.lookup;
  // A TCP listener that accepts and never speaks: an https request to it connects and waits for the handshake.
  const silent: Socket[] = [];
  const tcp = createTcpServer((socket) => silent.push(socket));
  tcp.listen(0, '127.0.0.1');
  await once(tcp, 'listening');
  const hole = await startBlackHole();
  try {
    const { port } = tcp.address() as AddressInfo;
    // The whole request's timeout (300 ms) runs out within a step whose own timeout (5 s) has not.
    const timedOut = async (url: string, timeouts: { connectTimeoutMs: number; requestTimeoutMs: number }) => {
      const { queued, counts } = queuedEnd(1);
      const delivery = await digestTo(url, { retryDelaysMs: [], ...timeouts }).deliver(queued, neverAborted());
      expect(counts.sends).toBe(1);
      return delivery;
    };
    const cutShort = { connectTimeoutMs: 5_000, requestTimeoutMs: 300 };
    const failed = (step: string) => ({
      status: 'failed',
      httpStatus: null,
      ends: 1,
      detail: `still failing: ${step}`,
    });

    expect(await timedOut('http://webhook.test:9/services/T0000/B0000/dns', cutShort)).toEqual(
      failed('DNS lookup timed out'),
    );
    expect(await timedOut(hole.url, cutShort)).toEqual(failed('connect timed out'));
    expect(await timedOut(`https://127.0.0.1:${port}/services/T0000/B0000/tls`, cutShort)).toEqual(
      failed('TLS handshake timed out'),
    );
    // The step's own timeout names it the same.
    expect(
      await timedOut('http://webhook.test:9/services/T0000/B0000/dns', {
        connectTimeoutMs: 200,
        requestTimeoutMs: 5_000,
      }),
    ).toEqual(failed('DNS lookup timed out'));
    expect(hung).toEqual(['webhook.test', 'webhook.test']);
    expect(silent).toHaveLength(1);
  } finally {
    dns.lookup = lookup;
    for (const socket of silent) socket.destroy();
    tcp.close();
    await hole.close();
  }
});

test('a TLS handshake that fails sent nothing: the end goes again as after a refused connection, then fails', async () => {
  // An https webhook URL whose port speaks plain HTTP: no request can leave before the handshake, which fails.
  receiver = await startWebhookReceiver();
  const { queued, counts } = queuedEnd(1);

  expect(await digestTo(receiver.url.replace(/^http:/, 'https:')).deliver(queued, neverAborted())).toEqual({
    status: 'failed',
    httpStatus: null,
    ends: 1,
    detail: 'still failing: TLS handshake failed (EPROTO)',
  });
  expect(counts).toMatchObject({
    sends: 3,
    retries: [
      { failure: 'TLS handshake failed (EPROTO)', delayMs: MIN_INTERVAL_MS },
      { failure: 'TLS handshake failed (EPROTO)', delayMs: MIN_INTERVAL_MS },
    ],
  });
  expect(receiver.requests).toHaveLength(0);
});
