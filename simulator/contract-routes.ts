import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { setTimeout as delay } from 'node:timers/promises';
import { ANCHOR_ENDPOINTS, type AnchorEndpoint } from '../anchor-api/endpoints.js';
import {
  CancelBatchRequestSchema,
  CreateBatchRequestSchema,
  ListBatchesQuerySchema,
  RetryRequestSchema,
  describeSchemaError,
} from '../anchor-api/schemas.js';
import type { SimulatorClock } from './clock.js';
import type { FaultInjector, FaultRule, FaultTarget } from './faults.js';
import type { Ledger, LedgerCall } from './ledger.js';
import {
  apiError,
  bodyAsText,
  bodyAsValue,
  nullAtPath,
  ok,
  removeAtPath,
  setAtPath,
  type ApiAnswer,
} from './responses.js';
import type { BatchStore } from './store.js';

export interface ContractDeps {
  store: BatchStore;
  clock: SimulatorClock;
  faults: FaultInjector;
  ledger: Ledger;
  apiKeys: ReadonlySet<string>;
}

interface Route {
  endpoint: AnchorEndpoint;
  target: FaultTarget;
  mistypedField: string;
}

const ROUTES = {
  list: { endpoint: ANCHOR_ENDPOINTS.listBatches, target: 'list', mistypedField: 'data.pagination.total_pages' },
  create: { endpoint: ANCHOR_ENDPOINTS.createBatch, target: 'create', mistypedField: 'data.total_requests' },
  status: { endpoint: ANCHOR_ENDPOINTS.getBatch, target: 'status', mistypedField: 'data.failed_requests' },
  cancel: { endpoint: ANCHOR_ENDPOINTS.cancelBatch, target: 'cancel', mistypedField: 'data.cancelled_sessions' },
  retry: { endpoint: ANCHOR_ENDPOINTS.retryFailedSessions, target: 'retry', mistypedField: 'data.retried_sessions' },
} as const satisfies Record<FaultTarget, Route>;

const ROUTE_BY_METHOD_AND_URL = new Map<string, Route>([
  ['GET /v1/batch-sessions', ROUTES.list],
  ['POST /v1/batch-sessions', ROUTES.create],
  ['GET /v1/batch-sessions/:batch_id', ROUTES.status],
  ['PATCH /v1/batch-sessions/:batch_id', ROUTES.cancel],
  ['POST /v1/batch-sessions/:batch_id/retry', ROUTES.retry],
]);

type BatchParams = { Params: { batch_id: string } };

/** The API surface of the contract: auth, the five operations, fault injection and the ledger. */
export function registerContractRoutes(app: FastifyInstance, deps: ContractDeps): void {
  const { store, clock, faults, ledger } = deps;
  const calls = new WeakMap<FastifyRequest, LedgerCall>();
  const entryOf = (request: FastifyRequest) => calls.get(request);
  // close() ends the latency waits too. A waiting call would otherwise hold a timer that keeps the process alive
  // after close, and then apply its effect (a retry, say) to a simulator that has stopped.
  const closing = new AbortController();
  app.addHook('preClose', (done) => {
    closing.abort();
    done();
  });

  app.addHook('onRequest', (request, reply, done) => {
    const route = ROUTE_BY_METHOD_AND_URL.get(`${request.method} ${request.routeOptions.url ?? ''}`);
    const params = request.params as { batch_id?: string } | undefined;
    calls.set(
      request,
      ledger.recordCall({
        at: new Date(clock.now()).toISOString(),
        receivedAtMs: Date.now(),
        method: request.method,
        path: request.url,
        endpoint: route?.endpoint ?? 'unknown',
        batchId: params?.batch_id,
      }),
    );
    const key = request.headers['anchor-api-key'];
    if (typeof key !== 'string' || !deps.apiKeys.has(key)) {
      void reply.code(401).send(apiError(401, 'Invalid or missing API key').body);
      return;
    }
    done();
  });
  app.addHook('preHandler', (request, _reply, done) => {
    const entry = entryOf(request);
    if (entry !== undefined) entry.requestBody = request.body;
    done();
  });
  app.addHook('onSend', (request, reply, payload, done) => {
    const entry = entryOf(request);
    if (entry !== undefined) {
      entry.statusCode = reply.statusCode;
      entry.outcome = 'answered';
      entry.answeredAtMs = Date.now();
    }
    done(null, payload);
  });

  /** Runs a handler under the endpoint's fault rules. */
  async function serve(
    route: Route,
    request: FastifyRequest,
    reply: FastifyReply,
    handle: () => ApiAnswer,
  ): Promise<FastifyReply> {
    const entry = entryOf(request);
    const fault = faults.pick(route.target, entry?.batchId);
    if (entry !== undefined && fault !== undefined) entry.fault = fault.type;
    if (fault?.latencyMs !== undefined) {
      const waited = await delay(fault.latencyMs, true, { signal: closing.signal }).catch(() => false);
      // Closing: the call is not applied, and close() ends its connection, as it ends a hung one.
      if (!waited) return reply.hijack();
    }

    if (fault?.type === 'error')
      return send(reply, apiError(fault.statusCode, fault.message ?? defaultErrorMessage(fault.statusCode)));
    if (fault?.type === 'rate_limit') return send(reply, rateLimited(fault));
    if (fault?.type === 'hang') {
      if (entry !== undefined) entry.outcome = 'hung';
      // Never answers; the client's timeout (or the simulator's close) ends the connection.
      return reply.hijack();
    }

    const answer = handle();
    return send(reply, spoil(answer, fault, route, request, reply, entry));
  }

  function spoil(
    answer: ApiAnswer,
    fault: FaultRule | undefined,
    route: Route,
    request: FastifyRequest,
    reply: FastifyReply,
    entry: LedgerCall | undefined,
  ): ApiAnswer | undefined {
    switch (fault?.type) {
      case 'commit_then_drop':
        if (entry !== undefined) {
          entry.outcome = 'dropped';
          entry.answeredAtMs = Date.now();
        }
        reply.hijack();
        request.raw.socket.destroy();
        return undefined;
      case 'malformed_json':
        return { ...answer, body: '{"data": {"batch_id": <html>502 Bad Gateway' };
      case 'mistyped_field':
        return {
          ...answer,
          body: setAtPath(bodyAsValue(answer.body), fault.field ?? route.mistypedField, fault.value ?? 'not-a-number'),
        };
      case 'omit_field':
        return { ...answer, body: removeAtPath(bodyAsValue(answer.body), fault.field) };
      case 'null_field':
        return { ...answer, body: nullAtPath(bodyAsValue(answer.body), fault.field) };
      default:
        return answer;
    }
  }

  app.get('/v1/batch-sessions', (request, reply) =>
    serve(ROUTES.list, request, reply, () => {
      const query = ListBatchesQuerySchema.safeParse(request.query);
      if (!query.success) return apiError(400, describeSchemaError(query.error));
      return ok(store.list(query.data));
    }),
  );

  app.post('/v1/batch-sessions', (request, reply) =>
    serve(ROUTES.create, request, reply, () => {
      const body = CreateBatchRequestSchema.safeParse(request.body);
      if (!body.success) return apiError(400, describeSchemaError(body.error));
      const batch = store.create(body.data);
      const entry = entryOf(request);
      if (entry !== undefined) ledger.assignBatch(entry, batch.id);
      const summary = batch.summary(clock.now());
      return ok({
        batch_id: batch.id,
        status: summary.status,
        total_requests: batch.size,
        created_at: summary.created_at,
      });
    }),
  );

  app.get<BatchParams>('/v1/batch-sessions/:batch_id', (request, reply) =>
    serve(ROUTES.status, request, reply, () => {
      const batch = store.get(request.params.batch_id);
      if (batch === undefined) return apiError(404, 'Batch not found');
      return { statusCode: 200, body: store.statusBody(batch) };
    }),
  );

  app.patch<BatchParams>('/v1/batch-sessions/:batch_id', (request, reply) =>
    serve(ROUTES.cancel, request, reply, () => {
      const batch = store.get(request.params.batch_id);
      if (batch === undefined) return apiError(404, 'Batch not found');
      const body = CancelBatchRequestSchema.safeParse(request.body);
      if (!body.success) return apiError(400, describeSchemaError(body.error));
      const now = clock.now();
      const status = batch.status(now);
      if (status === 'cancelled' || status === 'completed') return apiError(409, `Batch is already ${status}`);
      const cancelled = batch.cancel(now);
      return ok({
        batch_id: batch.id,
        status: 'cancelled',
        cancelled_sessions: cancelled,
        message: `Batch cancelled; ${cancelled} sessions terminated`,
      });
    }),
  );

  app.post<BatchParams>('/v1/batch-sessions/:batch_id/retry', (request, reply) =>
    serve(ROUTES.retry, request, reply, () => {
      const batch = store.get(request.params.batch_id);
      if (batch === undefined) return apiError(404, 'Batch not found');
      const body = RetryRequestSchema.safeParse(request.body);
      if (!body.success) return apiError(400, describeSchemaError(body.error));
      const now = clock.now();
      if (batch.isCancelled(now)) return apiError(400, 'No failed sessions to retry: batch is cancelled');
      const retried = batch.retry(now, body.data.max_retries, body.data.retry_failed_only);
      if (retried.length === 0) return apiError(400, 'No failed sessions to retry');
      const entry = entryOf(request);
      ledger.recordRetry({
        at: new Date(now).toISOString(),
        batchId: batch.id,
        callSeq: entry?.seq,
        receivedAtMs: entry?.receivedAtMs,
        appliedAtMs: Date.now(),
        body: { retry_failed_only: body.data.retry_failed_only, max_retries: body.data.max_retries },
        retriedSessions: retried.length,
        retriedItems: retried,
      });
      return ok({
        batch_id: batch.id,
        status: batch.status(now),
        retried_sessions: retried.length,
        message: `Retrying ${retried.length} failed sessions`,
      });
    }),
  );
}

function send(reply: FastifyReply, answer: ApiAnswer | undefined): FastifyReply {
  if (answer === undefined) return reply;
  return reply
    .code(answer.statusCode)
    .headers(answer.headers ?? {})
    .type('application/json; charset=utf-8')
    .send(bodyAsText(answer.body));
}

function rateLimited(fault: Extract<FaultRule, { type: 'rate_limit' }>): ApiAnswer {
  if (fault.retryAfterSeconds === undefined) return apiError(429, 'Rate limit exceeded');
  const retryAfter =
    fault.retryAfterFormat === 'http-date'
      ? new Date(Date.now() + fault.retryAfterSeconds * 1000).toUTCString()
      : String(fault.retryAfterSeconds);
  return apiError(429, 'Rate limit exceeded', { 'retry-after': retryAfter });
}

function defaultErrorMessage(statusCode: number): string {
  if (statusCode === 502) return 'Bad gateway';
  if (statusCode === 503) return 'Service temporarily unavailable';
  if (statusCode >= 500) return 'Internal server error';
  return 'Request refused';
}
