// Judge throughput: submissions of a tiny C program (read two numbers,
// print the sum) per second, two workers on this 2-core machine, with
// judge limits; and the same work under bubblewrap in the same run.
import { spawn as cpSpawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../src/index.js';
import { probe, probeMount } from '../test/probe.js';

const submissions = Number(process.env.BRIG_BENCH_SUBMISSIONS ?? 1000);
const workers = 2;

async function throughput(one: (i: number) => Promise<void>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (next < submissions) await one(next++);
    }),
  );
  return (submissions * 1000) / (performance.now() - t0);
}

function bwrapSum(bin: string, input: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const args = ['--unshare-all', '--die-with-parent', '--new-session', '--ro-bind', '/usr', '/usr', '--symlink', 'usr/lib', '/lib', '--symlink', 'usr/lib64', '/lib64', '--symlink', 'usr/bin', '/bin', '--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp', '--ro-bind', bin, '/probe', '/probe', 'sum'];
    const p = cpSpawn('bwrap', args, { stdio: ['pipe', 'pipe', 'ignore'] });
    let out = '';
    p.stdout.on('data', (c) => (out += c));
    p.on('error', reject);
    p.on('close', () => resolve(out));
    p.stdin.end(input);
  });
}

async function main() {
  const bin = probe();
  const mounts = [probeMount()];
  const check = (out: string, i: number) => {
    if (out !== `${i + i + 1}\n`) throw new Error(`wrong answer ${JSON.stringify(out)} for ${i}`);
  };
  for (let i = 0; i < 20; i++) await run(['/probe', 'sum'], { mounts, stdin: `${i} ${i + 1}` });
  const brigRate = await throughput(async (i) => {
    const r = await run(['/probe', 'sum'], { mounts, stdin: `${i} ${i + 1}`, cpuTimeLimitMs: 1000, wallTimeLimitMs: 3000, rlimits: { fsize: 1 << 20 } });
    if (r.status !== 'ok') throw new Error(`submission ${i}: ${r.status} ${r.signal ?? ''} ${r.error?.message ?? ''} ${r.stderr}`);
    check(r.stdout.toString(), i);
  });
  let bwrapRate: number | null = null;
  if (spawnSync('sh', ['-c', 'command -v bwrap']).status === 0) bwrapRate = await throughput(async (i) => check(await bwrapSum(bin, `${i} ${i + 1}`), i));
  console.log(`\njudge throughput: ${submissions} submissions of a tiny C program, ${workers} workers, answers checked\n`);
  console.log(`brig (all namespaces, default seccomp, CPU/wall/file limits): ${brigRate.toFixed(0)} submissions/s`);
  if (bwrapRate) console.log(`bwrap --unshare-all (no seccomp, no limits):                  ${bwrapRate.toFixed(0)} submissions/s  (brig ${(brigRate / bwrapRate).toFixed(2)}x)`);
  else console.log('bubblewrap not installed: no comparison (apt-get install bubblewrap)');
  const out = join(dirname(fileURLToPath(import.meta.url)), '../../bench/results');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'judge.json'), JSON.stringify({ date: new Date().toISOString(), submissions, workers, brigPerSec: brigRate, bwrapPerSec: bwrapRate }, null, 2) + '\n');
  console.log('written: bench/results/judge.json');
}

await main();
