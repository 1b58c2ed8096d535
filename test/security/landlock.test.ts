// Landlock, where the kernel has it: writes only beneath the writable mounts
// the plan made, whatever the mounts themselves would allow. Each case is
// checked from inside the sandbox, with Landlock on (the default) and off,
// so the test shows what Landlock adds and that it breaks nothing ordinary.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createPool, run, type SandboxOptions } from '../../src/index.js';
import { native } from '../../src/native.js';
import { guardLeaks } from '../helpers.js';

const abi = native.landlockAbi();
const skip = abi < 1 && `skipped: no Landlock here (${abi})`;
const work = mkdtempSync(join(tmpdir(), 'brig-landlock-'));
chmodSync(work, 0o755);
after(() => rmSync(work, { recursive: true, force: true }));

const sh = async (script: string, o: SandboxOptions = {}) => {
  const r = await run(['/bin/sh', '-c', `exec 2>&1\n${script}`], o);
  assert.equal(r.status === 'setup-error' ? r.error?.message : 'started', 'started');
  return r.stdout.toString().replace(/^\/bin\/sh: \d+: /gm, '');
};

describe('Landlock', { skip }, () => {
  it("a writable filesystem the plan did not make writable (/proc's per-process files) refuses writes", async () => {
    const script = 'echo 500 > /proc/self/oom_score_adj && echo wrote || echo refused';
    assert.equal(await sh(script), 'cannot create /proc/self/oom_score_adj: Permission denied\nrefused\n');
    // Without Landlock the mount flags alone let it through: this is what Landlock adds.
    assert.equal(await sh(script, { landlock: false }), 'wrote\n');
  });

  it("a { file } stdin cannot be reopened for writing through /proc/self/fd/0: the caller's input stays as it was", async () => {
    const input = join(work, 'input.txt');
    const script = 'echo pwned > /proc/self/fd/0 && echo wrote || echo refused; cat';
    writeFileSync(input, 'the tests\n');
    assert.equal(await sh(script, { stdin: { file: input } }), 'cannot create /proc/self/fd/0: Permission denied\nrefused\nthe tests\n');
    assert.equal(readFileSync(input, 'utf8'), 'the tests\n');
    // The hole it closes: the input file is the caller's, and so the sandbox's user's.
    writeFileSync(input, 'the tests\n');
    await sh(script, { stdin: { file: input }, landlock: false });
    assert.equal(readFileSync(input, 'utf8'), 'pwned\n');
  });

  it('what must stay writable is: /tmp, /dev/shm, tmpfs and read-write mounts, /dev nodes, ptys, renames, truncation', async () => {
    const rw = mkdtempSync(join(work, 'rw-'));
    chmodSync(rw, 0o777);
    const script = [
      'set -e',
      'echo a > /tmp/f; : > /tmp/f; mkdir /tmp/d; mv /tmp/f /tmp/d/g; ln -s g /tmp/d/l; mkfifo /tmp/p; rm -r /tmp/d /tmp/p',
      'echo b > /dev/shm/f; rm /dev/shm/f',
      'echo c > /scratch/f; mv /scratch/f /scratch/g',
      'echo d > /rw/f; mkdir /rw/sub; mv /rw/f /rw/sub/f',
      'echo e > /dev/null; : > /dev/null; head -c 1 /dev/zero > /dev/null',
      'exec 3<>/dev/ptmx',
      'echo to-stdout > /dev/stdout; echo to-stderr > /dev/stderr',
      'echo done',
    ].join('\n');
    assert.equal(await sh(script, { tmpfs: [{ target: '/scratch' }], mounts: [{ source: rw, target: '/rw', readonly: false }] }), 'to-stdout\nto-stderr\ndone\n');
    assert.equal(readFileSync(join(rw, 'sub/f'), 'utf8'), 'd\n');
  });

  it("stdout and stderr that are the caller's file or /dev/null can be reopened by path (/dev/stdout)", async () => {
    const out = join(work, 'out.txt');
    const r = await run(['/bin/sh', '-c', 'echo via-path > /dev/stdout; echo rc=$? >&2'], { stdout: { file: out } });
    assert.equal(r.stderr.toString(), 'rc=0\n');
    assert.equal(readFileSync(out, 'utf8'), 'via-path\n');
    const i = await run(['/bin/sh', '-c', 'echo x > /dev/stdout; echo rc=$? >&2'], { stdout: 'ignore' });
    assert.equal(i.stderr.toString(), 'rc=0\n');
  });

  it('a pooled sandbox is restricted as a fresh one is', async () => {
    const pool = createPool({ size: 1 });
    try {
      await new Promise((r) => setTimeout(r, 200));
      const r = await pool.run(['/bin/sh', '-c', 'echo 500 > /proc/self/oom_score_adj && echo wrote || echo refused; echo ok > /tmp/f && cat /tmp/f']);
      assert.equal(r.stdout.toString(), 'refused\nok\n');
      assert.ok(pool.stats.taken >= 1, 'the run used a pooled sandbox');
    } finally {
      await pool.close();
    }
  });

  it('from ABI 6, signals out of the sandbox are scoped: even its init cannot be signalled', { skip: abi < 6 && `skipped: Landlock ABI ${abi} has no scoping` }, async () => {
    assert.match(await sh('kill -0 1 && echo reached || echo refused'), /^kill: Operation not permitted\n+refused\n$/);
    assert.equal(await sh('kill -0 1 && echo reached', { landlock: false }), 'reached\n');
  });
});

guardLeaks();
