import type { BatchListPage } from '../../anchor-api/schemas.js';
import { startSimulator, type RunningSimulator } from '../../simulator/index.js';

// Seeding many batches at once and paging through them: a sweep reads 100,000 batches through this list.

const API_KEY = 'sim-list-key';
const TOTAL = 100_000;

let simulator: RunningSimulator;

beforeAll(async () => {
  simulator = await startSimulator({ apiKeys: [API_KEY], attemptDurationMs: 40, queueDelayMs: 10 });
});
afterAll(() => simulator.close());

type ListPage = Required<{ [Key in keyof BatchListPage]-?: NonNullable<BatchListPage[Key]> }>;

async function get(path: string): Promise<{ status: number; json: { data: ListPage } }> {
  const response = await fetch(`${simulator.url}${path}`, { headers: { 'anchor-api-key': API_KEY } });
  return { status: response.status, json: (await response.json()) as { data: ListPage } };
}

test('the admin route seeds 100,000 batches, and the list pages through all of them newest first, each once', async () => {
  const now = Date.now();
  const window = { from: new Date(now - 10 * 3_600_000), to: new Date(now - 60_000) };
  const seeded = await fetch(`${simulator.url}/_simulator/batches/seed`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      total: TOTAL,
      fail_every: 1_000,
      created_from: window.from.toISOString(),
      created_to: window.to.toISOString(),
    }),
  });
  expect(seeded.status).toBe(201);
  const { data } = (await seeded.json()) as { data: { created: number; failed_batch_ids: string[] } };
  expect(data.created).toBe(TOTAL);
  expect(data.failed_batch_ids).toHaveLength(TOTAL / 1_000);

  const query = `created_after=${new Date(window.from.getTime() - 1).toISOString()}&created_before=${new Date(now).toISOString()}&limit=100`;
  const seen = new Set<string>();
  const failed: string[] = [];
  let previousCreatedAt = Infinity;
  let outOfOrder = 0;
  const startedAt = process.hrtime.bigint();
  for (let page = 1; ; page += 1) {
    const { status, json } = await get(`/v1/batch-sessions?${query}&page=${page}`);
    expect(status).toBe(200);
    for (const batch of json.data.batches) {
      const createdAt = Date.parse(batch.created_at ?? '');
      if (!(createdAt <= previousCreatedAt)) outOfOrder += 1;
      previousCreatedAt = createdAt;
      seen.add(batch.batch_id ?? '');
      if ((batch.failed_requests ?? 0) > 0) failed.push(batch.batch_id ?? '');
    }
    if (!json.data.pagination.has_next) {
      expect(json.data.pagination).toMatchObject({ current_page: 1_000, total_pages: 1_000, total_records: TOTAL });
      break;
    }
  }
  const seconds = Number(process.hrtime.bigint() - startedAt) / 1e9;
  console.log(`simulator: 1,000 pages of 100 over ${TOTAL} batches in ${seconds.toFixed(1)} s`);
  expect(outOfOrder).toBe(0);
  expect(seen.size).toBe(TOTAL);
  expect(failed).toEqual(data.failed_batch_ids);

  // The window's bounds are exclusive, and a status filter still counts only its own.
  const { json: oldest } = await get(`/v1/batch-sessions?created_after=${window.from.toISOString()}&limit=1`);
  expect(oldest.data.pagination.total_records).toBe(TOTAL - 1);
  const { json: failedOnly } = await get(`/v1/batch-sessions?status=failed&limit=30&page=2`);
  expect(failedOnly.data.batches.map((batch) => batch.batch_id)).toEqual(data.failed_batch_ids.slice(30, 60));
  expect(failedOnly.data.pagination).toMatchObject({ total_records: TOTAL / 1_000, has_next: true, has_prev: true });
});
