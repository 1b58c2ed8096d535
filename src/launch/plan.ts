// Builds the launch plan: the ordered list of typed steps the sandbox runs
// between clone and execve (addon/child.cc executes them). Like bubblewrap's
// setup operations, each step has a name so a failure can say which one, and
// each group carries the security reason it exists.
import { lstatSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { dirname } from 'node:path';
import { native, StepKind, type NativeStep } from '../native.js';
import { errnoOf, setupErrorInfo, type SetupErrorInfo } from '../errors.js';
import { RLIMIT_NUMBERS, type ResolvedOptions } from './options.js';
import { Skeleton } from './skeleton.js';
import { hostsFile, resolvConf } from '../net/names.js';

// mount(2) flags (include/uapi/linux/mount.h).
const MS_RDONLY = 1;
const MS_NOSUID = 2;
const MS_NODEV = 4;
const MS_NOEXEC = 8;
const MS_REC = 0x4000;
const MS_PRIVATE = 1 << 18;


/** The scaffold: a tmpfs where the host's root is parked (/oldroot) beside the new root (/newroot). */
const STAGE = '/tmp';
const NEW = '/newroot';
const OLD = '/oldroot';
/** An image's writable layer, on the scaffold beside the new root. */
const UPPER = '/upper';

// Top-level host directories the 'host' rootfs shows, read-only. On merged-/usr
// systems most are symlinks into /usr and are recreated as such.
const HOST_DIRS = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];

// What of the host's /etc a program may need to run: the dynamic linker's
// cache, Debian's alternatives (/usr/bin/awk and friends point there), time
// zone, locale and TLS roots. Not: passwd/group (generated below so the host's
// accounts stay private), shadow, ssh, hostname, anything with secrets.
const HOST_ETC = [
  'alternatives',
  'ld.so.cache',
  'ld.so.conf',
  'ld.so.conf.d',
  'localtime',
  'timezone',
  'nsswitch.conf',
  'locale.alias',
  'locale.conf',
  'default/locale',
  'ssl',
  'mime.types',
  'protocols',
  'services',
  'os-release',
  'debian_version',
  'inputrc',
];
// Language runtimes' own configuration (/etc/java-*, /etc/python3*) is not
// here: the language profiles (profiles/java.json, ...) mount what theirs needs.

// /proc entries that would let a process with capabilities change the host
// kernel (they are owned by the host's root, so this is defence in depth).
const PROC_READONLY = ['sys', 'sysrq-trigger', 'irq', 'bus', 'fs'];

// Device nodes bound from the host: the harmless ones every program expects.
const DEVICES = ['null', 'zero', 'full', 'random', 'urandom', 'tty'];

type Kind = 'dir' | 'file' | 'symlink';
function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** A step's path as errors show it: inside the sandbox, or on the host. */
function shown(p: string): string {
  if (p === NEW) return '/';
  if (p.startsWith(NEW + '/')) return p.slice(NEW.length);
  if (p.startsWith(OLD + '/')) return p.slice(OLD.length);
  return p;
}

class PlanBuilder {
  readonly steps: NativeStep[] = [];
  readonly made = new Set<string>();

  add(step: NativeStep): this {
    this.steps.push(step);
    return this;
  }

  /** mkdir -p inside the new root (native resolves it there, see addon/child.cc); `under` (already existing) is not recreated. */
  mkdirs(path: string, under: string): this {
    const parts: string[] = [];
    for (let p = path; p !== under && p !== '/' && p.startsWith(under); p = dirname(p)) parts.push(p);
    for (const p of parts.reverse()) {
      if (this.made.has(p)) continue;
      this.made.add(p);
      this.add({ kind: StepKind.Mkdir, name: 'mkdir', path: shown(p), a: p, mode: 0o755 });
    }
    return this;
  }

  /** A mount's target: an empty file for a file, a directory otherwise. */
  mountpoint(target: string, isDir: boolean): this {
    if (isDir) return this.mkdirs(target, NEW);
    this.mkdirs(dirname(target), NEW);
    return this.add({ kind: StepKind.Touch, name: 'mount-target', path: shown(target), a: target, mode: 0o644 });
  }

  /** A bind mount whose target is created first. */
  bind(name: string, source: string, target: string, readonly: boolean, isDir: boolean): this {
    return this.mountpoint(target, isDir).add(bindStep(name, source, target, readonly));
  }

}

function bindStep(name: string, source: string, target: string, readonly: boolean): NativeStep {
  return { kind: StepKind.Bind, name, path: `${shown(source)} on ${shown(target)}`, a: source, b: target, arg0: readonly ? 1 : 0 };
}

function tmpfsStep(name: string, target: string, flags: number, data: string): NativeStep {
  return { kind: StepKind.Mount, name, path: shown(target), a: 'tmpfs', b: target, c: 'tmpfs', flags, d: data };
}

/**
 * Where the new root is built. Ordinarily every step is the run's own
 * (`tree` is `run`). With a skeleton, what is the same in every run of the
 * plan goes to the skeleton maker's steps (`tree`: files, links, binds of
 * host paths, every mount point), and the run keeps the mounts that must
 * be its own (`run`: /proc of its pid namespace, its devpts, its /tmp and
 * /dev/shm, the caller's mounts).
 */
interface RootBuilders {
  tree: PlanBuilder;
  run: PlanBuilder;
}

// Small regular files of /etc are copied into the new root's tmpfs rather
// than bound: a write is cheaper than an empty target, a bind, a read-only
// remount, and the unmount when the sandbox ends. The copies come from a
// snapshot that is checked against the host at most every few seconds.
const COPY_MAX_BYTES = 16 * 1024;
const ETC_RECHECK_MS = 2000;

interface HostEntry {
  path: string;
  kind: Kind;
  link?: string;
  content?: Buffer;
  stamp: string;
}

let hostSnapshot: { entries: HostEntry[]; generation: number; checkedAt: number } | undefined;

function readHostEntries(): HostEntry[] {
  const out: HostEntry[] = [];
  for (const path of [...HOST_DIRS, ...HOST_ETC.map((n) => '/etc/' + n)]) {
    let st;
    try {
      st = lstatSync(path);
    } catch {
      continue;
    }
    const stamp = `${st.mode}:${st.size}:${st.mtimeMs}:${st.ino}`;
    if (st.isSymbolicLink()) out.push({ path, kind: 'symlink', link: readlinkSync(path), stamp });
    else if (st.isDirectory()) out.push({ path, kind: 'dir', stamp });
    else if (st.isFile() && st.size <= COPY_MAX_BYTES && path.startsWith('/etc/')) {
      try {
        out.push({ path, kind: 'file', content: readFileSync(path), stamp });
      } catch {
        // unreadable by this user: leave it out, as a bind would fail
      }
    } else out.push({ path, kind: 'file', stamp });
  }
  return out;
}

/** The host paths the 'host' rootfs shows; `generation` changes when any of them did. */
function hostEntries(): { entries: HostEntry[]; generation: number } {
  const now = Date.now();
  if (!hostSnapshot) hostSnapshot = { entries: readHostEntries(), generation: 1, checkedAt: now };
  else if (now - hostSnapshot.checkedAt > ETC_RECHECK_MS) {
    const fresh = readHostEntries();
    const same = fresh.length === hostSnapshot.entries.length && fresh.every((e, i) => e.path === hostSnapshot!.entries[i].path && e.stamp === hostSnapshot!.entries[i].stamp);
    hostSnapshot = { entries: same ? hostSnapshot.entries : fresh, generation: hostSnapshot.generation + (same ? 0 : 1), checkedAt: now };
  }
  return hostSnapshot;
}

/**
 * A host directory under a writable root: an overlay with the host's
 * directory as its only lower layer and its upper and work directories on
 * the run's upper tmpfs, so that writes land there and nothing reaches the
 * host. In a user namespace overlayfs keeps its whiteouts and opaque marks
 * in user.overlay.* xattrs (userxattr).
 */
function overlayDir(b: PlanBuilder, source: string, target: string, n: number): void {
  const layer = `${UPPER}/layers/${n}`;
  for (const d of [`${UPPER}/layers`, layer, `${layer}/upper`, `${layer}/work`])
    if (!b.made.has(d)) {
      b.made.add(d);
      b.add({ kind: StepKind.Mkdir, name: 'mkdir', path: d, a: d, mode: 0o755 });
    }
  b.mountpoint(target, true);
  const esc = (p: string) => p.replace(/[\\:,]/g, (c) => `\\${c}`);
  b.add({ kind: StepKind.Mount, name: 'root-overlay', path: shown(target), a: 'overlay', b: target, c: 'overlay', flags: MS_NOSUID | MS_NODEV, d: `lowerdir=${esc(source)},upperdir=${layer}/upper,workdir=${layer}/work,userxattr` });
}

function hostRootSteps(b: PlanBuilder, entries: HostEntry[], writable = false): void {
  b.mkdirs(NEW + '/etc', NEW);
  let layers = 0;
  for (const e of entries) {
    const target = NEW + e.path;
    if (e.kind === 'symlink') {
      b.mkdirs(dirname(target), NEW);
      b.add({ kind: StepKind.Symlink, name: 'symlink', path: shown(target), a: e.link!, b: target });
    } else if (e.content) {
      b.mkdirs(dirname(target), NEW);
      b.add({ kind: StepKind.WriteFile, name: 'etc-copy', path: e.path, a: target, d: e.content, arg0: e.content.length, mode: 0o644 });
    } else if (writable && e.kind === 'dir') overlayDir(b, OLD + e.path, target, layers++);
    else b.bind(e.path.startsWith('/etc/') ? 'etc-bind' : 'host-bind', OLD + e.path, target, true, e.kind === 'dir');
  }
}

function etcFiles(b: PlanBuilder, o: ResolvedOptions, accounts = true): void {
  // Generated, not bound: the host's account list stays private, and the
  // sandbox's own user has a name (tools that call getpwuid need one).
  const passwd =
    `root:x:0:0:root:/root:/usr/sbin/nologin\n` +
    (o.uid !== 0 ? `sandbox:x:${o.uid}:${o.gid}:sandbox:/tmp:/bin/sh\n` : '') +
    `nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n`;
  const group = `root:x:0:\n` + (o.gid !== 0 ? `sandbox:x:${o.gid}:\n` : '') + `nogroup:x:65534:\n`;
  // The name files are the sandbox's own (src/net/names.ts): the host's
  // resolv.conf may name a resolver on its loopback, which is not the
  // sandbox's, and its hosts file says what the host calls its neighbours.
  const hosts = hostsFile(o.hostname, o.network, o.net.names, o.net.hostLoopback);
  const resolv = resolvConf(o.network, o.net.names);
  const files: [string, string][] = [
    ...(accounts ? ([['passwd', passwd], ['group', group]] as [string, string][]) : []),
    ['hosts', hosts],
    ['hostname', o.hostname + '\n'],
    ...(resolv === undefined ? [] : ([['resolv.conf', resolv]] as [string, string][])),
  ];
  b.mkdirs(NEW + '/etc', NEW);
  for (const [name, text] of files) {
    const p = `${NEW}/etc/${name}`;
    b.add({ kind: StepKind.WriteFile, name: 'write-etc', path: shown(p), a: p, d: text, arg0: Buffer.byteLength(text), mode: 0o644 });
  }
}

let procReadonly: string[] | undefined;

export interface BuiltPlan {
  steps: NativeStep[];
  /** The same steps converted by native once (native.prepareSteps). */
  prepared: unknown;
  execPaths: string[];
  /** The skeleton the steps' skeleton step clones (LaunchPlan.skeleton). */
  skeleton?: number;
}

// Plans by everything their steps depend on; a judge runs the same shape of
// sandbox thousands of times, and neither the TS nor the native side should
// rebuild it each time.
const PLAN_CACHE_MAX = 64;
interface CachedPlan {
  steps: NativeStep[];
  prepared: unknown;
  skeleton?: Skeleton;
}
const planCache = new Map<string, CachedPlan>();

/** Builds the plan, or returns the setup error a host-side check found (a missing mount source). */
export function buildPlan(o: ResolvedOptions, cgroups = false, pooled = false): BuiltPlan | { error: SetupErrorInfo } {
  // Checked on every run, cached plan or not: what the host has now.
  if (o.rootfs !== 'host') {
    let st;
    try {
      st = statSync(o.rootfs);
    } catch (e) {
      return { error: setupErrorInfo('rootfs', errnoOf(e, osConstants.errno.ENOENT), o.rootfs) };
    }
    if (!st.isDirectory()) return { error: setupErrorInfo('rootfs', osConstants.errno.ENOTDIR, o.rootfs) };
  }
  for (const l of o.image?.layers ?? []) {
    try {
      statSync(l);
    } catch (e) {
      return { error: setupErrorInfo('image-layer', errnoOf(e, osConstants.errno.ENOENT), l, `image ${o.image!.ref}: its layer is missing from the store`) };
    }
  }
  // null: an optional mount whose source is not on this host, left out.
  const sourceIsDir: (boolean | null)[] = [];
  for (const [i, m] of o.mounts.entries()) {
    try {
      sourceIsDir.push(statSync(m.source).isDirectory());
    } catch (e) {
      if (m.optional && (e as NodeJS.ErrnoException).code === 'ENOENT') {
        sourceIsDir.push(null);
        continue;
      }
      return { error: setupErrorInfo('bind-mount', errnoOf(e, osConstants.errno.ENOENT), m.source, `mounts[${i}].source`) };
    }
  }
  const host = hostEntries();
  const key = JSON.stringify([
    o.rootfs,
    o.image ? [o.image.digest, o.image.layers, o.image.containerDir ?? null] : null,
    o.mounts,
    sourceIsDir,
    o.tmpfs,
    o.hostname,
    o.network,
    o.net.names,
    o.net.hostLoopback,
    o.shmSize,
    o.uid,
    o.gid,
    switchesIds(o),
    o.tmpSize,
    o.cwd,
    o.rlimits.map(([n, s, h]) => `${n}:${s}:${h}`),
    o.seccomp?.compiled.id ?? null,
    o.landlock,
    o.containerView === true,
    o.writableRoot,
    cgroups,
    pooled,
    host.generation,
  ]);
  let cached = planCache.get(key);
  if (!cached) {
    const { steps } = planSteps(o, sourceIsDir, host, cgroups, pooled, false);
    cached = { steps, prepared: native.prepareSteps(steps) };
    if (skeletonFits(o)) {
      const sk = planSteps(o, sourceIsDir, host, cgroups, pooled, true);
      cached.skeleton = new Skeleton(sk.steps, native.prepareSteps(sk.steps), sk.maker!, native.prepareSteps(sk.maker!));
    }
    if (planCache.size >= PLAN_CACHE_MAX) {
      const [oldKey, old] = planCache.entries().next().value!;
      old.skeleton?.retire();
      planCache.delete(oldKey);
    }
    planCache.set(key, cached);
  }
  const execPaths = execCandidates(o.argv[0], o.env.PATH);
  // The skeleton's variant of the plan when its skeleton is ready; meanwhile
  // (and where there is none) the plan that builds its own root.
  const skeleton = cached.skeleton?.take();
  if (skeleton !== undefined) return { steps: cached.skeleton!.steps, prepared: cached.skeleton!.prepared, execPaths, skeleton };
  return { steps: cached.steps, prepared: cached.prepared, execPaths };
}

/**
 * Whether a plan's root can come from a skeleton: the host's root (an
 * image's or a directory's is one mount already), and every mount of the
 * caller's on a target made in the skeleton's own tmpfs. A target inside
 * another mount of the run (/tmp, /proc, /dev, or another of the caller's)
 * is made in that mount when the run has made it, so it stays with the
 * plan that builds its own root.
 */
function skeletonFits(o: ResolvedOptions): boolean {
  // A writable root is per-run overlays over the host's directories: a
  // skeleton's tree is shared and read-only for good, so such a run builds
  // its own root (and later runs of other plans keep their skeletons).
  if (o.image || o.rootfs !== 'host' || o.writableRoot) return false;
  const targets = [...o.mounts.map((m) => m.target), ...o.tmpfs.map((t) => t.target)];
  const inside = (t: string, m: string) => t === m || t.startsWith(m + '/');
  return targets.every((t, i) => !['/tmp', '/proc', '/dev'].some((m) => inside(t, m)) && !targets.some((m, k) => k !== i && inside(t, m)));
}

/**
 * The run's steps and, when `skeleton`, the skeleton maker's: then the run's
 * steps take their root from a skeleton (the skeleton step) where they
 * would otherwise build it.
 */
function planSteps(o: ResolvedOptions, sourceIsDir: (boolean | null)[], host: { entries: HostEntry[] }, cgroups: boolean, pooled: boolean, skeleton: boolean): { steps: NativeStep[]; maker?: NativeStep[] } {
  const b = new PlanBuilder();

  // 1. Nothing we mount may propagate back to the host's mount namespace.
  b.add({ kind: StepKind.Mount, name: 'mount-private', path: '/', b: '/', flags: MS_REC | MS_PRIVATE });

  // 2. Scaffold: a tmpfs becomes the root with the host's root parked at
  // /oldroot, so every source path stays reachable (as /oldroot/...) while the
  // new root is assembled at /newroot, and nothing is built on host files.
  b.add({ kind: StepKind.Mount, name: 'scaffold-tmpfs', path: STAGE, a: 'tmpfs', b: STAGE, c: 'tmpfs', flags: MS_NOSUID | MS_NODEV, d: 'mode=0755,size=64k' });
  b.add({ kind: StepKind.Mkdir, name: 'mkdir', path: STAGE + NEW, a: STAGE + NEW, mode: 0o755 });
  b.add({ kind: StepKind.Mkdir, name: 'mkdir', path: STAGE + OLD, a: STAGE + OLD, mode: 0o755 });
  b.add({ kind: StepKind.PivotRoot, name: 'pivot-scaffold', path: STAGE, a: STAGE, b: OLD.slice(1) });

  // The skeleton maker runs the same scaffold (its host paths are the
  // run's), then builds the tree where a run would build its root.
  const maker = skeleton ? new PlanBuilder() : undefined;
  if (maker) for (const step of b.steps) maker.add(step);
  const r: RootBuilders = { tree: maker ?? b, run: b };

  // 3. The new root: an empty tmpfs holding read-only binds of the host's
  // system directories, or the caller's directory bound read-only.
  if (o.image) {
    // An image: its layers, read-only, under one writable layer on a tmpfs
    // of its own (a container's changes, gone with it). overlayfs in a user
    // namespace keeps its metadata in user.overlay.* xattrs (userxattr),
    // the form the store unpacks layers in. The generated hosts and
    // hostname files go into the writable layer; passwd and group are the
    // image's own.
    b.add({ kind: StepKind.Mkdir, name: 'mkdir', path: UPPER, a: UPPER, mode: 0o755 });
    if (o.image.containerDir) {
      // A kept container: its writable layer on disk, for commit.
      b.add({ kind: StepKind.Bind, name: 'container-bind', path: o.image.containerDir, a: OLD + o.image.containerDir, b: UPPER, arg0: 0 });
    } else {
      b.add({ kind: StepKind.Mount, name: 'upper-tmpfs', path: UPPER, a: 'tmpfs', b: UPPER, c: 'tmpfs', flags: MS_NOSUID | MS_NODEV, d: `mode=0755,size=${o.tmpSize}` });
      b.add({ kind: StepKind.Mkdir, name: 'mkdir', path: UPPER + '/upper', a: UPPER + '/upper', mode: 0o755 });
      b.add({ kind: StepKind.Mkdir, name: 'mkdir', path: UPPER + '/work', a: UPPER + '/work', mode: 0o755 });
    }
    // overlayfs splits its options at commas and lowerdir at colons: escape them in paths.
    const esc = (p: string) => p.replace(/[\\:,]/g, (c) => `\\${c}`);
    const lower = o.image.layers.map((l) => esc(OLD + l)).join(':');
    b.add({ kind: StepKind.Mount, name: 'overlay', path: o.image.ref, a: 'overlay', b: NEW, c: 'overlay', flags: MS_NOSUID | MS_NODEV, d: `lowerdir=${lower},upperdir=${UPPER}/upper,workdir=${UPPER}/work,userxattr` });
    etcFiles(b, o, false);
  } else if (o.rootfs === 'host') {
    if (maker) {
      // One clone of the skeleton, mounted where the root tmpfs would be:
      // the same tree, its binds already read-only, its tmpfs read-only for
      // good (see addon/child.cc).
      maker.add({ kind: StepKind.SkeletonRoot, name: 'skeleton-root', path: '/', a: '1m' });
      b.add({ kind: StepKind.Skeleton, name: 'skeleton', path: '/', a: NEW });
    } else if (o.writableRoot) {
      // A writable root: one tmpfs of tmpSize holds the root's own files
      // (a directory of it is bound as the root) and the upper layers of
      // the overlays over the host's directories, so that everything the
      // program writes outside /tmp counts against one cap and is gone
      // with the run. It sits on the scaffold, out of the program's sight.
      b.add({ kind: StepKind.Mkdir, name: 'mkdir', path: UPPER, a: UPPER, mode: 0o755 });
      b.add({ kind: StepKind.Mount, name: 'upper-tmpfs', path: UPPER, a: 'tmpfs', b: UPPER, c: 'tmpfs', flags: MS_NOSUID | MS_NODEV, d: `mode=0755,size=${o.tmpSize}` });
      b.add({ kind: StepKind.Mkdir, name: 'mkdir', path: UPPER + '/root', a: UPPER + '/root', mode: 0o755 });
      b.add({ kind: StepKind.Bind, name: 'root-bind', path: '/', a: UPPER + '/root', b: NEW, arg0: 0 });
    } else b.add({ kind: StepKind.Mount, name: 'root-tmpfs', path: '/', a: 'tmpfs', b: NEW, c: 'tmpfs', flags: MS_NOSUID | MS_NODEV, d: 'mode=0755,size=1m' });
    hostRootSteps(r.tree, host.entries, o.writableRoot);
    etcFiles(r.tree, o);
  } else {
    b.add({ kind: StepKind.Bind, name: 'root-bind', path: o.rootfs, a: OLD + o.rootfs, b: NEW, arg0: 1 });
  }

  // 4. A fresh /proc for the new pid namespace: the host's processes are not
  // in it. hidepid=ptraceable hides the sandbox's own init too (it runs in
  // Node's memory, and /proc/1/cmdline would show Node's command line): a
  // process the program may not ptrace does not exist in its /proc. Not
  // hidepid=invisible: that exempts members of /proc's gid (0), which the
  // program is when the caller is root. Kernel knobs are bound read-only.
  //
  // A container (containerView) mounts it without hidepid. An exec into a
  // container cannot join the program's Landlock domain (Landlock has no
  // such call): it restricts itself with the same rules into a sibling
  // domain, and Landlock lets a process ptrace only its own domain or
  // nested ones, so with hidepid=ptraceable an exec would not see the
  // container's program at all (`brig exec C ps` must, as in Docker). What
  // that shows more: the names, states and ids of the processes of the
  // container's own pid namespace (its program, its execs, brig's init and
  // exec-inits, which run in Node's memory: cmdline shows the monitor's or
  // the brig CLI's title). What stays closed: every /proc file behind a
  // ptrace check (environ, mem, maps, fd, cwd, root, stack), by Landlock's
  // ptrace scoping between domains and by the capability check (init holds
  // capabilities the program lacks); no process outside the namespace is in it.
  r.tree.mkdirs(NEW + '/proc', NEW);
  b.add({ kind: StepKind.Mount, name: 'proc', path: '/proc', a: 'proc', b: NEW + '/proc', c: 'proc', flags: MS_NOSUID | MS_NODEV | MS_NOEXEC, d: o.containerView ? '' : 'hidepid=ptraceable' });
  procReadonly ??= PROC_READONLY.filter((p) => exists('/proc/' + p));
  for (const p of procReadonly) b.add({ kind: StepKind.Bind, name: 'proc-readonly', path: '/proc/' + p, a: `${NEW}/proc/${p}`, b: `${NEW}/proc/${p}`, arg0: 1 });

  // 5. A minimal /dev: a few harmless nodes, a private devpts (the host's
  // terminals are not in it), and /dev/shm on its own tmpfs unless the
  // profile leaves it out. /dev itself is then made read-only: nothing may
  // add nodes or files beside the ones given. (In a skeleton /dev is a
  // directory of its read-only tmpfs.)
  if (maker) maker.mkdirs(NEW + '/dev', NEW);
  else tmpfsOn(r, 'dev-tmpfs', NEW + '/dev', MS_NOSUID | MS_NOEXEC, 'mode=0755,size=64k');
  for (const d of DEVICES) {
    const t = `${NEW}/dev/${d}`;
    r.tree.add({ kind: StepKind.Touch, name: 'mount-target', path: shown(t), a: t, mode: 0o666 });
    r.tree.add({ kind: StepKind.Bind, name: 'dev-bind', path: '/dev/' + d, a: `${OLD}/dev/${d}`, b: t, arg0: 0 });
  }
  r.tree.mkdirs(NEW + '/dev/pts', NEW);
  b.add({ kind: StepKind.Mount, name: 'devpts', path: '/dev/pts', a: 'devpts', b: NEW + '/dev/pts', c: 'devpts', flags: MS_NOSUID | MS_NOEXEC, d: 'newinstance,ptmxmode=0666,mode=620' });
  r.tree.add({ kind: StepKind.Symlink, name: 'symlink', path: '/dev/ptmx', a: 'pts/ptmx', b: NEW + '/dev/ptmx' });
  if (o.shmSize > 0) tmpfsOn(r, 'shm-tmpfs', NEW + '/dev/shm', MS_NOSUID | MS_NODEV, `mode=1777,size=${o.shmSize}`);
  for (const [name, target] of [['fd', '/proc/self/fd'], ['stdin', '/proc/self/fd/0'], ['stdout', '/proc/self/fd/1'], ['stderr', '/proc/self/fd/2']])
    r.tree.add({ kind: StepKind.Symlink, name: 'symlink', path: '/dev/' + name, a: target, b: `${NEW}/dev/${name}` });
  if (!maker) b.add({ kind: StepKind.SetReadonly, name: 'dev-readonly', path: '/dev', a: NEW + '/dev', arg0: 0 });

  // 6. The program's writable scratch space, capped.
  tmpfsOn(r, 'tmp-tmpfs', NEW + '/tmp', MS_NOSUID | MS_NODEV, `mode=1777,size=${o.tmpSize}`);

  // 7. The caller's mounts, in order (their sources were checked above).
  for (const [i, m] of o.mounts.entries()) {
    if (sourceIsDir[i] === null) continue;
    r.tree.mountpoint(NEW + m.target, sourceIsDir[i]!);
    b.add(bindStep('bind-mount', OLD + m.source, NEW + m.target, m.readonly));
  }
  for (const t of o.tmpfs) tmpfsOn(r, 'tmpfs-mount', NEW + t.target, MS_NOSUID | MS_NODEV, `mode=${t.mode.toString(8)},size=${t.size}`);

  if (maker) maker.add({ kind: StepKind.SkeletonSeal, name: 'skeleton-seal', path: '/' });
  // 8. Identity inside the new uts and net namespaces: our hostname, and,
  // when the profile allows it, a loopback that works. The namespace has no
  // other interface, so with loopback down no socket reaches anything.
  b.add({ kind: StepKind.Sethostname, name: 'hostname', a: o.hostname });
  // ('pasta' brings it up too; 'host' has the host's own, not ours to touch.)
  if (o.network === 'loopback' || o.network === 'pasta') b.add({ kind: StepKind.LoopbackUp, name: 'loopback' });

  // 9. Enter the new root and drop the scaffold with the host's root under it.
  b.add({ kind: StepKind.PivotRoot, name: 'pivot-root', path: NEW, a: NEW, b: '.' });
  if (o.rootfs === 'host' && !o.image && !o.writableRoot) b.add({ kind: StepKind.SetReadonly, name: 'root-readonly', path: '/', a: '/', arg0: 0 });

  // 10. Landlock, where the kernel has it: a second, independent statement
  // of what the mounts above already say. Writes (and creating, removing,
  // renaming, truncating) are allowed only beneath the writable mounts this
  // plan made, so if a step above got a mount wrong (a host directory left
  // writable, a read-only remount that did not take), the program still
  // cannot write there. The ruleset is made by init; the program enforces
  // it on itself (landlock-restrict, below), so the program and everything it
  // starts inherit it; a pooled sandbox has its ruleset before its run.
  // Read and execute are not restricted: the mounts decide what is visible.
  const landlock = o.landlock ? landlockPlan({ ...o, containerView: o.containerView === true }, o.mounts.filter((m, i) => !m.readonly && sourceIsDir[i] !== null).map((m) => m.target)) : null;
  if (landlock) b.add({ kind: StepKind.Landlock, name: 'landlock', d: landlock.paths.map((p) => p + '\0').join(''), arg0: landlock.dirAccess, arg1: landlock.fileAccess, arg2: landlock.scoped, flags: o.seccomp?.handoffFd ?? 0 });

  // 11. The program: its own session, no capabilities, no way to gain any,
  // only fds 0-2, default signal dispositions.
  b.add({ kind: StepKind.ForkProgram, name: 'fork' });
  // First of all, into the run's cgroups: everything the program does from
  // here on is limited and accounted. (init stays outside: it shares Node's
  // memory, and the out-of-memory killer kills every process sharing the
  // victim's memory.)
  if (cgroups) b.add({ kind: StepKind.CgroupJoin, name: 'cgroup-join' });
  b.add({ kind: StepKind.Setsid, name: 'setsid' });
  b.add({ kind: StepKind.Pdeathsig, name: 'pdeathsig', arg0: osConstants.signals.SIGKILL });
  b.add({ kind: StepKind.Umask, name: 'umask', arg0: 0o022 });
  // Before rlimits: a low nofile limit must not keep the handoff fd from existing.
  if (o.seccomp) b.add({ kind: StepKind.NotifyFd, name: 'seccomp-handoff', arg0: o.seccomp.handoffFd });
  for (const [name, soft, hard] of o.rlimits) b.add({ kind: StepKind.Setrlimit, name: 'rlimit', path: name, arg0: RLIMIT_NUMBERS[name], arg1: soft, arg2: hard });
  // A pooled sandbox stops here, everything above done ahead of time (the
  // program's process forked and in its cgroups: a cgroup v1 move can wait
  // for an RCU grace period), until it is given its command: argv, env and
  // stdio (see addon/child.cc). Until it execs it shares Node's memory, as
  // any program does before exec, while its memory cgroup is still empty.
  if (pooled) b.add({ kind: StepKind.AwaitCommand, name: 'await-command' });
  b.add({ kind: StepKind.Stdio, name: 'stdio' });
  // The program enters the Landlock domain once its stdout and stderr are known.
  if (landlock) b.add({ kind: StepKind.LandlockRestrict, name: 'landlock-restrict', arg1: landlock.fileAccess });
  b.add({ kind: StepKind.CloseFds, name: 'close-fds' });
  // An image whose files have many owners is mapped as the store mapped it,
  // the caller as root (see image/owners.ts), so that each file shows its
  // owner; the program then becomes the image's user in that map.
  if (switchesIds(o)) b.add({ kind: StepKind.SetIds, name: 'set-ids', arg0: o.uid, arg1: o.gid });
  b.add({ kind: StepKind.DropCaps, name: 'drop-capabilities' });
  b.add({ kind: StepKind.NoNewPrivs, name: 'no-new-privs' });
  b.add({ kind: StepKind.Chdir, name: 'chdir', path: o.cwd, a: o.cwd });
  b.add({ kind: StepKind.ResetSignals, name: 'reset-signals' });
  // 12. The syscall filter, last: after no_new_privs (which lets an
  // unprivileged process install one), with nothing of ours left to run but
  // the listener handoff and execve.
  if (o.seccomp) {
    const c = o.seccomp.compiled;
    b.add({ kind: StepKind.Seccomp, name: 'seccomp', d: c.bytes, arg0: c.prog.length, arg1: 1, arg2: o.seccomp.handoffFd });
  }
  b.add({ kind: StepKind.Exec, name: 'exec' });
  return { steps: b.steps, maker: maker?.steps };
}

/** A tmpfs mount of the run's own, on a mount point in the tree. */
function tmpfsOn(r: RootBuilders, name: string, target: string, flags: number, data: string): void {
  r.tree.mkdirs(target, NEW);
  r.run.add(tmpfsStep(name, target, flags, data));
}

// Landlock's access rights (include/uapi/linux/landlock.h), by the ABI that brought them.
const LL_WRITE_FILE = 1 << 1;
const LL_REMOVE_DIR = 1 << 4;
const LL_REMOVE_FILE = 1 << 5;
const LL_MAKE_ALL = (1 << 6) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12); // char dir reg sock fifo block sym
const LL_REFER = 1 << 13; // ABI 2
const LL_TRUNCATE = 1 << 14; // ABI 3
const LL_SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0; // ABI 6
const LL_SCOPE_SIGNAL = 1 << 1; // ABI 6

let landlockAbi: number | undefined;

/**
 * What the landlock step restricts, or null where the kernel has no
 * Landlock. Every write-like right this kernel knows is handled, and given
 * back beneath each writable mount (paths marked W); beneath /dev (marked
 * F) only writing to what is there, and truncating (`> /dev/null`
 * truncates). Under an image's writable layer, or a writable root, all of
 * / is writable, so no path is restricted there and only the scoping applies.
 */
export function landlockPlan(o: Pick<ResolvedOptions, 'image' | 'tmpfs' | 'shmSize'> & { writableRoot?: boolean; containerView?: boolean }, writableMounts: string[]): { paths: string[]; dirAccess: number; fileAccess: number; scoped: number } | null {
  const abi = (landlockAbi ??= native.landlockAbi());
  if (abi < 1) return null;
  // A container's program and its execs are sibling Landlock domains (an
  // exec cannot join the program's): scoped signals would keep `brig exec C
  // kill PID` from reaching the program. Not scoping them gives nothing
  // away: the sandbox is always in a pid namespace of its own, so a signal
  // can only name the container's own processes, and the kernel's uid check
  // still applies (pid 1, brig's init, takes only what it forwards to the
  // program). Abstract unix sockets stay scoped.
  const scoped = abi >= 6 ? LL_SCOPE_ABSTRACT_UNIX_SOCKET | (o.containerView ? 0 : LL_SCOPE_SIGNAL) : 0;
  if (o.image || o.writableRoot) return scoped ? { paths: [], dirAccess: 0, fileAccess: 0, scoped } : null;
  const truncate = abi >= 3 ? LL_TRUNCATE : 0;
  const dirAccess = LL_WRITE_FILE | LL_REMOVE_DIR | LL_REMOVE_FILE | LL_MAKE_ALL | (abi >= 2 ? LL_REFER : 0) | truncate;
  // /dev is read-only (its own tmpfs, or a directory of a skeleton's) with
  // device nodes and ptys: writing to them is all it allows (one rule
  // instead of one per node: each costs a few µs).
  const fileAccess = LL_WRITE_FILE | truncate;
  const writable = ['/tmp', ...(o.shmSize > 0 ? ['/dev/shm'] : []), ...o.tmpfs.map((t) => t.target), ...writableMounts];
  return { paths: ['F/dev', ...writable.map((p) => 'W' + p)], dirAccess, fileAccess, scoped };
}

/**
 * Whether the map is anchored at root and the program switches to its ids:
 * a multi-id map for an image with owners must put the caller where the
 * store put it, at 0, whatever user the program runs as.
 */
export function switchesIds(o: Pick<ResolvedOptions, 'idMap' | 'image' | 'uid' | 'gid'>): boolean {
  return o.idMap === 'multi' && o.image?.owners === true && (o.uid !== 0 || o.gid !== 0);
}

/** execvp's search, decided here: native tries the candidates in order. */
export function execCandidates(cmd: string, path: string | undefined): string[] {
  if (cmd.includes('/')) return [cmd];
  const dirs = (path ?? '').split(':');
  return dirs.map((d) => `${d === '' ? '.' : d}/${cmd}`);
}

export const ALL_NAMESPACES =
  native.constants.CLONE_NEWUSER |
  native.constants.CLONE_NEWPID |
  native.constants.CLONE_NEWNS |
  native.constants.CLONE_NEWIPC |
  native.constants.CLONE_NEWUTS |
  native.constants.CLONE_NEWNET |
  native.constants.CLONE_NEWCGROUP;

/** The namespaces a sandbox gets: all of them, but the network's with network 'host'. */
export function namespacesFor(o: ResolvedOptions): number {
  return o.network === 'host' ? ALL_NAMESPACES & ~native.constants.CLONE_NEWNET : ALL_NAMESPACES;
}
