// Warm pools: sandboxes made ahead of the runs that will use them. A pooled
// sandbox is cloned into its namespaces, given its id maps, cgroups, mounts,
// /proc, /dev, hostname and pivoted root, and then waits at the plan's
// await-command step. A run hands it argv, env and stdio; what is left to do
// is what every program start costs: fork, the per-process steps (cgroup
// join, rlimits, capabilities, seccomp) and exec. Each sandbox serves one
// run (its /tmp and processes are that run's), and the pool makes another.
import { errnoOf, OptionsError, TRANSIENT_ERRNOS } from './errors.js';
import { log } from './log.js';
import { native, type NativeExit, ReportKind } from './native.js';
import { resolveOptions, type ResolvedOptions, type SandboxOptions } from './options.js';
import { ALL_NAMESPACES } from './plan.js';
import { needsNetworkHelper } from './net/index.js';
import { applyProfile, mergeLayer } from './profile/index.js';
import { prepareSandbox, SandboxProcess, type PooledSandbox, type RunResult, type SandboxSource } from './sandbox.js';
import { AUDIT_ARCH, hostArch } from './seccomp/index.js';

/** The sandbox every run of the pool gets; per-run stdio, signal and timings have no place here. */
export interface PoolOptions extends Omit<SandboxOptions, 'stdin' | 'stdout' | 'stderr' | 'signal' | 'timings'> {
  /** Sandboxes kept ready. Default 2. */
  size?: number;
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

/** The fields a sandbox made ahead is built from: a run must agree on all of them. */
function shape(resolved: ResolvedOptions): Record<string, string> {
  const o = withoutBackstop(resolved);
  return {
    rootfs: o.rootfs,
    image: o.image ? `${o.image.digest}:${o.image.containerDir ?? ''}` : '',
    mounts: JSON.stringify(o.mounts),
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

export class Pool implements SandboxSource {
  private readonly base: SandboxOptions;
  private readonly template: ResolvedOptions;
  private readonly templateShape: Record<string, string>;
  private ready: PooledSandbox[] = [];
  /** Sandboxes launched and not yet exited: ready, or gone idle-dead and not yet reaped. */
  private readonly idle = new Map<number, { sandbox: PooledSandbox; exited: Promise<void> }>();
  private refillScheduled = false;
  /** Sandboxes being made on the launcher thread. */
  private launching = 0;
  /** Resolved as launches in flight come back (close() waits for them). */
  private readonly launches = new Set<() => void>();
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
    const { size: _size, ...base } = options;
    this.base = base;
    this.template = withoutBackstop(resolveOptions(['/bin/true'], applyProfile(base)));
    if (this.template.image?.containerDir) throw new OptionsError('container', 'a kept container is one sandbox after another, not a pool of them');
    if (needsNetworkHelper(this.template.network, this.template.net) || this.template.network === 'host')
      throw new OptionsError('network', `pools make their sandboxes ahead, before any pasta or published port: run network '${this.template.network}'${this.template.net.publish.length ? ' with published ports' : ''} without a pool`);
    if (this.template.idMap === 'multi') throw new OptionsError('idMap', "pools make single-id sandboxes; 'multi' needs newuidmap per sandbox");
    this.templateShape = shape(this.template);
    this.refill();
  }

  check(o: ResolvedOptions): void {
    const s = shape(o);
    const differs = Object.keys(s).filter((k) => s[k] !== this.templateShape[k]);
    if (differs.length)
      throw new OptionsError(differs[0], `a pool's runs share the sandbox it made ahead; ${differs.join(', ')} differ${differs.length === 1 ? 's' : ''} from the pool's (use run(), or a pool made for these options)`);
  }

  take(): PooledSandbox | undefined {
    const s = this.ready.shift();
    if (s) {
      this.stats.taken++;
      this.idle.delete(s.pidfd);
    } else this.stats.misses++;
    this.scheduleRefill();
    return s;
  }

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

  private spawnWith(argv: string[], defaults: SandboxOptions, options: PoolRunOptions): SandboxProcess {
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
    const o = this.template;
    const prep = prepareSandbox(o, true);
    if ('error' in prep) {
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
          deferRelease: false,
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
          this.launching--;
          for (const fd of cgroupFds ?? []) native.close(fd);
          for (const r of this.launches) r();
          this.launches.clear();
          if (err || !info) {
            prep.cgroups?.remove().catch(() => {});
            this.fail(err?.message ?? 'launch failed', err ? errnoOf(err) : undefined);
            return;
          }
          sandbox = { pid: info.pid, pidfd: info.pidfd, prepared: prep };
          this.stats.made++;
          this.retryMs = 0;
          this.idle.set(sandbox.pidfd, { sandbox, exited });
          if (this.closed) native.kill(sandbox.pidfd, 9);
          else this.ready.push(sandbox);
        },
        (ex) => {
          this.diedIdle(sandbox!, ex);
          exitedResolve();
        },
      );
    } catch (e) {
      for (const fd of cgroupFds ?? []) native.close(fd);
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
