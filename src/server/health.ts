// GET /healthz (liveness and what the service offers) and GET /metrics (Prometheus text).
import type { FastifyInstance } from 'fastify';
import type { ServiceContext } from './context.js';

export async function healthRoutes(app: FastifyInstance, opts: { ctx: ServiceContext }): Promise<void> {
  const { ctx } = opts;
  app.get('/healthz', async (_req, reply) => {
    const body = {
      status: ctx.closing ? 'draining' : 'ok',
      runtimes: ctx.runtimes.map((r) => `${r.language}-${r.detectedVersion}`),
      queue: { depth: ctx.queue.depth, active: ctx.queue.active, capacity: ctx.queue.capacity },
      // Sandboxes made ahead and taken by jobs, over every warm pool of this process.
      ...(ctx.pools ? { pools: ctx.pools.stats } : {}),
    };
    return reply.code(ctx.closing ? 503 : 200).send(body);
  });
  app.get('/metrics', async (_req, reply) => reply.type(ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics()));
}
