import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startRecoveryEnv, type RecoveryEnv } from './recovery-env.js';

/** How the server answers one request; `done` resolves once the exchange ended, by the server or by the client. */
export type HostileAnswer = (request: IncomingMessage, response: ServerResponse) => void;

export interface HostileCall {
  method: string;
  path: string;
  /** The client closed the connection before the server finished its answer. */
  cutByClient: boolean;
  /** Bytes the server got written to the socket before the exchange ended. */
  bytesWritten: number;
  /** The exchange has ended, one way or the other. */
  closed: boolean;
}

export interface HostileServer {
  url: string;
  calls: HostileCall[];
  /** Answers every call on batch `batchId` (status, retry, cancel) with `answer`. */
  on(batchId: string, answer: HostileAnswer): void;
  close(): Promise<void>;
}

/**
 * A small HTTP server answering the way a broken or hostile API might. Paths with no answer registered
 * go to `fallback` (e.g. a proxy to the simulator), or get a 404.
 */
export async function startHostileServer(fallback?: HostileAnswer): Promise<HostileServer> {
  const answers = new Map<string, HostileAnswer>();
  const calls: HostileCall[] = [];
  const server: Server = createServer((request, response) => {
    const path = request.url ?? '';
    const batchId = /^\/v1\/batch-sessions\/([^/?]+)/.exec(path)?.[1];
    const answer = (batchId === undefined ? undefined : answers.get(batchId)) ?? fallback ?? notFound;
    const call: HostileCall = {
      method: request.method ?? '',
      path,
      cutByClient: false,
      bytesWritten: 0,
      closed: false,
    };
    calls.push(call);
    response.on('close', () => {
      call.cutByClient = !response.writableFinished;
      call.bytesWritten = response.socket?.bytesWritten ?? call.bytesWritten;
      call.closed = true;
    });
    answer(request, response);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    on: (batchId, answer) => {
      answers.set(batchId, answer);
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}

/**
 * A recovery env whose worker's Anchor API is a hostile server in front of the env's simulator: calls on a batch the
 * test registers no answer for go on to the simulator. The worker's recoveries read their batches themselves.
 */
export async function startRecoveryEnvBehindHostileServer(): Promise<{
  env: RecoveryEnv;
  hostile: HostileServer;
  close: () => Promise<void>;
}> {
  const env = await startRecoveryEnv();
  const hostile = await startHostileServer(proxyTo(env.simulator.url));
  await env.startWorker(undefined, {}, { baseUrl: hostile.url });
  return {
    env,
    hostile,
    close: async () => {
      await env.close();
      await hostile.close();
    },
  };
}

const notFound: HostileAnswer = (_request, response) => {
  response.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"code":404,"message":"no route"}}');
};

/**
 * 101 Switching Protocols, written on the socket as a server that takes the connection over would, and left open: the
 * exchange ends when the client closes it.
 */
export const answerSwitchingProtocols: HostileAnswer = (_request, response) => {
  response.socket?.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
};

/** A fixed answer. */
export function answerWith(statusCode: number, contentType: string, body: string | Buffer): HostileAnswer {
  return (_request, response) => {
    response.writeHead(statusCode, { 'content-type': contentType }).end(body);
  };
}

/** `totalBytes` of JSON-looking text in 64 KiB chunks, written as fast as the client reads (no Content-Length). */
export function answerHuge(statusCode: number, totalBytes: number): HostileAnswer {
  const chunk = Buffer.alloc(64 * 1024, 'a');
  return (_request, response) => {
    response.writeHead(statusCode, { 'content-type': 'application/json' });
    response.write('{"data":{"error":"');
    let left = totalBytes;
    const pump = () => {
      while (left > 0 && !response.destroyed) {
        left -= chunk.length;
        if (!response.write(chunk)) return void response.once('drain', pump);
      }
      if (!response.destroyed) response.end('"}}');
    };
    pump();
  };
}

/** Headers, then one byte every `everyMs`, forever: the body trickles and never ends. */
export function answerTrickle(everyMs: number): HostileAnswer {
  return (_request, response) => {
    response.writeHead(200, { 'content-type': 'application/json' });
    response.write('{"data":{"error":"');
    const timer = setInterval(() => response.write('a'), everyMs);
    response.on('close', () => clearInterval(timer));
  };
}

/** Headers and the start of a body, then silence with the connection open. */
export const answerNeverEnding: HostileAnswer = (_request, response) => {
  response.writeHead(200, { 'content-type': 'application/json' });
  response.write('{"data":{"batch_id":');
};

/** A JSON error body whose message is `messageBytes` long (and quotes a session URL and a token first). */
export function answerHugeError(statusCode: number, messageBytes: number): HostileAnswer {
  const secret = 'see wss://connect.anchorbrowser.io?sessionId=s1&token=0123456789abcdef0123456789abcdef01234567 ';
  const message = secret + 'x'.repeat(messageBytes);
  return answerWith(statusCode, 'application/json', JSON.stringify({ error: { code: statusCode, message } }));
}

const HOP_BY_HOP = new Set(['host', 'connection', 'keep-alive', 'content-length', 'transfer-encoding']);

/** Forwards the request to `baseUrl` (e.g. the simulator) and relays its answer. */
export function proxyTo(baseUrl: string): HostileAnswer {
  return (request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const headers = Object.fromEntries(
        Object.entries(request.headers).filter(
          (entry): entry is [string, string] => typeof entry[1] === 'string' && !HOP_BY_HOP.has(entry[0]),
        ),
      );
      const body = chunks.length === 0 ? undefined : Buffer.concat(chunks);
      fetch(new URL(request.url ?? '/', baseUrl), { method: request.method ?? 'GET', headers, body }).then(
        async (answer) => {
          const text = await answer.text();
          response
            .writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'application/json' })
            .end(text);
        },
        () => response.destroy(),
      );
    });
  };
}
