// The soak: many runs of a random mix of well-behaved and hostile programs,
// a few at a time, some through a pool, under the judge profile. Every
// verdict must be the one the program earns, and afterwards nothing may be
// left: processes, fds, mounts, cgroups, temp entries. Node's RSS growth and
// the rate are reported.
//
//   npm run soak [-- --runs N --concurrency N --seed N]   (10,000 runs, 4 at a time)
//
// test/security/soak.test.ts runs 500 of them in `npm test`.
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { createPool, run, type Pool, type RunResult, type SandboxOptions } from '../../src/index.js';
import { baseline, descendants, leftSince } from '../helpers.js';
import { probeMount } from '../probe.js';

const OUTPUT_LIMIT = 64 << 10;
const PIDS = 16;

interface Kind {
  argv: (rand: () => number) => string[];
  options?: SandboxOptions;
  /** What is wrong with the result, or null. */
  check: (r: RunResult, argv: string[]) => string | null;
}

const cgroupHeld = (r: RunResult, limit: 'memory' | 'pids') => r.enforcement?.[limit]?.startsWith('cgroup') === true;
const expect = (r: RunResult, status: RunResult['status'], more?: string | null) =>
  r.status !== status ? `status ${r.status} (${r.error?.message ?? `exit ${r.exitCode} signal ${r.signal}`}), expected ${status}` : (more ?? null);

/** The mix: each kind's program (test/fixtures/probe.c), its options on top of the soak's, and the verdict it must get. */
export const KINDS: Record<string, Kind> = {
  ok: { argv: () => ['hello'], check: (r) => expect(r, 'ok', r.stdout.toString() === 'hello\n' ? null : `stdout ${JSON.stringify(r.stdout.toString())}`) },
  exit: {
    argv: (rand) => ['exit', String(1 + Math.floor(rand() * 99))],
    check: (r, argv) => expect(r, 'exit-nonzero', r.exitCode === Number(argv[1]) ? null : `exit code ${r.exitCode}, expected ${argv[1]}`),
  },
  cpu: { argv: () => ['spin'], options: { cpuTimeLimitMs: 100 }, check: (r) => expect(r, 'cpu-time-limit', r.killed ? null : 'not killed') },
  wall: { argv: () => ['sleep'], options: { wallTimeLimitMs: 200 }, check: (r) => expect(r, 'wall-time-limit') },
  // Under RLIMIT_AS (no cgroup) malloc fails and the bomb spins until the CPU limit.
  memory: { argv: () => ['membomb'], check: (r) => expect(r, cgroupHeld(r, 'memory') ? 'memory-limit' : 'cpu-time-limit') },
  // Contained at the pids limit. Its failed forks leave kernel memory
  // charged to the memory cgroup (20-40 MiB measured here), so at times the
  // out-of-memory killer ends it first: memory-limit is then the verdict the
  // kernel's accounting gives, and it is right too.
  fork: {
    argv: () => ['forkbomb', '100'],
    check: (r) => {
      const pids = cgroupHeld(r, 'pids') && (!r.pidsLimitHit || r.pidsPeak! > PIDS) ? `pids limit hit ${r.pidsLimitHit}, peak ${r.pidsPeak}` : null;
      if (r.status === 'memory-limit' && r.oomKilled) return pids;
      return expect(r, 'ok', !(Number(r.stdout.toString()) > 0) ? `stdout ${JSON.stringify(r.stdout.toString())}` : pids);
    },
  },
  flood: { argv: () => ['flood'], check: (r) => expect(r, 'output-limit', r.stdout.length === OUTPUT_LIMIT ? null : `${r.stdout.length} bytes kept`) },
  segv: { argv: () => ['segv'], check: (r) => expect(r, 'signaled', r.signal === 'SIGSEGV' ? null : `signal ${r.signal}`) },
  orphans: { argv: () => ['orphan'], check: (r) => expect(r, 'ok', r.stdout.toString() === 'left one\n' ? null : `stdout ${JSON.stringify(r.stdout.toString())}`) },
};

export interface SoakOptions {
  runs: number;
  concurrency: number;
  seed: number;
  /** Called every `every` runs with a line of progress. */
  progress?: (line: string) => void;
  every?: number;
}

export interface SoakReport {
  runs: number;
  seed: number;
  seconds: number;
  runsPerSecond: number;
  /** Per kind: runs, and how many got a wrong verdict. */
  kinds: Record<string, { runs: number; wrong: number; pooled: number }>;
  /** The first wrong verdicts, each with its run number and kind. */
  wrong: string[];
  rssStartMiB: number;
  rssEndMiB: number;
  rssPeakMiB: number;
  /** What outlived the soak (all empty when nothing leaked). */
  leaks: { processes: string[]; fds: string[]; mountsChanged: boolean; cgroups: string[]; temp: string[] };
}

/** A small seeded generator (mulberry32): the same seed gives the same mix. */
function generator(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

const MiB = (n: number) => Math.round((n / 2 ** 20) * 10) / 10;

export async function soak(opts: SoakOptions): Promise<SoakReport> {
  const base: SandboxOptions = {
    profile: 'judge',
    mounts: [probeMount()],
    memory: '32m',
    pids: PIDS,
    cpuTimeLimitMs: 300,
    extraTimeMs: 0,
    wallTimeLimitMs: 5000,
    outputLimitBytes: OUTPUT_LIMIT,
  };
  // A pool takes the policy; time and output limits are per run.
  const { cpuTimeLimitMs, extraTimeMs, wallTimeLimitMs, outputLimitBytes, ...policy } = base;
  const perRun = { cpuTimeLimitMs, extraTimeMs, wallTimeLimitMs, outputLimitBytes };
  const names = Object.keys(KINDS);
  const rand = generator(opts.seed);

  // Warm: the addon's lasting fds, the profile, the probe are in place before the baseline.
  await run(['/probe', 'hello'], base);
  const before = baseline();
  const rssStart = process.memoryUsage().rss;
  let rssPeak = rssStart;

  const pool: Pool = createPool({ ...policy, size: opts.concurrency });
  const report: SoakReport = {
    runs: opts.runs,
    seed: opts.seed,
    seconds: 0,
    runsPerSecond: 0,
    kinds: Object.fromEntries(names.map((n) => [n, { runs: 0, wrong: 0, pooled: 0 }])),
    wrong: [],
    rssStartMiB: MiB(rssStart),
    rssEndMiB: 0,
    rssPeakMiB: 0,
    leaks: { processes: [], fds: [], mountsChanged: false, cgroups: [], temp: [] },
  };
  const t0 = performance.now();
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < opts.runs) {
      const n = next++;
      const name = names[Math.floor(rand() * names.length)];
      const kind = KINDS[name];
      const argv = kind.argv(rand);
      const pooled = rand() < 0.5;
      const own = { ...kind.options };
      let r: RunResult;
      try {
        r = pooled
          ? await pool.run(['/probe', ...argv], { ...perRun, ...own })
          : await run(['/probe', ...argv], { ...base, ...own });
      } catch (e) {
        r = { status: 'setup-error', error: { step: 'threw', errno: 0, code: '', message: (e as Error).message } } as RunResult;
      }
      const k = report.kinds[name];
      k.runs++;
      if (pooled) k.pooled++;
      const problem = kind.check(r, argv);
      if (problem) {
        k.wrong++;
        if (report.wrong.length < 20) report.wrong.push(`run ${n} (${name}${pooled ? ', pooled' : ''}): ${problem}`);
      }
      done++;
      if (done % 50 === 0) rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
      if (opts.progress && done % (opts.every ?? 1000) === 0) {
        const s = (performance.now() - t0) / 1000;
        opts.progress(`${done} runs, ${(done / s).toFixed(0)}/s, RSS ${MiB(process.memoryUsage().rss)} MiB, wrong ${report.wrong.length}`);
      }
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  report.seconds = (performance.now() - t0) / 1000;
  report.runsPerSecond = opts.runs / report.seconds;
  await pool.close();
  const rssEnd = process.memoryUsage().rss;
  report.rssEndMiB = MiB(rssEnd);
  report.rssPeakMiB = MiB(Math.max(rssPeak, rssEnd));

  report.leaks = await leftSince(before);
  return report;
}

function leaked(r: SoakReport): boolean {
  const l = r.leaks;
  return l.processes.length > 0 || l.fds.length > 0 || l.mountsChanged || l.cgroups.length > 0 || l.temp.length > 0;
}

/** Nothing wrong and nothing left. */
export function clean(r: SoakReport): boolean {
  return r.wrong.length === 0 && !leaked(r);
}

export function summary(r: SoakReport): string {
  const lines = [
    `soak: ${r.runs} runs (seed ${r.seed}) in ${r.seconds.toFixed(1)} s: ${r.runsPerSecond.toFixed(0)} runs/s`,
    `  ${Object.entries(r.kinds)
      .map(([k, v]) => `${k} ${v.runs}${v.wrong ? ` (${v.wrong} WRONG)` : ''}`)
      .join(', ')}; ${Object.values(r.kinds).reduce((a, v) => a + v.pooled, 0)} through a pool`,
    `  Node RSS ${r.rssStartMiB} -> ${r.rssEndMiB} MiB (growth ${(r.rssEndMiB - r.rssStartMiB).toFixed(1)} MiB, peak ${r.rssPeakMiB} MiB)`,
    `  verdicts: ${r.wrong.length ? `${Object.values(r.kinds).reduce((a, v) => a + v.wrong, 0)} wrong` : 'all right'}; leaks: ${leaked(r) ? JSON.stringify(r.leaks) : 'none'}`,
    ...r.wrong.map((w) => `  ${w}`),
  ];
  return lines.join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const arg = (name: string, dflt: number) => {
    const i = process.argv.indexOf(`--${name}`);
    const v = i > 0 ? Number(process.argv[i + 1]) : dflt;
    if (!Number.isSafeInteger(v) || v < 0) throw new Error(`--${name}: expected a whole number`);
    return v;
  };
  const runs = arg('runs', 10_000);
  const report = await soak({ runs, concurrency: arg('concurrency', 4) || 1, seed: arg('seed', Date.now() % 2 ** 31), progress: (l) => console.log(l), every: Math.max(100, Math.floor(runs / 10)) });
  console.log(summary(report));
  if (descendants().length) console.log('processes still running:', descendants());
  process.exitCode = clean(report) ? 0 : 1;
}
