// Latency statistics and the table the benchmarks print.
export interface Stats {
  name: string;
  runs: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
  runsPerSec: number;
}

export function stats(name: string, samplesMs: number[], totalMs?: number): Stats {
  const s = [...samplesMs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  const sum = s.reduce((a, b) => a + b, 0);
  return { name, runs: s.length, p50: q(0.5), p90: q(0.9), p99: q(0.99), max: s[s.length - 1], mean: sum / s.length, runsPerSec: (s.length * 1000) / (totalMs ?? sum) };
}

export function table(rows: Stats[], baseline: string): string {
  const base = rows.find((r) => r.name === baseline);
  const head = ['', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'runs/s', `p50 vs ${baseline}`];
  const body = rows.map((r) => [r.name, r.p50.toFixed(3), r.p90.toFixed(3), r.p99.toFixed(3), r.max.toFixed(3), r.runsPerSec.toFixed(0), base ? `${(r.p50 / base.p50).toFixed(2)}x` : '']);
  const all = [head, ...body];
  const w = head.map((_, i) => Math.max(...all.map((row) => row[i].length)));
  return all.map((row) => row.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ')).join('\n');
}
