// brig run: one command in a new sandbox, stdio inherited, exit code passed on.
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { constants as osConstants } from 'node:os';
import type { Level } from 'pino';
import { setLogLevel } from '../log.js';
import { parseSize, type BindMount, type RlimitValue, type SandboxOptions, type TmpfsMount } from '../options.js';
import type { VolumeMount } from '../profile/types.js';
import { isolateMeta, reportJson } from '../report.js';
import { applyProfile } from '../profile/index.js';
import { run, type RunResult } from '../sandbox.js';
// [i23 containers]
import { containerRunSpecs } from './container-specs.js';
import { all, formatHelp, one, parseArgs, seconds, UsageError, wholeNumber, type OptionSpec, type Parsed } from './args.js';

export const EXIT_BRIG_ERROR = 125;

/** The sandbox options every verb that runs something takes. */
export const sandboxSpecs: OptionSpec[] = [
  { name: 'profile', short: 'p', value: true, repeat: true, arg: 'NAME|FILE', help: "policy profile under the other options (default: 'default'); repeat to layer, e.g. -p judge -p python" },
  { name: 'rootfs', value: true, arg: 'host|DIR', help: "root filesystem: 'host' (read-only system dirs, the default) or a directory" },
  { name: 'image', short: 'i', value: true, arg: 'NAME[:TAG]', help: "run from an image in your store (brig images): its layers under a writable layer; with no COMMAND, the image's own" },
  { name: 'name', value: true, arg: 'CONTAINER', help: "with -d: the container's name; without -d, with --image: keep the writable layer on disk as this container (brig commit, brig rm)" },
  { name: 'volume', short: 'v', value: true, repeat: true, arg: 'SRC:DST[:ro|rw]', help: 'bind a host path (read-only unless :rw), or a named volume (read-write unless :ro; made on first use)' },
  { name: 'tmpfs', value: true, repeat: true, arg: 'DST[:SIZE]', help: 'a writable tmpfs at DST (default size 64m)' },
  { name: 'env', short: 'e', value: true, repeat: true, arg: 'KEY=VAL', help: "set a variable (KEY alone copies the host's value); the environment is empty otherwise, PATH aside" },
  { name: 'workdir', short: 'w', value: true, arg: 'DIR', help: 'working directory inside the sandbox (default /tmp)' },
  { name: 'hostname', value: true, arg: 'NAME', help: 'hostname inside the sandbox (default brig)' },
  { name: 'network', value: true, arg: 'none|loopback', help: 'none: loopback down, no socket reaches anything (default); loopback: 127.0.0.1 works inside' },
  { name: 'shm-size', value: true, arg: 'SIZE', help: 'size of the writable /dev/shm (default 64m); 0 leaves it out' },
  { name: 'uid', value: true, arg: 'N', help: 'uid inside the sandbox; your own uid maps to it (default 1000)' },
  { name: 'gid', value: true, arg: 'N', help: 'gid inside the sandbox (default 1000)' },
  { name: 'memory', short: 'm', value: true, arg: 'SIZE', help: 'memory of the whole process tree, e.g. 256m (no swap beyond it)' },
  { name: 'pids', value: true, arg: 'N', help: 'processes and threads of the whole tree' },
  { name: 'cpus', value: true, arg: 'N', help: 'CPU bandwidth in CPUs, e.g. 0.5' },
  { name: 'cpuset', value: true, arg: 'LIST', help: 'CPUs the tree may run on, e.g. 0 or 0-1' },
  { name: 'cgroup-parent', value: true, arg: 'PATH', help: 'a delegated cgroup to make cgroups under (default: BRIG_CGROUP_PARENT, else our own)' },
  { name: 'rlimit', value: true, repeat: true, arg: 'NAME=N[:HARD]', help: 'a resource limit: cpu, fsize, data, stack, core, nofile, as, nproc, memlock, ... (N or unlimited)' },
  { name: 'id-map', value: true, arg: 'single|multi', help: 'multi: also map ids 0..N from /etc/subuid and /etc/subgid (needs newuidmap)' },
  { name: 'tmp-size', value: true, arg: 'SIZE', help: 'size of the writable /tmp (default 64m)' },
  { name: 'time', short: 't', value: true, arg: 'SECONDS', help: 'CPU time of the whole tree; past it the verdict is cpu-time-limit' },
  { name: 'extra-time', value: true, arg: 'SECONDS', help: 'grace past --time before the kill, so the report says by how much' },
  { name: 'wall-time', value: true, arg: 'SECONDS', help: 'kill the whole sandbox after this much real time' },
  { name: 'stack', value: true, arg: 'SIZE', help: 'stack size limit (RLIMIT_STACK), e.g. 64m or unlimited' },
  { name: 'nofile', value: true, arg: 'N', help: 'open files limit (RLIMIT_NOFILE)' },
  { name: 'fsize', value: true, arg: 'SIZE', help: 'largest file the program may write (RLIMIT_FSIZE): past it, file-size-limit' },
  { name: 'output-limit', value: true, arg: 'SIZE', help: 'total stdout+stderr; past it, output-limit (output is then captured and printed after the run)' },
  { name: 'stdin', value: true, arg: 'FILE', help: 'read standard input from FILE instead of the terminal' },
  { name: 'seccomp', value: true, arg: 'default|none|FILE', help: "syscall policy: brig's default, none, or a JSON file (brig policy or Docker profile)" },
  { name: 'log-level', value: true, arg: 'LEVEL', help: 'brig logs as JSON on stderr: trace, debug, info, warn, error (default: none)' },
  { name: 'help', short: 'h', help: 'show this help' },
];

const specs: OptionSpec[] = [
  ...sandboxSpecs,
  // [i23 containers] -d, --rm, --restart, --stop-signal, --stop-timeout, --log-opt, -l/--label (src/cli/container-specs.ts)
  ...containerRunSpecs,
  { name: 'report', value: true, arg: 'FILE', help: 'write the run result (without stdout/stderr) to FILE' },
  { name: 'report-format', value: true, arg: 'json|isolate', help: "the report's format: brig's JSON (default) or isolate's meta lines" },
];

export const runHelp = formatHelp(
  'brig run [OPTIONS] [--] COMMAND [ARGS...]',
  'Run COMMAND in a new sandbox: new user, pid, mount, ipc, uts, net and cgroup\nnamespaces, no capabilities, read-only root, private /tmp, no network (the\nprofile decides: default, unless --profile names others).',
  specs,
  'Exit status: the command\'s own; 128+N when killed by signal N (159, SIGSYS, for a\nseccomp violation); 125 when brig itself failed (bad option, setup error: the\nmessage names the step).',
);

/** -v /host/path:/dst[:ro|rw] binds a host path; -v name:/dst[:ro|rw] a named volume. */
function parseVolume(v: string): { bind: BindMount } | { volume: VolumeMount } {
  const parts = v.split(':');
  if (parts.length < 2 || parts.length > 3 || !parts[0] || !parts[1]) throw new UsageError(`--volume: expected SRC:DST[:ro|rw], got ${JSON.stringify(v)}`);
  const mode = parts[2];
  if (mode !== undefined && mode !== 'ro' && mode !== 'rw') throw new UsageError(`--volume: mode must be ro or rw, got ${JSON.stringify(mode)}`);
  if (parts[0].startsWith('/') || parts[0].startsWith('.')) return { bind: { source: resolve(parts[0]), target: parts[1], readonly: mode !== 'rw' } };
  return { volume: { name: parts[0], target: parts[1], readonly: mode === 'ro' } };
}

function parseTmpfs(v: string): TmpfsMount {
  const [target, size, ...extra] = v.split(':');
  if (!target || extra.length) throw new UsageError(`--tmpfs: expected DST[:SIZE], got ${JSON.stringify(v)}`);
  return size ? { target, size } : { target };
}

function parseRlimit(v: string): [string, RlimitValue] {
  const m = /^([a-z]+)=([^:]+)(?::(.+))?$/.exec(v);
  if (!m) throw new UsageError(`--rlimit: expected NAME=N or NAME=SOFT:HARD, got ${JSON.stringify(v)}`);
  const num = (x: string): number | 'unlimited' => {
    if (x === 'unlimited') return x;
    if (!/^\d+$/.test(x)) throw new UsageError(`--rlimit ${m[1]}: expected a whole number or unlimited, got ${JSON.stringify(x)}`);
    return Number(x);
  };
  return [m[1], m[3] === undefined ? num(m[2]) : [num(m[2]), num(m[3])]];
}

function parseEnv(values: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const v of values) {
    const eq = v.indexOf('=');
    if (eq === 0) throw new UsageError(`--env: missing variable name in ${JSON.stringify(v)}`);
    if (eq < 0) {
      const host = process.env[v];
      if (host !== undefined) env[v] = host;
    } else env[v.slice(0, eq)] = v.slice(eq + 1);
  }
  return env;
}


/** Docker's convention: the program's code, 128+N for signal N, 125 for brig's own failure. */
export function exitCodeFor(r: RunResult): number {
  if (r.status === 'setup-error' || r.status === 'output-error') return EXIT_BRIG_ERROR;
  if (r.signal) return 128 + (osConstants.signals[r.signal] ?? osConstants.signals.SIGKILL);
  return r.exitCode ?? EXIT_BRIG_ERROR;
}

/** SandboxOptions from the parsed sandboxSpecs options; stdio inherited. */
export function sandboxOptions(p: Parsed): SandboxOptions {
  const level = one(p, 'log-level');
  if (level) {
    if (!['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].includes(level)) throw new UsageError(`--log-level: expected trace, debug, info, warn, error or silent, got ${JSON.stringify(level)}`);
    setLogLevel(level as Level);
  }
  const vols = all(p, 'volume').map(parseVolume);
  const opts: SandboxOptions = {
    stdin: 'inherit',
    stdout: 'inherit',
    stderr: 'inherit',
    mounts: vols.flatMap((x) => ('bind' in x ? [x.bind] : [])),
    volumes: vols.flatMap((x) => ('volume' in x ? [x.volume] : [])),
    tmpfs: all(p, 'tmpfs').map(parseTmpfs),
    env: parseEnv(all(p, 'env')),
  };
  const profiles = all(p, 'profile');
  if (profiles.length) opts.profile = profiles.length === 1 ? profiles[0] : profiles;
  const rootfs = one(p, 'rootfs');
  if (rootfs) opts.rootfs = rootfs;
  const image = one(p, 'image');
  if (image) opts.image = image;
  const container = one(p, 'name');
  if (container) opts.container = container;
  const cwd = one(p, 'workdir');
  if (cwd) opts.cwd = cwd;
  const hostname = one(p, 'hostname');
  if (hostname) opts.hostname = hostname;
  const network = one(p, 'network');
  if (network !== undefined) {
    if (network !== 'none' && network !== 'loopback') throw new UsageError(`--network: expected none or loopback, got ${JSON.stringify(network)}`);
    opts.network = network;
  }
  const shm = one(p, 'shm-size');
  if (shm !== undefined) opts.shmSize = shm === '0' ? 0 : parseSize('--shm-size', shm);
  const uid = one(p, 'uid');
  if (uid !== undefined) opts.uid = wholeNumber('uid', uid);
  const gid = one(p, 'gid');
  if (gid !== undefined) opts.gid = wholeNumber('gid', gid);
  const idMap = one(p, 'id-map');
  if (idMap !== undefined) {
    if (idMap !== 'single' && idMap !== 'multi') throw new UsageError(`--id-map: expected single or multi, got ${JSON.stringify(idMap)}`);
    opts.idMap = idMap;
  }
  const memory = one(p, 'memory');
  if (memory) opts.memory = memory;
  const pids = one(p, 'pids');
  if (pids !== undefined) opts.pids = wholeNumber('pids', pids);
  const cpus = one(p, 'cpus');
  if (cpus !== undefined) {
    if (!/^\d+(\.\d+)?$/.test(cpus)) throw new UsageError(`--cpus: expected a number such as 0.5, got ${JSON.stringify(cpus)}`);
    opts.cpus = Number(cpus);
  }
  const cpuset = one(p, 'cpuset');
  if (cpuset) opts.cpuset = cpuset;
  const parent = one(p, 'cgroup-parent');
  if (parent) opts.cgroupParent = parent;
  const rlimits = all(p, 'rlimit');
  if (rlimits.length) opts.rlimits = Object.fromEntries(rlimits.map(parseRlimit));
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
    if (nofile !== undefined) opts.rlimits.nofile = wholeNumber('nofile', nofile);
  }
  const cpu = one(p, 'time');
  if (cpu) opts.cpuTimeLimitMs = seconds('time', cpu) * 1000;
  const extra = one(p, 'extra-time');
  if (extra) opts.extraTimeMs = Number(extra) * 1000;
  const out = one(p, 'output-limit');
  if (out) opts.outputLimitBytes = parseSize('--output-limit', out);
  const tmpSize = one(p, 'tmp-size');
  if (tmpSize) opts.tmpSize = tmpSize;
  const wall = one(p, 'wall-time');
  if (wall) opts.wallTimeLimitMs = seconds('wall-time', wall) * 1000;
  const stdin = one(p, 'stdin');
  if (stdin) opts.stdin = { file: stdin };
  const seccomp = one(p, 'seccomp');
  if (seccomp) opts.seccomp = seccomp === 'default' || seccomp === 'none' ? seccomp : resolve(seccomp);
  return opts;
}

/** What went wrong, in a sentence, for the statuses that are not the program's own doing. */
export function explainStatus(result: RunResult, wallTimeLimitMs?: number): string | null {
  if (result.status === 'setup-error') return result.error?.message ?? 'setup failed';
  if (result.status === 'output-error') return result.error?.message ?? 'output failed';
  if (result.status === 'wall-time-limit') return `wall-time limit of ${(wallTimeLimitMs ?? 0) / 1000}s reached; sandbox killed`;
  if (result.status === 'cpu-time-limit') return `CPU time limit exceeded: ${(result.cpuTimeMs.user + result.cpuTimeMs.system).toFixed(0)} ms used`;
  if (result.status === 'output-limit') return `output limit exceeded after ${result.outputBytes} bytes; output cut`;
  if (result.status === 'file-size-limit') return 'file size limit exceeded (SIGXFSZ)';
  if (result.status === 'memory-limit') return `memory limit reached (peak ${result.memoryPeakBytes ?? '?'} bytes); the out-of-memory killer ended the run`;
  if (result.status === 'seccomp-violation' && result.violation) {
    const v = result.violation;
    return `seccomp violation: the program called ${v.syscall} (${v.arch}, nr ${v.nr}), which the policy forbids; sandbox killed`;
  }
  return null;
}

export const runSpecs = specs;

/**
 * Runs with `runner` (a plain run, or a box's) and does what the CLI does
 * after: captured output out, the report written, a line on what went wrong,
 * the exit status.
 */
export async function runWith(p: Parsed, verb: string, runner: (argv: string[], opts: SandboxOptions) => Promise<RunResult>): Promise<number> {
  if (p.rest.length === 0 && !one(p, 'image')) throw new UsageError(`brig ${verb}: no command given (brig ${verb} [OPTIONS] -- COMMAND [ARGS...])`);
  const format = one(p, 'report-format') ?? 'json';
  if (format !== 'json' && format !== 'isolate') throw new UsageError(`--report-format: expected json or isolate, got ${JSON.stringify(format)}`);
  const opts = sandboxOptions(p);
  // What the profile adds matters here too: an output limit needs the
  // output to pass through brig.
  const merged = applyProfile(opts);
  if (merged.outputLimitBytes !== undefined) opts.stdout = opts.stderr = 'capture';
  const result = await runner(p.rest, opts);
  if (opts.stdout === 'capture') process.stdout.write(result.stdout);
  if (opts.stderr === 'capture') process.stderr.write(result.stderr);
  const reportFile = one(p, 'report');
  if (reportFile) writeFileSync(reportFile, format === 'isolate' ? isolateMeta(result) : reportJson(result));
  const why = explainStatus(result, merged.wallTimeLimitMs);
  if (why) process.stderr.write(`brig: ${why}\n`);
  for (const [limit, how] of Object.entries(result.enforcement ?? {}))
    if (how === 'rlimit' || how === 'none') process.stderr.write(`brig: warning: the ${limit} limit ${how === 'none' ? 'was not enforced' : 'was enforced per process by an rlimit only'}: ${result.enforcementNote ?? ''}\n`);
  return exitCodeFor(result);
}

export async function runCommand(argv: string[]): Promise<number> {
  const p = parseArgs(argv, specs);
  if (p.flags.has('help')) {
    process.stdout.write(runHelp);
    return 0;
  }
  // [i23 containers] run -d (and the options only a container takes) goes to src/cli/container.ts.
  // (imported when called: container.ts imports this file's specs)
  const { runDetached, wantsContainer } = await import('./container.js');
  if (wantsContainer(p)) return runDetached(p);
  return runWith(p, 'run', run);
}
