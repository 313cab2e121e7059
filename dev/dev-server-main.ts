import { startLocalDevServer } from './dev-server.js';
import { stopOnSignals } from './stop-signals.js';

// `npm run dev-server`: a Temporal dev server with the Web UI and the product's search attributes, for a
// worker and the CLI started separately (`npm start` runs it with a worker, a simulator and a demo instead).
// Runs until Ctrl-C or SIGTERM.

const print = (text: string) => process.stdout.write(`${text}\n`);

const server = await startLocalDevServer(process.env, print);
stopOnSignals(async () => {
  await server.stop();
  print('Temporal dev server stopped');
});

print(`Temporal dev server ready: address ${server.address}, namespace ${server.namespace}`);
print(`Web UI: ${server.uiUrl ?? '(none)'}`);
const usualPorts = server.address.endsWith(':7233');
print(
  usualPorts
    ? 'The CLI and the worker reach it with their defaults. Ctrl-C stops it.'
    : `Set TEMPORAL_ADDRESS=${server.address} for the CLI and the worker. Ctrl-C stops it.`,
);
