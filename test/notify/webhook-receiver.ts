import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: Record<string, unknown>;
  receivedAt: number;
  /** When the answer went out; null while held. */
  answeredAt: number | null;
}

/**
 * How the receiver answers one request: an HTTP status (with a Retry-After or a Location), or `hold` (no answer until
 * released).
 */
export type Answer = number | { status: number; retryAfter?: string; location?: string } | 'hold';

export interface WebhookReceiver {
  /** The webhook URL, with a secret path as Slack's have. */
  url: string;
  secret: string;
  requests: ReceivedRequest[];
  /** Answers every held request with `status`. */
  release(status?: number): void;
  close(): Promise<void>;
}

/** A webhook receiver of the test's own over real HTTP; answers follow `answers`, then 200. */
export async function startWebhookReceiver(answers: Answer[] = []): Promise<WebhookReceiver> {
  const secret = `secret-token-${Math.random().toString(36).slice(2, 12)}`;
  const requests: ReceivedRequest[] = [];
  const held: { response: ServerResponse; request: ReceivedRequest }[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const received: ReceivedRequest = {
        method: request.method ?? '',
        path: request.url ?? '',
        headers: request.headers,
        // Empty for a GET: a client that follows a 302 or 303 sends one.
        body: body === '' ? {} : (JSON.parse(body) as Record<string, unknown>),
        receivedAt: Date.now(),
        answeredAt: null,
      };
      requests.push(received);
      const answer = answers[requests.length - 1] ?? 200;
      if (answer === 'hold') return held.push({ response, request: received });
      const { status, retryAfter, location } = typeof answer === 'number' ? { status: answer } : answer;
      received.answeredAt = Date.now();
      response
        .writeHead(status, {
          'content-type': 'text/plain',
          ...(retryAfter && { 'retry-after': retryAfter }),
          ...(location && { location }),
        })
        .end(status === 200 ? 'ok' : 'failed');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const release = (status = 200) => {
    for (const { response, request } of held.splice(0)) {
      request.answeredAt = Date.now();
      response.writeHead(status).end();
    }
  };
  return {
    url: `http://127.0.0.1:${port}/services/T0000/B0000/${secret}`,
    secret,
    requests,
    release,
    async close() {
      release();
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}
