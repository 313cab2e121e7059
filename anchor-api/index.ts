export * from './client.js';
export * from './endpoints.js';
export * from './errors.js';
export * from './pagination.js';
export * from './recoverable-batch.js';
export * from './redact.js';
export * from './retry-after.js';
export * from './schemas.js';
