import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import type { z } from 'zod';
import {
  BatchStatusDetailSchema,
  BatchStatusResponseSchema,
  CreateBatchRequestSchema,
  ErrorResponseSchema,
  ListBatchesQuerySchema,
  MalformedResponseError,
  RetryRequestSchema,
  describeSchemaError,
  parseRetryAfterMs,
  requireRecoverableBatch,
  RETRY_AFTER_MAX_MS,
} from '../../anchor-api/index.js';

// The contract lives next to the repository: ../shared from its root.
const CONTRACT_PATH = fileURLToPath(new URL('../../../shared/anchor-batch-sessions.openapi.yaml', import.meta.url));

/** Every `example` / `examples` in the contract, with the JSON path it was found at. */
function collectExamples(node: unknown, path: string[] = []): { path: string; value: unknown }[] {
  if (typeof node !== 'object' || node === null) return [];
  const found: { path: string; value: unknown }[] = [];
  for (const [key, child] of Object.entries(node)) {
    if (key === 'example') found.push({ path: [...path, key].join('/'), value: child });
    else if (key === 'examples' && typeof child === 'object' && child !== null) {
      for (const [name, example] of Object.entries(child as Record<string, { value?: unknown }>)) {
        found.push({ path: [...path, key, name].join('/'), value: example.value });
      }
    } else found.push(...collectExamples(child, [...path, key]));
  }
  return found;
}

/** Which shared schema each contract location is validated by; an unmapped example fails the test. */
const SCHEMA_FOR_LOCATION: { prefix: string; schema: z.ZodType }[] = [
  { prefix: 'paths//v1/batch-sessions/{batch_id}/retry/post/requestBody', schema: RetryRequestSchema },
  { prefix: 'components/schemas/ErrorResponse', schema: ErrorResponseSchema },
  { prefix: 'components/schemas/BatchStatusDetail', schema: BatchStatusDetailSchema },
];

/** The contract's text; a checkout without it beside the repository fails with what is missing and where. */
function readContract(): string {
  if (!existsSync(CONTRACT_PATH)) {
    throw new Error(
      `The API contract is not at ${CONTRACT_PATH}: these tests check the code against the contract in ` +
        'shared/anchor-batch-sessions.openapi.yaml beside the repository (README, Development).',
    );
  }
  return readFileSync(CONTRACT_PATH, 'utf8');
}

describe('contract examples', () => {
  const contract: unknown = parse(readContract());
  const examples = collectExamples(contract);

  it('finds the examples the contract carries', () => {
    expect(examples.map((example) => example.path)).toEqual(
      expect.arrayContaining([
        'paths//v1/batch-sessions/{batch_id}/retry/post/requestBody/content/application/json/examples/defaults',
        'components/schemas/ErrorResponse/example',
      ]),
    );
  });

  it.each(examples.map((example) => [example.path, example.value]))('%s parses with its schema', (path, value) => {
    const mapping = SCHEMA_FOR_LOCATION.find((candidate) => path.startsWith(candidate.prefix));
    expect(mapping).toBeDefined();
    const result = mapping?.schema.safeParse(value);
    expect(result?.success).toBe(true);
  });

  it('defaults the retry body the way the contract does', () => {
    expect(RetryRequestSchema.parse({})).toEqual({ retry_failed_only: true, max_retries: 1 });
  });
});

describe('response schemas', () => {
  it('accept a batch status without sessions or progress', () => {
    const parsed = BatchStatusResponseSchema.parse({
      data: { batch_id: 'b1', status: 'processing', failed_requests: 1 },
    });
    expect(parsed.data?.sessions).toBeUndefined();
    expect(parsed.data?.progress).toBeUndefined();
    expect(parsed.data?.status).toBe('processing');
  });

  it('accept an empty body, as the contract marks nothing required', () => {
    expect(BatchStatusResponseSchema.safeParse({}).success).toBe(true);
  });

  it('keep unknown fields', () => {
    const parsed = BatchStatusDetailSchema.parse({
      status: 'completed',
      region: 'eu-west',
      sessions: [{ status: 'completed', pod: 'p-1' }],
    });
    expect(parsed['region']).toBe('eu-west');
    expect(parsed.sessions?.[0]?.['pod']).toBe('p-1');
  });

  it('reject a mistyped field and name its path', () => {
    const sessions = [0, 1, 2, 3].map((index) => ({
      item_index: index,
      status: 'failed',
      retry_count: index === 3 ? 'three' : 1,
    }));
    const result = BatchStatusResponseSchema.safeParse({ data: { status: 'failed', sessions } });
    expect(result.success).toBe(false);
    if (!result.success)
      expect(describeSchemaError(result.error)).toBe('data.sessions[3].retry_count: expected number');
  });

  it('reject an unknown batch status', () => {
    const result = BatchStatusDetailSchema.safeParse({ status: 'exploded' });
    expect(result.success).toBe(false);
    if (!result.success)
      expect(describeSchemaError(result.error)).toBe(
        'status: Invalid option: expected one of "pending"|"processing"|"completed"|"failed"|"cancelled"',
      );
  });

  it('read a progress the contract does not list as absent: it is only shown, never decides', () => {
    const parsed = BatchStatusDetailSchema.parse({
      status: 'processing',
      progress: { percentage: 140, current_phase: 'finalizing' },
    });
    expect(parsed.progress).toEqual({ percentage: undefined, current_phase: undefined });
    expect(BatchStatusDetailSchema.parse({ status: 'processing', progress: 'half' }).progress).toBeUndefined();
  });

  it('accept timestamps in any format: the product never reads them', () => {
    const result = BatchStatusDetailSchema.safeParse({
      status: 'completed',
      created_at: 'Sun, 29 Nov 2026 10:00:00 GMT',
      actual_completion_time: '2026-11-29 10:00:00',
      sessions: [{ started_at: 'yesterday' }],
    });
    expect(result.success).toBe(true);
  });
});

describe('request schemas', () => {
  it('bound max_retries to 1..3', () => {
    expect(RetryRequestSchema.safeParse({ max_retries: 0 }).success).toBe(false);
    expect(RetryRequestSchema.safeParse({ max_retries: 4 }).success).toBe(false);
    expect(RetryRequestSchema.parse({ max_retries: 3 }).max_retries).toBe(3);
  });

  it('bound count to 1..1000', () => {
    expect(CreateBatchRequestSchema.safeParse({ count: 0 }).success).toBe(false);
    expect(CreateBatchRequestSchema.safeParse({ count: 1001 }).success).toBe(false);
    expect(CreateBatchRequestSchema.safeParse({ count: 1000, configuration: { browser: {} } }).success).toBe(true);
  });

  it('coerce list query strings and apply defaults', () => {
    expect(ListBatchesQuerySchema.parse({ page: '2' })).toEqual({ page: 2, limit: 20 });
    expect(ListBatchesQuerySchema.safeParse({ limit: '101' }).success).toBe(false);
    expect(ListBatchesQuerySchema.safeParse({ status: 'weird' }).success).toBe(false);
  });
});

describe('requireRecoverableBatch', () => {
  it('uses the counters when present', () => {
    const batch = requireRecoverableBatch(
      {
        status: 'failed',
        total_requests: 10,
        completed_requests: 7,
        failed_requests: 3,
        pending_requests: 0,
        processing_requests: 0,
      },
      'b1',
    );
    expect(batch.countsSource).toBe('counters');
    expect(batch.counts).toEqual({ total: 10, completed: 7, failed: 3, pending: 0, processing: 0 });
  });

  it('derives the counts from sessions when counters are missing', () => {
    const batch = requireRecoverableBatch(
      {
        status: 'processing',
        sessions: [
          { status: 'failed' },
          { status: 'completed' },
          { status: 'processing' },
          { status: 'pending' },
          { status: 'failed' },
          { status: 'cancelled' },
        ],
      },
      'b1',
    );
    expect(batch.countsSource).toBe('sessions');
    expect(batch.counts).toEqual({ total: 6, completed: 1, failed: 2, processing: 1, pending: 1 });
  });

  it('rejects a batch without status, naming the field', () => {
    const withoutStatus = () =>
      requireRecoverableBatch({ failed_requests: 1, pending_requests: 0, processing_requests: 0 }, 'b1');
    expect(withoutStatus).toThrow(MalformedResponseError);
    expect(withoutStatus).toThrow('data.status: required');
  });

  it('rejects a finished batch with neither counters nor sessions', () => {
    expect(() => requireRecoverableBatch({ status: 'failed', failed_requests: 2 }, 'b1')).toThrow(
      MalformedResponseError,
    );
  });

  it('takes a batch in flight by its status, whatever counters it leaves out', () => {
    // The contract: every field optional, and a batch just created may have its counters all 0.
    const justCreated = requireRecoverableBatch({ status: 'pending' }, 'b1');
    expect(justCreated.counts).toEqual({ total: 0, completed: 0, failed: 0, processing: 0, pending: 0 });
    expect(justCreated.countsDescribeBatch).toBe(false);
    const partly = requireRecoverableBatch(
      { status: 'processing', total_requests: 3, completed_requests: 1, failed_requests: 0 },
      'b1',
    );
    expect(partly.counts).toEqual({ total: 3, completed: 1, failed: 0, processing: 2, pending: 0 });
  });

  it('rejects a session without status when counting from sessions', () => {
    expect(() => requireRecoverableBatch({ status: 'failed', sessions: [{ status: 'failed' }, {}] }, 'b1')).toThrow(
      /data\.sessions\[1\]\.status/,
    );
  });
});

describe('parseRetryAfterMs', () => {
  const now = Date.parse('2025-01-01T00:00:00Z');
  it('reads delta-seconds', () => expect(parseRetryAfterMs('7', now)).toBe(7000));
  it('reads an HTTP-date', () => expect(parseRetryAfterMs('Wed, 01 Jan 2025 00:00:05 GMT', now)).toBe(5000));
  it('gives undefined when absent or unreadable', () => {
    expect(parseRetryAfterMs(undefined, now)).toBeUndefined();
    expect(parseRetryAfterMs('soon', now)).toBeUndefined();
  });
  it('reads the obsolete HTTP-date forms, and delta-seconds with whitespace around', () => {
    expect(parseRetryAfterMs(' 5\t', now)).toBe(5000);
    expect(parseRetryAfterMs('Wednesday, 01-Jan-25 00:00:05 GMT', now)).toBe(5000);
    expect(parseRetryAfterMs('Wed Jan  1 00:00:05 2025', now)).toBe(5000);
    expect(parseRetryAfterMs('Thu Jan 16 00:00:05 2025', Date.parse('2025-01-16T00:00:00Z'))).toBe(5000);
    // RFC 9110 §5.6.7: a two-digit year more than 50 years ahead is the last such year in the past.
    expect(parseRetryAfterMs('Thursday, 01-Jan-76 00:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfterMs('Wednesday, 01-Jan-70 00:00:05 GMT', Date.parse('2069-12-31T00:00:00Z'))).toBe(
      RETRY_AFTER_MAX_MS,
    );
  });
  // Date.parse read each of these as a date in the past, a wait of 0: the call went out again at once.
  it.each(['1.5', '2.5', '-1', '+5', '5s', '1e3', '0x10', 'Jan 1 2025', '2025-01-01T00:00:05Z'])(
    'gives undefined for %j, which is neither delta-seconds nor an HTTP-date',
    (header) => expect(parseRetryAfterMs(header, now)).toBeUndefined(),
  );
  it.each([
    'Wed, 1 Jan 2025 00:00:05 GMT',
    'Wed, 01 Jan 2025 00:00:05 UTC',
    'Wed, 01 Jan 2025 00:00:05 +0000',
    'Wed, 01 jan 2025 00:00:05 GMT',
    'Wed, 31 Feb 2025 00:00:05 GMT',
    'Wed, 01 Jan 2025 24:00:05 GMT',
    'Wed, 01 Jan 2025 00:00 GMT',
  ])('gives undefined for the near-HTTP-date %j', (header) => expect(parseRetryAfterMs(header, now)).toBeUndefined());
  it('caps at a day whatever the server says, so the delay is always finite', () => {
    expect(RETRY_AFTER_MAX_MS).toBe(86_400_000);
    expect(parseRetryAfterMs('9'.repeat(400), now)).toBe(RETRY_AFTER_MAX_MS);
    expect(parseRetryAfterMs('90000', now)).toBe(RETRY_AFTER_MAX_MS);
    expect(parseRetryAfterMs('Fri, 01 Jan 2100 00:00:00 GMT', now)).toBe(RETRY_AFTER_MAX_MS);
    expect(parseRetryAfterMs('86399', now)).toBe(86_399_000);
  });
});
