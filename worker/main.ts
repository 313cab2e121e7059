import { InvalidInputError } from '../workflows/input.js';
import { runWorker } from './run-worker.js';
import { TEMPORAL_UNREACHABLE_EXIT_CODE, TemporalUnreachableError } from './temporal-unreachable.js';

runWorker().catch((err: unknown) => {
  // A configuration error lists every problem, one a line, so an operator fixes them in one go.
  if (err instanceof InvalidInputError)
    console.error(['Invalid worker configuration:', ...err.problems.map((p) => `  - ${p}`)].join('\n'));
  else console.error(err instanceof Error ? err.message : err);
  // As `batch-recovery worker` does: before, the container's worker exited 1 for a server that was down too.
  process.exit(err instanceof TemporalUnreachableError ? TEMPORAL_UNREACHABLE_EXIT_CODE : 1);
});
