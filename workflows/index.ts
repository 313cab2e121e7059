export { recoverBatch } from './recover-batch.js';
export { sweepFailedBatches } from './sweep-failed-batches.js';
export { batchStatusPoller } from './batch-status-poller.js';
