// What every route plugin is given: the configuration, the runtimes, the
// queue and the metrics. Routes never run sandboxes themselves.
import { performance } from 'node:perf_hooks';
import type { RunResult } from '../launch/sandbox.js';
import type { ServeConfig } from './config.js';
import type { ExecuteJob, ExecuteResult, Session } from './execute.js';
import type { Metrics } from './metrics.js';
import { QueueClosedError, QueueFullError, type JobQueue, type SubmitHooks } from './queue.js';
import type { Runtime, UnavailableRuntime } from './runtimes.js';

/** brig's own run (POST /v1/runs): argv and the options a profile may hold. */
export interface RunJob {
  kind: 'run';
  argv: string[];
  options: Record<string, unknown>;
  stdin: string;
}

export type ServiceJob = ({ kind: 'execute' } & ExecuteJob) | RunJob;
export type ServiceResult = ExecuteResult | RunResult;

export interface ServiceContext {
  config: ServeConfig;
  runtimes: Runtime[];
  unavailable: UnavailableRuntime[];
  queue: JobQueue<ServiceJob, ServiceResult>;
  metrics: Metrics;
  /** Interactive sessions (Piston's WebSocket), by id: their streams stay in this process. */
  sessions: Map<string, Session>;
  /** The warm pools this process's jobs run from (stats for /healthz). */
  pools?: { readonly stats: { pools: number; made: number; taken: number; misses: number } };
  /** Work that must finish before shutdown completes (callbacks in flight). */
  pending: Set<Promise<unknown>>;
  closing: boolean;
}

/** A 4xx the adapters turn into their own error shape. */
export class RequestError extends Error {
  constructor(
    readonly statusCode: number,
    readonly field: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

function statusOf(r: ExecuteResult): string {
  if (r.compile && r.compile.status !== 'ok' && !r.run) return 'compile-error';
  return r.run?.status ?? 'setup-error';
}

/** Queues an execute job and records it in the metrics. QueueFullError and QueueClosedError pass through. */
export async function submitExecute(ctx: ServiceContext, job: ExecuteJob, hooks?: SubmitHooks): Promise<ExecuteResult> {
  let started = 0;
  try {
    const r = (await ctx.queue.submit({ kind: 'execute', ...job }, { jobId: hooks?.jobId, onQueued: hooks?.onQueued, onStart: () => ((started = performance.now()), hooks?.onStart?.()) })) as ExecuteResult;
    ctx.metrics.runs.inc({ status: statusOf(r), language: job.language });
    ctx.metrics.runSeconds.observe({ language: job.language }, (performance.now() - started) / 1000);
    return r;
  } catch (e) {
    if (e instanceof QueueFullError) ctx.metrics.rejected.inc({ reason: 'queue-full' });
    if (e instanceof QueueClosedError) ctx.metrics.rejected.inc({ reason: 'closing' });
    throw e;
  }
}

/** A relative path that stays inside the job's directory. */
export function checkFileName(field: string, name: unknown): string {
  if (typeof name !== 'string' || !name) throw new RequestError(400, field, `${field} must be a non-empty string`);
  if (name.includes('\0') || name.startsWith('/') || name.split('/').some((p) => p === '..' || p === '.' || p === ''))
    throw new RequestError(400, field, `${field} must be a relative path inside the job's directory, got ${JSON.stringify(name)}`);
  if (name.length > 255) throw new RequestError(400, field, `${field} is longer than 255 characters`);
  return name;
}

/** Strict base64 (RFC 4648, padding optional, whitespace ignored as Judge0 and Piston's decoders do). */
export function decodeBase64(field: string, v: string, status = 400): Buffer {
  const s = v.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 === 1) throw new RequestError(status, field, `${field} is not valid base64`);
  return Buffer.from(s, 'base64');
}
