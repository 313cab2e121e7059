import { provisionPinnedPromtool } from './promtool.js';

// Prints the path of the pinned promtool (built once into the cache), for .ci/run; progress goes to stderr.
try {
  console.log(await provisionPinnedPromtool());
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
}
