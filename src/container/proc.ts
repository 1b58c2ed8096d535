// A running container's processes, as the host's /proc shows them.
import { readdirSync, readFileSync } from 'node:fs';

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

/** Every process under the container's init (not init itself), parents first. */
export function processTree(initPid: number): number[] {
  const out: number[] = [];
  const stack = children(initPid);
  while (stack.length) {
    const pid = stack.shift()!;
    out.push(pid);
    stack.push(...children(pid));
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
