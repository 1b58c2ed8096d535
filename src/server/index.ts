// createServer(): the execution service as a library (brig serve is a thin
// CLI over it). Routes are fastify plugins, one file per API; jobs go
// through a JobQueue (queue.ts) so the embedded queue can be replaced.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance, type FastifyError } from 'fastify';
import websocket from '@fastify/websocket';

import { resolveOptions, type SandboxOptions } from '../launch/options.js';
import { mergeConfig, loadConfigFile, parseListen, type ServeConfig } from './config.js';
import type { ServiceContext, ServiceJob, ServiceResult } from './context.js';
import { executeJob, JobPools } from './execute.js';
import { healthRoutes } from './health.js';
import { judge0Routes } from './judge0.js';
import { createMetrics } from './metrics.js';
import { pistonRoutes } from './piston.js';
import { playgroundRoutes } from './playground.js';
import { MemoryQueue, type JobQueue } from './queue.js';
import { runsRoutes } from './runs.js';
import { checkedRunner } from './ceilings.js';
import { rateLimit } from './rate-limit.js';
import { parseRedisUrl, RedisQueue, type WorkerTuning } from './redis-queue.js';
import { loadRuntimes, SHIPPED_RUNTIME_DIR, type Runtime, type UnavailableRuntime } from './runtimes.js';

export { MemoryQueue, QueueFullError, QueueClosedError, type JobQueue, type SubmitHooks } from './queue.js';
export { defaultConfig, mergeConfig, loadConfigFile, ConfigError, type ServeConfig, type PistonConfig, type Judge0Config } from './config.js';
export { loadRuntimes, RuntimeError, SHIPPED_RUNTIME_DIR, type Runtime, type UnavailableRuntime } from './runtimes.js';
export type { ExecuteJob, ExecuteResult, StageLimits } from './execute.js';
export type { ServiceJob, ServiceResult } from './context.js';
export { RedisQueue, QueueUnavailableError, parseRedisUrl, type WorkerTuning } from './redis-queue.js';

export interface ServerOptions {
  /** A configuration object (the config file's shape), over the defaults. */
  config?: Record<string, unknown>;
  /** A config file (JSON); `config` goes on top of it. */
  configFile?: string;
  /** HOST:PORT; port 0 picks a free one. */
  listen?: string;
  concurrency?: number;
  apiKeys?: string[];
  /** Runtime directories added after the shipped ones. */
  runtimeDirs?: string[];
  /** fastify's logger option (pino): default off for the library, on for brig serve. */
  logger?: boolean | Record<string, unknown>;
  /** A queue to use instead of the embedded one (given the worker that runs a job in this process). */
  queue?: (worker: (job: ServiceJob) => Promise<ServiceResult>, config: ServeConfig) => JobQueue<ServiceJob, ServiceResult>;
  /** redis://HOST:PORT[/DB]: jobs go on a BullMQ queue there (brig worker runs them; `concurrency` 0 here only queues). */
  redis?: string;
  /** Job submissions a minute per API key (per address without keys); shared through Redis in Redis mode. */
  rateLimitPerMinute?: number;
  /** The local worker's stalled-job timing (Redis mode). */
  workerTuning?: WorkerTuning;
}

export interface BrigServer {
  app: FastifyInstance;
  config: ServeConfig;
  runtimes: Runtime[];
  unavailable: UnavailableRuntime[];
  /** Starts listening; resolves to the base URL (http://host:port). */
  listen(): Promise<string>;
  /** Stops taking requests, lets running jobs finish, removes what it made. */
  close(): Promise<void>;
}

export async function createServer(options: ServerOptions = {}): Promise<BrigServer> {
  const base = options.configFile ? loadConfigFile(options.configFile) : mergeConfig({});
  // The file's settings, then the caller's object over them (nested sections merged field by field).
  const over = options.config ?? {};
  const config = mergeConfig({
    ...stripDefaults(base),
    ...over,
    piston: { ...base.piston, ...((over.piston as object) ?? {}) },
    judge0: { ...base.judge0, ...((over.judge0 as object) ?? {}) },
  });
  if (options.listen !== undefined) config.listen = options.listen;
  if (options.concurrency !== undefined) config.concurrency = options.concurrency;
  if (options.apiKeys?.length) config.api_keys = [...config.api_keys, ...options.apiKeys];
  if (options.runtimeDirs?.length) config.runtimes = [...config.runtimes, ...options.runtimeDirs];
  const { host, port } = parseListen(config.listen);

  const set = loadRuntimes([SHIPPED_RUNTIME_DIR, ...config.runtimes]);
  const byLanguage = new Map(set.available.map((r) => [r.language, r]));
  // Every job's box lives under one private directory, removed at close.
  const boxRoot = mkdtempSync(join(tmpdir(), 'brig-serve-'));
  // Warm sandboxes per stage and shape, each with a job directory of its own under boxRoot.
  const pools = new JobPools(boxRoot, config.pool_size);

  const ctx = { config, runtimes: set.available, unavailable: set.unavailable, sessions: new Map(), pending: new Set(), closing: false, pools } as unknown as ServiceContext;
  const worker = async (job: ServiceJob): Promise<ServiceResult> => {
    if (job.kind === 'run') return pools.run(job.argv, job.options as SandboxOptions, job.stdin);
    const rt = byLanguage.get(job.language);
    if (!rt) throw new Error(`no runtime ${job.language} in this worker`);
    const session = job.session ? ctx.sessions.get(job.session) : undefined;
    if (job.session && !session) throw new Error('the interactive session has gone');
    return executeJob(rt, job, pools, session);
  };
  if (options.redis !== undefined) {
    // Jobs from a shared Redis are re-checked against this server's own ceilings before its local worker runs them.
    const redis = parseRedisUrl(options.redis);
    // /v1/runs options the sandbox would refuse are a 400 here, before queueing, as in the embedded mode.
    const validate = (job: ServiceJob) => {
      if (job.kind === 'run') resolveOptions(job.argv, { ...(job.options as object), stdin: job.stdin, stdout: 'capture', stderr: 'capture' });
    };
    const queue = new RedisQueue({ redis, concurrency: config.concurrency, capacity: config.max_queue_size, run: checkedRunner(worker, config, set.available), tuning: options.workerTuning, validate });
    // Redis away at start is not fatal: requests get 503 until it answers.
    await queue.ready().catch(() => {});
    ctx.queue = queue;
  } else ctx.queue = options.queue ? options.queue(worker, config) : new MemoryQueue(worker, config.concurrency, config.max_queue_size);
  ctx.metrics = createMetrics(ctx.queue);

  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: config.body_limit,
    // Idle keep-alive sockets are closed at shutdown; requests in flight finish.
    forceCloseConnections: 'idle',
    return503OnClosing: true,
  });

  // Authentication (Judge0's header): every route but the liveness probe and the page itself.
  if (config.api_keys.length) {
    const keys = new Set(config.api_keys);
    app.addHook('onRequest', async (req, reply) => {
      const path = req.url.split('?')[0];
      if (path === '/healthz' || (path === '/' && req.method === 'GET')) return;
      const token = req.headers['x-auth-token'];
      if (typeof token !== 'string' || !keys.has(token)) return reply.code(401).send({ error: 'Unauthorized', message: 'X-Auth-Token is missing or not a key this service accepts' });
    });
  }
  if (options.rateLimitPerMinute) rateLimit(app, options.rateLimitPerMinute, ctx.queue instanceof RedisQueue ? ctx.queue.client : undefined);
  app.addHook('onResponse', async (req, reply) => {
    ctx.metrics.requestSeconds.observe({ method: req.method, route: req.routeOptions.url ?? 'unmatched', code: String(reply.statusCode) }, reply.elapsedTime / 1000);
  });
  // fastify's own refusals (bad JSON, body too large, wrong content type) in each API's error shape.
  app.setErrorHandler((e: FastifyError, req, reply) => {
    const code = e.statusCode && e.statusCode >= 400 && e.statusCode < 500 ? e.statusCode : 500;
    let message = e.message;
    if (e.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || e instanceof SyntaxError) message = `body: not valid JSON (${e.message})`;
    else if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') message = `body: larger than the ${config.body_limit}-byte limit`;
    else if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') message = `content-type: ${req.headers['content-type'] ?? '(none)'} is not supported; send application/json`;
    else if (code === 500) {
      req.log.error(e);
      message = 'internal error';
    }
    if (req.url.startsWith('/api/v2/') || req.url.startsWith('/v1/')) return reply.code(code).send({ message });
    return reply.code(code).send({ error: message });
  });
  // piston-client posts its JSON without a content type (node-fetch labels it
  // text/plain): a text/plain body that is JSON is taken as JSON; any other
  // text is refused as an unsupported type (415), as Piston refuses non-JSON.
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser('text/plain', { parseAs: 'string' }, (req, body, done) => {
    try {
      done(null, JSON.parse(body as string));
    } catch {
      const e = new Error(`content-type: ${req.headers['content-type']} is not supported; send application/json`) as FastifyError;
      (e as { statusCode: number }).statusCode = 415;
      done(e, undefined);
    }
  });
  // Once draining, every response closes its connection, so close() does not wait out keep-alive.
  app.addHook('onSend', async (_req, reply) => {
    if (ctx.closing) reply.header('connection', 'close');
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send(req.url.startsWith('/api/v2/') ? { message: 'Not Found' } : { error: 'Not Found' }));

  await app.register(websocket, { options: { maxPayload: config.body_limit } });
  await app.register(pistonRoutes, { ctx });
  await app.register(judge0Routes, { ctx });
  await app.register(runsRoutes, { ctx });
  await app.register(healthRoutes, { ctx });
  await app.register(playgroundRoutes);

  let closed: Promise<void> | undefined;
  return {
    app,
    config,
    runtimes: set.available,
    unavailable: set.unavailable,
    async listen() {
      return app.listen({ host, port });
    },
    close() {
      closed ??= (async () => {
        ctx.closing = true;
        // Interactive sessions are ended: their clients are told by the close code.
        for (const s of ctx.sessions.values()) s.kill?.();
        // Stop taking requests and wait for those in flight (wait=true ones wait on their jobs),
        // and for every queued job, then for callbacks still being delivered.
        await Promise.all([app.close(), ctx.queue.close()]);
        await Promise.allSettled([...ctx.pending]);
        await pools.close();
        rmSync(boxRoot, { recursive: true, force: true });
      })();
      return closed;
    },
  };
}

/** A ServeConfig's top-level fields but the nested ones (merged apart). */
function stripDefaults(c: ServeConfig): Record<string, unknown> {
  const { piston: _p, judge0: _j, ...rest } = c;
  return rest;
}
