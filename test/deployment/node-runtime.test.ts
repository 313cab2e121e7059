import { spawnSync } from 'node:child_process';
import { asyncContextFrameInUse, isolateTimeoutAbortsWorker } from '../../worker/node-runtime.js';

// Which Node.js releases keep AsyncLocalStorage off the async hook stack (test/deployment/isolate-timeout.test.ts
// shows what the difference does to a worker).

test('AsyncContextFrame: on by default from Node.js 24, behind a flag on 22, absent before', () => {
  expect(asyncContextFrameInUse('24.11.1', [])).toBe(true);
  expect(asyncContextFrameInUse('24.11.1', ['--no-async-context-frame'])).toBe(false);
  expect(asyncContextFrameInUse('22.23.3', [])).toBe(false);
  expect(asyncContextFrameInUse('22.23.3', ['--experimental-async-context-frame'])).toBe(true);
  expect(asyncContextFrameInUse('20.20.2', ['--experimental-async-context-frame'])).toBe(false);
});

test('the worker warns only where an isolate timeout would abort it, naming the version and the way out', () => {
  expect(isolateTimeoutAbortsWorker('24.11.1', [])).toBeUndefined();
  expect(isolateTimeoutAbortsWorker('20.20.2', [])).toMatch(
    /^On Node\.js 20\.20\.2, a workflow task that runs past isolateExecutionTimeout aborts the whole worker process .* Node\.js 24/,
  );
});

test("the workflow stack trace limit reaches new contexts and threads, not the worker's own", () => {
  // The worker's own context exists before the limit is set: activities and the worker's logs keep their stacks.
  const script = `
    import { runInNewContext } from 'node:vm';
    import { Worker } from 'node:worker_threads';
    import { limitWorkflowStackTraces } from './worker/node-runtime.ts';
    limitWorkflowStackTraces(4);
    const code = "import { parentPort } from 'node:worker_threads'; parentPort.postMessage(Error.stackTraceLimit);";
    const thread = await new Promise((resolve) => new Worker(code, { eval: true }).once('message', resolve));
    console.log(JSON.stringify({ here: Error.stackTraceLimit, newContext: runInNewContext('Error.stackTraceLimit'), thread }));
  `;
  const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'utf8',
  });
  expect(run.stderr).toBe('');
  expect(JSON.parse(run.stdout)).toEqual({ here: 10, newContext: 4, thread: 4 });
});
