import { Command } from 'commander';
import {
  addReportAllOptions,
  formatRecoveryTable,
  reportAllRecoveries,
  type ReportAllOptions,
} from '../../client/commands/report-all.js';
import { listRecoveries, type RecoveryRow } from '../../client/recovery-list.js';
import { eventually, FAST_POLICY, startRecoveryEnv, type RecoveryEnv } from '../helpers/recovery-env.js';
import { testCommandContext } from '../helpers/sweep-env.js';

let env: RecoveryEnv;

beforeAll(async () => {
  env = await startRecoveryEnv();
  await env.startWorker();
});
afterAll(() => env.close());

/** Polls visibility (seconds behind on the dev server) until `ready` holds for the rows. */
const rowsWhen = (
  what: string,
  options: Parameters<typeof listRecoveries>[1],
  ready: (rows: RecoveryRow[]) => boolean,
) =>
  eventually(what, async () => {
    const { rows } = await listRecoveries(env.client, options);
    return ready(rows) ? rows : undefined;
  });

test('the cross-batch report lists recoveries from visibility, filtered by outcome and start time', async () => {
  const recovered = env.simulator.createScriptedBatch({ count: 3, script: { '0': ['fail', 'ok'] } }).id;
  const exhausted = env.simulator.createScriptedBatch({ count: 3, script: { '2': 'always-fail' } }).id;
  const running = env.simulator.createScriptedBatch({ count: 2, script: { '1': 'always-fail' } }).id;
  await env.recoveries.start({ batchId: recovered, ...FAST_POLICY });
  await env.recoveries.start({ batchId: exhausted, maxRounds: 1, ...FAST_POLICY });
  await env.recoveries.start({
    batchId: running,
    ...FAST_POLICY,
    roundBackoff: { initialInterval: '1h', maximumInterval: '1h' },
  });
  await env.recoveries.result(recovered);
  await env.recoveries.result(exhausted);

  const row = (rows: RecoveryRow[], batchId: string) => rows.find((candidate) => candidate.batchId === batchId);
  const all = await rowsWhen(
    'all three recoveries with their final attributes',
    { since: '1h' },
    (rows) =>
      row(rows, recovered)?.outcome === 'recovered' &&
      row(rows, exhausted)?.outcome === 'exhausted' &&
      // Its first write already says running, before the one with its still-failed count.
      row(rows, running)?.outcome === 'running' &&
      row(rows, running)?.stillFailedSessions === 1,
  );
  expect(row(all, recovered)).toMatchObject({ rounds: 1, retriedSessions: 1, stillFailedSessions: 0 });
  expect(row(all, exhausted)).toMatchObject({
    rounds: 1,
    retriedSessions: 1,
    stillFailedSessions: 1,
    workflowId: `recover-batch-${exhausted}`,
  });
  expect(row(all, exhausted)?.durationMs).toBeGreaterThan(0);
  expect(row(all, running)).toMatchObject({ rounds: 0, stillFailedSessions: 1 });

  // Other test files share the server, so only this test's batches are checked by id.
  const { rows: onlyExhausted } = await listRecoveries(env.client, { since: '1h', outcome: 'exhausted' });
  expect(onlyExhausted.every((candidate) => candidate.outcome === 'exhausted')).toBe(true);
  expect(onlyExhausted.map((candidate) => candidate.batchId)).toEqual(expect.arrayContaining([exhausted]));
  expect(onlyExhausted.map((candidate) => candidate.batchId)).not.toEqual(expect.arrayContaining([recovered]));
  // All three started more than a millisecond ago, and visibility already shows them (above).
  const started = (await listRecoveries(env.client, { since: '1ms' })).rows.map((candidate) => candidate.batchId);
  expect(started).not.toEqual(expect.arrayContaining([exhausted]));

  const table = formatRecoveryTable(all.filter((candidate) => [recovered, exhausted].includes(candidate.batchId)));
  expect(table.split('\n')[0]).toMatch(/^batch\s+outcome\s+rounds\s+retried\s+still failing\s+started\s+duration$/);
  expect(table).toMatch(new RegExp(`${exhausted}\\s+exhausted\\s+1\\s+1\\s+1\\s`));

  // `report` without a batch id, wired the way cli.ts wires it.
  const { context, printed } = testCommandContext(env.client, env.taskQueue);
  const program = new Command('batch-recovery').exitOverride().configureOutput({ writeErr: () => undefined });
  addReportAllOptions(program.command('report').argument('[batchId]').option('--json')).action(
    (batchId: string | undefined, options: ReportAllOptions, command: Command) =>
      batchId === undefined
        ? reportAllRecoveries(context, command, options)
        : Promise.reject(new Error('not this test')),
  );
  await program.parseAsync(['report', '--since', '1h', '--outcome', 'exhausted', '--json'], { from: 'user' });
  const reported = JSON.parse(printed.join('\n')) as { batchId: string; outcome: string }[];
  expect(reported).toEqual(
    expect.arrayContaining([expect.objectContaining({ batchId: exhausted, outcome: 'exhausted' })]),
  );
  await expect(program.parseAsync(['report', '--outcome', 'fine'], { from: 'user' })).rejects.toThrow(
    /Allowed choices are/,
  );

  // Past --limit, a note beside the rows says so; before, the list stopped there without a word.
  const { context: limitedContext, printed: limitedRows, noted } = testCommandContext(env.client, env.taskQueue);
  const limited = new Command('batch-recovery').exitOverride().configureOutput({ writeErr: () => undefined });
  addReportAllOptions(limited.command('report').option('--json')).action(
    (options: ReportAllOptions, command: Command) => reportAllRecoveries(limitedContext, command, options),
  );
  await limited.parseAsync(['report', '--since', '1h', '--limit', '2', '--json'], { from: 'user' });
  expect(JSON.parse(limitedRows.join('\n'))).toHaveLength(2);
  expect(noted).toEqual([
    'More recoveries matched than the 2 shown (the first 2 visibility listed): narrow --since or --outcome, or raise --limit',
  ]);
  expect((await listRecoveries(env.client, { since: '1h', limit: 2 })).truncated).toBe(true);
  expect((await listRecoveries(env.client, { since: '1ms', limit: 2 })).truncated).toBe(false);

  await env.recoveries.cancel(running);
  expect((await env.recoveries.result(running)).outcome).toBe('operator_cancelled');
});

test('recoveries the server ended with no outcome are listed, and filtered, as terminated', async () => {
  const batchId = env.simulator.createScriptedBatch({ count: 2, script: { '1': 'always-fail' } }).id;
  await env.recoveries.start({
    batchId,
    ...FAST_POLICY,
    roundBackoff: { initialInterval: '1h', maximumInterval: '1h' },
  });
  await env.recoveries.handle(batchId).terminate('test');

  // Before, `--outcome terminated` was refused, though the row said terminated.
  const rows = await rowsWhen('the terminated recovery', { since: '1h', outcome: 'terminated' }, (listed) =>
    listed.some((candidate) => candidate.batchId === batchId),
  );
  expect(rows.every((candidate) => candidate.outcome === 'terminated')).toBe(true);
  const { rows: running } = await listRecoveries(env.client, { since: '1h', outcome: 'running' });
  expect(running.map((candidate) => candidate.batchId)).not.toContain(batchId);
  const { rows: timedOut } = await listRecoveries(env.client, { since: '1h', outcome: 'timed_out' });
  expect(timedOut.map((candidate) => candidate.batchId)).not.toContain(batchId);
});

test('invalid list options are refused, naming the field', async () => {
  await expect(listRecoveries(env.client, { since: 'recently' })).rejects.toThrow(/since: expected a duration/);
});
