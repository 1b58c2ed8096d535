// Compose: `up -d` of a 3-service file (web server with a healthcheck, a
// worker depending on it being healthy, a third plain service) to all
// healthy, against the same three containers made and started by hand with
// the container library (createContainer + start, healthchecks the same,
// waiting for healthy) in the same run: what compose's loading, labels,
// hashing, networks and dependency waits cost over the containers themselves.
// The whole `brig compose up -d --wait` CLI process is timed too.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const runs = Number(process.env.BRIG_BENCH_RUNS ?? 3);
const root = mkdtempSync(join(tmpdir(), 'composebench-'));
process.env.BRIG_STORE = join(root, 'store');
process.env.XDG_RUNTIME_DIR = join(root, 'run');
mkdirSync(process.env.XDG_RUNTIME_DIR, { mode: 0o700 });
const { createContainer, getContainer } = await import('../src/index.js');
const { Store } = await import('../src/image/store.js');
const { loadProject } = await import('../src/compose/model.js');
const { up, down, waitHealthy } = await import('../src/compose/lifecycle.js');
const { stats, table } = await import('./stats.js');

const quiet = { say: () => {}, warn: () => {} };
const here = dirname(fileURLToPath(import.meta.url));
const brigBin = join(here, '../../bin/brig-node');

const FILE = `name: bench
services:
  web:
    image: busybox:bench
    command: ["httpd", "-f", "-p", "8080", "-h", "/"]
    healthcheck: {test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/etc/passwd"], interval: 100ms, retries: 50}
  worker:
    image: busybox:bench
    command: ["sleep", "1000"]
    depends_on: {web: {condition: service_healthy}}
    healthcheck: {test: ["CMD-SHELL", "test -d /proc/1"], interval: 100ms, retries: 50}
  cache:
    image: busybox:bench
    command: ["sleep", "1000"]
    healthcheck: {test: ["CMD-SHELL", "true"], interval: 100ms, retries: 50}
`;

async function byHand(): Promise<number> {
  const t = performance.now();
  const hc = (test: string[]) => ({ test, intervalMs: 100, retries: 50 });
  const web = createContainer(['httpd', '-f', '-p', '8080', '-h', '/'], { name: 'h-web', image: 'busybox:bench', network: 'loopback', healthcheck: hc(['CMD', 'wget', '-q', '-O', '/dev/null', 'http://127.0.0.1:8080/etc/passwd']) });
  const cache = createContainer(['sleep', '1000'], { name: 'h-cache', image: 'busybox:bench', network: 'loopback', healthcheck: hc(['CMD-SHELL', 'true']) });
  await cache.start();
  await web.start();
  const healthy = async (c: { inspect(): { State: { Health?: { Status: string } } } }) => {
    while (c.inspect().State.Health?.Status !== 'healthy') await new Promise((r) => setTimeout(r, 50));
  };
  await healthy(web);
  const worker = createContainer(['sleep', '1000'], { name: 'h-worker', image: 'busybox:bench', network: 'loopback', healthcheck: hc(['CMD-SHELL', 'test -d /proc/1']) });
  await worker.start();
  await Promise.all([healthy(cache), healthy(worker)]);
  const ms = performance.now() - t;
  for (const n of ['h-web', 'h-cache', 'h-worker']) await getContainer(n).remove({ force: true });
  return ms;
}

async function viaCompose(dir: string): Promise<number> {
  const t = performance.now();
  const project = loadProject({ cwd: dir, env: process.env });
  await up(project, {}, quiet);
  await waitHealthy(project, Object.keys(project.services));
  const ms = performance.now() - t;
  await down(project, { timeout: 0 }, quiet);
  return ms;
}

function viaCli(dir: string): number {
  const t = performance.now();
  const r = spawnSync(process.execPath, [brigBin, 'compose', '-f', join(dir, 'compose.yaml'), 'up', '-d', '--wait'], { encoding: 'utf8' });
  const ms = performance.now() - t;
  if (r.status !== 0) throw new Error(`compose up: ${r.stderr}`);
  spawnSync(process.execPath, [brigBin, 'compose', '-f', join(dir, 'compose.yaml'), 'down', '-t', '0']);
  return ms;
}

async function main() {
  const busybox = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p));
  if (!busybox) throw new Error('bench/compose needs busybox (busybox-static)');
  const rootfs = join(root, 'rootfs');
  mkdirSync(join(rootfs, 'bin'), { recursive: true });
  mkdirSync(join(rootfs, 'etc'));
  writeFileSync(join(rootfs, 'bin', 'busybox'), readFileSync(busybox), { mode: 0o755 });
  for (const a of ['sh', 'sleep', 'httpd', 'wget', 'test', 'true']) symlinkSync('busybox', join(rootfs, 'bin', a));
  writeFileSync(join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  await new Store().importRootfs(rootfs, 'busybox:bench', { Cmd: ['/bin/sh'] });
  const dir = join(root, 'project');
  mkdirSync(dir);
  writeFileSync(join(dir, 'compose.yaml'), FILE);
  const hand: number[] = [];
  const lib: number[] = [];
  const cli: number[] = [];
  for (let i = 0; i < runs; i++) {
    hand.push(await byHand());
    lib.push(await viaCompose(dir));
    cli.push(viaCli(dir));
  }
  const rows = [stats('3 containers by hand (library), to healthy', hand), stats('compose up + wait (library)', lib), stats('brig compose up -d --wait (CLI)', cli)];
  console.log(`\ncompose: a 3-service file to all healthy (healthcheck interval 100 ms), ${runs} runs each\n`);
  console.log(table(rows, '3 containers by hand (library), to healthy'));
  const out = join(here, '../../bench/results');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'compose.json'), JSON.stringify({ date: new Date().toISOString(), uid: process.getuid!(), runs, rows }, null, 2) + '\n');
  console.log('written: bench/results/compose.json');
}

try {
  await main();
} finally {
  rmSync(root, { recursive: true, force: true });
}
