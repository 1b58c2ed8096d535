// brig serve's own cost: requests/s and p50/p99 latency of POST
// /api/v2/execute for a Python and a C hello world with 1, 4 and 16
// concurrent clients (keep-alive fetch loops on loopback), and the same jobs
// through the library directly (executeJob, the same queue and
// concurrency) in the same run, so the HTTP layer's cost is a ratio. Then
// the same jobs one at a time from warm pools (the service's way) and with
// every sandbox started cold (pool_size 0).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer } from '../src/index.js';
import { executeJob, JobPools, type ExecuteJob } from '../src/server/execute.js';
import { parsePistonRequest } from '../src/server/piston.js';
import { MemoryQueue } from '../src/server/queue.js';
import type { ServiceContext } from '../src/server/context.js';

const scale = Number(process.env.BRIG_BENCH_SERVICE_SCALE ?? 1);
const CLIENTS = [1, 4, 16];
const PROGRAMS = [
  { name: 'python', requests: Math.round(24 * scale), body: { language: 'python', version: '*', files: [{ content: 'print("hello")' }] } },
  { name: 'c', requests: Math.round(12 * scale), body: { language: 'c', version: '*', files: [{ content: '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }' }] } },
];

interface Row {
  program: string;
  clients: number;
  path: 'http' | 'direct';
  perSec: number;
  p50: number;
  p99: number;
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

interface Sample {
  lat: number[];
  ms: number;
}

async function sample(requests: number, clients: number, one: () => Promise<void>): Promise<Sample> {
  const lat: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (next++ < requests) {
        const t = performance.now();
        await one();
        lat.push(performance.now() - t);
      }
    }),
  );
  return { lat, ms: performance.now() - t0 };
}

function summary(samples: Sample[]): { perSec: number; p50: number; p99: number } {
  const lat = samples.flatMap((x) => x.lat).sort((a, b) => a - b);
  const ms = samples.reduce((a, x) => a + x.ms, 0);
  return { perSec: (lat.length * 1000) / ms, p50: pct(lat, 50), p99: pct(lat, 99) };
}

async function load(requests: number, clients: number, one: () => Promise<void>): Promise<{ perSec: number; p50: number; p99: number }> {
  return summary([await sample(requests, clients, one)]);
}

async function main() {
  const concurrency = cpus().length;
  const server = await createServer({ listen: '127.0.0.1:0', concurrency, config: { max_queue_size: 1000 } });
  const url = await server.listen();
  const boxRoot = mkdtempSync(join(tmpdir(), 'brig-bench-service-'));
  const ctx = { config: server.config, runtimes: server.runtimes } as ServiceContext;
  const rows: Row[] = [];
  const pooling: { program: string; pooled: number; cold: number }[] = [];
  const pools = new JobPools(boxRoot, server.config.pool_size);
  let healthz = { perSec: 0, p50: 0, p99: 0 };
  try {
    // The HTTP layer alone (fastify, JSON, keep-alive fetch on loopback), no job.
    const ping = async () => void (await (await fetch(url + '/healthz')).json());
    for (let i = 0; i < 50; i++) await ping();
    healthz = await load(400, 1, ping);
    for (const prog of PROGRAMS) {
      const { runtime, job } = parsePistonRequest(prog.body, ctx);
      const direct = new MemoryQueue<ExecuteJob, unknown>((j) => executeJob(runtime, j, pools), concurrency, 1000);
      const post = async () => {
        const res = await fetch(url + '/api/v2/execute', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(prog.body) });
        const r = (await res.json()) as { run?: { stdout: string } };
        if (r.run?.stdout !== 'hello\n') throw new Error(`${prog.name}: ${JSON.stringify(r)}`);
      };
      const lib = async () => {
        const r = (await direct.submit(job)) as { run?: { stdout: Buffer } };
        if (r.run?.stdout.toString() !== 'hello\n') throw new Error(`${prog.name} direct: ${r.run?.stdout}`);
      };
      for (let i = 0; i < 3; i++) await post(), await lib(); // warm: page cache, pools of namespaces
      for (const clients of CLIENTS) {
        // Every client sends at least two requests, so 16 clients are 16 at once.
        const n = Math.max(prog.requests, clients * 2);
        // In four alternating halves (HTTP, direct, HTTP, direct), so a burst of
        // other load on this shared machine falls on both paths alike.
        const hs: Sample[] = [];
        const ds: Sample[] = [];
        for (let half = 0; half < 2; half++) {
          hs.push(await sample(Math.ceil(n / 2), clients, post));
          ds.push(await sample(Math.ceil(n / 2), clients, lib));
        }
        const h = summary(hs);
        const d = summary(ds);
        rows.push({ program: prog.name, clients, path: 'http', ...h }, { program: prog.name, clients, path: 'direct', ...d });
      }
      await direct.close();
      // Warm pools vs cold sandboxes, one job at a time, alternating so load on the machine falls on both.
      const cold = new JobPools(boxRoot, 0);
      const one = (p: JobPools) => async () => {
        const r = await executeJob(runtime, job, p);
        if (r.run?.stdout.toString() !== 'hello\n') throw new Error(`${prog.name}: ${r.run?.stdout}`);
      };
      const ps: Sample[] = [];
      const cs: Sample[] = [];
      for (let half = 0; half < 4; half++) {
        ps.push(await sample(Math.ceil(prog.requests / 4), 1, one(pools)));
        cs.push(await sample(Math.ceil(prog.requests / 4), 1, one(cold)));
      }
      pooling.push({ program: prog.name, pooled: summary(ps).p50, cold: summary(cs).p50 });
      await cold.close();
    }
  } finally {
    await pools.close();
    await server.close();
    rmSync(boxRoot, { recursive: true, force: true });
  }
  console.log(`\nbrig serve: POST /api/v2/execute vs executeJob() directly (same queue, ${concurrency} at a time), hello world\n`);
  console.log('program  clients  HTTP req/s  p50 ms  p99 ms | direct jobs/s  p50 ms  p99 ms | p50 HTTP/direct');
  for (let i = 0; i < rows.length; i += 2) {
    const h = rows[i];
    const d = rows[i + 1];
    console.log(
      `${h.program.padEnd(8)} ${String(h.clients).padStart(7)}  ${h.perSec.toFixed(1).padStart(10)}  ${h.p50.toFixed(1).padStart(6)}  ${h.p99.toFixed(1).padStart(6)} | ${d.perSec.toFixed(1).padStart(13)}  ${d.p50.toFixed(1).padStart(6)}  ${d.p99.toFixed(1).padStart(6)} | ${(h.p50 / d.p50).toFixed(2).padStart(6)}x`,
    );
  }
  console.log('\nexecuteJob() one at a time: warm pools (pool_size ' + server.config.pool_size + ') vs every sandbox cold (pool_size 0)\n');
  console.log('program  pooled p50 ms  cold p50 ms | cold/pooled');
  for (const r of pooling) console.log(`${r.program.padEnd(8)} ${r.pooled.toFixed(1).padStart(13)}  ${r.cold.toFixed(1).padStart(11)} | ${(r.cold / r.pooled).toFixed(2).padStart(6)}x`);
  console.log(`\nthe HTTP layer alone, GET /healthz, 1 client: p50 ${healthz.p50.toFixed(2)} ms, p99 ${healthz.p99.toFixed(2)} ms`);
  const out = join(dirname(fileURLToPath(import.meta.url)), '../../bench/results');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'service.json'), JSON.stringify({ date: new Date().toISOString(), concurrency, healthz, rows, pooling }, null, 2) + '\n');
  console.log('written: bench/results/service.json');
}

await main();
