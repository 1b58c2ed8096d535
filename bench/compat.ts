// What running real software unchanged costs: a refused call reported
// through a seccomp notification against one refused in the filter and an
// allowed one (per call, inside the sandbox), and per run: a run making one
// reported refusal, --writable-root, and a multi-id map (newuidmap), each
// against the default run measured in the same interleaved rounds.
//
// A multi-id map is measured with warm pairs (mapped ahead by the setuid
// helpers, src/launch/warm.ts) and without (the helpers run per launch),
// and then as a caller would run it: one run at a time with a pause between
// runs (the pairs are refilled meanwhile), and back-to-back.
//
//   npm run bench                     (this runs after the seccomp benchmark)
//   BRIG_BENCH_COMPAT_RUNS=200 node dist/bench/compat.js
//   BRIG_BENCH_COMPAT_ONLY=multi      (only the multi-id map rows)
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run, type SandboxOptions } from '../src/index.js';
import { planMultiMap } from '../src/launch/idmap.js';
import { hostArch } from '../src/seccomp/index.js';
import { SYSCALLS } from '../src/seccomp/syscalls.js';
import { setSkeletons } from '../src/launch/skeleton.js';
import { setWarm } from '../src/launch/warm.js';
import { probeMount } from '../test/probe.js';
import { stats, table, type Stats } from './stats.js';

const runs = Number(process.env.BRIG_BENCH_COMPAT_RUNS ?? 100);
const callLoops = Number(process.env.BRIG_BENCH_REFUSED_CALLS ?? 5000);
const rounds = 5;
const onlyMulti = process.env.BRIG_BENCH_COMPAT_ONLY === 'multi';
const PAUSE_MS = Number(process.env.BRIG_BENCH_COMPAT_PAUSE_MS ?? 50);
const arch = hostArch();
const nr = (name: string) => (SYSCALLS[arch] as Record<string, number>)[name];
const mounts = [probeMount()];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function nsPerCall(name: string, loops: number): Promise<number> {
  const r = await run(['/probe', 'nr-loop', String(nr(name)), String(loops)], { mounts });
  if (r.status !== 'ok') throw new Error(`probe ${name}: ${r.status} ${r.stderr}`);
  return Number(r.stdout.toString());
}

async function perCall() {
  // getpid is allowed; io_uring_setup is refused in the filter (ENOSYS,
  // quietly); chroot is refused and reported: brig answers it with EPERM.
  const calls = [
    { name: 'allowed (getpid)', call: 'getpid', loops: callLoops * 20 },
    { name: 'refused in the filter (io_uring_setup)', call: 'io_uring_setup', loops: callLoops * 20 },
    { name: 'refused and reported (chroot)', call: 'chroot', loops: callLoops },
  ];
  const samples = calls.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++) for (const [i, c] of calls.entries()) samples[i].push(await nsPerCall(c.call, c.loops));
  const rows = calls.map((c, i) => ({ name: c.name, ns: median(samples[i]) }));
  const base = rows[0].ns;
  console.log(`\nrefused calls: ns per call inside the sandbox, median of ${rounds} runs (${arch})\n`);
  for (const r of rows) console.log(`${r.name.padEnd(40)} ${r.ns.toFixed(0).padStart(8)} ns  ${(r.ns / base).toFixed(1).padStart(7)}x getpid`);
  return rows;
}

async function perRun() {
  const multi = planMultiMap(1000, 1000);
  const contenders: { name: string; argv: string[]; opts: SandboxOptions; skeletons?: boolean; warm?: boolean }[] = [
    { name: 'default', argv: ['/bin/true'], opts: {} },
    { name: 'default, root built per run', argv: ['/bin/true'], opts: {}, skeletons: false },
    { name: 'one reported refusal', argv: ['/probe', 'refused', '1', String(nr('chroot'))], opts: { mounts } },
    { name: 'probe, no refusal', argv: ['/probe', 'hello'], opts: { mounts } },
    { name: '--writable-root', argv: ['/bin/true'], opts: { writableRoot: true } },
    ...('error' in multi
      ? []
      : [
          { name: '--id-map multi (warm pairs)', argv: ['/bin/true'], opts: { idMap: 'multi' as const } },
          { name: '--id-map multi, no warm pairs', argv: ['/bin/true'], opts: { idMap: 'multi' as const }, warm: false },
        ]),
  ].filter((c) => !onlyMulti || c.name === 'default' || c.name.startsWith('--id-map'));
  if ('error' in multi) console.log(`\n(no multi-id map row: ${multi.error.message})`);
  const samples = contenders.map(() => [] as number[]);
  const once = async (c: (typeof contenders)[number]) => {
    if (c.skeletons === false) setSkeletons(false);
    if (c.warm === false) setWarm(false);
    const t = performance.now();
    const r = await run(c.argv, c.opts);
    const ms = performance.now() - t;
    if (c.skeletons === false) setSkeletons(true);
    if (c.warm === false) setWarm(true);
    if (r.status !== 'ok') throw new Error(`${c.name}: ${r.status} ${r.error?.message ?? ''} ${r.stderr}`);
    return ms;
  };
  for (const c of contenders) for (let i = 0; i < 10; i++) await once(c); // warm-up: plans, skeletons, warm pairs
  for (let i = 0; i < runs; i++) for (const [k, c] of contenders.entries()) samples[k].push(await once(c));
  const rows: Stats[] = contenders.map((c, k) => stats(c.name, samples[k]));
  console.log(`\nper run: run() wall time, ${runs} interleaved rounds (/bin/true unless noted)\n`);
  console.log(table(rows, 'default'));
  return rows;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// The default run and a multi-id map run, each as a caller that is not
// saturating would run it (one at a time, PAUSE_MS between runs: the pairs
// are made meanwhile), and back-to-back (each kind in a row of its own, a
// run as soon as the last ended: the pair a run takes was made while the
// run before it ran). `warm`: how many runs took a pair.
async function multiAsCallers() {
  if ('error' in planMultiMap(1000, 1000)) return [];
  const kinds = [
    { name: 'default', opts: {} as SandboxOptions },
    { name: '--id-map multi', opts: { idMap: 'multi' } as SandboxOptions },
  ];
  const once = async (opts: SandboxOptions) => {
    const t = performance.now();
    const r = await run(['/bin/true'], { ...opts, timings: true });
    const ms = performance.now() - t;
    if (r.status !== 'ok') throw new Error(`${r.status} ${r.error?.message ?? ''}`);
    return { ms, warm: r.timings!.warm };
  };
  const out: (Stats & { warm: number })[] = [];
  const paused = kinds.map(() => ({ ms: [] as number[], warm: 0 }));
  for (let i = 0; i < runs; i++)
    for (const [k, c] of kinds.entries()) {
      await sleep(PAUSE_MS);
      const r = await once(c.opts);
      paused[k].ms.push(r.ms);
      if (r.warm) paused[k].warm++;
    }
  for (const [k, c] of kinds.entries()) out.push({ ...stats(`${c.name}, ${PAUSE_MS} ms pauses`, paused[k].ms), warm: paused[k].warm });
  for (const c of kinds) {
    await sleep(PAUSE_MS);
    const ms: number[] = [];
    let warm = 0;
    const t0 = performance.now();
    for (let i = 0; i < runs; i++) {
      const r = await once(c.opts);
      ms.push(r.ms);
      if (r.warm) warm++;
    }
    out.push({ ...stats(`${c.name}, back-to-back`, ms, performance.now() - t0), warm });
  }
  for (const pair of [[0, 1], [2, 3]]) {
    const [base, multi] = pair.map((i) => out[i]);
    console.log(`\n${table([base, multi], base.name)}`);
    console.log(`(warm pairs taken: ${base.warm}/${base.runs} default, ${multi.warm}/${multi.runs} multi)`);
  }
  return out;
}

async function main() {
  if (onlyMulti) {
    const runsRows = await perRun();
    const callers = await multiAsCallers();
    console.log(JSON.stringify({ runs: runsRows, callers }));
    return;
  }
  const calls = await perCall();
  const runsRows = await perRun();
  const callers = await multiAsCallers();
  const out = join(dirname(fileURLToPath(import.meta.url)), '../../bench/results');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'compat.json'), JSON.stringify({ date: new Date().toISOString(), arch, calls, runs: runsRows, multiCallers: callers }, null, 2) + '\n');
  console.log('written: bench/results/compat.json');
}

await main();
