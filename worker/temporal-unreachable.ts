import { isGrpcServiceError } from '@temporalio/client';

/**
 * What a process exits with when Temporal could not be reached, or did not answer: the CLI from any command, and the
 * container's worker (`dist/worker/main.js`), so a supervisor tells a server that is down from a bad configuration.
 */
export const TEMPORAL_UNREACHABLE_EXIT_CODE = 7;

/**
 * Temporal could not be reached, or did not answer: the CLI exits 7 for it, from any command, the worker's included.
 * Here, below both, as the worker's connection fails with it too.
 */
export class TemporalUnreachableError extends Error {
  override name = 'TemporalUnreachableError';
  constructor(
    readonly address: string,
    cause: Error,
    /** What the caller was doing when the server stopped answering, e.g. `following the recovery of batch <id>`. */
    readonly doing?: string,
  ) {
    super(`Cannot reach Temporal at ${address}${doing ? ` while ${doing}` : ''}: ${whyUnanswered(cause)}`, { cause });
  }
}

/** The SDK's message ("Failed to describe workflow") and what gRPC said under it ("no answer within 30s"). */
function whyUnanswered(err: Error): string {
  const grpcError = isGrpcServiceError(err) ? err : err.cause;
  if (!isGrpcServiceError(grpcError) || err.message.includes(grpcError.details)) return err.message;
  return `${err.message}: ${grpcError.details}`;
}
