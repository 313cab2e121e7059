import { once } from 'node:events';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { followRecovery, lineView } from '../../client/progress.js';
import { EXIT_CODES, exitCodeForError } from '../../client/exit-codes.js';
import {
  BatchRecoveries,
  connectTemporal,
  TemporalUnreachableError,
  type ConnectOptions,
} from '../../client/recoveries.js';
import { FAST_POLICY, startRecoveryEnv, type RecoveryEnv } from '../helpers/recovery-env.js';
import { temporalAddress, temporalNamespace } from '../helpers/temporal.js';
import { runCli } from './child-process.js';

// The client between the CLI and Temporal, through a proxy of the test's own that can go silent (it keeps the
// connections open and drops what they carry, as a partition or a load balancer with a dead backend does) or close.

let env: RecoveryEnv;

beforeAll(async () => {
  // Sessions that take an hour: the recoveries run until the test ends them.
  env = await startRecoveryEnv({ attemptDurationMs: 3_600_000 });
  await env.startWorker();
});
afterAll(() => env.close());

interface TemporalProxy {
  address: string;
  /** From now on, what either side sends is dropped; the connections stay open. */
  silence(): void;
  /** Closes every connection and stops listening; again, it does nothing. */
  close(): Promise<void>;
}

/** The HTTP/2 client preface, then frames of a 9-byte header: length (24 bits), type, flags, stream id (31 bits). */
const HTTP2_PREFACE_BYTES = 24;
const HTTP2_FRAME_HEADER_BYTES = 9;
const HTTP2_HEADERS_FRAME = 0x1;

/**
 * Watches what a gRPC client sends for the start of its call on HTTP/2 stream `streamId` or later (a HEADERS frame):
 * calls take the odd stream ids 1, 3, 5, … in order, the connect's check being 1. Returns whether `chunk` holds it.
 */
function callStartWatcher(streamId: number): (chunk: Buffer) => boolean {
  let pending = Buffer.alloc(0);
  let prefaceLeft = HTTP2_PREFACE_BYTES;
  return (chunk) => {
    pending = Buffer.concat([pending, chunk]);
    const skipped = Math.min(prefaceLeft, pending.length);
    pending = pending.subarray(skipped);
    prefaceLeft -= skipped;
    while (pending.length >= HTTP2_FRAME_HEADER_BYTES) {
      const frameBytes = HTTP2_FRAME_HEADER_BYTES + pending.readUIntBE(0, 3);
      if (pending[3] === HTTP2_HEADERS_FRAME && (pending.readUInt32BE(5) & 0x7fffffff) >= streamId) return true;
      if (pending.length < frameBytes) break;
      pending = pending.subarray(frameBytes);
    }
    return false;
  };
}

/** `silentFromCall`: the proxy goes silent by itself as the client starts its call on that HTTP/2 stream. */
async function startTemporalProxy({ silentFromCall }: { silentFromCall?: number } = {}): Promise<TemporalProxy> {
  const [host, port] = temporalAddress().split(':');
  let silent = false;
  const sockets = new Set<Socket>();
  const forward = (from: Socket, to: Socket, startsWatchedCall?: (chunk: Buffer) => boolean) => {
    from.on('data', (chunk: Buffer) => {
      if (startsWatchedCall?.(chunk)) silent = true;
      if (!silent) to.write(chunk);
    });
    from.on('close', () => to.destroy());
    from.on('error', () => to.destroy());
  };
  const server = createServer((client) => {
    const upstream = connect(Number(port), host);
    for (const socket of [client, upstream]) sockets.add(socket);
    forward(client, upstream, silentFromCall === undefined ? undefined : callStartWatcher(silentFromCall));
    forward(upstream, client);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    silence: () => {
      silent = true;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      if (!server.listening) return;
      server.close();
      await once(server, 'close');
    },
  };
}

/**
 * A running recovery, and the library connected to Temporal through a proxy: `run` gets both; the proxy, the
 * connection and the recovery are ended after it, whatever it did to them.
 */
async function throughProxy(
  run: (batchId: string, proxy: TemporalProxy, recoveries: BatchRecoveries) => Promise<void>,
  { callTimeoutMs }: Pick<ConnectOptions, 'callTimeoutMs'> = {},
): Promise<void> {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY });
  const proxy = await startTemporalProxy();
  const client = await connectTemporal({ address: proxy.address, namespace: temporalNamespace(), callTimeoutMs });
  try {
    await run(batch.id, proxy, new BatchRecoveries(client, env.taskQueue));
  } finally {
    await client.connection.close();
    await proxy.close();
    await env.recoveries.handle(batch.id).terminate('test finished');
  }
}

test(
  'a watch whose server goes silent says since when, then gives up naming the server and the batch',
  () =>
    throughProxy(async (batchId, proxy, recoveries) => {
      const lines: string[] = [];
      const output = new PassThrough({ encoding: 'utf8' }).on('data', (line: string) => lines.push(line.trimEnd()));
      const followed = followRecovery(recoveries, batchId, {
        view: lineView(output),
        intervalMs: 100,
        lostContactAfterMs: 20_000,
      }).catch((err: unknown) => err);
      while (lines.length === 0) await new Promise((resolve) => setTimeout(resolve, 50));
      proxy.silence();

      // Before, the watch waited for ever, its last line unchanged.
      const err = await followed;
      expect(err).toBeInstanceOf(TemporalUnreachableError);
      expect((err as Error).message).toMatch(
        new RegExp(
          `^Cannot reach Temporal at ${proxy.address} while following the recovery of batch ${batchId} \\(no answer since`,
        ),
      );
      expect(lines.at(-1)).toMatch(/\| no answer from Temporal since \d{4}-\d\d-\d\dT/);
    }),
  60_000,
);

test(
  'waiting for the end through a silent server gives up, naming the server and the batch',
  () =>
    throughProxy(async (batchId, proxy, recoveries) => {
      await recoveries.report(batchId);
      proxy.silence();

      // Before, result() waited on its long poll for ever.
      await expect(recoveries.result(batchId, { lostContactAfterMs: 10_000 })).rejects.toThrow(
        new RegExp(`^Cannot reach Temporal at ${proxy.address} while following the recovery of batch ${batchId}`),
      );
    }),
  60_000,
);

test(
  'a server gone after the connection is named with the batch being read',
  () =>
    throughProxy(async (batchId, proxy, recoveries) => {
      await proxy.close();

      // Before: "Failed to describe workflow", naming neither.
      await expect(recoveries.report(batchId)).rejects.toThrow(
        new RegExp(`^Cannot reach Temporal at ${proxy.address} while reading the recovery of batch ${batchId}: `),
      );
    }),
  60_000,
);

test(
  'one-shot calls through a silent server stop at the call deadline, saying so, as unreachable (exit 7)',
  () =>
    throughProxy(
      async (batchId, proxy, recoveries) => {
        await recoveries.report(batchId);
        proxy.silence();

        // Before, each waited for ever (a review's `report` hung 91 s, until the connection's keepalive gave up).
        const unanswered = new RegExp(
          `^Cannot reach Temporal at ${proxy.address} while reading the recovery of batch ${batchId}: ` +
            'Failed to describe workflow: no answer within 3s \\(Deadline exceeded',
        );
        await expect(recoveries.report(batchId)).rejects.toThrow(unanswered);
        for (const steer of [() => recoveries.pause(batchId), () => recoveries.cancel(batchId)]) {
          const err = await steer().catch((error: unknown) => error);
          expect((err as Error).message).toMatch(unanswered);
          expect(exitCodeForError(err)).toBe(EXIT_CODES.unreachable);
        }
      },
      { callTimeoutMs: 3_000 },
    ),
  60_000,
);

test('a call with a deadline of its own keeps it past the default one', () =>
  throughProxy(
    async (batchId, _proxy, recoveries) => {
      // waitForEnd's long poll has its own 4 s: the default of 1 s would have cut it as unanswered.
      await expect(recoveries.waitForEnd(batchId, 4_000)).resolves.toEqual({ ended: false, reason: 'not within 4s' });
    },
    { callTimeoutMs: 1_000 },
  ));

test('a CLI call that goes unanswered past --call-timeout names the server, the call and the limit (exit 7)', async () => {
  const batch = env.simulator.createScriptedBatch({ count: 3, script: { '1': ['fail', 'ok'] } });
  await env.recoveries.start({ batchId: batch.id, ...FAST_POLICY });
  const handle = env.recoveries.handle(batch.id);
  // `cancel` reads the recovery (stream 3), then asks for the cancel (5); `report` without a batch id lists (3).
  const runs = [
    { call: 5, args: ['cancel', batch.id], failed: 'Failed to cancel workflow' },
    { call: 3, args: ['report', '--since', '1h'], failed: 'Failed to list workflows' },
  ];
  try {
    for (const { call, args, failed } of runs) {
      const proxy = await startTemporalProxy({ silentFromCall: call });
      try {
        const cli = await runCli([
          '--address',
          proxy.address,
          '--task-queue',
          env.taskQueue,
          '--call-timeout',
          '2s',
          ...args,
        ]);
        // Before, `error: ${failed}`, naming neither the server nor why, once a call's deadline had come at all.
        expect(cli.stderr).toMatch(
          new RegExp(
            `^error: Cannot reach Temporal at ${proxy.address}: ${failed}: no answer within 2s \\(Deadline`,
            'm',
          ),
        );
        expect(cli.code).toBe(EXIT_CODES.unreachable);
      } finally {
        await proxy.close();
      }
    }
    // The cancel went unanswered because it never reached the server.
    const { events } = await handle.fetchHistory();
    expect(events?.filter((event) => event.workflowExecutionCancelRequestedEventAttributes)).toHaveLength(0);
  } finally {
    await handle.terminate('test finished');
  }
});
