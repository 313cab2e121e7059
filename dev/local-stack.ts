import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { BatchRecoveries } from '../client/recoveries.js';
import { startSimulator, type RunningSimulator, type SimulatorOptions } from '../simulator/index.js';
import { createRecoveryWorkers } from '../worker/create-worker.js';
import type { RecoveryWorkers } from '../worker/recovery-workers.js';
import { startDevServer, type DevServer } from './dev-server.js';

export interface LocalStack {
  server: DevServer;
  simulator: RunningSimulator;
  client: Client;
  recoveries: BatchRecoveries;
  workers: RecoveryWorkers;
  taskQueue: string;
  /** The simulator's key, which the worker calls it with. */
  apiKey: string;
  stop(): Promise<void>;
}

const API_KEY = 'local-stack-key';

/** A dev server, a simulator and an in-process worker: what scripts and benchmarks run against. */
export async function startLocalStack(
  simulatorOptions: SimulatorOptions = {},
  taskQueue = 'local-stack',
): Promise<LocalStack> {
  const server = await startDevServer({ ui: false });
  const simulator = await startSimulator({ apiKeys: [API_KEY], ...simulatorOptions });
  const workerConnection = await NativeConnection.connect({ address: server.address });
  const client = new Client({ connection: await Connection.connect({ address: server.address }) });
  const workers = await createRecoveryWorkers({
    connection: workerConnection,
    config: {
      temporal: { address: server.address, namespace: server.namespace, taskQueue },
      anchor: { baseUrl: simulator.url, apiKey: API_KEY, timeoutMs: 5_000 },
      limits: { maxCallsPerSecond: 1_000, maxConcurrentActivities: 50, maxConcurrentWorkflowTasks: 20 },
    },
  });
  return {
    server,
    simulator,
    client,
    workers,
    taskQueue,
    apiKey: API_KEY,
    recoveries: new BatchRecoveries(client, taskQueue),
    async stop() {
      await workerConnection.close();
      await client.connection.close();
      await simulator.close();
      await server.stop();
    },
  };
}
