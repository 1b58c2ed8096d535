// Id maps: the single-id default and multi-id maps through newuidmap.
import assert from 'node:assert/strict';
import { chownSync, chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { multiMap, planMultiMap, subIdRanges } from '../src/launch/idmap.js';
import { run } from '../src/index.js';
import { guardLeaks, isRoot } from './helpers.js';

describe('id maps', () => {
  it("the single-id map makes the caller's ids the sandbox's", async () => {
    const r = await run(['/bin/sh', '-c', 'cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g'], { uid: 4242, gid: 4343 });
    const lines = r.stdout.toString().trim().split('\n').map((l) => l.trim().split(/\s+/).join(' '));
    assert.deepEqual(lines, [`4242 ${process.getuid!()} 1`, `4343 ${process.getgid!()} 1`, '4242', '4343']);
  });

  it('files the sandbox writes to a read-write mount belong to the caller', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'brig-owner-'));
    try {
      chmodSync(dir, 0o777);
      const r = await run(['/bin/sh', '-c', 'echo x > /out/f'], { mounts: [{ source: dir, target: '/out', readonly: false }] });
      assert.equal(r.status, 'ok', r.stderr.toString());
      assert.equal(statSync(join(dir, 'f')).uid, process.getuid!());
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads subordinate ranges by user name or number', () => {
    const dir = mkdtempSync(join(tmpdir(), 'brig-subid-'));
    try {
      const f = join(dir, 'subuid');
      writeFileSync(f, 'alice:100000:65536\n1234:200000:1000\nbob:x:y\nalice:300000:10\n');
      assert.deepEqual(subIdRanges(f, 'alice', 1), [
        { start: 100000, count: 65536 },
        { start: 300000, count: 10 },
      ]);
      assert.deepEqual(subIdRanges(f, 'carol', 1234), [{ start: 200000, count: 1000 }]);
      assert.deepEqual(subIdRanges(join(dir, 'missing'), 'alice', 1), []);
      const e = planMultiMap(1000, 1000, { subuid: join(dir, 'missing'), subgid: join(dir, 'missing') });
      assert.ok('error' in e);
      assert.equal(e.error.step, 'id-map');
      assert.match(e.error.message, /newuidmap|no subordinate uids/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('builds maps with the sandbox id mapped to the caller and the rest from the range', () => {
    assert.deepEqual(multiMap(1000, 1001, { start: 100000, count: 65536 }), [
      [0, 100000, 1000],
      [1000, 1001, 1],
      [1001, 101000, 64536],
    ]);
    assert.deepEqual(multiMap(0, 1001, { start: 100000, count: 65536 }), [
      [0, 1001, 1],
      [1, 100000, 65536],
    ]);
    assert.deepEqual(multiMap(70000, 1001, { start: 100000, count: 65536 }), [
      [0, 100000, 65536],
      [70000, 1001, 1],
    ]);
  });

  const plan = planMultiMap(1000, 1000);
  const why = 'error' in plan ? `skipped: ${plan.error.message}` : false;
  it('a multi-id map gives the sandbox every id of the range', { skip: why }, async () => {
    if ('error' in plan) return;
    const r = await run(['/bin/sh', '-c', 'cat /proc/self/uid_map /proc/self/gid_map; id -u'], { idMap: 'multi' });
    assert.equal(r.status, 'ok', r.error?.message ?? r.stderr.toString());
    const lines = r.stdout.toString().trim().split('\n').map((l) => l.trim().split(/\s+/).map(Number));
    assert.deepEqual(lines.slice(0, plan.uid.length), plan.uid);
    assert.deepEqual(lines.slice(plan.uid.length, plan.uid.length + plan.gid.length), plan.gid);
    assert.deepEqual(lines.at(-1), [1000]);
  });

  it('files owned by subordinate ids show their owners inside', { skip: why || (!isRoot && 'skipped: only root can chown a host file into the range') }, async () => {
    if ('error' in plan) return;
    const dir = mkdtempSync(join(tmpdir(), 'brig-multi-'));
    try {
      const [inside, outside] = plan.uid[0]; // ids 0.. come from the range
      writeFileSync(join(dir, 'f'), '');
      chownSync(join(dir, 'f'), outside + 5, plan.gid[0][1] + 5);
      chmodSync(dir, 0o755);
      const r = await run(['/bin/sh', '-c', 'stat -c "%u %g" /d/f'], { idMap: 'multi', mounts: [{ source: dir, target: '/d' }] });
      assert.equal(r.stdout.toString(), `${inside + 5} ${plan.gid[0][0] + 5}\n`);
      const single = await run(['/bin/sh', '-c', 'stat -c "%u %g" /d/f'], { mounts: [{ source: dir, target: '/d' }] });
      assert.equal(single.stdout.toString(), '65534 65534\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

guardLeaks();
