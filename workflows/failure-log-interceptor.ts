import { ApplicationFailure, type WorkflowInterceptorsFactory } from '@temporalio/workflow';

/**
 * Gives the SDK's "Workflow failed" log line the failure's type. The line's error crosses from the
 * workflow's thread to the worker's logger as a structured clone, which keeps an error's message but not
 * an ApplicationFailure's `type` (our failure types: unauthorized, InvalidRecoveryInput, …); the logger
 * (worker/logging.ts) puts `failureType` back into the error it writes.
 */
export const interceptors: WorkflowInterceptorsFactory = () => {
  let failureType: string | undefined;
  return {
    inbound: [
      {
        async execute(input, next) {
          try {
            return await next(input);
          } catch (err) {
            if (err instanceof ApplicationFailure && err.type) failureType = err.type;
            throw err;
          }
        },
      },
    ],
    outbound: [
      {
        getLogAttributes(input, next) {
          return next(failureType === undefined ? input : { ...input, failureType });
        },
      },
    ],
  };
};
