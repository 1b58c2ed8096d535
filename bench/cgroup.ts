// The price of cgroup limits per run: create + limits + attach + read +
// remove, against the same run without limits.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../src/index.js';
import { RunCgroups } from '../src/cgroup/run.js';
import { stats, table } from './stats.js';

const runs = Number(process.env.BRIG_BENCH_RUNS ?? 500);

async function main() {
  const probe = RunCgroups.create({ memoryBytes: 256 << 20, pids: 64, cpus: 1 });
  if (!(probe instanceof RunCgroups)) {
    console.log(`\ncgroup benchmark skipped: ${probe.unavailable}`);
    return;
  }
  await probe.remove();
  const limited = { memory: '256m', pids: 64, cpus: 1 };
  const a: number[] = [];
  const b: number[] = [];
  const direct: number[] = [];
  for (let i = 0; i < 30; i++) await run(['/bin/true'], limited);
  for (let i = 0; i < runs; i++) {
    let t = performance.now();
    await run(['/bin/true']);
    a.push(performance.now() - t);
    t = performance.now();
    const r = await run(['/bin/true'], limited);
    b.push(performance.now() - t);
    if (r.status !== 'ok') throw new Error(`limited run: ${r.status}`);
    t = performance.now();
    const cg = RunCgroups.create({ memoryBytes: 256 << 20, pids: 64, cpus: 1 }) as RunCgroups;
    cg.usage();
    await cg.remove();
    direct.push(performance.now() - t);
  }
  const rows = [stats('run, no limits', a), stats('run, memory+pids+cpus', b), stats('cgroups alone', direct)];
  console.log(`\ncgroup cost per run (${probe.backend.kind}), ${runs} runs each\n`);
  console.log(table(rows, 'run, no limits'));
  console.log(`\ncgroups add ${(rows[1].p50 - rows[0].p50).toFixed(3)} ms at p50 (made, limited, read and removed: ${rows[2].p50.toFixed(3)} ms of it outside the launch)`);
  const out = join(dirname(fileURLToPath(import.meta.url)), '../../bench/results');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'cgroup.json'), JSON.stringify({ date: new Date().toISOString(), backend: probe.backend.kind, runs, rows }, null, 2) + '\n');
  console.log('written: bench/results/cgroup.json');
}

await main();
