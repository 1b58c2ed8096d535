// The queue's overhead: submissions/s and p50 latency of a C hello world
// through POST /api/v2/execute with the embedded queue, and with the Redis
// queue (BullMQ) and 1 or 2 brig worker processes (the server only queues),
// in the same run on this machine (2 cores: the point is the ratio). And the
// per-job Redis cost for the scaling plan: commands (INFO commandstats) and
// bytes in and out (INFO stats) over a batch, divided by the jobs.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as netServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { createServer } from '../src/index.js';

const JOBS = Number(process.env.BRIG_BENCH_QUEUE_JOBS ?? 40);
const CLIENTS = 4;
const brig = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'brig-node');
const C = { language: 'c', version: '*', files: [{ content: '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }' }] };

async function freePort(): Promise<number> {
  const s = netServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const p = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

async function load(url: string): Promise<{ perSec: number; p50: number }> {
  const lat: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (next < JOBS) {
        next++;
        const t = performance.now();
        const r = await fetch(url + '/api/v2/execute', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(C) });
        const b = (await r.json()) as { run?: { stdout: string } };
        if (b.run?.stdout !== 'hello\n') throw new Error(`bad answer: ${JSON.stringify(b)}`);
        lat.push(performance.now() - t);
      }
    }),
  );
  lat.sort((a, b) => a - b);
  return { perSec: JOBS / ((performance.now() - t0) / 1000), p50: lat[Math.floor(lat.length / 2)] };
}

async function main(): Promise<void> {
  const workers = Math.max(1, cpus().length);
  const rows: { mode: string; perSec: number; p50: number }[] = [];
  // Embedded: the server runs `workers` jobs at a time itself.
  {
    const s = await createServer({ listen: '127.0.0.1:0', concurrency: workers });
    const url = await s.listen();
    await load(url); // warm
    rows.push({ mode: `embedded (${workers} at a time)`, ...(await load(url)) });
    await s.close();
  }
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'brig-bench-redis-'));
  const redisProc = spawn('/usr/bin/redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const redisUrl = `redis://127.0.0.1:${port}`;
  await new Promise((r) => setTimeout(r, 300));
  const cli = new Redis(redisUrl);
  let perJob: { commands: number; inBytes: number; outBytes: number; top: string } | undefined;
  try {
    for (const n of [1, 2]) {
      const procs: ChildProcess[] = [];
      for (let i = 0; i < n; i++) {
        const c = spawn(process.execPath, [brig, 'worker', '--redis', redisUrl, '--concurrency', String(Math.max(1, workers / n)), '--quiet'], { stdio: ['ignore', 'ignore', 'pipe'] });
        procs.push(c);
      }
      const s = await createServer({ listen: '127.0.0.1:0', concurrency: 0, redis: redisUrl });
      const url = await s.listen();
      await new Promise((r) => setTimeout(r, 1500)); // workers connected
      await load(url); // warm
      const before = await stats(cli);
      rows.push({ mode: `redis, ${n} worker process${n > 1 ? 'es' : ''} (${workers} at a time in all)`, ...(await load(url)) });
      const after = await stats(cli);
      if (n === 1) {
        const d = (k: string) => (after.cmds.get(k) ?? 0) - (before.cmds.get(k) ?? 0);
        const all = [...after.cmds.keys()].map((k) => [k, d(k)] as const).filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]);
        perJob = {
          // INFO and the stats calls themselves excluded.
          commands: all.filter(([k]) => k !== 'info').reduce((a, [, v]) => a + v, 0) / JOBS,
          inBytes: (after.inBytes - before.inBytes) / JOBS,
          outBytes: (after.outBytes - before.outBytes) / JOBS,
          top: all.filter(([k]) => k !== 'info').slice(0, 6).map(([k, v]) => `${k} ${(v / JOBS).toFixed(1)}`).join(', '),
        };
      }
      await s.close();
      for (const c of procs) {
        const done = once(c, 'close');
        process.kill(c.pid!, 'SIGTERM');
        await done;
      }
    }
  } finally {
    cli.disconnect();
    const gone = once(redisProc, 'close');
    process.kill(redisProc.pid!, 'SIGTERM');
    await gone;
    rmSync(dir, { recursive: true, force: true });
  }
  const base = rows[0];
  console.log(`\nqueue overhead: C hello world, POST /api/v2/execute, ${CLIENTS} clients, ${JOBS} jobs each`);
  console.log('mode'.padEnd(52) + 'subs/s'.padStart(8) + 'ratio'.padStart(8) + 'p50 ms'.padStart(9) + '  +p50 vs embedded');
  for (const r of rows)
    console.log(r.mode.padEnd(52) + r.perSec.toFixed(1).padStart(8) + (r.perSec / base.perSec).toFixed(2).padStart(8) + r.p50.toFixed(1).padStart(9) + `  ${(r.p50 - base.p50 >= 0 ? '+' : '')}${(r.p50 - base.p50).toFixed(1)} ms`);
  if (perJob)
    console.log(`redis per job: ${perJob.commands.toFixed(1)} commands (${perJob.top}), ${Math.round(perJob.inBytes)} bytes in, ${Math.round(perJob.outBytes)} bytes out`);
}

async function stats(c: Redis): Promise<{ cmds: Map<string, number>; inBytes: number; outBytes: number }> {
  const cs = await c.info('commandstats');
  const cmds = new Map<string, number>();
  for (const m of cs.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) cmds.set(m[1], Number(m[2]));
  const st = await c.info('stats');
  return { cmds, inBytes: Number(/total_net_input_bytes:(\d+)/.exec(st)![1]), outBytes: Number(/total_net_output_bytes:(\d+)/.exec(st)![1]) };
}

await main();
process.exit(0);
