// Facts about the running kernel.
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
