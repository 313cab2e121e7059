import { TypedSearchAttributes } from '@temporalio/common';
import { recoveryWorkflowId } from './definitions.js';
import type { RecoverBatchInput } from './input.js';
import { anchorBatchIdKey } from './search-attributes.js';

/**
 * How every recovery is started, from the CLI or a sweep: the id derived from
 * the batch (one recovery per batch) and the batch id as a search attribute
 * from the first moment, so the Web UI can filter before the workflow runs.
 */
export function recoveryStartOptions(input: RecoverBatchInput, taskQueue: string) {
  return {
    taskQueue,
    workflowId: recoveryWorkflowId(input.batchId),
    args: [input] as [RecoverBatchInput],
    typedSearchAttributes: new TypedSearchAttributes([{ key: anchorBatchIdKey, value: input.batchId }]),
  };
}
