// What the monitor, the library, the CLI and the Engine API share: exit codes, an exec's options, removal, Docker's ages.
import { readFileSync, rmSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { Store } from '../image/store.js';
import { native } from '../native.js';
import type { SandboxOptions } from '../launch/options.js';
import type { LaunchExtras, RunResult } from '../launch/sandbox.js';
import { brigCgroupsOf } from './cgroups.js';
import { programPid } from './proc.js';
import { ContainerError, recordDir, runtimeDir, withLock, readRecord, type ContainerRecord } from './state.js';

/** Docker's exit code for a run: the program's, 128+signal, 127/126 when exec failed, 125 for brig's own failures. */
export function exitCodeOf(r: RunResult): number {
  if (r.status === 'setup-error') {
    if (r.error?.step === 'exec') return r.error.errno === osConstants.errno.ENOENT ? 127 : r.error.errno === osConstants.errno.EACCES ? 126 : 125;
    return 125;
  }
  if (r.exitCode !== null) return r.exitCode;
  if (r.signal) return 128 + (osConstants.signals[r.signal] ?? 9);
  return 125;
}

export interface ExecOptions {
  env?: string[];
  workdir?: string;
  user?: string;
  tty?: boolean;
}

/** The options without what makes a run's own cgroups or time limits: an exec shares the container's. */
function shared(o: SandboxOptions): SandboxOptions {
  const { memory: _m, pids: _p, cpus: _c, cpuset: _s, wallTimeLimitMs: _w, cpuTimeLimitMs: _t, extraTimeMs: _e, outputLimitBytes: _o, ...rest } = o as SandboxOptions & Record<string, unknown>;
  return rest as SandboxOptions;
}

/**
 * An exec's sandbox options and launch extras: the container's own options
 * (so the same seccomp policy, Landlock rules, rlimits, user), its
 * namespaces through a pidfd of its init, and its cgroups. The caller
 * closes extras.joinPidfd once the launch returned.
 */
export function execOptions(rec: ContainerRecord, initPid: number, argv: unknown, opts: ExecOptions = {}): { argv: string[]; options: SandboxOptions; extras: LaunchExtras } {
  if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === 'string')) throw new ContainerError('exec: no command given');
  const options = shared(rec.Options);
  if (rec.LinkEnv) options.env = { ...rec.LinkEnv, ...(options.env as Record<string, string> | undefined) };
  if (opts.env?.length) {
    const env: Record<string, string> = { ...(options.env as Record<string, string> | undefined) };
    for (const kv of opts.env) {
      const eq = kv.indexOf('=');
      if (eq <= 0) throw new ContainerError(`--env: expected KEY=VAL, got ${JSON.stringify(kv)}`);
      env[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
    options.env = env;
  }
  if (opts.workdir !== undefined) options.cwd = opts.workdir;
  if (opts.user !== undefined) {
    const m = /^(\d+)(?::(\d+))?$/.exec(opts.user);
    if (!m) throw new ContainerError(`--user: expected UID[:GID] as numbers, got ${JSON.stringify(opts.user)}`);
    options.uid = Number(m[1]);
    options.gid = m[2] === undefined ? Number(m[1]) : Number(m[2]);
  }
  let fd: number;
  try {
    fd = native.pidfdOpen(initPid);
  } catch {
    throw new ContainerError(`container ${rec.Name} is not running`, 125);
  }
  // The pid may have been recycled between the record and the open: the
  // pidfd is the container's init only if that process is a brig-init.
  let comm = '';
  try {
    comm = readFileSync(`/proc/${initPid}/comm`, 'utf8').trim();
  } catch {
    // gone
  }
  if (comm !== 'brig-init') {
    native.close(fd);
    throw new ContainerError(`container ${rec.Name} is not running`, 125);
  }
  const prog = programPid(initPid);
  const cgroupProcs = prog === undefined ? [] : brigCgroupsOf(prog).map((d) => `${d}/cgroup.procs`);
  return { argv: argv as string[], options, extras: { joinPidfd: fd, cgroupProcs, argv: argv as string[], containerView: true } };
}

/** Removes everything of a container: its writable layer, logs, record and runtime files. */
export async function removeContainerFiles(id: string): Promise<void> {
  const rec = readRecord(id);
  if (rec?.Options.container) {
    try {
      await new Store().removeContainer(rec.Options.container);
    } catch {
      // never made (it never started) or already gone
    }
  }
  rmSync(runtimeDir(id), { recursive: true, force: true });
  withLock(() => rmSync(recordDir(id), { recursive: true, force: true }));
}

/** Docker's "how long ago" in ps and the API's Status ("5 minutes", "Less than a second"). */
export function ago(iso: string): string {
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 1) return 'Less than a second';
  if (s < 60) return `${Math.floor(s)} second${Math.floor(s) === 1 ? '' : 's'}`;
  if (s < 3600) return `${Math.floor(s / 60)} minute${Math.floor(s / 60) === 1 ? '' : 's'}`;
  if (s < 86400) return `${Math.floor(s / 3600)} hour${Math.floor(s / 3600) === 1 ? '' : 's'}`;
  return `${Math.floor(s / 86400)} days`;
}
