// Public option types and their validation. Every argument is checked and
// defaulted here, before any plan is built; a bad one throws OptionsError
// naming the field (better-sqlite3's rule: JS validates, native trusts).
import { isAbsolute, normalize } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { OptionsError, shown } from '../errors.js';
import { multiMapAvailable } from './idmap.js';
import { native } from '../native.js';
import { createRequire } from 'node:module';
import type { Image, ImageConfig, Store } from '../image/store.js';
import { resolveSeccomp, SeccompCompileError, SeccompPolicyError, type ResolvedSeccomp, type SeccompOption } from '../seccomp/index.js';

export type { BindMount, TmpfsMount } from '../profile/types.js';
import type { Rlimit } from '../profile/types.js';
import type { ProfileOption, SandboxPolicy } from '../profile/index.js';
import { networkAttach, networkMode, netOptions, type NetAttach, type NetOptions, type NetworkMode } from '../net/index.js';

/**
 * stdin: the words 'ignore' (default), 'inherit' and 'pipe' are modes; any
 * other string, or a Buffer, is the input itself (send the text "pipe" as a Buffer).
 */
export type StdinOption = 'ignore' | 'inherit' | 'pipe' | string | Buffer | Readable | { file: string } | { fd: number };
export type OutputOption = 'capture' | 'ignore' | 'inherit' | 'pipe' | { file: string; append?: boolean } | { fd: number } | Writable;

/** Resource limits by name; a number sets soft and hard, a pair sets [soft, hard]. */
export type RlimitName = 'cpu' | 'fsize' | 'data' | 'stack' | 'core' | 'nofile' | 'as' | 'nproc' | 'memlock' | 'msgqueue' | 'sigpending';
export type RlimitValue = Rlimit;

export const RLIMIT_NUMBERS: Record<RlimitName, number> = {
  cpu: 0,
  fsize: 1,
  data: 2,
  stack: 3,
  core: 4,
  nproc: 6,
  nofile: 7,
  memlock: 8,
  as: 9,
  sigpending: 11,
  msgqueue: 12,
};

/**
 * Options of one run. The policy fields, and their documentation, are the
 * profile schema's (profiles/schema.json, types generated from it): what a
 * profile file can say, a run can say, and the two cannot drift apart.
 */
export interface SandboxOptions extends Omit<SandboxPolicy, 'seccomp' | 'description' | 'network'> {
  /**
   * The profile's modes ('none', 'loopback', 'pasta'), and 'host': the
   * host's own network namespace, no network isolation at all. 'host' is
   * never a profile's: only a run asks for it, and brig logs a warning.
   */
  network?: SandboxPolicy['network'] | 'host' | (string & {});
  /**
   * The profile under these options: a name (`'judge'`), a path, a profile
   * object (defineProfile), or a list applied in order. Default `'default'`.
   * These options are merged on top of it (see src/profile/index.ts).
   */
  profile?: ProfileOption;
  /**
   * The syscall policy, installed last before execve. 'default' (brig's
   * policy, src/seccomp/default.ts: privileged calls refused with an errno
   * and listed in RunResult.seccompDenials), 'judge' (the same, but the
   * worst of them end the run as a seccomp-violation), 'none', a policy object, a Docker/OCI
   * seccomp profile object, or the path of a JSON file holding either.
   * 'learn' allows and records every call (RunResult.seccompCalls).
   */
  seccomp?: SeccompOption;
  /** Where to make cgroups: a delegated subtree (default: BRIG_CGROUP_PARENT, else this process's own cgroup). A host setting, not policy. */
  cgroupParent?: string;
  /** Replaces an image's Entrypoint, and then its Cmd is not used (Docker's --entrypoint); [] clears it. */
  entrypoint?: string[];
  stdin?: StdinOption;
  stdout?: OutputOption;
  stderr?: OutputOption;
  signal?: AbortSignal;
  /** Record per-phase durations in RunResult.timings. */
  timings?: boolean;
}

// The schema's seccomp field must accept every SeccompOption (and so a
// profile object passes through to resolveSeccomp unchanged).
type Assert<T extends true> = T;
export type _SeccompFitsSchema = Assert<SeccompOption extends NonNullable<SandboxPolicy['seccomp']> ? true : false>;

export interface ResolvedImage {
  ref: string;
  digest: string;
  /** Host directories of its layers, top first (overlayfs' lowerdir order). */
  layers: string[];
  /** A kept container's directory (upper/ and work/ on disk), else the writable layer is a tmpfs. */
  containerDir?: string;
  /** Its layers' files belong to many owners: runs map the subordinate ids (idMap 'multi'). */
  owners: boolean;
  config: ImageConfig['config'];
}

export interface ResolvedOptions {
  argv: string[];
  /** Run from an image: its layers under a writable tmpfs layer, instead of rootfs. */
  image?: ResolvedImage;
  rootfs: 'host' | string;
  /** Mounts whose sources are missing and `optional` are left out by the planner. */
  mounts: { source: string; target: string; readonly: boolean; optional: boolean }[];
  tmpfs: { target: string; size: number; mode: number }[];
  env: Record<string, string>;
  cwd: string;
  hostname: string;
  network: NetworkMode;
  /** A user network or container:NAME the sandbox joins (then `network` is 'loopback'): containers only. */
  attach?: NetAttach;
  /** Published ports, pasta's options, the name files' entries (src/net/). */
  net: NetOptions;
  uid: number;
  gid: number;
  idMap: 'single' | 'multi';
  /** [name, soft, hard], in a stable order; -1n is unlimited. */
  rlimits: [RlimitName, bigint, bigint][];
  /** The 'cpu' rlimit is brig's backstop for cpuTimeLimitMs, not the caller's. */
  cpuBackstop: boolean;
  seccomp: ResolvedSeccomp | null;
  limits: { memoryBytes?: number; pids?: number; cpus?: number; cpuset?: string };
  cgroupParent: string | undefined;
  cgroup: boolean;
  landlock: boolean;
  /**
   * @internal A container's program and its execs (src/container): /proc
   * shows every process of the pid namespace and Landlock does not scope
   * signals, so that an exec sees and signals the container's processes
   * (see planSteps' /proc and landlockPlan for why that is safe).
   */
  containerView?: boolean;
  /** An overlay with a tmpfs upper (tmpSize) over the host's root: writes land in the run's own layer. */
  writableRoot: boolean;
  tmpSize: number;
  /** 0: no /dev/shm. */
  shmSize: number;
  stdin: StdinOption;
  stdout: OutputOption;
  stderr: OutputOption;
  maxOutputBytes: number;
  wallTimeLimitMs: number | undefined;
  cpuTimeLimitMs: number | undefined;
  extraTimeMs: number;
  outputLimitBytes: number | undefined;
  signal: AbortSignal | undefined;
  timings: boolean;
}

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
export const DEFAULT_UID = 1000;
export const DEFAULT_GID = 1000;
const MAX_ID = 0xfffffffe;

/** (User networks' records, too, load only for a run on one: they bring the store.) */
/** The image store's module, loaded when a run names an image, a container or a volume (its archive code is heavy). */
let storeModule: typeof import('../image/store.js') | undefined;
function images(): typeof import('../image/store.js') {
  return (storeModule ??= createRequire(import.meta.url)('../image/store.js') as typeof import('../image/store.js'));
}

let store: Store | undefined;
function imageStore(): Store {
  const { Store, storeRoot } = images();
  if (store?.root !== storeRoot()) store = new Store();
  return store;
}
/** e is the store's ImageError; false (without loading the store) when the store was never loaded. */
function isImageError(e: unknown): e is Error {
  return storeModule !== undefined && e instanceof storeModule.ImageError;
}

/**
 * The image from the user's store, checked and ready to stack. A kept
 * container's name is checked here; its directory is made by
 * materialize(), once every option has been found good.
 */
function resolveImage(v: unknown, container: unknown): { resolved: ResolvedImage; image: Image; container?: string } {
  const ref = str('image', v);
  let name: string | undefined;
  try {
    const st = imageStore();
    if (container !== undefined) {
      name = str('container', container);
      try {
        st.containerDir(name);
      } catch (e) {
        if (isImageError(e)) throw new OptionsError('container', e.message);
        throw e;
      }
    }
    const img = st.get(ref);
    const layers = img.config.rootfs.diff_ids.map((d) => st.layerDir(d)).reverse();
    if (layers.length === 0) throw new (images().ImageError)(`image ${ref} has no layers`);
    const resolved: ResolvedImage = { ref: img.refs[0] ?? img.digest, digest: img.digest, layers, config: img.config.config ?? {}, owners: st.imageHasOwners(img) };
    return { resolved, image: img, container: name };
  } catch (e) {
    if (isImageError(e)) throw new OptionsError('image', e.message);
    throw e;
  }
}

function materialize(volumes: string[], fromStore: ReturnType<typeof resolveImage> | undefined): void {
  for (const v of volumes) imageStore().createVolume(v);
  if (fromStore?.container === undefined) return;
  try {
    fromStore.resolved.containerDir = imageStore().prepareContainer(fromStore.container, fromStore.image);
  } catch (e) {
    if (isImageError(e)) throw new OptionsError('container', e.message);
    throw e;
  }
}

/** The image's User as numeric ids ("uid", "uid:gid", "root"); a name needs its /etc/passwd, not read here. */
function imageIds(image: ResolvedImage): { uid?: number; gid?: number } {
  const u = image.config.User;
  if (!u) return { uid: 0, gid: 0 };
  const m = /^(\d+|root)(?::(\d+|root))?$/.exec(u);
  if (!m) throw new OptionsError('image', `image ${image.ref} runs as user ${JSON.stringify(u)}; give uid and gid as numbers (uid/gid options)`);
  const n = (x: string) => (x === 'root' ? 0 : Number(x));
  return { uid: n(m[1]), gid: m[2] === undefined ? n(m[1]) : n(m[2]) };
}
const MiB = 1024 * 1024;

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, m: MiB, g: 1024 * MiB, t: 1024 * 1024 * MiB };

/** `64m`, `1.5g`, `4096` or a number of bytes. */
export function parseSize(field: string, v: unknown): number {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v <= 0) throw new OptionsError(field, `expected a positive whole number of bytes, got ${shown(v)}`);
    return v;
  }
  if (typeof v !== 'string') throw new OptionsError(field, `expected a size such as "64m", got ${typeof v}`);
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/i.exec(v.trim());
  if (!m) throw new OptionsError(field, `expected a size such as "64m" or "1g", got ${shown(v)}`);
  const bytes = Math.floor(Number(m[1]) * SIZE_UNITS[m[2].toLowerCase()]);
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new OptionsError(field, `size out of range: ${shown(v)}`);
  return bytes;
}

function noNul(field: string, s: string): string {
  if (s.includes('\0')) throw new OptionsError(field, 'must not contain a NUL byte');
  return s;
}

function str(field: string, v: unknown): string {
  if (typeof v !== 'string') throw new OptionsError(field, `expected a string, got ${v === null ? 'null' : typeof v}`);
  return noNul(field, v);
}

/** An absolute, normalised path inside the sandbox, not `/` itself and not under /proc or /dev. */
function sandboxPath(field: string, v: unknown, { allowRoot = false, allowSystem = false } = {}): string {
  const s = str(field, v);
  if (!isAbsolute(s)) throw new OptionsError(field, `must be an absolute path inside the sandbox, got ${JSON.stringify(s)}`);
  const p = normalize(s).replace(/\/+$/, '') || '/';
  if (p === '/' && !allowRoot) throw new OptionsError(field, 'cannot be / itself');
  if (!allowSystem && /^\/(proc|dev)(\/|$)/.test(p)) throw new OptionsError(field, `must not be under /proc or /dev (${p})`);
  return p;
}

function id(field: string, v: unknown, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_ID) throw new OptionsError(field, `expected a whole number from 0 to ${MAX_ID}, got ${shown(v)}`);
  return v;
}

function checkStdio(field: string, v: unknown, input: boolean): void {
  if (v === undefined) return;
  const words = input ? ['ignore', 'inherit', 'pipe'] : ['capture', 'ignore', 'inherit', 'pipe'];
  if (typeof v === 'string') {
    if (input) {
      noNul(field, v); // a string for stdin is data, not a mode
      return;
    }
    if (!words.includes(v)) throw new OptionsError(field, `expected one of ${words.join(', ')}, { file }, or a stream, got ${shown(v)}`);
    return;
  }
  if (Buffer.isBuffer(v) && input) return;
  if (v && typeof v === 'object') {
    if ('fd' in v) {
      const fd = (v as { fd: unknown }).fd;
      if (!Number.isInteger(fd) || (fd as number) < 0) throw new OptionsError(`${field}.fd`, 'expected an open file descriptor number');
      return;
    }
    if ('file' in v) {
      str(`${field}.file`, (v as { file: unknown }).file);
      return;
    }
    const stream = v as { pipe?: unknown; write?: unknown };
    if (input ? typeof stream.pipe === 'function' : typeof stream.write === 'function') return;
  }
  throw new OptionsError(field, `expected one of ${words.join(', ')}, ${input ? 'a string, a Buffer, ' : ''}{ file }, { fd }, or a stream`);
}

const RLIM_INFINITY = -1n; // all bits set, as the kernel reads it unsigned

function rlimitValue(field: string, v: unknown): bigint {
  if (v === 'unlimited') return RLIM_INFINITY;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new OptionsError(field, `expected a whole number >= 0 or 'unlimited', got ${shown(v)}`);
  return BigInt(v);
}

function rlimitsOption(v: unknown): [RlimitName, bigint, bigint][] {
  const merged: Record<string, unknown> = { core: 0 };
  if (v !== undefined) {
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new OptionsError('rlimits', 'expected an object such as { nofile: 64, stack: "unlimited" }');
    Object.assign(merged, v);
  }
  const out: [RlimitName, bigint, bigint][] = [];
  for (const name of Object.keys(merged).sort()) {
    if (!(name in RLIMIT_NUMBERS)) throw new OptionsError(`rlimits.${name}`, `unknown limit; expected one of ${Object.keys(RLIMIT_NUMBERS).join(', ')}`);
    const val = merged[name];
    const field = `rlimits.${name}`;
    let soft: bigint, hard: bigint;
    if (Array.isArray(val)) {
      if (val.length !== 2) throw new OptionsError(field, 'expected [soft, hard]');
      soft = rlimitValue(field, val[0]);
      hard = rlimitValue(field, val[1]);
      const unsigned = (x: bigint) => (x === RLIM_INFINITY ? 2n ** 64n - 1n : x);
      if (unsigned(soft) > unsigned(hard)) throw new OptionsError(field, 'the soft limit cannot exceed the hard limit');
    } else soft = hard = rlimitValue(field, val);
    out.push([name as RlimitName, soft, hard]);
  }
  return out;
}

function limitsOption(o: SandboxOptions): ResolvedOptions['limits'] {
  const l: ResolvedOptions['limits'] = {};
  if (o.memory !== undefined) l.memoryBytes = parseSize('memory', o.memory);
  if (o.pids !== undefined) {
    if (!Number.isSafeInteger(o.pids) || o.pids < 1) throw new OptionsError('pids', `expected a whole number of at least 1, got ${shown(o.pids)}`);
    l.pids = o.pids;
  }
  if (o.cpus !== undefined) {
    if (typeof o.cpus !== 'number' || !Number.isFinite(o.cpus) || o.cpus < 0.01 || o.cpus > 1024) throw new OptionsError('cpus', `expected a number of CPUs from 0.01, got ${shown(o.cpus)}`);
    l.cpus = o.cpus;
  }
  if (o.cpuset !== undefined) {
    const v = str('cpuset', o.cpuset);
    if (!/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(v)) throw new OptionsError('cpuset', `expected a CPU list such as 0 or 0-1,3, got ${shown(v)}`);
    l.cpuset = v;
  }
  return l;
}

function seccompOption(v: unknown): ResolvedSeccomp | null {
  if (v === undefined) v = 'default';
  if (typeof v !== 'string' && (!v || typeof v !== 'object')) throw new OptionsError('seccomp', "expected 'default', 'judge', 'none', 'learn', a policy, a Docker profile or a file path");
  if (typeof v === 'string' && !['default', 'judge', 'none', 'learn'].includes(v) && !isAbsolute(v)) throw new OptionsError('seccomp', `a policy file must be an absolute path, got ${shown(v)}`);
  try {
    return resolveSeccomp(v as SeccompOption, native.handoffFd);
  } catch (e) {
    if (e instanceof SeccompPolicyError) throw new OptionsError(e.field.startsWith('seccomp') ? e.field : `seccomp.${e.field}`, e.message.slice(e.field.length + 2));
    if (e instanceof SeccompCompileError) throw new OptionsError('seccomp', e.message);
    throw e;
  }
}

/**
 * The CPU limit is watched over the whole tree by brig; RLIMIT_CPU, per
 * process and in whole seconds, is the kernel's backstop a second past it.
 */
function withCpuBackstop(r: [RlimitName, bigint, bigint][], cpuMs: unknown, extraMs: unknown): [RlimitName, bigint, bigint][] {
  if (typeof cpuMs !== 'number' || r.some(([n]) => n === 'cpu')) return r;
  const s = BigInt(Math.ceil((cpuMs + (typeof extraMs === 'number' ? extraMs : 0)) / 1000) + 1);
  return [...r, ['cpu', s, s]];
}

function writableRootOption(v: unknown, rootfs: string, image: unknown): boolean {
  if (v === undefined || v === false) return false;
  if (v !== true) throw new OptionsError('writableRoot', `expected true or false, got ${shown(v)}`);
  // An image's root is an overlay with a writable layer already; a directory
  // rootfs is the caller's own tree, bound read-only on purpose.
  if (image) return false;
  if (rootfs !== 'host') throw new OptionsError('writableRoot', `only for the host's root (rootfs 'host'), got rootfs ${shown(rootfs)}`);
  return true;
}

function idMapOption(v: unknown): 'single' | 'multi' {
  if (v === undefined) return 'single';
  // 'auto': the ids a host or Docker has (chown, setuid to another user)
  // wherever the machine grants them; else the single id, without an error.
  if (v === 'auto') return multiMapAvailable() ? 'multi' : 'single';
  if (v !== 'single' && v !== 'multi') throw new OptionsError('idMap', `expected 'single', 'multi' or 'auto', got ${shown(v)}`);
  return v;
}

function listOption<T>(field: string, v: T[] | undefined): T[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new OptionsError(field, `expected a list, got ${shown(v)}`);
  return v;
}

export function resolveOptions(argv: unknown, o: SandboxOptions = {}): ResolvedOptions {
  if (o === null || typeof o !== 'object') throw new OptionsError('options', 'expected an object');
  if (o.container !== undefined && o.image === undefined) throw new OptionsError('container', 'a kept container is of an image: give image too');
  const fromStore = o.image === undefined ? undefined : resolveImage(o.image, o.container);
  const image = fromStore?.resolved;
  if (!Array.isArray(argv) || (argv.length === 0 && !image)) throw new OptionsError('argv', 'expected a non-empty array of strings');
  let args = argv.map((a, i) => str(`argv[${i}]`, a));
  // Docker's rule: the command replaces the image's Cmd, after its Entrypoint.
  if (image && o.entrypoint !== undefined) {
    if (!Array.isArray(o.entrypoint)) throw new OptionsError('entrypoint', 'expected a list of strings');
    args = [...o.entrypoint.map((a, i) => str(`entrypoint[${i}]`, a)), ...args];
  } else if (image) args = [...(image.config.Entrypoint ?? []), ...(args.length ? args : (image.config.Cmd ?? []))];
  if (args.length === 0) throw new OptionsError('argv', `no command given, and image ${image!.ref} has no Entrypoint or Cmd`);
  if (args[0] === '') throw new OptionsError('argv[0]', 'the command must not be empty');

  let rootfs: 'host' | string = 'host';
  if (o.rootfs !== undefined && o.rootfs !== 'host') {
    rootfs = str('rootfs', o.rootfs);
    if (!isAbsolute(rootfs)) throw new OptionsError('rootfs', `expected 'host' or an absolute directory, got ${JSON.stringify(rootfs)}`);
    rootfs = normalize(rootfs);
  }

  const mounts = listOption('mounts', o.mounts).map((m, i) => {
    const f = `mounts[${i}]`;
    if (!m || typeof m !== 'object') throw new OptionsError(f, 'expected { source, target, readonly? }');
    const source = str(`${f}.source`, m.source);
    if (!isAbsolute(source)) throw new OptionsError(`${f}.source`, `must be an absolute host path, got ${JSON.stringify(source)}`);
    if (m.readonly !== undefined && typeof m.readonly !== 'boolean') throw new OptionsError(`${f}.readonly`, 'expected a boolean');
    if (m.optional !== undefined && typeof m.optional !== 'boolean') throw new OptionsError(`${f}.optional`, 'expected a boolean');
    return { source: normalize(source), target: sandboxPath(`${f}.target`, m.target), readonly: m.readonly !== false, optional: m.optional === true };
  });
  if (o.mounts !== undefined && !Array.isArray(o.mounts)) throw new OptionsError('mounts', 'expected an array');
  if (o.volumes !== undefined && !Array.isArray(o.volumes)) throw new OptionsError('volumes', 'expected an array');
  const volumes: string[] = [];
  for (const [i, v] of listOption('volumes', o.volumes).entries()) {
    const f = `volumes[${i}]`;
    if (!v || typeof v !== 'object') throw new OptionsError(f, 'expected { name, target, readonly? }');
    if (v.readonly !== undefined && typeof v.readonly !== 'boolean') throw new OptionsError(`${f}.readonly`, 'expected a boolean');
    const target = sandboxPath(`${f}.target`, v.target);
    const name = str(`${f}.name`, v.name);
    let source: string;
    try {
      source = imageStore().volumePath(name);
    } catch (e) {
      if (isImageError(e)) throw new OptionsError(`${f}.name`, e.message);
      throw e;
    }
    volumes.push(name);
    mounts.push({ source, target, readonly: v.readonly === true, optional: false });
  }

  if (o.tmpfs !== undefined && !Array.isArray(o.tmpfs)) throw new OptionsError('tmpfs', 'expected an array');
  const tmpfs = listOption('tmpfs', o.tmpfs).map((t, i) => {
    const f = `tmpfs[${i}]`;
    if (!t || typeof t !== 'object') throw new OptionsError(f, 'expected { target, size?, mode? }');
    const mode = t.mode ?? 0o1777;
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) throw new OptionsError(`${f}.mode`, 'expected permission bits from 0 to 0o7777');
    return { target: sandboxPath(`${f}.target`, t.target), size: t.size === undefined ? 64 * MiB : parseSize(`${f}.size`, t.size), mode };
  });

  const env: Record<string, string> = {};
  if (o.env !== undefined) {
    if (!o.env || typeof o.env !== 'object' || Array.isArray(o.env)) throw new OptionsError('env', 'expected an object of strings');
    for (const [k, v] of Object.entries(o.env)) {
      if (k === '' || k.includes('=') || k.includes('\0')) throw new OptionsError(`env.${k}`, 'a variable name must be non-empty and contain no "=" or NUL');
      env[k] = str(`env.${k}`, v);
    }
  }
  // The image's environment first, the run's over it.
  if (image)
    for (const kv of image.config.Env ?? []) {
      const eq = kv.indexOf('=');
      if (eq > 0 && env[kv.slice(0, eq)] === undefined) env[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
  if (env.PATH === undefined) env.PATH = DEFAULT_PATH;
  const imageUser = image ? imageIds(image) : {};

  const hostname = o.hostname === undefined ? 'brig' : str('hostname', o.hostname);
  if (!/^[A-Za-z0-9]([A-Za-z0-9.-]{0,62})$/.test(hostname)) throw new OptionsError('hostname', `expected 1-63 letters, digits, dots or dashes, got ${JSON.stringify(hostname)}`);

  const network = networkMode(o.network);
  const attach = networkAttach(o.network);
  if (attach?.kind === 'network') {
    // Docker's words for a network that is not there.
    try {
      (createRequire(import.meta.url)('../net/networks.js') as typeof import('../net/networks.js')).getNetwork(attach.name);
    } catch (e) {
      throw new OptionsError('network', (e as Error).message);
    }
  }
  if (attach?.kind === 'container' && (o.publish as unknown[] | undefined)?.length) throw new OptionsError('publish', 'conflicting options: port publishing and the container type network mode');
  // A container on a user network publishes through brig's proxy: pasta
  // cannot open its tap in a namespace nested under the holder's.
  const net = netOptions(network, attach && o.publishVia === undefined ? { ...o, publishVia: 'proxy' } : o);

  checkStdio('stdin', o.stdin, true);
  checkStdio('stdout', o.stdout, false);
  checkStdio('stderr', o.stderr, false);

  const maxOutputBytes = o.maxOutputBytes ?? 16 * MiB;
  if (!Number.isSafeInteger(maxOutputBytes) || maxOutputBytes < 0) throw new OptionsError('maxOutputBytes', 'expected a whole number of bytes');

  let wall: number | undefined;
  if (o.wallTimeLimitMs !== undefined) {
    wall = o.wallTimeLimitMs;
    if (typeof wall !== 'number' || !Number.isFinite(wall) || wall <= 0 || wall > 2 ** 31 - 1) throw new OptionsError('wallTimeLimitMs', 'expected a positive number of milliseconds below 2^31');
  }
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) throw new OptionsError('signal', 'expected an AbortSignal');
  const ms = (field: string, v: unknown, allowZero = false) => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (!allowZero && v === 0) || v > 2 ** 31 - 1) throw new OptionsError(field, `expected a ${allowZero ? 'non-negative' : 'positive'} number of milliseconds below 2^31, got ${shown(v)}`);
    return v;
  };
  const cpuTimeLimitMs = o.cpuTimeLimitMs === undefined ? undefined : ms('cpuTimeLimitMs', o.cpuTimeLimitMs);
  const extraTimeMs = o.extraTimeMs === undefined ? 0 : ms('extraTimeMs', o.extraTimeMs, true);
  let outputLimitBytes: number | undefined;
  if (o.outputLimitBytes !== undefined) {
    outputLimitBytes = o.outputLimitBytes;
    if (!Number.isSafeInteger(outputLimitBytes) || outputLimitBytes < 0) throw new OptionsError('outputLimitBytes', 'expected a whole number of bytes');
  }

  // Every option is good: only now is anything made in the store (the
  // run's volumes, and its kept container).
  materialize(volumes, fromStore);

  return {
    argv: args,
    rootfs,
    mounts,
    tmpfs,
    env,
    cwd: o.cwd === undefined ? (image ? image.config.WorkingDir || '/' : '/tmp') : sandboxPath('cwd', o.cwd, { allowRoot: true, allowSystem: true }),
    hostname,
    network,
    ...(attach ? { attach } : {}),
    net,
    uid: id('uid', o.uid, imageUser.uid ?? DEFAULT_UID),
    gid: id('gid', o.gid, imageUser.gid ?? DEFAULT_GID),
    image,
    // An image whose files belong to many owners is run with them mapped.
    idMap: idMapOption(o.idMap ?? (image?.owners ? 'multi' : undefined)),
    rlimits: withCpuBackstop(rlimitsOption(o.rlimits), o.cpuTimeLimitMs, o.extraTimeMs),
    cpuBackstop: typeof o.cpuTimeLimitMs === 'number' && (o.rlimits as Record<string, unknown> | undefined)?.cpu === undefined,
    seccomp: seccompOption(o.seccomp),
    limits: limitsOption(o),
    cgroupParent: o.cgroupParent === undefined ? process.env.BRIG_CGROUP_PARENT || undefined : str('cgroupParent', o.cgroupParent),
    cgroup: o.cgroup !== false,
    landlock: o.landlock !== false,
    writableRoot: writableRootOption(o.writableRoot, rootfs, image),
    tmpSize: o.tmpSize === undefined ? 64 * MiB : parseSize('tmpSize', o.tmpSize),
    shmSize: o.shmSize === undefined ? 64 * MiB : o.shmSize === 0 ? 0 : parseSize('shmSize', o.shmSize),
    stdin: o.stdin ?? 'ignore',
    stdout: o.stdout ?? 'capture',
    stderr: o.stderr ?? 'capture',
    maxOutputBytes,
    wallTimeLimitMs: wall,
    cpuTimeLimitMs,
    extraTimeMs,
    outputLimitBytes,
    signal: o.signal,
    timings: o.timings === true,
  };
}
