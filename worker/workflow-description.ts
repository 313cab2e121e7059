import { WorkflowNotFoundError, type Client, type WorkflowExecutionDescription } from '@temporalio/client';

/** The workflow's description, or undefined when no workflow has that id: a lookup, where "not found" is an answer. */
export function describeIfStarted(
  client: Client,
  workflowId: string,
): Promise<WorkflowExecutionDescription | undefined> {
  return client.workflow
    .getHandle(workflowId)
    .describe()
    .catch((err: unknown) => {
      if (err instanceof WorkflowNotFoundError) return undefined;
      throw err;
    });
}
