import type { Client } from '@temporalio/client';
import proto from '@temporalio/proto';

const { TaskQueueKind, TaskQueueType, DescribeTaskQueueMode } = proto.temporal.api.enums.v1;

/**
 * A worker the server saw polling this recently still runs: an idle worker's long polls last about a minute, and
 * the server dates a poller when a poll begins and again when it ends. The server forgets a poller 5 minutes after
 * its last poll.
 */
export const LIVE_POLLER_WINDOW_MS = 90_000;

export type PolledTaskType = 'workflow' | 'activity';

/**
 * The identities of the workers that polled the task queue's workflow or activity tasks within
 * LIVE_POLLER_WINDOW_MS, by the server's clock against this one's.
 *
 * A task queue has several partitions (4 by default) and a poll lands on one of them; the enhanced describe reads
 * every partition's pollers, where the legacy one lists only the partition it is given. The server keeps its answer
 * for 5 s (`matching.TaskQueueInfoByBuildIdTTL`). The enhanced mode is marked deprecated in the API, and is what
 * both server versions we test (1.29 and 1.32) serve for a pollers list across partitions.
 */
export async function livePollerIdentities(client: Client, taskQueue: string, type: PolledTaskType): Promise<string[]> {
  const taskQueueType =
    type === 'workflow' ? TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW : TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY;
  const { versionsInfo } = await client.workflowService.describeTaskQueue({
    namespace: client.options.namespace,
    taskQueue: { name: taskQueue, kind: TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
    apiMode: DescribeTaskQueueMode.DESCRIBE_TASK_QUEUE_MODE_ENHANCED,
    taskQueueTypes: [taskQueueType],
    reportPollers: true,
  });
  const recent = Date.now() - LIVE_POLLER_WINDOW_MS;
  const identities = new Set<string>();
  // One entry per build ID; unversioned workers are all under the default one.
  for (const version of Object.values(versionsInfo ?? {})) {
    for (const poller of version.typesInfo?.[taskQueueType]?.pollers ?? []) {
      // A protobuf Long or a number, depending on the value.
      const lastPollAt = Number(poller.lastAccessTime?.seconds?.toString() ?? 0) * 1_000;
      if (poller.identity && lastPollAt >= recent) identities.add(poller.identity);
    }
  }
  return [...identities];
}
