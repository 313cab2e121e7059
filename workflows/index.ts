export { recoverBatch } from './recover-batch.js';
export { sweepFailedBatches } from './sweep-failed-batches.js';
