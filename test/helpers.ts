// Shared test helpers: what the host looks like, so a test can prove that a
// run left nothing behind.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

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

export function openFds(): string[] {
  return readdirSync('/proc/self/fd')
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

/** The repository's bin/brig (tests run from dist/test/). */
export const brigBin = join(dirname(fileURLToPath(import.meta.url)), '../../bin/brig');

/** bin/brig as a user runs it: exit code, stdout, stderr. */
export function brigCli(args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}) {
  const r = spawnSync(process.execPath, [brigBin, ...args], { encoding: 'utf8', env: opts.env ?? process.env, input: opts.input ?? '', timeout: opts.timeoutMs ?? 30000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}
