// Reports for judge back ends: brig's JSON, and isolate's meta file (the
// key:value lines of `isolate --meta`), so a back end written for isolate
// can switch without code changes.
import { constants as osConstants } from 'node:os';
import type { RunResult } from './sandbox.js';

export function reportJson(r: RunResult): string {
  const { stdout, stderr, ...rest } = r;
  return JSON.stringify(rest, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2) + '\n';
}

const secs = (ms: number) => (ms / 1000).toFixed(3);

export function isolateMeta(r: RunResult): string {
  const lines: [string, string | number][] = [];
  lines.push(['time', secs(r.cpuTimeMs.user + r.cpuTimeMs.system)]);
  lines.push(['time-wall', secs(r.wallTimeMs)]);
  lines.push(['max-rss', r.maxRssKb]);
  if (r.memoryPeakBytes !== undefined) lines.push(['cg-mem', Math.round(r.memoryPeakBytes / 1024)]);
  if (r.oomKilled) lines.push(['cg-oom-killed', 1]);
  lines.push(['csw-voluntary', r.contextSwitches.voluntary]);
  lines.push(['csw-forced', r.contextSwitches.forced]);
  if (r.exitCode !== null) lines.push(['exitcode', r.exitCode]);
  if (r.signal) lines.push(['exitsig', osConstants.signals[r.signal] ?? 0]);
  if (r.killed) lines.push(['killed', 1]);
  const verdict: Partial<Record<RunResult['status'], [string, string]>> = {
    'exit-nonzero': ['RE', `Exited with error status ${r.exitCode}`],
    signaled: ['SG', `Caught fatal signal ${r.signal ? osConstants.signals[r.signal] : ''}`],
    'cpu-time-limit': ['TO', 'Time limit exceeded'],
    'wall-time-limit': ['TO', 'Time limit exceeded (wall clock)'],
    'memory-limit': ['SG', 'Memory limit exceeded'],
    'output-limit': ['SG', 'Output limit exceeded'],
    'file-size-limit': ['SG', 'File size limit exceeded'],
    'seccomp-violation': ['SG', `Forbidden syscall ${r.violation?.syscall ?? ''}`],
    'setup-error': ['XX', r.error?.message ?? 'Internal error'],
    'output-error': ['XX', r.error?.message ?? 'Output error'],
  };
  const v = verdict[r.status];
  if (v) {
    lines.push(['status', v[0]]);
    lines.push(['message', v[1]]);
  }
  return lines.map(([k, val]) => `${k}:${val}`).join('\n') + '\n';
}
