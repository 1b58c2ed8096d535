// The Node CLI's start against Node's own (issue 20: `brig run -- /bin/true`
// through the Node CLI within 1.3x of `node -e 0`), in the same run: CPU
// time (user + system of the process and what it waited for, the sandbox
// included) and wall time, per run, rounds alternating between the commands,
// the median round counting. CPU is the figure to read on this shared 2-CPU
// machine; wall time moves with everybody else's work.
//
// NODE_EXTRA_CA_CERTS is taken out of the environment: with it every Node
// start reads the CA file (50-70 ms of CPU here), which makes `node -e 0`
// slower and every ratio against it look better than it is.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '../..');
const runs = Number(process.env.BRIG_BENCH_CLI_RUNS ?? 10);
const rounds = Number(process.env.BRIG_BENCH_CLI_ROUNDS ?? 3);
const env: NodeJS.ProcessEnv = { ...process.env, BRIG_NO_AGENT: '1' };
delete env.NODE_EXTRA_CA_CERTS;

/** CPU ms of this process's waited-for children so far (clock ticks of /proc/self/stat). */
function childrenCpuMs(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
  // cutime and cstime: fields 16 and 17 of stat, 14 and 15 after "pid (comm) ".
  return ((Number(fields[13]) + Number(fields[14])) * 1000) / 100;
}

interface Row {
  name: string;
  argv: string[];
  cpu: number[];
  wall: number[];
}

const rows: Row[] = [
  { name: 'node -e 0', argv: [process.execPath, '-e', '0'] },
  { name: 'node -- bin/brig-node run -- /bin/true', argv: [process.execPath, '--', join(repo, 'bin/brig-node'), 'run', '--', '/bin/true'] },
  { name: 'BRIG_NO_AGENT=1 bin/brig run -- /bin/true', argv: [join(repo, 'bin/brig'), 'run', '--', '/bin/true'] },
  { name: 'node -- bin/brig-node --version', argv: [process.execPath, '--', join(repo, 'bin/brig-node'), '--version'] },
].map((r) => ({ ...r, cpu: [], wall: [] }));

for (const r of rows) {
  const check = spawnSync(r.argv[0], r.argv.slice(1), { env, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`${r.name}: exit ${check.status}: ${check.stderr}`);
}
for (let round = 0; round < rounds; round++) {
  for (const r of rows) {
    const c0 = childrenCpuMs();
    const t0 = performance.now();
    for (let i = 0; i < runs; i++) spawnSync(r.argv[0], r.argv.slice(1), { env, stdio: 'ignore' });
    r.wall.push((performance.now() - t0) / runs);
    r.cpu.push((childrenCpuMs() - c0) / runs);
  }
}

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const base = rows[0];
const baseCpu = median(base.cpu);
const baseWall = median(base.wall);
const w = Math.max(...rows.map((r) => r.name.length));
console.log(`\nThe Node CLI's start, per run: median of ${rounds} rounds of ${runs} runs, without NODE_EXTRA_CA_CERTS\n`);
console.log(`${''.padEnd(w)}  ${'CPU'.padStart(9)}  ${'vs node'.padStart(7)}  ${'wall'.padStart(9)}  ${'vs node'.padStart(7)}`);
const results = rows.map((r) => {
  const cpu = median(r.cpu);
  const wall = median(r.wall);
  console.log(`${r.name.padEnd(w)}  ${cpu.toFixed(1).padStart(6)} ms  ${(cpu / baseCpu).toFixed(2).padStart(6)}x  ${wall.toFixed(1).padStart(6)} ms  ${(wall / baseWall).toFixed(2).padStart(6)}x`);
  return { name: r.name, cpuMs: cpu, wallMs: wall, cpuVsNode: cpu / baseCpu, wallVsNode: wall / baseWall };
});
console.log(`\nbrig run through the Node CLI: ${results[1].cpuVsNode.toFixed(2)}x node -e 0 in CPU, ${results[1].wallVsNode.toFixed(2)}x in wall time (issue 20's goal: 1.3x)`);

const out = join(repo, 'bench/results');
mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'cli-start.json'), JSON.stringify({ date: new Date().toISOString(), uid: process.getuid!(), runs, rounds, node: process.version, results }, null, 2) + '\n');
console.log('written: bench/results/cli-start.json');
