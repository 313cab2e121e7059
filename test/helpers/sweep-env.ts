import type { Client } from '@temporalio/client';
import type { CommandContext, TemporalGlobals } from '../../client/commands/context.js';

/** A command context on the test's client that keeps what the commands print. */
export function testCommandContext(
  client: Client,
  taskQueue: string,
): { context: CommandContext; printed: string[]; noted: string[] } {
  const globals: TemporalGlobals = {
    address: 'in-test',
    namespace: client.options.namespace,
    taskQueue,
    uiUrl: 'http://ui.test',
  };
  const printed: string[] = [];
  const noted: string[] = [];
  return {
    printed,
    noted,
    context: {
      withClient: (_command, use) => use(client, globals),
      print: (text) => printed.push(text),
      note: (text) => noted.push(text),
    },
  };
}
