// Warm pools: sandboxes made ahead of the runs that will use them. A pooled
// sandbox is cloned into its namespaces, given its id maps, cgroups, mounts,
// /proc, /dev, hostname and pivoted root, and then waits at the plan's
// await-command step. A run hands it argv, env and stdio; what is left to do
// is what every program start costs: fork, the per-process steps (cgroup
// join, rlimits, capabilities, seccomp) and exec. Each sandbox serves one
// run (its /tmp and processes are that run's), and the pool makes another.
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { errnoOf, OptionsError, TRANSIENT_ERRNOS } from '../errors.js';
import { log } from '../log.js';
import { native, type NativeExit, ReportKind } from '../native.js';
import { resolveOptions, type ResolvedOptions, type SandboxOptions } from './options.js';
import { ALL_NAMESPACES, switchesIds } from './plan.js';
import { planMultiMap, writeMultiMap, type MultiMapPlan } from './idmap.js';
import { needsNetworkHelper } from '../net/index.js';
import { applyProfile, mergeLayer } from '../profile/index.js';
import { prepareSandbox, SandboxProcess, type PooledSandbox, type RunResult, type SandboxSource } from './sandbox.js';
import { AUDIT_ARCH, hostArch } from '../seccomp/index.js';

/** The sandbox every run of the pool gets; per-run stdio, signal and timings have no place here. */
export interface PoolOptions extends Omit<SandboxOptions, 'stdin' | 'stdout' | 'stderr' | 'signal' | 'timings'> {
  /** Sandboxes kept ready. Default 2. */
  size?: number;
  /**
   * A directory of each sandbox's own, bound at `target`: the pool makes it
   * (mkdtemp under `root`) when it makes the sandbox, and lease() hands it to
   * the caller, who fills it before the run starts. No two sandboxes share
   * one, so no run sees another run's files.
   */
  slot?: PoolSlot;
}

export interface PoolSlot {
  /** Where the directory appears in the sandbox (absolute). */
  target: string;
  /** Bound read-only: the run can read what the caller put there, never change it. */
  readonly?: boolean;
  /** Where slot directories are made on the host. Default os.tmpdir(). */
  root?: string;
}

/** run() and spawn() over one spawnWith(): a pool and a lease differ only in where the sandbox comes from. */
abstract class PoolRunner {
  /** Runs argv in a sandbox made ahead (or a fresh one if none is ready), like run(). */
  run(argv: string[], options: PoolRunOptions = {}): Promise<RunResult> {
    try {
      return this.spawnWith(argv, { stdout: 'capture', stderr: 'capture' }, options).wait();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Starts argv in a sandbox made ahead (or a fresh one), like spawn(). */
  spawn(argv: string[], options: PoolRunOptions = {}): SandboxProcess {
    return this.spawnWith(argv, { stdout: 'pipe', stderr: 'pipe' }, options);
  }

  protected abstract spawnWith(argv: string[], defaults: SandboxOptions, options: PoolRunOptions): SandboxProcess;
}

/**
 * One sandbox of a slot pool and its directory, taken for one run. Put the
 * run's files in `dir`, then run() or spawn() once; release() removes the
 * directory (after the caller has taken what it wants from it) and ends a
 * sandbox that was never used.
 */
export class PoolLease extends PoolRunner {
  private used = false;
  private released = false;

  /** @internal use pool.lease() */
  constructor(
    private readonly pool: Pool,
    /** The slot's host directory: what the sandbox sees at the slot's target. */
    readonly dir: string,
    private sandbox: PooledSandbox | undefined,
  ) {
    super();
  }

  /** Whether the run gets a sandbox made ahead (else it starts one, with the same slot bound). */
  get warm(): boolean {
    return this.sandbox !== undefined;
  }

  /** Removes the directory; a sandbox never run is ended (the pool removes its cgroups). */
  release(): void {
    if (this.released) return;
    this.released = true;
    if (this.sandbox) native.kill(this.sandbox.pidfd, 9);
    this.sandbox = undefined;
    // rmSync does not follow symlinks the program may have left.
    rmSync(this.dir, { recursive: true, force: true });
  }

  protected spawnWith(argv: string[], defaults: SandboxOptions, options: PoolRunOptions): SandboxProcess {
    if (this.used || this.released) throw new OptionsError('lease', 'a lease runs one command (take another from the pool)');
    this.used = true;
    const lease = this;
    const source: SandboxSource = {
      check: (o) => this.pool.checkSlot(o, this.dir),
      take() {
        const s = lease.sandbox;
        lease.sandbox = undefined;
        return s;
      },
    };
    return this.pool.spawnLeased(argv, defaults, options, this.dir, source);
  }
}

/**
 * What a pool's run may set for itself: everything the sandbox's plan does
 * not depend on. Anything else must be the pool's (else OptionsError).
 */
export type PoolRunOptions = Pick<SandboxOptions, 'stdin' | 'stdout' | 'stderr' | 'signal' | 'timings' | 'env' | 'wallTimeLimitMs' | 'cpuTimeLimitMs' | 'extraTimeMs' | 'outputLimitBytes' | 'maxOutputBytes'>;

/**
 * brig's RLIMIT_CPU backstop for cpuTimeLimitMs is left out of pooled
 * sandboxes (their rlimits are set before the run's limit is known): a
 * pool's runs have their CPU time limited by brig's watchdog alone.
 */
function withoutBackstop(o: ResolvedOptions): ResolvedOptions {
  return o.cpuBackstop ? { ...o, rlimits: o.rlimits.filter(([n]) => n !== 'cpu'), cpuBackstop: false } : o;
}

/**
 * The fields a sandbox made ahead is built from: a run must agree on all of
 * them. `slotDir`: the lease's own slot mount, which the template lacks.
 */
function shape(resolved: ResolvedOptions, slot?: { target: string; dir: string }): Record<string, string> {
  const o = withoutBackstop(resolved);
  const mounts = slot ? o.mounts.filter((m) => !(m.target === slot.target && m.source === slot.dir)) : o.mounts;
  return {
    rootfs: o.rootfs,
    image: o.image ? `${o.image.digest}:${o.image.containerDir ?? ''}` : '',
    mounts: JSON.stringify(mounts),
    tmpfs: JSON.stringify(o.tmpfs),
    cwd: o.cwd,
    hostname: o.hostname,
    network: o.network,
    net: JSON.stringify(o.net),
    uid: String(o.uid),
    gid: String(o.gid),
    idMap: o.idMap,
    rlimits: o.rlimits.map(([n, s, h]) => `${n}:${s}:${h}`).join(','),
    seccomp: o.seccomp ? `${o.seccomp.mode}:${o.seccomp.compiled.id}` : 'none',
    limits: JSON.stringify(o.limits),
    cgroup: `${o.cgroup}:${o.cgroupParent ?? ''}`,
    landlock: String(o.landlock),
    writableRoot: String(o.writableRoot),
    tmpSize: String(o.tmpSize),
    shmSize: String(o.shmSize),
  };
}

export class Pool extends PoolRunner implements SandboxSource {
  private readonly base: SandboxOptions;
  private readonly template: ResolvedOptions;
  private readonly templateShape: Record<string, string>;
  private readonly slot: Required<PoolSlot> | undefined;
  /** The slot directory of each sandbox made ahead and not yet leased (the pool removes it if the sandbox dies idle). */
  private readonly slotDirs = new Map<PooledSandbox, string>();
  private ready: PooledSandbox[] = [];
  /** Sandboxes launched and not yet exited: ready, or gone idle-dead and not yet reaped. */
  private readonly idle = new Map<number, { sandbox: PooledSandbox; exited: Promise<void> }>();
  private refillScheduled = false;
  /** Sandboxes being made on the launcher thread. */
  private launching = 0;
  /** Resolved as launches in flight come back (close() waits for them). */
  private readonly launches = new Set<() => void>();
  /** The multi-id map each sandbox gets before it is ready (idMap 'multi'). */
  private multi?: MultiMapPlan;
  private closed = false;
  private retryMs = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Why the last sandbox made ahead failed its setup; the pool stops making more. */
  private broken: string | undefined;
  readonly stats = { made: 0, taken: 0, misses: 0, diedIdle: 0 };

  /** @internal use createPool() */
  constructor(
    options: PoolOptions,
    readonly size: number,
  ) {
    super();
    const { size: _size, slot, ...base } = options;
    this.base = base;
    if (slot !== undefined) {
      if (slot === null || typeof slot !== 'object' || typeof slot.target !== 'string' || !isAbsolute(slot.target) || slot.target === '/')
        throw new OptionsError('slot.target', `expected an absolute path below /, got ${JSON.stringify((slot as PoolSlot | null)?.target)}`);
      if (slot.root !== undefined && (typeof slot.root !== 'string' || !isAbsolute(slot.root))) throw new OptionsError('slot.root', `expected an absolute path, got ${JSON.stringify(slot.root)}`);
      this.slot = { target: slot.target, readonly: slot.readonly === true, root: slot.root ?? tmpdir() };
    }
    this.template = withoutBackstop(resolveOptions(['/bin/true'], applyProfile(base)));
    if (this.template.image?.containerDir) throw new OptionsError('container', 'a kept container is one sandbox after another, not a pool of them');
    if (needsNetworkHelper(this.template.network, this.template.net) || this.template.network === 'host')
      throw new OptionsError('network', `pools make their sandboxes ahead, before any pasta or published port: run network '${this.template.network}'${this.template.net.publish.length ? ' with published ports' : ''} without a pool`);
    // A multi-id map is written by newuidmap/newgidmap as each sandbox is
    // made ahead, off the runs' path: a pool makes them at no cost to a run.
    if (this.template.idMap === 'multi') {
      const m = switchesIds(this.template) ? planMultiMap(0, 0) : planMultiMap(this.template.uid, this.template.gid);
      if ('error' in m) throw new OptionsError('idMap', m.error.message);
      this.multi = m;
    }
    this.templateShape = shape(this.template);
    this.refill();
  }

  check(o: ResolvedOptions): void {
    if (this.slot) throw new OptionsError('slot', "a slot pool's runs go through lease()");
    this.compare(shape(o));
  }

  /** @internal A lease's run: its options with its own slot mount, which is the only mount it may add. */
  checkSlot(o: ResolvedOptions, dir: string): void {
    this.compare(shape(o, { target: this.slot!.target, dir }));
  }

  private compare(s: Record<string, string>): void {
    const differs = Object.keys(s).filter((k) => s[k] !== this.templateShape[k]);
    if (differs.length)
      throw new OptionsError(differs[0], `a pool's runs share the sandbox it made ahead; ${differs.join(', ')} differ${differs.length === 1 ? 's' : ''} from the pool's (use run(), or a pool made for these options)`);
  }

  take(): PooledSandbox | undefined {
    if (this.slot) return undefined;
    return this.takeReady();
  }

  /**
   * A sandbox of this slot pool and its directory, for one run. When none
   * is ready the lease has a fresh directory and its run starts a sandbox
   * the ordinary way with that directory bound at the slot.
   */
  lease(): PoolLease {
    if (!this.slot) throw new OptionsError('slot', 'lease() is for pools made with a slot');
    if (this.closed) throw new OptionsError('pool', 'the pool is closed');
    const s = this.takeReady();
    if (s) {
      const dir = this.slotDirs.get(s)!;
      this.slotDirs.delete(s);
      return new PoolLease(this, dir, s);
    }
    return new PoolLease(this, this.makeSlotDir(), undefined);
  }

  private makeSlotDir(): string {
    const { root } = this.slot!;
    mkdirSync(root, { recursive: true, mode: 0o700 });
    const dir = mkdtempSync(join(root, 'slot-'));
    // The sandbox's user is the directory's owner (single-id map); others get no more than they would of a box.
    chmodSync(dir, 0o755);
    return dir;
  }

  /** @internal */
  spawnLeased(argv: string[], defaults: SandboxOptions, options: PoolRunOptions, dir: string, source: SandboxSource): SandboxProcess {
    if (options === null || typeof options !== 'object') throw new OptionsError('options', 'expected an object');
    const merged = mergeLayer({ ...this.base, ...defaults } as Record<string, unknown>, options as Record<string, unknown>) as SandboxOptions;
    merged.mounts = [...(this.base.mounts ?? []), { source: dir, target: this.slot!.target, readonly: this.slot!.readonly }];
    return new SandboxProcess(argv, merged, source);
  }

  private takeReady(): PooledSandbox | undefined {
    const s = this.ready.shift();
    if (s) {
      this.stats.taken++;
      this.idle.delete(s.pidfd);
    } else this.stats.misses++;
    this.scheduleRefill();
    return s;
  }

  /** Sandboxes ready now. */
  get available(): number {
    return this.ready.length;
  }

  /** Ends the sandboxes waiting in the pool and removes their cgroups; runs under way go on. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    // Launches still in flight come back first (and are ended as they do).
    while (this.launching > 0) await new Promise<void>((r) => this.launches.add(r));
    const waits = [...this.idle.values()].map((e) => e.exited);
    for (const s of this.ready) native.kill(s.pidfd, 9);
    this.ready = [];
    await Promise.all(waits);
  }

  protected spawnWith(argv: string[], defaults: SandboxOptions, options: PoolRunOptions): SandboxProcess {
    if (this.slot) throw new OptionsError('slot', "a slot pool's runs go through lease()");
    if (this.closed) throw new OptionsError('pool', 'the pool is closed');
    if (options === null || typeof options !== 'object') throw new OptionsError('options', 'expected an object');
    return new SandboxProcess(argv, mergeLayer({ ...this.base, ...defaults } as Record<string, unknown>, options as Record<string, unknown>) as SandboxOptions, this);
  }

  private scheduleRefill(): void {
    if (this.refillScheduled || this.closed) return;
    this.refillScheduled = true;
    // After the run that took a sandbox has started: preparing the next one
    // is not on its path (and its clone runs on the addon's launcher thread).
    setImmediate(() => {
      this.refillScheduled = false;
      this.refill();
    });
  }

  private refill(): void {
    while (!this.closed && !this.broken && this.ready.length + this.launching < this.size) if (!this.makeOne()) break;
  }

  private makeOne(): boolean {
    let o = this.template;
    let slotDir: string | undefined;
    if (this.slot) {
      try {
        slotDir = this.makeSlotDir();
      } catch (e) {
        this.fail(`slot: ${(e as Error).message}`, errnoOf(e, 0));
        return false;
      }
      // The bind is made now, while the sandbox is set up; what the lease's holder writes there later shows through it.
      o = { ...o, mounts: [...o.mounts, { source: slotDir, target: this.slot.target, readonly: this.slot.readonly, optional: false }] };
    }
    const dropSlot = () => slotDir && rmSync(slotDir, { recursive: true, force: true });
    const multi = this.multi;
    const prep = prepareSandbox(o, true);
    if ('error' in prep) {
      dropSlot();
      prep.cgroups?.remove().catch(() => {});
      this.fail(prep.error.message, prep.error.errno);
      return false;
    }
    let cgroupFds: number[] | undefined;
    let sandbox: PooledSandbox | undefined;
    let exitedResolve!: () => void;
    const exited = new Promise<void>((r) => (exitedResolve = r));
    try {
      cgroupFds = prep.cgroups?.joinFds();
      native.launchAsync(
        {
          steps: prep.built.prepared,
          argv: [],
          envp: [],
          execPaths: [],
          stdio: [-1, -1, -1],
          namespaces: ALL_NAMESPACES,
          uidMap: `${o.uid} ${process.getuid!()} 1\n`,
          gidMap: `${o.gid} ${process.getgid!()} 1\n`,
          // A multi-id map: init waits until the helpers have written it.
          deferRelease: multi !== undefined,
          initName: 'brig-init',
          noClone3: process.env.BRIG_NO_CLONE3 === '1',
          timings: false,
          notify: o.seccomp ? (o.seccomp.mode === 'learn' ? 2 : 1) : 0,
          refusals: o.seccomp?.mode === 'report' ? o.seccomp.compiled.refusals : undefined,
          auditArch: AUDIT_ARCH[hostArch()],
          cgroupFds,
          skeleton: prep.built.skeleton,
          awaitCommand: true,
        },
        (err, info) => {
          const launched = () => {
            this.launching--;
            for (const r of this.launches) r();
            this.launches.clear();
          };
          for (const fd of cgroupFds ?? []) native.close(fd);
          if (err || !info) {
            launched();
            dropSlot();
            prep.cgroups?.remove().catch(() => {});
            this.fail(err?.message ?? 'launch failed', err ? errnoOf(err) : undefined);
            return;
          }
          const made = { pid: info.pid, pidfd: info.pidfd, prepared: prep };
          sandbox = made;
          if (slotDir) this.slotDirs.set(made, slotDir);
          this.idle.set(made.pidfd, { sandbox: made, exited });
          const ready = () => {
            launched();
            this.stats.made++;
            this.retryMs = 0;
            if (this.closed) native.kill(made.pidfd, 9);
            else this.ready.push(made);
          };
          if (!multi) return ready();
          // Counted as launching until mapped (and released), so that close()
          // waits for it; if the helpers fail, it is killed before it ran
          // anything (diedIdle cleans up) and the pool stops.
          writeMultiMap(info.pid, multi).then(
            () => {
              try {
                native.release(made.pidfd);
              } catch {
                // it died meanwhile: diedIdle hears of it
              }
              ready();
            },
            (e: Error) => {
              launched();
              native.kill(made.pidfd, 9);
              this.fail(`id-map: ${e.message}`);
            },
          );
        },
        (ex) => {
          this.diedIdle(sandbox!, ex);
          exitedResolve();
        },
      );
    } catch (e) {
      for (const fd of cgroupFds ?? []) native.close(fd);
      dropSlot();
      prep.cgroups?.remove().catch(() => {});
      this.fail((e as Error).message, errnoOf(e, 0));
      return false;
    }
    this.launching++;
    return true;
  }

  /**
   * Runs start fresh while the pool cannot make sandboxes. Running out of
   * fds, processes or memory passes: the pool tries again later, waiting
   * longer each time (up to 5 s). Anything else is the options' fault and
   * would fail every time, so the pool stops.
   */
  private fail(why: string, errno?: number): void {
    this.broken = why;
    const transient = errno !== undefined && TRANSIENT_ERRNOS.has(errno);
    log().warn({ error: why, retry: transient }, 'pool: cannot make sandboxes ahead; runs start fresh');
    if (!transient || this.closed) return;
    this.retryMs = Math.min(this.retryMs ? this.retryMs * 2 : 50, 5000);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.broken = undefined;
      this.refill();
    }, this.retryMs);
    this.retryTimer.unref();
  }

  /** A sandbox ended before any run took it: closed, killed, or its setup failed. */
  private diedIdle(s: PooledSandbox, ex: NativeExit): void {
    this.idle.delete(s.pidfd);
    this.ready = this.ready.filter((r) => r !== s);
    s.prepared.cgroups?.remove().catch(() => {});
    const dir = this.slotDirs.get(s);
    if (dir !== undefined) {
      this.slotDirs.delete(s);
      rmSync(dir, { recursive: true, force: true });
    }
    if (this.closed) return;
    this.stats.diedIdle++;
    const failed = ex.reports.find((r) => r.kind === ReportKind.StepFailed);
    if (failed) {
      const step = s.prepared.built.steps[failed.step];
      this.broken = `${step?.name ?? 'setup'} failed for ${step?.path ?? '?'} (errno ${failed.errno})`;
      log().warn({ error: this.broken }, 'pool: a sandbox made ahead failed its setup; runs start fresh');
      return;
    }
    this.scheduleRefill();
  }
}

/**
 * A pool of sandboxes made ahead with `options` (a profile and any policy
 * options), `size` of them kept ready. Its runs take per-run options only
 * (argv, env, stdio, time and output limits, signal, timings); when none is
 * ready a run starts a sandbox the ordinary way. close() ends the idle ones.
 */
export function createPool(options: PoolOptions = {}): Pool {
  const size = options.size ?? 2;
  if (!Number.isSafeInteger(size) || size < 0 || size > 1024) throw new OptionsError('size', `expected a whole number from 0 to 1024, got ${String(size)}`);
  return new Pool(options, size);
}
