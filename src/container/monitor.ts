// A container's monitor (podman's conmon, in Node): started detached by
// whoever starts the container, it outlives that process. It is the
// parent of the container's init (which dies with it: PR_SET_PDEATHSIG),
// writes its logs, records every start and exit, applies the restart policy
// with Docker's backoff, and takes orders (stop, kill, pause, exec -d) on a
// unix socket in the runtime directory. One monitor per container at a time.
import { spawn as spawnProcess, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeSync } from 'node:fs';
import { ReadStream } from 'node:tty';
import type { Writable } from 'node:stream';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { constants as osConstants } from 'node:os';
import { spawnWith, type SandboxProcess, type RunResult } from '../launch/sandbox.js';
import { native } from '../native.js';
import { brigCgroupsOf, freeze, freezerOf, makeContainerCgroups } from './cgroups.js';
import { JsonLogWriter } from './logs.js';
import { processTree, programPid, signalProgram } from './proc.js';
import { ContainerError, exitedState, monitorAlive, processStart, readRecord, recordDir, removeCgroups, runtimeDir, socketPath, update, withLock, writeRecord, type ContainerRecord } from './state.js';
import { execOptions, exitCodeOf, removeContainerFiles } from './common.js';
import { effectiveHealth, HealthRunner } from './health.js';
import { startNetwork, type StartNetwork } from '../net/attach.js';

const BACKOFF_START_MS = 100;
const BACKOFF_MAX_MS = 60_000;
/** A run this long resets the backoff (Docker's rule). */
const BACKOFF_RESET_MS = 10_000;

/** The size option as bytes ("10m"), 0 when unset. */
function sizeOf(v: string | undefined): number {
  if (!v) return 0;
  const m = /^(\d+)([kmg]?)b?$/i.exec(v.trim());
  if (!m) return 0;
  return Number(m[1]) * ({ '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 } as Record<string, number>)[m[2].toLowerCase()];
}

/** v1 controllers the run's own cgroups (its limits) take. */
function limitedControllers(o: ContainerRecord['Options']): Set<string> {
  const s = new Set<string>();
  if (o.memory !== undefined) s.add('memory');
  if (o.pids !== undefined) s.add('pids');
  if (o.cpus !== undefined) {
    s.add('cpu');
    s.add('cpuacct');
  }
  if (o.cpuset !== undefined) s.add('cpuset');
  return s;
}

const HERE = import.meta.dirname ?? new URL('.', import.meta.url).pathname;
/** addon/reaper.c, built with the addon: dist/src/container -> build/Release. */
const REAPER = join(HERE, '..', '..', '..', 'build', 'Release', 'brig-reaper');

/**
 * The monitor's own cleaner (addon/reaper.c), in a session of its own: it
 * is told what to remove (the runtime directory, the cgroups) whenever that
 * changes, and removes it when the monitor goes without saying it is done
 * (SIGKILL): the container's processes die with the monitor (init's
 * PDEATHSIG), and then nothing of it waits for the next brig command.
 */
class Reaper {
  private proc?: ChildProcess;

  start(): void {
    if (!existsSync(REAPER)) return; // an addon built without it: the next look cleans up (state.ts reconcile)
    const p = spawnProcess(REAPER, [], { stdio: ['pipe', 'ignore', 'ignore'], detached: true, cwd: '/' });
    p.on('error', () => {});
    p.stdin?.on('error', () => {});
    p.unref();
    (p.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    this.proc = p;
  }

  /** What to remove if the monitor dies now: its runtime directory, then cgroup directories. */
  tell(runtime: string, cgroups: string[]): void {
    this.proc?.stdin?.write([runtime, ...cgroups].join('\0') + '\n');
  }

  /** Nothing left to clean: the reaper exits. */
  done(): void {
    this.proc?.stdin?.end('\n');
  }
}

/** A client attached to the container's stdio (brig attach, start -a, run -a). */
interface Attached {
  sock: Socket;
  /** Raw bytes (a tty), else Docker's multiplexed frames (8-byte header: stream, 0, 0, 0, length BE). */
  tty: boolean;
}

/** What a start -a may have missed between the program's start and its attach: the last bytes of this run. */
const BACKLOG_MAX = 64 * 1024;

class Monitor {
  readonly reaper = new Reaper();
  private attached = new Set<Attached>();
  /** The current run's terminal (Config.Tty), or its stdin pipe (Config.OpenStdin). */
  private ptyMaster?: number;
  private stdinPipe?: Writable | null;
  private size = { cols: 80, rows: 24 };
  private backlog: { stream: 1 | 2; data: Buffer }[] = [];
  private backlogBytes = 0;
  private current?: SandboxProcess;
  private stopAsked = false;
  private wake?: () => void;
  private server?: Server;
  private waiters: (() => void)[] = [];
  private paused: { kind: string; dir?: string; pids?: number[] } | undefined;

  constructor(readonly id: string) {}

  /** Registers as the container's monitor; false if another live one is. */
  claim(): boolean {
    return withLock(() => {
      const r = readRecord(this.id);
      if (!r || r.State.Status === 'removing') return false;
      if (r.Monitor && r.Monitor.Pid !== process.pid && monitorAlive(r)) return false;
      r.Monitor = { Pid: process.pid, Start: processStart(process.pid)! };
      r.StoppedByUser = false;
      writeRecord(r);
      return true;
    });
  }

  async listen(): Promise<void> {
    mkdirSync(runtimeDir(this.id), { recursive: true, mode: 0o700 });
    const path = socketPath(this.id);
    rmSync(path, { force: true });
    this.server = createServer({ allowHalfOpen: true }, (c) => this.serve(c));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(path, () => resolve());
    });
  }

  private serve(c: Socket): void {
    let buf = Buffer.alloc(0);
    c.on('error', () => {});
    // Half-open (allowHalfOpen): a request's client ending is a close, an attach's keeps getting output.
    let isAttach = false;
    c.on('end', () => {
      if (!isAttach) c.end();
    });
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const nl = buf.indexOf(0x0a);
      if (nl < 0) {
        if (buf.length > 1 << 20) c.destroy();
        return;
      }
      c.off('data', onData);
      const line = buf.subarray(0, nl).toString();
      const rest = buf.subarray(nl + 1);
      let req: { op: string; [k: string]: unknown };
      try {
        req = JSON.parse(line);
      } catch {
        c.end(JSON.stringify({ error: 'bad request' }) + '\n');
        return;
      }
      if (req.op === 'attach') {
        isAttach = true;
        try {
          this.attach(c, req, rest);
        } catch (e) {
          c.end(JSON.stringify({ error: (e as Error).message, exitCode: e instanceof ContainerError ? e.exitCode : 125 }) + '\n');
        }
        return;
      }
      this.handle(req).then(
        (res) => c.end(JSON.stringify(res ?? {}) + '\n'),
        (e: Error) => c.end(JSON.stringify({ error: e.message, exitCode: e instanceof ContainerError ? e.exitCode : 125 }) + '\n'),
      );
    };
    c.on('data', onData);
  }

  /**
   * An attach: after its answer line the connection carries the container's
   * output to the client (raw with a tty, else in Docker's frames) and, with
   * stdin asked for, the client's input to the program's terminal or stdin
   * pipe. It ends when the program does; the client leaving (a detach)
   * changes nothing for the container.
   */
  private attach(c: Socket, req: { [k: string]: unknown }, rest: Buffer): void {
    this.running();
    const rec = readRecord(this.id)!;
    const tty = rec.Config.Tty === true;
    const a: Attached = { sock: c, tty };
    c.write(JSON.stringify({ ok: true, tty }) + '\n');
    if (req.backlog === true) for (const b of this.backlog) this.send(a, b.stream, b.data);
    this.attached.add(a);
    c.on('close', () => this.attached.delete(a));
    if (req.stdin === true && (tty || rec.Config.OpenStdin)) {
      const input = (d: Buffer) => this.input(d);
      if (rest.length) input(rest);
      c.on('data', input);
      // StdinOnce: the client's input ended, so does the program's (its EOF), as Docker's run -i.
      if (!tty && rec.Config.StdinOnce === true)
        c.once('end', () => {
          if (this.stdinPipe && !this.stdinPipe.destroyed) this.stdinPipe.end();
        });
    } else c.resume(); // input not wanted: read and dropped, so the client's end is seen
  }

  private input(d: Buffer): void {
    if (this.ptyMaster !== undefined) {
      try {
        writeSync(this.ptyMaster, d);
      } catch {
        // the terminal has gone with the program
      }
    } else if (this.stdinPipe && !this.stdinPipe.destroyed) this.stdinPipe.write(d);
  }

  private send(a: Attached, stream: 1 | 2, data: Buffer): void {
    if (a.sock.destroyed) return;
    if (a.tty) a.sock.write(data);
    else {
      const h = Buffer.alloc(8);
      h[0] = stream;
      h.writeUInt32BE(data.length, 4);
      a.sock.write(Buffer.concat([h, data]));
    }
  }

  /** Output of the program: to the log (by the caller), the attached clients and the backlog. */
  private output(stream: 1 | 2, data: Buffer): void {
    for (const a of this.attached) this.send(a, stream, data);
    this.backlog.push({ stream, data });
    this.backlogBytes += data.length;
    while (this.backlogBytes > BACKLOG_MAX && this.backlog.length > 1) this.backlogBytes -= this.backlog.shift()!.data.length;
  }

  private running(): SandboxProcess {
    if (!this.current || this.current.pid === 0) throw new ContainerError(`container ${this.id.slice(0, 12)} is not running`);
    return this.current;
  }

  private signal(name: string): void {
    const sp = this.running();
    const num = (osConstants.signals as Record<string, number>)[name];
    if (num === undefined) throw new ContainerError(`invalid signal: ${name}`);
    if (num === osConstants.signals.SIGKILL) {
      sp.kill();
      return;
    }
    signalProgram(sp.pid, num);
  }

  private async handle(req: { op: string; [k: string]: unknown }): Promise<unknown> {
    switch (req.op) {
      case 'kill':
        this.stopAsked = true;
        if (this.paused) this.thaw();
        this.signal(String(req.signal ?? 'SIGKILL'));
        this.wake?.();
        return {};
      case 'stop': {
        this.stopAsked = true;
        this.wake?.();
        if (!this.current || this.current.pid === 0) return {};
        if (this.paused) this.thaw();
        const ended = new Promise<void>((r) => this.waiters.push(r));
        this.signal(String(req.signal ?? 'SIGTERM'));
        const timeout = Number(req.timeout ?? 10) * 1000;
        const t = setTimeout(() => this.current?.kill(), timeout);
        await ended;
        clearTimeout(t);
        return {};
      }
      case 'pause':
        return this.pause();
      case 'unpause':
        if (!this.paused) throw new ContainerError(`container ${this.id.slice(0, 12)} is not paused`);
        this.thaw();
        update(this.id, (r) => {
          r.State.Paused = false;
          r.State.Status = 'running';
        });
        return {};
      case 'exec': {
        const sp = this.running();
        const rec = readRecord(this.id)!;
        const { argv, options, extras } = execOptions(rec, sp.pid, req.argv as string[], req.opts as Record<string, unknown>);
        const ex = spawnWith(argv, { ...options, stdin: 'ignore', stdout: 'ignore', stderr: 'ignore' }, extras);
        native.close(extras.joinPidfd!);
        ex.wait().catch(() => {});
        return { pid: ex.pid };
      }
      case 'resize': {
        const cols = Number(req.cols);
        const rows = Number(req.rows);
        if (!(cols > 0 && cols < 65536 && rows > 0 && rows < 65536)) throw new ContainerError('resize: cols and rows must be 1 to 65535');
        this.size = { cols, rows };
        if (this.ptyMaster !== undefined) native.setWinsize(this.ptyMaster, cols, rows);
        return {};
      }
      case 'ping':
        return { pid: process.pid };
      default:
        throw new ContainerError(`unknown request ${req.op}`);
    }
  }

  private pause(): unknown {
    const sp = this.running();
    if (this.paused) throw new ContainerError(`container ${this.id.slice(0, 12)} is already paused`);
    const prog = programPid(sp.pid);
    const f = prog === undefined ? undefined : freezerOf(prog, []);
    if (f) {
      freeze(f, true);
      this.paused = { kind: f.kind, dir: f.dir };
    } else {
      // No freezer cgroup (no delegated cgroup): every process of the tree
      // stopped, init aside. A process started after this is not stopped:
      // there is none, as all that could start one are stopped.
      const pids = processTree(sp.pid);
      for (const p of pids) {
        try {
          process.kill(p, 'SIGSTOP');
        } catch {
          // gone
        }
      }
      this.paused = { kind: 'sigstop', pids };
    }
    update(this.id, (r) => {
      r.State.Paused = true;
      r.State.Status = 'paused';
      r.PauseBy = this.paused!.kind;
    });
    return { by: this.paused.kind };
  }

  private thaw(): void {
    const p = this.paused;
    this.paused = undefined;
    if (!p) return;
    if (p.kind === 'sigstop') {
      for (const pid of p.pids ?? [])
        try {
          process.kill(pid, 'SIGCONT');
        } catch {
          // gone
        }
    } else freeze({ kind: p.kind as 'cgroup-v1', dir: p.dir! }, false);
  }

  async run(): Promise<void> {
    let backoff = BACKOFF_START_MS;
    for (;;) {
      const rec = readRecord(this.id);
      if (!rec) return;
      const o = rec.Options;
      const ccg = makeContainerCgroupsSafe(this.id, limitedControllers(o), o.cgroupParent);
      const cfg = rec.HostConfig.LogConfig.Config;
      const log = new JsonLogWriter(rec.LogPath, sizeOf(cfg['max-size']), Math.max(1, Number(cfg['max-file'] ?? 1) || 1));
      let sp: SandboxProcess;
      let result: RunResult;
      let health: HealthRunner | undefined;
      const startedAt = Date.now();
      let net: StartNetwork | undefined;
      try {
        // User networks, container:NAME, links: leases, the hosts file, the namespaces to join.
        net = startNetwork(this.id);
        const runOptions: typeof o = { ...o };
        if (net?.options.mounts?.length) runOptions.mounts = [...(o.mounts ?? []), ...net.options.mounts];
        if (net?.options.env && Object.keys(net.options.env).length) runOptions.env = { ...net.options.env, ...(o.env as Record<string, string> | undefined) };
        // A command of one word (Path, no Args) is still the container's command, not the image's default.
        const argv = rec.Path || !o.image ? [rec.Path, ...rec.Args] : [];
        this.backlog = [];
        this.backlogBytes = 0;
        let drained: Promise<unknown>;
        if (rec.Config.Tty) {
          // A terminal of the container's own devpts (init opens it in the
          // new root): the program's stdin, stdout and stderr, relayed here.
          // Its output is the log's stdout, as Docker's.
          sp = spawnWith(argv, { ...runOptions, stdin: 'ignore', stdout: 'ignore', stderr: 'ignore' }, { cgroupProcs: ccg.procs, containerView: true, ownPty: this.size, prepareNet: net?.prepareNet });
          this.current = sp;
          const master = await sp.ptyMaster;
          this.ptyMaster = master;
          if (master !== undefined) {
            const out = new ReadStream(master);
            out.on('data', (c: Buffer) => {
              log.write('stdout', c);
              this.output(1, c);
            });
            drained = new Promise<void>((r) => {
              out.once('close', r);
              out.once('error', () => r()); // EIO: the program's side has gone
            });
            // The relay's stream closes the master when it ends.
            void drained.then(() => out.destroy());
          } else drained = Promise.resolve();
        } else {
          sp = spawnWith(argv, { ...runOptions, stdin: rec.Config.OpenStdin ? 'pipe' : 'ignore', stdout: 'pipe', stderr: 'pipe' }, { cgroupProcs: ccg.procs, containerView: true, prepareNet: net?.prepareNet });
          this.current = sp;
          this.stdinPipe = sp.stdin;
          sp.stdin?.on('error', () => {});
          sp.stdout?.on('data', (c: Buffer) => {
            log.write('stdout', c);
            this.output(1, c);
          });
          sp.stderr?.on('data', (c: Buffer) => {
            log.write('stderr', c);
            this.output(2, c);
          });
          // The pipes' last bytes may come after the exit: the log closes once both have ended.
          drained = Promise.all([sp.stdout, sp.stderr].map((s) => (s && !s.destroyed ? new Promise((r) => s.once('close', r)) : undefined)));
        }
        // A launch that joins a prepared network starts once that is made: wait for it (and for pasta's ports).
        const netInfo = await sp.network;
        if (sp.pid) {
          const pid = sp.pid;
          // Docker's NetworkSettings.Ports: each published port as bound (brig port reads them).
          const ports: Record<string, { HostIp: string; HostPort: string }[]> = {};
          for (const p of netInfo.ports) (ports[`${p.containerPort}/${p.protocol}`] ??= []).push({ HostIp: p.hostIp, HostPort: String(p.hostPort) });
          update(this.id, (r) => {
            if (netInfo.ports.length || r.NetworkSettings) (r.NetworkSettings ??= { Networks: {}, Ports: {} }).Ports = ports;
          });
          update(this.id, (r) => {
            r.State = { ...r.State, Status: 'running', Running: true, Paused: false, Restarting: false, OOMKilled: false, Dead: false, Pid: pid, ExitCode: 0, Error: '', StartedAt: new Date(startedAt).toISOString() };
            r.Cgroups = ccg.dirs;
          });
          this.reaper.tell(runtimeDir(this.id), ccg.dirs);
          // The run's own cgroups (its limits) show once the program has joined them.
          setTimeout(() => {
            const prog = programPid(pid);
            const more = prog === undefined ? [] : brigCgroupsOf(prog).filter((d) => !ccg.dirs.includes(d));
            if (more.length && this.current === sp && sp.pid)
              try {
                update(this.id, (r) => {
                  r.Cgroups = [...ccg.dirs, ...more];
                });
                this.reaper.tell(runtimeDir(this.id), [...ccg.dirs, ...more]);
              } catch {
                // removed meanwhile
              }
          }, 200).unref();
          const hc = effectiveHealth(rec);
          if (hc) {
            health = new HealthRunner(this.id, hc, () => (this.current === sp ? sp.pid : 0));
            health.start();
          }
        }
        result = await sp.wait();
        health?.stop();
        await Promise.race([drained, new Promise((r) => setTimeout(r, 2000))]);
      } catch (e) {
        result = { status: 'setup-error', exitCode: null, signal: null, error: { step: 'options', errno: 0, code: '', message: (e as Error).message } } as unknown as RunResult;
      }
      health?.stop();
      this.current = undefined;
      this.paused = undefined;
      this.ptyMaster = undefined;
      this.stdinPipe?.destroy();
      this.stdinPipe = undefined;
      // Attached clients end with the program (Docker's attach does).
      for (const a of this.attached) a.sock.end();
      this.attached.clear();
      await net?.ended().catch(() => {});
      log.close();
      removeCgroups(ccg.dirs);
      const code = exitCodeOf(result);
      const failed = result.status === 'setup-error';
      let restart = false;
      let gone = false;
      try {
        restart = update(this.id, (r) => {
          r.State = exitedState(r.State, code, failed ? (result.error?.message ?? 'setup failed') : '', result.status === 'memory-limit' || result.oomKilled === true);
          r.Cgroups = [];
          if (this.stopAsked) r.StoppedByUser = true;
          const p = r.HostConfig.RestartPolicy;
          if (this.stopAsked || failed || p.Name === 'no') return false;
          if (p.Name === 'on-failure' && (code === 0 || (p.MaximumRetryCount > 0 && r.RestartCount >= p.MaximumRetryCount))) return false;
          r.RestartCount++;
          r.State.Status = 'restarting';
          r.State.Restarting = true;
          return true;
        });
      } catch {
        gone = true; // removed while it ran
      }
      for (const w of this.waiters.splice(0)) w();
      if (gone || !restart) return;
      if (Date.now() - startedAt >= BACKOFF_RESET_MS) backoff = BACKOFF_START_MS;
      await new Promise<void>((r) => {
        const t = setTimeout(r, backoff);
        this.wake = () => {
          clearTimeout(t);
          r();
        };
      });
      this.wake = undefined;
      backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
      if (this.stopAsked) {
        update(this.id, (r) => {
          r.State.Status = 'exited';
          r.State.Restarting = false;
          r.StoppedByUser = true;
        });
        return;
      }
    }
  }

  async finish(): Promise<void> {
    this.server?.close();
    rmSync(runtimeDir(this.id), { recursive: true, force: true });
    let remove = false;
    withLock(() => {
      const r = readRecord(this.id);
      if (!r) return;
      if (r.Monitor?.Pid === process.pid) r.Monitor = undefined;
      remove = r.HostConfig.AutoRemove || r.State.Status === 'removing';
      if (remove) r.State.Status = 'removing';
      writeRecord(r);
    });
    this.reaper.done();
    if (remove) await removeContainerFiles(this.id);
  }
}

function makeContainerCgroupsSafe(id: string, limited: Set<string>, parent?: string) {
  try {
    return makeContainerCgroups(id, limited, parent);
  } catch {
    return { dirs: [], procs: [] };
  }
}

export async function monitorMain(id: string): Promise<number> {
  process.title = `brig-monitor ${id.slice(0, 12)}`;
  const m = new Monitor(id);
  if (!m.claim()) return 0;
  // Orders to stop come on the socket; a signal to the monitor itself ends
  // the container the same way (and the record says so).
  for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(s, () => void m['handle']({ op: 'stop', timeout: 10 }).catch(() => {}));
  m.reaper.start();
  try {
    await m.listen();
    m.reaper.tell(runtimeDir(id), []);
    await m.run();
  } finally {
    await m.finish();
  }
  return 0;
}

// Run as a program: node monitor.js ID
if (process.argv[1] && /monitor\.js$/.test(process.argv[1]) && process.argv[2]) {
  monitorMain(process.argv[2]).then(
    (c) => process.exit(c),
    (e: Error) => {
      process.stderr.write(`brig-monitor ${process.argv[2]}: ${e.message}\n`);
      process.exit(1);
    },
  );
}

export const MONITOR_SCRIPT = join(HERE, 'monitor.js');
void recordDir;
