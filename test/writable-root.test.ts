// A disposable writable root (writableRoot / --writable-root): overlays with
// a tmpfs upper over the host's root. Writes land in the run's own layer and
// vanish with it; nothing reaches the host; off by default and under judge;
// skeletons, warm pairs and pools keep working beside it.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { createPool, OptionsError, resolveProfile, run } from '../src/index.js';
import { setWarm } from '../src/launch/warm.js';
import { brigCli, guardLeaks, heldSettled, isRoot } from './helpers.js';

// Python's os calls, so that each answer is the kernel's errno, not a tool's guess.
const PROBE = `
import errno, os
def t(what, f):
    try:
        f(); print(what, 'ok')
    except OSError as e:
        print(what, errno.errorcode[e.errno])
t('unlink-missing', lambda: os.unlink('/usr/share/brig-no-such-file'))
t('write-root', lambda: open('/brig-new', 'w').write('x'))
t('write-etc', lambda: open('/etc/brig-new', 'w').write('x'))
t('write-usr', lambda: open('/usr/lib/brig-new', 'w').write('x'))
t('mkdir-usr', lambda: os.mkdir('/usr/share/brig-new-dir'))
t('see-root', lambda: os.stat('/brig-new'))
`;
const py = (opts: Parameters<typeof run>[1] = {}) => run(['python3', '-c', PROBE], opts);
const lines = (r: Awaited<ReturnType<typeof run>>) => Object.fromEntries(r.stdout.toString().trim().split('\n').map((l) => l.split(' ') as [string, string]));

describe('writable root', () => {
  it('off by default: the root is read-only (EROFS, even for unlinking a missing file)', async () => {
    const r = await py();
    assert.equal(r.status, 'ok', r.stderr.toString());
    assert.deepEqual(lines(r), { 'unlink-missing': 'EROFS', 'write-root': 'EROFS', 'write-etc': 'EROFS', 'write-usr': 'EROFS', 'mkdir-usr': 'EROFS', 'see-root': 'ENOENT' });
  });

  it('on: writes land in the run\'s layer (the host untouched, the next run sees nothing); a missing file is ENOENT', async () => {
    const r = await py({ writableRoot: true });
    assert.equal(r.status, 'ok', r.stderr.toString());
    // The sandbox's user (1000) is the caller: run by root, the host's
    // root-owned /usr is the sandbox user's too; run unprivileged, the
    // host's root is unmapped (nobody), and its directories refuse writes.
    const usr = isRoot ? 'ok' : 'EACCES';
    assert.deepEqual(lines(r), { 'unlink-missing': 'ENOENT', 'write-root': 'ok', 'write-etc': 'ok', 'write-usr': usr, 'mkdir-usr': usr, 'see-root': 'ok' });
    for (const p of ['/brig-new', '/etc/brig-new', '/usr/lib/brig-new', '/usr/share/brig-new-dir']) assert.ok(!existsSync(p), `${p} reached the host`);
    const again = await run(['/bin/sh', '-c', 'ls /brig-new /etc/brig-new /usr/lib/brig-new 2>&1 | wc -l; ls / | tr "\\n" " "'], { writableRoot: true });
    assert.equal(again.stdout.toString().split('\n')[0], '3', 'the next run starts clean');
    assert.doesNotMatch(again.stdout.toString(), /brig-new|upper|layers/);
  });

  it('its size is tmpSize: past it, ENOSPC', async () => {
    const r = await run(['python3', '-c', "import os\ntry:\n  open('/big','wb').write(b'x'*(3<<20)); print('wrote')\nexcept OSError as e: print(os.strerror(e.errno))"], { writableRoot: true, tmpSize: '1m' });
    assert.equal(r.stdout.toString(), 'No space left on device\n');
  });

  it('judge keeps a read-only root; an image or a directory rootfs is refused or has its own', async () => {
    assert.notEqual(resolveProfile('judge').policy.writableRoot, true);
    const j = await run(['/bin/sh', '-c', 'touch /x 2>&1 | grep -c Read-only'], { profile: 'judge' });
    assert.equal(j.stdout.toString(), '1\n');
    await assert.rejects(run(['true'], { writableRoot: true, rootfs: '/usr' }), (e: unknown) => e instanceof OptionsError && e.field === 'writableRoot');
    await assert.rejects(run(['true'], { writableRoot: 'yes' as unknown as boolean }), (e: unknown) => e instanceof OptionsError && e.field === 'writableRoot');
  });

  it('beside skeletons: its runs build their own root, other plans keep their skeleton', async () => {
    const plain = ['/bin/sh', '-c', 'touch /x 2>/dev/null || echo ro'];
    await run(plain);
    await heldSettled();
    const before = await run(plain, { timings: true });
    assert.equal(before.timings!.skeleton, true, 'the plain plan has its skeleton');
    for (let i = 0; i < 2; i++) {
      const w = await run(['/bin/sh', '-c', 'touch /x && echo rw'], { writableRoot: true, timings: true });
      assert.equal(w.stdout.toString(), 'rw\n', w.stderr.toString());
      assert.equal(w.timings!.skeleton, false);
      await heldSettled();
    }
    const after = await run(plain, { timings: true });
    assert.equal(after.stdout.toString(), 'ro\n');
    assert.equal(after.timings!.skeleton, true);
  });

  it('in warm pairs, in a pool, and from the CLI', async () => {
    setWarm(true, 8);
    try {
      for (let i = 0; i < 3; i++) await run(['/bin/true'], { writableRoot: true });
      const w = await run(['/bin/sh', '-c', 'echo hi > /etc/motd2 && cat /etc/motd2'], { writableRoot: true, timings: true });
      assert.equal(w.stdout.toString(), 'hi\n', w.stderr.toString());
      assert.equal(w.timings!.warm, true);
    } finally {
      setWarm(true);
    }
    const pool = createPool({ size: 1, writableRoot: true });
    try {
      const a = await pool.run(['/bin/sh', '-c', 'ls /mark 2>/dev/null; touch /mark && echo made']);
      const b = await pool.run(['/bin/sh', '-c', 'ls /mark 2>/dev/null; touch /mark && echo made']);
      assert.equal(a.stdout.toString(), 'made\n', a.stderr.toString());
      assert.equal(b.stdout.toString(), 'made\n', 'each pooled sandbox has its own layer');
    } finally {
      await pool.close();
    }
    const cli = brigCli(['run', '--writable-root', '--', '/bin/sh', '-c', 'touch /x && echo rw']);
    assert.equal(cli.out, 'rw\n', cli.err);
  });
});

guardLeaks();
