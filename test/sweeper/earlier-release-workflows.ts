/**
 * A recovery as a release before wave 35 ran one, named by the batch id in upper case, which the current workflow
 * refuses to start (recovery-upper-case-workflow-id-refused): it ends at once with an outcome, as one that ran then.
 */
export function recoverBatch(): Promise<{ outcome: string }> {
  return Promise.resolve({ outcome: 'exhausted' });
}
