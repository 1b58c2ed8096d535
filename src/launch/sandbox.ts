// spawn() and run(): validate, plan, launch, plumb stdio, watch, report.
import { EventEmitter } from 'node:events';
import { closeSync, constants as fsConstants, openSync, readdirSync, readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import type { Readable, Writable } from 'node:stream';
import { errnoOf, SetupError, setupErrorInfo, type SetupErrorInfo } from '../errors.js';
import { planMultiMap, writeMultiMap, type MultiMapPlan } from './idmap.js';
import { log } from '../log.js';
import { native, ReportKind, StepKind, type LaunchInfo, type NativeExit, type NativeError, type NativeStep } from '../native.js';
import { applyProfile } from '../profile/index.js';
import { resolveOptions, type OutputOption, type ResolvedOptions, type SandboxOptions, type StdinOption } from './options.js';
import { net } from '../builtins.js';
import { buildPlan, execCandidates, namespacesFor, switchesIds, type BuiltPlan } from './plan.js';
import { needsNetworkHelper, SandboxNetwork, type NetworkInfo } from '../net/index.js';
import { RunCgroups } from '../cgroup/run.js';
import { closeWarm, refillWarm, refillWarmMulti, sandboxEnded, sandboxStarted, takeWarm, takeWarmMulti } from './warm.js';
import { skeletonFailed } from './skeleton.js';
import type { RlimitName } from './options.js';
import { AUDIT_ARCH, AUDIT_ARCH_I386, X32_SYSCALL_BIT, hostArch, syscallName } from '../seccomp/index.js';

/** A monotonic clock in ms for the run's timings (the perf_hooks performance object would load Node's perf modules on every start). */
const monotonicMs = (): number => Number(process.hrtime.bigint()) / 1e6;

export type RunStatus =
  | 'ok'
  | 'exit-nonzero'
  | 'signaled'
  | 'cpu-time-limit'
  | 'wall-time-limit'
  | 'memory-limit'
  | 'output-limit'
  | 'file-size-limit'
  | 'seccomp-violation'
  | 'setup-error'
  | 'output-error';

/** How a requested limit was enforced: by a cgroup, by an rlimit per process (weaker), or not at all. */
export type Enforcement = 'cgroup-v1' | 'cgroup-v2' | 'rlimit' | 'none';

/** A call the seccomp policy forbids with kill-process: the sandbox was killed before it ran. */
export interface SeccompViolation {
  /** The syscall's name, or `nr N` when the table has none for it. */
  syscall: string;
  nr: number;
  /** x86_64, aarch64, i386 (int 0x80 on x86_64) or x32. */
  arch: string;
  /** Its arguments, as unsigned 64-bit numbers. */
  args: bigint[];
}

/**
 * A call the seccomp policy refused with an errno and reports: the program
 * got the error and ran on. One entry per call, with how often it was made.
 */
export interface SeccompDenial {
  /** The syscall's name, or `nr N` when the table has none for it. */
  syscall: string;
  /** x86_64 or aarch64 (refusals are only answered for the native architecture). */
  arch: string;
  /** The error the call got (EPERM is 1). */
  errno: number;
  count: number;
}

export interface RunTimings {
  /** Validating options and building the plan (TS). */
  planMs: number;
  /** Converting the plan, clone, id maps, release (native, parent side). */
  convertMs: number;
  cloneMs: number;
  mapsMs: number;
  releaseMs: number;
  /** From release to init's exit being seen by the event loop. */
  runMs: number;
  /** Inside the sandbox: from release until execve starts. */
  sandboxSetupMs: number;
  /** Inside the sandbox, per step name (summed where a name repeats), in plan order. */
  steps: Record<string, number>;
  /** From execve to the program's exit, as init saw it. */
  programMs: number;
  /** From init's exit to the result (stdio drained). */
  resultMs: number;
  /** From the program's end, as init saw it, to the result in JS: reaping, teardown, delivery. */
  exitToResultMs: number;
  /** The sandbox was made ahead by a pool: clone, maps and setup happened before the run. */
  pooled: boolean;
  /** The user and network namespaces were made ahead (src/warm.ts). */
  warm: boolean;
  /** The root was cloned from the plan's skeleton (src/skeleton.ts), not built step by step. */
  skeleton: boolean;
}

export interface RunResult {
  /**
   * What ended the run. When several apply, the first of these wins:
   * 1. setup-error: the program never started; output-error: the stdout or
   *    stderr stream the caller gave failed, so brig ended the run (which
   *    stream and its errno are in `error`);
   * 2. seccomp-violation: a forbidden call, the sandbox killed before it ran;
   * 3. memory-limit: the cgroup's out-of-memory killer ended it;
   * 4. output-limit: it wrote more than outputLimitBytes;
   * 5. cpu-time-limit: its tree used more CPU than cpuTimeLimitMs (also when
   *    it finished within the extra time, and whatever killed it);
   * 6. wall-time-limit;
   * 7. file-size-limit: killed by SIGXFSZ (RLIMIT_FSIZE);
   * 8. signaled, 9. exit-nonzero, 10. ok.
   */
  status: RunStatus;
  /** Peak memory of the whole tree (cgroup), when a cgroup accounted the run. */
  memoryPeakBytes?: number;
  /** The out-of-memory killer fired in the sandbox's cgroup. */
  oomKilled?: boolean;
  /** A fork or clone failed at the pids limit. */
  pidsLimitHit?: boolean;
  /** Most processes and threads at once (cgroup). */
  pidsPeak?: number;
  /** For each limit asked for, what enforced it; `enforcementNote` says why not a cgroup. */
  enforcement?: Partial<Record<'memory' | 'pids' | 'cpus' | 'cpuset', Enforcement>>;
  enforcementNote?: string;
  violation?: SeccompViolation;
  /**
   * With a seccomp policy (all but 'none' and 'learn'): the calls it refused
   * and reports (rules with report: true; the default policy's privileged
   * calls), each once with its count, in the order first made. Empty when
   * there were none.
   */
  seccompDenials?: SeccompDenial[];
  /** With seccomp: 'learn', every call the program made, with counts. */
  seccompCalls?: { syscall: string; nr: number; count: number }[];
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  wallTimeMs: number;
  /**
   * CLOCK_MONOTONIC, in ns, when the run ended: its program exited or brig
   * ended it (taken inside the sandbox). Orders runs that ended close
   * together, as delivery order cannot.
   */
  endedNs?: number;
  /** CPU time of the whole process tree, from the kernel's accounting of the sandbox's init. */
  cpuTimeMs: { user: number; system: number };
  /**
   * Largest resident set of any process in the tree, in KiB (getrusage).
   * The kernel carries the pre-exec memory's peak into it, so for a small
   * program it is at least the Node process's RSS (child_process.spawn's
   * children show the same); memoryPeakBytes (cgroup) is the program's own.
   */
  maxRssKb: number;
  stdout: Buffer;
  stderr: Buffer;
  /** The captured stream hit maxOutputBytes; what followed was read and dropped. */
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  /** Bytes the program wrote to captured stdout and stderr (kept or not). */
  outputBytes: number;
  /** brig ended the run (a limit, a violation, an abort, kill()). */
  killed: boolean;
  contextSwitches: { voluntary: number; forced: number };
  error?: SetupErrorInfo;
  timings?: RunTimings;
}

const signalNames = new Map<number, NodeJS.Signals>();
// First name wins: SIGABRT before its alias SIGIOT, SIGIO before SIGPOLL.
for (const [name, num] of Object.entries(osConstants.signals)) if (!signalNames.has(num)) signalNames.set(num, name as NodeJS.Signals);

let devNull: number | undefined;
function devNullFd(): number {
  devNull ??= openSync('/dev/null', 'r+');
  return devNull;
}

interface Stdio {
  /** -1 where native makes the pipe (stdinData, capture). */
  childFds: [number, number, number];
  stdinData?: Buffer;
  capture: [number | null, number | null];
  /** Our copies of the child's ends, closed once the child has them. */
  closeAfterLaunch: number[];
  stdin: Writable | null;
  stdout: Readable | null;
  stderr: Readable | null;
  feed?: () => void;
  drained: Promise<unknown>[];
  /** Hands what is left in the pipes to the caller's streams once the program has exited. */
  flush: (() => void)[];
  /** The caller's stdout or stderr stream failed: brig ends the run and reports this. */
  outputError?: SetupErrorInfo;
  onOutputError?: () => void;
}

/** A pipe for `step`; out of fds (EMFILE, ENFILE) it is a SetupError naming the step. */
export function makePipe(step: string): [number, number] {
  try {
    return native.pipe();
  } catch (e) {
    throw new SetupError(setupErrorInfo(step, errnoOf(e)));
  }
}

function pipeSocket(fd: number, readable: boolean): Socket {
  return new (net().Socket)({ fd, readable, writable: !readable });
}

function openStdio(o: ResolvedOptions): Stdio {
  const s: Stdio = { childFds: [-1, -1, -1], capture: [null, null], closeAfterLaunch: [], stdin: null, stdout: null, stderr: null, drained: [], flush: [] };
  try {
    setupStdin(s, o.stdin);
    const keep = o.outputLimitBytes === undefined ? o.maxOutputBytes : Math.min(o.maxOutputBytes, o.outputLimitBytes);
    setupOutput(s, 1, o.stdout, keep);
    setupOutput(s, 2, o.stderr, keep);
  } catch (e) {
    for (const fd of s.closeAfterLaunch) closeSync(fd);
    s.stdin?.destroy();
    s.stdout?.destroy();
    s.stderr?.destroy();
    throw e;
  }
  return s;
}

function setupStdin(s: Stdio, v: StdinOption): void {
  if (v === 'ignore') s.childFds[0] = devNullFd();
  else if (v === 'inherit') s.childFds[0] = 0;
  else if (typeof v === 'object' && v !== null && 'fd' in v) s.childFds[0] = v.fd; // the caller's to close
  else if (typeof v === 'object' && v !== null && !Buffer.isBuffer(v) && 'file' in v) {
    s.childFds[0] = openFile('stdin', v.file, 'r');
    s.closeAfterLaunch.push(s.childFds[0]);
  } else if (v !== 'pipe' && (typeof v === 'string' || Buffer.isBuffer(v))) {
    s.stdinData = typeof v === 'string' ? Buffer.from(v) : v; // native feeds it
  } else {
    const [r, w] = makePipe('stdin-pipe');
    s.childFds[0] = r;
    s.closeAfterLaunch.push(r);
    const sock = pipeSocket(w, false);
    // A program may exit without reading its input: EPIPE is its business.
    sock.on('error', () => {});
    if (v === 'pipe') s.stdin = sock;
    else {
      const src = v as Readable;
      s.feed = () => {
        src.on('error', () => sock.destroy());
        src.pipe(sock);
      };
    }
  }
}

function openFile(field: string, path: string, flags: string): number {
  try {
    return openSync(path, flags, 0o644);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new SetupError(setupErrorInfo(field, errnoOf(err), path));
  }
}

function setupOutput(s: Stdio, fd: 1 | 2, v: OutputOption, limit: number): void {
  const field = fd === 1 ? 'stdout' : 'stderr';
  if (v === 'ignore') s.childFds[fd] = devNullFd();
  else if (v === 'inherit') s.childFds[fd] = fd;
  else if (typeof v === 'object' && 'fd' in v) s.childFds[fd] = v.fd; // the caller's to close
  else if (typeof v === 'object' && 'file' in v && typeof v.file === 'string') {
    s.childFds[fd] = openFile(field, v.file, v.append ? 'a' : 'w');
    s.closeAfterLaunch.push(s.childFds[fd]);
  } else if (v === 'capture') {
    s.capture[fd - 1] = limit; // native reads it
  } else {
    const [r, w] = makePipe('output-pipe');
    s.childFds[fd] = w;
    s.closeAfterLaunch.push(w);
    const sock = pipeSocket(r, true);
    sock.on('error', () => {});
    if (v !== 'pipe') {
      const dest = v as Writable;
      sock.pipe(dest, { end: false });
      // A destination that fails cannot take the program's output: the run
      // ends as output-error (the first failure is the one reported) and
      // the rest of the pipe is read and dropped, so nothing waits on it.
      // Listening here also keeps its error from being unhandled.
      const onError = (e: Error) => {
        sock.unpipe(dest);
        sock.resume();
        if (!s.outputError) {
          s.outputError = setupErrorInfo(field, errnoOf(e), undefined, `the ${field} stream failed: ${e.message}; brig ended the run`);
          s.onOutputError?.();
        }
      };
      dest.on('error', onError);
      s.drained.push(new Promise((resolve) => sock.once('close', resolve)).then(() => dest.off('error', onError)));
      // Once the program has exited, the pipe holds at most its capacity:
      // it is handed over without waiting for the destination to drain, so
      // a destination that stopped reading cannot hold the result back.
      s.flush.push(() => {
        if (s.outputError || dest.destroyed) return;
        sock.unpipe(dest);
        sock.on('data', (chunk: Buffer) => {
          if (!dest.destroyed && !dest.writableEnded) dest.write(chunk);
        });
        sock.resume();
      });
    }
    if (fd === 1) s.stdout = sock;
    else s.stderr = sock;
  }
}

function abortError(signal: AbortSignal): Error {
  const e = new Error('The sandbox was aborted', { cause: signal.reason });
  e.name = 'AbortError';
  return e;
}

/**
 * @internal What src/container adds to a launch: cgroups of a container the
 * program joins besides the run's own (cgroup.procs paths), and, for an
 * exec, a pidfd of the running container's init whose namespaces the launch
 * joins (its init then runs only the program's steps of the plan).
 */
export interface LaunchExtras {
  cgroupProcs?: string[];
  joinPidfd?: number;
  argv?: string[];
  /** exec -t, run -t: stdin is a terminal, made the program's controlling terminal (after setsid). */
  tty?: boolean;
  /** A container's program or exec: see ResolvedOptions.containerView. */
  containerView?: boolean;
  /**
   * A terminal of the sandbox's own devpts (its init opens /dev/pts/ptmx in
   * the new root, or in the container's for an exec), at this size, as the
   * program's stdio and controlling terminal; the master comes back as
   * SandboxProcess.ptyMaster. The stdio options are then not used.
   */
  ownPty?: { cols: number; rows: number };
  /**
   * A user and network namespace pair the launch joins instead of making
   * its own (fds, the caller's to close): a container's endpoint on a user
   * network (src/net/attach.ts) or another container's (container:NAME).
   * Its id maps are written already.
   */
  netJoin?: [number, number];
  /** Called once the launch returned, used or not: closes netJoin's fds and ends what made them. */
  netJoinDone?: () => void;
  /**
   * Makes the pair to join (netJoin) once this launch's id maps are known
   * (lines: inside, outside, count): a container's endpoints on user
   * networks (src/net/holder.ts), or a running container's namespaces.
   */
  prepareNet?: (maps: { uid: [number, number, number][]; gid: [number, number, number][] }) => Promise<{ fds: [number, number]; done: () => void }>;
}

/** A running sandbox. `pid` is the host pid of the sandbox's init (0 when setup failed before launch). */
export class SandboxProcess extends EventEmitter {
  readonly stdin: Writable | null;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  pid = 0;
  /** Whether the launch used clone3 (else the clone fallback). */
  clone3 = false;
  private pidfd = -1;
  private exited = false;
  /**
   * The sandbox's network once it is set up: the published ports with the
   * host ports chosen (a port published without one gets a free one).
   * Resolves with no ports when there is nothing to set up or setup failed.
   */
  readonly network: Promise<NetworkInfo>;
  private resolveNetwork!: (info: NetworkInfo) => void;
  private killedByLimit = false;
  private readonly done: Promise<RunResult>;
  /**
   * With LaunchExtras.ownPty: the terminal's master (the caller's to read,
   * write and close), once init has opened it; undefined if it never did
   * (setup failed).
   */
  readonly ptyMaster: Promise<number | undefined>;
  private resolvePty: (fd: number | undefined) => void = () => {};

  /** @internal use spawn(), or a pool's spawn() */
  constructor(argv: string[], options: SandboxOptions, pool?: SandboxSource, private readonly extras: LaunchExtras = {}) {
    super();
    this.network = new Promise((resolve) => (this.resolveNetwork = resolve));
    this.ptyMaster = new Promise((resolve) => (this.resolvePty = resolve));
    if (!extras.ownPty) this.resolvePty(undefined);
    const t0 = monotonicMs();
    const o = resolveOptions(argv, applyProfile(options));
    // An exec's command as given: an image's entrypoint is the container's, not the exec's.
    if (extras.argv) o.argv = extras.argv;
    if (extras.containerView) o.containerView = true;
    pool?.check(o);
    let stdio: Stdio;
    try {
      stdio = openStdio(o);
    } catch (e) {
      if (!(e instanceof SetupError)) throw e;
      this.stdin = this.stdout = this.stderr = null;
      this.resolvePty(undefined);
      this.done = Promise.resolve(setupFailure(e.detail, t0));
      this.resolveNetwork({ ports: [] });
      return;
    }
    this.stdin = stdio.stdin;
    this.stdout = stdio.stdout;
    this.stderr = stdio.stderr;
    this.done = this.start(o, stdio, t0, pool?.take());
    // wait() is how errors are seen; an unobserved rejection must not crash.
    this.done.catch(() => {});
  }

  private start(o: ResolvedOptions, stdio: Stdio, t0: number, pooled?: PooledSandbox): Promise<RunResult> {
    let cgroups: RunCgroups | undefined;
    const dropCgroups = () => cgroups?.remove().catch(() => {});
    const closeChildEnds = () => {
      for (const fd of stdio.closeAfterLaunch) native.close(fd);
    };
    const destroyParentEnds = () => {
      stdio.stdin?.destroy();
      stdio.stdout?.destroy();
      stdio.stderr?.destroy();
    };
    // Nothing started: give back what this run holds, then its result.
    const before = (outcome: () => RunResult | Promise<never>): Promise<RunResult> => {
      this.resolveNetwork({ ports: [] });
      closeChildEnds();
      destroyParentEnds();
      return Promise.resolve(dropCgroups()).then(outcome);
    };
    const failBefore = (info: SetupErrorInfo) => before(() => setupFailure(info, t0));

    // The network to join is made first, mapped as this launch maps ids.
    const prepareNet = this.extras.prepareNet;
    if (prepareNet && !this.extras.netJoin && !pooled) {
      let maps: { uid: [number, number, number][]; gid: [number, number, number][] };
      if (o.idMap === 'multi') {
        const m = switchesIds(o) ? planMultiMap(0, 0) : planMultiMap(o.uid, o.gid);
        if ('error' in m) return failBefore(m.error);
        maps = { uid: m.uid, gid: m.gid };
      } else maps = { uid: [[o.uid, process.getuid!(), 1]], gid: [[o.gid, process.getgid!(), 1]] };
      const resolved = o;
      return prepareNet(maps).then(
        (ep) => {
          this.extras.netJoin = ep.fds;
          this.extras.netJoinDone = ep.done;
          return this.start(resolved, stdio, t0);
        },
        (e: unknown) => failBefore(setupErrorInfo('network', errnoOf(e, osConstants.errno.EIO), undefined, (e as Error).message)),
      );
    }
    // A pooled sandbox was made ahead: cgroups, limits and plan are its own.
    let prep: PreparedSandbox;
    if (pooled) prep = pooled.prepared;
    else {
      const made = prepareSandbox(o, false, (this.extras.cgroupProcs?.length ?? 0) > 0);
      if ('error' in made) {
        cgroups = made.cgroups;
        return failBefore(made.error);
      }
      prep = made;
    }
    cgroups = prep.cgroups;
    const { enforcement, enforcementNote, built } = prep;
    o = { ...o, rlimits: prep.o.rlimits };
    const signal = o.signal;
    if (signal?.aborted) return before(() => Promise.reject(abortError(signal)));
    const netJoin = this.extras.netJoin;
    if (o.attach && !netJoin && this.extras.joinPidfd === undefined) return failBefore(setupErrorInfo('network', osConstants.errno.EINVAL, undefined, `network ${o.attach.kind === 'container' ? `container:${o.attach.ref}` : o.attach.name}: a run()/spawn() sandbox cannot join a user network or container:NAME (a container's monitor makes those namespaces and holds the lease and names for its life): use createContainer(argv, { network }), as brig run --network does`));
    let multi: MultiMapPlan | undefined;
    // A joined pair has its maps already (the multi-id one too), and so
    // has a pooled sandbox (the pool's helpers wrote them).
    if (o.idMap === 'multi' && !netJoin && !pooled) {
      const m = switchesIds(o) ? planMultiMap(0, 0) : planMultiMap(o.uid, o.gid);
      if ('error' in m) return failBefore(m.error);
      multi = m;
    }
    const envp = Object.entries(o.env).map(([k, v]) => `${k}=${v}`);
    const uid = process.getuid!();
    const gid = process.getgid!();
    const tPlan = monotonicMs();

    const join = this.extras.joinPidfd;
    let stepsRun = join === undefined ? built.steps : programSteps(built.steps);
    const ownPty = pooled ? undefined : this.extras.ownPty;
    if (this.extras.tty || ownPty) {
      const at = stepsRun.findIndex((s) => s.kind === StepKind.Stdio) + 1;
      stepsRun = [...stepsRun.slice(0, at), { kind: StepKind.ControllingTty, name: 'controlling-tty' }, ...stepsRun.slice(at)];
    }
    // The terminal is opened by init in the sandbox's root, just before the
    // program is forked: the root, its /dev/pts (a devpts instance of its
    // own) and, for an exec, the container's mount namespace are in place.
    let ptyPair: [number, number] | undefined;
    if (ownPty) {
      const at = stepsRun.findIndex((s) => s.kind === StepKind.ForkProgram);
      stepsRun = [...stepsRun.slice(0, at), { kind: StepKind.OwnPty, name: 'own-pty', path: '/dev/pts/ptmx', arg0: ownPty.cols, arg1: ownPty.rows }, ...stepsRun.slice(at)];
      try {
        ptyPair = native.socketPair();
      } catch (e) {
        this.resolvePty(undefined);
        return failBefore(setupErrorInfo('own-pty', (e as NativeError).errno ?? osConstants.errno.EIO));
      }
    }
    const closePtyPair = () => {
      if (ptyPair) for (const fd of ptyPair) native.close(fd);
      ptyPair = undefined;
      this.resolvePty(undefined);
    };
    let cgroupFds: number[] | undefined;
    try {
      cgroupFds = pooled ? undefined : cgroups?.joinFds();
      for (const procs of this.extras.cgroupProcs ?? []) (cgroupFds ??= []).push(openSync(procs, fsConstants.O_WRONLY));
    } catch (e) {
      closePtyPair();
      return failBefore(setupErrorInfo('cgroup-open', errnoOf(e), (e as NodeJS.ErrnoException).path));
    }
    const closeCgroupFds = () => {
      for (const fd of cgroupFds ?? []) native.close(fd);
    };
    let exitResolve!: (e: NativeExit) => void;
    const exited = new Promise<NativeExit>((resolve) => (exitResolve = resolve));
    let info;
    const execPaths = pooled ? execCandidates(o.argv[0], o.env.PATH) : built.execPaths;
    const uidMap = `${o.uid} ${uid} 1\n`;
    const gidMap = `${o.gid} ${gid} 1\n`;
    // A pooled sandbox has its namespaces; a multi-id map takes a pair the
    // helpers mapped ahead (warm.ts), or is written by them after the clone.
    const warmable = !pooled && !multi && join === undefined && !netJoin;
    const multiWarmable = !pooled && multi !== undefined && join === undefined && !netJoin && process.env.BRIG_NO_CLONE3 !== '1';
    const multiPlan = multi;
    // pasta and the port proxy need init's namespaces before its first step.
    const needsNet = !pooled && join === undefined && needsNetworkHelper(o.network, o.net);
    const multiPair = multiWarmable ? takeWarmMulti(multi!) : undefined;
    // The pair's maps are written: no helpers for this launch.
    if (multiPair) multi = undefined;
    const warm = netJoin ?? multiPair ?? (warmable ? takeWarm(uidMap, gidMap) : undefined);
    try {
      info = pooled
        ? native.start(
            pooled.pidfd,
            { argv: o.argv, envp, execPaths, stdio: stdio.childFds, stdinData: stdio.stdinData, capture: stdio.capture, timings: o.timings, outputLimit: o.outputLimitBytes },
            (e) => exitResolve(e),
          )
        : native.launch(
        {
          // An exec runs the program's part of the container's plan (from its
          // Landlock ruleset on: the root, mounts and hostname are there already).
          // (Steps added to the plan's for this launch go as they are.)
          steps: join === undefined && stepsRun === built.steps ? built.prepared : stepsRun,
          ptySock: ptyPair?.[1],
          argv: o.argv,
          envp,
          execPaths,
          stdio: stdio.childFds,
          stdinData: stdio.stdinData,
          capture: stdio.capture,
          namespaces: namespacesFor(o),
          uidMap,
          gidMap,
          warm,
          skeleton: join === undefined ? built.skeleton : undefined,
          joinPidfd: join,
          deferRelease: multi !== undefined,
          // A joined pair (a network's, or one mapped by the helpers) is
          // checked to be in use before init goes on.
          holdRelease: (needsNet && multi === undefined) || netJoin !== undefined || multiPair !== undefined,
          initName: join === undefined ? 'brig-init' : 'brig-exec',
          noClone3: process.env.BRIG_NO_CLONE3 === '1',
          timings: o.timings,
          notify: o.seccomp ? (o.seccomp.mode === 'learn' ? 2 : 1) : 0,
          refusals: o.seccomp?.mode === 'report' ? o.seccomp.compiled.refusals : undefined,
          auditArch: AUDIT_ARCH[hostArch()],
          cgroupFds,
          outputLimit: o.outputLimitBytes,
        },
        (e) => exitResolve(e),
      );
    } catch (e) {
      if (warm && !netJoin) closeWarm(warm);
      this.extras.netJoinDone?.();
      closeCgroupFds();
      closePtyPair();
      const ne = e as NativeError & { path?: string };
      // The pooled sandbox died while it waited (the pool hears of it and
      // cleans up): start this run the ordinary way.
      if (pooled && ne.step === 'pool-start') return this.start(o, stdio, t0);
      if (typeof ne.step !== 'string') {
        closeChildEnds();
        destroyParentEnds();
        dropCgroups();
        throw e;
      }
      const hint = ne.step === 'clone' && ne.errno === osConstants.errno.EPERM ? 'are unprivileged user namespaces enabled? run `brig doctor`' : undefined;
      return failBefore(setupErrorInfo(ne.step, ne.errno, ne.path, hint));
    }
    const tLaunched = monotonicMs();
    // The sandbox's init holds the namespaces now (or the launch made its own).
    if (warm && !netJoin) closeWarm(warm);
    this.extras.netJoinDone?.();
    sandboxStarted();
    closeChildEnds();
    closeCgroupFds();
    if (ptyPair) this.receivePty(ptyPair);
    this.pid = info.pid;
    this.pidfd = info.pidfd;
    this.clone3 = info.clone3;
    // A multi-id map is written by the setuid helpers while the child waits;
    // if they fail, the child is killed before it has done anything.
    let mapError: SetupErrorInfo | undefined;
    const pidfd = info.pidfd;
    const initPid = info.pid;
    let network: SandboxNetwork | undefined;
    let networkStarting: Promise<void> | undefined;
    const releaseInit = () => {
      if (this.exited) return;
      try {
        native.release(pidfd);
      } catch {
        // init is gone already: its exit is on its way
      }
    };
    // The network is set up while init waits: the program's first packet
    // finds the interface configured and its ports published.
    const startNetwork = () => {
      networkStarting = SandboxNetwork.start(o.network, o.net, initPid).then(
        (n) => {
          network = n;
          this.resolveNetwork(n.info);
          if (this.exited) return;
          releaseInit();
        },
        (e: unknown) => {
          mapError = e instanceof SetupError ? e.detail : setupErrorInfo('network', osConstants.errno.EIO, undefined, (e as Error).message);
          this.resolveNetwork({ ports: [] });
          this.kill('SIGKILL');
        },
      );
    };
    if (netJoin && !info.warm) {
      // The launch made namespaces of its own (no clone3, or setns refused):
      // the program would run off its network. It never starts.
      mapError = setupErrorInfo('network-join', osConstants.errno.EPERM, undefined, 'the launch could not join the network namespace prepared for it');
      this.resolveNetwork({ ports: [] });
      this.kill('SIGKILL');
    } else if (multiPair && !info.warm) {
      // The launch made a user namespace of its own (no clone3, or setns
      // refused), mapped with the single id: the program never starts.
      mapError = setupErrorInfo('id-map', osConstants.errno.EPERM, undefined, 'the launch could not join the namespaces mapped for it by newuidmap');
      this.resolveNetwork({ ports: [] });
      this.kill('SIGKILL');
    } else if (multiPair) {
      if (needsNet) startNetwork();
      else {
        this.resolveNetwork({ ports: [] });
        releaseInit();
      }
    } else if (multi) {
      writeMultiMap(info.pid, multi).then(
        () => (needsNet ? startNetwork() : releaseInit()),
        (e: Error) => {
          mapError = setupErrorInfo('id-map', osConstants.errno.EPERM, undefined, e.message);
          this.kill('SIGKILL');
        },
      );
    } else if (needsNet) startNetwork();
    else {
      this.resolveNetwork({ ports: [] });
      if (netJoin) releaseInit();
    }
    stdio.feed?.();
    stdio.onOutputError = () => this.kill('SIGKILL');
    log().debug({ pid: info.pid, steps: built.steps.length, clone3: info.clone3 }, 'sandbox launched');

    let timer: NodeJS.Timeout | undefined;
    if (o.wallTimeLimitMs !== undefined) {
      timer = setTimeout(() => {
        this.killedByLimit = true;
        this.kill('SIGKILL');
      }, o.wallTimeLimitMs);
    }
    let killedByCpu = false;
    let cpuWatch: NodeJS.Timeout | undefined;
    if (o.cpuTimeLimitMs !== undefined) {
      const until = o.cpuTimeLimitMs + o.extraTimeMs;
      const initPid = info.pid;
      cpuWatch = setInterval(() => {
        if (treeCpuMs(initPid) >= until) {
          killedByCpu = this.kill('SIGKILL') || killedByCpu;
          clearInterval(cpuWatch);
        }
      }, CPU_POLL_MS);
    }
    // Only an abort that killed the sandbox rejects: one that came after the
    // program had exited on its own leaves its result standing.
    let killedByAbort = false;
    const onAbort = () => {
      killedByAbort = this.kill('SIGKILL');
    };
    o.signal?.addEventListener('abort', onAbort, { once: true });

    return exited.then(async (ex) => {
      const tExit = monotonicMs();
      sandboxEnded();
      if (warmable) refillWarm(uidMap, gidMap);
      else if (multiWarmable) refillWarmMulti(multiPlan!);
      this.exited = true;
      if (timer) clearTimeout(timer);
      if (cpuWatch) clearInterval(cpuWatch);
      o.signal?.removeEventListener('abort', onAbort);
      for (const flush of stdio.flush) flush();
      // pasta and the proxy go with the sandbox (and before the result: a
      // caller that sees it may count processes).
      await networkStarting;
      await network?.stop();
      await Promise.all(stdio.drained);
      const usage = cgroups?.usage();
      await dropCgroups();
      const tDone = monotonicMs();
      const result = mapError ? setupFailure(mapError, t0) : this.result(ex, stepsRun, o, tExit - tPlan);
      if (stdio.outputError && result.status !== 'setup-error') {
        result.status = 'output-error';
        result.error = stdio.outputError;
        result.killed = true;
      }
      if (enforcement) {
        result.enforcement = enforcement;
        if (enforcementNote) result.enforcementNote = enforcementNote;
      }
      if (usage) {
        if (usage.memoryPeakBytes !== undefined) result.memoryPeakBytes = usage.memoryPeakBytes;
        result.oomKilled = usage.oomKilled;
        result.pidsLimitHit = usage.pidsLimitHit;
        if (usage.pidsPeak !== undefined) result.pidsPeak = usage.pidsPeak;
      }
      result.killed ||= killedByCpu || killedByAbort || ex.outputLimitHit;
      classify(result, o, usage?.oomKilled ?? false, killedByCpu, ex.outputLimitHit);
      if (o.timings)
        result.timings = {
          planMs: tPlan - t0,
          ...nativeTimings(info, ex, stepsRun),
          runMs: tExit - tLaunched,
          resultMs: tDone - tExit,
          exitToResultMs: result.endedNs === undefined ? NaN : (Number(process.hrtime.bigint()) - result.endedNs) / 1e6,
          pooled: pooled !== undefined,
          warm: info.warm === true,
          skeleton: built.skeleton !== undefined,
        };
      log().debug({ pid: info.pid, status: result.status, exitCode: result.exitCode, signal: result.signal }, 'sandbox exited');
      this.emit('exit', result);
      if (killedByAbort && !this.killedByLimit && o.signal) throw abortError(o.signal);
      return result;
    });
  }

  private result(ex: NativeExit, steps: NativeStep[], o: ResolvedOptions, wallTimeMs: number): RunResult {
    const r: RunResult = {
      status: 'ok',
      exitCode: null,
      signal: null,
      wallTimeMs,
      cpuTimeMs: { user: ex.userUs / 1000, system: ex.systemUs / 1000 },
      maxRssKb: ex.maxRssKb,
      stdout: ex.stdout ?? Buffer.alloc(0),
      stderr: ex.stderr ?? Buffer.alloc(0),
      stdoutTruncated: ex.stdoutTruncated,
      stderrTruncated: ex.stderrTruncated,
      outputBytes: ex.outputBytes,
      killed: this.killedByLimit || ex.violations.length > 0,
      contextSwitches: { voluntary: ex.nvcsw, forced: ex.nivcsw },
    };
    const failed = ex.reports.find((x) => x.kind === ReportKind.StepFailed);
    const exit = ex.reports.find((x) => x.kind === ReportKind.Exit);
    if (exit?.ns) r.endedNs = exit.ns;
    if (failed) {
      const step = steps[failed.step] ?? { name: 'plan', path: undefined };
      // Plans are cached across commands: the exec step's path is this run's.
      const path = step.name === 'exec' ? o.argv[0] : step.path;
      let hint: string | undefined;
      if (step.name === 'exec' && failed.errno === osConstants.errno.ENOENT)
        hint = o.argv[0].includes('/') ? 'no such file in the sandbox' : `command not found in PATH=${o.env.PATH ?? ''}`;
      if (step.name === 'exec' && failed.errno === osConstants.errno.E2BIG)
        hint = 'argv and env are too large for execve: each string at most 128 KiB, all of them together at most a quarter of the stack rlimit';
      if (step.name === 'overlay') hint = overlayHint(failed.errno);
      // Its maker cloned it, but this kernel does not let a run: none from now on.
      if (step.name === 'skeleton') {
        skeletonFailed(failed.errno);
        hint = 'this kernel would not clone the prebuilt root; later runs build their own (BRIG_NO_SKELETON=1 does so from the start)';
      }
      if (failed.errno === osConstants.errno.ENOSPC) hint = `the sandbox's writable space is full: tmpSize is ${o.tmpSize} bytes`;
      r.status = 'setup-error';
      r.error = setupErrorInfo(step.name, failed.errno, path, hint);
      return r;
    }
    if (o.seccomp?.mode === 'report')
      r.seccompDenials = (ex.denials ?? []).map((d) => ({ syscall: callName(d.arch, d.nr), arch: archName(d.arch, d.nr), errno: d.errno ?? 0, count: d.count }));
    if (o.seccomp?.mode === 'learn')
      r.seccompCalls = ex.learned.map((c) => ({ syscall: callName(c.arch, c.nr), nr: c.nr, count: c.count })).sort((a, b) => b.count - a.count || a.nr - b.nr);
    if (ex.violations.length) {
      const v = ex.violations[0];
      r.status = 'seccomp-violation';
      r.signal = 'SIGSYS';
      r.violation = { syscall: callName(v.arch, v.nr), nr: v.nr, arch: archName(v.arch, v.nr), args: v.args };
      return r;
    }
    if (exit) {
      const ws = exit.wstatus;
      if ((ws & 0x7f) === 0) r.exitCode = (ws >> 8) & 0xff;
      else r.signal = signalNames.get(ws & 0x7f) ?? null;
    } else {
      // No exit record: init itself was killed (wall-time limit, abort, kill()).
      r.signal = signalNames.get(ex.initSignal) ?? 'SIGKILL';
    }
    if (this.killedByLimit) r.status = 'wall-time-limit';
    else if (r.signal) r.status = 'signaled';
    else r.status = r.exitCode === 0 ? 'ok' : 'exit-nonzero';
    return r;
  }

  /** Resolves when the sandbox has exited and captured output is drained. */
  wait(): Promise<RunResult> {
    return this.done;
  }

  /**
   * Signals the sandbox. SIGKILL (the default) goes to its init and so ends
   * every process in it; other signals cannot reach init from outside its
   * pid namespace unless it handles them, so they are not offered.
   */
  /**
   * Waits (off the event loop's back: 10 ms at most per look) for the pty's
   * master from init, until it comes or init closed its end (a step failed,
   * or the sandbox ended).
   */
  private receivePty(pair: [number, number]): void {
    native.close(pair[1]);
    const look = () => {
      let got: ReturnType<typeof native.recvWithFds>;
      try {
        got = native.recvWithFds(pair[0], 1, 0);
      } catch {
        got = { data: Buffer.alloc(0), fds: [], truncated: false };
      }
      if (got === null && !this.exited) {
        setTimeout(look, 2);
        return;
      }
      native.close(pair[0]);
      this.resolvePty(got?.fds[0]);
      for (const extra of got?.fds.slice(1) ?? []) native.close(extra);
    };
    look();
  }

  kill(signal: 'SIGKILL' = 'SIGKILL'): boolean {
    if (this.exited || this.pidfd < 0) return false;
    return native.kill(this.pidfd, osConstants.signals[signal]);
  }
}

function archName(audit: number, nr: number): string {
  if (audit === AUDIT_ARCH.x86_64) return nr >= X32_SYSCALL_BIT ? 'x32' : 'x86_64';
  if (audit === AUDIT_ARCH.aarch64) return 'aarch64';
  if (audit === AUDIT_ARCH_I386) return 'i386';
  return `audit arch 0x${audit.toString(16)}`;
}

function callName(audit: number, nr: number): string {
  const arch = audit === AUDIT_ARCH.x86_64 ? 'x86_64' : audit === AUDIT_ARCH.aarch64 ? 'aarch64' : null;
  const name = arch ? syscallName(arch, nr >= X32_SYSCALL_BIT ? nr - X32_SYSCALL_BIT : nr) : undefined;
  return name ?? `nr ${nr}`;
}

/** Durations of the parent's launch phases and of each step inside the sandbox. */
function nativeTimings(info: LaunchInfo, ex: NativeExit, steps: NativeStep[]) {
  const [convertMs, cloneMs, mapsMs, releaseMs] = info.timings;
  let prev = info.startNs + (convertMs + cloneMs + mapsMs + releaseMs) * 1e6;
  const released = prev;
  const byName: Record<string, number> = {};
  let execAt = NaN;
  let programMs = NaN;
  for (const m of ex.reports) {
    if (m.kind !== ReportKind.Mark || m.ns === undefined) continue;
    const ms = (m.ns - prev) / 1e6;
    if (m.step < 0) programMs = ms;
    else {
      const name = steps[m.step]?.name ?? 'unknown';
      byName[name] = (byName[name] ?? 0) + ms;
      execAt = m.ns; // the last step's end: seccomp and execve follow
    }
    prev = m.ns;
  }
  return { convertMs, cloneMs, mapsMs, releaseMs, sandboxSetupMs: (execAt - released) / 1e6, steps: byName, programMs };
}

const CPU_POLL_MS = 10;
const TICK_MS = 10; // /proc reports CPU time in USER_HZ ticks, 100 a second on Linux

/** CPU time of a sandbox's tree from /proc: init's own and what it reaped, plus every live process. */
function treeCpuMs(initPid: number): number {
  let ticks = 0;
  const stack = [initPid];
  while (stack.length) {
    const pid = stack.pop()!;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // utime, stime, cutime, cstime (fields 14-17)
      ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
      for (const tid of readdirSync(`/proc/${pid}/task`)) {
        const kids = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
        if (kids) for (const k of kids.split(' ')) stack.push(Number(k));
      }
    } catch {
      // exited while we looked: its time is in its parent's account now
    }
  }
  return ticks * TICK_MS;
}

/** The verdict, by the precedence written on RunResult.status. */
function classify(r: RunResult, o: ResolvedOptions, oomKilled: boolean, killedByCpu: boolean, outputLimitHit: boolean): void {
  if (r.status === 'setup-error' || r.status === 'output-error' || r.status === 'seccomp-violation') return;
  const cpu = r.cpuTimeMs.user + r.cpuTimeMs.system;
  if (oomKilled && r.signal === 'SIGKILL') r.status = 'memory-limit';
  else if (outputLimitHit) r.status = 'output-limit';
  else if (o.cpuTimeLimitMs !== undefined && (killedByCpu || cpu > o.cpuTimeLimitMs)) r.status = 'cpu-time-limit';
  else if (r.status === 'wall-time-limit') return;
  else if (r.signal === 'SIGXFSZ') r.status = 'file-size-limit';
}

/** A sandbox's cgroups, how its limits are enforced, and its plan: all but the command. */
export interface PreparedSandbox {
  /** The options with the rlimits that stand in for limits no cgroup could hold. */
  o: ResolvedOptions;
  cgroups?: RunCgroups;
  enforcement?: RunResult['enforcement'];
  enforcementNote?: string;
  built: BuiltPlan;
}

/** @internal Makes the run's cgroups (or falls back to rlimits) and builds its plan. */
export function prepareSandbox(o: ResolvedOptions, pooled = false, extraCgroups = false): PreparedSandbox | { error: SetupErrorInfo; cgroups?: RunCgroups } {
  // Limits first: without a cgroup some fall back to rlimits, which are plan steps.
  let cgroups: RunCgroups | undefined;
  let enforcement: RunResult['enforcement'];
  let enforcementNote: string | undefined;
  const limits = o.limits;
  if (Object.keys(limits).length) {
    let made: ReturnType<typeof RunCgroups.create>;
    try {
      made = o.cgroup ? RunCgroups.create(limits, o.cgroupParent) : { unavailable: 'cgroups turned off (cgroup: false)' };
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      const info = setupErrorInfo('cgroup-create', errnoOf(err), err.path);
      if (!err.syscall) info.message = `cgroup-create failed: ${err.message}`;
      return { error: info };
    }
    enforcement = {};
    if (made instanceof RunCgroups) {
      cgroups = made;
      const how: Enforcement = made.backend.kind === 'v2' ? 'cgroup-v2' : 'cgroup-v1';
      for (const k of ['memory', 'pids', 'cpus', 'cpuset'] as const) if (limits[k === 'memory' ? 'memoryBytes' : k] !== undefined) enforcement[k] = how;
    } else {
      // Never pretend a limit held: say what held it, and why not a cgroup.
      enforcementNote = made.unavailable;
      const extra: [RlimitName, bigint, bigint][] = [];
      // An rlimit given explicitly wins over the fallback (the java and
      // node profiles lift RLIMIT_AS, which their runtimes cannot live
      // under); if it is unlimited, nothing enforces the limit.
      const given = (n: RlimitName) => o.rlimits.find(([x]) => x === n);
      const fallback = (n: RlimitName, v: number): Enforcement => {
        const g = given(n);
        if (!g) extra.push([n, BigInt(v), BigInt(v)]);
        return g && g[2] === -1n ? 'none' : 'rlimit';
      };
      if (limits.memoryBytes !== undefined) enforcement.memory = fallback('as', limits.memoryBytes);
      if (limits.pids !== undefined) enforcement.pids = fallback('nproc', limits.pids);
      if (limits.cpus !== undefined) enforcement.cpus = 'none';
      if (limits.cpuset !== undefined) enforcement.cpuset = 'none';
      o = { ...o, rlimits: [...o.rlimits, ...extra] };
    }
  }
  const built = buildPlan(o, cgroups !== undefined || extraCgroups, pooled);
  if ('error' in built) return { error: built.error, cgroups };
  return { o, cgroups, enforcement, enforcementNote, built };
}

/** @internal Where a pool's runs get their sandboxes. */
export interface SandboxSource {
  /** Throws OptionsError if these options need another sandbox than the pool makes. */
  check(o: ResolvedOptions): void;
  /** A sandbox made ahead, or undefined when none is ready (the run then makes its own). */
  take(): PooledSandbox | undefined;
}

/** @internal A sandbox made ahead by a pool, set up and waiting for its command. */
export interface PooledSandbox {
  pid: number;
  pidfd: number;
  prepared: PreparedSandbox;
}

/** A result for a run that never started. */
export function setupFailure(error: SetupErrorInfo, t0 = monotonicMs()): RunResult {
  return {
    status: 'setup-error',
    exitCode: null,
    signal: null,
    wallTimeMs: monotonicMs() - t0,
    cpuTimeMs: { user: 0, system: 0 },
    maxRssKb: 0,
    stdout: Buffer.alloc(0),
    stderr: Buffer.alloc(0),
    stdoutTruncated: false,
    stderrTruncated: false,
    outputBytes: 0,
    killed: false,
    contextSwitches: { voluntary: 0, forced: 0 },
    error,
  };
}

/** The steps an exec's init runs in a running container: from the Landlock ruleset (or the fork) on. */
function programSteps(steps: NativeStep[]): NativeStep[] {
  const from = steps.findIndex((s) => s.kind === StepKind.Landlock || s.kind === StepKind.ForkProgram);
  return steps.slice(from);
}

/** @internal spawn() with src/container's extras (a container's cgroups, an exec's namespaces). */
export function spawnWith(argv: string[], options: SandboxOptions, extras: LaunchExtras): SandboxProcess {
  return new SandboxProcess(argv, { stdout: 'pipe', stderr: 'pipe', ...options }, undefined, extras);
}

/** Starts `argv` in a new sandbox. stdio defaults: stdin ignored, stdout/stderr as pipes. */
export function spawn(argv: string[], options: SandboxOptions = {}): SandboxProcess {
  return new SandboxProcess(argv, { stdout: 'pipe', stderr: 'pipe', ...options });
}

/** Runs `argv` in a new sandbox to completion. stdout/stderr are captured by default. */
export function run(argv: string[], options: SandboxOptions = {}): Promise<RunResult> {
  try {
    return new SandboxProcess(argv, options).wait();
  } catch (e) {
    return Promise.reject(e);
  }
}

/** What to do when overlayfs would not mount an image's layers. */
function overlayHint(errno: number): string {
  if (errno === osConstants.errno.EOPNOTSUPP || errno === osConstants.errno.ENOTSUP)
    return `the store's filesystem keeps no user.* xattrs, which overlayfs needs in a user namespace: put the store (BRIG_STORE) on ext4, xfs, btrfs or tmpfs`;
  return 'this kernel refused overlayfs in a user namespace: images need Linux 5.11 or later (overlayfs with the userxattr option); brig does not drive fuse-overlayfs, whose rootless use needs /dev/fuse open to users';
}
