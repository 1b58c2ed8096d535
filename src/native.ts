// The addon's whole surface, typed. Nothing here decides anything: callers in
// src/ build a checked LaunchPlan and native executes it (addon/plan.h).
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const enum StepKind {
  Mount = 1,
  Bind = 2,
  SetReadonly = 3,
  Mkdir = 4,
  Touch = 5,
  Symlink = 6,
  WriteFile = 7,
  PivotRoot = 8,
  Chdir = 9,
  Sethostname = 10,
  LoopbackUp = 11,
  ForkProgram = 12,
  Setsid = 13,
  Setrlimit = 14,
  DropCaps = 15,
  NoNewPrivs = 16,
  Seccomp = 17,
  Stdio = 18,
  CloseFds = 19,
  ResetSignals = 20,
  Exec = 21,
  Pdeathsig = 22,
  Umask = 23,
  NotifyFd = 24,
  CgroupJoin = 25,
  AwaitCommand = 26,
  Lchown = 27,
  Exit = 28,
  SetIds = 29,
  Landlock = 30,
  LandlockRestrict = 31,
  /** init: a clone of the run's skeleton (LaunchPlan.skeleton) mounted on a. */
  Skeleton = 32,
  /** Skeleton maker: a fresh detached tmpfs (size a) becomes the new root. */
  SkeletonRoot = 33,
  /** Skeleton maker: the tree made private and read-only, down to its superblock. */
  SkeletonSeal = 34,
  /** The program: its stdin, a terminal, becomes its controlling terminal (exec -t). */
  ControllingTty = 35,
  OwnPty = 36,
}

/** One step of the plan. `name` and `path` are for error messages only; native ignores them. */
export interface NativeStep {
  kind: StepKind;
  name: string;
  path?: string;
  mode?: number;
  flags?: number;
  a?: string;
  b?: string;
  c?: string;
  d?: string | Buffer;
  arg0?: number | bigint;
  arg1?: number | bigint;
  arg2?: number | bigint;
}

export interface LaunchPlan {
  /** The steps, or a handle from prepareSteps() for steps converted once. */
  steps: NativeStep[] | unknown;
  argv: string[];
  envp: string[];
  execPaths: string[];
  /** fds for 0, 1, 2; -1 where native makes the pipe itself (stdinData, capture). */
  stdio: [number, number, number];
  /** Written to the program's stdin by native, then closed. */
  stdinData?: Buffer;
  /** Byte limits for stdout and stderr that native captures (null: not captured). */
  capture?: [number | null, number | null];
  namespaces: number;
  uidMap: string;
  gidMap: string;
  deferRelease: boolean;
  /** Ids mapped as usual, but init waits for release(pidfd) before its steps (pasta configures its network first). */
  holdRelease?: boolean;
  initName: string;
  noClone3?: boolean;
  /** The sandbox reports when each step ends (ReportKind.Mark). */
  timings?: boolean;
  /** Seccomp notifications: 0 none, 1 report (kill and record), 2 learn (record and continue). */
  notify?: number;
  /** AUDIT_ARCH of this machine: calls of another arch are never let through in learn mode. */
  auditArch?: number;
  /** Report mode: calls native answers with an errno (flat pairs nr, errno; Compiled.refusals); any other notification kills. */
  refusals?: number[];
  /** cgroup.procs files opened for writing: the program joins them (StepKind.CgroupJoin). */
  cgroupFds?: number[];
  /** Total bytes of captured stdout+stderr after which native kills the sandbox. */
  outputLimit?: number;
  /** A warm pair (userFd, netFd) from makeWarm() to launch into; its maps are already written. */
  warm?: [number, number];
  /** A skeleton from makeSkeleton() for the plan's skeleton step (native launches with its own copy). */
  skeleton?: number;
  /**
   * An exec into a running container: a pidfd of its init. The launch joins
   * init's namespaces (`namespaces` says which) with one setns instead of
   * making its own, writes no id maps, and its init ends only its program.
   */
  joinPidfd?: number;
  /** Init's end of a socket the pty's master is sent over (StepKind.OwnPty). */
  ptySock?: number;
  /** Pooled: set up, then wait for native.start() to give the command (argv, envp, stdio above are placeholders). */
  awaitCommand?: boolean;
}

export interface NativeSeccompCall {
  nr: number;
  arch: number;
  count: number;
  args: bigint[];
  /** A refusal native answered: its errno. */
  errno?: number;
}

export const enum ReportKind {
  StepFailed = 1,
  Exit = 2,
  Mark = 3,
}

export interface NativeReport {
  kind: ReportKind;
  step: number;
  errno: number;
  wstatus: number;
  /** CLOCK_MONOTONIC ns: for a mark, the end of step `step` (-1: the program exited); for the exit, when the run ended. */
  ns?: number;
}

export interface NativeExit {
  /** init's own exit: code, or -1 when it was killed (then initSignal). */
  initCode: number;
  initSignal: number;
  userUs: number;
  systemUs: number;
  maxRssKb: number;
  minflt: number;
  majflt: number;
  nvcsw: number;
  nivcsw: number;
  reports: NativeReport[];
  stdout?: Buffer;
  stderr?: Buffer;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  violations: NativeSeccompCall[];
  learned: NativeSeccompCall[];
  /** Refusals answered, one per call with its count (report mode). */
  denials: NativeSeccompCall[];
  outputBytes: number;
  outputLimitHit: boolean;
}

/** What a pooled sandbox is told to run: the per-run part of a plan. */
export type StartCommand = Pick<LaunchPlan, 'argv' | 'envp' | 'execPaths' | 'stdio' | 'stdinData' | 'capture' | 'timings' | 'outputLimit'>;

export interface LaunchInfo {
  pid: number;
  pidfd: number;
  clone3: boolean;
  /** Launched into a warm pair (launch() only). */
  warm?: boolean;
  /** ms: plan conversion, clone, id maps, release */
  timings: [number, number, number, number];
  /** CLOCK_MONOTONIC ns when launch() began. */
  startNs: number;
}

export interface NativeError extends Error {
  step: string;
  errno: number;
}

export interface Native {
  launch(plan: LaunchPlan, onExit: (exit: NativeExit) => void): LaunchInfo;
  /** As launch(), with the clone and id maps on the addon's launcher thread; onReady gets the info or the error. */
  launchAsync(plan: LaunchPlan, onReady: (err: NativeError | null, info?: LaunchInfo) => void, onExit: (exit: NativeExit) => void): void;
  /** Creates an overlayfs whiteout (character device 0:0) at path. */
  mknodWhiteout(path: string): void;
  /** Extended attributes of a path itself (symlinks not followed). getXattr: null when absent. */
  setXattr(path: string, name: string, value: Buffer): void;
  getXattr(path: string, name: string): Buffer | null;
  listXattr(path: string): string[];
  /** Gives a pooled sandbox (launched with awaitCommand) its program. Throws with step 'pool-start' if it is gone. */
  start(pidfd: number, command: StartCommand, onExit: (exit: NativeExit) => void): LaunchInfo;
  release(pidfd: number): void;
  /**
   * A TCP socket made inside a network namespace (its owning user namespace
   * joined first; both as fds of /proc/PID/ns) and connected to address:port
   * there; the fd is the caller's. With udp: a UDP socket made there, not
   * connected (connect it with dgram's connect(), after bind({ fd })). Throws with step proxy-setns, proxy-socket or proxy-connect.
   */
  netnsConnect(userFd: number, netFd: number, family: 4 | 6, address: string, port: number, timeoutMs?: number, udp?: boolean): number;
  /** A fresh user namespace mapped as given and a network namespace it owns, made on a pool thread; the fds are the caller's. */
  makeWarm(uidMap: string, gidMap: string, cb: (err: NativeError | null, pair?: [number, number]) => void): void;
  /**
   * Builds a skeleton off the JS thread: runs the maker's steps (prepared,
   * see addon/plan.h) in a user and mount namespace of their own, mapped as
   * given, and gives the detached tree's fd. On failure err.index is the
   * maker's step that failed (-1: the id maps).
   */
  makeSkeleton(steps: unknown, uidMap: string, gidMap: string, cb: (err: (NativeError & { index?: number }) | null, fds?: [number]) => void): void;
  /** A fresh user and network namespace pair mapped by the helpers (argv without the pid) on a pool thread, and a pidfd of the process holding it (its maps can be read back); the fds are the caller's. */
  makeWarmHold(uidHelper: string[], gidHelper: string[], cb: (err: NativeError | null, fds?: [number, number, number]) => void): void;
  /** Kills and reaps a makeWarmHold() holder and closes its pidfd. */
  endWarmHold(pidfd: number): void;
  /** Gives fds from makeWarm() or makeSkeleton() back: they are closed (those still held when the environment ends are closed then). */
  closeHeld(...fds: number[]): void;
  prepareSteps(steps: NativeStep[]): unknown;
  kill(pidfd: number, signal: number): boolean;
  pipe(): [number, number];
  /** A close-on-exec pidfd for `pid`; throws (step 'pidfd-open', errno). */
  pidfdOpen(pid: number): number;
  /** pidfd_send_signal: 0 or -errno. */
  pidfdSignal(pidfd: number, signal: number): number;
  /** A pseudo-terminal: [master, slave], both close-on-exec; throws (step 'openpty', errno). */
  openPty(): [number, number];
  /** A connected AF_UNIX SOCK_SEQPACKET pair, both close-on-exec. */
  socketPair(): [number, number];
  /** TIOCSWINSZ on a terminal fd: 0 or -errno. */
  setWinsize(fd: number, cols: number, rows: number): number;
  /** flock(2): 0 or -errno (-EWOULDBLOCK when `wait` is false and another holds it). */
  flock(fd: number, exclusive: boolean, wait: boolean): number;
  close(fd: number): void;
  live(): number;
  landlockAbi(): number;
  /** SO_PEERCRED of a connected unix socket: [pid, uid, gid]. */
  peerCred(fd: number): [number, number, number];
  /** Up to maxBytes, waiting at most waitMs (0-10, blocking), with the fds sent along (close-on-exec); null: nothing yet; empty data: end of file. */
  recvWithFds(fd: number, maxBytes: number, waitMs?: number): { data: Buffer; fds: number[]; truncated: boolean } | null;
  /** An exclusive flock (non-blocking) on path, made 0600 if absent: the fd (close-on-exec), held until closed; throws errno EWOULDBLOCK if held. */
  lockExclusive(path: string): number;
  /** This process's resource limits: [resource, soft, hard], -1 for unlimited. */
  rlimits(): [number, number, number][];
  /** The fd number reserved in this process for the seccomp listener handoff. */
  handoffFd: number;
  constants: {
    CLONE_NEWUSER: number;
    CLONE_NEWPID: number;
    CLONE_NEWNS: number;
    CLONE_NEWIPC: number;
    CLONE_NEWUTS: number;
    CLONE_NEWNET: number;
    CLONE_NEWCGROUP: number;
  };
}

// dist/src/native.js -> ../../build/Release. process.dlopen with the path, as
// require() ends up doing: require first resolves the name (reading the
// package's package.json for its "exports") and makes a module record, some
// 3 ms of every CLI start here for the same dlopen (docs/performance.md).
const addon = { exports: {} as Native };
process.dlopen(addon, join(import.meta.dirname ?? dirname(fileURLToPath(import.meta.url)), '../../build/Release/brig.node'));
export const native: Native = addon.exports;
