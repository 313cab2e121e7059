import { jest } from '@jest/globals';
import type { Client } from '@temporalio/client';
import type { MetricGauge } from '@temporalio/common';
import proto from '@temporalio/proto';
import { budgetOverrunWarning, followWorkersSharingBudget } from '../../worker/budget-share.js';
import type { WorkerLifeState } from '../../worker/while-running.js';
import { connectClient, uniqueTaskQueue } from '../helpers/temporal.js';

const { TaskQueueType } = proto.temporal.api.enums.v1;
type DescribeTaskQueueRequest = proto.temporal.api.workflowservice.v1.IDescribeTaskQueueRequest;
type DescribeTaskQueueResponse = proto.temporal.api.workflowservice.v1.IDescribeTaskQueueResponse;

test('workers beyond the whole calls a second of the budget are warned of, naming both figures', () => {
  expect(budgetOverrunWarning(10, 10)).toBeUndefined();
  expect(budgetOverrunWarning(2, 2.5)).toBeUndefined();
  // Below one call a second, one worker is never warned of; a second one is.
  expect(budgetOverrunWarning(1, 0.5)).toBeUndefined();
  expect(budgetOverrunWarning(3, 2.5)).toBe(
    '3 workers share ANCHOR_MAX_CALLS_PER_SECOND=2.5, more than its 2 whole calls a second: each may send a call in ' +
      'the same second, so one second can hold 3 calls. Run at most 2 workers on the task queue, or raise the ' +
      'budget if Anchor allows it',
  );
});

test('a worker no longer listed stays counted through its hold when the wall clock steps forward', async () => {
  const client = await connectClient();
  const taskQueue = uniqueTaskQueue('budget-share');
  let state: WorkerLifeState = 'running';
  const now = Date.now.bind(Date);
  const calls: (() => void)[] = [];
  const nthCall = (n: number) => new Promise<void>((resolve) => (calls[n] = resolve));
  const secondCall = nthCall(2);
  const thirdCall = nthCall(3);
  let call = 0;
  let answered: Promise<unknown> = Promise.resolve();
  // The real server's answers for the queue; the first also names a peer, as a 1.32 server does until the peer
  // begins its shutdown, when it drops it while the peer may still be sending.
  const describeTaskQueue = async (request: DescribeTaskQueueRequest): Promise<DescribeTaskQueueResponse> => {
    call += 1;
    calls[call]?.();
    // From the second count on, the wall clock is 2 hold times ahead.
    if (call === 2) jest.spyOn(Date, 'now').mockImplementation(() => now() + 120_000);
    const answering = client.workflowService.describeTaskQueue(request);
    answered = answering.catch(() => undefined);
    const answer = await answering;
    if (call > 1) return answer;
    const activity = TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY;
    return { ...answer, versionsInfo: { '': { typesInfo: { [activity]: { pollers: [{ identity: 'peer' }] } } } } };
  };
  const gauged: number[] = [];
  const warnings: { message: string; meta?: Record<string, unknown> }[] = [];
  try {
    followWorkersSharingBudget({
      client: { options: client.options, workflowService: { describeTaskQueue } } as unknown as Client,
      taskQueue,
      identity: 'this-worker',
      configured: 1,
      onChange: () => {},
      gauge: { set: (value: number) => gauged.push(value) } as unknown as MetricGauge,
      budgetPerSecond: 1,
      logger: { warn: (message, meta) => warnings.push({ message, ...(meta && { meta }) }) },
      state: () => state,
    });
    // A count is taken before the next begins: the third call means the second count has been taken.
    await secondCall;
    await thirdCall;
    expect(gauged).toEqual([1, 2]);
    expect(warnings).toEqual([{ message: budgetOverrunWarning(2, 1), meta: { workers: 2, budgetPerSecond: 1 } }]);
  } finally {
    jest.restoreAllMocks();
    // Its next tick stops the timer; the count under way ends before the connection closes.
    state = 'after';
    await answered;
    await client.connection.close();
  }
}, 30_000);
