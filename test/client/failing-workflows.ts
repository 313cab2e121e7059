/**
 * Workflows whose every workflow task fails, as a bug or a non-determinism error after a deploy makes them fail: an
 * error that is not a Temporal failure fails the task, which the server retries, and the workflow stays Running.
 */
export function recoverBatch(): Promise<never> {
  return Promise.reject(new Error('this workflow task always fails'));
}

export function batchStatusPoller(): Promise<never> {
  return Promise.reject(new Error('this workflow task always fails'));
}
