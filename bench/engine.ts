// The Engine API's own cost: `docker run --rm IMAGE true` (the Debian docker
// CLI through brig system service: create, attach, wait, start, the end and
// removal) against `brig run --image IMAGE -- true` (brig's CLI, the same
// image) in the same run. Both are whole client processes.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stats, table } from './stats.js';

const runs = Number(process.env.BRIG_BENCH_ENGINE_RUNS ?? 10);
const DOCKER = '/usr/bin/docker';
const brigNode = join(dirname(fileURLToPath(import.meta.url)), '../../bin/brig-node');

function proc(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: 'ignore', env });
    c.once('error', reject);
    c.once('close', (code) => resolve(code ?? -1));
  });
}

function ping(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const r = request({ socketPath: socket, path: '/_ping' }, (res) => (res.resume(), resolve(res.statusCode === 200)));
    r.on('error', () => resolve(false));
    r.end();
  });
}

async function main(): Promise<void> {
  if (!existsSync(DOCKER)) {
    console.log(`engine bench: skipped (no ${DOCKER}: apt-get install docker.io)`);
    return;
  }
  const busybox = ['/usr/bin/busybox', '/bin/busybox'].find((p) => existsSync(p));
  if (!busybox) {
    console.log('engine bench: skipped (no busybox)');
    return;
  }
  const root = mkdtempSync(join(tmpdir(), 'enginebench-'));
  const env = { ...process.env, BRIG_STORE: join(root, 'store'), XDG_RUNTIME_DIR: join(root, 'run'), DOCKER_CONFIG: join(root, 'docker-config') };
  mkdirSync(env.XDG_RUNTIME_DIR, { mode: 0o700 });
  const socket = join(env.XDG_RUNTIME_DIR, 'brig', 'docker.sock');
  let svc: ChildProcess | undefined;
  try {
    const rootfs = join(root, 'rootfs');
    mkdirSync(join(rootfs, 'bin'), { recursive: true });
    writeFileSync(join(rootfs, 'bin', 'busybox'), readFileSync(busybox), { mode: 0o755 });
    for (const a of ['sh', 'true']) symlinkSync('busybox', join(rootfs, 'bin', a));
    const imp = spawnSync(process.execPath, [brigNode, 'import-rootfs', '--cmd', '["/bin/sh"]', rootfs, 'benchbox:1'], { env, encoding: 'utf8' });
    if (imp.status !== 0) throw new Error(`import-rootfs: ${imp.stderr}`);
    svc = spawn(process.execPath, [brigNode, 'system', 'service', '--socket', socket], { env, stdio: 'ignore' });
    const until = Date.now() + 30_000;
    while (!(existsSync(socket) && (await ping(socket)))) {
      if (Date.now() > until) throw new Error('brig system service did not answer');
      await new Promise((r) => setTimeout(r, 50));
    }
    const denv = { ...env, DOCKER_HOST: `unix://${socket}` };
    const dockerArgs = ['run', '--rm', 'benchbox:1', 'true'];
    const brigArgs = [brigNode, 'run', '--image', 'benchbox:1', '--', 'true'];
    // One of each first: caches warm, and both must work.
    if ((await proc(DOCKER, dockerArgs, denv)) !== 0) throw new Error('docker run --rm failed');
    if ((await proc(process.execPath, brigArgs, env)) !== 0) throw new Error('brig run --image failed');
    const viaDocker: number[] = [];
    const viaBrig: number[] = [];
    for (let i = 0; i < runs; i++) {
      let t = performance.now();
      if ((await proc(process.execPath, brigArgs, env)) !== 0) throw new Error('brig run --image failed');
      viaBrig.push(performance.now() - t);
      t = performance.now();
      if ((await proc(DOCKER, dockerArgs, denv)) !== 0) throw new Error('docker run --rm failed');
      viaDocker.push(performance.now() - t);
    }
    const base = 'brig run --image IMAGE -- true';
    const rows = [stats(base, viaBrig), stats('docker run --rm IMAGE true (via brig system service)', viaDocker)];
    console.log(`\nthe Engine API's cost: a run to its end, ${runs} each\n`);
    console.log(table(rows, base));
    const out = join(dirname(fileURLToPath(import.meta.url)), '../../bench/results');
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'engine.json'), JSON.stringify({ date: new Date().toISOString(), uid: process.getuid!(), runs, rows }, null, 2) + '\n');
    console.log('written: bench/results/engine.json');
  } finally {
    if (svc && svc.exitCode === null) {
      const gone = new Promise((r) => svc!.once('exit', r));
      svc.kill('SIGTERM');
      await gone;
    }
    rmSync(root, { recursive: true, force: true });
  }
}

await main();
