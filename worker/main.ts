import { InvalidInputError } from '../workflows/input.js';
import { runWorker } from './run-worker.js';

runWorker().catch((err: unknown) => {
  // A configuration error lists every problem, one a line, so an operator fixes them in one go.
  if (err instanceof InvalidInputError)
    console.error(['Invalid worker configuration:', ...err.problems.map((p) => `  - ${p}`)].join('\n'));
  else console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
