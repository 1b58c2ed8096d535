// Faults from outside the sandbox: the Node process killed mid-run.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { RunCgroups } from '../../src/cgroup/run.js';
import { descendants, guardLeaks, ownCgroups, running } from '../helpers.js';

const index = new URL('../../src/index.js', import.meta.url).href;
const probe = RunCgroups.create({ memoryBytes: 1 << 30 }, process.env.BRIG_CGROUP_PARENT || undefined);
const cgroups = probe instanceof RunCgroups;
if (probe instanceof RunCgroups) probe.remove();

/** A Node process that starts `script`'s sandboxes and says "ready". */
function parent(script: string) {
  const child = spawn(process.execPath, ['--input-type=module', '-e', `import { run, createPool } from ${JSON.stringify(index)};\n${script}\nconsole.log('ready');`], { stdio: ['ignore', 'pipe', 'inherit'] });
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    child.once('exit', (code) => reject(new Error(`the parent exited early (${code})`)));
  });
  return { child, ready };
}

describe('the Node parent killed with SIGKILL', () => {
  it('20 running sandboxes (15 runs, 5 idle in a pool) all end within 1 s; the next start sweeps their cgroups', async () => {
    const limits = cgroups ? "{ memory: '64m', pids: 64 }" : '{}';
    const { child, ready } = parent(`
      const pool = await createPool({ size: 5 });
      for (let i = 0; i < 15; i++) run(['/bin/sleep', '600'], ${limits});
      await new Promise((r) => setTimeout(r, 500));`);
    await ready;
    const inside = descendants(child.pid);
    // 15 inits + 15 sleeps, and 5 pooled inits + their 5 waiting programs.
    assert.ok(inside.length >= 40, `${inside.length} processes under the parent: ${inside.map((p) => p.comm).join(' ')}`);
    // The parent was started here, so its cgroups sit under the same parents as ours.
    const leftCgroups = () => ownCgroups(child.pid);
    if (cgroups) assert.ok(leftCgroups().length > 0, 'the runs had cgroups');
    const killedAt = performance.now();
    process.kill(child.pid!, 'SIGKILL');
    while (inside.some((p) => running(p.pid)) && performance.now() - killedAt < 5000) await new Promise((r) => setTimeout(r, 10));
    const took = performance.now() - killedAt;
    assert.deepEqual(inside.filter((p) => running(p.pid)).map((p) => `${p.pid} ${p.comm}`), [], 'sandbox processes left');
    assert.ok(took < 1000, `all ended in ${took.toFixed(0)} ms`);
    if (!cgroups) return;
    // Their cgroups stay until a brig process makes its own next to them.
    assert.ok(leftCgroups().length > 0, 'a dead process cannot remove its cgroups');
    const next = parent(`const r = await run(['/bin/true'], { memory: '64m' }); if (r.status !== 'ok') throw new Error(r.status);`);
    await next.ready;
    await new Promise((r) => next.child.once('exit', r));
    assert.deepEqual(leftCgroups(), [], 'swept by the next start');
  });
});

guardLeaks();
