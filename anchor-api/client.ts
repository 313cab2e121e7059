import got, { RequestError, TimeoutError, type Got, type Response } from 'got';
import type { z } from 'zod';
import { ANCHOR_ENDPOINTS, type AnchorEndpoint } from './endpoints.js';
import {
  AnchorNetworkError,
  AnchorTimeoutError,
  BadRequestError,
  BatchNotFoundError,
  ConflictError,
  InsufficientCreditsError,
  MalformedResponseError,
  NoFailedSessionsError,
  RateLimitedError,
  ServerError,
  UnauthorizedError,
  UnexpectedStatusError,
  type AnchorApiError,
  type AnchorApiErrorContext,
} from './errors.js';
import { requireRecoverableBatch, type RecoverableBatch } from './recoverable-batch.js';
import { parseRetryAfterMs } from './retry-after.js';
import {
  BatchListResponseSchema,
  BatchStatusResponseSchema,
  CancelBatchResponseSchema,
  CreateBatchResponseSchema,
  ErrorResponseSchema,
  RetryRequestSchema,
  RetryResponseSchema,
  describeSchemaError,
  type BatchListPage,
  type BatchStatusDetail,
  type CancelBatchResult,
  type CreateBatchRequest,
  type CreateBatchResult,
  type ListBatchesQuery,
  type RetryRequest,
  type RetryResult,
} from './schemas.js';

export interface AnchorApiClientOptions {
  /** e.g. `https://api.anchorbrowser.io` or a simulator URL. */
  baseUrl: string;
  apiKey: string;
  /** Whole-request budget, applied to every call. */
  timeoutMs?: number;
}

export const DEFAULT_TIMEOUT_MS = 15_000;

/** Per-call options: activities bind a call to their cancellation and to their own time limit. */
export interface CallOptions {
  /** Aborts the request; an abort after the request may have left the machine is an unknown outcome. */
  signal?: AbortSignal;
  /** Shortens the whole-request budget for this call (never lengthens it). */
  timeoutMs?: number;
}

/** Got error codes meaning the request never left this machine, so the server cannot have acted on it. */
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);
const NOT_SENT_TIMEOUT_EVENTS = new Set(['lookup', 'connect', 'secureConnect']);

interface Call<T extends z.ZodType> {
  endpoint: AnchorEndpoint;
  method: 'GET' | 'POST' | 'PATCH';
  path: string;
  batchId?: string;
  json?: unknown;
  searchParams?: Record<string, string | number>;
  schema: T;
  mutating: boolean;
  options?: CallOptions;
}

export class AnchorApiClient {
  private readonly http: Got;
  private readonly apiKey: string;
  readonly timeoutMs: number;

  constructor(options: AnchorApiClientOptions) {
    this.apiKey = options.apiKey;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.http = got.extend({
      prefixUrl: options.baseUrl,
      headers: { 'anchor-api-key': options.apiKey, accept: 'application/json' },
      timeout: { request: this.timeoutMs },
      // The retry POST is not idempotent: a repeat must be a decision of the caller, never of the HTTP layer.
      retry: { limit: 0 },
      throwHttpErrors: false,
      followRedirect: false,
      responseType: 'text',
    });
  }

  async getBatch(batchId: string, options?: CallOptions): Promise<BatchStatusDetail> {
    const body = await this.call({
      endpoint: ANCHOR_ENDPOINTS.getBatch,
      method: 'GET',
      path: `v1/batch-sessions/${encodeURIComponent(batchId)}`,
      batchId,
      schema: BatchStatusResponseSchema,
      mutating: false,
      options,
    });
    return body.data ?? {};
  }

  /** The batch status narrowed to what recovery needs; throws MalformedResponseError otherwise. */
  async getRecoverableBatch(batchId: string, options?: CallOptions): Promise<RecoverableBatch> {
    return requireRecoverableBatch(await this.getBatch(batchId, options), batchId);
  }

  /** One page of the team's batches, newest first. */
  async listBatches(query: ListBatchesQuery = {}): Promise<BatchListPage> {
    const searchParams: Record<string, string | number> = {};
    for (const [name, value] of Object.entries(query)) {
      if (typeof value === 'string' || typeof value === 'number') searchParams[name] = value;
    }
    const body = await this.call({
      endpoint: ANCHOR_ENDPOINTS.listBatches,
      method: 'GET',
      path: 'v1/batch-sessions',
      searchParams,
      schema: BatchListResponseSchema,
      mutating: false,
    });
    return body.data ?? {};
  }

  /**
   * Starts new attempts for the batch's failed sessions. NOT idempotent: on an error with
   * `outcomeUnknown`, read the batch before deciding to call again.
   */
  async retryFailedSessions(batchId: string, request: RetryRequest, options?: CallOptions): Promise<RetryResult> {
    const endpoint = ANCHOR_ENDPOINTS.retryFailedSessions;
    const parsed = RetryRequestSchema.safeParse(request);
    if (!parsed.success) {
      throw new BadRequestError({
        endpoint,
        batchId,
        apiMessage: `invalid request: ${describeSchemaError(parsed.error)}`,
      });
    }
    const body = await this.call({
      endpoint,
      method: 'POST',
      path: `v1/batch-sessions/${encodeURIComponent(batchId)}/retry`,
      batchId,
      json: parsed.data,
      schema: RetryResponseSchema,
      mutating: true,
      options,
    });
    return body.data ?? {};
  }

  async cancelBatch(batchId: string): Promise<CancelBatchResult> {
    const body = await this.call({
      endpoint: ANCHOR_ENDPOINTS.cancelBatch,
      method: 'PATCH',
      path: `v1/batch-sessions/${encodeURIComponent(batchId)}`,
      batchId,
      json: { status: 'cancelled' },
      schema: CancelBatchResponseSchema,
      mutating: true,
    });
    return body.data ?? {};
  }

  async createBatch(request: CreateBatchRequest): Promise<CreateBatchResult> {
    const body = await this.call({
      endpoint: ANCHOR_ENDPOINTS.createBatch,
      method: 'POST',
      path: 'v1/batch-sessions',
      json: request,
      schema: CreateBatchResponseSchema,
      mutating: true,
    });
    return body.data ?? {};
  }

  private async call<T extends z.ZodType>(call: Call<T>): Promise<z.infer<T>> {
    let response: Response<string>;
    const { signal, timeoutMs } = call.options ?? {};
    try {
      response = await this.http(call.path, {
        method: call.method,
        ...(call.json === undefined ? {} : { json: call.json }),
        ...(call.searchParams === undefined ? {} : { searchParams: call.searchParams }),
        ...(signal === undefined ? {} : { signal }),
        ...(timeoutMs === undefined ? {} : { timeout: { request: Math.min(timeoutMs, this.timeoutMs) } }),
      });
    } catch (error) {
      throw this.transportError(error, call);
    }

    if (response.statusCode < 200 || response.statusCode >= 300) throw this.statusError(response, call);

    const context = {
      endpoint: call.endpoint,
      batchId: call.batchId,
      statusCode: response.statusCode,
      outcomeUnknown: call.mutating,
    };
    let json: unknown;
    try {
      // Backends commonly send null for "absent": a null is dropped, so an optional field may be null anywhere.
      json = JSON.parse(response.body, (_key, value: unknown) => (value === null ? undefined : value));
    } catch {
      throw new MalformedResponseError({ ...context, problem: 'body is not JSON' });
    }
    const parsed = call.schema.safeParse(json);
    if (!parsed.success) throw new MalformedResponseError({ ...context, problem: describeSchemaError(parsed.error) });
    return parsed.data;
  }

  private statusError(response: Response<string>, call: Call<z.ZodType>): AnchorApiError {
    const context: AnchorApiErrorContext = {
      endpoint: call.endpoint,
      batchId: call.batchId,
      statusCode: response.statusCode,
      apiMessage: readApiMessage(response.body),
    };
    const status = response.statusCode;
    if (status === 400) {
      return call.endpoint === ANCHOR_ENDPOINTS.retryFailedSessions
        ? new NoFailedSessionsError(context)
        : new BadRequestError(context);
    }
    if (status === 401 || status === 403) return new UnauthorizedError(context);
    if (status === 402) return new InsufficientCreditsError(context);
    if (status === 404 && call.batchId !== undefined) return new BatchNotFoundError(context);
    if (status === 409) return new ConflictError(context);
    if (status === 429) {
      const header = response.headers['retry-after'];
      return new RateLimitedError({ ...context, retryAfterMs: parseRetryAfterMs(header) });
    }
    // A 5xx to a mutating call may come after the server acted on it.
    if (status >= 500) return new ServerError({ ...context, outcomeUnknown: call.mutating });
    return new UnexpectedStatusError(context);
  }

  /** Rebuilds got's failure without got's objects: they hold the request options, API key header included. */
  private transportError(error: unknown, call: Call<z.ZodType>): AnchorApiError {
    const context = { endpoint: call.endpoint, batchId: call.batchId };
    if (error instanceof TimeoutError) {
      return new AnchorTimeoutError({
        ...context,
        timeoutMs: Math.min(call.options?.timeoutMs ?? Infinity, this.timeoutMs),
        outcomeUnknown: !NOT_SENT_TIMEOUT_EVENTS.has(error.event),
        cause: this.sanitizedCause(error),
      });
    }
    if (error instanceof RequestError) {
      // An abort before a socket was assigned cannot have reached the server.
      const abortedBeforeSending = error.code === 'ERR_ABORTED' && error.timings?.socket === undefined;
      return new AnchorNetworkError({
        ...context,
        apiMessage: this.redact(error.message),
        outcomeUnknown: !NOT_SENT_CODES.has(error.code) && !abortedBeforeSending,
        cause: this.sanitizedCause(error),
      });
    }
    const message = error instanceof Error ? error.message : String(error);
    return new AnchorNetworkError({ ...context, apiMessage: this.redact(message), outcomeUnknown: true });
  }

  private sanitizedCause(error: RequestError): Error {
    const cause = new Error(this.redact(error.message));
    cause.name = error.name;
    return Object.assign(cause, { code: error.code });
  }

  private redact(text: string): string {
    return this.apiKey === '' ? text : text.split(this.apiKey).join('[redacted]');
  }
}

function readApiMessage(body: string): string | undefined {
  try {
    const parsed = ErrorResponseSchema.safeParse(JSON.parse(body));
    return parsed.success ? parsed.data.error?.message : undefined;
  } catch {
    return undefined;
  }
}
