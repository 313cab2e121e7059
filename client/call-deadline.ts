import { InterceptingCall, ListenerBuilder, RequesterBuilder, status, type Interceptor } from '@grpc/grpc-js';
import ms from 'ms';

/**
 * How long a call to Temporal that sets no deadline of its own may go unanswered. A network that drops packets
 * without closing the connection (a partition, a load balancer whose backend died) holds such a call until the
 * connection's keepalive gives up, if ever: a one-shot command (`report`, `pause`, `cancel`) hung for 91 s in a
 * review's run. Long waits (a recovery's result, a policy update, a query for a worker) set their own deadlines.
 */
export const DEFAULT_CALL_TIMEOUT_MS = 30_000;

/**
 * Gives every call that has no deadline one `timeoutMs` from its start, and says so when it passes (gRPC's own
 * "Deadline exceeded" names no limit). A call made within `withDeadline` keeps the deadline it was given. Listed
 * before the SDK's retry interceptor, so the deadline bounds the retries too.
 */
export function defaultCallDeadline(timeoutMs: number): Interceptor {
  const unanswered = new ListenerBuilder()
    .withOnReceiveStatus((received, next) =>
      next(
        received.code === status.DEADLINE_EXCEEDED
          ? { ...received, details: `no answer within ${ms(timeoutMs)} (${received.details})` }
          : received,
      ),
    )
    .build();
  const saysWhenUnanswered = new RequesterBuilder().withStart((metadata, _listener, next) =>
    next(metadata, unanswered),
  );
  return (options, nextCall) =>
    options.deadline === undefined
      ? new InterceptingCall(nextCall({ ...options, deadline: Date.now() + timeoutMs }), saysWhenUnanswered.build())
      : new InterceptingCall(nextCall(options));
}
