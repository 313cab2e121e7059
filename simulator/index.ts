export { startSimulator, DEFAULT_SIMULATOR_OPTIONS, type RunningSimulator, type SimulatorOptions } from './server.js';
export { ADMIN_PREFIX, ADMIN_TOKEN_HEADER } from './admin-routes.js';
export { SimulatorClock, type ClockMode } from './clock.js';
export {
  FAULT_TARGETS,
  FaultInjector,
  FaultRuleSchema,
  FaultPlanSchema,
  type FaultPlan,
  type FaultPlanInput,
  type FaultRule,
  type FaultRuleInput,
  type FaultTarget,
} from './faults.js';
export { Ledger, type BatchLedger, type CallOutcome, type LedgerCall, type LedgerRetry } from './ledger.js';
export {
  ScriptedBatchSpecSchema,
  SeedSpecSchema,
  type ItemScript,
  type ScriptedBatchSpec,
  type SeedSpec,
} from './scripts.js';
export { SimulatedBatch, type AttemptOutcome } from './batch.js';
export { BatchStore, DuplicateBatchIdError } from './store.js';
