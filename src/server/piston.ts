// Piston API v2: the paths, fields, defaults, status codes and response
// shape of Piston's own code (api/src/api/v2.js, api/src/job.js), so its
// clients (the piston-client package among them) work unchanged.
import { randomUUID } from 'node:crypto';
import { PassThrough } from 'node:stream';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ExecuteJob, ExecuteResult, Session, StageLimits, StageResult } from './execute.js';
import { checkFileName, RequestError, submitExecute, type ServiceContext } from './context.js';
import { QueueClosedError, QueueFullError } from './queue.js';
import { findRuntime, type Runtime } from './runtimes.js';
import type { PistonConfig } from './config.js';

export interface PistonStage {
  stdout: string;
  stderr: string;
  output: string;
  code: number | null;
  signal: string | null;
  message: string | null;
  status: 'RE' | 'SG' | 'TO' | 'OL' | 'EL' | 'XX' | null;
  cpu_time: number;
  wall_time: number;
  memory: number;
}

const LIMIT_FIELDS = ['compile_timeout', 'run_timeout', 'compile_cpu_time', 'run_cpu_time', 'compile_memory_limit', 'run_memory_limit'] as const;

function bad(field: string, message: string): never {
  throw new RequestError(400, field, message);
}

/** Piston's request, checked: the runtime and the job, or a RequestError naming the field. */
export function parsePistonRequest(body: unknown, ctx: ServiceContext): { runtime: Runtime; job: ExecuteJob } {
  const cfg = ctx.config.piston;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) bad('body', 'the request body must be a JSON object');
  const b = body as Record<string, unknown>;
  if (typeof b.language !== 'string') bad('language', 'language is required as a string');
  if (typeof b.version !== 'string') bad('version', 'version is required as a string');
  if (!Array.isArray(b.files)) bad('files', 'files is required as an array');
  if (!b.files.length) bad('files', 'files must contain at least one file');
  if (b.files.length > ctx.config.max_files) bad('files', `files cannot hold more than ${ctx.config.max_files} files`);
  const runtime = findRuntime(ctx.runtimes, b.language, b.version);
  if (!runtime) bad('language', `${b.language}-${b.version} runtime is unknown`);
  const names = new Set<string>();
  const files = b.files.map((f: unknown, i: number) => {
    const field = `files[${i}]`;
    if (typeof f !== 'object' || f === null) bad(field, `${field} must be an object`);
    const file = f as Record<string, unknown>;
    if (typeof file.content !== 'string') bad(`${field}.content`, `${field}.content is required as a string`);
    const encoding = file.encoding ?? 'utf8';
    if (encoding !== 'utf8' && encoding !== 'base64' && encoding !== 'hex') bad(`${field}.encoding`, `${field}.encoding must be one of utf8, base64, hex`);
    let data: Buffer;
    if (encoding === 'base64') {
      const s = file.content.replace(/\s+/g, '');
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 === 1) bad(`${field}.content`, `${field}.content is not valid base64`);
      data = Buffer.from(s, 'base64');
    } else if (encoding === 'hex') {
      if (!/^([0-9a-fA-F]{2})*$/.test(file.content)) bad(`${field}.content`, `${field}.content is not valid hex`);
      data = Buffer.from(file.content, 'hex');
    } else data = Buffer.from(file.content, 'utf8');
    let name = file.name === undefined || file.name === null || file.name === '' ? undefined : checkFileName(`${field}.name`, file.name);
    // The entry file is what the toolchain is pointed at: where the client's
    // name would not be recognised (gcc and file0.code), the runtime's is used.
    if (i === 0 && (name === undefined || extension(name) !== extension(runtime.source))) name = runtime.source;
    name ??= `file${i}.code`;
    if (names.has(name)) bad(`${field}.name`, `${field}.name ${JSON.stringify(name)} is given twice`);
    names.add(name);
    return { name, content: data.toString('base64'), encoding };
  });
  if (!files.some((f) => f.encoding === 'utf8')) bad('files', 'files must include at least one utf8 encoded file');
  if (b.stdin !== undefined && typeof b.stdin !== 'string') bad('stdin', 'stdin must be a string');
  if (b.args !== undefined && (!Array.isArray(b.args) || b.args.some((a) => typeof a !== 'string'))) bad('args', 'args must be an array of strings');
  const limits: Record<string, number | undefined> = {};
  for (const key of LIMIT_FIELDS) {
    const configured = cfg[key];
    const value = b[key];
    if (value === undefined || value === null || value === 0) {
      limits[key] = configured;
      continue;
    }
    if (typeof value !== 'number' || !Number.isFinite(value)) bad(key, `${key} must be a number`);
    // -1 is "no limit of the request's own" for memory (piston-client sends it): the configured one applies.
    if (value === -1 && key.endsWith('memory_limit')) {
      limits[key] = configured;
      continue;
    }
    if (value < 0) bad(key, `${key} cannot be negative`);
    if (configured >= 0 && value > configured) bad(key, `${key} cannot exceed the configured limit of ${configured}`);
    limits[key] = value;
  }
  const stage = (timeout: number, cpu: number, memory: number): StageLimits => ({
    wallTimeMs: timeout,
    cpuTimeMs: cpu,
    ...(memory >= 0 ? { memoryBytes: memory } : {}),
    processes: cfg.max_process_count,
    openFiles: cfg.max_open_files,
    fileSizeBytes: cfg.max_file_size,
    // Each stream is cut at output_max_size; a program writing on past twice that is ended.
    outputBytes: cfg.output_max_size * 2,
  });
  return {
    runtime,
    job: {
      language: runtime.language,
      files: files.map(({ name, content }) => ({ name, content })),
      // Piston appends a newline to stdin the way a terminal line would end.
      stdin: typeof b.stdin === 'string' && b.stdin.length ? b.stdin + (b.stdin.endsWith('\n') ? '' : '\n') : '',
      args: (b.args as string[] | undefined) ?? [],
      compile: stage(limits.compile_timeout!, limits.compile_cpu_time!, limits.compile_memory_limit!),
      run: stage(limits.run_timeout!, limits.run_cpu_time!, limits.run_memory_limit!),
      // Piston's output is stdout and stderr in the order they were written.
      interleave: true,
    },
  };
}

function extension(name: string): string {
  const dot = name.lastIndexOf('.');
  return dot < 0 ? '' : name.slice(dot);
}

function cut(b: Buffer, max: number): string {
  return (b.length > max ? b.subarray(0, max) : b).toString('utf8');
}

/**
 * Piston's `output`: stdout and stderr as they arrived, each stream's part
 * cut where the stream itself is cut. Without an arrival order (a result
 * from a worker that did not keep one), stdout then stderr.
 */
export function interleavedOutput(r: StageResult, max: number): string {
  if (!r.interleaving) return cut(r.stdout, max) + cut(r.stderr, max);
  const parts: Buffer[] = [];
  const at = [0, 0];
  for (const n of r.interleaving) {
    const i = n > 0 ? 0 : 1;
    const from = i === 0 ? r.stdout : r.stderr;
    const end = Math.min(at[i] + Math.abs(n), from.length, max);
    if (end > at[i]) parts.push(from.subarray(at[i], end));
    at[i] += Math.abs(n);
  }
  return Buffer.concat(parts).toString('utf8');
}

/** A brig result as Piston reports a stage. */
export function pistonStage(r: StageResult, cfg: PistonConfig): PistonStage {
  const max = cfg.output_max_size;
  const stdout = cut(r.stdout, max);
  const stderr = cut(r.stderr, max);
  let status: PistonStage['status'] = null;
  let message: string | null = null;
  let signal: string | null = r.signal;
  const overOut = r.stdout.length > max || r.stdoutTruncated;
  const overErr = r.stderr.length > max || r.stderrTruncated;
  switch (r.status) {
    case 'ok':
      if (overOut || overErr) [status, message] = overOut ? ['OL', 'stdout length exceeded'] : ['EL', 'stderr length exceeded'];
      break;
    case 'output-limit':
      [status, message] = overOut || r.stdout.length >= r.stderr.length ? ['OL', 'stdout length exceeded'] : ['EL', 'stderr length exceeded'];
      signal = 'SIGKILL';
      break;
    case 'exit-nonzero':
      [status, message] = ['RE', `Exited with error status ${r.exitCode}`];
      break;
    case 'signaled':
      [status, message] = ['SG', `Caught fatal signal ${r.signal}`];
      break;
    case 'cpu-time-limit':
    case 'wall-time-limit':
      [status, message] = ['TO', r.status === 'cpu-time-limit' ? 'Time limit exceeded' : 'Time limit exceeded (wall clock)'];
      signal = 'SIGKILL';
      break;
    case 'memory-limit':
      [status, message] = ['SG', 'Memory limit exceeded'];
      signal = 'SIGKILL';
      break;
    case 'file-size-limit':
      [status, message] = ['SG', 'File size limit exceeded'];
      signal ??= 'SIGXFSZ';
      break;
    case 'seccomp-violation':
      [status, message] = ['SG', `Forbidden system call ${r.violation?.syscall ?? ''}`.trim()];
      signal ??= 'SIGSYS';
      break;
    default:
      [status, message] = ['XX', r.error?.message ?? 'Internal error'];
  }
  return {
    stdout,
    stderr,
    // The two streams in the order the program wrote them (as far as its pipes show it).
    output: interleavedOutput(r, max),
    code: r.exitCode,
    signal,
    message,
    status,
    cpu_time: Math.round(r.cpuTimeMs.user + r.cpuTimeMs.system),
    wall_time: Math.round(r.wallTimeMs),
    memory: r.memoryPeakBytes ?? r.maxRssKb * 1024,
  };
}

export function pistonResponse(rt: Runtime, r: ExecuteResult, cfg: PistonConfig) {
  const compile = r.compile ? pistonStage(r.compile, cfg) : undefined;
  // The run stage never started (the compile failed): Piston reports the compile stage as run too.
  const run = r.run ? pistonStage(r.run, cfg) : compile!;
  return { language: rt.language, version: rt.detectedVersion, run, ...(compile ? { compile } : {}) };
}

export function sendQueueError(reply: FastifyReply, e: unknown, shape: (message: string) => object): FastifyReply {
  if (e instanceof QueueFullError) return reply.code(503).header('Retry-After', '1').send(shape(e.message));
  if (e instanceof QueueClosedError) return reply.code(503).header('Retry-After', '5').send(shape(e.message));
  throw e;
}

function pistonError(reply: FastifyReply, e: unknown): FastifyReply {
  if (e instanceof RequestError) return reply.code(e.statusCode).send({ message: e.message });
  return sendQueueError(reply, e, (message) => ({ message }));
}

// Piston's close codes.
const CLOSE = {
  alreadyInitialised: [4000, 'Already Initialized'],
  initTimeout: [4001, 'Initialization Timeout'],
  notifiedError: [4002, 'Notified Error'],
  notInitialised: [4003, 'Not yet Initialized'],
  stdinOnly: [4004, 'Can only write to stdin'],
  badSignal: [4005, 'Invalid signal'],
  done: [4999, 'Job Completed'],
} as const;

// The signal names Piston accepts (its globals.js), by number.
const SIGNALS = new Map<string, number>([
  ...['SIGHUP', 'SIGINT', 'SIGQUIT', 'SIGILL', 'SIGTRAP', 'SIGABRT', 'SIGBUS', 'SIGFPE', 'SIGKILL', 'SIGUSR1', 'SIGSEGV', 'SIGUSR2', 'SIGPIPE', 'SIGALRM', 'SIGTERM', 'SIGSTKFLT', 'SIGCHLD', 'SIGCONT', 'SIGSTOP', 'SIGTSTP', 'SIGTTIN', 'SIGTTOU', 'SIGURG', 'SIGXCPU', 'SIGXFSZ', 'SIGVTALRM', 'SIGPROF', 'SIGWINCH', 'SIGIO', 'SIGPWR', 'SIGSYS'].map((n, i) => [n, i + 1] as [string, number]),
  ...Array.from({ length: 16 }, (_, i) => [i ? `SIGRTMIN+${i}` : 'SIGRTMIN', 34 + i] as [string, number]),
  ...Array.from({ length: 14 }, (_, i) => [`SIGRTMAX-${14 - i}`, 50 + i] as [string, number]),
  ['SIGRTMAX', 64],
]);

export async function pistonRoutes(app: FastifyInstance, opts: { ctx: ServiceContext }): Promise<void> {
  const { ctx } = opts;

  app.get('/api/v2/runtimes', async () =>
    ctx.runtimes.map((r) => ({ language: r.language, version: r.detectedVersion, aliases: r.aliases, ...(r.runtime ? { runtime: r.runtime } : {}) })),
  );

  // Packages are the host's toolchains: listed, and "installing" one that is there is a no-op.
  app.get('/api/v2/packages', async () => ctx.runtimes.map((r) => ({ language: r.language, language_version: r.detectedVersion, installed: true })));
  const packageOp = (verb: 'install' | 'uninstall') => async (req: { body: unknown }, reply: FastifyReply) => {
    const b = (req.body ?? {}) as Record<string, unknown>;
    if (typeof b.language !== 'string') return reply.code(400).send({ message: 'language is required as a string' });
    if (typeof b.version !== 'string') return reply.code(400).send({ message: 'version is required as a string' });
    const rt = findRuntime(ctx.runtimes, b.language, b.version);
    if (!rt) return reply.code(404).send({ message: `Requested package ${b.language}-${b.version} does not exist` });
    if (verb === 'uninstall') return reply.code(400).send({ message: `${rt.language}-${rt.detectedVersion} is the host's toolchain: brig serve does not remove it` });
    return { language: rt.language, version: rt.detectedVersion };
  };
  app.post('/api/v2/packages', packageOp('install'));
  app.delete('/api/v2/packages', packageOp('uninstall'));

  app.post('/api/v2/execute', async (req, reply) => {
    try {
      const { runtime, job } = parsePistonRequest(req.body, ctx);
      const r = await submitExecute(ctx, job);
      return pistonResponse(runtime, r, ctx.config.piston);
    } catch (e) {
      return pistonError(reply, e);
    }
  });

  app.get('/api/v2/connect', { websocket: true }, (socket, req) => {
    let state: 'new' | 'running' | 'done' = 'new';
    const id = randomUUID();
    const stdin = new PassThrough();
    const send = (m: object) => {
      if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(m));
    };
    const close = ([code, reason]: readonly [number, string]) => {
      state = 'done';
      stdin.end();
      if (socket.readyState === socket.OPEN) socket.close(code, reason);
    };
    const initTimer = setTimeout(() => state === 'new' && close(CLOSE.initTimeout), 1000);
    const stream = (name: 'stdout' | 'stderr') =>
      new PassThrough().on('data', (d: Buffer) => send({ type: 'data', stream: name, data: d.toString('utf8') }));
    const session: Session = {
      stdin,
      stdout: stream('stdout'),
      stderr: stream('stderr'),
      onStage: (stage) => send({ type: 'stage', stage }),
      onExit: (stage, r) => send({ type: 'exit', stage, code: r.exitCode, signal: pistonStage(r, ctx.config.piston).signal }),
    };
    socket.on('close', () => {
      clearTimeout(initTimer);
      session.kill?.();
      stdin.end();
      state = 'done';
    });
    socket.on('message', async (raw: Buffer) => {
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(raw.toString('utf8'));
      } catch {
        send({ type: 'error', message: 'message is not JSON' });
        return close(CLOSE.notifiedError);
      }
      if (msg.type === 'init') {
        if (state !== 'new') return close(CLOSE.alreadyInitialised);
        clearTimeout(initTimer);
        let parsed;
        try {
          parsed = parsePistonRequest(msg, ctx);
        } catch (e) {
          send({ type: 'error', message: (e as Error).message });
          return close(CLOSE.notifiedError);
        }
        state = 'running';
        const { runtime, job } = parsed;
        send({ type: 'runtime', language: runtime.language, version: runtime.detectedVersion });
        ctx.sessions.set(id, session);
        if (job.stdin) stdin.write(job.stdin);
        try {
          await submitExecute(ctx, { ...job, session: id });
          close(CLOSE.done);
        } catch (e) {
          send({ type: 'error', message: (e as Error).message });
          close(CLOSE.notifiedError);
        } finally {
          ctx.sessions.delete(id);
        }
        return;
      }
      if (state !== 'running') return close(CLOSE.notInitialised);
      if (msg.type === 'data') {
        if (msg.stream !== 'stdin') return close(CLOSE.stdinOnly);
        if (typeof msg.data === 'string') stdin.write(msg.data);
        return;
      }
      if (msg.type === 'signal') {
        const signo = typeof msg.signal === 'string' ? SIGNALS.get(msg.signal) : undefined;
        if (signo === undefined) return close(CLOSE.badSignal);
        // To the program itself (it may trap it); SIGKILL ends the whole sandbox.
        session.signal?.(signo);
        return;
      }
      send({ type: 'error', message: `unknown message type ${JSON.stringify(msg.type)}` });
      close(CLOSE.notifiedError);
    });
    void req;
  });
}
