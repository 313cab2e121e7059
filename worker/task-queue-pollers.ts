import type { Client } from '@temporalio/client';
import proto from '@temporalio/proto';

const { TaskQueueKind, TaskQueueType, DescribeTaskQueueMode } = proto.temporal.api.enums.v1;

export type PolledTaskType = 'workflow' | 'activity';

/**
 * The identities of the workers that polled the task queue's workflow or activity tasks within the server's memory of
 * pollers (`matching.PollerHistoryTTL`, 5 min by default; a 1.32 server forgets a worker at once when it shuts down).
 *
 * A task queue has several partitions (4 by default) and a poll lands on one of them; the enhanced describe reads
 * every partition's pollers, where the legacy one lists only the partition it is given. It keeps one entry for each
 * identity, the first partition's, whose poll time may be minutes older than the worker's last poll on another: so
 * no window on those times here. The server keeps its answer for 5 s (`matching.TaskQueueInfoByBuildIdTTL`). It
 * reads unversioned workers only (the default build ID), as this project runs them. The enhanced mode is marked
 * deprecated in the API, and is what both server versions we test (1.29 and 1.32) serve for a list across
 * partitions.
 */
export async function recentPollerIdentities(
  client: Client,
  taskQueue: string,
  type: PolledTaskType,
): Promise<string[]> {
  const taskQueueType =
    type === 'workflow' ? TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW : TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY;
  const { versionsInfo } = await client.workflowService.describeTaskQueue({
    namespace: client.options.namespace,
    taskQueue: { name: taskQueue, kind: TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
    apiMode: DescribeTaskQueueMode.DESCRIBE_TASK_QUEUE_MODE_ENHANCED,
    taskQueueTypes: [taskQueueType],
    reportPollers: true,
  });
  const identities = new Set<string>();
  // One entry per build ID; unversioned workers are all under the default one.
  for (const version of Object.values(versionsInfo ?? {})) {
    for (const poller of version.typesInfo?.[taskQueueType]?.pollers ?? []) {
      if (poller.identity) identities.add(poller.identity);
    }
  }
  return [...identities];
}
