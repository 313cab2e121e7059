import { EventEmitter, once } from 'node:events';
import { MockActivityEnvironment } from '@temporalio/testing';
import { AnchorApiClient } from '../../anchor-api/index.js';
import { createSweepActivities, type ListFailedBatchesInput } from '../../activities/sweep-activities.js';
import { startHostileServer } from '../helpers/hostile-server.js';
import { connectClient } from '../helpers/temporal.js';

test("a sweep's list read ends when its activity is cancelled, not at its request timeout", async () => {
  const listing = new EventEmitter();
  // Holds every list request unanswered, as an API that stalls: only the client can end the exchange.
  const server = await startHostileServer((_request, response) => {
    response.on('close', () => listing.emit('closed'));
    listing.emit('request');
  });
  const client = await connectClient();
  try {
    // A request timeout past the test's own: the read can only end in time by its cancellation.
    const api = new AnchorApiClient({ baseUrl: server.url, apiKey: 'sk-sweep-cancel-test', timeoutMs: 20_000 });
    const activities = createSweepActivities(api, client);
    const listFailedBatches = (listing: ListFailedBatchesInput) => activities.listFailedBatches(listing);
    const env = new MockActivityEnvironment();
    const input: ListFailedBatchesInput = {
      statuses: ['failed'],
      createdAfter: '2026-11-01T00:00:00.000Z',
      createdBefore: '2026-11-30T00:00:00.000Z',
      pageSize: 100,
      fromPage: 1,
      maxBatchIds: 0,
      maxPages: 1,
    };
    const listed = env.run(listFailedBatches, input);
    await once(listing, 'request');
    env.cancel();

    const closed = once(listing, 'closed');
    await expect(listed).rejects.toThrow();
    await closed;
    expect(server.calls).toHaveLength(1);
    expect(server.calls[0]).toMatchObject({ cutByClient: true });
  } finally {
    await client.connection.close();
    await server.close();
  }
}, 10_000);
