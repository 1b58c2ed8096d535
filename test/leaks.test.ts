// Many runs leave nothing behind: no processes or zombies, no fds in the
// Node process, no mounts.
import assert from 'node:assert/strict';
import { spawn as cpSpawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { native } from '../src/native.js';
import { run } from '../src/index.js';
import { descendants, guardLeaks, leaksSince, running, snapshot } from './helpers.js';

describe('nothing leaks', () => {
  // Warm up: the first run opens the one /dev/null fd all runs share.
  before(() => run(['/bin/true']));

  it('200 sequential runs', async () => {
    const before = snapshot();
    for (let i = 0; i < 200; i++) {
      const r = await run(['/bin/sh', '-c', 'echo $1; cat >/dev/null', 'sh', String(i)], { stdin: 'input' });
      assert.equal(r.status, 'ok');
      assert.equal(r.stdout.toString(), `${i}\n`);
    }
    const leaks = await leaksSince(before);
    assert.deepEqual(leaks.processes, [], 'processes left');
    assert.deepEqual(leaks.fds, [], 'fds left');
    assert.equal(leaks.mountsChanged, false);
    assert.equal(native.live(), 0);
  });

  it('50 concurrent runs, some failing and some killed', async () => {
    const before = snapshot();
    const runs = Array.from({ length: 50 }, (_, i) => {
      if (i % 10 === 3) return run(['no-such-command']);
      if (i % 10 === 7) return run(['/bin/sleep', '30'], { wallTimeLimitMs: 200 });
      return run(['/bin/sh', '-c', 'echo $1', 'sh', String(i)]);
    });
    const results = await Promise.all(runs);
    results.forEach((r, i) => {
      if (i % 10 === 3) assert.equal(r.status, 'setup-error');
      else if (i % 10 === 7) assert.equal(r.status, 'wall-time-limit');
      else assert.equal(r.stdout.toString(), `${i}\n`);
    });
    const leaks = await leaksSince(before);
    assert.deepEqual(leaks.processes, [], 'processes left');
    assert.deepEqual(leaks.fds, [], 'fds left');
    assert.equal(leaks.mountsChanged, false);
    assert.equal(native.live(), 0);
  });

  it('2000 runs, two at a time, each launched as the previous one is delivered: every result is its own', async () => {
    // A result is delivered from inside the watcher's event batch; the JS it
    // runs launches the next sandbox, which may get the pidfd number just
    // closed. A child queued twice in one batch once delivered that new
    // sandbox at once, unreaped, and freed its memory while its init ran.
    const before = snapshot();
    let next = 0;
    const wrong: string[] = [];
    await Promise.all(
      [0, 1].map(async () => {
        while (next < 2000) {
          const i = next++;
          const r = await run(['/bin/sh', '-c', 'read a b; echo $((a + b))'], { stdin: `${i} ${i + 1}` });
          if (r.status !== 'ok' || r.stdout.toString() !== `${2 * i + 1}\n`) wrong.push(`${i}: ${r.status} ${r.signal ?? ''} ${r.error?.message ?? ''}`);
        }
      }),
    );
    assert.deepEqual(wrong, []);
    const leaks = await leaksSince(before);
    assert.deepEqual(leaks.processes, []);
    assert.deepEqual(leaks.fds, []);
    assert.equal(native.live(), 0);
  });

  it('no sandbox outlives a Node process killed with SIGKILL', async () => {
    const fixture = join(dirname(fileURLToPath(import.meta.url)), 'fixtures/hold-sandboxes.js');
    const holder = cpSpawn(process.execPath, [fixture, '20'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const line = await new Promise<string>((resolve, reject) => {
      let buf = '';
      holder.stdout!.on('data', (c) => {
        buf += c;
        if (buf.includes('\n')) resolve(buf);
      });
      holder.on('exit', () => reject(new Error('fixture exited early')));
    });
    const inits: number[] = JSON.parse(line);
    assert.equal(inits.length, 20);
    // Every process of every sandbox: the inits and the programs under them.
    let tree = descendants(holder.pid!).map((p) => p.pid);
    for (let i = 0; i < 50 && tree.length < 40; i++) {
      await new Promise((r) => setTimeout(r, 20));
      tree = descendants(holder.pid!).map((p) => p.pid);
    }
    assert.ok(tree.length >= 40, `expected 20 inits and 20 programs, saw ${tree.length}`);
    holder.kill('SIGKILL');
    const t0 = Date.now();
    while (tree.some(running) && Date.now() - t0 < 1000) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(tree.filter(running), [], 'sandbox processes outlived their parent by 1 s');
  });
});

guardLeaks();
