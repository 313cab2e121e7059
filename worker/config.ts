import { z } from 'zod';
import { DEFAULT_TASK_QUEUE } from '../workflows/definitions.js';
import { describeIssues, InvalidInputError } from '../workflows/input.js';

const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback);

const workerEnvSchema = z.object({
  TEMPORAL_ADDRESS: z.string().min(1).default('localhost:7233'),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_TASK_QUEUE: z.string().min(1).default(DEFAULT_TASK_QUEUE),
  ANCHOR_BASE_URL: z.url().default('https://api.anchorbrowser.io'),
  ANCHOR_API_KEY: z.string({ error: 'required: the AnchorBrowser API key' }).min(1, 'must not be empty'),
  ANCHOR_REQUEST_TIMEOUT_MS: positiveInt(15_000),
  /** Shared by every worker on the task queue: the server enforces it. */
  ANCHOR_MAX_CALLS_PER_SECOND: z.coerce.number().positive().default(10),
  WORKER_MAX_CONCURRENT_ACTIVITIES: positiveInt(20),
  WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: positiveInt(20),
});

export interface WorkerConfig {
  temporal: { address: string; namespace: string; taskQueue: string };
  anchor: { baseUrl: string; apiKey: string; timeoutMs: number };
  limits: { maxCallsPerSecond: number; maxConcurrentActivities: number; maxConcurrentWorkflowTasks: number };
}

/** Reads the worker's configuration from the environment, reporting every problem at once. */
export function loadWorkerConfig(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const result = workerEnvSchema.safeParse(env);
  if (!result.success) throw new InvalidInputError(describeIssues(result.error), 'worker configuration');
  const e = result.data;
  return {
    temporal: { address: e.TEMPORAL_ADDRESS, namespace: e.TEMPORAL_NAMESPACE, taskQueue: e.TEMPORAL_TASK_QUEUE },
    anchor: { baseUrl: e.ANCHOR_BASE_URL, apiKey: e.ANCHOR_API_KEY, timeoutMs: e.ANCHOR_REQUEST_TIMEOUT_MS },
    limits: {
      maxCallsPerSecond: e.ANCHOR_MAX_CALLS_PER_SECOND,
      maxConcurrentActivities: e.WORKER_MAX_CONCURRENT_ACTIVITIES,
      maxConcurrentWorkflowTasks: e.WORKER_MAX_CONCURRENT_WORKFLOW_TASKS,
    },
  };
}
