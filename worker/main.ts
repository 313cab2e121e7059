import { InvalidInputError } from '../workflows/input.js';
import { runWorker } from './run-worker.js';

runWorker().catch((err: unknown) => {
  console.error(err instanceof InvalidInputError ? err.message : err);
  process.exit(1);
});
