import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { ClientRequest } from 'node:http';

const REQUEST_START = 'http.client.request.start';

/**
 * Tells `record` when each HTTP request this process makes to `url`'s host leaves (ms since the epoch): Node
 * publishes every client request as it is created, a few milliseconds after an Anchor call's turn under the budget.
 * Benchmarks and tests count the calls the workers sent with it, apart from when they arrive: a simulator held up
 * on a busy machine dates the calls that came meanwhile together. Returns what stops the recording.
 */
export function recordHttpRequests(url: string, record: (sentAtMs: number) => void): () => void {
  const host = new URL(url).host;
  const onRequest = (message: unknown) => {
    const { request } = message as { request: ClientRequest };
    if (request.getHeader('host') === host) record(Date.now());
  };
  subscribe(REQUEST_START, onRequest);
  return () => unsubscribe(REQUEST_START, onRequest);
}
