import Fastify, { type FastifyError } from 'fastify';
import { registerAdminRoutes, ADMIN_PREFIX } from './admin-routes.js';
import { SimulatorClock, type ClockMode } from './clock.js';
import { registerContractRoutes } from './contract-routes.js';
import { FaultInjector, type FaultPlanInput } from './faults.js';
import { Ledger } from './ledger.js';
import { SeededRandom } from './random.js';
import type { ScriptedBatchSpec } from './scripts.js';
import { BatchStore } from './store.js';
import type { SimulatedBatch } from './batch.js';

export interface SimulatorOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  host?: string;
  /** Keys accepted in the `anchor-api-key` header. */
  apiKeys?: string[];
  /** When set, admin paths require it in `x-simulator-admin-token`. */
  adminToken?: string;
  /** Chance each unscripted attempt fails. */
  failureProbability?: number;
  seed?: number;
  attemptDurationMs?: number;
  queueDelayMs?: number;
  /** 'real': time flows (and can be advanced); 'manual': time moves only on `clock.advance`. */
  clockMode?: ClockMode;
  clockStart?: Date;
  faults?: FaultPlanInput;
  /** Request logging via pino. */
  logger?: boolean;
}

export interface RunningSimulator {
  /** Base URL, e.g. `http://127.0.0.1:43121`; admin paths live under `${url}/_simulator`. */
  url: string;
  port: number;
  clock: SimulatorClock;
  store: BatchStore;
  faults: FaultInjector;
  ledger: Ledger;
  createScriptedBatch(spec: ScriptedBatchSpec): SimulatedBatch;
  /** Forgets batches, faults and ledger; the clock keeps its time. */
  reset(): void;
  close(): Promise<void>;
}

export const DEFAULT_SIMULATOR_OPTIONS = {
  host: '127.0.0.1',
  apiKeys: ['sim-api-key'],
  failureProbability: 0.1,
  seed: 1,
  attemptDurationMs: 3000,
  queueDelayMs: 500,
  clockMode: 'real',
} as const satisfies SimulatorOptions;

export async function startSimulator(options: SimulatorOptions = {}): Promise<RunningSimulator> {
  const seed = options.seed ?? DEFAULT_SIMULATOR_OPTIONS.seed;
  const clock = new SimulatorClock(options.clockMode ?? DEFAULT_SIMULATOR_OPTIONS.clockMode, options.clockStart);
  // Separate streams so injecting faults does not change which sessions fail.
  const faults = new FaultInjector(new SeededRandom(seed + 1), options.faults);
  const store = new BatchStore({
    clock,
    random: new SeededRandom(seed),
    failureProbability: options.failureProbability ?? DEFAULT_SIMULATOR_OPTIONS.failureProbability,
    timing: {
      attemptDurationMs: options.attemptDurationMs ?? DEFAULT_SIMULATOR_OPTIONS.attemptDurationMs,
      queueDelayMs: options.queueDelayMs ?? DEFAULT_SIMULATOR_OPTIONS.queueDelayMs,
    },
  });
  const ledger = new Ledger();
  const reset = () => {
    store.clear();
    faults.clear();
    ledger.clear();
  };

  // forceCloseConnections: close() must also end keep-alive and deliberately hung connections.
  const app = Fastify({ logger: options.logger ?? false, forceCloseConnections: true });
  app.setErrorHandler((error: FastifyError, _request, reply) => {
    const statusCode = error.statusCode !== undefined && error.statusCode >= 400 ? error.statusCode : 500;
    const message = statusCode < 500 ? error.message : 'Internal server error';
    return reply.code(statusCode).send({ error: { code: statusCode, message } });
  });
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ error: { code: 404, message: `No route for ${request.method} ${request.url}` } }),
  );
  await app.register((scope, _options, done) => {
    registerContractRoutes(scope, {
      store,
      clock,
      faults,
      ledger,
      apiKeys: new Set(options.apiKeys ?? DEFAULT_SIMULATOR_OPTIONS.apiKeys),
    });
    done();
  });
  await app.register(
    (scope, _options, done) => {
      registerAdminRoutes(scope, { store, clock, faults, ledger, adminToken: options.adminToken, reset });
      done();
    },
    { prefix: ADMIN_PREFIX },
  );

  const host = options.host ?? DEFAULT_SIMULATOR_OPTIONS.host;
  await app.listen({ port: options.port ?? 0, host });
  const address = app.server.address();
  if (address === null || typeof address === 'string')
    throw new Error(`simulator did not bind a TCP port (got ${String(address)})`);
  const urlHost = host.includes(':') ? `[${host}]` : host;

  return {
    url: `http://${urlHost}:${address.port}`,
    port: address.port,
    clock,
    store,
    faults,
    ledger,
    createScriptedBatch: (spec) => store.createScripted(spec),
    reset,
    close: () => app.close(),
  };
}
