// A latency CDF as a small standalone SVG: one line per contender, latency
// on a logarithmic x axis (peers differ by multiples), share of runs on y.
export interface Series {
  name: string;
  samplesMs: number[];
}

const COLORS = ['#d62728', '#ff7f0e', '#1f77b4', '#2ca02c', '#9467bd', '#8c564b', '#e377c2'];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function cdfSvg(title: string, series: Series[]): string {
  const W = 760;
  const H = 420;
  const m = { left: 60, right: 200, top: 40, bottom: 50 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const sorted = series.map((s) => ({ name: s.name, v: [...s.samplesMs].sort((a, b) => a - b) }));
  const all = sorted.flatMap((s) => s.v);
  // From the fastest run to the slowest p99.5: the far tail would flatten the rest.
  const lo = Math.max(0.01, Math.min(...all));
  const hi = Math.max(...sorted.map((s) => s.v[Math.min(s.v.length - 1, Math.floor(s.v.length * 0.995))]));
  const lx0 = Math.log10(lo * 0.9);
  const lx1 = Math.log10(hi * 1.1);
  const x = (ms: number) => m.left + ((Math.log10(Math.min(Math.max(ms, lo * 0.9), hi * 1.1)) - lx0) / (lx1 - lx0)) * pw;
  const y = (f: number) => m.top + (1 - f) * ph;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(`<text x="${m.left}" y="22" font-size="14" font-weight="bold">${esc(title)}</text>`);
  // Grid: decades and steps within them (finer when the range is narrow), and every 10% of runs.
  const steps = lx1 - lx0 < 1.5 ? [1, 1.5, 2, 3, 4, 5, 7] : [1, 2, 5];
  for (let d = Math.floor(lx0); d <= Math.ceil(lx1); d++)
    for (const k of steps) {
      const v = k * 10 ** d;
      if (Math.log10(v) < lx0 || Math.log10(v) > lx1) continue;
      const xv = x(v).toFixed(1);
      parts.push(`<line x1="${xv}" y1="${m.top}" x2="${xv}" y2="${m.top + ph}" stroke="#ddd"/>`);
      parts.push(`<text x="${xv}" y="${m.top + ph + 16}" text-anchor="middle">${v >= 1 ? +v.toPrecision(2) : +v.toPrecision(2)}</text>`);
    }
  for (let f = 0; f <= 10; f++) {
    const yv = y(f / 10).toFixed(1);
    parts.push(`<line x1="${m.left}" y1="${yv}" x2="${m.left + pw}" y2="${yv}" stroke="${f === 5 ? '#bbb' : '#eee'}"/>`);
    parts.push(`<text x="${m.left - 6}" y="${yv}" text-anchor="end" dominant-baseline="middle">${f * 10}%</text>`);
  }
  parts.push(`<text x="${m.left + pw / 2}" y="${H - 10}" text-anchor="middle">latency, ms (log scale)</text>`);
  parts.push(`<text x="16" y="${m.top + ph / 2}" transform="rotate(-90 16 ${m.top + ph / 2})" text-anchor="middle">runs at or below</text>`);
  sorted.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const n = s.v.length;
    // At most ~400 points a line: every k-th sample, the last always.
    const step = Math.max(1, Math.floor(n / 400));
    const pts: string[] = [];
    for (let j = 0; j < n; j += step) pts.push(`${x(s.v[j]).toFixed(1)},${y((j + 1) / n).toFixed(1)}`);
    pts.push(`${x(s.v[n - 1]).toFixed(1)},${y(1).toFixed(1)}`);
    parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.join(' ')}"/>`);
    const p50 = s.v[Math.floor(n / 2)];
    const ly = m.top + 10 + i * 20;
    parts.push(`<line x1="${m.left + pw + 14}" y1="${ly}" x2="${m.left + pw + 34}" y2="${ly}" stroke="${color}" stroke-width="3"/>`);
    parts.push(`<text x="${m.left + pw + 40}" y="${ly}" dominant-baseline="middle">${esc(s.name)} (p50 ${p50.toFixed(2)})</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
