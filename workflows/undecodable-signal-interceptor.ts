import { defaultPayloadConverter, log, type Payload, type WorkflowInterceptorsFactory } from '@temporalio/workflow';

/**
 * Takes a signal argument the worker cannot decode (an encoding it does not know, such as `binary/encrypted` from a
 * client with a codec, or `json/plain` that is not JSON) as no argument, with a warning naming the signal. The SDK
 * decodes a signal's arguments before any handler or inbound interceptor sees them, and a decode error fails the
 * workflow task; the signal stays in the history, so every retry and replay fails the same way and the run never
 * ends, its deadline included. Every handler of ours takes a missing argument as a bare wake.
 *
 * Signals only: a workflow input, activity result, query or update argument that cannot be decoded fails as the SDK
 * makes it (an update is rejected before it is accepted). Recorded histories replay as before: on earlier code such a
 * signal to a handler failed every workflow task after it, and one to no handler was never decoded.
 */
export const interceptors: WorkflowInterceptorsFactory = () => ({
  internals: [
    {
      activate(input, next) {
        for (const job of input.activation.jobs ?? []) {
          const signal = job.signalWorkflow;
          // Replaced in place: a job is a protobuf object whose `variant` the SDK reads from its class, which a copy
          // would lose.
          if (signal?.input) {
            signal.input = signal.input.map((payload, index) => decodable(payload, signal.signalName, index));
          }
        }
        return next(input);
      },
    },
  ],
});

/**
 * The payload, or the encoding of no value in its place. The workers set no payload converter, so the SDK decodes
 * with its default one; the trial decode here is that decode.
 */
function decodable(payload: Payload, signalName: string | null | undefined, index: number): Payload {
  try {
    defaultPayloadConverter.fromPayload(payload);
    return payload;
  } catch {
    // Neither the payload nor the error, whose message can quote it: the sender may have encrypted it for a reason.
    log.warn('Signal argument cannot be decoded; the signal is taken without it', {
      signal: signalName,
      argument: index,
    });
    return defaultPayloadConverter.toPayload(undefined);
  }
}
