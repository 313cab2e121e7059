import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { describeSchemaError } from '../anchor-api/schemas.js';
import type { SimulatorClock } from './clock.js';
import { FaultPlanSchema, FaultRuleSchema, FaultTargetSchema, type FaultInjector } from './faults.js';
import type { Ledger } from './ledger.js';
import { ScriptedBatchSpecSchema, SeedSpecSchema } from './scripts.js';
import { DuplicateBatchIdError, type BatchStore } from './store.js';

export const ADMIN_PREFIX = '/_simulator';
export const ADMIN_TOKEN_HEADER = 'x-simulator-admin-token';

export interface AdminDeps {
  store: BatchStore;
  clock: SimulatorClock;
  faults: FaultInjector;
  ledger: Ledger;
  /** When set, admin calls must carry it in the `x-simulator-admin-token` header. */
  adminToken: string | undefined;
  reset: () => void;
}

const AdvanceClockSchema = z.object({ ms: z.number().min(0) });

/**
 * Test-control surface, outside the contract's /v1 paths, for processes that only reach the simulator
 * over HTTP. The API key is not checked here; an optional admin token is.
 */
export function registerAdminRoutes(app: FastifyInstance, deps: AdminDeps): void {
  const { store, clock, faults, ledger } = deps;
  const invalid = (error: z.ZodError) => ({ error: { code: 400, message: describeSchemaError(error) } });

  app.addHook('onRequest', (request, reply, done) => {
    if (deps.adminToken !== undefined && request.headers[ADMIN_TOKEN_HEADER] !== deps.adminToken) {
      void reply.code(401).send({ error: { code: 401, message: `Missing or wrong ${ADMIN_TOKEN_HEADER}` } });
      return;
    }
    done();
  });

  app.get('/health', () => ({ ok: true }));

  app.post('/batches', (request, reply) => {
    const spec = ScriptedBatchSpecSchema.safeParse(request.body);
    if (!spec.success) return reply.code(400).send(invalid(spec.error));
    try {
      const batch = store.createScripted(spec.data);
      return reply.code(201).send({ data: batch.summary(clock.now()) });
    } catch (error) {
      if (error instanceof DuplicateBatchIdError)
        return reply.code(409).send({ error: { code: 409, message: error.message } });
      throw error;
    }
  });

  app.post<{ Params: { batch_id: string } }>('/batches/:batch_id/release', (request, reply) => {
    const batch = store.get(request.params.batch_id);
    if (batch === undefined)
      return reply.code(404).send({ error: { code: 404, message: `No batch ${request.params.batch_id}` } });
    const released = batch.release(clock.now());
    return { data: { ...batch.summary(clock.now()), released_sessions: released } };
  });

  app.post('/batches/seed', (request, reply) => {
    const spec = SeedSpecSchema.safeParse(request.body);
    if (!spec.success) return reply.code(400).send(invalid(spec.error));
    const failed = store.seed(spec.data);
    return reply.code(201).send({ data: { created: spec.data.total, failed_batch_ids: failed } });
  });

  app.get('/faults', () => ({ faults: faults.current() }));

  app.put('/faults', (request, reply) => {
    const plan = FaultPlanSchema.safeParse(request.body);
    if (!plan.success) return reply.code(400).send(invalid(plan.error));
    faults.replace(plan.data);
    return { faults: faults.current() };
  });

  app.post<{ Params: { target: string } }>('/faults/:target', (request, reply) => {
    const target = FaultTargetSchema.safeParse(request.params.target);
    if (!target.success)
      return reply.code(404).send({ error: { code: 404, message: `Unknown fault target ${request.params.target}` } });
    const rule = FaultRuleSchema.safeParse(request.body);
    if (!rule.success) return reply.code(400).send(invalid(rule.error));
    faults.add(target.data, rule.data);
    return { faults: faults.current() };
  });

  app.delete('/faults', () => {
    faults.clear();
    return { faults: faults.current() };
  });

  app.get('/ledger', () => ledger.all());

  app.get<{ Params: { batch_id: string } }>('/ledger/:batch_id', (request) => ledger.forBatch(request.params.batch_id));

  app.get('/clock', () => ({ now: new Date(clock.now()).toISOString() }));

  app.post('/clock/advance', (request, reply) => {
    const body = AdvanceClockSchema.safeParse(request.body);
    if (!body.success) return reply.code(400).send(invalid(body.error));
    return { now: new Date(clock.advance(body.data.ms)).toISOString() };
  });

  app.post('/reset', () => {
    deps.reset();
    return { ok: true };
  });
}
