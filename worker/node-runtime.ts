import { setFlagsFromString } from 'node:v8';

/**
 * Whether this Node.js survives a workflow activation stopped by the SDK's isolateExecutionTimeout.
 *
 * The SDK runs workflow code in a vm context with its own microtask queue and a timeout. When the timeout stops
 * code inside an async function (a continuation after an await, in a cancellation scope), Node's AsyncLocalStorage
 * built on async_hooks is left with the stopped promise's context on its stack, and Node aborts the whole process at
 * the next message to the workflow thread: "async hook stack has become corrupted (actual: N, expected: 4)"
 * (nodejs/node#38503, temporalio/sdk-typescript#939). With AsyncContextFrame, the default from Node.js 24 and a flag
 * on 22, AsyncLocalStorage keeps no such stack, and the timeout only fails the workflow task.
 * test/deployment/isolate-timeout.test.ts shows both.
 */
export function asyncContextFrameInUse(
  nodeVersion = process.versions.node,
  flags = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)],
): boolean {
  const major = Number(nodeVersion.split('.')[0]);
  if (major >= 24) return !flags.includes('--no-async-context-frame');
  return major >= 22 && flags.includes('--experimental-async-context-frame');
}

/** A warning for the worker's log when a workflow task past isolateExecutionTimeout would abort the process. */
export function isolateTimeoutAbortsWorker(nodeVersion = process.versions.node, flags?: string[]): string | undefined {
  if (asyncContextFrameInUse(nodeVersion, flags)) return undefined;
  return (
    `On Node.js ${nodeVersion}, a workflow task that runs past isolateExecutionTimeout aborts the whole worker ` +
    `process instead of failing the task: run the worker on Node.js 24 (as the image does), or on 22 with ` +
    `--experimental-async-context-frame (docs/deployment.md)`
  );
}

/**
 * Caps the frames of the stack traces taken in workflow sandboxes created from now on. For every promise a workflow
 * creates, the SDK takes a stack trace and maps each of its frames through the bundle's source map, for the Web UI's
 * stack trace view (temporalio/sdk-typescript#1587): the more frames, the more CPU per promise. V8 gives each new
 * context, and each new thread, its Error.stackTraceLimit from this flag; the contexts that exist already (this
 * thread's, where activities run and the worker logs) keep theirs, and so their full stacks. The innermost frames,
 * where a workflow waits, are the ones kept: the view still shows each waiting promise and the call that made it.
 * Node.js warns that a V8 flag changed at run time may do nothing: V8 reads this one as it creates a context, which
 * test/deployment/node-runtime.test.ts checks on the Node.js it runs on.
 */
export function limitWorkflowStackTraces(frames: number): void {
  setFlagsFromString(`--stack-trace-limit=${frames}`);
}
