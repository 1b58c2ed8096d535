// A running container's processes, as the host's /proc shows them.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { native } from '../native.js';

function children(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const kids = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      if (kids) for (const k of kids.split(' ')) out.push(Number(k));
    }
  } catch {
    // gone
  }
  return out;
}

/**
 * Every process of the container but brig's own (its init, an exec's init):
 * those under its init, parents first, then those an exec started (children
 * of the exec's caller, found by their pid namespace).
 */
export function processTree(initPid: number): number[] {
  const out: number[] = [];
  const stack = children(initPid);
  while (stack.length) {
    const pid = stack.shift()!;
    out.push(pid);
    stack.push(...children(pid));
  }
  let ns: string;
  try {
    ns = readlinkSync(`/proc/${initPid}/ns/pid`);
  } catch {
    return out;
  }
  const seen = new Set([initPid, ...out]);
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || seen.has(Number(name))) continue;
    try {
      if (readlinkSync(`/proc/${name}/ns/pid`) !== ns) continue;
      if (readFileSync(`/proc/${name}/comm`, 'utf8').trim() === 'brig-exec') continue;
      out.push(Number(name));
    } catch {
      // gone, or not ours to look at
    }
  }
  return out;
}

/** The container's program: init's first child (init forks exactly one). */
export function programPid(initPid: number): number | undefined {
  return children(initPid)[0];
}

export interface ProcInfo {
  pid: number;
  ppid: number;
  uid: number;
  state: string;
  cpuTicks: number;
  rssBytes: number;
  startTicks: number;
  cmd: string;
}

const PAGE = 4096;

export function procInfo(pid: number): ProcInfo | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? -1);
    let cmd = comm;
    try {
      const c = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (c) cmd = c.replace(/\0+$/, '').split('\0').join(' ');
    } catch {
      // kernel thread or gone
    }
    return { pid, ppid: Number(f[1]), uid, state: f[0], cpuTicks: Number(f[11]) + Number(f[12]), rssBytes: Number(f[21]) * PAGE, startTicks: Number(f[19]), cmd };
  } catch {
    return undefined;
  }
}

/** Signals the container's first process as Docker does: the program, init's child (SIGKILL ends the sandbox instead, by the caller). */
export function signalProgram(initPid: number, signo: number): void {
  const prog = programPid(initPid);
  if (prog === undefined) return;
  let fd: number;
  try {
    fd = native.pidfdOpen(prog);
  } catch {
    return; // it has just exited
  }
  try {
    native.pidfdSignal(fd, signo);
  } finally {
    native.close(fd);
  }
}
