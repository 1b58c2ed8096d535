// Startup latency: run(['/bin/true']) against a plain child_process.spawn and
// against bubblewrap with every namespace, measured in the same process, in
// interleaved rounds so machine noise hits every contender alike.
//
//   npm run bench              (500 runs each)
//   BRIG_BENCH_RUNS=2000 npm run bench
import { spawn as cpSpawn, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../src/index.js';
import { stats, table, type Stats } from './stats.js';

const runs = Number(process.env.BRIG_BENCH_RUNS ?? 500);
const warmup = 50;

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

async function main() {
  const contenders: Contender[] = [
    {
      name: 'brig run',
      once: async () => {
        const r = await run(['/bin/true']);
        if (r.status !== 'ok') throw new Error(`brig: ${r.status} ${r.error?.message ?? ''}`);
      },
      samples: [],
      totalMs: 0,
    },
    { name: 'child_process.spawn', once: () => spawnTrue('/bin/true', []), samples: [], totalMs: 0 },
  ];
  const bwrap = findBwrap();
  if (bwrap) {
    const args = bwrapArgs();
    contenders.push({ name: 'bwrap --unshare-all', once: () => spawnTrue(bwrap, args), samples: [], totalMs: 0 });
  } else console.log('bubblewrap not installed or not usable here: skipped (apt-get install bubblewrap)');

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
  console.log(table(rows, 'brig run'));
  const brigRow = rows[0];
  for (const r of rows.slice(1)) console.log(`brig p50 is ${(brigRow.p50 / r.p50).toFixed(2)}x ${r.name}'s; p99 ${(brigRow.p99 / r.p99).toFixed(2)}x`);

  const out = join(dirname(fileURLToPath(import.meta.url)), '../../bench/results');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'latest.json'), JSON.stringify({ date: new Date().toISOString(), runs, uid: process.getuid!(), node: process.version, startup: rows }, null, 2) + '\n');
  console.log(`\nwritten: bench/results/latest.json`);
}

await main();
