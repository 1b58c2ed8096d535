// brig from worker threads: each has its own watcher, and a worker that is
// terminated takes its sandboxes with it and leaves the process healthy.
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { run } from '../src/index.js';
import { descendants, guardLeaks, running } from './helpers.js';

const fixture = join(dirname(fileURLToPath(import.meta.url)), 'fixtures/worker-runs.js');
const poolFixture = join(dirname(fileURLToPath(import.meta.url)), 'fixtures/worker-pool.js');

describe('worker threads', () => {
  it('run sandboxes, and terminating them kills their sandboxes', async () => {
    for (let round = 0; round < 3; round++) {
      const workers = [new Worker(fixture), new Worker(fixture)];
      const msgs = await Promise.all(workers.map((w) => new Promise<{ outs: string[]; sleeper: number }>((res, rej) => (w.once('message', res), w.once('error', rej)))));
      for (const m of msgs) {
        assert.deepEqual(m.outs, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
        assert.ok(m.sleeper > 0);
        assert.equal(running(m.sleeper), true);
      }
      await Promise.all(workers.map((w) => w.terminate()));
      const t0 = Date.now();
      while (msgs.some((m) => running(m.sleeper)) && Date.now() - t0 < 2000) await new Promise((r) => setTimeout(r, 10));
      assert.ok(msgs.every((m) => !running(m.sleeper)), 'a sandbox outlived its worker');
    }
    // The main thread's own brig still works afterwards.
    assert.equal((await run(['/bin/echo', 'main'])).stdout.toString(), 'main\n');
  });

  it('a terminated worker with a pool refilling takes its sandboxes and its launcher thread with it', async () => {
    for (let round = 0; round < 3; round++) {
      const w = new Worker(poolFixture);
      const m = await new Promise<{ outs: string[] }>((res, rej) => (w.once('message', res), w.once('error', rej)));
      assert.deepEqual(m.outs, ['0', '1', '2', '3', '4', '5']);
      await new Promise((r) => setTimeout(r, 20 * round));
      await w.terminate();
    }
    const t0 = Date.now();
    while (descendants().length && Date.now() - t0 < 2000) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(descendants(), []);
    assert.equal((await run(['/bin/echo', 'main'])).stdout.toString(), 'main\n');
  });
});

guardLeaks();
