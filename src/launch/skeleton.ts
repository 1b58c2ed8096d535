// Skeletons: a plan's root, built once, cloned by each run.
//
// Building a sandbox's root from the host's is some thirty steps (a tmpfs,
// directories, symlinks, /etc's files, a read-only bind per host directory
// and per device node, a mount point per mount), 10-70 µs each: about half
// of a run's setup. All of it is the same in every run of a plan. So a
// plan's tree is built once, off the JS thread, by a short-lived maker in a
// user and mount namespace of its own, into a detached mount tree (fsmount:
// in no namespace's mount table, and clonable from any); each run then
// clones the tree with open_tree and mounts it as its root in one step, and
// adds only the mounts that must be its own: /proc for its pid namespace,
// its devpts, its /tmp and /dev/shm, the caller's binds.
//
// Isolation is the same as a root built per run: the tree's tmpfs holds
// nothing but what the plan writes (the same bytes every run would write),
// and it is read-only down to its superblock, which no sandbox can make
// writable again (that takes CAP_SYS_ADMIN in the maker's user namespace,
// and no sandbox is in it); the binds in it are read-only as the plan made
// them. Each run's clone is its own set of mounts: a run that unmounts or
// mounts in its copy changes nobody else's.
//
// A skeleton lives with its cached plan (src/plan.ts); it is closed when the
// plan leaves the cache, and after IDLE_MS without a run (it keeps the host
// filesystems it binds referenced), and made again when a run wants it.
// BRIG_NO_SKELETON=1 turns skeletons off; a kernel that refuses to make or
// clone one (before 6.15 a detached tree cannot be mounted on) turns them
// off by itself.
import { TRANSIENT_ERRNOS } from '../errors.js';
import { InFlight } from './inflight.js';
import { log } from '../log.js';
import { native, type NativeStep } from '../native.js';

const IDLE_MS = 10_000;
let idleMs = IDLE_MS;

let enabled = process.env.BRIG_NO_SKELETON !== '1';
/** The kernel refused a skeleton (not one plan's steps): for good. */
let refused = false;
/** Skeletons holding an fd. */
const live = new Set<Skeleton>();
const inFlight = new InFlight();
let idleTimer: NodeJS.Timeout | undefined;

// The steps of the maker that make the tree, not the plan's files in it: a
// failure there is the kernel's, and every skeleton would fail the same way.
const KERNEL_STEPS = new Set(['skeleton-root', 'skeleton-seal']);

export class Skeleton {
  private fd: number | undefined;
  private making = false;
  /** This plan's maker failed (a mount point the host refuses, say): runs build their own root. */
  private failed = false;
  /** Its plan left the cache: closed, and never made again. */
  private retired = false;
  private lastUsed = 0;

  constructor(
    /** The run's steps, with the skeleton step. */
    readonly steps: NativeStep[],
    readonly prepared: unknown,
    /** The maker's steps. */
    readonly makerSteps: NativeStep[],
    private readonly makerPrepared: unknown,
  ) {}

  /** The skeleton's fd for a launch, or undefined: then the run builds its own root, and the skeleton is made for later runs. */
  take(): number | undefined {
    if (!enabled || refused || this.failed || this.retired) return undefined;
    this.lastUsed = Date.now();
    if (this.fd !== undefined) return this.fd;
    if (!this.making) this.make();
    return undefined;
  }

  /** Closes the skeleton; a run that wants it again has it made again. */
  close(): void {
    if (this.fd === undefined) return;
    native.closeHeld(this.fd);
    this.fd = undefined;
    live.delete(this);
  }

  /** Its plan left the cache: closed now, and when its maker finishes. */
  retire(): void {
    this.retired = true;
    this.close();
  }

  private make(): void {
    this.making = true;
    inFlight.start();
    // The maker's files are the caller's on the host, as a run's init's are.
    const uidMap = `0 ${process.geteuid!()} 1\n`;
    const gidMap = `0 ${process.getegid!()} 1\n`;
    native.makeSkeleton(this.makerPrepared, uidMap, gidMap, (err, fds) => {
      this.making = false;
      inFlight.end();
      if (err || !fds) {
        const step = err?.index !== undefined && err.index >= 0 ? this.makerSteps[err.index] : undefined;
        const name = step?.name ?? err?.step;
        if (err && TRANSIENT_ERRNOS.has(err.errno)) {
          // Out of fds, memory or processes: a later run tries again.
        } else if (step && !KERNEL_STEPS.has(step.name)) this.failed = true;
        else {
          refused = true;
          dropSkeletons();
        }
        log().debug({ step: name, path: step?.path, errno: err?.errno }, 'no skeleton: runs build their own root');
        return;
      }
      if (refused || this.retired) {
        native.closeHeld(fds[0]);
        return;
      }
      this.fd = fds[0];
      live.add(this);
      armIdle();
    });
  }

  /** The fd while the skeleton is made and open. */
  get heldFd(): number | undefined {
    return this.fd;
  }

  idleFor(now: number): number {
    return now - this.lastUsed;
  }
}

/**
 * A run's skeleton step failed although its skeleton was made and cloned
 * once by its maker: unless the kernel was out of something for the
 * moment, it does not let a run clone it. Runs build their own roots from
 * now on.
 */
export function skeletonFailed(errno: number): void {
  if (TRANSIENT_ERRNOS.has(errno)) return;
  refused = true;
  dropSkeletons();
}

/** fds the skeletons hold (for leak checks: they are meant to be open). */
export function skeletonFds(): number[] {
  return [...live].flatMap((s) => (s.heldFd === undefined ? [] : [s.heldFd]));
}

/** Resolves once no skeleton is being made (for checks that count this process's fds). */
export function skeletonsSettled(): Promise<void> {
  return inFlight.settled();
}

/** Closes every skeleton; runs make them again as they need them. */
export function dropSkeletons(): void {
  for (const s of [...live]) s.close();
}

/**
 * Turns using skeletons on or off (the benchmark measures both; those made
 * stay for when it is on again), and sets how long one stays without runs.
 */
export function setSkeletons(on: boolean, idle = IDLE_MS): void {
  enabled = on;
  idleMs = idle;
  clearTimeout(idleTimer);
  idleTimer = undefined;
  if (live.size) armIdle();
}

// The timer never keeps the process alive.
function armIdle(): void {
  if (idleTimer) return;
  idleTimer = setTimeout(() => {
    idleTimer = undefined;
    const now = Date.now();
    for (const s of [...live]) if (s.idleFor(now) >= idleMs) s.close();
    if (live.size) armIdle();
  }, idleMs);
  idleTimer.unref();
}
