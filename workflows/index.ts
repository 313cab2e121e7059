export { recoverBatch } from './recover-batch.js';
