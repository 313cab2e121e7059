import type { Client } from '@temporalio/client';
import type { Command } from 'commander';
import { loadTemporalConnectionConfig } from '../../worker/config.js';
import { connectTemporal, namingTheServer } from '../recoveries.js';

/** The program-wide options the commands read (defined on the root program by cli.ts). */
export interface TemporalGlobals {
  address: string;
  namespace: string;
  /** How long one call to Temporal may go unanswered, in ms (--call-timeout); connectTemporal's default when unset. */
  callTimeout?: number;
  taskQueue: string;
  uiUrl: string;
}

/** What a subcommand needs from the program: a client for one command, and somewhere to print. */
export interface CommandContext {
  /** Connects with the command's global options, runs `use`, and closes the connection so the process can exit. */
  withClient<T>(command: Command, use: (client: Client, globals: TemporalGlobals) => Promise<T>): Promise<T>;
  print(text: string): void;
  /** What is said about the output, not part of it (stderr): a JSON output stays parseable. */
  note(text: string): void;
}

/**
 * Connects as the global options say; TLS and the Temporal Cloud API key come
 * from the same TEMPORAL_* variables the worker reads.
 */
export function connectWithGlobals(
  globals: Pick<TemporalGlobals, 'address' | 'namespace' | 'callTimeout'>,
): Promise<Client> {
  const connection = loadTemporalConnectionConfig({
    ...process.env,
    TEMPORAL_ADDRESS: globals.address,
    TEMPORAL_NAMESPACE: globals.namespace,
  });
  return connectTemporal({ ...connection, callTimeoutMs: globals.callTimeout });
}

export function createCommandContext(): CommandContext {
  return {
    async withClient(command, use) {
      const globals = command.optsWithGlobals<TemporalGlobals>();
      const client = await connectWithGlobals(globals);
      try {
        return await use(client, globals);
      } catch (err) {
        throw namingTheServer(err, globals.address);
      } finally {
        await client.connection.close();
      }
    },
    print: (text) => process.stdout.write(`${text}\n`),
    note: (text) => process.stderr.write(`${text}\n`),
  };
}
