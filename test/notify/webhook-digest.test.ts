import { WebhookDigest, webhookMessage, type EndDelivery, type QueuedEnd } from '../../activities/webhook-digest.js';
import type { RecoveryEnd } from '../../workflows/recovery-details.js';
import { eventually } from '../helpers/recovery-env.js';
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
  const counts = { sends: 0, retries: [] as { failure: string; delayMs: number }[], receivedAtSends: [] as number[] };
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
  expect(cancelled.counts).toMatchObject({ sends: 1, retries: [], receivedAtSends: [0] });
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

test('a TLS handshake that fails sent nothing: the end goes again as after a refused connection, then fails', async () => {
  // An https webhook URL whose port speaks plain HTTP: no request can leave before the handshake, which fails.
  receiver = await startWebhookReceiver();
  const { queued, counts } = queuedEnd(1);

  expect(await digestTo(receiver.url.replace(/^http:/, 'https:')).deliver(queued, neverAborted())).toEqual({
    status: 'failed',
    httpStatus: null,
    ends: 1,
    detail: 'still failing: ERR_SSL_WRONG_VERSION_NUMBER',
  });
  expect(counts).toMatchObject({
    sends: 3,
    retries: [
      { failure: 'ERR_SSL_WRONG_VERSION_NUMBER', delayMs: MIN_INTERVAL_MS },
      { failure: 'ERR_SSL_WRONG_VERSION_NUMBER', delayMs: MIN_INTERVAL_MS },
    ],
  });
  expect(receiver.requests).toHaveLength(0);
});
