import { workflowBundle } from '../helpers/recovery-env.js';
import { temporalAddress, temporalNamespace } from '../helpers/temporal.js';
import { formatSummary, startExplorer, summarize, type Explorer } from './explorer.js';
import { INVARIANTS, type Invariant } from './invariants.js';
import { drawScenario } from './scenario.js';

/** CI runs 200; EXPLORER_SEEDS runs more (or fewer while iterating). */
const SEEDS = Number(process.env.EXPLORER_SEEDS ?? 200);
const CONCURRENCY = Number(process.env.EXPLORER_CONCURRENCY ?? 32);

let explorer: Explorer;

beforeAll(async () => {
  explorer = await startExplorer({
    temporalAddress: temporalAddress(),
    namespace: temporalNamespace(),
    workflowBundlePath: workflowBundle().workflowBundle.codePath,
  });
});
afterAll(() => explorer.close());

test('a seed draws the same scenario every time, and different seeds draw different ones', () => {
  expect(drawScenario(1234, explorer.timings)).toEqual(drawScenario(1234, explorer.timings));
  expect(drawScenario(1234, explorer.timings)).not.toEqual(drawScenario(1235, explorer.timings));
});

test(`${SEEDS} seeded fault schedules keep every invariant of the retry protocol`, async () => {
  const seeds = Array.from({ length: SEEDS }, (_, index) => index + 1);
  const results = await explorer.runSeeds(seeds, CONCURRENCY);
  const summary = summarize(results);
  if (summary.failing.length > 0) console.log(formatSummary(summary, { verbose: true }));

  expect(results.map((result) => result.seed)).toEqual(seeds);
  expect(summary.violations).toEqual(
    Object.fromEntries(INVARIANTS.map((name) => [name, 0])) as Record<Invariant, number>,
  );
}, 1_800_000);
