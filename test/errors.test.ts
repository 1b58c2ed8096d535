// Bad input and failing setup steps: a clear error naming the field or the
// step, never a hang.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { OptionsError, run, type SandboxOptions } from '../src/index.js';
import { guardLeaks } from './helpers.js';

describe('setup errors', () => {
  it('a missing command is a setup-error at the exec step', async () => {
    const r = await run(['no-such-command-anywhere']);
    assert.equal(r.status, 'setup-error');
    assert.equal(r.error?.step, 'exec');
    assert.equal(r.error?.code, 'ENOENT');
    assert.match(r.error!.message, /command not found in PATH=/);
    const abs = await run(['/nonexistent/bin']);
    assert.equal(abs.error?.step, 'exec');
    assert.match(abs.error!.message, /\/nonexistent\/bin.*ENOENT/);
  });

  it('a file that is not executable fails with EACCES', async () => {
    const r = await run(['/etc/passwd']);
    assert.equal(r.status, 'setup-error');
    assert.equal(r.error?.step, 'exec');
    assert.equal(r.error?.code, 'EACCES');
  });

  it('a missing mount source names the mount', async () => {
    const r = await run(['/bin/true'], { mounts: [{ source: '/nonexistent/src', target: '/data' }] });
    assert.equal(r.status, 'setup-error');
    assert.equal(r.error?.step, 'bind-mount');
    assert.equal(r.error?.code, 'ENOENT');
    assert.equal(r.error?.path, '/nonexistent/src');
    assert.match(r.error!.message, /mounts\[0\]\.source/);
  });

  it('a bad working directory fails at chdir', async () => {
    const r = await run(['/bin/true'], { cwd: '/nonexistent' });
    assert.equal(r.status, 'setup-error');
    assert.equal(r.error?.step, 'chdir');
    assert.equal(r.error?.code, 'ENOENT');
    const notDir = await run(['/bin/true'], { cwd: '/etc/passwd' });
    assert.equal(notDir.error?.code, 'ENOTDIR');
  });

  it('a mount target inside a read-only system directory fails at mkdir, touching nothing on the host', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'brig-src-'));
    try {
      const r = await run(['/bin/true'], { mounts: [{ source: dir, target: '/usr/brig-should-not-exist' }] });
      assert.equal(r.status, 'setup-error');
      assert.equal(r.error?.step, 'mkdir');
      assert.equal(r.error?.code, 'EROFS');
      assert.equal(existsSync('/usr/brig-should-not-exist'), false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a missing rootfs or stdin file is reported before anything starts', async () => {
    const r = await run(['/bin/true'], { rootfs: '/nonexistent/root' });
    assert.equal(r.error?.step, 'rootfs');
    assert.equal(r.error?.code, 'ENOENT');
    const s = await run(['/bin/cat'], { stdin: { file: '/nonexistent/input' } });
    assert.equal(s.error?.step, 'stdin');
    assert.equal(s.error?.code, 'ENOENT');
    const dir = mkdtempSync(join(tmpdir(), 'brig-file-'));
    try {
      writeFileSync(join(dir, 'f'), '');
      const f = await run(['/bin/true'], { rootfs: join(dir, 'f') });
      assert.equal(f.error?.code, 'ENOTDIR');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});


describe('options are validated before anything starts', () => {
  const bad: [unknown, SandboxOptions | undefined, string][] = [
    [[], {}, 'argv'],
    ['ls', {}, 'argv'],
    [['ls', 3], {}, 'argv[1]'],
    [['a\0b'], {}, 'argv[0]'],
    [[''], {}, 'argv[0]'],
    [['/bin/true'], { cwd: 'relative' }, 'cwd'],
    [['/bin/true'], { mounts: [{ source: 'rel', target: '/x' }] }, 'mounts[0].source'],
    [['/bin/true'], { mounts: [{ source: '/tmp', target: 'x' }] }, 'mounts[0].target'],
    [['/bin/true'], { mounts: [{ source: '/tmp', target: '/proc/sys' }] }, 'mounts[0].target'],
    [['/bin/true'], { mounts: [{ source: '/tmp', target: '/' }] }, 'mounts[0].target'],
    [['/bin/true'], { mounts: [{ source: '/tmp', target: '/x', readonly: 'yes' as unknown as boolean }] }, 'mounts[0].readonly'],
    [['/bin/true'], { tmpfs: [{ target: '/x', size: '12q' }] }, 'tmpfs[0].size'],
    [['/bin/true'], { tmpfs: [{ target: '/x', size: -1 }] }, 'tmpfs[0].size'],
    [['/bin/true'], { env: { 'A=B': 'x' } }, 'env.A=B'],
    [['/bin/true'], { env: { A: 3 as unknown as string } }, 'env.A'],
    [['/bin/true'], { hostname: 'bad host' }, 'hostname'],
    [['/bin/true'], { uid: -1 }, 'uid'],
    [['/bin/true'], { gid: 1.5 }, 'gid'],
    [['/bin/true'], { wallTimeLimitMs: 0 }, 'wallTimeLimitMs'],
    [['/bin/true'], { wallTimeLimitMs: Infinity }, 'wallTimeLimitMs'],
    [['/bin/true'], { stdout: 'loud' as 'pipe' }, 'stdout'],
    [['/bin/true'], { rootfs: 'relative/dir' }, 'rootfs'],
    [['/bin/true'], { tmpSize: 'lots' }, 'tmpSize'],
    [['/bin/true'], { signal: {} as AbortSignal }, 'signal'],
    [['/bin/true'], { rlimits: { nofile: -1 } }, 'rlimits.nofile'],
    [['/bin/true'], { rlimits: { files: 3 } as never }, 'rlimits.files'],
    [['/bin/true'], { rlimits: { stack: [10, 5] } }, 'rlimits.stack'],
    [['/bin/true'], { idMap: 'many' as 'multi' }, 'idMap'],
  ];
  for (const [argv, opts, field] of bad) {
    it(`rejects bad ${field}`, async () => {
      await assert.rejects(run(argv as string[], opts), (e: unknown) => e instanceof OptionsError && e.field === field && e.message.startsWith(field));
    });
  }
});

guardLeaks();
