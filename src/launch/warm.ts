// Warm namespaces: user and network namespace pairs made ahead of launches.
//
// A fresh network namespace is most of what a sandbox's clone costs (about
// 0.3 ms here: the kernel registers its sysctl tables, loopback, ipv4 and
// ipv6 state), and the clone runs on the JS thread. So a pair is made ahead,
// on a libuv pool thread: a short-lived child makes a user namespace mapped
// as the run will map it, and a network namespace owned by it, and leaves
// two fds. A launch given a pair joins it (setns) and makes the other
// namespaces (pid, mount, ipc, uts, cgroup) itself, in a helper that
// exits at once; see CloneWarm in addon/launch.cc.
//
// Isolation is the same as a launch that makes all of them: every pair is
// fresh, used by one sandbox only and closed at its launch; nothing ever ran
// in it before (its maker exited without doing anything there); the
// sandbox's init holds every capability in the pair's user namespace, which
// owns the network namespace, exactly as when it made both itself.
//
// A multi-id map can only be written by the setuid newuidmap and
// newgidmap, which take the pid of a process in the namespace: for such a
// pair the maker clones a holder into a fresh user and network namespace
// (addon: makeWarmHold) that does nothing there but block; the helpers map
// it by that pid, off any launch's path; its maps are read back and
// compared, and only then is the holder killed and reaped and the pair
// ready. The argument above holds as it is: the holder ran no code of the
// caller's, and it is gone before the pair is used. If the helpers fail,
// no more pairs are made for that map (the launch's own helpers then report
// why), and the holder and fds are given back.
//
// Pairs are kept per id map, as many as launches came without one lately
// (at most MAX_READY), and closed when no launch took one for IDLE_MS.
// BRIG_NO_WARM=1 turns this off; a kernel that refuses (no clone3 or no
// setns into user namespaces) turns it off by itself.
import { availableParallelism } from 'node:os';
import { TRANSIENT_ERRNOS } from '../errors.js';
import { InFlight } from './inflight.js';
import { readFileSync } from 'node:fs';
import { log } from '../log.js';
import { native } from '../native.js';
import type { MultiMapPlan } from './idmap.js';

const MAX_READY = 4;
const IDLE_MS = 2000;
const DEFAULT_SPARE = Math.max(1, availableParallelism() - 1);
let spareCpus = DEFAULT_SPARE;

/** Sandboxes launched by run()/spawn() not yet ended (see sandboxStarted). */
let running = 0;

/** sandbox.ts counts its launches in and out. */
export function sandboxStarted(): void {
  running++;
}
export function sandboxEnded(): void {
  running--;
}

interface Slot {
  uidMap: string;
  gidMap: string;
  /** Set for a multi-id map: written by newuidmap/newgidmap, not by the maker. */
  multi?: MultiMapPlan;
  /** The helpers failed for this map: launches run them themselves (and report why). */
  broken?: boolean;
  ready: [number, number][];
  making: number;
  /** How many pairs to keep ready: launches that found none raised it. */
  want: number;
  lastTake: number;
}

const slots = new Map<string, Slot>();
let enabled = process.env.BRIG_NO_WARM !== '1';
// The kernel refused (no clone3, no setns into a user namespace): for good.
let refused = false;
let idleTimer: NodeJS.Timeout | undefined;

/**
 * A warm pair for a launch with these maps, or undefined (then the launch
 * makes its own). The caller closes it with closeWarm() once the launch
 * returned, used or not, and calls refillWarm() when the run has ended.
 */
export function takeWarm(uidMap: string, gidMap: string): [number, number] | undefined {
  return take(`${uidMap}\0${gidMap}`, () => ({ uidMap, gidMap }));
}

/** As takeWarm(), for a multi-id map: a pair whose maps newuidmap/newgidmap wrote ahead. */
export function takeWarmMulti(plan: MultiMapPlan): [number, number] | undefined {
  return take(multiKey(plan), () => ({ uidMap: '', gidMap: '', multi: plan }));
}

function multiKey(plan: MultiMapPlan): string {
  return `multi\0${JSON.stringify([plan.uid, plan.gid, plan.newuidmap, plan.newgidmap])}`;
}

function take(key: string, maps: () => Pick<Slot, 'uidMap' | 'gidMap' | 'multi'>): [number, number] | undefined {
  if (!enabled || refused) return undefined;
  // A pair is made on a CPU that would otherwise wait; with a sandbox
  // already running on every spare one, making it ahead only adds work (a
  // helper process, and contention in the kernel): 4 concurrent callers on
  // 2 CPUs ran 5% slower with pairs than without.
  if (running >= spareCpus) return undefined;
  let s = slots.get(key);
  if (!s) slots.set(key, (s = { ...maps(), ready: [], making: 0, want: 0, lastTake: 0 }));
  if (s.broken) return undefined;
  const pair = s.ready.pop();
  if (!pair && s.want < MAX_READY) s.want++;
  s.lastTake = Date.now();
  armIdle();
  return pair;
}

/** Closes a pair once the launch that took it returned (init holds the namespaces now, if it was used). */
export function closeWarm(pair: [number, number]): void {
  native.closeHeld(pair[0], pair[1]);
}

/**
 * Starts making the pairs the next launches with these maps will want.
 * Called when a run has ended, not at its launch: making a network
 * namespace costs the other CPU a few hundred microseconds in the kernel,
 * and meanwhile an expedited RCU grace period (the sandbox's pivot-root,
 * which unmounts the host's tree) waits for it. Measured here, a pair made
 * during the sandbox's setup made setup 0.4 ms slower, as much as it saved.
 */
export function refillWarm(uidMap: string, gidMap: string): void {
  const s = slots.get(`${uidMap}\0${gidMap}`);
  if (s) refill(s);
}

/** As refillWarm(), for a multi-id map. */
export function refillWarmMulti(plan: MultiMapPlan): void {
  const s = slots.get(multiKey(plan));
  if (s) refill(s);
}

/** fds the pairs waiting to be used hold (for leak checks: they are meant to be open). */
export function warmFds(): number[] {
  return [...slots.values()].flatMap((s) => s.ready.flat());
}

/**
 * Turns taking and making pairs on or off (the benchmark measures both);
 * those waiting stay for when it is on again. `spare`: how many sandboxes
 * may be running for a launch to still take a pair (default: CPUs - 1).
 */
export function setWarm(on: boolean, spare = DEFAULT_SPARE): void {
  enabled = on;
  spareCpus = spare;
}

const inFlight = new InFlight();

/** Resolves once no pair is being made (for checks that count this process's fds). */
export function warmSettled(): Promise<void> {
  return inFlight.settled();
}

/** Closes every pair waiting and stops making more until the next launch. */
export function dropWarm(): void {
  for (const s of slots.values()) empty(s);
}

function empty(s: Slot): void {
  for (const pair of s.ready.splice(0)) closeWarm(pair);
  s.want = 0;
}

function refill(s: Slot): void {
  while (enabled && !refused && !s.broken && s.ready.length + s.making < s.want) {
    s.making++;
    inFlight.start();
    const made = (err: (Error & { errno?: number; step?: string }) | null, pair?: [number, number]) => {
      s.making--;
      inFlight.end();
      if (err || !pair) {
        s.want = 0;
        // A multi-id map's failures (the helpers, most likely) stop only
        // its own pairs: launches run the helpers and report why.
        if (s.multi) s.broken = true;
        else if (err && !TRANSIENT_ERRNOS.has(err.errno ?? 0)) {
          refused = true;
          dropWarm();
        }
        log().debug({ step: err?.step, errno: err?.errno, err: err?.message }, 'no warm namespaces: launches make their own');
        return;
      }
      if (refused || s.ready.length >= s.want) closeWarm(pair);
      else s.ready.push(pair);
    };
    if (s.multi) makeMultiPair(s.multi, made);
    else native.makeWarm(s.uidMap, s.gidMap, made);
  }
}

/** The pid behind a pidfd (its fdinfo says). */
function pidOf(pidfd: number): number {
  const m = /^Pid:\s*(-?\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${pidfd}`, 'utf8'));
  const pid = m ? Number(m[1]) : -1;
  if (pid <= 0) throw new Error(`warm-hold: no pid behind pidfd ${pidfd}`);
  return pid;
}

/** The map lines of /proc/PID/FILE as numbers (whitespace as the kernel aligns them). */
function mapOf(pid: number, file: string): number[][] {
  return readFileSync(`/proc/${pid}/${file}`, 'utf8')
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => l.trim().split(/\s+/).map(Number));
}

// A pair and its holder, mapped by the helpers (by the holder's pid, on a
// pool thread: spawning them from the JS thread blocked it for each fork and
// exec); the maps are read back and must be exactly the plan's; then the
// holder goes. Whatever fails, the holder is killed and reaped and the fds
// closed (native does so for the helpers' failures).
function makeMultiPair(plan: MultiMapPlan, done: (err: Error | null, pair?: [number, number]) => void): void {
  const argv = (tool: string, lines: [number, number, number][]) => [tool, ...lines.flat().map(String)];
  native.makeWarmHold(argv(plan.newuidmap, plan.uid), argv(plan.newgidmap, plan.gid), (err, fds) => {
    if (err || !fds) return done(err ?? new Error('warm-hold: no fds'));
    const [user, net, pidfd] = fds;
    const fail = (e: Error) => {
      native.endWarmHold(pidfd);
      native.closeHeld(user, net);
      done(e);
    };
    let pid: number;
    try {
      pid = pidOf(pidfd);
    } catch (e) {
      return fail(e as Error);
    }
    try {
      const same = (got: number[][], want: [number, number, number][]) => JSON.stringify(got) === JSON.stringify(want);
      if (!same(mapOf(pid, 'uid_map'), plan.uid) || !same(mapOf(pid, 'gid_map'), plan.gid)) return fail(new Error('warm-hold: the maps read back differ from those written'));
    } catch (e) {
      return fail(e as Error);
    }
    native.endWarmHold(pidfd);
    done(null, [user, net]);
  });
}

// Pairs hold kernel memory (a network namespace is about 100 KiB): a
// process that stopped launching gives them back. The timer never keeps
// the process alive.
function armIdle(): void {
  if (idleTimer) return;
  idleTimer = setTimeout(() => {
    idleTimer = undefined;
    const now = Date.now();
    let active = false;
    for (const s of slots.values()) {
      if (now - s.lastTake >= IDLE_MS) empty(s);
      else active = true;
    }
    if (active) armIdle();
  }, IDLE_MS);
  idleTimer.unref();
}
