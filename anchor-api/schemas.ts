import { z } from 'zod';
import { BATCH_STATUSES } from './batch-status.js';

/*
 * One source of truth for the batch-sessions contract (../shared/anchor-batch-sessions.openapi.yaml),
 * imported by the client and the simulator alike.
 *
 * Response schemas mirror the contract: it marks almost nothing as required, so nearly every field is
 * optional here and unknown fields are kept (looseObject). Which fields the product cannot work without
 * is decided once, in recoverable-batch.ts. A field that is present but mistyped is rejected.
 */

/** Strict, for what the simulator validates in requests. */
const dateTime = z.iso.datetime({ offset: true });
/**
 * Timestamps in answers: the product never reads their format, and the contract allows more forms than ISO-8601
 * with an offset, so any string passes. (A null anywhere in an answer is dropped before validation: see client.ts.)
 */
const answerTimestamp = z.string();
const freeFormObject = z.record(z.string(), z.unknown());

export const BatchStatusSchema = z.enum(BATCH_STATUSES);
export type BatchStatus = z.infer<typeof BatchStatusSchema>;

export const ProgressPhaseSchema = z.enum(['queued', 'provisioning', 'configuring', 'ready']);
export type ProgressPhase = z.infer<typeof ProgressPhaseSchema>;

export const ErrorResponseSchema = z.looseObject({
  error: z
    .looseObject({
      code: z.int().optional(),
      message: z.string().optional(),
    })
    .optional(),
});
export type ErrorResponse = z.infer<typeof ErrorResponseSchema>;

export const BatchSessionItemSchema = z.looseObject({
  item_index: z.int().optional(),
  session_id: z.string().optional(),
  status: BatchStatusSchema.optional(),
  cdp_url: z.string().optional(),
  live_view_url: z.string().optional(),
  error: z.string().optional(),
  retry_count: z.int().optional(),
  started_at: answerTimestamp.optional(),
  completed_at: answerTimestamp.optional(),
  metadata: freeFormObject.optional(),
});
export type BatchSessionItem = z.infer<typeof BatchSessionItemSchema>;

/**
 * Only shown to operators (the percentage), never part of a decision: a value the contract does not list (a new phase,
 * a percentage past 100) is read as absent, where a rejected field fails the whole status read, and with it the
 * recovery, for good.
 */
export const BatchProgressSchema = z.looseObject({
  percentage: z.number().min(0).max(100).optional().catch(undefined),
  current_phase: ProgressPhaseSchema.optional().catch(undefined),
});
export type BatchProgress = z.infer<typeof BatchProgressSchema>;

export const BatchStatusDetailSchema = z.looseObject({
  batch_id: z.string().optional(),
  status: BatchStatusSchema.optional(),
  total_requests: z.int().optional(),
  completed_requests: z.int().optional(),
  failed_requests: z.int().optional(),
  processing_requests: z.int().optional(),
  pending_requests: z.int().optional(),
  created_at: answerTimestamp.optional(),
  actual_completion_time: answerTimestamp.optional(),
  error: z.string().optional(),
  sessions: z.array(BatchSessionItemSchema).optional(),
  progress: BatchProgressSchema.optional().catch(undefined),
});
export type BatchStatusDetail = z.infer<typeof BatchStatusDetailSchema>;

/**
 * Longest batch id read from a list. The contract's ids are UUIDs (36 characters); a longer one cannot be recovered,
 * and is read as absent, so a page's ids stay small in the activities' results and heartbeats.
 */
export const MAX_LISTED_BATCH_ID_CHARS = 64;

/**
 * A list item's id, status, counters and timestamps are each read as absent when they break the contract (a status
 * the API added later, a counter sent as text, a time sent as a number), not the page: one such item failed the whole
 * page as malformed, which is permanent, so the sweep stopped at that page on every run and the poller could not read
 * its list. Absent, the sweep counts the batch under another status, never as failed, and takes one without a creation
 * time as created at its window's start; the poller wakes no recovery with a status it did not read, at most has it
 * read the batch itself, and that read (BatchStatusDetailSchema) stays strict.
 */
export const BatchSummarySchema = z.looseObject({
  batch_id: z.string().max(MAX_LISTED_BATCH_ID_CHARS).optional().catch(undefined),
  status: BatchStatusSchema.optional().catch(undefined),
  total_requests: z.int().optional().catch(undefined),
  completed_requests: z.int().optional().catch(undefined),
  failed_requests: z.int().optional().catch(undefined),
  created_at: answerTimestamp.optional().catch(undefined),
  actual_completion_time: answerTimestamp.optional().catch(undefined),
});
export type BatchSummary = z.infer<typeof BatchSummarySchema>;

export const PaginationSchema = z.looseObject({
  current_page: z.int().optional(),
  // A negative count (an API's -1 for "unknown") is read as absent, so the list follows has_next. Taken as it came,
  // a poller that continued as new in the cycle it was in carried -1 as the cycle's last page, the next run refused
  // its input, and the queue had no poller until a worker started.
  total_pages: z
    .int()
    .transform((pages) => (pages < 0 ? undefined : pages))
    .optional(),
  total_records: z.int().optional(),
  has_next: z.boolean().optional(),
  has_prev: z.boolean().optional(),
});
export type Pagination = z.infer<typeof PaginationSchema>;

export const BatchListPageSchema = z.looseObject({
  batches: z.array(BatchSummarySchema).optional(),
  pagination: PaginationSchema.optional(),
});
export type BatchListPage = z.infer<typeof BatchListPageSchema>;

export const CreateBatchResultSchema = z.looseObject({
  batch_id: z.string().optional(),
  status: BatchStatusSchema.optional(),
  total_requests: z.int().optional(),
  created_at: answerTimestamp.optional(),
});
export type CreateBatchResult = z.infer<typeof CreateBatchResultSchema>;

export const CancelBatchResultSchema = z.looseObject({
  batch_id: z.string().optional(),
  status: z.literal('cancelled').optional(),
  cancelled_sessions: z.int().optional(),
  message: z.string().optional(),
});
export type CancelBatchResult = z.infer<typeof CancelBatchResultSchema>;

export const RetryResultSchema = z.looseObject({
  batch_id: z.string().optional(),
  status: BatchStatusSchema.optional(),
  // A negative count is no count: the answer is then unreadable, which the retry round takes as applied, count unknown.
  retried_sessions: z.int().min(0).optional(),
  message: z.string().optional(),
});
export type RetryResult = z.infer<typeof RetryResultSchema>;

/** Every 200 body of the contract is `{ data: ... }`, with `data` itself optional. */
function envelope<T extends z.ZodType>(data: T) {
  return z.looseObject({ data: data.optional() });
}

export const BatchStatusResponseSchema = envelope(BatchStatusDetailSchema);
export type BatchStatusResponse = z.infer<typeof BatchStatusResponseSchema>;
export const BatchListResponseSchema = envelope(BatchListPageSchema);
export type BatchListResponse = z.infer<typeof BatchListResponseSchema>;
export const CreateBatchResponseSchema = envelope(CreateBatchResultSchema);
export type CreateBatchResponse = z.infer<typeof CreateBatchResponseSchema>;
export const CancelBatchResponseSchema = envelope(CancelBatchResultSchema);
export type CancelBatchResponse = z.infer<typeof CancelBatchResponseSchema>;
export const RetryResponseSchema = envelope(RetryResultSchema);
export type RetryResponse = z.infer<typeof RetryResponseSchema>;

/* Requests. Query strings arrive as text, so numbers are coerced; the typed input stays numeric. */

/** The contract's largest page of the batch list. */
export const MAX_LIST_PAGE_SIZE = 100;

export const ListBatchesQuerySchema = z.looseObject({
  status: BatchStatusSchema.optional(),
  page: z.coerce.number<number | string>().pipe(z.int().min(1)).default(1),
  limit: z.coerce.number<number | string>().pipe(z.int().min(1).max(MAX_LIST_PAGE_SIZE)).default(20),
  created_after: dateTime.optional(),
  created_before: dateTime.optional(),
});
export type ListBatchesQuery = z.input<typeof ListBatchesQuerySchema>;

export const CreateBatchRequestSchema = z.looseObject({
  count: z.int().min(1).max(1000),
  configuration: freeFormObject.optional(),
  metadata: freeFormObject.optional(),
});
export type CreateBatchRequest = z.input<typeof CreateBatchRequestSchema>;

export const RetryRequestSchema = z.looseObject({
  retry_failed_only: z.boolean().default(true),
  max_retries: z.int().min(1).max(3).default(1),
});
export type RetryRequest = z.input<typeof RetryRequestSchema>;

export const CancelBatchRequestSchema = z.looseObject({
  status: z.literal('cancelled'),
});
export type CancelBatchRequest = z.input<typeof CancelBatchRequestSchema>;

/** `['data', 'sessions', 3, 'retry_count']` → `data.sessions[3].retry_count`. */
export function formatFieldPath(path: readonly PropertyKey[]): string {
  let text = '';
  for (const segment of path) {
    if (typeof segment === 'number') text += `[${segment}]`;
    else text += text === '' ? String(segment) : `.${String(segment)}`;
  }
  return text === '' ? '(root)' : text;
}

/** Names each offending field, e.g. `data.sessions[3].retry_count: expected number`. */
export function describeSchemaError(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const problem = issue.code === 'invalid_type' ? `expected ${issue.expected}` : issue.message;
      return `${formatFieldPath(issue.path)}: ${problem}`;
    })
    .join('; ');
}
