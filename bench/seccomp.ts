// The price of the syscall filter: a getpid loop inside the sandbox with no
// filter, with brig's default policy, and with a 300+ syscall Docker-format
// profile; and each program's size and worst-case decision depth.
//
//   npm run bench   (this runs after the startup benchmark)
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../src/index.js';
import { compile, fromDocker, hostArch, DEFAULT_POLICY, type SeccompPolicy } from '../src/seccomp/index.js';
import { dockerLikeProfile } from '../test/fixtures/docker-profile.js';
import { probeMount } from '../test/probe.js';

const loops = Number(process.env.BRIG_BENCH_SYSCALLS ?? 2_000_000);
const rounds = 7;
const arch = hostArch();

async function nsPerCall(seccomp: 'none' | SeccompPolicy): Promise<number> {
  const r = await run(['/probe', 'getpid-loop', String(loops)], { mounts: [probeMount()], seccomp });
  if (r.status !== 'ok') throw new Error(`probe: ${r.status} ${r.violation?.syscall ?? ''} ${r.stderr}`);
  return Number(r.stdout.toString());
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const docker = fromDocker(dockerLikeProfile(arch), arch);
  const contenders: { name: string; seccomp: 'none' | SeccompPolicy }[] = [
    { name: 'no filter', seccomp: 'none' },
    { name: 'brig default policy', seccomp: DEFAULT_POLICY },
    { name: 'Docker-format, 300+ syscalls', seccomp: docker },
  ];
  const samples = contenders.map(() => [] as number[]);
  for (let round = 0; round < rounds; round++) for (const [i, c] of contenders.entries()) samples[i].push(await nsPerCall(c.seccomp));
  const base = median(samples[0]);
  const rows = contenders.map((c, i) => {
    const prog = c.seccomp === 'none' ? null : compile(c.seccomp, arch, { report: true });
    const ns = median(samples[i]);
    return { name: c.name, instructions: prog?.prog.length ?? 0, worstDepth: prog?.maxDepth ?? 0, getpidNs: ns, overheadNs: ns - base };
  });
  console.log(`\nseccomp: getpid cost inside the sandbox, median of ${rounds} runs of ${loops} calls (${arch})\n`);
  const head = ['', 'instructions', 'worst depth', 'getpid ns', 'vs no filter'];
  const body = rows.map((r) => [r.name, String(r.instructions || '-'), String(r.worstDepth || '-'), r.getpidNs.toFixed(1), r.name === 'no filter' ? '' : `${r.overheadNs >= 0 ? '+' : ''}${r.overheadNs.toFixed(1)} ns`]);
  const w = head.map((_, i) => Math.max(...[head, ...body].map((row) => row[i].length)));
  for (const row of [head, ...body]) console.log(row.map((c, i) => (i ? c.padStart(w[i]) : c.padEnd(w[i]))).join('  '));
  const out = join(dirname(fileURLToPath(import.meta.url)), '../../bench/results');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'seccomp.json'), JSON.stringify({ date: new Date().toISOString(), arch, loops, rows }, null, 2) + '\n');
  console.log('written: bench/results/seccomp.json');
}

await main();
