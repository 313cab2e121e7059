import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { Worker } from 'node:worker_threads';

export interface BlackHole {
  /** A webhook URL whose TCP connect never completes: its SYNs are dropped, as by a firewall that drops. */
  url: string;
  close(): Promise<void>;
}

/** How long a connect to loopback may take before it counts as hanging: they complete in well under 1 ms. */
const HANGING_AFTER_MS = 250;

/**
 * A local address that black-holes connects, without root: a listener whose thread never accepts, with its accept
 * queue full. Linux then drops every further SYN (the client retransmits it, unanswered). The listener's backlog is 1,
 * so the queue takes 2 connections on Linux; the fill connects until they hang, so another kernel's count works too.
 */
export async function startBlackHole(): Promise<BlackHole> {
  const wake = new Int32Array(new SharedArrayBuffer(4));
  const listener = new Worker(
    `
    const { createServer } = require('node:net');
    const { parentPort, workerData } = require('node:worker_threads');
    const server = createServer();
    server.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
      parentPort.postMessage(server.address().port);
      // Blocks this thread, so its event loop never accepts, until close() wakes it.
      Atomics.wait(workerData, 0, 0);
      server.close();
      process.exit(0);
    });
    `,
    { eval: true, workerData: wake },
  );
  const [port] = (await once(listener, 'message')) as [number];
  const fill: Socket[] = [];
  const close = async () => {
    for (const socket of fill) socket.destroy();
    Atomics.store(wake, 0, 1);
    Atomics.notify(wake, 0);
    await once(listener, 'exit');
  };
  // Full once two connects in a row hang: one connect slow on a busy machine does not end the fill early.
  for (let hanging = 0; hanging < 2;) {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    const connected = await Promise.race([
      once(socket, 'connect').then(() => true),
      new Promise<false>((resolve) => setTimeout(resolve, HANGING_AFTER_MS, false)),
    ]);
    if (!connected) {
      socket.destroy();
      hanging += 1;
      continue;
    }
    hanging = 0;
    fill.push(socket);
    if (fill.length > 64) {
      await close();
      throw new Error('every connect to the full listener completed: this kernel does not drop them');
    }
  }
  return { url: `http://127.0.0.1:${port}/services/T0000/B0000/black-hole`, close };
}
