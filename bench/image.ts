// Start from an image against start from the host's rootfs: run `true` in a
// busybox image (its layers under a writable tmpfs layer, overlayfs) and
// /bin/true on the host rootfs, interleaved, in the same process.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../src/index.js';
import { Store } from '../src/image/store.js';
import { stats, table } from './stats.js';

const runs = Number(process.env.BRIG_BENCH_RUNS ?? 500);

async function main() {
  const busybox = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p));
  if (!busybox) {
    console.log('\nimage benchmark skipped: no busybox (apt-get install busybox-static)');
    return;
  }
  const work = mkdtempSync(join(tmpdir(), 'brig-bench-image-'));
  try {
    const rootfs = join(work, 'rootfs');
    mkdirSync(join(rootfs, 'bin'), { recursive: true });
    execFileSync('cp', [busybox, join(rootfs, 'bin', 'busybox')]);
    symlinkSync('busybox', join(rootfs, 'bin', 'true'));
    writeFileSync(join(rootfs, 'marker'), 'x');
    execFileSync('chmod', ['-R', 'a+rX', work]);
    const store = new Store(join(work, 'store'));
    process.env.BRIG_STORE = store.root;
    await store.importRootfs(rootfs, 'bench:busybox');
    const host: number[] = [];
    const image: number[] = [];
    for (let i = 0; i < 30; i++) {
      await run(['/bin/true']);
      await run(['/bin/true'], { image: 'bench:busybox' });
    }
    for (let i = 0; i < runs; i++) {
      let t = performance.now();
      await run(['/bin/true']);
      host.push(performance.now() - t);
      t = performance.now();
      const r = await run(['/bin/true'], { image: 'bench:busybox' });
      image.push(performance.now() - t);
      if (r.status !== 'ok') throw new Error(`image run: ${r.status} ${r.error?.message ?? ''}`);
    }
    const rows = [stats('host rootfs', host), stats('busybox image (overlay)', image)];
    console.log(`\nstart from an image, ${runs} runs each, interleaved\n`);
    console.log(table(rows, 'host rootfs'));
    const out = join(dirname(fileURLToPath(import.meta.url)), '../../bench/results');
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'image.json'), JSON.stringify({ date: new Date().toISOString(), runs, rows }, null, 2) + '\n');
    console.log('written: bench/results/image.json');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
