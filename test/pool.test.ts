// Warm pools: sandboxes made ahead, each serving one run with the same
// isolation as run(), per-run options only, nothing left behind.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createPool, OptionsError, type PoolRunOptions } from '../src/index.js';
import { RunCgroups } from '../src/cgroup/run.js';
import { descendants, guardLeaks, leaksSince, running, snapshot } from './helpers.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const settle = () => new Promise((r) => setTimeout(r, 30));

describe('warm pools', () => {
  it('makes sandboxes ahead; each run gets one, isolated as run() would be, with its own /tmp', async () => {
    const pool = createPool({ size: 2 });
    try {
      await settle();
      assert.equal(pool.available, 2);
      const script = 'echo $X; hostname; id -u; cat /proc/1/comm 2>/dev/null || echo init-hidden; ls /tmp; touch /tmp/mark; touch /usr/x 2>/dev/null || echo ro; cat';
      const a = await pool.run(['/bin/sh', '-c', script], { env: { X: 'first' }, stdin: 'input\n' });
      assert.equal(a.status, 'ok', a.stderr.toString());
      assert.equal(a.stdout.toString(), 'first\nbrig\n1000\ninit-hidden\nro\ninput\n');
      const b = await pool.run(['/bin/sh', '-c', 'echo $X; ls /tmp; echo $$'], { env: { X: 'second' } });
      // A fresh sandbox: the first run's /tmp is not there, and the shell is again pid 2.
      assert.equal(b.stdout.toString(), 'second\n2\n');
      // the default policy's refusals are answered and reported in a pooled sandbox too
      const c = await pool.run(['python3', '-c', 'import os\nfor _ in range(2):\n try: os.chroot("/")\n except PermissionError: print("refused")']);
      assert.equal(c.stdout.toString(), 'refused\nrefused\n', c.stderr.toString());
      assert.deepEqual(c.seccompDenials?.map((d) => [d.syscall, d.errno, d.count]), [['chroot', 1, 2]]);
      assert.equal(pool.stats.taken, 3);
      assert.equal(pool.stats.misses, 0);
      await settle();
      assert.equal(pool.available, 2, 'refilled');
    } finally {
      await pool.close();
    }
  });

  it('takes the profile and policy of the pool; per-run limits, stdio and env of the run', async () => {
    const pool = createPool({ profile: 'judge', size: 1, hostname: 'pooled' });
    try {
      const r = await pool.run(['/bin/sh', '-c', 'hostname; ulimit -n; ls /dev/shm 2>/dev/null || echo no-shm']);
      assert.equal(r.stdout.toString(), 'pooled\n64\nno-shm\n', r.stderr.toString());
      const spin = await pool.run(['/bin/sh', '-c', 'while :; do :; done'], { cpuTimeLimitMs: 300, extraTimeMs: 0 });
      assert.equal(spin.status, 'cpu-time-limit');
      const cpu = spin.cpuTimeMs.user + spin.cpuTimeMs.system;
      assert.ok(cpu >= 300 && cpu < 400, `cpu ${cpu}`);
      const sleep = await pool.run(['sleep', '10'], { wallTimeLimitMs: 200 });
      assert.equal(sleep.status, 'wall-time-limit');
      const sys = await pool.run(['python3', '-c', 'import ctypes; ctypes.CDLL(None).mount(b"none", b"/tmp", b"tmpfs", 0, None)']);
      assert.equal(sys.status, 'seccomp-violation');
      assert.equal(sys.violation?.syscall, 'mount');
      const p = pool.spawn(['/bin/cat'], { stdin: 'pipe' });
      p.stdin!.end('streamed');
      const chunks: Buffer[] = [];
      p.stdout!.on('data', (c: Buffer) => chunks.push(c));
      // A 'pipe' stream is the caller's: its end, not the exit, says all is read.
      const ended = new Promise((r) => p.stdout!.once('end', r));
      assert.equal((await p.wait()).status, 'ok');
      await ended;
      assert.equal(Buffer.concat(chunks).toString(), 'streamed');
    } finally {
      await pool.close();
    }
  });

  it('refuses per-run options that would need another sandbox, naming them', async () => {
    const pool = createPool({ size: 1 });
    try {
      assert.throws(() => pool.spawn(['true'], { hostname: 'other' } as PoolRunOptions), (e: unknown) => e instanceof OptionsError && e.field === 'hostname');
      await assert.rejects(pool.run(['true'], { mounts: [{ source: '/usr', target: '/x' }] } as PoolRunOptions), (e: unknown) => e instanceof OptionsError && e.field === 'mounts');
      assert.throws(() => createPool({ size: -1 }), (e: unknown) => e instanceof OptionsError && e.field === 'size');
      // (idMap 'multi' is pooled where newuidmap and a range exist: test/idmap-warm.test.ts.)
      assert.throws(() => createPool({ idMap: 'many' as 'multi' }), (e: unknown) => e instanceof OptionsError && e.field === 'idMap');
    } finally {
      await pool.close();
    }
  });

  it('replaces a sandbox that died while it waited, and a pool that cannot make them still runs (fresh)', async () => {
    const pool = createPool({ size: 1 });
    try {
      await settle();
      // The pool's init (our child) and the program's process it forked ahead, waiting for the command.
      const waiting = descendants().filter((p) => p.comm === 'brig-init' && p.ppid === process.pid);
      assert.equal(waiting.length, 1);
      assert.equal(descendants().filter((p) => p.ppid === waiting[0].pid).length, 1);
      process.kill(waiting[0].pid, 'SIGKILL'); // ours: the pool's init, by pid
      for (let i = 0; i < 100 && pool.stats.diedIdle === 0; i++) await settle();
      assert.equal(pool.stats.diedIdle, 1);
      const r = await pool.run(['/bin/echo', 'still fine']);
      assert.equal(r.stdout.toString(), 'still fine\n');
    } finally {
      await pool.close();
    }
    const broken = createPool({ size: 1, mounts: [{ source: '/usr', target: '/u' }] });
    try {
      const r = await broken.run(['/bin/ls', '/u/bin/true']);
      assert.equal(r.status, 'ok');
    } finally {
      await broken.close();
    }
  });

  it('leaves no process, fd, mount or cgroup behind, and does not keep Node alive', async () => {
    const probe = RunCgroups.create({ pids: 10 }, process.env.BRIG_CGROUP_PARENT || undefined);
    const withCgroups = probe instanceof RunCgroups;
    const parents = probe instanceof RunCgroups ? probe.dirs.map((d) => dirname(d)) : [];
    if (probe instanceof RunCgroups) await probe.remove();
    const before = snapshot();
    const pool = createPool({ size: 3, ...(withCgroups ? { pids: 32 } : {}) });
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => pool.run(['/bin/echo', String(i)])));
    results.forEach((r, i) => assert.equal(r.stdout.toString(), `${i}\n`));
    const inits = descendants().filter((p) => p.comm === 'brig-init').map((p) => p.pid);
    await pool.close();
    for (const pid of inits) assert.equal(running(pid), false);
    const leaks = await leaksSince(before);
    assert.deepEqual(leaks.processes, []);
    assert.deepEqual(leaks.fds, []);
    assert.equal(leaks.mountsChanged, false);
    assert.deepEqual(
      parents.flatMap((p) => readdirSync(p).filter((n) => n.startsWith(`brig-${process.pid}-`))),
      [],
    );
    // A script that makes a pool and forgets to close it still exits.
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', `import { createPool } from ${JSON.stringify(join(root, 'dist/src/index.js'))}; const p = createPool({ size: 2 }); const r = await p.run(['/bin/true']); console.log(r.status);`], { encoding: 'utf8', timeout: 10000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'ok\n');
  });
});

guardLeaks();
