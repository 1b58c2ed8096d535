// Containers that live on after the call that made them: a record in the
// store, a monitor process per running container (monitor.ts), and these
// handles, usable from any brig process of the same user.
import { spawn as spawnProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { constants as osConstants } from 'node:os';
import { OptionsError } from '../errors.js';
import { applyProfile } from '../profile/index.js';
import { resolveOptions, type SandboxOptions } from '../launch/options.js';
import { spawnWith, type RunResult, type SandboxProcess } from '../launch/sandbox.js';
import { native } from '../native.js';
import { cgroupsOf } from './cgroups.js';
import { execOptions, exitCodeOf, removeContainerFiles, type ExecOptions } from './common.js';
import { readLogs, type LogEntry } from './logs.js';
import { MONITOR_SCRIPT } from './monitor.js';
import { healthConfig, type HealthcheckOptions } from './health.js';
import { initialNetworkSettings } from '../net/attach.js';
import { netOptions } from '../net/index.js';
import { processTree, procInfo, programPid, type ProcInfo } from './proc.js';
import {
  ContainerError,
  defaultName,
  findId,
  get,
  listRecords,
  monitorAlive,
  NAME_RE,
  newId,
  readRecord,
  recordDir,
  socketPath,
  update,
  withLock,
  writeRecord,
  allIds,
  type ContainerRecord,
  type RestartPolicy,
} from './state.js';

export { ContainerError, type ContainerRecord, type RestartPolicy } from './state.js';
export type { LogEntry } from './logs.js';

export interface ContainerOptions extends SandboxOptions {
  /** A name (letters, digits, _ . -); default brig_<short id>. */
  name?: string;
  /** no (default), on-failure[:N], always, unless-stopped. */
  restart?: string;
  /** Remove the container when it exits (docker run --rm). */
  autoRemove?: boolean;
  labels?: Record<string, string>;
  /** The signal stop sends first (default SIGTERM). */
  stopSignal?: string;
  /** Seconds stop waits before SIGKILL (default 10). */
  stopTimeout?: number;
  /** json-file options: max-size (e.g. 10m), max-file. */
  logOptions?: { 'max-size'?: string; 'max-file'?: string };
  /** A terminal for the program (docker run -t): one of the container's own devpts, held by its monitor. */
  tty?: boolean;
  /** Keep the program's stdin open for attach (docker run -i): a pipe held by the monitor, or the terminal. */
  openStdin?: boolean;
  /**
   * Docker's StdinOnce (docker run -i, attached): when an attached client's
   * input ends, the program's stdin pipe is closed (its EOF), as Docker does.
   * Without a tty only: a terminal stays open.
   */
  stdinOnce?: boolean;
  /** Docker's healthcheck, run by the monitor (src/container/health.ts); absent: the image's HEALTHCHECK, if any. */
  healthcheck?: HealthcheckOptions;
  /** More names the container has on its user network (--network-alias). */
  networkAliases?: string[];
  /** Docker's legacy links, NAME[:ALIAS]: a hosts entry and ALIAS_* variables (src/net/attach.ts). */
  links?: string[];
  /** -P: every port the image EXPOSEs, published on a free host port (127.0.0.1 unless -p says otherwise). */
  publishAll?: boolean;
}

/** How an attach ended: the program ended (or the monitor went), or the client detached. */
export interface AttachResult {
  detached: boolean;
}

/** Docker's default detach keys: ctrl-p ctrl-q. */
export const DEFAULT_DETACH_KEYS = 'ctrl-p,ctrl-q';

/** Docker's --detach-keys: a comma-separated list of a letter, or ctrl-<letter, @, [, \\, ], ^, _>. */
export function parseDetachKeys(v: string): Buffer {
  const out: number[] = [];
  for (const k of v.split(',')) {
    const m = /^ctrl-([a-z@[\\\]^_])$/.exec(k);
    if (m) out.push(m[1] >= 'a' && m[1] <= 'z' ? m[1].charCodeAt(0) - 96 : '@[\\]^_'.indexOf(m[1]) === 0 ? 0 : '@[\\]^_'.indexOf(m[1]) + 26);
    else if (/^[ -~]$/.test(k)) out.push(k.charCodeAt(0));
    else throw new OptionsError('detachKeys', `invalid detach key ${JSON.stringify(k)} (a letter, or ctrl-<letter or @ [ \\ ] ^ _>)`);
  }
  if (!out.length) throw new OptionsError('detachKeys', 'no keys given');
  return Buffer.from(out);
}

/** Docker's restart policy text, checked. */
export function parseRestart(v: string | undefined): RestartPolicy {
  if (v === undefined || v === '' || v === 'no') return { Name: 'no', MaximumRetryCount: 0 };
  if (v === 'always' || v === 'unless-stopped') return { Name: v, MaximumRetryCount: 0 };
  const m = /^on-failure(?::(\d+))?$/.exec(v);
  if (m) return { Name: 'on-failure', MaximumRetryCount: m[1] === undefined ? 0 : Number(m[1]) };
  throw new OptionsError('restart', `expected no, on-failure[:N], always or unless-stopped, got ${JSON.stringify(v)}`);
}

function checkSignal(field: string, v: string): string {
  const name = /^\d+$/.test(v) ? Object.entries(osConstants.signals).find(([, n]) => n === Number(v))?.[0] : v.toUpperCase().startsWith('SIG') ? v.toUpperCase() : `SIG${v.toUpperCase()}`;
  if (!name || !(name in osConstants.signals)) throw new OptionsError(field, `invalid signal ${JSON.stringify(v)}`);
  return name;
}

const CONTAINER_KEYS = ['name', 'restart', 'autoRemove', 'labels', 'stopSignal', 'stopTimeout', 'logOptions', 'tty', 'openStdin', 'stdinOnce', 'healthcheck', 'networkAliases', 'links', 'publishAll'] as const;
const NOT_KEPT = ['stdin', 'stdout', 'stderr', 'signal', 'timings'] as const;

function checkLinks(links: unknown): string[] {
  if (!Array.isArray(links) || links.some((l) => typeof l !== 'string' || !/^\/?[a-zA-Z0-9][a-zA-Z0-9_.-]*(:[a-zA-Z0-9][a-zA-Z0-9_.-]*)?$/.test(l))) throw new OptionsError('links', 'expected NAME[:ALIAS] entries');
  return links as string[];
}

/** Makes a container (state created); start() runs it. argv empty: the image's command. */
export function createContainer(argv: string[], options: ContainerOptions = {}): Container {
  const id = newId();
  const name = options.name ?? defaultName(id);
  if (!NAME_RE.test(name)) throw new OptionsError('name', `${JSON.stringify(name)}: a container name is letters, digits, _ . - (up to 128), starting with a letter or digit`);
  const restart = parseRestart(options.restart);
  if (options.autoRemove && restart.Name !== 'no') throw new OptionsError('restart', 'conflicting options: a restart policy and autoRemove (--rm)');
  const stopSignal = checkSignal('stopSignal', options.stopSignal ?? 'SIGTERM');
  const stopTimeout = options.stopTimeout ?? 10;
  if (!Number.isFinite(stopTimeout) || stopTimeout < 0) throw new OptionsError('stopTimeout', `expected seconds, got ${stopTimeout}`);
  const health = healthConfig(options.healthcheck);
  const sandbox: SandboxOptions & Record<string, unknown> = { ...options };
  for (const k of [...CONTAINER_KEYS, ...NOT_KEPT]) delete sandbox[k];
  // An image's writable layer lives on disk, named by the id (a rename keeps it).
  if (sandbox.image !== undefined) sandbox.container = id;
  // Every option checked now, not at start: the same errors as run's. For an image, this makes its writable layer.
  const resolved = resolveOptions(argv, applyProfile(sandbox));
  if (options.publishAll) {
    // Docker's -P: the image's EXPOSE, each on a port the kernel picks at each start.
    const exposed = Object.keys(resolved.image?.config.ExposedPorts ?? {});
    if (exposed.length) {
      sandbox.publish = [...((sandbox.publish as unknown[] | undefined) ?? []), ...exposed.map((p) => (p.includes('/') ? p : `${p}/tcp`))] as SandboxOptions['publish'];
      netOptions(resolved.network, sandbox as Parameters<typeof netOptions>[1]);
    }
  }
  const aliases = options.networkAliases ?? [];
  if (!Array.isArray(aliases) || aliases.some((a) => typeof a !== 'string' || !NAME_RE.test(a))) throw new OptionsError('networkAliases', 'expected names (letters, digits, _ . -)');
  if (aliases.length && resolved.attach?.kind !== 'network') throw new OptionsError('networkAliases', 'network aliases are for containers on a user network (--network NAME)');
  const networkSettings = resolved.attach?.kind === 'network' ? initialNetworkSettings(resolved.attach.name, aliases) : undefined;
  const rec: ContainerRecord = {
    Id: id,
    Name: name,
    Created: new Date().toISOString(),
    Path: argv[0] ?? resolved.argv[0],
    Args: argv.length ? argv.slice(1) : resolved.argv.slice(1),
    Config: {
      Cmd: argv.length ? argv : resolved.argv,
      Image: resolved.image?.ref ?? (resolved.rootfs === 'host' ? 'host' : resolved.rootfs),
      Env: Object.entries(resolved.env).map(([k, v]) => `${k}=${v}`),
      WorkingDir: resolved.cwd,
      Labels: { ...options.labels },
      Tty: options.tty === true,
      OpenStdin: options.openStdin === true,
      StdinOnce: options.stdinOnce === true && options.openStdin === true,
      StopSignal: stopSignal,
      StopTimeout: stopTimeout,
      Hostname: resolved.hostname,
      ...(health ? { Healthcheck: health } : {}),
    },
    HostConfig: {
      RestartPolicy: restart,
      AutoRemove: options.autoRemove === true,
      LogConfig: { Type: 'json-file', Config: { ...options.logOptions } },
      Memory: resolved.limits.memoryBytes ?? 0,
      NanoCpus: Math.round((resolved.limits.cpus ?? 0) * 1e9),
      PidsLimit: resolved.limits.pids ?? 0,
      NetworkMode: resolved.attach ? String(options.network) : resolved.network,
      Binds: resolved.mounts.map((m) => `${m.source}:${m.target}:${m.readonly ? 'ro' : 'rw'}`),
      ...(options.links?.length ? { Links: checkLinks(options.links) } : {}),
    },
    State: { Status: 'created', Running: false, Paused: false, Restarting: false, OOMKilled: false, Dead: false, Pid: 0, ExitCode: 0, Error: '', StartedAt: '0001-01-01T00:00:00Z', FinishedAt: '0001-01-01T00:00:00Z' },
    RestartCount: 0,
    LogPath: join(recordDir(id), `${id}-json.log`),
    Options: sandbox,
    Cgroups: [],
    ...(networkSettings ? { NetworkSettings: networkSettings } : {}),
  };
  // With an image, the run's argv is what the container was given (the image's entrypoint applies at each start).
  rec.Args = argv.slice(1);
  rec.Path = argv[0] ?? '';
  withLock(() => {
    for (const other of allIds()) {
      const o = readRecord(other);
      if (o?.Name === name) throw new ContainerError(`Conflict. The container name "/${name}" is already in use by container "${o.Id}". You have to remove (or rename) that container to be able to reuse that name.`);
    }
    writeRecord(rec);
  });
  return new Container(id);
}

export function getContainer(ref: string): Container {
  return new Container(withLock(() => findId(ref)));
}

export function listContainers(o: { all?: boolean } = {}): ContainerRecord[] {
  return listRecords().filter((r) => o.all || r.State.Running || r.State.Restarting || r.State.Paused);
}

/**
 * The monitor's Node flags: small heaps (it holds a few buffers, not a
 * program's data); no V8 worker threads and no JIT (it mostly waits, and
 * relays bytes when it works): measured, each monitor's PSS 14.2 MiB
 * against 15.9 without the last two, RSS 52 against 57 MiB.
 * BRIG_MONITOR_NODE_FLAGS replaces them (for measuring).
 */
const MONITOR_NODE_FLAGS = ['--max-semi-space-size=1', '--max-old-space-size=48', '--single-threaded', '--jitless'];

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** One request to a container's monitor, and its answer. */
function ask(id: string, req: Record<string, unknown>): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const c = connect(socketPath(id));
    let buf = '';
    c.on('connect', () => c.write(JSON.stringify(req) + '\n'));
    c.on('data', (d) => (buf += d.toString()));
    c.on('error', (e) => reject(new ContainerError(`container ${id.slice(0, 12)}: its monitor did not answer (${(e as NodeJS.ErrnoException).code ?? e.message})`)));
    c.on('end', () => {
      let res: Record<string, unknown>;
      try {
        res = JSON.parse(buf);
      } catch {
        reject(new ContainerError(`container ${id.slice(0, 12)}: its monitor gave no answer`));
        return;
      }
      if (typeof res.error === 'string') reject(new ContainerError(res.error, typeof res.exitCode === 'number' ? res.exitCode : 125));
      else resolve(res);
    });
  });
}

export interface ContainerStats {
  /** CPU time of the whole tree, ns. */
  cpuNs: number;
  memoryBytes: number;
  /** 0: no limit. */
  memoryLimitBytes: number;
  pids: number;
  /** Where the figures came from: the container's cgroup, or /proc (no cgroup here). */
  source: 'cgroup' | 'proc';
  /** When read (ms, monotonic). */
  at: number;
}

function readNum(path: string): number | undefined {
  try {
    const t = readFileSync(path, 'utf8').trim();
    return t === 'max' ? 0 : Number(t.split('\n')[0]);
  } catch {
    return undefined;
  }
}

export class Container {
  constructor(readonly id: string) {}

  private record(): ContainerRecord {
    return get(this.id);
  }

  get name(): string {
    return this.record().Name;
  }

  inspect(): ContainerRecord {
    return this.record();
  }

  private live(r: ContainerRecord): boolean {
    return monitorAlive(r) && (r.State.Running || r.State.Paused || r.State.Restarting);
  }

  /** Starts it (a monitor process), resolving once it runs, or has already run to its end. */
  async start(): Promise<void> {
    const t0 = new Date().toISOString();
    const need = update(this.id, (r) => {
      if (r.State.Status === 'removing') throw new ContainerError(`container ${r.Name} is being removed`);
      if (monitorAlive(r)) return false;
      r.State.Error = '';
      return true;
    });
    // The monitor this call started: it either becomes the container's or,
    // having lost a race to another start, exits at once; either way, known
    // before this returns.
    let mine: { pid: number; exited: boolean } | undefined;
    if (need) {
      const logFd = openSync(join(recordDir(this.id), 'monitor.log'), 'a', 0o600);
      try {
        // Small heaps: the monitor holds a few buffers, not a program's data.
        const flags = process.env.BRIG_MONITOR_NODE_FLAGS?.split(' ').filter(Boolean) ?? MONITOR_NODE_FLAGS;
        const child = spawnProcess(process.execPath, [...flags, MONITOR_SCRIPT, this.id], { detached: true, stdio: ['ignore', logFd, logFd] });
        child.unref();
        const m = { pid: child.pid ?? 0, exited: false };
        child.once('exit', () => (m.exited = true));
        mine = m;
      } finally {
        closeSync(logFd);
      }
    }
    const deadline = Date.now() + 30_000;
    let sawMonitor = false;
    const autoRemove = this.record().HostConfig.AutoRemove;
    for (;;) {
      let r: ContainerRecord;
      try {
        r = this.record();
      } catch (e) {
        // --rm: it ran, ended and was removed before we looked again.
        if (autoRemove && need && e instanceof ContainerError && /^No such container/.test(e.message)) return;
        throw e;
      }
      if (monitorAlive(r)) sawMonitor = true;
      if (mine && !mine.exited && r.Monitor?.Pid !== mine.pid) {
        await sleep(15);
        continue;
      }
      // Running once the program has exec'd (its process no longer init's copy): a command that cannot be run fails start, as in Docker.
      if (r.State.Running && r.State.StartedAt >= t0 && this.execed(r.State.Pid)) return;
      if (r.State.Running && !need) return;
      if (r.State.Status === 'exited' && r.State.FinishedAt >= t0 && !r.State.Restarting) {
        if (r.State.Error) throw new ContainerError(r.State.Error, r.State.ExitCode || 125);
        return;
      }
      if (!r.Monitor && sawMonitor && r.State.Status !== 'restarting') return;
      if (Date.now() > deadline) throw new ContainerError(`container ${r.Name} did not start within 30 s (see ${join(recordDir(this.id), 'monitor.log')})`);
      await sleep(15);
    }
  }

  private execed(initPid: number): boolean {
    const prog = programPid(initPid);
    if (prog === undefined) return false;
    try {
      return readFileSync(`/proc/${prog}/comm`, 'utf8').trim() !== 'brig-init';
    } catch {
      return false;
    }
  }

  /** The stop signal, then SIGKILL after the timeout (seconds); nothing if it is not running. */
  async stop(o: { timeout?: number; signal?: string } = {}): Promise<void> {
    const r = this.record();
    if (!monitorAlive(r)) return;
    await ask(this.id, { op: 'stop', timeout: o.timeout ?? r.Config.StopTimeout, signal: o.signal ? checkSignal('signal', o.signal) : r.Config.StopSignal }).catch((e) => {
      if (monitorAlive(this.record())) throw e;
    });
    await this.monitorGone();
  }

  private async monitorGone(limitMs = 15_000): Promise<void> {
    const until = Date.now() + limitMs;
    while (Date.now() < until) {
      if (!monitorAlive(this.record())) return;
      await sleep(15);
    }
  }

  async restart(o: { timeout?: number } = {}): Promise<void> {
    await this.stop(o);
    await this.start();
  }

  /** Sends a signal (default SIGKILL) to the container's program; SIGKILL ends the whole container. */
  async kill(signal = 'SIGKILL'): Promise<void> {
    const sig = checkSignal('signal', signal);
    const r = this.record();
    if (!this.live(r)) throw new ContainerError(`Container ${r.Name} is not running`);
    await ask(this.id, { op: 'kill', signal: sig });
    if (sig === 'SIGKILL') await this.monitorGone();
  }

  async pause(): Promise<string> {
    const r = this.record();
    if (!this.live(r) || !r.State.Running) throw new ContainerError(`Container ${r.Name} is not running`);
    if (r.State.Paused) throw new ContainerError(`Container ${r.Name} is already paused`);
    const res = await ask(this.id, { op: 'pause' });
    return String(res.by);
  }

  async unpause(): Promise<void> {
    const r = this.record();
    if (!r.State.Paused || !this.live(r)) throw new ContainerError(`Container ${r.Name} is not paused`);
    await ask(this.id, { op: 'unpause' });
  }

  /** Resolves with the exit code once the container has stopped (for good: not while restarting). */
  async wait(): Promise<number> {
    for (;;) {
      const r = this.record();
      if (!monitorAlive(r) && !r.State.Running) return r.State.ExitCode;
      await sleep(50);
    }
  }

  rename(newName: string): void {
    if (!NAME_RE.test(newName)) throw new ContainerError(`${JSON.stringify(newName)}: a container name is letters, digits, _ . - (up to 128)`);
    withLock(() => {
      for (const other of allIds()) {
        const o = readRecord(other);
        if (o?.Name === newName && o.Id !== this.id) throw new ContainerError(`Conflict. The container name "/${newName}" is already in use by container "${o.Id}". You have to remove (or rename) that container to be able to reuse that name.`);
      }
      const r = readRecord(this.id);
      if (!r) throw new ContainerError(`No such container: ${this.id}`);
      r.Name = newName;
      writeRecord(r);
    });
  }

  private runningRecord(): ContainerRecord {
    const r = this.record();
    if (!this.live(r) || !r.State.Running || r.State.Pid === 0) throw new ContainerError(`Container ${r.Id} is not running`);
    if (r.State.Paused) throw new ContainerError(`Container ${r.Id} is paused, unpause the container before exec`);
    return r;
  }

  /**
   * Starts argv inside the running container: its namespaces (setns through
   * its init's pidfd), its cgroups, its seccomp policy, Landlock rules,
   * rlimits, no capabilities, no_new_privs. The same process shape as spawn().
   */
  spawnExec(argv: string[], o: ExecOptions & Pick<SandboxOptions, 'stdin' | 'stdout' | 'stderr' | 'timings'> = {}): SandboxProcess {
    const r = this.runningRecord();
    const { options, extras } = execOptions(r, r.State.Pid, argv, o);
    try {
      return spawnWith(argv, { ...options, stdin: o.stdin ?? 'ignore', stdout: o.stdout ?? 'pipe', stderr: o.stderr ?? 'pipe', timings: o.timings }, { ...extras, tty: o.tty === true });
    } finally {
      native.close(extras.joinPidfd!);
    }
  }

  /**
   * argv inside the container on a new terminal (exec -t): its stdin, stdout
   * and stderr are the terminal, which is its controlling terminal. The
   * terminal is one of the container's own devpts instance (the exec's init
   * opens /dev/pts/ptmx in the container's mount namespace), so inside, `tty`
   * names it and /dev/pts lists the container's terminals only. The caller
   * reads and writes `master` and closes it; setWinsize(master, ...) passes
   * a size on.
   */
  async spawnExecTty(argv: string[], o: ExecOptions & { cols?: number; rows?: number } = {}): Promise<{ proc: SandboxProcess; master: number }> {
    const r = this.runningRecord();
    const { options, extras } = execOptions(r, r.State.Pid, argv, o);
    let proc: SandboxProcess;
    try {
      proc = spawnWith(argv, { ...options, stdin: 'ignore', stdout: 'ignore', stderr: 'ignore' }, { ...extras, ownPty: { cols: o.cols || 80, rows: o.rows || 24 } });
    } finally {
      native.close(extras.joinPidfd!);
    }
    const master = await proc.ptyMaster;
    if (master === undefined) {
      const res = await proc.wait();
      throw new ContainerError(`exec failed: ${res.error?.message ?? 'no terminal'}`, exitCodeOf(res));
    }
    return { proc, master };
  }

  /** As run(): argv inside the container to its end, output captured. */
  exec(argv: string[], o: ExecOptions & Pick<SandboxOptions, 'stdin' | 'stdout' | 'stderr' | 'timings'> = {}): Promise<RunResult> {
    try {
      return this.spawnExec(argv, { stdout: 'capture', stderr: 'capture', ...o }).wait();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** exec -d: started by the monitor, output dropped; resolves with its host pid. */
  async execDetached(argv: string[], o: ExecOptions = {}): Promise<number> {
    this.runningRecord();
    const res = await ask(this.id, { op: 'exec', argv, opts: o });
    return Number(res.pid);
  }

  /**
   * Attaches to the running program's stdio through its monitor: its output
   * to `stdout` (and `stderr` without a tty) until it ends; with `stdin`, that
   * stream to the program's terminal or stdin pipe (a container made with
   * tty or openStdin), watched for the detach keys (Docker's ctrl-p ctrl-q
   * by default), which end the attach and leave the container running.
   * `backlog`: first the output of this run so far (up to 64 KiB: start -a).
   */
  async attach(o: { stdin?: NodeJS.ReadableStream; stdout: NodeJS.WritableStream; stderr?: NodeJS.WritableStream; detachKeys?: string; backlog?: boolean; onTty?: (tty: boolean) => void; signal?: AbortSignal }): Promise<AttachResult> {
    const r = this.record();
    if (!this.live(r) || !r.State.Running) throw new ContainerError('You cannot attach to a stopped container, start it first');
    if (r.State.Paused) throw new ContainerError('You cannot attach to a paused container, unpause it first');
    const keys = parseDetachKeys(o.detachKeys ?? DEFAULT_DETACH_KEYS);
    const c = connect(socketPath(this.id));
    return new Promise<AttachResult>((resolve, reject) => {
      let head = Buffer.alloc(0);
      let tty: boolean | undefined;
      let frame = Buffer.alloc(0);
      let detached = false;
      let matched = 0;
      const stderr = o.stderr ?? o.stdout;
      const onInput = (d: Buffer | string) => {
        const b = typeof d === 'string' ? Buffer.from(d) : d;
        // The detach keys, in order, end the attach; a partial match is held
        // back (across chunks) until it is known not to be one, then passed on.
        const pass: Buffer[] = [];
        let runStart = 0;
        for (let i = 0; i < b.length; i++) {
          const x = b[i];
          if (matched > 0 && x !== keys[matched]) {
            pass.push(Buffer.from(keys.subarray(0, matched)));
            matched = 0;
            runStart = i;
          }
          if (x === keys[matched]) {
            if (matched === 0 && i > runStart) pass.push(b.subarray(runStart, i));
            matched++;
            runStart = i + 1;
            if (matched === keys.length) {
              for (const p of pass) c.write(p);
              detached = true;
              cleanup();
              // The monitor keeps an attach half-open after the client's end (StdinOnce): close once written.
              c.end(() => c.destroy());
              return;
            }
          }
        }
        if (matched === 0 && runStart < b.length) pass.push(b.subarray(runStart));
        for (const p of pass) c.write(p);
      };
      // The end of the client's input: a half-close, which closes the program's stdin with StdinOnce.
      const onInputEnd = () => {
        if (!detached && !c.destroyed) c.end();
      };
      // The caller leaving (an engine client that hung up): a detach, the container left running.
      const onAbort = () => {
        detached = true;
        cleanup();
        c.destroy();
      };
      const cleanup = () => {
        o.stdin?.removeListener('data', onInput);
        o.stdin?.removeListener('end', onInputEnd);
        o.signal?.removeEventListener('abort', onAbort);
      };
      if (o.signal?.aborted) return resolve({ detached: true });
      o.signal?.addEventListener('abort', onAbort);
      c.on('error', (e) => {
        cleanup();
        if (detached) resolve({ detached: true });
        else if (tty === undefined) reject(new ContainerError(`container ${this.id.slice(0, 12)}: its monitor did not answer (${(e as NodeJS.ErrnoException).code ?? e.message})`));
        else resolve({ detached: false });
      });
      c.on('close', () => {
        cleanup();
        resolve({ detached });
      });
      c.on('connect', () => c.write(JSON.stringify({ op: 'attach', stdin: o.stdin !== undefined, backlog: o.backlog === true }) + '\n'));
      c.on('data', (d: Buffer) => {
        if (detached) return;
        if (tty === undefined) {
          head = Buffer.concat([head, d]);
          const nl = head.indexOf(0x0a);
          if (nl < 0) return;
          let res: { ok?: boolean; tty?: boolean; error?: string; exitCode?: number };
          try {
            res = JSON.parse(head.subarray(0, nl).toString());
          } catch {
            res = { error: 'its monitor gave no answer' };
          }
          if (res.error !== undefined) {
            c.destroy();
            cleanup();
            reject(new ContainerError(res.error, res.exitCode ?? 125));
            return;
          }
          tty = res.tty === true;
          o.onTty?.(tty);
          if (o.stdin) {
            o.stdin.on('data', onInput);
            o.stdin.once('end', onInputEnd);
            (o.stdin as NodeJS.ReadableStream & { resume?: () => void }).resume?.(); // an explicitly paused stream (the engine's hijacked socket) flows too
          }
          d = head.subarray(nl + 1);
        }
        if (tty) {
          if (d.length) o.stdout.write(d);
          return;
        }
        // Docker's frames: [stream, 0, 0, 0, length (big-endian u32)] then the bytes.
        frame = Buffer.concat([frame, d]);
        while (frame.length >= 8) {
          const n = frame.readUInt32BE(4);
          if (frame.length < 8 + n) break;
          (frame[0] === 2 ? stderr : o.stdout).write(frame.subarray(8, 8 + n));
          frame = frame.subarray(8 + n);
        }
      });
    });
  }

  /** The terminal's size (a container made with tty): docker's resize. */
  async resize(cols: number, rows: number): Promise<void> {
    await ask(this.id, { op: 'resize', cols, rows });
  }

  /** The log entries; with follow, new ones until the container stops. */
  logs(o: { follow?: boolean; tail?: number; since?: number; signal?: AbortSignal } = {}): AsyncGenerator<LogEntry> {
    const r = this.record();
    return readLogs(r.LogPath, { ...o, live: () => this.live(this.record()) });
  }

  /** The processes in the container (host pids), its program first. */
  top(): ProcInfo[] {
    const r = this.record();
    if (!this.live(r) || r.State.Pid === 0) throw new ContainerError(`Container ${r.Name} is not running`);
    return processTree(r.State.Pid)
      .map(procInfo)
      .filter((p): p is ProcInfo => p !== undefined);
  }

  /** CPU, memory and pids of the tree: from its cgroups where brig has them, else summed from /proc. */
  stats(): ContainerStats {
    const r = this.record();
    const at = performance.now();
    if (!this.live(r) || r.State.Pid === 0) return { cpuNs: 0, memoryBytes: 0, memoryLimitBytes: 0, pids: 0, source: 'proc', at };
    const prog = programPid(r.State.Pid);
    const cg = prog === undefined ? new Map<string, string>() : cgroupsOf(prog);
    const brig = (c: string) => {
      const d = cg.get(c);
      return d && /\/brig-[^/]*$/.test(d) ? d : undefined;
    };
    const cpuacct = brig('cpuacct');
    const mem = brig('memory');
    const pids = brig('pids');
    const v2 = brig('');
    if (v2) {
      const usec = /^usage_usec (\d+)$/m.exec(readFileSync(join(v2, 'cpu.stat'), 'utf8'))?.[1];
      return { cpuNs: Number(usec ?? 0) * 1000, memoryBytes: readNum(join(v2, 'memory.current')) ?? 0, memoryLimitBytes: readNum(join(v2, 'memory.max')) ?? 0, pids: readNum(join(v2, 'pids.current')) ?? 0, source: 'cgroup', at };
    }
    const tree = processTree(r.State.Pid).map(procInfo).filter((p): p is ProcInfo => p !== undefined);
    const limit = mem ? (readNum(join(mem, 'memory.limit_in_bytes')) ?? 0) : 0;
    return {
      cpuNs: cpuacct ? (readNum(join(cpuacct, 'cpuacct.usage')) ?? 0) : tree.reduce((s, p) => s + p.cpuTicks, 0) * 10_000_000,
      memoryBytes: mem ? (readNum(join(mem, 'memory.usage_in_bytes')) ?? 0) : tree.reduce((s, p) => s + p.rssBytes, 0),
      // v1 says "no limit" with a huge number
      memoryLimitBytes: limit > 2 ** 60 ? 0 : limit,
      pids: pids ? (readNum(join(pids, 'pids.current')) ?? 0) : tree.length,
      source: cpuacct || mem ? 'cgroup' : 'proc',
      at,
    };
  }

  /** Removes it; a running container only with force (then killed first). */
  async remove(o: { force?: boolean } = {}): Promise<void> {
    const r = this.record();
    if (monitorAlive(r) || r.State.Running) {
      if (!o.force) throw new ContainerError(`cannot remove container "${r.Name}": container is ${r.State.Paused ? 'paused' : 'running'}: stop the container before removing or force remove`);
      await ask(this.id, { op: 'kill', signal: 'SIGKILL' }).catch(() => {});
      await this.monitorGone();
    }
    const go = withLock(() => {
      const cur = readRecord(this.id);
      if (!cur || cur.State.Status === 'removing') return false;
      if (monitorAlive(cur)) throw new ContainerError(`cannot remove container "${cur.Name}": it was started again meanwhile`);
      cur.State.Status = 'removing';
      writeRecord(cur);
      return true;
    });
    if (!go) throw new ContainerError(`No such container: ${r.Name}`);
    await removeContainerFiles(this.id);
  }
}

/** `brig start --all`: every container whose restart policy says it comes back (always; unless-stopped not stopped by hand). */
export async function startAll(): Promise<string[]> {
  const started: string[] = [];
  for (const r of listRecords()) {
    const p = r.HostConfig.RestartPolicy.Name;
    if (monitorAlive(r)) continue;
    if (p === 'always' || (p === 'unless-stopped' && !r.StoppedByUser)) {
      await new Container(r.Id).start();
      started.push(r.Name);
    }
  }
  return started;
}

void findId;
