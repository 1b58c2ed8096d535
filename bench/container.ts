// Containers: `run -d` to running, exec of /bin/true into a running
// container against nsenter-style setns from a plain process (nsenter(1),
// same namespaces) in the same run, and the monitor's memory.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const runs = Number(process.env.BRIG_BENCH_RUNS ?? 200);
const starts = Number(process.env.BRIG_BENCH_STARTS ?? 10);

const root = mkdtempSync(join(tmpdir(), 'ctrbench-'));
process.env.BRIG_STORE = join(root, 'store');
process.env.XDG_RUNTIME_DIR = join(root, 'run');
mkdirSync(process.env.XDG_RUNTIME_DIR, { mode: 0o700 });
const { createContainer, run } = await import('../src/index.js');
const { programPid } = await import('../src/container/proc.js');
const { stats, table } = await import('./stats.js');

function proc(cmd: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: 'ignore' });
    c.once('error', reject);
    c.once('close', (code) => resolve(code ?? -1));
  });
}

function kb(pid: number, file: string, key: string): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/${file}`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

async function main() {
  // run -d to running: create + start (monitor spawned, program exec'd), then removed.
  const startMs: number[] = [];
  const fg: number[] = [];
  for (let i = 0; i < starts; i++) {
    let t = performance.now();
    const c = createContainer(['/bin/sleep', '60']);
    await c.start();
    startMs.push(performance.now() - t);
    await c.remove({ force: true });
    t = performance.now();
    await run(['/bin/true']);
    fg.push(performance.now() - t);
  }
  const c = createContainer(['/bin/sleep', '600'], { name: 'bench' });
  await c.start();
  const rec = c.inspect();
  const target = programPid(rec.State.Pid)!;
  const monitorPid = rec.Monitor!.Pid;
  const rssKb = kb(monitorPid, 'status', 'VmRSS');
  const pssKb = kb(monitorPid, 'smaps_rollup', 'Pss');
  const nsenterArgs = ['-t', String(target), '-U', '-m', '-p', '-n', '-i', '-u', '-C', '--preserve-credentials', '/bin/true'];
  if ((await proc('nsenter', nsenterArgs)) !== 0) throw new Error('nsenter failed');
  const ex: number[] = [];
  const ns: number[] = [];
  for (let i = 0; i < 20; i++) await c.exec(['/bin/true']);
  for (let i = 0; i < runs; i++) {
    let t = performance.now();
    const r = await c.exec(['/bin/true']);
    ex.push(performance.now() - t);
    if (r.status !== 'ok') throw new Error(`exec: ${r.status} ${r.error?.message ?? ''}`);
    t = performance.now();
    await proc('nsenter', nsenterArgs);
    ns.push(performance.now() - t);
  }
  await c.remove({ force: true });
  const rows = [stats('nsenter -t PID (setns, plain process)', ns), stats('brig exec /bin/true (library)', ex)];
  console.log(`\ncontainer exec, ${runs} runs each\n`);
  console.log(table(rows, 'nsenter -t PID (setns, plain process)'));
  const startRows = [stats('run(/bin/true), foreground', fg), stats('createContainer + start (run -d)', startMs)];
  console.log(`\ncontainer start to running, ${starts} each\n`);
  console.log(table(startRows, 'run(/bin/true), foreground'));
  console.log(`\nmonitor (one per running container): RSS ${(rssKb / 1024).toFixed(1)} MiB, PSS ${(pssKb / 1024).toFixed(1)} MiB`);
  const out = join(dirname(fileURLToPath(import.meta.url)), '../../bench/results');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'container.json'), JSON.stringify({ date: new Date().toISOString(), uid: process.getuid!(), runs, starts, exec: rows, start: startRows, monitor: { rssKb, pssKb } }, null, 2) + '\n');
  console.log('written: bench/results/container.json');
}

try {
  await main();
} finally {
  rmSync(root, { recursive: true, force: true });
}
