import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { Worker } from '@temporalio/worker';
import { workflowBundle } from './helpers/recovery-env.js';

// Histories recorded from earlier versions of the workflow (npm run fixtures:record adds scenarios).
// A change that would break running recoveries fails here with a determinism error.
// poller-carried-cycle-on-older-code is poller-wakes-through-local-activity with a carried cycle in its input, which
// the code that recorded it ignored (as it would have in a rolling deploy): such a run must replay without resuming.
// sweep-case-repeat-on-older-code is sweep-starts-each-batch-once-in-any-case recorded on the code before that patch,
// which started the batch listed again in upper case a second time: such a run must replay with both starts.
// continued-in-poller-wait-on-older-code-run-0/-1 (a chain that continued as new in its wait for the poller, its second
// run cancelled) and deadline-after-listed-settle-on-older-code (a deadline after a settle the poller's list showed,
// ended without a read) were recorded on the code before recovery-unwatches-carried-watch and
// recovery-deadline-reads-failing-sessions, by a review's probe: such runs must replay down their old paths.
// continued-input-refused-on-older-code is continued-input-refused-unwatches-carried-watch recorded on the code before
// recovery-unwatches-carried-watch reached that stop, which sent no unwatch: such a run must replay without one.
// lowered-poll-maximum-on-older-code is lowered-poll-maximum-registers recorded on the code before
// recovery-lowered-poll-maximum-registers, which kept the wait's long timer: such a run must replay without
// registering.
// ended-wait-registration-on-older-code is poller-leaves-out-ended-wait-registration recorded on the code before that
// patch, which took the registration that came after its unwatch and read the list for it: such a run must replay
// with the watch.
// sweep-continued-input-refused-on-older-code is sweep-continued-input-refused recorded on the code before such a run
// failed with its carried report (it failed with the refusal alone): such a run must replay, as the failure is one
// command either way.
// signals-in-holds-with-history-due-on-older-code was recorded on the code before recovery-continues-as-new-in-holds:
// resumes during a backoff and pauses during a hold after the history was due, and an update, with no continue-as-new
// until the round after them: such a run must replay without continuing as new in the holds.
// resume-and-pause-in-one-task-in-hold was recorded on code that holds on in the same run, as the code before
// recovery-continues-as-new-in-holds did: the release with that patch continued as new there, its history not due,
// and failed to replay such runs of the releases before it.
// recovery-refused-resend-keeps-watch was written by test/scale/poller-stuck.test.ts (a recovery that found its poller
// stuck, then cancelled), which no recorder scenario can stage without a poller whose workflow tasks keep failing.
const fixturesDir = fileURLToPath(new URL('./fixtures/histories/', import.meta.url));

test('recorded recovery histories replay on the current workflow code', async () => {
  const files = (await readdir(fixturesDir)).filter((file) => file.endsWith('.json')).sort();
  expect(files.length).toBeGreaterThanOrEqual(8);
  // Replayed under the workflow id it ran under, where the recorder wrote it (the code may ask for that id), else
  // under the file's name: the histories recorded before the recorder wrote it never read their id.
  const fileOf = new Map<string, string>();
  const histories = await Promise.all(
    files.map(async (file) => {
      const { workflowId, ...recorded } = JSON.parse(await readFile(`${fixturesDir}${file}`, 'utf8')) as {
        workflowId?: string;
      };
      fileOf.set(workflowId ?? file, file);
      return { workflowId: workflowId ?? file, history: historyFromJSON(recorded) };
    }),
  );

  const outcomes: Record<string, string> = {};
  for await (const result of Worker.runReplayHistories(workflowBundle(), histories)) {
    outcomes[fileOf.get(result.workflowId) ?? result.workflowId] = result.error ? String(result.error) : 'ok';
  }
  expect(outcomes).toEqual(Object.fromEntries(files.map((file) => [file, 'ok'])));
});
