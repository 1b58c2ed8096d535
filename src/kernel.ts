// Facts about the running kernel and its processes.
import { release } from 'node:os';

/** Whether the running kernel is at least `want` (e.g. "5.12" or "4.8"). */
export function kernelAtLeast(want: string): boolean {
  const have = release().split(/[.-]/).map(Number);
  const need = want.split('.').map(Number);
  for (let i = 0; i < need.length; i++) {
    const h = have[i] ?? 0;
    if (h !== need[i]) return h > need[i];
  }
  return true;
}

/** Whether a process with this pid exists (ours to signal or not). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
