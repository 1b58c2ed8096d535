// Where this process's cgroups are and which of them brig may create under.
//
// Rules of the house: create only beneath the cgroup this process is in, or
// beneath a parent the caller names (option cgroupParent or
// BRIG_CGROUP_PARENT: an admin-delegated subtree); never move a process out
// of its subtree; remove what was made.
import { accessSync, constants as fsConstants, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const CONTROLLERS = ['memory', 'pids', 'cpu', 'cpuset'] as const;
export type Controller = (typeof CONTROLLERS)[number];

export interface V1Place {
  /** Mount of the hierarchy, e.g. /sys/fs/cgroup/memory */
  mount: string;
  /** Directory new cgroups go under. */
  parent: string;
}

export interface Hierarchies {
  /** cgroup v2: the unified mount and, if it serves the controllers, the parent to use. */
  v2?: { mount: string; parent: string; controllers: string[] };
  /** cgroup v1 hierarchies by controller (cpu and cpuacct may share one). */
  v1: Map<string, V1Place>;
}

/** A cgroup directory we may make children in and move tasks into. */
export function writable(dir: string): boolean {
  try {
    accessSync(dir, fsConstants.W_OK | fsConstants.X_OK);
    accessSync(join(dir, 'cgroup.procs'), fsConstants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The hierarchies as /proc/self/mountinfo and /proc/self/cgroup describe
 * them. `parentOverride` is relative to each hierarchy's root (v1) or to the
 * unified mount (v2), or absolute.
 */
export function discover(parentOverride?: string): Hierarchies {
  const own = new Map<string, string>(); // "memory" or "" (v2) -> path
  for (const line of readFileSync('/proc/self/cgroup', 'utf8').split('\n')) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    for (const c of m[1].split(',')) own.set(c, m[2]);
  }
  const out: Hierarchies = { v1: new Map() };
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!post) continue;
    const fields = pre.split(' ');
    const [fstype, , superOpts] = post.split(' ');
    const mountPoint = fields[4];
    const root = fields[3];
    const place = (ownPath: string | undefined) => {
      let dir: string;
      if (parentOverride) dir = parentOverride.startsWith('/') ? parentOverride : join(mountPoint, parentOverride);
      else if (ownPath === undefined) return null;
      // A mount of a sub-tree (inside a cgroup namespace, say) shows paths below its root.
      else dir = join(mountPoint, root !== '/' && ownPath.startsWith(root) ? ownPath.slice(root.length) : ownPath);
      return resolve(dir); // no trailing slash: parents are compared as paths
    };
    if (fstype === 'cgroup2') {
      const parent = place(own.get(''));
      if (!parent) continue;
      let controllers: string[] = [];
      try {
        controllers = readFileSync(join(parent, 'cgroup.controllers'), 'utf8').trim().split(/\s+/).filter(Boolean);
      } catch {
        // not there: no v2 controllers for us
      }
      out.v2 = { mount: mountPoint, parent, controllers };
    } else if (fstype === 'cgroup') {
      for (const opt of (superOpts ?? '').split(',')) {
        if (!['memory', 'pids', 'cpu', 'cpuacct', 'cpuset'].includes(opt)) continue;
        const parent = place(own.get(opt));
        if (parent) out.v1.set(opt, { mount: mountPoint, parent });
      }
    }
  }
  return out;
}

export type Backend =
  | { kind: 'v2'; parent: string }
  | { kind: 'v1'; places: Map<string, V1Place> }
  | { kind: 'none'; why: string };

/** The best way to get these controllers: v2 where it serves them all, else v1, else none (and why). */
export function chooseBackend(h: Hierarchies, wanted: Controller[]): Backend {
  if (h.v2 && wanted.every((c) => h.v2!.controllers.includes(c)) && writable(h.v2.parent)) return { kind: 'v2', parent: h.v2.parent };
  const places = new Map<string, V1Place>();
  const missing: string[] = [];
  for (const c of [...wanted, ...(wanted.includes('cpu') ? ['cpuacct'] : [])]) {
    const p = h.v1.get(c);
    if (p && writable(p.parent)) places.set(c, p);
    else if (c !== 'cpuacct') missing.push(c);
  }
  if (!missing.length && places.size) return { kind: 'v1', places };
  const v2note = h.v2 ? (h.v2.controllers.length ? `cgroup v2 at ${h.v2.parent} offers ${h.v2.controllers.join(' ')}` : `cgroup v2 at ${h.v2.parent} offers no controllers`) : 'no cgroup v2';
  return {
    kind: 'none',
    why:
      `no writable cgroup for ${missing.join(', ') || wanted.join(', ')} (${v2note}). ` +
      'Get a delegated cgroup with `systemd-run --user --scope -p Delegate=yes -- node ...`, ' +
      'or have an admin chown a subtree to you and point BRIG_CGROUP_PARENT at it',
  };
}
