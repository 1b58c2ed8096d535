// Per-API-key rate limit on job submissions: N per minute per X-Auth-Token
// (per client address without keys). In Redis mode the count lives in Redis
// (INCR on a key per minute window, expiring with it), so it holds across
// every API server sharing that Redis; embedded, it is in this process.
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';

const SUBMIT = /^\/(submissions(\/batch)?|api\/v2\/execute|v1\/runs)(\?|$)/;

export function rateLimit(app: FastifyInstance, perMinute: number, redis?: Redis): void {
  const local = new Map<string, number>();
  let localWindow = 0;
  app.addHook('onRequest', async (req, reply) => {
    if (req.method !== 'POST' || !SUBMIT.test(req.url)) return;
    const who = typeof req.headers['x-auth-token'] === 'string' ? `key:${req.headers['x-auth-token']}` : `ip:${req.ip}`;
    const now = Date.now();
    const window = Math.floor(now / 60000);
    let count: number;
    if (redis) {
      const key = `brig:rate:${window}:${who}`;
      try {
        const r = await redis.multi().incr(key).pexpire(key, 61000).exec();
        count = Number(r?.[0]?.[1] ?? 0);
      } catch {
        // Redis away: the queue refuses the job with 503 anyway.
        return;
      }
    } else {
      if (window !== localWindow) local.clear(), (localWindow = window);
      count = (local.get(who) ?? 0) + 1;
      local.set(who, count);
    }
    if (count > perMinute) {
      const retry = Math.max(1, Math.ceil(((window + 1) * 60000 - now) / 1000));
      const message = `rate limit: more than ${perMinute} submissions a minute for this ${who.startsWith('key:') ? 'API key' : 'address'}`;
      return reply.code(429).header('Retry-After', String(retry)).send(req.url.startsWith('/api/v2/') || req.url.startsWith('/v1/') ? { message } : { error: message });
    }
  });
}
