// One job: the client's files written into a fresh box, compiled there (the
// box writable, the compiler's profile), then run with the box read-only at
// /box and a fresh /tmp (the judge profile under the language's). The box
// is removed after the job, whatever happened.
import type { Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { createBox, type Box } from '../box.js';
import { setupErrorInfo } from '../errors.js';
import { setupFailure, spawn, type RunResult } from '../sandbox.js';
import type { SandboxOptions } from '../options.js';
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
}

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

/** Runs one job to its result. Never throws for the program's faults; a brig failure is a setup-error result. */
export async function executeJob(rt: Runtime, job: ExecuteJob, boxRoot: string, session?: Session): Promise<ExecuteResult> {
  let box: Box | undefined;
  try {
    box = await createBox({ root: boxRoot, size: '256m' });
    for (const f of job.files) box.writeFile(f.name, Buffer.from(f.content, 'base64'));
    const source = job.files[0].name;
    const out: ExecuteResult = {};
    if (rt.compile) {
      session?.onStage('compile');
      const argv = [...expand(rt.compile, source), ...(job.compilerOptions ?? [])];
      const o = stageOptions(job.compile, rt.profiles.compile ?? ['default'], rt);
      const p = box.run(argv, { ...o, stdin: '' });
      out.compile = await p;
      if (session) {
        session.stdout.write(out.compile.stdout);
        session.stderr.write(out.compile.stderr);
        session.onExit('compile', out.compile);
      }
      if (out.compile.status !== 'ok') return out;
    }
    session?.onStage('run');
    let argv = [...expand(rt.run, source), ...job.args];
    // sh's own redirection merges the two streams in the order they were written.
    if (job.redirectStderrToStdout) argv = ['/bin/sh', '-c', 'exec "$@" 2>&1', 'sh', ...argv];
    const base = stageOptions(job.run, [...rt.profiles.run, ...(job.network ? ['network'] : [])], rt);
    const o: SandboxOptions = {
      ...base,
      // The compiled program and its sources: read-only, so a run cannot change what the next run of this job sees.
      mounts: [{ source: box.path, target: '/box', readonly: true }],
      cwd: '/box',
    };
    const runs = Math.max(1, job.runs ?? 1);
    const all: RunResult[] = [];
    for (let i = 0; i < runs; i++) {
      if (session) {
        const p = spawn(argv, { ...o, stdin: 'pipe', stdout: 'pipe', stderr: 'pipe' });
        session.kill = () => p.kill();
        if (p.stdin) session.stdin.pipe(p.stdin).on('error', () => {});
        p.stdout?.pipe(session.stdout, { end: false });
        p.stderr?.pipe(session.stderr, { end: false });
        const r = await p.wait();
        session.kill = undefined;
        if (p.stdin) {
          session.stdin.unpipe(p.stdin);
          // The program is gone: its stdin pipe is closed here, not when the client ends the session.
          p.stdin.destroy();
        }
        // What the pipes still held reaches the client before the exit message
        // (the sandbox's processes are all gone, so both pipes end).
        await Promise.all([p.stdout, p.stderr].map((r) => (r ? finished(r).catch(() => {}) : undefined)));
        session.onExit('run', r);
        all.push(r);
      } else {
        const p = spawn(argv, { ...o, stdin: job.stdin, stdout: 'capture', stderr: 'capture' });
        all.push(await p.wait());
      }
    }
    out.run = all.find((r) => r.status !== 'ok') ?? all[all.length - 1];
    if (runs > 1) out.allRuns = all;
    return out;
  } catch (e) {
    // brig's own failure (the box, an option the ceilings let through): the job's result says so.
    const info = setupErrorInfo('execute', (e as NodeJS.ErrnoException).errno ? Math.abs((e as NodeJS.ErrnoException).errno!) : 5, undefined, (e as Error).message);
    return { run: setupFailure(info) };
  } finally {
    box?.destroy();
  }
}
