/** The contract's batch statuses. Free of zod, so workflow code can check a value against them too. */
export const BATCH_STATUSES = ['pending', 'processing', 'completed', 'failed', 'cancelled'] as const;
