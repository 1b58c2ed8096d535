// One job: the client's files written into the slot of a compile sandbox
// (the slot writable at /box, the compiler's profile), compiled there, then
// moved into the slot of a run sandbox (read-only at /box, with the
// sandbox's own fresh /tmp; the judge profile under the language's). Both
// sandboxes come from warm pools kept per stage and sandbox shape: a pooled
// sandbox serves one run and its slot is a directory of its own, so no job
// sees another's files. Every slot is removed after the job, whatever
// happened.
import { closeSync, constants as fs, cpSync, mkdirSync, openSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { finished } from 'node:stream/promises';
import type { Readable, Writable } from 'node:stream';
import { constants as osConstants } from 'node:os';
import { bytesUnder } from '../launch/box.js';
import { signalProgram as signalInitChild } from '../container/proc.js';
import { native } from '../native.js';
import { OptionsError, setupErrorInfo } from '../errors.js';
import { createPool, type Pool, type PoolLease, type PoolRunOptions } from '../launch/pool.js';
import { run, setupFailure, type RunResult, type SandboxProcess } from '../launch/sandbox.js';
import type { SandboxOptions } from '../launch/options.js';
import type { Runtime } from './runtimes.js';

/** Limits of one stage, already checked against the service's ceilings. */
export interface StageLimits {
  wallTimeMs: number;
  cpuTimeMs: number;
  extraCpuMs?: number;
  /** Bytes; undefined keeps the profile's. */
  memoryBytes?: number;
  processes?: number;
  openFiles?: number;
  fileSizeBytes?: number;
  stackBytes?: number;
  /** Total bytes of stdout and stderr before the run is ended as output-limit. */
  outputBytes?: number;
}

/** A job as the queue carries it: plain JSON, so another process could run it. */
export interface ExecuteJob {
  /** The runtime's language (its key). */
  language: string;
  /** The entry file first; content base64. */
  files: { name: string; content: string }[];
  stdin: string;
  args: string[];
  compilerOptions?: string[];
  compile: StageLimits;
  run: StageLimits;
  redirectStderrToStdout?: boolean;
  network?: boolean;
  /** Run the program this many times (Judge0's number_of_runs). */
  runs?: number;
  /** An interactive job (Piston's WebSocket): its streams are the session's, in this process. */
  session?: string;
  /**
   * Keep the order in which stdout and stderr chunks arrived (Piston's
   * `output` is the two interleaved as the program wrote them): each stage's
   * result then carries `interleaving`.
   */
  interleave?: boolean;
}

/**
 * A stage's result as the service carries it: brig's RunResult, plus, for
 * an interleaving job, the order its output arrived in: run lengths of kept
 * bytes, positive for stdout and negative for stderr, in arrival order
 * (`[3, -5, 2]`: 3 bytes of stdout, then 5 of stderr, then 2 of stdout).
 * Plain JSON, so it crosses Redis with the result.
 */
export type StageResult = RunResult & { interleaving?: number[] };

export interface ExecuteResult {
  compile?: RunResult;
  /** Absent when the compile stage failed. */
  run?: RunResult;
  /** Every run, when runs > 1. */
  allRuns?: RunResult[];
}

/** The streams of an interactive job. */
export interface Session {
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
  onStage(stage: 'compile' | 'run'): void;
  onExit(stage: 'compile' | 'run', r: RunResult): void;
  /** Set by the executor: ends the running stage. */
  kill?: () => void;
  /** Set by the executor while the run stage runs: delivers a signal (by number) to the program. */
  signal?: (signo: number) => void;
}

/**
 * Delivers a signal to a sandbox's program (its init's child, as Docker
 * signals a container's first process), through a pidfd so that a pid
 * reused meanwhile is never hit. SIGKILL ends the sandbox as a whole. The
 * program may not have started yet, or be gone: then there is no one to tell.
 */
export function signalProgram(p: SandboxProcess, signo: number): void {
  if (signo === osConstants.signals.SIGKILL) {
    p.kill();
    return;
  }
  if (!p.pid) return;
  signalInitChild(p.pid, signo);
}

function expand(argv: string[], source: string): string[] {
  const stem = source.replace(/\.[^.]*$/, '');
  return argv.map((a) => a.replaceAll('{source}', source).replaceAll('{stem}', stem));
}

function stageOptions(l: StageLimits, profiles: string[], rt: Runtime): SandboxOptions {
  const floor = rt.limits ?? {};
  const o: SandboxOptions = {
    profile: profiles,
    wallTimeLimitMs: l.wallTimeMs,
    cpuTimeLimitMs: l.cpuTimeMs,
    extraTimeMs: (l.extraCpuMs ?? 0) + (floor.extraCpuMs ?? 0),
  };
  if (l.memoryBytes !== undefined) o.memory = Math.max(l.memoryBytes, floor.minMemoryBytes ?? 0);
  if (l.processes !== undefined) o.pids = Math.max(l.processes, floor.minProcesses ?? 0);
  if (l.outputBytes !== undefined) o.outputLimitBytes = l.outputBytes;
  const rlimits: NonNullable<SandboxOptions['rlimits']> = {};
  if (l.openFiles !== undefined) rlimits.nofile = l.openFiles;
  if (l.fileSizeBytes !== undefined) rlimits.fsize = l.fileSizeBytes;
  if (l.stackBytes !== undefined) rlimits.stack = l.stackBytes;
  if (Object.keys(rlimits).length) o.rlimits = rlimits;
  return o;
}

/** Most bytes a job's compile stage may leave in its slot (the size a box had). */
const SLOT_BYTES = 256 << 20;
const SLOT_WATCH_MS = 50;

/** Options a pooled sandbox takes per run; everything else picks (or makes) the pool. */
const PER_RUN = ['wallTimeLimitMs', 'cpuTimeLimitMs', 'extraTimeMs', 'outputLimitBytes'] as const;

/**
 * Warm pools for jobs: one per stage and sandbox shape (profiles, memory,
 * pids, rlimits, network), made on the first job that needs it, so jobs at
 * the runtime's default limits (nearly all) take sandboxes made ahead, and
 * a job with limits of its own gets a pool of its own. The least recently
 * used pool is closed past `maxPools`. `size` 0: every run starts cold.
 */
export class JobPools {
  private readonly pools = new Map<string, Pool>();
  private closed = false;
  /** Closes of evicted pools still ending their waiting sandboxes (close() waits for them). */
  private readonly closing = new Set<Promise<void>>();

  constructor(
    /** Where slot directories are made (private to the service). */
    private readonly root: string,
    private readonly size: number,
    private readonly maxPools = 32,
  ) {}

  /** A sandbox for one stage with its slot at /box: writable to compile, read-only to run. */
  lease(stage: 'compile' | 'run', options: SandboxOptions): PoolLease {
    const shape: Record<string, unknown> = { ...options };
    for (const k of PER_RUN) delete shape[k];
    return this.pool(`${stage} ${JSON.stringify(shape)}`, () => createPool({ ...(shape as SandboxOptions), size: this.size, slot: { target: '/box', readonly: stage === 'run', root: this.root } })).lease();
  }

  /**
   * brig's own run (POST /v1/runs): argv with a profile's options, in a
   * sandbox of the pool for those options (no slot: the run sees what its
   * profile gives it, as a cold run would). Options a pool cannot make ahead
   * (a network that needs pasta, a multi-id map) run cold, as before.
   */
  run(argv: string[], options: SandboxOptions, stdin: string): Promise<RunResult> {
    const shape: Record<string, unknown> = { ...options };
    const perRun: Record<string, unknown> = {};
    for (const k of [...PER_RUN, 'env'] as const) {
      if (shape[k] !== undefined) perRun[k] = shape[k];
      delete shape[k];
    }
    let pool: Pool;
    try {
      pool = this.pool(`plain ${JSON.stringify(shape)}`, () => createPool({ ...(shape as SandboxOptions), size: this.size }));
    } catch (e) {
      if (e instanceof OptionsError && !this.closed) return run(argv, { ...options, stdin, stdout: 'capture', stderr: 'capture' });
      throw e;
    }
    return pool.run(argv, { ...(perRun as PoolRunOptions), stdin });
  }

  /** The pool for `key`, made on first use; the least recently used past maxPools is closed. */
  private pool(key: string, make: () => Pool): Pool {
    if (this.closed) throw new Error('the service is closing');
    let pool = this.pools.get(key);
    if (pool) this.pools.delete(key); // re-inserted last: the map's order is least recently used first
    else pool = make();
    this.pools.set(key, pool);
    if (this.pools.size > this.maxPools) {
      const [oldKey, old] = this.pools.entries().next().value!;
      this.pools.delete(oldKey);
      const c = old.close().finally(() => this.closing.delete(c));
      this.closing.add(c);
    }
    return pool;
  }

  get stats(): { pools: number; made: number; taken: number; misses: number } {
    const t = { pools: this.pools.size, made: 0, taken: 0, misses: 0 };
    for (const p of this.pools.values()) {
      t.made += p.stats.made;
      t.taken += p.stats.taken;
      t.misses += p.stats.misses;
    }
    return t;
  }

  /** Ends every waiting sandbox and removes its slot; runs under way go on. */
  async close(): Promise<void> {
    this.closed = true;
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all([...pools.map((p) => p.close()), ...this.closing]);
  }
}

/**
 * Puts what `from` holds into `to`: moved (the last run of a job) or copied.
 * Names only: nothing the compiler left (symlinks included) is followed.
 */
function transfer(from: string, to: string, move: boolean): void {
  for (const name of readdirSync(from)) {
    if (move) renameSync(`${from}/${name}`, `${to}/${name}`);
    else cpSync(`${from}/${name}`, `${to}/${name}`, { recursive: true, verbatimSymlinks: true, errorOnExist: true, force: false });
  }
}

/** Writes a client's file into a fresh slot (names were checked: relative, no `..`). */
function writeInside(dir: string, name: string, data: Buffer): void {
  const p = join(dir, name);
  mkdirSync(dirname(p), { recursive: true });
  const fd = openSync(p, fs.O_WRONLY | fs.O_CREAT | fs.O_TRUNC | fs.O_NOFOLLOW, 0o644);
  try {
    writeFileSync(fd, data);
  } finally {
    closeSync(fd);
  }
}

/** Most bytes of each stream kept, as sandbox.run() keeps (its maxOutputBytes default). */
const KEEP_BYTES = 16 << 20;

/**
 * Starts a stage. Plain: brig's native capture. Interleaving: the two
 * streams come through pipes read here, and each chunk is recorded in the
 * order it was read, so the result says how stdout and stderr interleaved
 * (as far as two pipes can show it: what a program writes to one stream
 * before the reader wakes arrives as one chunk). The output limit is then
 * enforced here, as native capture does: past it the sandbox is ended and
 * the run is output-limit.
 */
function startStage(lease: PoolLease, argv: string[], o: PoolRunOptions & { stdin: string }, interleave: boolean): { p: SandboxProcess; result: Promise<StageResult> } {
  if (!interleave) {
    const p = lease.spawn(argv, { ...o, stdout: 'capture', stderr: 'capture' });
    return { p, result: p.wait() };
  }
  const p = lease.spawn(argv, { ...o, stdout: 'pipe', stderr: 'pipe' });
  const keep = Math.min(KEEP_BYTES, o.outputLimitBytes ?? KEEP_BYTES);
  const kept: [Buffer[], Buffer[]] = [[], []];
  const size = [0, 0];
  const truncated = [false, false];
  const order: number[] = [];
  let total = 0;
  let overLimit = false;
  const collect = (i: 0 | 1) => (chunk: Buffer) => {
    total += chunk.length;
    if (o.outputLimitBytes !== undefined && total > o.outputLimitBytes && !overLimit) {
      overLimit = true;
      p.kill();
    }
    const room = keep - size[i];
    const take = chunk.length <= room ? chunk : chunk.subarray(0, Math.max(0, room));
    if (take.length < chunk.length) truncated[i] = true;
    if (!take.length) return;
    kept[i].push(take);
    size[i] += take.length;
    // Adjacent chunks of one stream are one run.
    const signed = i === 0 ? take.length : -take.length;
    const last = order.length - 1;
    if (last >= 0 && Math.sign(order[last]) === Math.sign(signed)) order[last] += signed;
    else order.push(signed);
  };
  const streams = [p.stdout, p.stderr];
  streams.forEach((s, i) => s?.on('data', collect(i as 0 | 1)));
  const result = p.wait().then(async (r: StageResult) => {
    // The sandbox's processes are all gone: both pipes end once what they hold is read.
    await Promise.all(streams.map((s) => (s ? finished(s).catch(() => {}) : undefined)));
    r.stdout = Buffer.concat(kept[0]);
    r.stderr = Buffer.concat(kept[1]);
    r.stdoutTruncated = truncated[0];
    r.stderrTruncated = truncated[1];
    r.outputBytes = total;
    r.interleaving = order;
    // Native capture's order of verdicts: a setup failure, a forbidden call or the memory limit come first.
    if (overLimit && !['setup-error', 'output-error', 'seccomp-violation', 'memory-limit'].includes(r.status)) {
      r.status = 'output-limit';
      r.killed = true;
    }
    return r;
  });
  return { p, result };
}

/** The compile stage: the slot is writable, so its usage is watched as a box's was. */
async function compileIn(lease: PoolLease, argv: string[], o: SandboxOptions, interleave: boolean): Promise<StageResult> {
  const { wallTimeLimitMs, cpuTimeLimitMs, extraTimeMs, outputLimitBytes } = o;
  const { p, result } = startStage(lease, argv, { wallTimeLimitMs, cpuTimeLimitMs, extraTimeMs, outputLimitBytes, stdin: '' }, interleave);
  let filled = false;
  const watch = setInterval(() => {
    if (bytesUnder(lease.dir, SLOT_BYTES) > SLOT_BYTES) {
      filled = p.kill() || filled;
      clearInterval(watch);
    }
  }, SLOT_WATCH_MS);
  try {
    const r = await result;
    if (filled && r.status !== 'setup-error') {
      r.status = 'file-size-limit';
      r.killed = true;
    }
    return r;
  } finally {
    clearInterval(watch);
  }
}

/** Runs one job to its result. Never throws for the program's faults; a brig failure is a setup-error result. */
export async function executeJob(rt: Runtime, job: ExecuteJob, pools: JobPools, session?: Session): Promise<ExecuteResult> {
  const leases: PoolLease[] = [];
  const lease = (stage: 'compile' | 'run', o: SandboxOptions) => {
    const l = pools.lease(stage, o);
    leases.push(l);
    return l;
  };
  try {
    const source = job.files[0].name;
    const out: ExecuteResult = {};
    const runOptions = stageOptions(job.run, [...rt.profiles.run, ...(job.network ? ['network'] : [])], rt);
    runOptions.cwd = '/box';
    // Where the job's files are before each run gets its copy: the compile slot, or the first run's own.
    let filesDir: string | undefined;
    let firstRun: PoolLease | undefined;
    if (rt.compile) {
      session?.onStage('compile');
      const argv = [...expand(rt.compile, source), ...(job.compilerOptions ?? [])];
      const o = stageOptions(job.compile, rt.profiles.compile ?? ['default'], rt);
      o.cwd = '/box';
      // Every file the compiler writes is capped at the slot's size, as in a box.
      o.rlimits = { fsize: SLOT_BYTES, ...o.rlimits };
      const c = lease('compile', o);
      for (const f of job.files) writeInside(c.dir, f.name, Buffer.from(f.content, 'base64'));
      out.compile = await compileIn(c, argv, o, job.interleave === true);
      if (session) {
        session.stdout.write(out.compile.stdout);
        session.stderr.write(out.compile.stderr);
        session.onExit('compile', out.compile);
      }
      if (out.compile.status !== 'ok') return out;
      filesDir = c.dir;
    } else {
      firstRun = lease('run', runOptions);
      for (const f of job.files) writeInside(firstRun.dir, f.name, Buffer.from(f.content, 'base64'));
      filesDir = firstRun.dir;
    }
    session?.onStage('run');
    let argv = [...expand(rt.run, source), ...job.args];
    // sh's own redirection merges the two streams in the order they were written.
    if (job.redirectStderrToStdout) argv = ['/bin/sh', '-c', 'exec "$@" 2>&1', 'sh', ...argv];
    const { wallTimeLimitMs, cpuTimeLimitMs, extraTimeMs, outputLimitBytes } = runOptions;
    const perRun = { wallTimeLimitMs, cpuTimeLimitMs, extraTimeMs, outputLimitBytes };
    const runs = Math.max(1, job.runs ?? 1);
    const all: RunResult[] = [];
    for (let i = 0; i < runs; i++) {
      // Each run is a sandbox of its own with its own read-only copy of the
      // job's files: a run cannot change what the next run of this job sees.
      let r: PoolLease;
      if (i === 0 && firstRun) r = firstRun;
      else {
        r = lease('run', runOptions);
        transfer(filesDir, r.dir, i === runs - 1 && !firstRun);
      }
      if (session) {
        const p = r.spawn(argv, { ...perRun, stdin: 'pipe', stdout: 'pipe', stderr: 'pipe' });
        session.kill = () => p.kill();
        session.signal = (signo) => signalProgram(p, signo);
        if (p.stdin) session.stdin.pipe(p.stdin).on('error', () => {});
        p.stdout?.pipe(session.stdout, { end: false });
        p.stderr?.pipe(session.stderr, { end: false });
        const res = await p.wait();
        session.kill = undefined;
        session.signal = undefined;
        if (p.stdin) {
          session.stdin.unpipe(p.stdin);
          // The program is gone: its stdin pipe is closed here, not when the client ends the session.
          p.stdin.destroy();
        }
        // What the pipes still held reaches the client before the exit message
        // (the sandbox's processes are all gone, so both pipes end).
        await Promise.all([p.stdout, p.stderr].map((s) => (s ? finished(s).catch(() => {}) : undefined)));
        session.onExit('run', res);
        all.push(res);
      } else {
        all.push(await startStage(r, argv, { ...perRun, stdin: job.stdin }, job.interleave === true).result);
      }
      // The first run's slot holds the job's files for the later runs; any other is done with.
      if (r !== firstRun) {
        r.release();
        leases.splice(leases.indexOf(r), 1);
      }
    }
    out.run = all.find((r) => r.status !== 'ok') ?? all[all.length - 1];
    if (runs > 1) out.allRuns = all;
    return out;
  } catch (e) {
    // brig's own failure (a slot, an option the ceilings let through): the job's result says so.
    const info = setupErrorInfo('execute', (e as NodeJS.ErrnoException).errno ? Math.abs((e as NodeJS.ErrnoException).errno!) : 5, undefined, (e as Error).message);
    return { run: setupFailure(info) };
  } finally {
    for (const l of leases) l.release();
  }
}
