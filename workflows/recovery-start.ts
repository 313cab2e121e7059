import { TypedSearchAttributes } from '@temporalio/common';
import { recoveryWorkflowId } from './definitions.js';
import { parseRecoverBatchInput, type RecoverBatchInput } from './input.js';
import { recoveryStaticDetails, recoverySummary } from './recovery-details.js';
import { anchorBatchIdKey, recoveryDeadlineKey } from './search-attributes.js';

/**
 * How every recovery is started, from the CLI or a sweep: the id derived from
 * the batch (one recovery per batch) and the batch id as a search attribute
 * from the first moment, so the Web UI can filter before the workflow runs.
 * The deadline too, from the starter's clock, so a recovery no worker ever runs
 * is still found past it; the workflow's first task sets the exact one.
 */
export function recoveryStartOptions(input: RecoverBatchInput, taskQueue: string, now = new Date()) {
  // The Web UI shows these on the recovery's page and in its list: the batch and the policy in force at start.
  const policy = parseRecoverBatchInput(input);
  return {
    taskQueue,
    workflowId: recoveryWorkflowId(input.batchId),
    args: [input] as [RecoverBatchInput],
    typedSearchAttributes: new TypedSearchAttributes([
      { key: anchorBatchIdKey, value: input.batchId },
      { key: recoveryDeadlineKey, value: new Date(now.getTime() + policy.deadline) },
    ]),
    staticSummary: recoverySummary(policy),
    staticDetails: recoveryStaticDetails(policy),
  };
}
