import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';

export function temporalAddress(): string {
  const address = process.env.TEMPORAL_ADDRESS;
  if (!address)
    throw new Error(
      'TEMPORAL_ADDRESS is not set: run the tests through jest, whose global setup starts the Temporal server',
    );
  return address;
}

export const temporalNamespace = () => process.env.TEMPORAL_NAMESPACE ?? 'default';

/** A Temporal server's address and namespace: the suite's, unless a test runs a server of its own. */
export interface TemporalTarget {
  address: string;
  namespace: string;
}

export const suiteTemporal = (): TemporalTarget => ({ address: temporalAddress(), namespace: temporalNamespace() });

export async function connectClient(target: TemporalTarget = suiteTemporal()): Promise<Client> {
  const connection = await Connection.connect({ address: target.address });
  return new Client({ connection, namespace: target.namespace });
}

export const connectWorker = (target: TemporalTarget = suiteTemporal()) =>
  NativeConnection.connect({ address: target.address });

export function uniqueTaskQueue(prefix: string): string {
  return `${prefix}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}
