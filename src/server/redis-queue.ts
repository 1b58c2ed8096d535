// The job queue on Redis (BullMQ): API servers add jobs, workers on any
// machine take them. A job carries the resolved request (ServiceJob, plain
// JSON); its result comes back through the job's completion (BullMQ's event
// stream), so submit() keeps the embedded queue's contract: it resolves to
// the result, or rejects at once with QueueFullError when the queue holds
// max_queue_size waiting jobs, or with QueueUnavailableError (a 503 too)
// when Redis cannot be reached, never a hang.
import { randomUUID } from 'node:crypto';
import { Queue, QueueEvents, Worker, type Job } from 'bullmq';
import { Redis, type RedisOptions, type Result } from 'ioredis';
import type { RunResult } from '../launch/sandbox.js';
import type { ServiceJob, ServiceResult } from './context.js';
import type { ExecuteResult } from './execute.js';
import { MemoryQueue, QueueClosedError, QueueFullError, type JobQueue, type SubmitHooks } from './queue.js';

/** The BullMQ queue's name; every brig server and worker on one Redis shares it. */
export const QUEUE_NAME = 'brig-jobs';

/** Redis cannot be reached: the request is refused now (503), not left waiting. */
export class QueueUnavailableError extends QueueClosedError {
  override name = 'QueueUnavailableError';
  constructor(reason: string) {
    super();
    this.message = `the job queue (Redis) is unreachable: ${reason}`;
  }
}

/** redis://[user:pass@]HOST[:PORT][/DB] into ioredis options; a clear one-line error otherwise. */
export function parseRedisUrl(url: string): RedisOptions {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new RangeError(`--redis: ${JSON.stringify(url)} is not a URL (redis://HOST:PORT[/DB])`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new RangeError(`--redis: expected redis:// or rediss://, got ${u.protocol}`);
  const db = u.pathname && u.pathname !== '/' ? Number(u.pathname.slice(1)) : 0;
  if (!Number.isSafeInteger(db) || db < 0) throw new RangeError(`--redis: database ${JSON.stringify(u.pathname.slice(1))} is not a whole number`);
  return {
    host: u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
    db,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
    // Reconnect by itself, backing off to one attempt a second.
    retryStrategy: (n: number) => Math.min(50 * n, 1000),
  };
}

// Results cross Redis as JSON: a RunResult's stdout and stderr Buffers as base64.
type Wire = Record<string, unknown>;
function runToWire(r: RunResult): Wire {
  return { ...r, stdout: r.stdout.toString('base64'), stderr: r.stderr.toString('base64') };
}
function runFromWire(w: Wire): RunResult {
  return { ...(w as unknown as RunResult), stdout: Buffer.from(String(w.stdout ?? ''), 'base64'), stderr: Buffer.from(String(w.stderr ?? ''), 'base64') };
}
export function resultToWire(job: ServiceJob, r: ServiceResult): Wire {
  if (job.kind === 'run') return runToWire(r as RunResult);
  const e = r as ExecuteResult;
  return {
    ...(e.compile ? { compile: runToWire(e.compile) } : {}),
    ...(e.run ? { run: runToWire(e.run) } : {}),
    ...(e.allRuns ? { allRuns: e.allRuns.map(runToWire) } : {}),
  };
}
export function resultFromWire(job: ServiceJob, w: Wire): ServiceResult {
  if (job.kind === 'run') return runFromWire(w);
  return {
    ...(w.compile ? { compile: runFromWire(w.compile as Wire) } : {}),
    ...(w.run ? { run: runFromWire(w.run as Wire) } : {}),
    ...(w.allRuns ? { allRuns: (w.allRuns as Wire[]).map(runFromWire) } : {}),
  };
}

/**
 * Admission to the queue, atomic in Redis so that the cap holds across every
 * API server: the jobs waiting (BullMQ's wait, prioritized and paused) plus
 * those admitted and not yet added (tickets, each expiring on its own if its
 * server dies between the two), less the slack of the asking server's own
 * free workers, must stay under the cap. Returns {1, n} with a ticket for
 * the job, or {0, n}. The ticket is removed once the job is added.
 *
 * The free workers are counted here, in the same atomic step, not in the
 * server's process: a worker takes a job (BullMQ's move from wait to
 * active) in Redis some time before its processor runs in the process, and
 * a count of running processors taken then calls that worker free while the
 * job it took has already left the wait list: the job was not counted as
 * waiting and its slot was counted as slack, one admission too many. Here a
 * slot is busy from the move on: an active job whose lock holds a token of
 * this server's worker (BullMQ's tokens are "<worker id>:<n>"; the lock is
 * set by the same script that moves the job) until the job is moved out.
 *
 * A ticket is removed by a ZREM sent after the add is acknowledged; an
 * admission that runs between the add and that ZREM saw the job twice (in
 * the wait list and as a ticket) and refused a job that fitted: the full-queue
 * test's second request refused and its third, sent once the ZREM was done,
 * admitted. A ticket whose job hash exists is therefore not counted.
 * KEYS: wait, prioritized, paused, tickets, active; ARGV: cap, most slack
 * (the server's own unstarted jobs + 1), ticket ms, id, job key prefix,
 * worker concurrency, worker token prefix.
 */
const ADMIT_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
-- A ticket whose job is added already is counted in the lists: it goes now, not counted twice.
local admitting = 0
for _, ticket in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
  if redis.call('EXISTS', ARGV[5] .. ticket) == 1 then redis.call('ZREM', KEYS[4], ticket) else admitting = admitting + 1 end
end
local n = redis.call('LLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2]) + redis.call('LLEN', KEYS[3]) + admitting
local slots = tonumber(ARGV[6])
local free = 0
if slots > 0 then
  local busy = 0
  local mine = ARGV[7]
  for _, jobId in ipairs(redis.call('LRANGE', KEYS[5], 0, -1)) do
    local lock = redis.call('GET', ARGV[5] .. jobId .. ':lock')
    if lock and string.sub(lock, 1, #mine) == mine then busy = busy + 1 end
  end
  free = math.max(0, slots - busy)
end
local slack = math.min(free, tonumber(ARGV[2]))
if n - slack >= tonumber(ARGV[1]) then return {0, n} end
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[3]), ARGV[4])
return {1, n}
`;
/** How long an admission ticket holds its place without the add that follows it. */
const ADMIT_TICKET_MS = 10000;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    brigAdmit(wait: string, prioritized: string, paused: string, tickets: string, active: string, cap: number, mostSlack: number, ticketMs: number, id: string, jobKeyPrefix: string, slots: number, tokenPrefix: string): Result<[number, number], Context>;
  }
}

export interface WorkerTuning {
  /** ms a job stays claimed without its worker's heartbeat before the stalled check hands it to another worker (BullMQ lockDuration; default 30000). */
  lockDurationMs?: number;
  /** ms between stalled checks (default: lockDuration / 2). */
  stalledIntervalMs?: number;
}

/**
 * A BullMQ worker in this process running `run` for each job, `concurrency`
 * at a time. A job is tried once (attempts: 1): a sandbox that fails to start
 * is a result (setup-error, Judge0's 13), not a retry. A worker that dies
 * mid-job loses its lock; the stalled check puts the job back once for
 * another worker (maxStalledCount 1), then fails it.
 */
export function startBullWorker(redis: RedisOptions, concurrency: number, run: (job: ServiceJob) => Promise<ServiceResult>, tuning: WorkerTuning = {}, name?: string): Worker {
  const lockDuration = tuning.lockDurationMs ?? 30000;
  // A connection passed in is BullMQ's to use, ours to end.
  const connection = new Redis({ ...redis, maxRetriesPerRequest: null });
  connection.on('error', () => {});
  const worker = new Worker(
    QUEUE_NAME,
    async (job: Job) => {
      const data = job.data as ServiceJob;
      return resultToWire(data, await run(data));
    },
    {
      connection,
      concurrency,
      lockDuration,
      stalledInterval: tuning.stalledIntervalMs ?? Math.max(500, Math.floor(lockDuration / 2)),
      maxStalledCount: 1,
      ...(name ? { name } : {}),
      // The API server waits on each job's completion event; the stored job is kept a while for GET and debugging.
      removeOnComplete: { age: 3600, count: 10000 },
      removeOnFail: { age: 3600, count: 10000 },
    },
  );
  worker.on('closed', () => connection.disconnect());
  return worker;
}

function unavailable(e: unknown): never {
  throw e instanceof QueueUnavailableError ? e : new QueueUnavailableError((e as Error).message);
}

interface Pending {
  job: ServiceJob;
  hooks?: SubmitHooks;
  resolve: (r: ServiceResult) => void;
  reject: (e: unknown) => void;
  started: boolean;
}

export interface RedisQueueOptions {
  redis: RedisOptions;
  /** Jobs run by a worker inside this server (0: it only queues). */
  concurrency: number;
  capacity: number;
  /** Runs a job in this process: for the local worker and interactive sessions. */
  run: (job: ServiceJob) => Promise<ServiceResult>;
  tuning?: WorkerTuning;
  /** Throws for a job the local process would refuse at once (bad options), so it is refused before queueing, as in the embedded queue. */
  validate?: (job: ServiceJob) => void;
  /** How long a command may take before the request is refused as unavailable (ms). */
  commandTimeoutMs?: number;
}

export class RedisQueue implements JobQueue<ServiceJob, ServiceResult> {
  readonly capacity: number;
  /** For commands and rate limits; a request is refused (503) while it is not connected, and after commandTimeoutMs. */
  readonly client: Redis;
  private readonly queue: Queue;
  private readonly events: QueueEvents;
  private readonly eventsClient: Redis;
  private readonly worker?: Worker;
  /** Interactive jobs keep their streams in this process: they run here, never through Redis. */
  private readonly local?: MemoryQueue<ServiceJob, ServiceResult>;
  private readonly pending = new Map<string, Pending>();
  private closing = false;
  private waitingCount = 0;
  private activeCount = 0;
  private readonly poll: NodeJS.Timeout;
  private readonly timeoutMs: number;
  private readonly admitKeys: [string, string, string, string, string];

  constructor(private readonly o: RedisQueueOptions) {
    this.capacity = o.capacity;
    this.timeoutMs = o.commandTimeoutMs ?? 5000;
    this.client = new Redis({ ...o.redis, maxRetriesPerRequest: 1 });
    this.client.on('error', () => {}); // reported per request as 503; ioredis reconnects by itself
    this.client.defineCommand('brigAdmit', { numberOfKeys: 5, lua: ADMIT_SCRIPT });
    this.queue = new Queue(QUEUE_NAME, { connection: this.client, skipWaitingForReady: true });
    this.admitKeys = [this.queue.toKey('wait'), this.queue.toKey('prioritized'), this.queue.toKey('paused'), this.queue.toKey('brig-admitting'), this.queue.toKey('active')];
    this.queue.on('error', () => {});
    this.eventsClient = new Redis({ ...o.redis, maxRetriesPerRequest: null });
    this.eventsClient.on('error', () => {});
    this.events = new QueueEvents(QUEUE_NAME, { connection: this.eventsClient });
    this.events.on('error', () => {});
    this.events.on('active', ({ jobId }) => this.started(jobId));
    this.events.on('completed', ({ jobId, returnvalue }) => this.settle(jobId, returnvalue));
    this.events.on('failed', ({ jobId, failedReason }) => this.fail(jobId, failedReason));
    if (o.concurrency > 0) {
      this.worker = startBullWorker(o.redis, o.concurrency, o.run, o.tuning);
      this.worker.on('error', () => {});
      this.local = new MemoryQueue(o.run, o.concurrency, o.capacity);
    }
    // Depth for /healthz and /metrics, and a sweep for completions missed while the event stream was down.
    this.poll = setInterval(() => void this.refresh(), 1000);
    this.poll.unref();
  }

  /** Connected, and the local worker taking jobs; rejects after `timeoutMs` (the server still starts: requests get 503 until Redis answers). */
  async ready(timeoutMs = 5000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new QueueUnavailableError(`not ready in ${timeoutMs} ms`)), timeoutMs)));
    try {
      await Promise.race([Promise.all([this.queue.waitUntilReady(), this.events.waitUntilReady(), this.worker?.waitUntilReady(), this.refresh()]), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  get depth(): number {
    return this.waitingCount + (this.local?.depth ?? 0);
  }

  get active(): number {
    return this.activeCount + (this.local?.active ?? 0);
  }

  /** A Redis command that rejects with QueueUnavailableError after commandTimeoutMs (never a hang). */
  command<T>(p: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new QueueUnavailableError(`no answer in ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
  }

  /**
   * Refusals (closing, Redis not connected) are decided at once, as the
   * embedded queue's are. A full queue is decided in Redis, atomically
   * (ADMIT): every server's admissions are serialised there, so the cap
   * holds across any number of servers. onQueued fires once the add is
   * acknowledged: only then does the job outlive this server.
   */
  submit(job: ServiceJob, hooks?: SubmitHooks): Promise<ServiceResult> {
    if (this.closing) return Promise.reject(new QueueClosedError());
    if (job.kind === 'execute' && job.session) {
      if (!this.local) return Promise.reject(new Error('interactive sessions need workers in this server (brig serve --concurrency 1 or more)'));
      return this.local.submit(job, hooks);
    }
    try {
      this.o.validate?.(job);
    } catch (e) {
      return Promise.reject(e);
    }
    if (this.client.status !== 'ready') return Promise.reject(new QueueUnavailableError(`connection is ${this.client.status}`));
    const id = hooks?.jobId ?? randomUUID();
    // A job this server's own worker can start at once never counts against the waiting room: ADMIT counts
    // the worker's free slots in Redis, and lets them take at most this server's unstarted jobs and this one.
    const mostSlack = this.worker ? this.mineWaiting() + 1 : 0;
    // Registered before the add, so a completion that beats the add's reply is not missed.
    const result = new Promise<ServiceResult>((resolve, reject) => this.pending.set(id, { job, hooks, resolve, reject, started: false }));
    const admitted = (async () => {
      const [ok, waiting] = (await this.command(this.client.brigAdmit(...this.admitKeys, this.capacity, mostSlack, ADMIT_TICKET_MS, id, this.queue.toKey(''), this.worker ? this.o.concurrency : 0, this.worker ? `${this.worker.id}:` : '-'))) as [number, number];
      if (!ok) {
        this.waitingCount = waiting;
        throw new QueueFullError(this.capacity);
      }
      try {
        await this.command(this.queue.add('job', job, { jobId: id, attempts: 1, removeOnComplete: { age: 3600, count: 10000 }, removeOnFail: { age: 3600, count: 10000 } }));
      } finally {
        // The job is in the wait list now (or never will be): its ticket goes.
        this.client.zrem(this.admitKeys[3], id).catch(() => {});
      }
    })();
    return admitted.then(
      () => {
        hooks?.onQueued?.();
        return result;
      },
      (e) => {
        this.pending.delete(id);
        if (e instanceof QueueFullError) throw e;
        return unavailable(e);
      },
    );
  }

  /**
   * How a job ended, read from Redis (any server's job, by id): its result,
   * or why it failed; undefined while it waits or runs, or once it is gone.
   */
  async outcome(id: string): Promise<{ result: ServiceResult } | { failed: string } | undefined> {
    const j = await this.command(this.queue.getJob(id));
    if (!j?.finishedOn) return undefined;
    if (j.failedReason) return { failed: j.failedReason };
    if (j.returnvalue === undefined || j.returnvalue === null) return undefined;
    return { result: resultFromWire(j.data as ServiceJob, (typeof j.returnvalue === 'string' ? JSON.parse(j.returnvalue) : j.returnvalue) as Wire) };
  }

  /** This server's jobs not yet taken by a worker (exact: its own adds and their 'active' events). */
  private mineWaiting(): number {
    let n = 0;
    for (const p of this.pending.values()) if (!p.started) n++;
    return n;
  }

  private started(id: string): void {
    const p = this.pending.get(id);
    if (!p || p.started) return;
    p.started = true;
    p.hooks?.onStart?.();
  }

  private settle(id: string, value: unknown): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    this.started(id);
    try {
      const w = typeof value === 'string' ? JSON.parse(value) : value;
      p.resolve(resultFromWire(p.job, w as Wire));
    } catch (e) {
      p.reject(Object.assign(new Error(`job ${id}: unreadable result: ${(e as Error).message}`), { jobFailed: true }));
    }
    this.drained();
  }

  private fail(id: string, reason: string): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    p.reject(Object.assign(new Error(`job failed: ${reason}`), { jobFailed: true }));
    this.drained();
  }

  private async refresh(): Promise<void> {
    if (this.client.status !== 'ready') return;
    try {
      const counts = await this.command(this.queue.getJobCounts('waiting', 'prioritized', 'active'));
      this.waitingCount = (counts.waiting ?? 0) + (counts.prioritized ?? 0);
      this.activeCount = counts.active ?? 0;
      // Completions the event stream may have missed (Redis restarted, connection dropped).
      for (const id of [...this.pending.keys()].slice(0, 200)) {
        const j = await this.command(this.queue.getJob(id));
        if (!j) continue;
        if (j.finishedOn && j.returnvalue !== undefined && j.returnvalue !== null && !j.failedReason) this.settle(id, j.returnvalue);
        else if (j.finishedOn && j.failedReason) this.fail(id, j.failedReason);
        else if (j.processedOn) this.started(id);
      }
    } catch {
      // Redis away: the next tick tries again
    }
  }

  private idle: (() => void)[] = [];
  private drained(): void {
    if (this.closing && this.pending.size === 0) for (const f of this.idle.splice(0)) f();
  }

  async close(): Promise<void> {
    this.closing = true;
    // Requests still waiting on a job wait for it (while Redis answers), then everything is let go.
    if (this.pending.size)
      await new Promise<void>((resolve) => {
        this.idle.push(resolve);
        // Redis gone for good: the waiters are told rather than held forever.
        setTimeout(() => {
          for (const [id, p] of this.pending) p.reject(new QueueUnavailableError(`job ${id} unfinished at shutdown`));
          this.pending.clear();
          resolve();
        }, 60000).unref();
      });
    await this.local?.close();
    await this.worker?.close();
    clearInterval(this.poll);
    await Promise.allSettled([this.events.close(), this.queue.close()]);
    this.client.disconnect();
    this.eventsClient.disconnect();
  }
}
