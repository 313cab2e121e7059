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
