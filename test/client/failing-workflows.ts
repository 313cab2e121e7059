/**
 * A recoverBatch whose every workflow task fails, as a bug or a non-determinism error after a deploy makes a
 * recovery's tasks fail: an error that is not a Temporal failure fails the task, which the server retries, and the
 * recovery stays Running.
 */
export function recoverBatch(): Promise<never> {
  return Promise.reject(new Error('this workflow task always fails'));
}
