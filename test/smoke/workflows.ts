import { proxyActivities } from '@temporalio/workflow';
import type * as activities from './activities.js';

const { greet } = proxyActivities<typeof activities>({ startToCloseTimeout: '10s' });

export async function smokeWorkflow(name: string): Promise<string> {
  return await greet(name);
}
