import type { ClientRequest } from 'node:http';

/**
 * A listener for got's `request` event. A 101 (Switching Protocols) hands the connection over: Node takes the request as
 * done, so got's request timeout no longer fires and nothing settles the call. It held a retry call past its heartbeat
 * window, and the webhook's sender, and every end queued behind it, for good. The connection is closed at once, and
 * `onUpgrade` told, to abort the call.
 */
export function closeOnUpgrade(onUpgrade: () => void): (request: ClientRequest) => void {
  return (request) => {
    request.once('upgrade', (_response, socket) => {
      socket.destroy();
      onUpgrade();
    });
  };
}
