// A worker takes jobs from a shared Redis that any API server (or anyone
// with its password) can write to: it re-checks each job against its own
// configuration before running it, and refuses what no adapter of its
// configuration could have asked for. A refused job is a setup-error result
// (Judge0's Internal Error 13) naming the field, never a retry.
import { setupErrorInfo } from '../errors.js';
import { setupFailure } from '../launch/sandbox.js';
import type { ServeConfig } from './config.js';
import type { ServiceJob, ServiceResult } from './context.js';
import type { StageLimits } from './execute.js';
import type { Runtime } from './runtimes.js';

/** Options /v1/runs lets through (runs.ts's list) plus the profile names. */
const RUN_OPTIONS = new Set(['cpuTimeLimitMs', 'wallTimeLimitMs', 'extraTimeMs', 'memory', 'pids', 'outputLimitBytes', 'env', 'cwd', 'hostname', 'profile']);

/** The most any adapter of this configuration could ask for, per stage limit. */
function stageCeilings(c: ServeConfig): Required<StageLimits> {
  const p = c.piston;
  const j = c.judge0;
  // Judge0's compile stage has fixed limits (judge0.ts): 15 s wall, 10 s CPU, 64 MiB files.
  return {
    wallTimeMs: Math.max(p.compile_timeout, p.run_timeout, j.max_wall_time_limit * 1000, 15000),
    cpuTimeMs: Math.max(p.compile_cpu_time, p.run_cpu_time, j.max_cpu_time_limit * 1000, 10000),
    extraCpuMs: j.max_cpu_extra_time * 1000,
    memoryBytes: Math.max(p.compile_memory_limit, p.run_memory_limit, j.max_memory_limit * 1024),
    processes: Math.max(p.max_process_count, j.max_max_processes_and_or_threads),
    openFiles: p.max_open_files,
    fileSizeBytes: Math.max(p.max_file_size, j.max_max_file_size * 1024, 64 << 20),
    stackBytes: j.max_stack_limit * 1024,
    outputBytes: Math.max(p.output_max_size * 2, j.max_max_file_size * 1024),
  };
}

/** Why this worker will not run the job, or undefined when it will. */
export function refuseReason(job: ServiceJob, config: ServeConfig, runtimes: Map<string, Runtime>): string | undefined {
  if (!job || typeof job !== 'object') return 'job: not an object';
  if (job.kind === 'run') {
    if (!Array.isArray(job.argv) || !job.argv.length || job.argv.some((a) => typeof a !== 'string')) return 'argv: expected a non-empty array of strings';
    const o = job.options ?? {};
    for (const k of Object.keys(o)) if (!RUN_OPTIONS.has(k)) return `options.${k}: not an option a job may set`;
    const profiles = Array.isArray(o.profile) ? o.profile : [o.profile];
    for (const p of profiles) if (typeof p !== 'string' || !config.run_profiles.includes(p)) return `profile: ${JSON.stringify(p)} is not one this worker offers`;
    const j = config.judge0;
    const over = (f: string, max: number) => typeof o[f] === 'number' && (o[f] as number) > max;
    if (over('cpuTimeLimitMs', j.max_cpu_time_limit * 1000)) return `options.cpuTimeLimitMs: over this worker's ceiling of ${j.max_cpu_time_limit * 1000}`;
    if (over('wallTimeLimitMs', j.max_wall_time_limit * 1000)) return `options.wallTimeLimitMs: over this worker's ceiling of ${j.max_wall_time_limit * 1000}`;
    if (over('pids', j.max_max_processes_and_or_threads)) return `options.pids: over this worker's ceiling of ${j.max_max_processes_and_or_threads}`;
    if (over('memory', j.max_memory_limit * 1024)) return `options.memory: over this worker's ceiling of ${j.max_memory_limit * 1024}`;
    if (o.wallTimeLimitMs === undefined || o.cpuTimeLimitMs === undefined) return 'options: a job must carry its time limits';
    return undefined;
  }
  if (job.kind !== 'execute') return `kind: ${JSON.stringify((job as { kind: unknown }).kind)} is not a job this worker runs`;
  if (!runtimes.has(job.language)) return `language: ${JSON.stringify(job.language)} is not offered by this worker`;
  if (!Array.isArray(job.files) || !job.files.length) return 'files: expected at least one';
  for (const f of job.files) {
    const n = f?.name;
    if (typeof n !== 'string' || !n || n.startsWith('/') || n.includes('\0') || n.split('/').some((p) => p === '..' || p === '.' || p === '')) return `files: ${JSON.stringify(n)} is not a relative path inside the job's directory`;
  }
  const max = stageCeilings(config);
  for (const [stage, limits] of [['compile', job.compile], ['run', job.run]] as const) {
    if (!limits || typeof limits !== 'object') return `${stage}: missing limits`;
    if (!(limits.wallTimeMs > 0) || !(limits.cpuTimeMs > 0)) return `${stage}: a job must carry its time limits`;
    for (const [k, v] of Object.entries(limits)) {
      const m = max[k as keyof StageLimits];
      if (m === undefined) return `${stage}.${k}: not a limit this worker knows`;
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) return `${stage}.${k}: expected a number >= 0`;
      if (v > m) return `${stage}.${k}: ${v} is over this worker's ceiling of ${m}`;
    }
  }
  if (job.network && !config.judge0.allow_enable_network) return 'network: not allowed by this worker';
  const runs = job.runs ?? 1;
  if (!Number.isSafeInteger(runs) || runs < 1 || runs > config.judge0.max_number_of_runs) return `runs: ${runs} is over this worker's ceiling of ${config.judge0.max_number_of_runs}`;
  return undefined;
}

/** The result of a job this worker refused or could not start: a setup-error (EPERM), the reason in its message. */
export function refusedResult(job: ServiceJob, reason: string): ServiceResult {
  const r = setupFailure(setupErrorInfo('worker', 1, undefined, `refused by the worker: ${reason}`));
  return job.kind === 'run' ? r : { run: r };
}

/** Wraps a job runner with the re-check; a runner that throws is a setup-error result too (tried once, no retry loop). */
export function checkedRunner(run: (job: ServiceJob) => Promise<ServiceResult>, config: ServeConfig, runtimes: Runtime[]): (job: ServiceJob) => Promise<ServiceResult> {
  const byLanguage = new Map(runtimes.map((r) => [r.language, r]));
  return async (job) => {
    const why = refuseReason(job, config, byLanguage);
    if (why) return refusedResult(job, why);
    try {
      return await run(job);
    } catch (e) {
      const r = setupFailure(setupErrorInfo('worker', 5, undefined, (e as Error).message));
      return job.kind === 'run' ? r : { run: r };
    }
  };
}
