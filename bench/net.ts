// Networking's price: what --network pasta adds to a run's start, and a
// published port's connection latency and throughput through pasta and
// through brig's proxy, against the same server reached directly on the
// host's loopback. Ratios are the figures (this machine's timings drift).
// Short by default: BRIG_BENCH_NET_RUNS runs, BRIG_BENCH_NET_MB per transfer.
import { mkdirSync, writeFileSync } from 'node:fs';
import { spawn as spawnChild } from 'node:child_process';
import { connect, createServer, type AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run, spawn } from '../src/index.js';
import { findPasta } from '../src/net/pasta.js';
import { stats, table } from './stats.js';

const runs = Number(process.env.BRIG_BENCH_NET_RUNS ?? 20);
const mb = Number(process.env.BRIG_BENCH_NET_MB ?? 64);
const conns = Number(process.env.BRIG_BENCH_NET_CONNS ?? 200);

// The server inside (and, for the direct row, on the host): answers a byte
// with a byte, or sinks a transfer and acknowledges its end.
const SERVER = `
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(128)
print("up", flush=True)
def serve(c):
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        d = c.recv(1 << 20)
        if not d: break
        if d == b"p": c.sendall(b"p")
    c.sendall(b"done"); c.close()
while True:
    c, a = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
`;

function connectMs(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    const c = connect(port, '127.0.0.1');
    c.setNoDelay(true);
    c.on('connect', () => c.write('p'));
    c.once('data', () => {
      resolve(performance.now() - t);
      c.destroy();
    });
    c.on('error', reject);
  });
}

function throughputMBs(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const chunk = Buffer.alloc(1 << 20, 120);
    const t = performance.now();
    const c = connect(port, '127.0.0.1');
    let sent = 0;
    const pump = () => {
      while (sent < mb) {
        sent++;
        if (!c.write(chunk)) return void c.once('drain', pump);
      }
      c.end();
    };
    c.on('connect', pump);
    c.on('data', () => {});
    c.on('close', () => resolve(mb / ((performance.now() - t) / 1000)));
    c.on('error', reject);
  });
}

async function measure(port: number): Promise<{ latency: number[]; mbs: number }> {
  const latency: number[] = [];
  for (let i = 0; i < conns; i++) latency.push(await connectMs(port));
  const mbs = await throughputMBs(port);
  return { latency, mbs };
}

async function main() {
  if (!findPasta()) {
    console.log('\nnetwork benchmark skipped: no pasta');
    return;
  }
  // 1. Start: a run with --network pasta against loopback.
  const lo: number[] = [];
  const pa: number[] = [];
  for (let i = 0; i < 3; i++) await run(['/bin/true'], { network: 'pasta' });
  for (let i = 0; i < runs; i++) {
    let t = performance.now();
    await run(['/bin/true'], { network: 'loopback' });
    lo.push(performance.now() - t);
    t = performance.now();
    const r = await run(['/bin/true'], { network: 'pasta' });
    pa.push(performance.now() - t);
    if (r.status !== 'ok') throw new Error(`pasta run: ${r.status} ${r.error?.message ?? ''}`);
  }
  const start = [stats('run, network loopback', lo), stats('run, network pasta', pa)];
  console.log(`\nnetwork pasta at start, ${runs} runs each\n`);
  console.log(table(start, 'run, network loopback'));
  console.log(`\npasta adds ${(start[1].p50 - start[0].p50).toFixed(1)} ms at p50`);

  // 2. A published port: the same server directly, then through each method.
  const rows: { name: string; latencyP50: number; mbs: number }[] = [];
  // The direct baseline: the same server, run on the host itself.
  const freePort = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
  const direct = spawnChild('/usr/bin/python3', ['-c', SERVER, String(freePort)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((r) => direct.stdout!.once('data', r));
  const host = { port: freePort, close: () => direct.kill('SIGKILL') };
  const d = await measure(host.port);
  host.close();
  rows.push({ name: 'direct, host loopback', latencyP50: stats('d', d.latency).p50, mbs: d.mbs });
  const latencyRows = [stats('direct, host loopback', d.latency)];
  for (const via of ['pasta', 'proxy'] as const) {
    const p = spawn(['/usr/bin/python3', '-c', SERVER, '8000'], { network: 'loopback', publish: ['8000'], publishVia: via, stdout: 'pipe' });
    const info = await p.network;
    await new Promise((r) => p.stdout!.once('data', r));
    const m = await measure(info.ports[0].hostPort);
    p.kill();
    await p.wait();
    rows.push({ name: `published, via ${via}`, latencyP50: stats('x', m.latency).p50, mbs: m.mbs });
    latencyRows.push(stats(`published, via ${via}`, m.latency));
  }
  console.log(`\npublished port: connect + 1-byte round trip, ${conns} connections each\n`);
  console.log(table(latencyRows, 'direct, host loopback'));
  console.log(`\nthroughput, ${mb} MiB one way (ratio to direct)\n`);
  for (const r of rows) console.log(`${r.name.padEnd(26)} ${r.mbs.toFixed(0).padStart(6)} MiB/s  ${(r.mbs / rows[0].mbs).toFixed(2)}x`);
  const out = join(dirname(fileURLToPath(import.meta.url)), '../../bench/results');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'net.json'), JSON.stringify({ date: new Date().toISOString(), runs, conns, mb, start, latency: latencyRows, throughput: rows }, null, 2) + '\n');
  console.log('written: bench/results/net.json');
}

// 3. A user network: container-to-container TCP round trips (one
// connection, 1-byte ping-pong) against the same client and server on one
// container's own loopback; and what a user network adds to a container's
// start. BRIG_BENCH_NET_USER=0 skips it.
const PINGER = `
import socket, sys, time, threading
mode = sys.argv[1]
if mode == "serve":
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((sys.argv[2] if len(sys.argv) > 2 else "0.0.0.0", int(sys.argv[3]) if len(sys.argv) > 3 else 7000)); s.listen(16)
    print("up", flush=True)
    def serve(c):
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            d = c.recv(1)
            if not d: break
            c.sendall(d)
    while True:
        c, a = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
else:
    for i in range(100):
        try:
            c = socket.create_connection((sys.argv[2], int(sys.argv[4]) if len(sys.argv) > 4 else 7000), timeout=1); break
        except OSError: time.sleep(0.05)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    out = []
    for i in range(int(sys.argv[3])):
        t = time.perf_counter(); c.sendall(b"p"); c.recv(1); out.append((time.perf_counter() - t) * 1000)
    print(" ".join("%.4f" % x for x in out))
`;

async function userNetwork(): Promise<void> {
  if (process.env.BRIG_BENCH_NET_USER === '0') return;
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const store = mkdtempSync(join(tmpdir(), 'benchnet-'));
  const saved = { store: process.env.BRIG_STORE, run: process.env.XDG_RUNTIME_DIR };
  process.env.BRIG_STORE = join(store, 'store');
  process.env.XDG_RUNTIME_DIR = join(store, 'run');
  mkdirSync(process.env.XDG_RUNTIME_DIR, { mode: 0o700 });
  const { createNetwork, removeNetwork } = await import('../src/net/networks.js');
  const { createContainer } = await import('../src/container/index.js');
  const trips = Number(process.env.BRIG_BENCH_NET_TRIPS ?? 2000);
  const starts = Number(process.env.BRIG_BENCH_NET_STARTS ?? 3);
  const made: { remove(o: { force: boolean }): Promise<void> }[] = [];
  try {
    createNetwork({ name: 'bench', options: { 'brig.host-loopback': 'true' } });
    // What outbound adds to the first container's start (the holder's, with
    // and without pasta: BRIG_PASTA naming nothing starts it without).
    const cold: Record<string, number[]> = { plain: [], pasta: [] };
    const savedPasta = process.env.BRIG_PASTA;
    for (let i = 0; i < 2; i++)
      for (const kind of ['plain', 'pasta'] as const) {
        if (kind === 'plain') process.env.BRIG_PASTA = '/nonexistent/pasta';
        else if (savedPasta === undefined) delete process.env.BRIG_PASTA;
        else process.env.BRIG_PASTA = savedPasta;
        const c = createContainer(['/bin/sleep', '1000'], { network: 'bench' });
        const t = performance.now();
        await c.start();
        cold[kind].push(performance.now() - t);
        await c.remove({ force: true });
      }
    const coldRows = [stats('first container, holder without pasta', cold.plain), stats('first container, holder with pasta', cold.pasta)];
    const srv = createContainer(['/usr/bin/python3', '-c', PINGER, 'serve'], { name: 'srv', network: 'bench' });
    made.push(srv);
    // The first container on a user network also starts the holder (and pasta on it).
    const t0 = performance.now();
    await srv.start();
    const firstStart = performance.now() - t0;
    const cli = createContainer(['/bin/sleep', '1000'], { name: 'cli', network: 'bench' });
    made.push(cli);
    await cli.start();
    const rtts = async (c: typeof srv, host: string, port = 7000) => {
      const r = await c.exec(['/usr/bin/python3', '-c', PINGER, 'ping', host, String(trips), String(port)]);
      if (r.exitCode !== 0) throw new Error(`pinger: ${String(r.stderr)}`);
      return String(r.stdout).trim().split(' ').map(Number).slice(Math.floor(trips / 10)); // the first tenth warms up
    };
    const rows = [stats('one container, its loopback', await rtts(srv, '127.0.0.1')), stats('container to container, user network', await rtts(cli, 'srv'))];
    // Start: a container on the network against one on loopback (holder running).
    const st: Record<string, number[]> = { loopback: [], pasta: [], network: [] };
    for (let i = 0; i < starts; i++)
      for (const mode of ['loopback', 'pasta', 'network'] as const) {
        const c = createContainer(['/bin/sleep', '1000'], { network: mode === 'network' ? 'bench' : mode });
        const t = performance.now();
        await c.start();
        st[mode].push(performance.now() - t);
        await c.remove({ force: true });
      }
    const startRows = [stats('container start, loopback', st.loopback), stats('container start, network pasta', st.pasta), stats('container start, user network', st.network)];
    // Outbound: one server on the host's loopback, reached through the
    // gateway address pasta maps to it, from a container on the user network
    // (veth, bridge, the holder's NAT, pasta) and from a --network pasta
    // container (its own pasta), over one connection each.
    const { holderInfo } = await import('../src/net/holder.js');
    const gw = holderInfo()?.Outbound?.Gateway;
    let outRows: ReturnType<typeof stats>[] = [];
    if (gw) {
      const port = await new Promise<number>((resolve) => {
        const s = createServer().listen(0, '127.0.0.1', () => {
          const p = (s.address() as AddressInfo).port;
          s.close(() => resolve(p));
        });
      });
      const hostServer = spawnChild('/usr/bin/python3', ['-c', PINGER, 'serve', '127.0.0.1', String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
      try {
        await new Promise((r) => hostServer.stdout!.once('data', r));
        const pc = createContainer(['/bin/sleep', '1000'], { network: 'pasta', hostLoopback: true });
        made.push(pc);
        await pc.start();
        outRows = [stats('to the host, network pasta', await rtts(pc, gw, port)), stats('to the host, user network', await rtts(cli, gw, port))];
      } finally {
        hostServer.kill('SIGKILL');
      }
    }
    console.log(`
user network: 1-byte TCP round trip, ${trips} each (ratio to loopback)\n`);
    console.log(table(rows, 'one container, its loopback'));
    console.log(`\ncontainer start (createContainer().start()), ${starts} each\n`);
    console.log(table(startRows, 'container start, loopback'));
    console.log(`\nthe first container on a network also starts the holder, 2 each\n`);
    console.log(table(coldRows, 'first container, holder without pasta'));
    console.log(`\nuser network vs network pasta at start: ${(startRows[2].p50 / startRows[1].p50).toFixed(2)}x at p50; the first container on a network (it starts the holder and its pasta): ${firstStart.toFixed(0)} ms`);
    if (outRows.length) {
      console.log(`\noutbound: 1-byte TCP round trip to a server on the host's loopback (pasta's gateway ${gw}), ${trips} each\n`);
      console.log(table(outRows, 'to the host, network pasta'));
    } else console.log('\noutbound: skipped (the holder has no pasta)');
    const out = join(dirname(fileURLToPath(import.meta.url)), '../../bench/results');
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'net-user.json'), JSON.stringify({ date: new Date().toISOString(), trips, roundTrip: rows, start: startRows, firstStartMs: firstStart, firstStart: coldRows, outbound: outRows }, null, 2) + '\n');
  } finally {
    for (const c of made) await c.remove({ force: true }).catch(() => {});
    await removeNetwork('bench').catch(() => {}); // not made
    process.env.BRIG_STORE = saved.store;
    process.env.XDG_RUNTIME_DIR = saved.run;
    if (saved.store === undefined) delete process.env.BRIG_STORE;
    if (saved.run === undefined) delete process.env.XDG_RUNTIME_DIR;
    rmSync(store, { recursive: true, force: true });
  }
}

if (process.env.BRIG_BENCH_NET_ONLY_USER !== '1') await main();
await userNetwork();
