// Startup latency and throughput: run(['/bin/true']) with full isolation,
// the same from a warm pool, against a plain child_process.spawn and against
// bubblewrap with every namespace, all measured in this process, in
// interleaved rounds so machine noise hits every contender alike. Then
// throughput with 4 concurrent callers, Node's memory over many runs, and
// what a pooled sandbox costs while it waits.
//
//   npm run bench                       (500 runs each, 10,000 for memory)
//   BRIG_BENCH_RUNS=2000 BRIG_BENCH_RSS_RUNS=20000 npm run bench
import { spawn as cpSpawn, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createPool, run, type Pool, type SandboxOptions } from '../src/index.js';
import { RunCgroups } from '../src/cgroup/run.js';
import { setWarm } from '../src/launch/warm.js';
import { setSkeletons } from '../src/launch/skeleton.js';
import { stats, table, type Stats } from './stats.js';
import { cdfSvg } from './svg.js';

const runs = Number(process.env.BRIG_BENCH_RUNS ?? 500);
const throughputRuns = Number(process.env.BRIG_BENCH_THROUGHPUT_RUNS ?? 2000);
const rssRuns = Number(process.env.BRIG_BENCH_RSS_RUNS ?? 10000);
const warmup = 50;
const callers = 4;

function spawnTrue(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = cpSpawn(cmd, args, { stdio: 'ignore' });
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited ${code}`))));
  });
}

function bwrapArgs(): string[] {
  // The same view brig's 'host' rootfs gives: system dirs read-only, fresh
  // /proc, /dev and /tmp, every namespace unshared.
  const a = ['--unshare-all', '--die-with-parent', '--new-session', '--ro-bind', '/usr', '/usr'];
  for (const d of ['/bin', '/sbin', '/lib', '/lib64', '/lib32', '/libx32']) {
    if (!existsSync(d)) continue;
    const st = lstatSync(d);
    if (st.isSymbolicLink()) a.push('--symlink', `usr${d}`, d);
    else a.push('--ro-bind', d, d);
  }
  a.push('--ro-bind', '/etc/ld.so.cache', '/etc/ld.so.cache', '--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp', '/bin/true');
  return a;
}

function findBwrap(): string | null {
  const r = spawnSync('sh', ['-c', 'command -v bwrap'], { encoding: 'utf8' });
  const path = r.stdout.trim();
  if (!path) return null;
  const probe = spawnSync(path, bwrapArgs(), { stdio: 'ignore' });
  return probe.status === 0 ? path : null;
}

interface Contender {
  name: string;
  once: () => Promise<void>;
  samples: number[];
  totalMs: number;
}

async function brigTrue(opts: SandboxOptions, pool?: Pool): Promise<void> {
  const r = pool ? await pool.run(['/bin/true']) : await run(['/bin/true'], opts);
  if (r.status !== 'ok') throw new Error(`brig: ${r.status} ${r.error?.message ?? ''}`);
}

/** Runs `total` calls of `once` with `callers` of them in flight at a time; runs per second. */
async function throughput(once: () => Promise<void>, total: number): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (next++ < total) await once();
    }),
  );
  return (total * 1000) / (performance.now() - t0);
}

function meminfoKb(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of readFileSync('/proc/meminfo', 'utf8').split('\n')) {
    const m = /^(\w+):\s+(\d+) kB/.exec(line);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

async function main() {
  // Full isolation: every namespace, the default profile (and so brig's
  // default seccomp policy), the host rootfs, and cgroup limits where this
  // user can have cgroups.
  const probe = RunCgroups.create({ memoryBytes: 256 << 20, pids: 64 });
  const cgroups = probe instanceof RunCgroups ? probe.backend.kind : null;
  if (probe instanceof RunCgroups) await probe.remove();
  const full: SandboxOptions = cgroups ? { memory: '256m', pids: 64 } : {};
  const fullName = cgroups ? `brig run (cgroup ${cgroups} limits)` : 'brig run';
  const pool = createPool({ ...full, size: 2 } as Parameters<typeof createPool>[0]);

  const contenders: Contender[] = [{ name: fullName, once: () => brigTrue(full), samples: [], totalMs: 0 }];
  if (cgroups) contenders.push({ name: 'brig run (no cgroup)', once: () => brigTrue({}), samples: [], totalMs: 0 });
  // The same run with one of its speed-ups off: what it saves.
  const without = (set: (on: boolean) => void) => async () => {
    set(false);
    try {
      await brigTrue(full);
    } finally {
      set(true);
    }
  };
  // Making its user and network namespaces at launch, as it does when no
  // warm pair is waiting (src/launch/warm.ts).
  contenders.push({ name: 'brig run, cold namespaces', once: without(setWarm), samples: [], totalMs: 0 });
  // Building its root step by step, as a plan's first run does while its
  // skeleton is being made (src/launch/skeleton.ts).
  contenders.push({ name: 'brig run, root built per run', once: without(setSkeletons), samples: [], totalMs: 0 });
  contenders.push({ name: 'brig pool.run', once: () => brigTrue(full, pool), samples: [], totalMs: 0 });
  contenders.push({ name: 'child_process.spawn', once: () => spawnTrue('/bin/true', []), samples: [], totalMs: 0 });
  const bwrap = findBwrap();
  const bwrapOnce = bwrap ? () => spawnTrue(bwrap, bwrapArgs()) : null;
  if (bwrapOnce) contenders.push({ name: 'bwrap --unshare-all', once: bwrapOnce, samples: [], totalMs: 0 });
  else console.log('bubblewrap not installed or not usable here: skipped (apt-get install bubblewrap)');
  if (!cgroups) console.log(`no cgroups for this user (${(probe as { unavailable: string }).unavailable.split('.')[0]}): brig runs without cgroup limits`);

  for (const c of contenders) for (let i = 0; i < warmup; i++) await c.once();
  for (let i = 0; i < runs; i++) {
    for (const c of contenders) {
      const t = performance.now();
      await c.once();
      const dt = performance.now() - t;
      c.samples.push(dt);
      c.totalMs += dt;
    }
  }
  const rows: Stats[] = contenders.map((c) => stats(c.name, c.samples, c.totalMs));
  console.log(`\nstartup latency of /bin/true, ${runs} runs each, interleaved (uid ${process.getuid!()}, ${process.version})\n`);
  console.log(table(rows, fullName));
  for (const brigRow of rows.filter((r) => r.name.startsWith('brig')))
    console.log(`${brigRow.name}: ${rows.filter((r) => !r.name.startsWith('brig')).map((r) => `p50 ${(brigRow.p50 / r.p50).toFixed(2)}x ${r.name}'s, p99 ${(brigRow.p99 / r.p99).toFixed(2)}x`).join('; ')}`);

  // Throughput: 4 callers at once, each starting its next run when its last ends.
  console.log(`\nthroughput, ${callers} concurrent callers, ${throughputRuns} runs each`);
  const tput: Record<string, number> = {};
  const pool4 = createPool({ ...full, size: callers } as Parameters<typeof createPool>[0]);
  await new Promise((r) => setTimeout(r, 100));
  tput[fullName] = await throughput(() => brigTrue(full), throughputRuns);
  tput['brig pool.run'] = await throughput(() => brigTrue(full, pool4), throughputRuns);
  tput['child_process.spawn'] = await throughput(() => spawnTrue('/bin/true', []), throughputRuns);
  if (bwrapOnce) tput['bwrap --unshare-all'] = await throughput(bwrapOnce, throughputRuns);
  for (const [name, v] of Object.entries(tput)) console.log(`  ${name.padEnd(36)} ${v.toFixed(0).padStart(6)} runs/s${tput['bwrap --unshare-all'] ? `  (${(v / tput['bwrap --unshare-all']).toFixed(2)}x bwrap)` : ''}`);
  await pool4.close();

  // Node's memory over many runs: RSS after a warm-up and at the end.
  const rssAt = () => process.memoryUsage().rss;
  await throughput(() => brigTrue(full), 500);
  const rss0 = rssAt();
  const rssSamples: [number, number][] = [[0, rss0]];
  let done = 0;
  await throughput(async () => {
    await brigTrue(full);
    if (++done % 1000 === 0) rssSamples.push([done, rssAt()]);
  }, rssRuns);
  const rss1 = rssAt();
  console.log(`\nNode RSS over ${rssRuns} more runs (${callers} at a time): ${(rss0 / 2 ** 20).toFixed(1)} MiB -> ${(rss1 / 2 ** 20).toFixed(1)} MiB (${rss1 >= rss0 ? '+' : ''}${((rss1 - rss0) / 2 ** 20).toFixed(1)} MiB)`);
  console.log(`  every 1000 runs: ${rssSamples.map(([, r]) => (r / 2 ** 20).toFixed(1)).join(' ')} MiB`);

  // What a sandbox waiting in a pool costs: Node's RSS (its stacks) and the
  // kernel's memory (namespaces, mounts, tmpfs, page tables, task).
  await pool.close();
  const idleCount = 50;
  const k0 = meminfoKb();
  const r0 = rssAt();
  const big = createPool({ ...full, size: idleCount } as Parameters<typeof createPool>[0]);
  await new Promise((r) => setTimeout(r, 500));
  const k1 = meminfoKb();
  const r1 = rssAt();
  const kernelKb = ['Slab', 'KernelStack', 'PageTables', 'Shmem'].reduce((a, k) => a + (k1[k] - k0[k]), 0);
  const availKb = k0.MemAvailable - k1.MemAvailable;
  await big.close();
  const perSandbox = { nodeRssKiB: (r1 - r0) / 1024 / idleCount, kernelKiB: kernelKb / idleCount, memAvailableDropKiB: availKb / idleCount };
  console.log(`\na pooled sandbox waiting (${idleCount} made): ${perSandbox.nodeRssKiB.toFixed(0)} KiB of Node RSS, ${perSandbox.kernelKiB.toFixed(0)} KiB of kernel memory (slab, stacks, page tables, shmem); MemAvailable fell ${perSandbox.memAvailableDropKiB.toFixed(0)} KiB each`);

  const out = join(dirname(fileURLToPath(import.meta.url)), '../../bench/results');
  mkdirSync(out, { recursive: true });
  writeFileSync(
    join(out, 'latest.json'),
    JSON.stringify(
      {
        date: new Date().toISOString(),
        runs,
        uid: process.getuid!(),
        node: process.version,
        cgroups,
        startup: rows,
        throughput: { callers, runs: throughputRuns, runsPerSec: tput },
        memory: { runs: rssRuns, rssStartBytes: rss0, rssEndBytes: rss1, everyThousand: rssSamples, pooledSandbox: perSandbox },
      },
      null,
      2,
    ) + '\n',
  );
  writeFileSync(
    join(out, 'startup-cdf.svg'),
    cdfSvg(
      `Startup latency of /bin/true, ${runs} runs each (uid ${process.getuid!()})`,
      contenders.map((c) => ({ name: c.name, samplesMs: c.samples })),
    ),
  );
  console.log(`\nwritten: bench/results/latest.json, bench/results/startup-cdf.svg`);
}

await main();
