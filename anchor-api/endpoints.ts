/**
 * The contract's operations, named the way errors and the simulator's ledger report them.
 * Path templates (not concrete paths) keep batch ids out of metric and failure-type names.
 */
export const ANCHOR_ENDPOINTS = {
  listBatches: 'GET /v1/batch-sessions',
  createBatch: 'POST /v1/batch-sessions',
  getBatch: 'GET /v1/batch-sessions/{batch_id}',
  cancelBatch: 'PATCH /v1/batch-sessions/{batch_id}',
  retryFailedSessions: 'POST /v1/batch-sessions/{batch_id}/retry',
} as const;

export type AnchorEndpoint = (typeof ANCHOR_ENDPOINTS)[keyof typeof ANCHOR_ENDPOINTS];
