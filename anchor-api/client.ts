import { setTimeout as delay } from 'node:timers/promises';
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
  ResponseTooLargeError,
  ServerError,
  UnauthorizedError,
  UnexpectedStatusError,
  type AnchorApiError,
  type AnchorApiErrorContext,
} from './errors.js';
import { closeOnUpgrade } from './close-on-upgrade.js';
import { requireRecoverableBatch, type RecoverableBatch } from './recoverable-batch.js';
import { parseRetryAfterMs } from './retry-after.js';
import {
  BatchListResponseSchema,
  BatchStatusResponseSchema,
  CancelBatchResponseSchema,
  CreateBatchResponseSchema,
  ErrorResponseSchema,
  ListBatchesQuerySchema,
  MAX_LIST_PAGE_SIZE,
  RetryRequestSchema,
  RetryResponseSchema,
  describeSchemaError,
  type BatchListPage,
  type BatchStatusDetail,
  type CancelBatchResult,
  type CreateBatchRequest,
  type CreateBatchResult,
  type ErrorResponse,
  type ListBatchesQuery,
  type RetryRequest,
  type RetryResult,
} from './schemas.js';

export interface AnchorApiClientOptions {
  /** e.g. `https://api.anchorbrowser.io` or a simulator URL. */
  baseUrl: string;
  apiKey: string;
  /** Whole-request budget, applied to every call: from sending the request to the body's last byte. */
  timeoutMs?: number;
  /** Longest response body read, in bytes (after decompression); a longer one is cut off and fails. */
  maxResponseBytes?: number;
  /**
   * Least time between two calls leaving this client, after an idle spell too: a call sooner than that waits its
   * turn before it is sent (CallOptions.turnTimeoutMs). Evenly spaced calls reach the API no nearer each other than
   * the network's jitter brings them, where a burst would reach it all at once. A function is asked at every turn,
   * so the spacing can follow how many workers share a budget. Absent: no limit.
   */
  callSpacingMs?: number | (() => number);
}

export const DEFAULT_TIMEOUT_MS = 15_000;
/**
 * 4 MiB: a 1,000-session batch status is well under 1 MB. The limit bounds the worker's memory per
 * call in flight, whatever the API sends.
 */
export const DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

/** Per-call options: activities bind a call to their cancellation and to their own time limit. */
export interface CallOptions {
  /** Aborts the request; an abort after the request may have left the machine is an unknown outcome. */
  signal?: AbortSignal;
  /** Shortens the whole-request budget for this call (never lengthens it), counted from when it is sent. */
  timeoutMs?: number;
  /**
   * Longest wait for the call's turn under callSpacingMs; past it the call fails as never sent. Default: the
   * request's own budget, so a call lasts at most twice that.
   */
  turnTimeoutMs?: number;
  /**
   * The latest `performance.now()` at which the request may leave: a call whose turn comes later, as after the event
   * loop stalled, fails as never sent, like one whose turn did not come in time.
   */
  sendBy?: number;
  /** Told when the request leaves, after its turn came: a mutating call's outcome is dated from then. */
  onSend?: () => void;
}

/**
 * Error codes meaning a request never left this machine, for an error that came before got set the request up (it
 * has no timings then). On a request that has timings the code proves nothing: a route lost after the request left
 * fails with EHOSTUNREACH or ENETUNREACH on the established connection too.
 */
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

/**
 * Whether a failed request may have reached the server whole. Got records `timings.upload` when the
 * last byte of the request was handed to the operating system: before that (a connect that never
 * completed, a timeout or an abort while writing) the server cannot hold the whole call, so it cannot
 * have acted on it; after it, whatever the error, it may have.
 */
function mayHaveBeenReceived(error: RequestError): boolean {
  if (error.timings !== undefined) return error.timings.upload !== undefined;
  // An abort before got even set up the request.
  if (error.code === 'ERR_ABORTED') return false;
  return !NOT_SENT_CODES.has(error.code);
}

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

/**
 * Resolves at each call's turn, one at a time in order, each at least `spacingMs()` (asked at every turn) after the
 * turn before it came.
 * Measured from when a turn came, not when it was due: a turn that comes late on a busy event loop pushes the
 * next one back. A limiter that schedules each queued call when it is queued (p-throttle's strict mode does)
 * lets the late one and the next, still on time, leave nearer than the spacing. A call that gives up (its
 * `abandoned` signal) rejects with the signal's reason and leaves its place to the next at once: turns given up
 * cannot pile up ahead of the calls still waiting, nor use up the budget's time.
 */
function turnsEvery(spacingMs: () => number): (abandoned: AbortSignal) => Promise<void> {
  let lastTurnAt = -Infinity;
  let queue = Promise.resolve();
  return (abandoned) => {
    const turn = queue.then(async () => {
      let wait = lastTurnAt + spacingMs() - performance.now();
      while (wait > 0 && !abandoned.aborted) {
        await delay(wait, undefined, { signal: abandoned }).catch(() => undefined);
        wait = lastTurnAt + spacingMs() - performance.now();
      }
      abandoned.throwIfAborted();
      lastTurnAt = performance.now();
    });
    queue = turn.catch(() => undefined);
    return turn;
  };
}

/** Shorter base64 forms are left alone: taking out every `Mw` of a text for the key `3` would garble it. */
const MIN_BASE64_FORM_CHARS = 12;

/**
 * The ways an answer may write `apiKey` back: as sent, escaped in JSON (as the common encoders do), percent-encoded
 * (either case of hex digits), and in base64 or base64url (an API that echoes the header it got, encoded). Longest
 * first, as a shorter form may be part of a longer one.
 */
function writtenForms(apiKey: string): string[] {
  if (apiKey === '') return [];
  const encoded = encodeURIComponent(apiKey);
  const key = Buffer.from(apiKey);
  const base64 = key.toString('base64');
  const base64Forms = [
    base64,
    base64.replace(/=+$/, ''),
    key.toString('base64url'),
    ...base64Cores(key, 'base64'),
    ...base64Cores(key, 'base64url'),
  ].filter((form) => form.length >= MIN_BASE64_FORM_CHARS);
  // A key with a quote or a backslash, echoed inside a text that is itself JSON, is written escaped; other encoders
  // escape more: PHP's json_encode writes `/` as `\/` (base64 keys have slashes), Go's encoder `<` as `\u003c`, and
  // `>` and `&` alike.
  const inJson = JSON.stringify(apiKey).slice(1, -1);
  const htmlSafe = inJson.replace(/[<>&]/g, (char) => `\\u00${char.charCodeAt(0).toString(16)}`);
  const jsonForms = [inJson, htmlSafe].flatMap((form) => [form, form.replaceAll('/', '\\/')]);
  const forms = [
    apiKey,
    ...jsonForms,
    encoded,
    encoded.replace(/%[0-9A-F]{2}/g, (hex) => hex.toLowerCase()),
    ...base64Forms,
  ];
  return [...new Set(forms)].sort((a, b) => b.length - a.length);
}

/**
 * The key's base64 as it shows inside the base64 of a longer text (`Basic base64("user:" + key)`, an encoded header
 * line), for each of the 3 byte offsets it may start at: the characters only the key's bits make up. At most 2 of
 * its bytes at each end stay, in characters shared with the text around it.
 */
function base64Cores(key: Buffer, encoding: 'base64' | 'base64url'): string[] {
  return [0, 1, 2].map((offset) => {
    const text = Buffer.concat([Buffer.alloc(offset), key]).toString(encoding);
    // Character i holds bits 6i to 6i + 5 of the text; the first offset * 8 bits are not the key's.
    return text.slice(Math.ceil((offset * 8) / 6), Math.floor(((offset + key.length) * 8) / 6));
  });
}

export class AnchorApiClient {
  private readonly http: Got;
  /** The API key as it may be written back: see writtenForms. */
  private readonly apiKeyForms: string[];
  private readonly nextTurn: ((abandoned: AbortSignal) => Promise<void>) | undefined;
  readonly timeoutMs: number;
  readonly maxResponseBytes: number;

  constructor(options: AnchorApiClientOptions) {
    this.apiKeyForms = writtenForms(options.apiKey);
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    const { callSpacingMs } = options;
    this.nextTurn =
      callSpacingMs === undefined
        ? undefined
        : turnsEvery(typeof callSpacingMs === 'number' ? () => callSpacingMs : callSpacingMs);
    this.http = got.extend({
      prefixUrl: options.baseUrl,
      headers: { 'anchor-api-key': options.apiKey, accept: 'application/json' },
      // `request` runs until the body's last byte, so a body that trickles or never ends is cut too.
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
  async listBatches(query: ListBatchesQuery = {}, options?: CallOptions): Promise<BatchListPage> {
    const searchParams: Record<string, string | number> = {};
    for (const [name, value] of Object.entries(query)) {
      if (typeof value === 'string' || typeof value === 'number') searchParams[name] = value;
    }
    const body = await this.call({
      options,
      endpoint: ANCHOR_ENDPOINTS.listBatches,
      method: 'GET',
      path: 'v1/batch-sessions',
      searchParams,
      schema: BatchListResponseSchema,
      mutating: false,
    });
    const page = body.data ?? {};
    // The activities' results and heartbeats are bounded by the page size asked for: a longer page breaks the
    // contract, which would otherwise carry the excess into history.
    const limit = ListBatchesQuerySchema.shape.limit.safeParse(query.limit);
    const maxBatches = limit.success ? limit.data : MAX_LIST_PAGE_SIZE;
    if ((page.batches?.length ?? 0) > maxBatches) {
      throw new MalformedResponseError({
        endpoint: ANCHOR_ENDPOINTS.listBatches,
        outcomeUnknown: false,
        problem: `a page of ${page.batches?.length} batches, past the ${maxBatches} asked for`,
      });
    }
    return page;
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

  async cancelBatch(batchId: string, options?: CallOptions): Promise<CancelBatchResult> {
    const body = await this.call({
      options,
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

  async createBatch(request: CreateBatchRequest, options?: CallOptions): Promise<CreateBatchResult> {
    const body = await this.call({
      options,
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
    const response = await this.send(call);
    if (response.statusCode < 200 || response.statusCode >= 300) throw this.statusError(response, call);

    const context = {
      endpoint: call.endpoint,
      batchId: call.batchId,
      statusCode: response.statusCode,
      outcomeUnknown: call.mutating,
    };
    const contentType = response.headers['content-type'];
    if (contentType !== undefined && !JSON_CONTENT_TYPE.test(contentType)) {
      throw new MalformedResponseError({
        ...context,
        problem: `content type ${this.redact(contentType)}, expected JSON`,
      });
    }
    let json: unknown;
    try {
      // Backends commonly send null for "absent": a null is dropped, so an optional field may be null anywhere. An API
      // may quote the key back (a session's error, say): no text read keeps it, or it would reach a result and history.
      // Only string values are touched, so no answer's shape or numbers can change. Keys of other accounts are caught
      // by their shape, in cleanApiText.
      json = JSON.parse(response.body, (_key, value: unknown) =>
        value === null ? undefined : typeof value === 'string' ? this.redact(value) : value,
      );
    } catch {
      throw new MalformedResponseError({ ...context, problem: 'body is not JSON' });
    }
    const parsed = call.schema.safeParse(json);
    if (!parsed.success) throw new MalformedResponseError({ ...context, problem: describeSchemaError(parsed.error) });
    // An answer about another batch (a cache's or a misrouted one) would drive the decisions taken for this one. The
    // API's ids are lower-case UUIDs; the id asked for may not be. After a mutating call the server still acted on
    // something, as for any 2xx that cannot be read (the retry round takes it as applied), and its figures are not
    // taken.
    const answeredBatchId = call.batchId === undefined ? undefined : batchIdOf(parsed.data);
    if (answeredBatchId !== undefined && answeredBatchId.toLowerCase() !== call.batchId?.toLowerCase()) {
      throw new MalformedResponseError({
        ...context,
        problem: `data.batch_id ${JSON.stringify(answeredBatchId)} is not the batch asked for`,
      });
    }
    return parsed.data;
  }

  /**
   * Sends the request and reads the body, at most maxResponseBytes of it: got has no body limit, so the
   * download is watched and aborted past it. A body cut off after an error status still fails as that
   * status (a 404 stays a 404), without the API's message.
   */
  private async send(call: Call<z.ZodType>): Promise<Response<string>> {
    const { signal, onSend, sendBy } = call.options ?? {};
    const timeoutMs = Math.min(call.options?.timeoutMs ?? Infinity, this.timeoutMs);
    const turnTimeoutMs = call.options?.turnTimeoutMs ?? timeoutMs;
    await this.waitForTurn(call, turnTimeoutMs);
    if (sendBy !== undefined && performance.now() > sendBy) {
      const context = { endpoint: call.endpoint, batchId: call.batchId, outcomeUnknown: false };
      throw new AnchorTimeoutError({ ...context, timeoutMs: turnTimeoutMs, waitedForTurn: true });
    }
    onSend?.();
    const stop = new AbortController();
    let tooLarge = false;
    let upgraded = false;
    try {
      return await this.http(call.path, {
        method: call.method,
        signal: signal === undefined ? stop.signal : AbortSignal.any([stop.signal, signal]),
        ...(call.json === undefined ? {} : { json: call.json }),
        ...(call.searchParams === undefined ? {} : { searchParams: call.searchParams }),
        // A kept-alive connection the server has just closed fails after the write (ECONNRESET): for a mutating call
        // an outcome unknown, which costs a reconciliation and may cost a round. A connection of its own (got's
        // `false`: an agent for this request alone) cannot be stale; reads keep the global agent's pool.
        ...(call.mutating ? { agent: { http: false, https: false } } : {}),
        timeout: { request: timeoutMs },
      })
        .on(
          'request',
          closeOnUpgrade(() => {
            upgraded = true;
            stop.abort();
          }),
        )
        .on('downloadProgress', ({ transferred, total }) => {
          // `total` is the declared Content-Length: a body announced too long is not downloaded at all.
          if (tooLarge || Math.max(transferred, total ?? 0) <= this.maxResponseBytes) return;
          tooLarge = true;
          stop.abort();
        });
    } catch (error) {
      // Answered, though not in HTTP: a status the contract does not define, as a redirect is.
      if (upgraded) throw this.statusError({ statusCode: 101, headers: {}, body: '' }, call);
      if (tooLarge && error instanceof RequestError) return this.tooLargeError(call, error.response);
      throw this.transportError(error, call);
    }
  }

  /**
   * Waits for the call's turn under callSpacingMs. A call whose turn does not come within `turnTimeoutMs`, or
   * whose caller aborts while it waits, fails as never sent, and the next call waiting takes its turn.
   */
  private async waitForTurn(call: Call<z.ZodType>, turnTimeoutMs: number): Promise<void> {
    if (this.nextTurn === undefined) return;
    const signal = call.options?.signal;
    const context = { endpoint: call.endpoint, batchId: call.batchId, outcomeUnknown: false };
    const aborted = () =>
      new AnchorNetworkError({ ...context, apiMessage: 'aborted before sending, waiting its turn' });
    if (signal?.aborted) throw aborted();
    const abandon = new AbortController();
    const onAbort = () => abandon.abort(aborted());
    const timer = setTimeout(
      () => abandon.abort(new AnchorTimeoutError({ ...context, timeoutMs: turnTimeoutMs, waitedForTurn: true })),
      turnTimeoutMs,
    );
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await this.nextTurn(abandon.signal);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  private statusError(
    response: Pick<Response<string>, 'statusCode' | 'headers' | 'body'>,
    call: Call<z.ZodType>,
    apiMessage = readApiMessage(response.body),
  ): AnchorApiError {
    const context: AnchorApiErrorContext = {
      endpoint: call.endpoint,
      batchId: call.batchId,
      statusCode: response.statusCode,
      // The API may quote the key back in its message.
      apiMessage: apiMessage === undefined ? undefined : this.redact(apiMessage),
    };
    const status = response.statusCode;
    if (status === 400) {
      // Only the API's own answer, the contract's JSON error, says the batch has nothing to retry. A proxy's 400 (an
      // HTML page: a header too large) says nothing of the batch, and taken so it used up a round that retried nothing.
      return call.endpoint === ANCHOR_ENDPOINTS.retryFailedSessions && isErrorResponse(response.body)
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
    // Below 400 here, a 1xx or a 3xx: the server read the request, and may have acted on it.
    return new UnexpectedStatusError({ ...context, outcomeUnknown: call.mutating && status < 400 });
  }

  /** Rebuilds got's failure without got's objects: they hold the request options, API key header included. */
  private transportError(error: unknown, call: Call<z.ZodType>): AnchorApiError {
    const context = { endpoint: call.endpoint, batchId: call.batchId };
    // An error status had come before the body broke off: it decides, as it would have whole (a 429 cut short is
    // still not sent, with its Retry-After).
    const response = error instanceof RequestError ? error.response : undefined;
    if (response !== undefined && (response.statusCode < 200 || response.statusCode >= 300)) {
      const cut = `(answer cut off before its end: ${this.redact((error as RequestError).message)})`;
      return this.statusError({ statusCode: response.statusCode, headers: response.headers, body: '' }, call, cut);
    }
    // A 2xx to a mutating call says the API acted on it, however its body ends (reset, or trickling past the
    // timeout): an unreadable answer, as one too large is. A read cut short falls to the cases below and is read again.
    if (response !== undefined && call.mutating) {
      return new MalformedResponseError({
        ...context,
        statusCode: response.statusCode,
        outcomeUnknown: true,
        problem: `body cut off before its end: ${this.redact((error as RequestError).message)}`,
      });
    }
    if (error instanceof TimeoutError) {
      return new AnchorTimeoutError({
        ...context,
        timeoutMs: Math.min(call.options?.timeoutMs ?? Infinity, this.timeoutMs),
        outcomeUnknown: mayHaveBeenReceived(error),
        cause: this.sanitizedCause(error),
      });
    }
    if (error instanceof RequestError) {
      return new AnchorNetworkError({
        ...context,
        apiMessage: this.redact(error.message),
        outcomeUnknown: mayHaveBeenReceived(error),
        cause: this.sanitizedCause(error),
      });
    }
    const message = error instanceof Error ? error.message : String(error);
    return new AnchorNetworkError({ ...context, apiMessage: this.redact(message), outcomeUnknown: true });
  }

  private tooLargeError(call: Call<z.ZodType>, response: Pick<Response, 'statusCode' | 'headers'> | undefined): never {
    const statusCode = response?.statusCode ?? 0;
    const context = { endpoint: call.endpoint, batchId: call.batchId, statusCode };
    if (statusCode >= 200 && statusCode < 300) {
      throw new ResponseTooLargeError({
        ...context,
        maxResponseBytes: this.maxResponseBytes,
        outcomeUnknown: call.mutating,
      });
    }
    const unread = `(error body longer than ${this.maxResponseBytes} bytes, not read)`;
    // The headers still count: a 429's Retry-After says when the call may go out again, whatever its body.
    throw this.statusError({ statusCode, headers: response?.headers ?? {}, body: '' }, call, unread);
  }

  private sanitizedCause(error: RequestError): Error {
    const cause = new Error(this.redact(error.message));
    cause.name = error.name;
    return Object.assign(cause, { code: error.code });
  }

  /**
   * Runs on every string of every answer. Most hold no form of the key, and `includes` answers that without the
   * copy a split and join make: a 100-batch list page parses in 185 µs instead of 616 (171 with no redaction).
   */
  private redact(text: string): string {
    return this.apiKeyForms.reduce(
      (redacted, form) => (redacted.includes(form) ? redacted.split(form).join('[redacted]') : redacted),
      text,
    );
  }
}

/** The batch an answer names itself (`data.batch_id`), once its schema has read it as a string or absent. */
function batchIdOf(body: unknown): string | undefined {
  const batchId = (body as { data?: { batch_id?: unknown } }).data?.batch_id;
  return typeof batchId === 'string' ? batchId : undefined;
}

/** `application/json`, `application/problem+json` and the like, with or without parameters. */
const JSON_CONTENT_TYPE = /^application\/(?:[\w.-]+\+)?json\s*(?:;|$)/i;

/** The body is the contract's JSON error: an object with an `error` object, whatever fields that leaves out. */
function isErrorResponse(body: string): boolean {
  return parseErrorResponse(body)?.error !== undefined;
}

/** The contract's JSON error, its nulls absent (`{ "code": null, … }` is one); undefined for any other body. */
function parseErrorResponse(body: string): ErrorResponse | undefined {
  try {
    const parsed = ErrorResponseSchema.safeParse(JSON.parse(body, (_key, value: unknown) => value ?? undefined));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** The error's message, if the body is the contract's JSON error; cleaned later, when the error is built. */
function readApiMessage(body: string): string | undefined {
  return parseErrorResponse(body)?.error?.message;
}
