/**
 * Ends this process by `signal` once its output is written, as a shell expects of an interrupted command (npm then
 * ends the same way). Stdout to a pipe is written asynchronously: a kill at once could drop the last lines. Every
 * listener of the signal goes, since any one left would keep the signal from ending the process.
 */
export function endBySignal(signal: NodeJS.Signals): void {
  process.stdout.write('', () => {
    process.removeAllListeners(signal);
    process.kill(process.pid, signal);
  });
}

/**
 * On the first SIGINT or SIGTERM, runs `stop`, then ends by that signal. A Ctrl-C arrives more than once (the
 * terminal's and npm's relay): the copies must not cut the stop short. Install it before printing a ready line:
 * a parent that reads that line may stop the process at once.
 */
export function stopOnSignals(stop: () => Promise<void>): void {
  let stopping = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stopping) return;
      stopping = true;
      void stop().then(() => endBySignal(signal));
    });
  }
}
