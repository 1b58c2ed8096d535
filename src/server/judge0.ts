// Judge0 CE's API: the same paths, field names, units (seconds, KB),
// defaults, maximums and statuses as Judge0's own configuration, so clients
// that hard-code its language ids and read its statuses work unchanged.
import { randomUUID } from 'node:crypto';
import { constants as osConstants } from 'node:os';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { RunResult } from '../launch/sandbox.js';
import type { Judge0Config } from './config.js';
import { RequestError, decodeBase64, submitExecute, type ServiceContext } from './context.js';
import type { ExecuteJob, ExecuteResult } from './execute.js';
import { sendQueueError } from './piston.js';
import { QueueUnavailableError, RedisQueue } from './redis-queue.js';
import { judge0Name, type Runtime } from './runtimes.js';
import { unzip } from './unzip.js';

export const STATUSES: { id: number; description: string }[] = [
  { id: 1, description: 'In Queue' },
  { id: 2, description: 'Processing' },
  { id: 3, description: 'Accepted' },
  { id: 4, description: 'Wrong Answer' },
  { id: 5, description: 'Time Limit Exceeded' },
  { id: 6, description: 'Compilation Error' },
  { id: 7, description: 'Runtime Error (SIGSEGV)' },
  { id: 8, description: 'Runtime Error (SIGXFSZ)' },
  { id: 9, description: 'Runtime Error (SIGFPE)' },
  { id: 10, description: 'Runtime Error (SIGABRT)' },
  { id: 11, description: 'Runtime Error (NZEC)' },
  { id: 12, description: 'Runtime Error (Other)' },
  { id: 13, description: 'Internal Error' },
  { id: 14, description: 'Exec Format Error' },
];

const DEFAULT_FIELDS = ['token', 'time', 'memory', 'stdout', 'stderr', 'compile_output', 'message', 'status'];
const REQUEST_FIELDS = [
  'source_code', 'language_id', 'compiler_options', 'command_line_arguments', 'stdin', 'expected_output', 'cpu_time_limit', 'cpu_extra_time',
  'wall_time_limit', 'memory_limit', 'stack_limit', 'max_processes_and_or_threads', 'enable_per_process_and_thread_time_limit',
  'enable_per_process_and_thread_memory_limit', 'max_file_size', 'redirect_stderr_to_stdout', 'enable_network', 'number_of_runs',
  'additional_files', 'callback_url',
] as const;
const ALL_FIELDS = [...REQUEST_FIELDS, 'token', 'stdout', 'stderr', 'compile_output', 'message', 'status', 'status_id', 'time', 'wall_time', 'memory', 'exit_code', 'exit_signal', 'created_at', 'finished_at', 'language'];
const BASE64_FIELDS = new Set(['source_code', 'stdin', 'expected_output', 'stdout', 'stderr', 'compile_output', 'message']);

type Request = Partial<Record<(typeof REQUEST_FIELDS)[number], unknown>>;

/** A submission as kept for GET: plain data, so a store in Redis can hold it for every API server. */
interface StoredSubmission {
  token: string;
  request: Request & { source_code: string; stdin: string | null; expected_output: string | null };
  language: { id: number; name: string };
  status: { id: number; description: string };
  stdout: Buffer | null;
  stderr: Buffer | null;
  compile_output: Buffer | null;
  message: string | null;
  time: string | null;
  wall_time: string | null;
  memory: number | null;
  exit_code: number | null;
  exit_signal: number | null;
  created_at: string;
  finished_at: string | null;
}

/** A submission this server accepted, while it is under way here. */
interface Submission extends StoredSubmission {
  /** When it may be dropped (ms since the epoch); unset while running. */
  expires?: number;
  done: Promise<void>;
  /** The store's writes of this submission, in order (each writes its state at the time). */
  saved: Promise<void>;
}

/**
 * Where submissions are kept for GET /submissions/:token. Embedded: this
 * process's memory. With --redis: Redis, so any API server answers for any
 * token (as Judge0's servers share its database).
 */
interface SubmissionStore {
  save(s: Submission): Promise<void>;
  get(tokens: string[]): Promise<(StoredSubmission | null)[]>;
  close(): void;
}

class MemoryStore implements SubmissionStore {
  private readonly map = new Map<string, Submission>();
  // Finished submissions are kept for submission_cache_duration, then dropped.
  private readonly sweeper = setInterval(() => {
    const now = Date.now();
    for (const [token, s] of this.map) if (s.expires !== undefined && s.expires <= now) this.map.delete(token);
  }, 1000);
  constructor() {
    this.sweeper.unref();
  }
  async save(s: Submission): Promise<void> {
    this.map.set(s.token, s);
  }
  async get(tokens: string[]): Promise<(StoredSubmission | null)[]> {
    return tokens.map((t) => this.map.get(t) ?? null);
  }
  close(): void {
    clearInterval(this.sweeper);
  }
}

const BUFFER_FIELDS = ['stdout', 'stderr', 'compile_output'] as const;

/** Submissions in Redis (JSON, output base64), expiring submission_cache_duration after they finish. */
export class RedisSubmissionStore implements SubmissionStore {
  constructor(
    private readonly queue: RedisQueue,
    private readonly cacheSeconds: number,
  ) {}
  private key(token: string): string {
    return `brig:judge0:submission:${token}`;
  }
  async save(s: Submission): Promise<void> {
    const { done: _d, saved: _s, expires: _e, ...stored } = s;
    const json = JSON.stringify({ ...stored, ...Object.fromEntries(BUFFER_FIELDS.map((f) => [f, s[f] ? s[f]!.toString('base64') : null])) });
    // An unfinished one is kept while it may still wait (a day at least); a finished one for the cache's time.
    const ttl = (s.finished_at ? this.cacheSeconds : Math.max(this.cacheSeconds, 86400)) * 1000;
    // The final state must land: a record left at In Queue would be answered so for ever.
    for (let attempt = 0; ; attempt++) {
      try {
        await this.queue.command(this.queue.client.set(this.key(s.token), json, 'PX', ttl));
        return;
      } catch (e) {
        if (!s.finished_at || attempt >= 20) throw e instanceof QueueUnavailableError ? e : new QueueUnavailableError((e as Error).message);
        await new Promise((r) => setTimeout(r, 500).unref());
      }
    }
  }
  async get(tokens: string[]): Promise<(StoredSubmission | null)[]> {
    if (!tokens.length) return [];
    const raw = await this.queue.command(this.queue.client.mget(tokens.map((t) => this.key(t)))).catch((e: Error) => {
      throw e instanceof QueueUnavailableError ? e : new QueueUnavailableError(e.message);
    });
    return raw.map((j) => {
      if (j === null) return null;
      const o = JSON.parse(j) as Record<string, unknown>;
      for (const f of BUFFER_FIELDS) o[f] = typeof o[f] === 'string' ? Buffer.from(o[f] as string, 'base64') : null;
      return o as unknown as StoredSubmission;
    });
  }
  close(): void {}
}

type FieldErrors = Record<string, string[]>;

class ValidationFailed extends Error {
  constructor(readonly errors: FieldErrors) {
    super(Object.entries(errors).map(([k, v]) => `${k} ${v.join(', ')}`).join('; '));
  }
}

function status(id: number) {
  return STATUSES[id - 1];
}

/** Judge0's output check: both trimmed, each line's trailing whitespace stripped. */
export function sameOutput(expected: string, actual: string): boolean {
  const norm = (s: string) => s.trim().split('\n').map((l) => l.trimEnd()).join('\n');
  return norm(expected) === norm(actual);
}

const secs = (ms: number) => (ms / 1000).toFixed(3);

/** brig's verdict as Judge0's status (and its message, as isolate words them). */
export function judge0Status(r: RunResult, expected: string | null): { id: number; message: string | null } {
  const signo = r.signal ? osConstants.signals[r.signal] : 0;
  switch (r.status) {
    case 'ok':
      return { id: expected === null || sameOutput(expected, r.stdout.toString('utf8')) ? 3 : 4, message: null };
    case 'cpu-time-limit':
      return { id: 5, message: 'Time limit exceeded' };
    case 'wall-time-limit':
      return { id: 5, message: 'Time limit exceeded (wall clock)' };
    case 'exit-nonzero':
      return { id: 11, message: `Exited with error status ${r.exitCode}` };
    case 'file-size-limit':
    case 'output-limit':
      return { id: 8, message: r.status === 'output-limit' ? 'Output limit exceeded' : 'File size limit exceeded' };
    case 'memory-limit':
      // Judge0 has no memory verdict: isolate's cgroup kill is a runtime error.
      return { id: 12, message: 'Memory limit exceeded' };
    case 'seccomp-violation':
      return { id: 12, message: `Forbidden system call ${r.violation?.syscall ?? ''}`.trim() };
    case 'signaled': {
      const id = r.signal === 'SIGSEGV' ? 7 : r.signal === 'SIGXFSZ' ? 8 : r.signal === 'SIGFPE' ? 9 : r.signal === 'SIGABRT' ? 10 : 12;
      return { id, message: `Caught fatal signal ${signo}` };
    }
    default:
      // The program was there but is not a program the kernel can run.
      if (r.error?.step === 'exec' && r.error.code === 'ENOEXEC') return { id: 14, message: r.error.message };
      return { id: 13, message: r.error?.message ?? 'Internal error' };
  }
}

function isPresent(v: unknown): boolean {
  return v !== undefined && v !== null && v !== '';
}

/** Splits a command line the way a shell would for plain words and quotes (no expansions). */
function splitWords(s: string): string[] {
  const out: string[] = [];
  const re = /"((?:\\.|[^"\\])*)"|'([^']*)'|(\S+)/g;
  let m;
  while ((m = re.exec(s))) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2] ?? m[3]);
  return out;
}

/** A submission's fields, checked as Judge0 does, into a job; errors collected per field (422). */
function parseSubmission(body: unknown, ctx: ServiceContext, base64: boolean): { runtime: Runtime; job: ExecuteJob; request: Submission['request'] } {
  const cfg = ctx.config.judge0;
  const errors: FieldErrors = {};
  const err = (field: string, message: string) => (errors[field] ??= []).push(message);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ValidationFailed({ body: ['must be a JSON object'] });
  const b = body as Record<string, unknown>;
  for (const k of Object.keys(b)) if (!(REQUEST_FIELDS as readonly string[]).includes(k)) err(k, 'is not a submission field');
  const text = (field: string, max?: number): string | null => {
    const v = b[field];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'string') {
      err(field, 'must be a string');
      return null;
    }
    let s = v;
    if (base64 && BASE64_FIELDS.has(field)) {
      try {
        s = decodeBase64(field, v, 422).toString('utf8');
      } catch {
        err(field, 'is not valid base64');
        return null;
      }
    }
    if (max !== undefined && s.length > max) err(field, `is too long (maximum is ${max} characters)`);
    return s;
  };
  const source = text('source_code');
  if (source === null && !errors.source_code) err('source_code', "can't be blank");
  const stdin = text('stdin');
  const expected = text('expected_output');
  const compilerOptions = text('compiler_options', 512);
  const cmdline = text('command_line_arguments', 512);
  if (isPresent(compilerOptions) && !cfg.enable_compiler_options) err('compiler_options', 'setting compiler options is not allowed');
  if (isPresent(cmdline) && !cfg.enable_command_line_arguments) err('command_line_arguments', 'setting command line arguments is not allowed');
  let runtime: Runtime | undefined;
  if (b.language_id === undefined || b.language_id === null) err('language_id', "can't be blank");
  else {
    const id = Number(b.language_id);
    runtime = ctx.runtimes.find((r) => r.judge0.id === id);
    if (!runtime) err('language_id', `language with id ${String(b.language_id)} doesn't exist`);
  }
  if (isPresent(compilerOptions) && runtime && !runtime.compile) err('compiler_options', `setting compiler options is only allowed for compiled languages`);
  const number = (field: keyof Judge0Config & keyof Request, min: number, max: number, integer: boolean): number => {
    const v = b[field];
    const fallback = cfg[field] as number;
    if (v === undefined || v === null || v === '') return fallback;
    const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isFinite(n)) {
      err(field, 'is not a number');
      return fallback;
    }
    if (integer && !Number.isInteger(n)) err(field, 'must be an integer');
    else if (n < min) err(field, `must be greater than or equal to ${min}`);
    else if (n > max) err(field, `must be less than or equal to ${max}`);
    return n;
  };
  const cpu = number('cpu_time_limit', 0, cfg.max_cpu_time_limit, false);
  const extra = number('cpu_extra_time', 0, cfg.max_cpu_extra_time, false);
  const wall = number('wall_time_limit', 1, cfg.max_wall_time_limit, false);
  const memory = number('memory_limit', 2048, cfg.max_memory_limit, true);
  const stack = number('stack_limit', 0, cfg.max_stack_limit, true);
  const procs = number('max_processes_and_or_threads', 1, cfg.max_max_processes_and_or_threads, true);
  const fsize = number('max_file_size', 0, cfg.max_max_file_size, true);
  const runs = number('number_of_runs', 1, cfg.max_number_of_runs, true);
  if (cpu <= 0 && !errors.cpu_time_limit) err('cpu_time_limit', 'must be greater than 0');
  const flag = (field: string, fallback: boolean): boolean => {
    const v = b[field];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') err(field, 'must be true or false');
    return v === true;
  };
  const redirect = flag('redirect_stderr_to_stdout', cfg.redirect_stderr_to_stdout);
  const network = flag('enable_network', false);
  if (network && !cfg.allow_enable_network) err('enable_network', 'enabling network is not allowed');
  flag('enable_per_process_and_thread_time_limit', false);
  flag('enable_per_process_and_thread_memory_limit', false);
  let extraFiles: { name: string; content: string }[] = [];
  if (isPresent(b.additional_files)) {
    if (!cfg.enable_additional_files) err('additional_files', 'additional files are not allowed');
    else if (typeof b.additional_files !== 'string') err('additional_files', 'must be a base64-encoded zip archive');
    else {
      try {
        const zip = decodeBase64('additional_files', b.additional_files, 422);
        extraFiles = unzip(zip, cfg.max_extract_size * 1024).map((f) => ({ name: f.name, content: f.data.toString('base64') }));
      } catch (e) {
        err('additional_files', (e as Error).message);
      }
    }
  }
  if (isPresent(b.callback_url)) {
    let url: URL | undefined;
    try {
      url = new URL(String(b.callback_url));
    } catch {
      err('callback_url', 'is not a valid URL');
    }
    if (url) {
      if (url.protocol !== 'http:' && url.protocol !== 'https:') err('callback_url', 'must be an http or https URL');
      else if (!cfg.enable_callbacks) err('callback_url', 'callbacks are not enabled');
      else if (!callbackAllowed(url, cfg.callback_allowlist)) err('callback_url', `host ${url.host} is not on the callback allowlist`);
    }
  }
  if (Object.keys(errors).length) throw new ValidationFailed(errors);
  const rt = runtime!;
  // Judge0's program writes its output to files under max_file_size: a flood is
  // SIGXFSZ (8) there, output-limit (also 8) here.
  const limits = { wallTimeMs: wall * 1000, cpuTimeMs: cpu * 1000, extraCpuMs: extra * 1000, memoryBytes: memory * 1024, processes: procs, fileSizeBytes: fsize * 1024, stackBytes: stack * 1024, outputBytes: fsize * 1024 };
  const job: ExecuteJob = {
    language: rt.language,
    files: [{ name: rt.source, content: Buffer.from(source!, 'utf8').toString('base64') }, ...extraFiles.filter((f) => f.name !== rt.source)],
    stdin: stdin ?? '',
    args: cmdline ? splitWords(cmdline) : [],
    ...(compilerOptions ? { compilerOptions: splitWords(compilerOptions) } : {}),
    // The compiler gets Judge0's compile budget (isolate's defaults for it), not the program's.
    compile: { wallTimeMs: 15000, cpuTimeMs: 10000, fileSizeBytes: 64 << 20 },
    run: limits,
    redirectStderrToStdout: redirect,
    network,
    runs,
  };
  const request = { ...b, source_code: source!, stdin, expected_output: expected } as Submission['request'];
  return { runtime: rt, job, request };
}

/** Host (and port, if the entry gives one) on the allowlist; nothing is allowed by default. */
export function callbackAllowed(url: URL, allowlist: string[]): boolean {
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  return allowlist.some((entry) => {
    const m = /^(?:\[([^\]]+)\]|([^:]+))(?::(\d+))?$/.exec(entry.trim().toLowerCase());
    if (!m) return false;
    return (m[1] ?? m[2]) === host && (m[3] === undefined || m[3] === port);
  });
}

function finish(s: Submission, r: ExecuteResult, cfg: Judge0Config): void {
  s.finished_at = new Date().toISOString();
  s.expires = Date.now() + cfg.submission_cache_duration * 1000;
  if (r.compile && r.compile.status !== 'ok' && !r.run) {
    const c = r.compile;
    const tooLong = c.status === 'cpu-time-limit' || c.status === 'wall-time-limit';
    const out = Buffer.concat([c.stdout, c.stderr]);
    s.compile_output = out.length ? out : null;
    s.status = status(c.status === 'setup-error' ? 13 : 6);
    s.message = c.status === 'setup-error' ? (c.error?.message ?? null) : tooLong ? 'Compilation time limit exceeded' : c.status === 'exit-nonzero' ? `Exited with error status ${c.exitCode}` : null;
    return;
  }
  if (r.compile) {
    const out = Buffer.concat([r.compile.stdout, r.compile.stderr]);
    s.compile_output = out.length ? out : null;
  }
  const run = r.run!;
  const v = judge0Status(run, s.request.expected_output);
  s.status = status(v.id);
  s.message = v.message;
  s.stdout = run.stdout.length ? run.stdout : null;
  s.stderr = run.stderr.length ? run.stderr : null;
  // Judge0 reports the mean time and memory over number_of_runs.
  const all = r.allRuns ?? [run];
  const mean = (f: (x: RunResult) => number) => all.reduce((a, x) => a + f(x), 0) / all.length;
  s.time = secs(mean((x) => x.cpuTimeMs.user + x.cpuTimeMs.system));
  s.wall_time = secs(mean((x) => x.wallTimeMs));
  s.memory = Math.round(mean((x) => (x.memoryPeakBytes !== undefined ? x.memoryPeakBytes / 1024 : x.maxRssKb)));
  s.exit_code = run.exitCode ?? (run.status === 'setup-error' ? null : 0);
  s.exit_signal = run.signal ? osConstants.signals[run.signal] : null;
  if (run.signal) s.exit_code = null;
}

function internal(s: Submission, message: string): void {
  s.status = status(13);
  s.message = message;
  s.finished_at = new Date().toISOString();
}

function view(s: StoredSubmission, fields: string[], base64: boolean, cfg: Judge0Config): Record<string, unknown> {
  const enc = (v: Buffer | string | null): string | null => {
    if (v === null) return null;
    return base64 ? Buffer.from(v).toString('base64') : Buffer.isBuffer(v) ? v.toString('utf8') : v;
  };
  const out: Record<string, unknown> = {};
  for (const f of fields) {
    switch (f) {
      case 'token':
        out.token = s.token;
        break;
      case 'stdout':
      case 'stderr':
      case 'compile_output':
        out[f] = enc(s[f]);
        break;
      case 'message':
        out.message = enc(s.message);
        break;
      case 'status':
        out.status = s.status;
        break;
      case 'status_id':
        out.status_id = s.status.id;
        break;
      case 'language':
        out.language = s.language;
        break;
      case 'language_id':
        out.language_id = s.language.id;
        break;
      case 'source_code':
      case 'stdin':
      case 'expected_output':
        out[f] = enc(s.request[f] ?? null);
        break;
      case 'time':
      case 'wall_time':
      case 'memory':
      case 'exit_code':
      case 'exit_signal':
      case 'created_at':
      case 'finished_at':
        out[f] = s[f];
        break;
      default:
        // A limit the request left out is reported as the configured default it ran with.
        out[f] = (s.request as Record<string, unknown>)[f] ?? (cfg as unknown as Record<string, unknown>)[f] ?? null;
    }
  }
  return out;
}

function parseFields(q: string | undefined): string[] {
  if (q === undefined || q === '') return DEFAULT_FIELDS;
  if (q.trim() === '*') return ALL_FIELDS;
  const fields = q.split(',').map((f) => f.trim()).filter(Boolean);
  const unknown = fields.filter((f) => !ALL_FIELDS.includes(f));
  if (unknown.length) throw new RequestError(400, 'fields', `invalid fields: [${unknown.join(', ')}]`);
  return fields;
}

function bool(q: unknown): boolean {
  return q === 'true' || q === '1' || q === true;
}

export async function judge0Routes(app: FastifyInstance, opts: { ctx: ServiceContext }): Promise<void> {
  const { ctx } = opts;
  const cfg = ctx.config.judge0;
  const store: SubmissionStore = ctx.queue instanceof RedisQueue ? new RedisSubmissionStore(ctx.queue, cfg.submission_cache_duration) : new MemoryStore();
  app.addHook('onClose', async () => store.close());
  /** Writes the submission's state now, after the writes before it. */
  const persist = (s: Submission) => {
    s.saved = s.saved.then(() => store.save(s));
    // A write that failed is reported by whoever waits on it; the next write is tried regardless.
    const after = s.saved;
    s.saved = after.catch(() => {});
    return after;
  };

  /**
   * Submissions as stored; one stored unfinished whose job has ended in
   * Redis (the server that took it died before writing the end) is finished
   * here from the job's result, and stored so.
   */
  async function lookup(tokens: string[]): Promise<(StoredSubmission | null)[]> {
    const found = await store.get(tokens);
    const queue = ctx.queue;
    if (!(queue instanceof RedisQueue)) return found;
    return Promise.all(
      found.map(async (stored) => {
        if (!stored || stored.status.id > 2) return stored;
        const end = await queue.outcome(stored.token);
        if (!end) return stored;
        const s: Submission = { ...stored, done: Promise.resolve(), saved: Promise.resolve() };
        if ('result' in end) finish(s, end.result as ExecuteResult, cfg);
        else internal(s, `job failed: ${end.failed}`);
        await store.save(s).catch(() => {});
        return s;
      }),
    );
  }

  const fail = (reply: FastifyReply, e: unknown) => {
    if (e instanceof ValidationFailed) return reply.code(422).send(e.errors);
    if (e instanceof RequestError) return reply.code(e.statusCode).send({ error: e.message });
    return sendQueueError(reply, e, (message) => ({ error: message }));
  };

  async function callback(s: Submission, base64: boolean): Promise<void> {
    const url = s.request.callback_url as string | undefined;
    if (!url) return;
    const body = JSON.stringify(view(s, DEFAULT_FIELDS, base64, cfg));
    for (let attempt = 0; attempt < cfg.callbacks_max_tries; attempt++) {
      try {
        const res = await fetch(url, { method: 'PUT', body, headers: { 'content-type': 'application/json' }, signal: AbortSignal.timeout(cfg.callbacks_timeout * 1000), redirect: 'error' });
        await res.arrayBuffer().catch(() => {});
        if (res.ok) return;
      } catch {
        // tried again below, up to callbacks_max_tries
      }
    }
  }

  /**
   * Queues a submission. `accepted` resolves once the queue has taken the
   * job and the submission is in the store (so a GET, on any server, finds
   * it), or rejects (a full queue, Redis away) with nothing kept: a token is
   * never handed out for a job that is not queued.
   */
  function create(body: unknown, base64: boolean): { s: Submission; accepted: Promise<void> } {
    const { runtime, job, request } = parseSubmission(body, ctx, base64);
    const s: Submission = {
      token: randomUUID(),
      request,
      language: { id: runtime.judge0.id, name: judge0Name(runtime) },
      status: status(1),
      stdout: null,
      stderr: null,
      compile_output: null,
      message: null,
      time: null,
      wall_time: null,
      memory: null,
      exit_code: null,
      exit_signal: null,
      created_at: new Date().toISOString(),
      finished_at: null,
      done: Promise.resolve(),
      saved: Promise.resolve(),
    };
    let queued = false;
    let stored: Promise<void> | undefined;
    let onQueued!: () => void;
    const taken = new Promise<void>((resolve) => (onQueued = resolve));
    const result = submitExecute(ctx, job, {
      // In Redis the job's id is the token: any server can find how it ended.
      jobId: s.token,
      onQueued: () => {
        queued = true;
        stored = persist(s);
        onQueued();
      },
      onStart: () => {
        s.status = status(2);
        if (queued) void persist(s);
      },
    });
    s.done = result.then(
      (r) => finish(s, r, cfg),
      (e) => {
        internal(s, (e as Error).message);
        throw e;
      },
    );
    // The last state is stored whatever the end (a job that failed is Internal Error 13 there too).
    s.done.then(
      () => {
        void persist(s);
        const p = callback(s, base64).finally(() => ctx.pending.delete(p));
        ctx.pending.add(p);
      },
      () => {
        if (queued) void persist(s);
      },
    );
    // Refused before it was queued: the error; queued: once its first state is stored.
    const accepted = Promise.race([taken, result.then(() => undefined)]).then(() => stored);
    return { s, accepted };
  }

  app.post('/submissions', async (req, reply) => {
    const q = req.query as Record<string, string | undefined>;
    try {
      const base64 = bool(q.base64_encoded);
      const wait = bool(q.wait);
      const fields = parseFields(q.fields);
      const { s, accepted } = create(req.body, base64);
      try {
        await accepted;
      } catch (e) {
        // A full queue or Redis away is answered now (503), not by a token that never runs.
        return fail(reply, e);
      }
      if (!wait || !cfg.enable_wait_result) return reply.code(201).send({ token: s.token });
      // A job that failed once queued is answered as Judge0 would: Internal Error (13), its reason in message.
      await s.done.catch(() => {});
      await s.saved;
      return reply.code(201).send(view(s, fields, base64, cfg));
    } catch (e) {
      return fail(reply, e);
    }
  });

  app.post('/submissions/batch', async (req, reply) => {
    const q = req.query as Record<string, string | undefined>;
    if (!cfg.enable_batched_submissions) return reply.code(400).send({ error: 'batched submissions are not enabled' });
    const b = req.body as { submissions?: unknown } | null;
    if (!b || typeof b !== 'object' || !Array.isArray(b.submissions)) return reply.code(422).send({ submissions: ['must be an array'] });
    if (b.submissions.length > cfg.max_submission_batch_size) return reply.code(422).send({ submissions: [`size of the batch must be less than or equal to ${cfg.max_submission_batch_size}`] });
    const base64 = bool(q.base64_encoded);
    const out: unknown[] = [];
    for (const body of b.submissions) {
      try {
        const { s, accepted } = create(body, base64);
        try {
          await accepted;
        } catch (e) {
          out.push({ error: (e as Error).message });
          continue;
        }
        out.push({ token: s.token });
      } catch (e) {
        if (e instanceof ValidationFailed) out.push(e.errors);
        else throw e;
      }
    }
    return reply.code(201).send(out);
  });

  app.get('/submissions/batch', async (req, reply) => {
    const q = req.query as Record<string, string | undefined>;
    try {
      const fields = parseFields(q.fields);
      const tokens = (q.tokens ?? '').split(',').map((t) => t.trim()).filter(Boolean);
      if (!tokens.length) throw new RequestError(400, 'tokens', 'tokens is required: a comma-separated list');
      const base64 = bool(q.base64_encoded);
      const found = await lookup(tokens);
      return { submissions: found.map((s) => (s ? view(s, fields, base64, cfg) : null)) };
    } catch (e) {
      return fail(reply, e);
    }
  });

  app.get('/submissions/:token', async (req, reply) => {
    const q = req.query as Record<string, string | undefined>;
    try {
      const fields = parseFields(q.fields);
      const [s] = await lookup([(req.params as { token: string }).token]);
      if (!s) return reply.code(404).send({ error: 'Not Found' });
      return view(s, fields, bool(q.base64_encoded), cfg);
    } catch (e) {
      return fail(reply, e);
    }
  });

  app.get('/languages', async () => ctx.runtimes.map((r) => ({ id: r.judge0.id, name: judge0Name(r) })).sort((a, b) => a.name.localeCompare(b.name)));
  app.get('/languages/all', async () => ctx.runtimes.map((r) => ({ id: r.judge0.id, name: judge0Name(r), is_archived: false })));
  app.get('/languages/:id', async (req, reply) => {
    const id = Number((req.params as { id: string }).id);
    const r = ctx.runtimes.find((x) => x.judge0.id === id);
    if (!r) return reply.code(404).send({ error: 'Not Found' });
    const sh = (argv: string[]) => argv.map((a) => a.replaceAll('{source}', r.source).replaceAll('{stem}', r.source.replace(/\.[^.]*$/, ''))).join(' ');
    return { id, name: judge0Name(r), is_archived: false, source_file: r.source, compile_cmd: r.compile ? sh(r.compile) : null, run_cmd: sh(r.run) };
  });
  app.get('/statuses', async () => STATUSES);
  app.get('/about', async () => ({
    version: '1.13.1',
    homepage: 'https://github.com/brig-sandbox/brig',
    source_code: 'https://github.com/brig-sandbox/brig',
    maintainer: 'brig serve: a Judge0 CE-compatible API over brig sandboxes',
  }));
  app.get('/config_info', async () => ({
    maintenance_mode: false,
    enable_wait_result: cfg.enable_wait_result,
    enable_compiler_options: cfg.enable_compiler_options,
    allowed_languages_for_compile_options: [],
    enable_command_line_arguments: cfg.enable_command_line_arguments,
    enable_submission_delete: false,
    enable_callbacks: cfg.enable_callbacks,
    callbacks_max_tries: cfg.callbacks_max_tries,
    callbacks_timeout: cfg.callbacks_timeout,
    enable_additional_files: cfg.enable_additional_files,
    max_queue_size: ctx.config.max_queue_size,
    cpu_time_limit: cfg.cpu_time_limit,
    max_cpu_time_limit: cfg.max_cpu_time_limit,
    cpu_extra_time: cfg.cpu_extra_time,
    max_cpu_extra_time: cfg.max_cpu_extra_time,
    wall_time_limit: cfg.wall_time_limit,
    max_wall_time_limit: cfg.max_wall_time_limit,
    memory_limit: cfg.memory_limit,
    max_memory_limit: cfg.max_memory_limit,
    stack_limit: cfg.stack_limit,
    max_stack_limit: cfg.max_stack_limit,
    max_processes_and_or_threads: cfg.max_processes_and_or_threads,
    max_max_processes_and_or_threads: cfg.max_max_processes_and_or_threads,
    enable_per_process_and_thread_time_limit: false,
    allow_enable_per_process_and_thread_time_limit: false,
    enable_per_process_and_thread_memory_limit: false,
    allow_enable_per_process_and_thread_memory_limit: false,
    max_file_size: cfg.max_file_size,
    max_max_file_size: cfg.max_max_file_size,
    number_of_runs: cfg.number_of_runs,
    max_number_of_runs: cfg.max_number_of_runs,
    redirect_stderr_to_stdout: cfg.redirect_stderr_to_stdout,
    max_extract_size: cfg.max_extract_size,
    enable_batched_submissions: cfg.enable_batched_submissions,
    max_submission_batch_size: cfg.max_submission_batch_size,
    submission_cache_duration: cfg.submission_cache_duration,
    use_docs_as_homepage: false,
    allow_enable_network: cfg.allow_enable_network,
    enable_network: false,
  }));
}
