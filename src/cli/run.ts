// brig run: one command in a new sandbox, stdio inherited, exit code passed on.
//   brig run [OPTIONS] IMAGE [COMMAND [ARG...]]   as Docker: an image from your store
//   brig run [OPTIONS] -- COMMAND [ARG...]        brig's default: the host's system dirs read-only
import { closeSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { arch, constants as osConstants } from 'node:os';
import type { Level } from 'pino';
import { log, setLogLevel } from '../log.js';
import { parseSize, type BindMount, type RlimitValue, type SandboxOptions, type TmpfsMount } from '../launch/options.js';
import type { VolumeMount } from '../profile/types.js';
import { isolateMeta, reportJson } from '../launch/report.js';
import { applyProfile, profileItemSource } from '../profile/index.js';
import { run, spawnWith, type RunResult } from '../launch/sandbox.js';
import { setSkeletons } from '../launch/skeleton.js';
import { setWarm } from '../launch/warm.js';
import { all, checks, flagName, formatHelp, one, parseArgs, seconds, UsageError, wholeNumber, type OptionSpec, type Parsed } from './args.js';
import { EXIT_BRIG_ERROR, guardedStdout } from './main.js';
import { isBuiltinMode } from '../net/index.js';
import { netSandboxOptions, netSpecs } from './net-options.js';
// [i23 containers] -d, --rm, --restart, --stop-signal, --stop-timeout, --log-opt, -l/--label as a container takes them
import { containerRunSpecs, wantsContainer } from './container-specs.js';

export { EXIT_BRIG_ERROR };

/** brig's setup holds a few descriptors until exec: fewer open files than this cannot start a program. */
const MIN_NOFILE = 8;

const size = (v: string, flag: string) => void (v === 'unlimited' || parseSize(flag, v));

/** The sandbox options every verb that runs something takes (run, box run, seccomp learn; create and exec later). */
export const sandboxSpecs: OptionSpec[] = [
  // Docker's flags, Docker's letters.
  { name: 'interactive', short: 'i', help: 'keep standard input open (with an IMAGE; after -- it always is)' },
  { name: 'tty', short: 't', help: 'a terminal for the program', unsupported: 'no terminal inside the sandbox yet: stdio are pipes or your own' },
  { name: 'detach', short: 'd', help: 'run in the background', unsupported: 'runs are in the foreground until background containers land' },
  { name: 'publish-all', short: 'P', help: "with -d: publish every port the image EXPOSEs, each on a free port of 127.0.0.1 (brig port NAME shows them)" },
  { name: 'restart', value: true, arg: 'POLICY', help: 'restart policy', unsupported: 'no background containers to restart yet' },
  { name: 'attach', short: 'a', value: true, repeat: true, arg: 'STDIN|STDOUT|STDERR', help: 'streams to attach', unsupported: 'stdout and stderr are always attached; -i adds stdin' },
  { name: 'name', value: true, arg: 'CONTAINER', help: "with -d: the container's name; without -d, with an image: keep the writable layer on disk as this container (brig commit, brig rm)" },
  { name: 'rm', help: 'remove the container when it exits (what brig does unless --name keeps it)' },
  { name: 'hostname', short: 'h', value: true, arg: 'NAME', help: 'hostname inside the sandbox (default brig)' },
  { name: 'user', short: 'u', value: true, arg: 'UID[:GID]', help: 'user inside the sandbox, as numbers (default 1000, or the image\'s user)' },
  { name: 'env', short: 'e', value: true, repeat: true, arg: 'KEY=VAL', help: "set a variable (KEY alone copies the host's value); the environment is empty otherwise, PATH aside" },
  { name: 'env-file', value: true, repeat: true, arg: 'FILE', help: 'variables from a file of KEY=VAL lines (# comments)' },
  { name: 'volume', short: 'v', value: true, repeat: true, arg: 'SRC:DST[:ro|rw]', help: 'bind a host path (read-only unless :rw), or a named volume (read-write unless :ro; made on first use)' },
  { name: 'mount', value: true, repeat: true, arg: 'type=bind|volume|tmpfs,...', help: 'source=, target=, readonly (binds read-only unless readonly=false), tmpfs-size=, tmpfs-mode=' },
  { name: 'tmpfs', value: true, repeat: true, arg: 'DST[:size=64m,mode=1777]', help: 'a writable tmpfs at DST (default size 64m); DST:SIZE works too' },
  { name: 'workdir', short: 'w', value: true, arg: 'DIR', help: 'working directory inside the sandbox (default /tmp, or the image\'s)' },
  { name: 'entrypoint', value: true, arg: 'CMD', help: "with an image: the program instead of its Entrypoint (its Cmd is then not used; '' clears it)" },
  { name: 'read-only', help: 'a read-only root (always so after --; with an image, not supported yet)' },
  ...netSpecs, // src/cli/net-options.ts: --network, -p/--publish, --add-host, --dns, --dns-search
  { name: 'shm-size', value: true, arg: 'SIZE', help: 'size of the writable /dev/shm (default 64m); 0 leaves it out', check: (v, f) => void (v === '0' || parseSize(f, v)) },
  { name: 'memory', short: 'm', value: true, arg: 'SIZE', help: 'memory of the whole process tree, e.g. 256m (no swap beyond it)', check: (v, f) => void parseSize(f, v) },
  { name: 'pids-limit', value: true, arg: 'N', aliases: ['pids'], help: 'processes and threads of the whole tree', check: checks.whole(1) },
  { name: 'cpus', value: true, arg: 'N', help: 'CPU bandwidth in CPUs, e.g. 0.5', check: (v, f) => {
    if (!/^\d+(\.\d+)?$/.test(v) || Number(v) < 0.01) throw new UsageError(`${f}: expected a number of CPUs from 0.01, such as 0.5, got ${JSON.stringify(v)}`);
  } },
  { name: 'cpuset-cpus', value: true, arg: 'LIST', aliases: ['cpuset'], help: 'CPUs the tree may run on, e.g. 0 or 0-1' },
  { name: 'cgroup-parent', value: true, arg: 'PATH', help: 'a delegated cgroup to make cgroups under (default: BRIG_CGROUP_PARENT, else our own)' },
  { name: 'ulimit', value: true, repeat: true, arg: 'NAME=SOFT[:HARD]', aliases: ['rlimit'], help: 'a resource limit: cpu, fsize, data, stack, core, nofile, as, nproc, memlock, ... (N or unlimited)', check: (v, f) => void parseRlimit(v, f) },
  { name: 'security-opt', value: true, repeat: true, arg: 'seccomp=FILE|unconfined', help: 'seccomp=FILE or unconfined; no-new-privileges (always on)', check: (v, f) => void securityOpt(v, f) },
  { name: 'label', short: 'l', value: true, repeat: true, arg: 'KEY=VAL', help: 'a label (accepted; not stored yet)' },
  { name: 'platform', value: true, arg: 'OS/ARCH', help: "checked: brig runs this machine's platform", check: (v, f) => checkPlatform(v, f) },
  { name: 'init', help: 'an init as pid 1 (brig always has one: accepted)' },
  // brig's own: long names only.
  { name: 'profile', value: true, repeat: true, arg: 'NAME|FILE', help: "policy profile under the other options (default: 'default'); repeat to layer, e.g. --profile judge --profile python" },
  { name: 'image', value: true, arg: 'NAME[:TAG]', help: 'the image (as IMAGE); COMMAND then follows the options or --' },
  { name: 'rootfs', value: true, arg: 'host|DIR', help: "root filesystem: 'host' (read-only system dirs, the default after --) or a directory" },
  { name: 'uid', value: true, arg: 'N', help: 'uid inside the sandbox; your own uid maps to it (default 1000)', check: checks.whole() },
  { name: 'gid', value: true, arg: 'N', help: 'gid inside the sandbox (default 1000)', check: checks.whole() },
  { name: 'id-map', value: true, arg: 'single|multi|auto', help: 'multi: also map ids 0..N from /etc/subuid and /etc/subgid (needs newuidmap); auto: multi where those exist, else single', check: checks.oneOf('single', 'multi', 'auto') },
  { name: 'tmp-size', value: true, arg: 'SIZE', help: 'size of the writable /tmp (default 64m)', check: (v, f) => void parseSize(f, v) },
  { name: 'writable-root', help: "an overlay over the host's root with a tmpfs upper of --tmp-size: writes land in the run's own layer and vanish with it" },
  { name: 'time', value: true, arg: 'SECONDS', help: 'CPU time of the whole tree; past it the verdict is cpu-time-limit (exit 152)', check: checks.seconds() },
  { name: 'extra-time', value: true, arg: 'SECONDS', help: 'grace past --time before the kill, so the report says by how much', check: checks.seconds(true) },
  { name: 'wall-time', value: true, arg: 'SECONDS', help: 'kill the whole sandbox after this much real time (exit 137)', check: checks.seconds() },
  { name: 'stack', value: true, arg: 'SIZE', help: 'stack size limit (RLIMIT_STACK), e.g. 64m or unlimited', check: size },
  { name: 'nofile', value: true, arg: 'N', help: `open files limit (RLIMIT_NOFILE), at least ${MIN_NOFILE}`, check: checks.whole(MIN_NOFILE) },
  { name: 'fsize', value: true, arg: 'SIZE', help: 'largest file the program may write (RLIMIT_FSIZE): past it, file-size-limit (exit 153)', check: size },
  { name: 'output-limit', value: true, arg: 'SIZE', help: 'total stdout+stderr; past it, output-limit (exit 141; output is captured and printed after the run)', check: (v, f) => void parseSize(f, v) },
  { name: 'stdin', value: true, arg: 'FILE', help: 'read standard input from FILE' },
  { name: 'seccomp', value: true, arg: 'default|judge|none|FILE', help: "syscall policy: brig's default (privileged calls fail with EPERM), judge (they end the run), none, or a JSON file (brig policy or Docker profile)" },
  { name: 'log-level', value: true, arg: 'LEVEL', help: 'brig logs as JSON on stderr: trace, debug, info, warn, error (default: none)', check: checks.oneOf('trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent') },
  { name: 'help', help: 'show this help' },
];

/** Run's own: the sandbox's options, with the container options (src/cli/container-specs.ts) in place of the unsupported or foreground-only ones they replace. */
const containerNames = new Set(containerRunSpecs.map((s) => s.name));
// (-t is among them: run takes it, box run and seccomp learn still refuse it)
const specs: OptionSpec[] = [
  ...sandboxSpecs.filter((s) => !containerNames.has(s.name)),
  ...containerRunSpecs,
  { name: 'report', value: true, arg: 'FILE', help: 'write the run result (without stdout/stderr) to FILE' },
  { name: 'report-format', value: true, arg: 'json|isolate', help: "the report's format: brig's JSON (default) or isolate's meta lines", check: checks.oneOf('json', 'isolate') },
];

export const EXIT_CODES_TEXT = `Exit status: 0 only when the program exited 0 within every limit; the program's
own code; 128+N when killed by signal N; 125 when brig failed (bad option,
setup step: the message names it); 126 when the command is not executable,
127 when it is not found. Limits: 137 wall-time-limit and memory-limit (killed),
152 cpu-time-limit, 153 file-size-limit, 141 output-limit, 159 seccomp-violation.`;

/** Made when asked for, not at every run's start. */
export const runHelp = (): string =>
  formatHelp(
    'brig run [OPTIONS] IMAGE [COMMAND [ARG...]]\n       brig run [OPTIONS] -- COMMAND [ARG...]',
    "Run COMMAND in a new sandbox: new user, pid, mount, ipc, uts, net and cgroup\nnamespaces, no capabilities, private /tmp, no network. With IMAGE, from an\nimage in your store (brig images), its layers under a writable layer, and its\nown command when none is given; after --, the host's system directories\nread-only (the profile decides: default, unless --profile names others).",
    specs,
    EXIT_CODES_TEXT,
  );

/**
 * Where a run's CLI takes its environment and working directory from and
 * writes its own output to: this process (processIo), or, in the brig agent,
 * the client's (src/agent/), so a run through the agent gets the options and
 * output it would get here.
 */
export interface CliIo {
  env: NodeJS.ProcessEnv;
  cwd: string;
  write(fd: 1 | 2, data: string | Uint8Array): void;
  /** Writes the report; throws as writeFileSync does (the agent's client writes it, and says a failure after `prefix`). */
  writeReport(file: string, text: string, prefix: string): void;
}

export function processIo(): CliIo {
  return {
    env: process.env,
    cwd: process.cwd(),
    write: (fd, data) => void (fd === 1 ? guardedStdout() : process.stderr).write(data),
    writeReport: (file, text) => writeFileSync(file, text),
  };
}

/** -v /host/path:/dst[:ro|rw] binds a host path; -v name:/dst[:ro|rw] a named volume. */
function parseVolume(v: string, flag: string, cwd: string): { bind: BindMount } | { volume: VolumeMount } {
  const parts = v.split(':');
  if (parts.length === 1 && v.startsWith('/')) throw new UsageError(`${flag} ${v}: anonymous volumes are not supported yet; give SRC:DST (a host path or a volume name)`);
  if (parts.length < 2 || parts.length > 3 || !parts[0] || !parts[1]) throw new UsageError(`${flag}: expected SRC:DST[:ro|rw], got ${JSON.stringify(v)}`);
  const mode = parts[2];
  if (mode !== undefined && mode !== 'ro' && mode !== 'rw') throw new UsageError(`${flag}: mode must be ro or rw, got ${JSON.stringify(mode)}`);
  if (parts[0].startsWith('/') || parts[0].startsWith('.')) return { bind: { source: resolve(cwd, parts[0]), target: parts[1], readonly: mode !== 'rw' } };
  return { volume: { name: parts[0], target: parts[1], readonly: mode === 'ro' } };
}

function truthy(flag: string, key: string, v: string | undefined): boolean {
  if (v === undefined || v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw new UsageError(`${flag}: ${key} is true or false, got ${JSON.stringify(v)}`);
}

/** --mount type=bind|volume|tmpfs,source=S,target=T[,readonly][,tmpfs-size=N][,tmpfs-mode=M] */
function parseMount(v: string, flag: string, cwd: string): { bind: BindMount } | { volume: VolumeMount } | { tmpfs: TmpfsMount } {
  const kv = new Map<string, string | undefined>();
  for (const part of v.split(',')) {
    const eq = part.indexOf('=');
    const key = (eq < 0 ? part : part.slice(0, eq)).trim();
    if (!key) throw new UsageError(`${flag}: empty field in ${JSON.stringify(v)}`);
    kv.set(key, eq < 0 ? undefined : part.slice(eq + 1));
  }
  const type = kv.get('type') ?? 'volume';
  const source = kv.get('source') ?? kv.get('src');
  const target = kv.get('target') ?? kv.get('destination') ?? kv.get('dst');
  for (const key of kv.keys())
    if (!['type', 'source', 'src', 'target', 'destination', 'dst', 'readonly', 'ro', 'tmpfs-size', 'tmpfs-mode'].includes(key)) throw new UsageError(`${flag}: unknown field ${JSON.stringify(key)} (type, source, target, readonly, tmpfs-size, tmpfs-mode)`);
  if (!target) throw new UsageError(`${flag}: target= is missing in ${JSON.stringify(v)}`);
  const ro = kv.has('readonly') ? truthy(flag, 'readonly', kv.get('readonly')) : kv.has('ro') ? truthy(flag, 'ro', kv.get('ro')) : undefined;
  if (type === 'tmpfs') {
    if (source) throw new UsageError(`${flag}: a tmpfs has no source`);
    const t: TmpfsMount = { target };
    if (kv.get('tmpfs-size')) t.size = parseSize(`${flag} tmpfs-size`, kv.get('tmpfs-size'));
    if (kv.get('tmpfs-mode')) t.mode = octal(`${flag} tmpfs-mode`, kv.get('tmpfs-mode')!);
    return { tmpfs: t };
  }
  if (!source) throw new UsageError(`${flag}: source= is missing in ${JSON.stringify(v)}`);
  if (type === 'bind') return { bind: { source: resolve(cwd, source), target, readonly: ro ?? true } };
  if (type === 'volume') return { volume: { name: source, target, readonly: ro ?? false } };
  throw new UsageError(`${flag}: type must be bind, volume or tmpfs, got ${JSON.stringify(type)}`);
}

function octal(what: string, v: string): number {
  if (!/^[0-7]{1,4}$/.test(v)) throw new UsageError(`${what}: expected octal permission bits such as 1777, got ${JSON.stringify(v)}`);
  return parseInt(v, 8);
}

/** --tmpfs /x, /x:64m (brig's), /x:size=64m,mode=1777 (Docker's). */
function parseTmpfs(v: string, flag: string): TmpfsMount {
  const colon = v.indexOf(':');
  const target = colon < 0 ? v : v.slice(0, colon);
  const rest = colon < 0 ? '' : v.slice(colon + 1);
  if (!target) throw new UsageError(`${flag}: expected DST[:size=SIZE,mode=MODE], got ${JSON.stringify(v)}`);
  const t: TmpfsMount = { target };
  if (!rest) return t;
  if (!rest.includes('=')) {
    t.size = parseSize(`${flag} ${target}`, rest);
    return t;
  }
  for (const opt of rest.split(',')) {
    const [k, val] = opt.split('=', 2);
    if (k === 'size' && val) t.size = parseSize(`${flag} ${target} size`, val);
    else if (k === 'mode' && val) t.mode = octal(`${flag} ${target} mode`, val);
    else if (['rw', 'noexec', 'nosuid', 'nodev', 'exec'].includes(k) && val === undefined) continue;
    else throw new UsageError(`${flag} ${target}: unknown tmpfs option ${JSON.stringify(opt)} (size=, mode=)`);
  }
  return t;
}

function parseRlimit(v: string, flag: string): [string, RlimitValue] {
  const m = /^([a-z]+)=([^:]+)(?::(.+))?$/.exec(v);
  if (!m) throw new UsageError(`${flag}: expected NAME=N or NAME=SOFT:HARD, got ${JSON.stringify(v)}`);
  const num = (x: string): number | 'unlimited' => {
    if (x === 'unlimited' || x === '-1') return 'unlimited';
    if (!/^\d+$/.test(x) || !Number.isSafeInteger(Number(x))) throw new UsageError(`${flag} ${m[1]}: expected a whole number or unlimited, got ${JSON.stringify(x)}`);
    if (m[1] === 'nofile' && Number(x) < MIN_NOFILE) throw new UsageError(`${flag} nofile: must be at least ${MIN_NOFILE} (brig's setup needs that many descriptors before exec), got ${x}`);
    return Number(x);
  };
  return [m[1], m[3] === undefined ? num(m[2]) : [num(m[2]), num(m[3])]];
}

/** --security-opt: what it says for seccomp, or null for the options brig always has. */
function securityOpt(v: string, flag: string): string | null {
  const m = /^([a-z-]+)(?:[=:](.*))?$/.exec(v);
  if (m?.[1] === 'seccomp' && m[2]) return m[2] === 'unconfined' ? 'none' : m[2];
  if (m?.[1] === 'no-new-privileges') {
    if (m[2] === undefined || m[2] === 'true') return null;
    throw new UsageError(`${flag} ${v}: brig always sets no_new_privs`);
  }
  throw new UsageError(`${flag} ${v}: not supported yet (seccomp=FILE, seccomp=unconfined and no-new-privileges are)`);
}

const GO_ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64' };

function checkPlatform(v: string, flag: string): void {
  const here = `linux/${GO_ARCH[arch()] ?? arch()}`;
  if (v !== 'linux' && v !== here && !(here === 'linux/arm64' && v === 'linux/arm64/v8')) throw new UsageError(`${flag}: brig runs ${here} here, not ${JSON.stringify(v)}`);
}

/** --user UID[:GID], numbers (or root). */
function parseUser(v: string, flag: string): { uid: number; gid?: number } {
  const m = /^(\d+|root)(?::(\d+|root))?$/.exec(v);
  if (!m) throw new UsageError(`${flag}: give the user as numbers, UID[:GID] (names need the image's /etc/passwd, not read yet), got ${JSON.stringify(v)}`);
  const n = (x: string) => (x === 'root' ? 0 : wholeNumber(flag, x));
  return m[2] === undefined ? { uid: n(m[1]) } : { uid: n(m[1]), gid: n(m[2]) };
}

function parseEnv(values: string[], env: Record<string, string>, flag: string, hostEnv: NodeJS.ProcessEnv): void {
  for (const v of values) {
    const eq = v.indexOf('=');
    if (eq === 0) throw new UsageError(`${flag}: missing variable name in ${JSON.stringify(v)}`);
    if (eq < 0) {
      const host = hostEnv[v];
      if (host !== undefined) env[v] = host;
    } else env[v.slice(0, eq)] = v.slice(eq + 1);
  }
}

function readEnvFile(file: string, env: Record<string, string>, io: CliIo): void {
  let text: string;
  try {
    text = readFileSync(resolve(io.cwd, file), 'utf8');
  } catch (e) {
    throw new UsageError(`--env-file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  parseEnv(lines, env, `--env-file ${file}`, io.env);
}

/** How a run ended as an exit status (the table in EXIT_CODES_TEXT). A limit verdict is never 0. */
export function exitCodeFor(r: RunResult): number {
  const sig = (name: string) => 128 + (osConstants.signals as Record<string, number>)[name];
  switch (r.status) {
    case 'ok':
      return 0;
    case 'exit-nonzero':
      return r.exitCode ?? EXIT_BRIG_ERROR;
    case 'signaled':
      return r.signal ? 128 + (osConstants.signals[r.signal] ?? osConstants.signals.SIGKILL) : EXIT_BRIG_ERROR;
    case 'wall-time-limit':
    case 'memory-limit':
      return sig('SIGKILL');
    case 'cpu-time-limit':
      return sig('SIGXCPU');
    case 'file-size-limit':
      return sig('SIGXFSZ');
    case 'output-limit':
      return sig('SIGPIPE');
    case 'seccomp-violation':
      return sig('SIGSYS');
    case 'setup-error':
      // As Docker: the command is not there (127) or cannot be executed (126).
      if (r.error?.step === 'exec' && r.error.code === 'ENOENT') return 127;
      if (r.error?.step === 'exec' && (r.error.code === 'EACCES' || r.error.code === 'ENOEXEC' || r.error.code === 'EISDIR')) return 126;
      return EXIT_BRIG_ERROR;
    default:
      return EXIT_BRIG_ERROR;
  }
}

/** Which flag made each mount, for errors the library reports by list index. */
const origins = new WeakMap<object, string>();

/** The option fields whose errors are the user's flags: the library's names, the flags' names. */
const FIELD_FLAGS: Record<string, string> = { cwd: 'workdir', hostname: 'hostname', memory: 'memory', pids: 'pids-limit', cpus: 'cpus', cpuset: 'cpuset-cpus', uid: 'uid', gid: 'gid', tmpSize: 'tmp-size', shmSize: 'shm-size', cgroupParent: 'cgroup-parent', rootfs: 'rootfs', container: 'name', network: 'network', publish: 'publish', publishVia: 'publish-via', extraHosts: 'add-host', dns: 'dns', dnsSearch: 'dns-search' };

/**
 * A library error about an option (`mounts[2].target: ...`) in the user's
 * terms: the flag and value they typed (`-v /etc:/proc/x: ...`), when a flag
 * made it; a profile's own fields keep their names.
 */
export function inUserTerms(e: unknown, p: Parsed, merged: Record<string, unknown>): unknown {
  const err = e as { name?: string; field?: string; message?: string };
  if (err?.name !== 'OptionsError' || typeof err.field !== 'string') return e;
  const rest = err.message!.slice(err.field.length + 2);
  const m = /^(mounts|volumes|tmpfs)\[(\d+)\](?:\.(\w+))?$/.exec(err.field);
  if (m) {
    const where = itemInUserTerms(merged, m[1], m[2], m[3]);
    return where ? new UsageError(`${where}: ${rest}`) : e;
  }
  const top = err.field.split(/[.[]/)[0];
  if (top === 'uid' && p.spelled.has('user') && !p.spelled.has('uid')) return new UsageError(`${flagName(p, 'user')}: ${rest}`);
  const flag = FIELD_FLAGS[top];
  if (flag && p.spelled.has(flag) && top === err.field) return new UsageError(`${flagName(p, flag)}: ${rest}`);
  if (top === 'env' && p.spelled.has('env')) return new UsageError(`${flagName(p, 'env')} ${err.field.slice(4)}: ${rest}`);
  return e;
}

/**
 * A mounts/volumes/tmpfs item named by its index in the merged list, as the
 * user wrote it: the flag and value typed (`-v /etc:/proc/x: target`), or the
 * profile file and the item's own index in it (`/p/x.json: mounts[0].target`).
 */
function itemInUserTerms(merged: Record<string, unknown>, list: string, index: string, sub: string | undefined): string | undefined {
  const item = (merged[list] as object[] | undefined)?.[Number(index)];
  if (!item) return undefined;
  const typed = origins.get(item);
  if (typed) return `${typed}${sub ? `: ${sub}` : ''}`;
  const src = profileItemSource(item);
  return src && `${src}${sub ? `.${sub}` : ''}`;
}

/** A setup step's error names an item by its merged index (`... (mounts[4].source)`): said in the user's terms. */
function setupInUserTerms(message: string, merged: Record<string, unknown>): string {
  const m = /^(.*) \((mounts|volumes|tmpfs)\[(\d+)\]\.(\w+)\)$/.exec(message);
  const where = m && itemInUserTerms(merged, m[2], m[3], m[4]);
  return where ? `${where}: ${m![1]}` : message;
}

/** SandboxOptions from the parsed sandboxSpecs options; stdio inherited. */
export function sandboxOptions(p: Parsed, io: CliIo = processIo()): SandboxOptions {
  const level = one(p, 'log-level');
  if (level) setLogLevel(level as Level);
  const mounts: BindMount[] = [];
  const volumes: VolumeMount[] = [];
  const tmpfs: TmpfsMount[] = [];
  const add = (x: { bind: BindMount } | { volume: VolumeMount } | { tmpfs: TmpfsMount }, typed: string) => {
    const item = 'bind' in x ? x.bind : 'volume' in x ? x.volume : x.tmpfs;
    origins.set(item, typed);
    if ('bind' in x) mounts.push(x.bind);
    else if ('volume' in x) volumes.push(x.volume);
    else tmpfs.push(x.tmpfs);
  };
  for (const v of all(p, 'volume')) add(parseVolume(v, flagName(p, 'volume'), io.cwd), `${flagName(p, 'volume')} ${v}`);
  for (const v of all(p, 'mount')) add(parseMount(v, '--mount', io.cwd), `--mount ${v}`);
  for (const v of all(p, 'tmpfs')) add({ tmpfs: parseTmpfs(v, '--tmpfs') }, `--tmpfs ${v}`);
  const env: Record<string, string> = {};
  for (const f of all(p, 'env-file')) readEnvFile(f, env, io);
  parseEnv(all(p, 'env'), env, flagName(p, 'env'), io.env);
  const opts: SandboxOptions = { stdin: 'inherit', stdout: 'inherit', stderr: 'inherit', mounts, volumes, tmpfs, env };
  const profiles = all(p, 'profile');
  if (profiles.length) opts.profile = profiles.length === 1 ? profiles[0] : profiles;
  const rootfs = one(p, 'rootfs');
  if (rootfs) opts.rootfs = rootfs;
  const image = one(p, 'image');
  if (image) opts.image = image;
  const container = one(p, 'name');
  if (container) {
    if (p.flags.has('rm')) throw new UsageError('--rm and --name: --name keeps the container, --rm removes it; give one');
    opts.container = container;
  }
  const cwd = one(p, 'workdir');
  if (cwd) opts.cwd = cwd;
  const hostname = one(p, 'hostname');
  if (hostname) opts.hostname = hostname;
  Object.assign(opts, netSandboxOptions(p));
  const shm = one(p, 'shm-size');
  if (shm !== undefined) opts.shmSize = shm === '0' ? 0 : parseSize('--shm-size', shm);
  const user = one(p, 'user');
  if (user !== undefined) {
    const u = parseUser(user, flagName(p, 'user'));
    opts.uid = u.uid;
    if (u.gid !== undefined) opts.gid = u.gid;
  }
  const uid = one(p, 'uid');
  if (uid !== undefined) opts.uid = wholeNumber('uid', uid);
  const gid = one(p, 'gid');
  if (gid !== undefined) opts.gid = wholeNumber('gid', gid);
  const idMap = one(p, 'id-map');
  if (idMap !== undefined) opts.idMap = idMap as 'single' | 'multi' | 'auto';
  const memory = one(p, 'memory');
  if (memory) opts.memory = memory;
  const pids = one(p, 'pids-limit');
  if (pids !== undefined) opts.pids = wholeNumber(flagName(p, 'pids-limit'), pids, 1);
  const cpus = one(p, 'cpus');
  if (cpus !== undefined) opts.cpus = Number(cpus);
  const cpuset = one(p, 'cpuset-cpus');
  if (cpuset) opts.cpuset = cpuset;
  const parent = one(p, 'cgroup-parent');
  if (parent) opts.cgroupParent = parent;
  const rlimits = all(p, 'ulimit');
  if (rlimits.length) opts.rlimits = Object.fromEntries(rlimits.map((v) => parseRlimit(v, flagName(p, 'ulimit'))));
  const sizeLimit = (name: string) => {
    const v = one(p, name);
    return v === undefined ? undefined : v === 'unlimited' ? ('unlimited' as const) : parseSize(`--${name}`, v);
  };
  const stack = sizeLimit('stack');
  const fsize = sizeLimit('fsize');
  const nofile = one(p, 'nofile');
  if (stack !== undefined || fsize !== undefined || nofile !== undefined) {
    opts.rlimits = { ...opts.rlimits };
    if (stack !== undefined) opts.rlimits.stack = stack;
    if (fsize !== undefined) opts.rlimits.fsize = fsize;
    if (nofile !== undefined) opts.rlimits.nofile = wholeNumber('nofile', nofile, MIN_NOFILE);
  }
  const cpu = one(p, 'time');
  if (cpu) opts.cpuTimeLimitMs = seconds('time', cpu) * 1000;
  const extra = one(p, 'extra-time');
  if (extra) opts.extraTimeMs = seconds('extra-time', extra, true) * 1000;
  const out = one(p, 'output-limit');
  if (out) opts.outputLimitBytes = parseSize('--output-limit', out);
  const tmpSize = one(p, 'tmp-size');
  if (tmpSize) opts.tmpSize = tmpSize;
  if (p.flags.has('writable-root')) opts.writableRoot = true;
  const wall = one(p, 'wall-time');
  if (wall) opts.wallTimeLimitMs = seconds('wall-time', wall) * 1000;
  const stdin = one(p, 'stdin');
  if (stdin) opts.stdin = { file: resolve(io.cwd, stdin) };
  let seccomp = one(p, 'seccomp');
  for (const s of all(p, 'security-opt')) seccomp = securityOpt(s, '--security-opt') ?? seccomp;
  if (seccomp) opts.seccomp = seccomp === 'default' || seccomp === 'judge' || seccomp === 'none' ? seccomp : resolve(io.cwd, seccomp);
  const entrypoint = one(p, 'entrypoint');
  if (entrypoint !== undefined) opts.entrypoint = entrypoint === '' ? [] : [entrypoint];
  if (p.flags.has('read-only') && image) throw new UsageError('--read-only: not supported yet with an image (after --, the root is always read-only)');
  return opts;
}

/** What went wrong, in a sentence, for the statuses that are not the program's own doing. */
export function explainStatus(result: RunResult, wallTimeLimitMs?: number): string | null {
  if (result.status === 'setup-error') return result.error?.message ?? 'setup failed';
  if (result.status === 'output-error') return result.error?.message ?? 'output failed';
  if (result.status === 'wall-time-limit') return `wall-time limit of ${(wallTimeLimitMs ?? 0) / 1000}s reached; sandbox killed`;
  if (result.status === 'cpu-time-limit') return `CPU time limit exceeded: ${((result.cpuTimeMs.user + result.cpuTimeMs.system) / 1000).toFixed(3)} s used`;
  if (result.status === 'output-limit') return `output limit exceeded after ${result.outputBytes} bytes; output cut`;
  if (result.status === 'file-size-limit') return 'file size limit exceeded (SIGXFSZ)';
  if (result.status === 'memory-limit') return `memory limit reached (peak ${result.memoryPeakBytes ?? '?'} bytes); the out-of-memory killer ended the run`;
  if (result.status === 'seccomp-violation' && result.violation) {
    const v = result.violation;
    return `seccomp violation: the program called ${v.syscall} (${v.arch}, nr ${v.nr}), which the policy forbids; sandbox killed`;
  }
  return null;
}

/**
 * One line for the limits a cgroup could not enforce (the details and the
 * fix are brig doctor's), instead of a paragraph per limit per run.
 */
export function enforcementWarning(result: RunResult): string | null {
  const weak = Object.entries(result.enforcement ?? {}).filter(([, how]) => how === 'rlimit' || how === 'none');
  if (!weak.length) return null;
  const per = weak.filter(([, h]) => h === 'rlimit').map(([l]) => l);
  const none = weak.filter(([, h]) => h === 'none').map(([l]) => l);
  const parts = [...(per.length ? [`${per.join(', ')} enforced per process only (rlimit)`] : []), ...(none.length ? [`${none.join(', ')} not enforced`] : [])];
  return `warning: no delegated cgroup: ${parts.join('; ')}; brig doctor says how to get one`;
}

export const runSpecs = specs;

/** A name that cannot be an image reference, or looks like a command: the hint to use --. */
function imageHint(word: string): string {
  return word.startsWith('/') || word.startsWith('.') || !/^[a-z0-9]/.test(word) ? `; is ${JSON.stringify(word)} a command? put it after --: brig run [OPTIONS] -- ${word} ...` : `; brig pull ${word} fetches it; a host command goes after --: brig run [OPTIONS] -- COMMAND`;
}

/** The command line's IMAGE and COMMAND, by Docker's grammar or brig's `-- COMMAND`. */
export function runTarget(p: Parsed, verb: string): { image?: string; command: string[] } {
  const image = one(p, 'image');
  if (p.dashDash || image || one(p, 'rootfs')) {
    if (!p.rest.length && !image) throw new UsageError(`no command given (brig ${verb} [OPTIONS] -- COMMAND [ARG...])`);
    return { image, command: p.rest };
  }
  if (!p.rest.length) throw new UsageError(`requires an image or a command: brig ${verb} [OPTIONS] IMAGE [COMMAND [ARG...]], or brig ${verb} [OPTIONS] -- COMMAND [ARG...]`);
  return { image: p.rest[0], command: p.rest.slice(1) };
}

/**
 * Runs with `runner` (a plain run, or a box's) and does what the CLI does
 * after: captured output out, the report written, a line on what went wrong,
 * the exit status.
 */
export async function runWith(p: Parsed, verb: string, runner: (argv: string[], opts: SandboxOptions) => Promise<RunResult>, target = runTarget(p, verb), io: CliIo = processIo()): Promise<number> {
  const format = one(p, 'report-format') ?? 'json';
  const opts = sandboxOptions(p, io);
  if (target.image) opts.image = target.image;
  if (p.flags.has('read-only') && opts.image) throw new UsageError('--read-only: not supported yet with an image (after --, the root is always read-only)');
  if (opts.entrypoint && !opts.image) throw new UsageError('--entrypoint: only with an image (after --, the command is the program)');
  // Docker's -i: without it a program from an image reads an empty stdin.
  if (target.image && !p.dashDash && !one(p, 'image') && !p.flags.has('interactive') && !one(p, 'stdin')) opts.stdin = 'ignore';
  // What the profile adds matters here too: an output limit needs the
  // output to pass through brig.
  const merged = applyProfile(opts);
  if (merged.outputLimitBytes !== undefined) opts.stdout = opts.stderr = 'capture';
  const reportFile = one(p, 'report');
  let result: RunResult;
  try {
    result = await runner(target.command, opts);
  } catch (e) {
    // An image name that is not in the store, said in the user's terms.
    const msg = (e as Error)?.message ?? '';
    const mine = inUserTerms(e, p, merged as Record<string, unknown>);
    if (mine !== e) throw mine;
    if (target.image && !one(p, 'image') && /^image: no image/.test(msg)) throw new UsageError(`${msg.replace(/^image: /, '')}${imageHint(target.image)}`);
    if (target.image && !one(p, 'image') && /^image: /.test(msg) && /reference|name/i.test(msg)) throw new UsageError(`${msg.replace(/^image: /, '')}${imageHint(target.image)}`);
    throw e;
  }
  if (opts.stdout === 'capture') io.write(1, result.stdout);
  if (opts.stderr === 'capture') io.write(2, result.stderr);
  // Once per run, not per call: the program got its errno and went on.
  if (result.seccompDenials?.length)
    log().info({ seccompDenials: result.seccompDenials }, `seccomp refused ${result.seccompDenials.map((d) => `${d.syscall} x${d.count} (errno ${d.errno})`).join(', ')}`);
  const why = explainStatus(result, merged.wallTimeLimitMs);
  if (why) io.write(2, `brig ${verb}: ${result.status === 'setup-error' ? setupInUserTerms(why, merged as Record<string, unknown>) : why}\n`);
  const warn = enforcementWarning(result);
  if (warn) io.write(2, `brig ${verb}: ${warn}\n`);
  if (reportFile) {
    try {
      io.writeReport(reportFile, format === 'isolate' ? isolateMeta(result) : reportJson(result), `brig ${verb}`);
    } catch (e) {
      // The program ran; its status stands, and the report's failure is said in a line.
      io.write(2, `brig ${verb}: --report ${reportFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}; the run's result was not written\n`);
      return exitCodeFor(result) || EXIT_BRIG_ERROR;
    }
  }
  return exitCodeFor(result);
}

/**
 * run -t: the program's stdio a new pseudo-terminal (TIOCGPTPEER: no path
 * looked up), made its controlling terminal after setsid, relayed to ours.
 */
function runOnTerminal(interactive: boolean) {
  return async (argv: string[], opts: SandboxOptions): Promise<RunResult> => {
    if (opts.stdout === 'capture') throw new UsageError('-t: the output goes to the terminal, so --output-limit (or a profile with one) cannot capture it');
    // Docker's check: a piped or redirected stdin cannot drive a terminal (its end never reaches the program: it waits for ever).
    if (interactive && !process.stdin.isTTY) throw new UsageError('the input device is not a TTY: -it needs a terminal as standard input; drop -t to pipe input (-i)');
    const { openTerminal, relayTerminal } = await import('./terminal.js');
    const { master, slave } = openTerminal();
    let proc;
    try {
      proc = spawnWith(argv, { ...opts, stdin: { fd: slave }, stdout: { fd: slave }, stderr: { fd: slave } }, { tty: true });
    } catch (e) {
      closeFd(master);
      throw e;
    } finally {
      closeFd(slave);
    }
    // The relay's stream owns the master from here and closes it.
    return relayTerminal(proc, master, interactive);
  };
}

function closeFd(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

export async function runCommand(argv: string[]): Promise<number> {
  const p = parseArgs(argv, specs, { interspersed: false });
  if (p.flags.has('help')) {
    guardedStdout().write(runHelp());
    return 0;
  }
  // [i23 containers] run -d goes to src/cli/container.ts, imported only then (it imports this file's specs).
  if (wantsContainer(p)) return (await import('./container.js')).runDetached(p);
  // A user network or container:NAME is joined by a container's monitor: in the foreground too, the program runs as one.
  const network = one(p, 'network');
  if (network !== undefined && !isBuiltinMode(network)) return (await import('./container.js')).runOnNetwork(p);
  // One sandbox in this process. A skeleton (the plan's root, made ahead for
  // its later runs) and warm namespace pairs (for the next launches) are for
  // runs that never come here: each is a child process with namespaces of
  // its own, on a pool thread, and the CLI waited for them before it exited.
  // (The agent and the library, which run many, keep both.)
  setSkeletons(false);
  setWarm(false);
  if (p.flags.has('tty')) return runWith(p, 'run', runOnTerminal(p.flags.has('interactive')));
  return runWith(p, 'run', run);
}
