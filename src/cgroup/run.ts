// One run's cgroups: made before the launch, the sandbox attached before it
// runs a step (addon/launch.cc), read and removed when it has exited.
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmdirSync, writeFileSync, constants as fsConstants } from 'node:fs';
import { dirname, join } from 'node:path';
import { chooseBackend, discover, type Backend, type Controller } from './hierarchy.js';
import { pidAlive } from '../kernel.js';

export interface CgroupLimits {
  memoryBytes?: number;
  pids?: number;
  cpus?: number;
  cpuset?: string;
}

export interface CgroupUsage {
  memoryPeakBytes?: number;
  oomKilled: boolean;
  pidsLimitHit: boolean;
  pidsPeak?: number;
  cpuUserMs?: number;
  cpuSystemMs?: number;
}

const CFS_PERIOD_US = 100_000;
let seq = 0;
const swept = new Set<string>();
let cached: { key: string; backend: Backend; parents: string[] } | undefined;

/** The backend for these limits, and every hierarchy's parent (for the sweep). */
function backendFor(limits: CgroupLimits, parentOverride: string | undefined): { backend: Backend; parents: string[] } {
  const wanted: Controller[] = [];
  if (limits.memoryBytes !== undefined) wanted.push('memory');
  if (limits.pids !== undefined) wanted.push('pids');
  if (limits.cpus !== undefined) wanted.push('cpu');
  if (limits.cpuset !== undefined) wanted.push('cpuset');
  const key = `${wanted.join(',')}|${parentOverride ?? ''}`;
  if (cached?.key !== key) {
    const h = discover(parentOverride);
    // Every hierarchy's parent is swept, not only the ones this run uses: a
    // dead process may have used others.
    const parents = [...new Set([...(h.v2?.controllers.length ? [h.v2.parent] : []), ...[...h.v1.values()].map((p) => p.parent)])];
    cached = { key, backend: chooseBackend(h, wanted), parents };
  }
  return cached;
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function keyed(text: string | undefined, key: string): number | undefined {
  const m = text && new RegExp(`^${key} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

/** Removes what brig processes that died left under `parent` (their sandboxes died with them). */
function sweep(parent: string): void {
  if (swept.has(parent)) return;
  swept.add(parent);
  let names: string[] = [];
  try {
    names = readdirSync(parent);
  } catch {
    return;
  }
  for (const name of names) {
    const m = /^brig-(\d+)-\d+$/.exec(name);
    if (!m || Number(m[1]) === process.pid || pidAlive(Number(m[1]))) continue;
    const dir = join(parent, name);
    // v2 can kill what is left in one write; on v1 the sandbox's processes
    // died with their init (PDEATHSIG), so the directory is empty.
    try {
      writeFileSync(join(dir, 'cgroup.kill'), '1');
    } catch {
      // v1, or nothing to kill
    }
    try {
      rmdirSync(dir);
    } catch {
      // still busy: the next process start tries again
    }
  }
}

export class RunCgroups {
  readonly dirs: string[] = [];
  /** The cgroup.procs files the sandbox's program joins (see joinFds). */
  readonly procs: string[] = [];

  private constructor(
    readonly backend: Exclude<Backend, { kind: 'none' }>,
    private readonly limits: CgroupLimits,
  ) {}

  /** The run's cgroups with their limits, or why there are none. */
  static create(limits: CgroupLimits, parentOverride?: string): RunCgroups | { unavailable: string } {
    const { backend, parents } = backendFor(limits, parentOverride);
    if (backend.kind === 'none') {
      // A parent the caller named must work: falling back would hide a mistake.
      if (parentOverride) throw Object.assign(new Error(`cgroup parent ${parentOverride}: ${backend.why}`), { code: 'EACCES', errno: -13, path: parentOverride });
      return { unavailable: backend.why };
    }
    const cg = new RunCgroups(backend, limits);
    const name = `brig-${process.pid}-${++seq}`;
    try {
      for (const parent of parents) sweep(parent);
      if (backend.kind === 'v2') {
        cg.makeV2(join(backend.parent, name));
      } else {
        const done = new Set<string>();
        for (const [controller, place] of backend.places) {
          const dir = join(place.parent, name);
          if (done.has(dir)) continue; // cpu and cpuacct mounted together
          done.add(dir);
          cg.makeV1(controller, dir);
        }
      }
    } catch (e) {
      cg.remove();
      throw e;
    }
    return cg;
  }

  private mkdir(dir: string): void {
    mkdirSync(dir);
    this.dirs.push(dir);
    this.procs.push(join(dir, 'cgroup.procs'));
  }

  private makeV2(dir: string): void {
    this.mkdir(dir);
    const l = this.limits;
    if (l.memoryBytes !== undefined) {
      writeFileSync(join(dir, 'memory.max'), String(l.memoryBytes));
      // Swap would let a program use more than its limit, slowly.
      try {
        writeFileSync(join(dir, 'memory.swap.max'), '0');
      } catch {
        // no swap accounting: no swap to limit
      }
      // One out-of-memory kill takes the whole sandbox, not a random process in it.
      writeFileSync(join(dir, 'memory.oom.group'), '1');
    }
    if (l.pids !== undefined) writeFileSync(join(dir, 'pids.max'), String(l.pids));
    if (l.cpus !== undefined) writeFileSync(join(dir, 'cpu.max'), `${Math.round(l.cpus * CFS_PERIOD_US)} ${CFS_PERIOD_US}`);
    if (l.cpuset !== undefined) writeFileSync(join(dir, 'cpuset.cpus'), l.cpuset);
  }

  /**
   * cgroup.procs opened for writing, for the program to join with "0" before
   * it execs (addon/child.cc: STEP_CGROUP_JOIN): the kernel checks that move
   * against this process, which opened them. Close them after the launch.
   */
  joinFds(): number[] {
    const fds: number[] = [];
    try {
      for (const p of this.procs) fds.push(openSync(p, fsConstants.O_WRONLY));
    } catch (e) {
      for (const fd of fds) closeSync(fd);
      throw e;
    }
    return fds;
  }

  private makeV1(controller: string, dir: string): void {
    this.mkdir(dir);
    const l = this.limits;
    if (controller === 'memory' && l.memoryBytes !== undefined) {
      writeFileSync(join(dir, 'memory.limit_in_bytes'), String(l.memoryBytes));
      try {
        // memory+swap at the same limit: no swap beyond it (needs swap accounting)
        writeFileSync(join(dir, 'memory.memsw.limit_in_bytes'), String(l.memoryBytes));
      } catch {
        writeFileSync(join(dir, 'memory.swappiness'), '0');
      }
    }
    if (controller === 'pids' && l.pids !== undefined) writeFileSync(join(dir, 'pids.max'), String(l.pids));
    if (controller === 'cpu' && l.cpus !== undefined) {
      writeFileSync(join(dir, 'cpu.cfs_period_us'), String(CFS_PERIOD_US));
      writeFileSync(join(dir, 'cpu.cfs_quota_us'), String(Math.round(l.cpus * CFS_PERIOD_US)));
    }
    if (controller === 'cpuset' && l.cpuset !== undefined) {
      // A new v1 cpuset starts with no memory nodes: attaching would fail.
      writeFileSync(join(dir, 'cpuset.mems'), (read(join(dir, '..', 'cpuset.mems')) ?? '0').trim() || '0');
      writeFileSync(join(dir, 'cpuset.cpus'), l.cpuset);
    }
  }

  private dir(controller: string): string | undefined {
    if (this.backend.kind === 'v2') return this.dirs[0];
    const place = this.backend.places.get(controller);
    return place ? this.dirs.find((d) => dirname(d) === place.parent) : undefined;
  }

  /** What the kernel counted for the whole tree. */
  usage(): CgroupUsage {
    const u: CgroupUsage = { oomKilled: false, pidsLimitHit: false };
    const mem = this.dir('memory');
    const pids = this.dir('pids');
    const cpu = this.dir('cpuacct') ?? this.dir('cpu');
    if (this.backend.kind === 'v2') {
      const d = this.dirs[0];
      const peak = read(join(d, 'memory.peak'));
      if (peak) u.memoryPeakBytes = Number(peak);
      u.oomKilled = (keyed(read(join(d, 'memory.events')), 'oom_kill') ?? 0) > 0;
      u.pidsLimitHit = (keyed(read(join(d, 'pids.events')), 'max') ?? 0) > 0;
      const stat = read(join(d, 'cpu.stat'));
      const us = keyed(stat, 'user_usec');
      const sy = keyed(stat, 'system_usec');
      if (us !== undefined) u.cpuUserMs = us / 1000;
      if (sy !== undefined) u.cpuSystemMs = sy / 1000;
    } else {
      if (mem) {
        const peak = read(join(mem, 'memory.max_usage_in_bytes'));
        if (peak) u.memoryPeakBytes = Number(peak);
        u.oomKilled = (keyed(read(join(mem, 'memory.oom_control')), 'oom_kill') ?? 0) > 0;
      }
      if (cpu && this.limits.cpus !== undefined) {
        const us = read(join(cpu, 'cpuacct.usage_user'));
        const sy = read(join(cpu, 'cpuacct.usage_sys'));
        if (us && sy) {
          u.cpuUserMs = Number(us) / 1e6;
          u.cpuSystemMs = Number(sy) / 1e6;
        }
      }
    }
    if (pids) {
      u.pidsLimitHit ||= (keyed(read(join(pids, 'pids.events')), 'max') ?? 0) > 0;
      const peak = read(join(pids, 'pids.peak'));
      if (peak) u.pidsPeak = Number(peak);
    }
    return u;
  }

  /**
   * Removes every cgroup made; the sandbox's processes are gone by now, but
   * the kernel may take a moment to let go of the last one (EBUSY).
   */
  async remove(): Promise<void> {
    for (const d of this.dirs.splice(0).reverse()) {
      for (let i = 0; ; i++) {
        try {
          rmdirSync(d);
          break;
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code === 'ENOENT') break;
          if (code !== 'EBUSY' || i >= 400) throw e;
          await new Promise((r) => setTimeout(r, 5));
        }
      }
    }
  }
}
