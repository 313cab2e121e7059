import { TypedSearchAttributes } from '@temporalio/common';
import { recoveryWorkflowId } from './definitions.js';
import { parseRecoverBatchInput, type RecoverBatchInput } from './input.js';
import { recoveryStaticDetails, recoverySummary } from './recovery-details.js';
import { anchorBatchIdKey, recoveryDeadlineKey, recoveryOutcomeKey } from './search-attributes.js';

/**
 * How every recovery is started, from the CLI or a sweep: the id derived from
 * the batch (one recovery per batch) and the batch id as a search attribute
 * from the first moment, so the Web UI can filter before the workflow runs.
 * The deadline too, from the starter's clock, so a recovery no worker ever runs
 * is still found past it; the workflow's first task sets the exact one. And its
 * outcome `running`, so `RecoveryOutcome = "running"` finds it before then too:
 * the recoveries no worker has picked up are the ones an operator looks for.
 *
 * The batch id in lower case: a UUID is the same in either case, and one typed in
 * upper case made a second recovery of the same batch (a second workflow id).
 */
export function recoveryStartOptions(input: RecoverBatchInput, taskQueue: string, now = new Date()) {
  // The Web UI shows these on the recovery's page and in its list: the batch and the policy in force at start.
  const parsed = parseRecoverBatchInput(input);
  const policy = { ...parsed, batchId: parsed.batchId.toLowerCase() };
  const { batchId } = policy;
  return {
    taskQueue,
    workflowId: recoveryWorkflowId(batchId),
    args: [{ ...input, batchId }] as [RecoverBatchInput],
    typedSearchAttributes: new TypedSearchAttributes([
      { key: anchorBatchIdKey, value: batchId },
      { key: recoveryDeadlineKey, value: new Date(now.getTime() + policy.deadline) },
      { key: recoveryOutcomeKey, value: 'running' },
    ]),
    staticSummary: recoverySummary(policy),
    staticDetails: recoveryStaticDetails(policy),
  };
}
