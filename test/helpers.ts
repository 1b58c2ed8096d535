// Shared test helpers: what the host looks like, so a test can prove that a
// run left nothing behind.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { createServer as netServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';
import { discover } from '../src/cgroup/hierarchy.js';
import { warmFds, warmSettled } from '../src/launch/warm.js';
import { skeletonFds, skeletonsSettled } from '../src/launch/skeleton.js';

interface ProcInfo {
  pid: number;
  ppid: number;
  state: string;
  comm: string;
}

function procs(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // exited while we looked
    }
    const close = stat.lastIndexOf(')');
    const fields = stat.slice(close + 2).split(' ');
    out.push({ pid: Number(name), ppid: Number(fields[1]), state: fields[0], comm: stat.slice(stat.indexOf('(') + 1, close) });
  }
  return out;
}

/** Whether pid is a process that still runs (a zombie has ended). */
export function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false; // no such process
  }
}

/** Every process below this one, zombies included. */
export function descendants(root = process.pid): ProcInfo[] {
  const all = procs();
  const kids = new Map<number, ProcInfo[]>();
  for (const p of all) kids.set(p.ppid, [...(kids.get(p.ppid) ?? []), p]);
  const out: ProcInfo[] = [];
  const stack = [root];
  while (stack.length) {
    for (const c of kids.get(stack.pop()!) ?? []) {
      out.push(c);
      stack.push(c.pid);
    }
  }
  return out;
}

/**
 * descendants(), once the makers of warm namespace pairs (src/launch/warm.ts) and
 * skeletons (src/launch/skeleton.ts) that the last runs started have finished: each
 * lives a millisecond or two, and a check right after a run may catch one
 * (or its zombie, when the pool thread that reaps it waits for a CPU: up to 5 s).
 */
export async function descendantsSettled(): Promise<ProcInfo[]> {
  for (let i = 0; i < 200 && descendants().some((p) => p.comm === 'brig-warm' || p.comm === 'brig-skel'); i++) await new Promise((r) => setTimeout(r, 25));
  return descendants();
}

/** Once no warm pair or skeleton is being made: what one holds is in the fd table before JS holds it. */
export async function heldSettled(): Promise<void> {
  await warmSettled();
  await skeletonsSettled();
}

/** This process's open fds, but for the warm namespace pairs and skeletons waiting for launches: those are meant to be open. */
export function openFds(): string[] {
  const warm = new Set([...warmFds(), ...skeletonFds()].map(String));
  return readdirSync('/proc/self/fd')
    .filter((fd) => !warm.has(fd))
    .map((fd) => {
      try {
        return `${fd} -> ${readlinkSync(`/proc/self/fd/${fd}`)}`;
      } catch {
        return null; // the directory fd readdir itself used
      }
    })
    .filter((x): x is string => x !== null)
    .sort();
}

export function mounts(): string {
  return readFileSync('/proc/self/mountinfo', 'utf8');
}

export interface Snapshot {
  fds: string[];
  mounts: string;
}

export function snapshot(): Snapshot {
  return { fds: openFds(), mounts: mounts() };
}

/** Waits briefly for stragglers (sockets closing) and returns what leaked since `before`. */
export async function leaksSince(before: Snapshot): Promise<{ processes: ProcInfo[]; fds: string[]; mountsChanged: boolean }> {
  let last = { processes: [] as ProcInfo[], fds: [] as string[], mountsChanged: false };
  for (let i = 0; i < 20; i++) {
    const now = snapshot();
    const fds = now.fds.filter((f) => !before.fds.includes(f));
    last = { processes: descendants(), fds, mountsChanged: now.mounts !== before.mounts };
    if (!last.processes.length && !fds.length && !last.mountsChanged) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  return last;
}

export const isRoot = process.getuid?.() === 0;

/** The repository's Node CLI, bin/brig-node (tests run from dist/test/); bin/brig is a shell script that picks the native client or this. */
export const brigBin = join(dirname(fileURLToPath(import.meta.url)), '../../bin/brig-node');

/** bin/brig as a user runs it: exit code, stdout, stderr. */
export function brigCli(args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}) {
  const r = spawnSync(process.execPath, [brigBin, ...args], { encoding: 'utf8', env: opts.env ?? process.env, input: opts.input ?? '', timeout: opts.timeoutMs ?? 30000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/**
 * A test file's own brig world: a temp root holding its store (BRIG_STORE)
 * and runtime dir (XDG_RUNTIME_DIR, 0700 as the agent and the engine socket
 * want), bin/brig run with them, and ok(): the same, asserting exit 0.
 */
export function brigRoot(prefix: string, timeoutMs = 60_000) {
  const root = mkdtempSync(join(tmpdir(), prefix));
  const env = { ...process.env, BRIG_STORE: join(root, 'store'), XDG_RUNTIME_DIR: join(root, 'run') };
  mkdirSync(env.XDG_RUNTIME_DIR, { mode: 0o700 });
  const brig = (...args: string[]) => brigCli(args, { env, timeoutMs });
  const ok = (...args: string[]): string => {
    const r = brig(...args);
    assert.equal(r.code, 0, `brig ${args.join(' ')}: ${r.err}`);
    return r.out;
  };
  return { root, env, brig, ok };
}

/** bin/brig as brigCli runs it, without blocking this process (for servers the test itself runs). */
export function brigCliAsync(args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, [brigBin, ...args], { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d));
  child.stderr.on('data', (d: Buffer) => (err += d));
  child.stdin.end(opts.input ?? '');
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, out, err })));
}

/** The cgroups process `pid` made (brig names them brig-PID-N) under each hierarchy's parent, as this process finds them. */
export function ownCgroups(pid = process.pid): string[] {
  const h = discover(process.env.BRIG_CGROUP_PARENT || undefined);
  const parents = new Set([...(h.v2 ? [h.v2.parent] : []), ...[...h.v1.values()].map((p) => p.parent)]);
  const out: string[] = [];
  for (const parent of parents) {
    try {
      for (const e of readdirSync(parent)) if (e.startsWith(`brig-${pid}-`)) out.push(join(parent, e));
    } catch {
      // a hierarchy we cannot list has nothing of ours
    }
  }
  return out.sort();
}

/** brig's temp entries (brig-*) in the temp directory that belong to this user. */
function tempEntries(): string[] {
  const me = process.getuid!();
  return readdirSync(tmpdir())
    .filter((e) => e.startsWith('brig-'))
    .filter((e) => {
      try {
        return statSync(join(tmpdir(), e)).uid === me;
      } catch {
        return false;
      }
    })
    .sort();
}

/**
 * Registers hooks that prove a test file left nothing behind: no process
 * below this one, no new fd, no mount, no cgroup of this process, no brig-*
 * temp entry. Call it last in the file, so its check runs after the file's
 * own cleanup hooks. The baseline is taken after one sandbox run, which
 * opens the addon's lasting fds (the shared /dev/null, its watcher).
 */
export function guardLeaks(): void {
  let base: Baseline;
  before(async () => {
    const { run } = await import('../src/index.js');
    await run(['/bin/true']);
    await heldSettled(); // the pair its end started making, its skeleton: in the table, not yet in warmFds() or skeletonFds()
    base = baseline();
  });
  after(async () => {
    const left = await leftSince(base);
    assert.deepEqual(left.processes, [], 'processes left by this test file');
    assert.deepEqual(left.fds, [], 'fds left open by this test file');
    assert.equal(left.mountsChanged, false, 'mounts changed by this test file');
    assert.deepEqual(left.cgroups, [], 'cgroups left by this test file');
    assert.deepEqual(left.temp, [], 'temp entries left by this test file');
  });
}

export type Baseline = Snapshot & { temp: string[]; cgroups: string[] };

/** What is there now: fds, mounts, this process's cgroups, brig temp entries. */
export function baseline(): Baseline {
  return { ...snapshot(), temp: tempEntries(), cgroups: ownCgroups() };
}

/** What outlived `base` (after a short wait for stragglers): every list empty when nothing leaked. */
export async function leftSince(base: Baseline): Promise<{ processes: string[]; fds: string[]; mountsChanged: boolean; cgroups: string[]; temp: string[] }> {
  const leaks = await leaksSince(base);
  let temp: string[] = [];
  let cgroups: string[] = [];
  for (let i = 0; i < 40; i++) {
    temp = tempEntries().filter((e) => !base.temp.includes(e));
    cgroups = ownCgroups().filter((c) => !base.cgroups.includes(c));
    if (!temp.length && !cgroups.length) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  return { processes: leaks.processes.map((p) => `${p.pid} ${p.comm} ${p.state}`), fds: leaks.fds, mountsChanged: leaks.mountsChanged, cgroups, temp };
}

/** A TCP port on 127.0.0.1 free a moment ago (for a server the test starts). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = netServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** A bcrypt hash for htpasswd, from Python's crypt (libxcrypt); undefined where it has none. */
export function bcrypt(password: string): string | undefined {
  try {
    const out = execFileSync('python3', ['-W', 'ignore', '-c', 'import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))', password], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return out.startsWith('$2') ? out : undefined;
  } catch {
    return undefined;
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until fn() holds, looking every `every` ms; fails the test naming `what` after `ms`. */
export async function until(what: string, fn: () => boolean, ms = 15_000, every = 50): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(every);
  }
}
