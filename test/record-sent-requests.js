/**
 * Preloaded into a worker process by tests that count its Anchor calls as it sends them (spawnWorkerProcess's
 * `preload`): appends when each request to ANCHOR_BASE_URL left, in ms since the epoch, to the file named by
 * RECORD_SENT_REQUESTS_TO, one per line, as dev/http-requests.ts records them in the test's and the bench's own
 * processes. Plain JavaScript: Node hands a preload to the SDK's workflow threads too, which do not load TypeScript.
 */
import { subscribe } from 'node:diagnostics_channel';
import { appendFileSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';

const file = process.env.RECORD_SENT_REQUESTS_TO;
const anchorUrl = process.env.ANCHOR_BASE_URL;
if (isMainThread && file && anchorUrl) {
  const host = new URL(anchorUrl).host;
  subscribe('http.client.request.start', ({ request }) => {
    if (request.getHeader('host') === host) appendFileSync(file, `${Date.now()}\n`);
  });
}
