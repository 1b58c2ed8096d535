// brig worker as a library: takes jobs from the BullMQ queue on Redis and
// runs them here with this machine's runtimes, profiles and ceilings (a job
// is re-checked against them: ceilings.ts), `concurrency` at a time. Its own
// /metrics (prom-client) on a port of its own; pino logs. close() is the
// graceful stop: running jobs finish, no new ones are taken.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { pino, type Logger } from 'pino';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { RunResult } from '../launch/sandbox.js';
import type { SandboxOptions } from '../launch/options.js';
import { checkedRunner } from './ceilings.js';
import { loadConfigFile, mergeConfig, parseListen, type ServeConfig } from './config.js';
import type { ServiceJob, ServiceResult } from './context.js';
import { executeJob, JobPools, type ExecuteResult } from './execute.js';
import { parseRedisUrl, QUEUE_NAME, startBullWorker, type WorkerTuning } from './redis-queue.js';
import { loadRuntimes, SHIPPED_RUNTIME_DIR, type Runtime, type UnavailableRuntime } from './runtimes.js';

export interface WorkerOptions {
  redis: string;
  concurrency?: number;
  configFile?: string;
  runtimeDirs?: string[];
  /** Shown in logs and as BullMQ's worker name (default: host name and pid). */
  name?: string;
  /** HOST:PORT for /metrics; port 0 picks one; undefined: none. */
  metricsListen?: string;
  tuning?: WorkerTuning;
  /** pino options, or false for no log. */
  logger?: false | Record<string, unknown>;
}

export interface BrigWorker {
  name: string;
  config: ServeConfig;
  runtimes: Runtime[];
  unavailable: UnavailableRuntime[];
  /** http://host:port of /metrics, when asked for. */
  metricsUrl?: string;
  /** Resolves once connected to Redis and taking jobs. */
  ready(): Promise<void>;
  /** Takes no new jobs, lets running ones finish, removes what it made. */
  close(): Promise<void>;
}

function statusOf(job: ServiceJob, r: ServiceResult): string {
  if (job.kind === 'run') return (r as RunResult).status;
  const e = r as ExecuteResult;
  if (e.compile && e.compile.status !== 'ok' && !e.run) return 'compile-error';
  return e.run?.status ?? 'setup-error';
}

export async function startWorker(o: WorkerOptions): Promise<BrigWorker> {
  const redis = parseRedisUrl(o.redis);
  const config = o.configFile ? loadConfigFile(o.configFile) : mergeConfig({});
  if (o.concurrency !== undefined) config.concurrency = o.concurrency;
  if (o.runtimeDirs?.length) config.runtimes = [...config.runtimes, ...o.runtimeDirs];
  const set = loadRuntimes([SHIPPED_RUNTIME_DIR, ...config.runtimes]);
  const byLanguage = new Map(set.available.map((r) => [r.language, r]));
  const name = o.name ?? `${hostname()}:${process.pid}`;
  const log: Logger = o.logger === false ? pino({ enabled: false }) : pino({ name: 'brig-worker', ...(o.logger ?? {}) }, pino.destination(2));
  const boxRoot = mkdtempSync(join(tmpdir(), 'brig-worker-'));
  // Warm pools per stage and limits, as brig serve's own: each sandbox single-use, its /box its own.
  const pools = new JobPools(boxRoot, config.pool_size);

  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'brig_worker_' });
  const jobs = new Counter({ name: 'brig_worker_jobs_total', help: "Jobs this worker finished, by brig's run status", labelNames: ['status', 'language'], registers: [registry] });
  const failed = new Counter({ name: 'brig_worker_jobs_failed_total', help: 'Jobs that ended without a result (the job itself failed)', registers: [registry] });
  const seconds = new Histogram({ name: 'brig_worker_run_duration_seconds', help: 'Wall time of a job on this worker', labelNames: ['language'], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [registry] });
  let running = 0;
  new Gauge({ name: 'brig_worker_active', help: 'Jobs this worker is running', registers: [registry], collect() { this.set(running); } });
  // Queue depth as every worker sees it (the same for all: Redis's count).
  const depthClient = new Redis({ ...redis, maxRetriesPerRequest: 1 });
  depthClient.on('error', () => {});
  const depthQueue = new Queue(QUEUE_NAME, { connection: depthClient, skipWaitingForReady: true });
  depthQueue.on('error', () => {});
  new Gauge({
    name: 'brig_queue_depth',
    help: 'Jobs waiting for a worker (all workers)',
    registers: [registry],
    async collect() {
      this.set(await depthQueue.getWaitingCount().catch(() => NaN));
    },
  });

  const local = async (job: ServiceJob): Promise<ServiceResult> => {
    if (job.kind === 'run') return pools.run(job.argv, job.options as SandboxOptions, job.stdin);
    if (job.session) throw new Error('an interactive job cannot run on a remote worker');
    return executeJob(byLanguage.get(job.language)!, job, pools);
  };
  const checked = checkedRunner(local, config, set.available);
  const worker = startBullWorker(
    redis,
    config.concurrency,
    async (job) => {
      running++;
      const t0 = performance.now();
      try {
        const r = await checked(job);
        const status = statusOf(job, r);
        const language = job.kind === 'run' ? 'v1' : job.language;
        jobs.inc({ status, language });
        seconds.observe({ language }, (performance.now() - t0) / 1000);
        log.debug({ language, status, ms: Math.round(performance.now() - t0) }, 'job done');
        if (status === 'setup-error') log.warn({ language, reason: (job.kind === 'run' ? (r as RunResult) : (r as ExecuteResult).run ?? (r as ExecuteResult).compile)?.error?.message }, 'job could not start');
        return r;
      } finally {
        running--;
      }
    },
    o.tuning,
    name,
  );
  worker.on('failed', (job, e) => {
    failed.inc();
    log.error({ job: job?.id, err: e.message }, 'job failed');
  });
  let lastError = '';
  worker.on('error', (e) => {
    // ioredis reconnects by itself; each distinct error is logged once.
    if (e.message !== lastError) log.warn({ err: e.message }, 'redis');
    lastError = e.message;
  });
  worker.on('ready', () => {
    if (lastError) log.info('redis: connected again');
    lastError = '';
  });

  let http: Server | undefined;
  let metricsUrl: string | undefined;
  if (o.metricsListen !== undefined) {
    const { host, port } = parseListen(o.metricsListen);
    http = createHttpServer((req, res) => {
      if (req.url === '/metrics' && req.method === 'GET')
        void registry.metrics().then((text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text), () => res.writeHead(500).end());
      else if (req.url === '/healthz') res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'ok', name, active: running }));
      else res.writeHead(404).end();
    });
    await new Promise<void>((resolve, reject) => http!.once('error', reject).listen(port, host, () => resolve()));
    const a = http.address() as { address: string; port: number };
    metricsUrl = `http://${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}`;
  }
  log.info({ name, concurrency: config.concurrency, runtimes: set.available.map((r) => r.language), metrics: metricsUrl }, 'worker started');

  let closed: Promise<void> | undefined;
  return {
    name,
    config,
    runtimes: set.available,
    unavailable: set.unavailable,
    metricsUrl,
    ready: () => worker.waitUntilReady().then(() => undefined),
    close() {
      closed ??= (async () => {
        log.info({ active: running }, 'stopping: finishing running jobs, taking no new ones');
        await worker.close();
        await pools.close();
        await depthQueue.close().catch(() => {});
        depthClient.disconnect();
        if (http) await new Promise<void>((r) => http!.close(() => r()));
        rmSync(boxRoot, { recursive: true, force: true });
        log.info('stopped');
        log.flush?.();
      })();
      return closed;
    },
  };
}
