export { naiveRecovery } from './naive-recovery.js';
export { noopRecovery } from './noop-recovery.js';
