// Limits and accounting by cgroup, on whatever this host gives: v1/hybrid
// here (CI runs it as root, and as a user with a delegated v1 subtree).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';

import { run } from '../src/index.js';
import { RunCgroups } from '../src/cgroup/run.js';
import { descendantsSettled, guardLeaks } from './helpers.js';
import { probeMount } from './probe.js';

const mounts = [probeMount()];
const made = RunCgroups.create({ memoryBytes: 1 << 30, pids: 1000, cpus: 1 }, process.env.BRIG_CGROUP_PARENT || undefined);
const parents = made instanceof RunCgroups ? made.dirs.map((d) => dirname(d)) : [];
const skip = made instanceof RunCgroups ? false : `skipped: ${made.unavailable}`;
if (made instanceof RunCgroups) await made.remove();

function ours(): string[] {
  return parents.flatMap((p) => readdirSync(p).filter((n) => n.startsWith(`brig-${process.pid}-`)));
}

describe('cgroup limits', { skip }, () => {
  it('a memory bomb ends as memory-limit with its peak at the limit', async () => {
    const r = await run(['python3', '-c', 'a = bytearray(512 << 20); print("survived")'], { memory: '64m' });
    assert.equal(r.status, 'memory-limit');
    assert.equal(r.oomKilled, true);
    assert.equal(r.stdout.toString(), '');
    assert.ok(r.memoryPeakBytes! > 48 << 20 && r.memoryPeakBytes! <= 64 << 20, `peak ${r.memoryPeakBytes}`);
    assert.match(r.enforcement!.memory!, /^cgroup-v[12]$/);
  });

  it("an out-of-memory kill in the sandbox never reaches the Node process", async () => {
    // init shares Node's memory; the kernel's OOM killer kills every process
    // sharing its victim's memory. A Node process running a memory bomb must
    // live to report it.
    const script = `import { run } from ${JSON.stringify(new URL('../src/index.js', import.meta.url).href)};
      for (let i = 0; i < 3; i++) {
        const r = await run(['python3', '-c', 'a = bytearray(512 << 20)'], { memory: '48m' });
        if (r.status !== 'memory-limit') throw new Error(r.status);
      }
      console.log('alive');`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: process.env });
    assert.equal(child.signal, null, `the Node process died of ${child.signal}`);
    assert.equal(child.stdout, 'alive\n', child.stderr);
  });

  it('a program within its memory limit runs, and its peak is reported', async () => {
    const r = await run(['python3', '-c', 'a = bytearray(16 << 20); print(len(a))'], { memory: '128m' });
    assert.equal(r.status, 'ok');
    assert.equal(r.oomKilled, false);
    assert.ok(r.memoryPeakBytes! >= 16 << 20 && r.memoryPeakBytes! < 128 << 20, `peak ${r.memoryPeakBytes}`);
  });

  it('a fork bomb is held at the pids limit and cleaned up', async () => {
    const r = await run(['/probe', 'forkbomb', '300'], { mounts, pids: 16 });
    assert.equal(r.status, 'ok');
    assert.equal(r.pidsLimitHit, true);
    assert.ok(r.pidsPeak! <= 16, `peak ${r.pidsPeak}`);
    assert.ok(Number(r.stdout.toString()) <= 15, `forked ${r.stdout}`);
    assert.deepEqual(await descendantsSettled(), []);
  });

  it('0.5 cpus halves a spinning program, within 10 %', async () => {
    const r = await run(['/bin/sh', '-c', 'while :; do :; done'], { cpus: 0.5, wallTimeLimitMs: 2000 });
    assert.equal(r.status, 'wall-time-limit');
    const perWall = (r.cpuTimeMs.user + r.cpuTimeMs.system) / r.wallTimeMs;
    assert.ok(Math.abs(perWall - 0.5) <= 0.05, `CPU per wall second ${perWall.toFixed(3)}`);
  });

  it('counts both threads of a two-thread CPU burner', async () => {
    const r = await run(['/probe', 'burn', '2', '300'], { mounts, cpus: 2 });
    assert.equal(r.stdout.toString(), 'burnt\n');
    const cpu = r.cpuTimeMs.user + r.cpuTimeMs.system;
    assert.ok(cpu >= 590 && cpu < 900, `cpu ${cpu} ms`);
  });

  it('runs on the cpuset it is given', async () => {
    const r = await run(['/bin/sh', '-c', 'grep Cpus_allowed_list /proc/self/status'], { cpuset: '0' });
    assert.equal(r.stdout.toString().trim().split(/\s+/)[1], '0');
  });

  it('removes every cgroup it made, also after kills and failures', async () => {
    await run(['/bin/sleep', '10'], { memory: '32m', pids: 8, wallTimeLimitMs: 100 });
    await run(['no-such-command'], { memory: '32m' });
    assert.deepEqual(ours(), []);
  });

  it('sweeps the cgroups of brig processes that died', async () => {
    // A cgroup named for a pid that is not running, as a killed brig leaves it.
    let dead = 4_000_000;
    while (existsSync(`/proc/${dead}`)) dead++;
    const stale = parents.map((p) => join(p, `brig-${dead}-1`));
    for (const d of stale) if (!existsSync(d)) mkdirSync(d);
    const script = `import { run } from ${JSON.stringify(new URL('../src/index.js', import.meta.url).href)}; await run(['/bin/true'], { memory: '32m', pids: 8, cpus: 1 });`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: process.env });
    assert.equal(child.status, 0, child.stderr);
    for (const d of stale) {
      assert.equal(existsSync(d), false, `${d} left`);
      if (existsSync(d)) rmdirSync(d);
    }
  });
});

describe('limits without a cgroup', () => {
  it('fall back to rlimits and say so', async () => {
    const r = await run(['python3', '-c', 'a = bytearray(256 << 20)'], { memory: '64m', pids: 64, cpus: 0.5, cgroup: false });
    assert.notEqual(r.status, 'ok');
    assert.match(r.stderr.toString(), /MemoryError/);
    assert.deepEqual(r.enforcement, { memory: 'rlimit', pids: 'rlimit', cpus: 'none' });
    assert.match(r.enforcementNote!, /cgroups turned off/);
    assert.equal(r.memoryPeakBytes, undefined);
  });

  it('a cgroup parent that cannot be used is an error, not a silent fallback', async () => {
    const r = await run(['/bin/true'], { memory: '64m', cgroupParent: '/nonexistent/brig-parent' });
    assert.equal(r.status, 'setup-error');
    assert.equal(r.error?.step, 'cgroup-create');
    assert.match(r.error!.message, /nonexistent\/brig-parent/);
  });
});

guardLeaks();
