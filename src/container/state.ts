// Containers' records: config and state in the store (ctr/<id>/config.json),
// runtime files (the monitor's socket) in $XDG_RUNTIME_DIR/brig/<short id>.
//
// Several brig processes (CLIs, monitors, library users) change the same
// records: every read-modify-write happens under one flock on ctr/.lock,
// which the kernel drops if its holder dies. Records are replaced by rename,
// so a reader never sees half a file.
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { BrigError } from '../errors.js';
import { storeRoot } from '../image/store.js';
import { native } from '../native.js';
import type { SandboxOptions } from '../launch/options.js';

/** A container's problem, with the exit code the CLI gives it (Docker's: 125 brig's own, 126, 127). */
export class ContainerError extends BrigError {
  override name = 'ContainerError';
  constructor(
    message: string,
    readonly exitCode = 125,
  ) {
    super(message);
  }
}

export type ContainerStatus = 'created' | 'running' | 'paused' | 'restarting' | 'exited' | 'removing';

export interface RestartPolicy {
  Name: 'no' | 'on-failure' | 'always' | 'unless-stopped';
  MaximumRetryCount: number;
}

/** The record, in Docker's field names where Docker has one. */
export interface ContainerRecord {
  Id: string;
  Name: string;
  Created: string;
  Path: string;
  Args: string[];
  Config: {
    Cmd: string[];
    Image: string;
    Env: string[];
    WorkingDir: string;
    Labels: Record<string, string>;
    Tty: boolean;
    OpenStdin: boolean;
    /** Docker's StdinOnce: the stdin pipe is closed when an attached client's input ends (optional: older records lack it). */
    StdinOnce?: boolean;
    StopSignal: string;
    StopTimeout: number;
    Hostname: string;
    /** Docker's Config.Healthcheck (durations in ns); src/container/health.ts. */
    Healthcheck?: import('./health.js').HealthConfig;
  };
  HostConfig: {
    RestartPolicy: RestartPolicy;
    AutoRemove: boolean;
    LogConfig: { Type: 'json-file'; Config: { 'max-size'?: string; 'max-file'?: string } };
    Memory: number;
    NanoCpus: number;
    PidsLimit: number;
    NetworkMode: string;
    Binds: string[];
    /** Docker's legacy links, as given: NAME[:ALIAS]. */
    Links?: string[];
  };
  State: {
    Status: ContainerStatus;
    Running: boolean;
    Paused: boolean;
    Restarting: boolean;
    OOMKilled: boolean;
    Dead: boolean;
    /** Host pid of the container's init (brig-init), 0 when not running. */
    Pid: number;
    ExitCode: number;
    Error: string;
    StartedAt: string;
    FinishedAt: string;
    /** While a healthcheck applies: Docker's State.Health. */
    Health?: import('./health.js').HealthState;
  };
  RestartCount: number;
  LogPath: string;
  /** The sandbox options the monitor runs with (JSON: no streams, no signal). */
  Options: SandboxOptions;
  /** brig's own: the monitor (pid and start time, so a recycled pid is not taken for it). */
  Monitor?: { Pid: number; Start: number };
  /** brig's own: the container's cgroup directories (empty when brig had no cgroup). */
  Cgroups: string[];
  /** brig's own: how pause works here ('cgroup-v1', 'cgroup-v2', 'sigstop'). */
  PauseBy?: string;
  /** brig's own: the user stopped it (restart policies other than always leave it stopped). */
  StoppedByUser?: boolean;
  /** brig's own: the variables of its links (--link) as of its last start; the program and execs get them. */
  LinkEnv?: Record<string, string>;
  /**
   * brig's own: while it runs on user networks, the network holder its
   * network namespace was made under (pid, start): interfaces are plugged
   * into it from that holder's side (network connect of a running container).
   */
  NetHolder?: { Pid: number; Start: number };
  /** Docker's: the user networks it is on (src/net/networks.ts), with the address leased while it runs. */
  NetworkSettings?: { Networks: Record<string, EndpointSettings>; Ports: Record<string, { HostIp: string; HostPort: string }[] | null> };
}

/** Docker's EndpointSettings, as a container's record keeps it per network. */
export interface EndpointSettings {
  NetworkID: string;
  EndpointID: string;
  Gateway: string;
  IPAddress: string;
  IPPrefixLen: number;
  MacAddress: string;
  Aliases: string[];
  /** docker network connect --ip / compose ipv4_address. */
  IPAMConfig?: { IPv4Address?: string };
}

export const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;
const ID_RE = /^[0-9a-f]{64}$/;

export function containersRoot(): string {
  return join(storeRoot(), 'ctr');
}

export function runtimeRoot(): string {
  const x = process.env.XDG_RUNTIME_DIR;
  if (x && isAbsolute(x) && existsSync(x)) return join(x, 'brig');
  return join(storeRoot(), 'run');
}

export function recordDir(id: string): string {
  return join(containersRoot(), id);
}

/**
 * Named by the short id: the socket path must stay under sun_path's 107
 * bytes (Node would bind a truncated name that a restart cannot remove).
 */
export function runtimeDir(id: string): string {
  return join(runtimeRoot(), id.slice(0, 12));
}

export function socketPath(id: string): string {
  const path = join(runtimeDir(id), 'monitor.sock');
  if (Buffer.byteLength(path) > 107) throw new ContainerError(`the monitor's socket path is too long for a unix socket (${Buffer.byteLength(path)} bytes, at most 107): ${path}; set XDG_RUNTIME_DIR or BRIG_STORE to a shorter directory`);
  return path;
}

export function newId(): string {
  return randomBytes(32).toString('hex');
}

function ensureRoots(): void {
  mkdirSync(containersRoot(), { recursive: true, mode: 0o700 });
  mkdirSync(runtimeRoot(), { recursive: true, mode: 0o700 });
}

/**
 * Runs fn holding the lock every brig process takes to change containers.
 * The lock is short-lived by rule: nothing waits for a container under it.
 */
export function withLock<T>(fn: () => T): T {
  ensureRoots();
  const fd = openSync(join(containersRoot(), '.lock'), 'a', 0o600);
  try {
    const r = native.flock(fd, true, true);
    if (r < 0) throw new ContainerError(`container lock ${join(containersRoot(), '.lock')}: errno ${-r}`);
    return fn();
  } finally {
    closeSync(fd); // closing drops the lock
  }
}

export function readRecord(id: string): ContainerRecord | undefined {
  try {
    return JSON.parse(readFileSync(join(recordDir(id), 'config.json'), 'utf8')) as ContainerRecord;
  } catch {
    return undefined;
  }
}

/** Replaces the record whole (write and rename): call under withLock. */
export function writeRecord(r: ContainerRecord): void {
  const dir = recordDir(r.Id);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.config.${process.pid}.tmp`);
  writeFileSync(tmp, JSON.stringify(r, null, 2) + '\n', { mode: 0o600 });
  renameSync(tmp, join(dir, 'config.json'));
}

export function allIds(): string[] {
  try {
    return readdirSync(containersRoot()).filter((n) => ID_RE.test(n));
  } catch {
    return [];
  }
}

/** A process's start time (clock ticks after boot, /proc/PID/stat field 22), or undefined if it is gone. */
export function processStart(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (f[0] === 'Z' || f[0] === 'X') return undefined;
    return Number(f[19]);
  } catch {
    return undefined;
  }
}

export function monitorAlive(r: ContainerRecord): boolean {
  return r.Monitor !== undefined && processStart(r.Monitor.Pid) === r.Monitor.Start;
}

/** A container's State once its program has ended, however it ended. */
export function exitedState(prev: ContainerRecord['State'], exitCode: number, error: string, oomKilled = prev.OOMKilled): ContainerRecord['State'] {
  return { ...prev, Status: 'exited', Running: false, Paused: false, Restarting: false, Pid: 0, ExitCode: exitCode, OOMKilled: oomKilled, Error: error, FinishedAt: new Date().toISOString() };
}

/** Removes cgroup directories left behind (their processes are gone). */
export function removeCgroups(dirs: string[]): void {
  for (const d of [...dirs].reverse()) {
    for (let i = 0; i < 50; i++) {
      try {
        rmdirSync(d);
        break;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') break;
        if (code !== 'EBUSY') break;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
      }
    }
  }
}

/**
 * A record whose monitor died without writing the end (SIGKILL, OOM, a
 * reboot): the container died with it (its init has PDEATHSIG), so it is
 * marked exited with the reason, and what the monitor would have removed
 * goes. Call under withLock; true when the record changed.
 */
let monitorDiedHook: ((r: ContainerRecord) => void) | undefined;
/** @internal src/net/attach.ts: what a dead monitor left on user networks (leases, names, the holder) is cleaned up. */
export function setMonitorDiedHook(fn: (r: ContainerRecord) => void): void {
  monitorDiedHook = fn;
}

export function reconcile(r: ContainerRecord): boolean {
  if (r.Monitor === undefined || monitorAlive(r)) return false;
  try {
    monitorDiedHook?.(r);
  } catch {
    // the network side is swept again by the next process that looks
  }
  const wasLive = r.State.Running || r.State.Restarting || r.State.Paused;
  const pid = r.Monitor.Pid;
  r.Monitor = undefined;
  removeCgroups(r.Cgroups);
  r.Cgroups = [];
  rmSync(runtimeDir(r.Id), { recursive: true, force: true });
  if (r.State.Status === 'removing') return true;
  r.State = exitedState(r.State, wasLive ? 137 : r.State.ExitCode, wasLive || !r.State.Error ? `the container's monitor (pid ${pid}) died; the container was killed with it` : r.State.Error);
  writeRecord(r);
  return true;
}

/** Every container's record, reconciled. */
export function listRecords(): ContainerRecord[] {
  return withLock(() => {
    const out: ContainerRecord[] = [];
    for (const id of allIds()) {
      const r = readRecord(id);
      if (!r) continue;
      reconcile(r);
      out.push(r);
    }
    return out.sort((a, b) => b.Created.localeCompare(a.Created));
  });
}

/** Docker's lookup: a full id, a name, or a unique id prefix. Call under withLock. */
export function findId(ref: string): string {
  if (typeof ref !== 'string' || ref === '') throw new ContainerError('a container name or id is needed');
  const name = ref.startsWith('/') ? ref.slice(1) : ref;
  const ids = allIds();
  if (ids.includes(ref)) return ref;
  const records = ids.map((id) => readRecord(id)).filter((r): r is ContainerRecord => r !== undefined);
  const byName = records.find((r) => r.Name === name);
  if (byName) return byName.Id;
  if (/^[0-9a-f]+$/.test(ref)) {
    const m = ids.filter((id) => id.startsWith(ref));
    if (m.length === 1) return m[0];
    if (m.length > 1) throw new ContainerError(`multiple containers match id prefix ${ref}: give more of it`);
  }
  throw new ContainerError(`No such container: ${ref}`);
}

/** Reads, reconciles, lets fn change it and writes it if fn says so: all under the lock. */
export function update<T>(ref: string, fn: (r: ContainerRecord) => T): T {
  return withLock(() => {
    const id = findId(ref);
    const r = readRecord(id);
    if (!r) throw new ContainerError(`No such container: ${ref}`);
    reconcile(r);
    const before = JSON.stringify(r);
    const out = fn(r);
    if (JSON.stringify(r) !== before && r.State.Status !== 'removing') writeRecord(r);
    return out;
  });
}

export function get(ref: string): ContainerRecord {
  return update(ref, (r) => r);
}

/** A free name like Docker's (two words and a number would be whimsy: brig uses a word and the id). */
export function defaultName(id: string): string {
  return `brig_${id.slice(0, 12)}`;
}
