// A container's own cgroups, beside the per-run ones limits make
// (src/cgroup/run.ts): the freezer, for pause, and accounting (cpuacct,
// memory, pids) for stats, in every v1 hierarchy brig may write and the run
// does not already use; on a delegated v2 tree, one directory. Only beneath
// this process's own cgroup (or BRIG_CGROUP_PARENT), and removed at the end.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { discover, writable } from '../cgroup/hierarchy.js';

export interface ContainerCgroups {
  dirs: string[];
  /** cgroup.procs files the program joins. */
  procs: string[];
}


/** Mount points of the cgroup hierarchies, by controller ('' for v2). */
export function cgroupMounts(): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!post) continue;
    const fields = pre.split(' ');
    const [fstype, , superOpts] = post.split(' ');
    if (fields[3] !== '/') continue;
    if (fstype === 'cgroup2') out.set('', fields[4]);
    else if (fstype === 'cgroup') for (const o of (superOpts ?? '').split(',')) if (['freezer', 'memory', 'pids', 'cpu', 'cpuacct', 'cpuset'].includes(o)) out.set(o, fields[4]);
  }
  return out;
}

/** Where a process is, by controller ('' for v2), as host paths. */
export function cgroupsOf(pid: number): Map<string, string> {
  const mounts = cgroupMounts();
  const out = new Map<string, string>();
  let text = '';
  try {
    text = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  } catch {
    return out;
  }
  for (const line of text.split('\n')) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    for (const c of m[1] === '' ? [''] : m[1].split(',')) {
      const mount = mounts.get(c);
      if (mount) out.set(c, join(mount, m[2]));
    }
  }
  return out;
}

/**
 * Makes the container's cgroups, leaving out the controllers the run's limits
 * take (`limited`: v1 controller names). Nothing writable: none, and pause
 * falls back to stopping the processes.
 */
export function makeContainerCgroups(id: string, limited: Set<string>, parentOverride?: string): ContainerCgroups {
  const out: ContainerCgroups = { dirs: [], procs: [] };
  const name = `brig-ctr-${id.slice(0, 12)}`;
  const h = discover(parentOverride);
  const add = (dir: string) => {
    if (!existsSync(dir)) mkdirSync(dir);
    out.dirs.push(dir);
    out.procs.push(join(dir, 'cgroup.procs'));
  };
  // A delegated v2 tree: one directory, unless the run's limits made one.
  // (A v2 tree without the memory and pids controllers, as on hybrid hosts, counts nothing: v1 then.)
  if (h.v2 && ['memory', 'pids'].every((c) => h.v2!.controllers.includes(c)) && writable(h.v2.parent)) {
    if (limited.size === 0) add(join(h.v2.parent, name));
    return out;
  }
  const places = new Map<string, string>([...h.v1].map(([c, p]) => [c, p.parent]));
  // The freezer is not among the controllers discover() knows: the same rule, our own cgroup in it.
  const freezerMount = cgroupMounts().get('freezer');
  if (freezerMount) {
    const own = /^\d+:([^:]*freezer[^:]*):(.*)$/m.exec(readFileSync('/proc/self/cgroup', 'utf8'));
    if (own) places.set('freezer', parentOverride ? (parentOverride.startsWith('/') ? parentOverride : join(freezerMount, parentOverride)) : join(freezerMount, own[2]));
  }
  for (const c of ['freezer', 'cpuacct', 'memory', 'pids']) {
    if (limited.has(c)) continue;
    const parent = places.get(c);
    if (!parent || !writable(parent)) continue;
    const dir = join(parent, name);
    if (out.dirs.includes(dir)) continue;
    try {
      add(dir);
    } catch {
      // this hierarchy refused: the container goes without it
    }
  }
  return out;
}

/** How pause works for a process: its freezer cgroup (v1 or v2), else SIGSTOP. */
export function freezerOf(pid: number, ours: string[]): { kind: 'cgroup-v1' | 'cgroup-v2'; dir: string } | undefined {
  const cg = cgroupsOf(pid);
  const v1 = cg.get('freezer');
  if (v1 && /\/brig-/.test(v1) && existsSync(join(v1, 'freezer.state'))) return { kind: 'cgroup-v1', dir: v1 };
  const v2 = cg.get('');
  if (v2 && /\/brig-/.test(v2) && existsSync(join(v2, 'cgroup.freeze'))) return { kind: 'cgroup-v2', dir: v2 };
  void ours;
  return undefined;
}

export function freeze(f: { kind: 'cgroup-v1' | 'cgroup-v2'; dir: string }, on: boolean): void {
  if (f.kind === 'cgroup-v1') writeFileSync(join(f.dir, 'freezer.state'), on ? 'FROZEN' : 'THAWED');
  else writeFileSync(join(f.dir, 'cgroup.freeze'), on ? '1' : '0');
}

/** The brig-made cgroup directories a process is in (to remove if its monitor dies). */
export function brigCgroupsOf(pid: number): string[] {
  return [...new Set([...cgroupsOf(pid).values()].filter((d) => /\/brig-[^/]*$/.test(d)))];
}
