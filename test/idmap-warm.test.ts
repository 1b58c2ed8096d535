// Multi-id maps made ahead (src/launch/warm.ts): newuidmap/newgidmap map a
// fresh user and network namespace pair off the launch path, and a
// multi-map launch joins it. The sandbox must see the whole map, own the
// ids in it, never share a pair; failing helpers must neither hang nor leak.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { describe, it } from 'node:test';
import { createPool, run } from '../src/index.js';
import { planMultiMap, type MultiMapPlan } from '../src/launch/idmap.js';
import { resolveOptions } from '../src/launch/options.js';
import { dropWarm, refillWarmMulti, setWarm, takeWarmMulti, warmFds, warmSettled } from '../src/launch/warm.js';
import { guardLeaks, isRoot } from './helpers.js';

const MAPS = 'readlink /proc/self/ns/user; cat /proc/self/uid_map /proc/self/gid_map';
const numbers = (text: string) =>
  text
    .trim()
    .split('\n')
    .map((l) => l.trim().split(/\s+/).map(Number));
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('multi-id maps on warm pairs', () => {
  const plan = planMultiMap(1000, 1000);
  const why = 'error' in plan ? `skipped: ${plan.error.message}` : false;

  it('a multi-map run after a pause takes a pair the helpers mapped ahead, and has the whole map inside', { skip: why }, async () => {
    if ('error' in plan) return;
    await run(['/bin/true'], { idMap: 'multi' }); // asks for a pair: made after the run
    await warmSettled();
    const r = await run(['/bin/sh', '-c', MAPS], { idMap: 'multi', timings: true });
    assert.equal(r.status, 'ok', r.error?.message ?? r.stderr.toString());
    assert.equal(r.timings!.warm, true, 'the pair made ahead was taken');
    const lines = numbers(r.stdout.toString()).slice(1);
    assert.deepEqual(lines, [...plan.uid, ...plan.gid]);
  });

  // The sandbox holds no capabilities, so chown to another id is refused
  // either way; what the map changes is how: with the id mapped the kernel
  // answers EPERM, as on a host or in Docker, where a single-id map gives
  // EINVAL (the id does not exist there), which programs do not expect.
  const CHOWN = 'touch /tmp/f && chown 5:7 /tmp/f; chown 1000 /tmp/f && stat -c "%u" /tmp/f';
  it('through a warm pair, chown to another id of the range is refused as on a host (EPERM, not EINVAL); to its own id it works', { skip: why }, async () => {
    await run(['/bin/true'], { idMap: 'multi' });
    await warmSettled();
    const r = await run(['/bin/sh', '-c', CHOWN], { idMap: 'multi', timings: true });
    assert.equal(r.status, 'ok', r.error?.message ?? r.stderr.toString());
    assert.equal(r.timings!.warm, true);
    assert.match(r.stderr.toString(), /chown: changing ownership of '\/tmp\/f': Operation not permitted/);
    assert.equal(r.stdout.toString(), '1000\n');
    const single = await run(['/bin/sh', '-c', CHOWN]);
    assert.match(single.stderr.toString(), /Invalid argument/);
  });

  it('runs alive at once never share a pair: each has a user namespace of its own', { skip: why }, async () => {
    setWarm(true, 8);
    try {
      let last: Awaited<ReturnType<typeof run>>[] = [];
      for (let round = 0; round < 3; round++) {
        last = await Promise.all([0, 1, 2].map(() => run(['/bin/sh', '-c', `${MAPS}; sleep 0.2`], { idMap: 'multi', timings: true })));
        await warmSettled();
      }
      assert.ok(last.some((r) => r.timings!.warm), `some runs of the last round took pairs: ${last.map((r) => r.timings!.warm).join(' ')}`);
      const host = readlinkSync('/proc/self/ns/user');
      const seen = new Set<string>();
      for (const r of last) {
        assert.equal(r.status, 'ok', r.error?.message ?? r.stderr.toString());
        const ns = r.stdout.toString().split('\n')[0];
        assert.notEqual(ns, host);
        assert.ok(!seen.has(ns), `${ns} shared by two sandboxes`);
        seen.add(ns);
      }
    } finally {
      setWarm(true);
    }
  });

  it('failing helpers leave no holder, no fd and no pair, and stop making pairs for that map', { skip: why }, async () => {
    if ('error' in plan) return;
    const bad: MultiMapPlan[] = [
      { ...plan, newuidmap: '/bin/false' }, // a helper that fails
      { ...plan, newgidmap: '/nonexistent/newgidmap' }, // a helper that is not there
      // A range the caller was never granted (root's newuidmap maps any).
      ...(isRoot ? [] : [{ ...plan, uid: [[0, 1_900_000_000, 10]], gid: [[0, 1_900_000_000, 10]] } as MultiMapPlan]),
    ];
    for (const p of bad) {
      assert.equal(takeWarmMulti(p), undefined);
      refillWarmMulti(p);
      await warmSettled();
      assert.equal(takeWarmMulti(p), undefined, 'no pair from failed helpers');
      refillWarmMulti(p);
      await warmSettled();
    }
    dropWarm();
    assert.deepEqual(warmFds(), []);
    // guardLeaks (below) checks that no brig-warm-hold process and no fd is left.
  });

  // A caller no range was granted to (uid 4242 has none here): a multi-map
  // run fails at once with the setup error saying what to ask for, and
  // 'auto' runs with the single id. (Root only: it switches to that uid.)
  it("a caller without a range: 'multi' is the id-map setup error naming /etc/subuid, at once; 'auto' runs single", { skip: !isRoot && 'skipped: only root can become a uid without a range' }, () => {
    const index = JSON.stringify(new URL('../src/index.js', import.meta.url).href);
    const code = `import { run } from ${index}; const r = await run(['/bin/true'], { idMap: 'multi' }); const a = await run(['/bin/sh', '-c', 'wc -l < /proc/self/uid_map'], { idMap: 'auto' }); process.stdout.write(JSON.stringify({ status: r.status, step: r.error?.step, message: r.error?.message, auto: a.status, lines: a.stdout.toString() }));`;
    const c = spawnSync('setpriv', ['--reuid', '4242', '--regid', '4242', '--clear-groups', process.execPath, '--input-type=module', '-e', code], { encoding: 'utf8', timeout: 20000 });
    assert.equal(c.status, 0, c.stderr);
    const out = JSON.parse(c.stdout) as { status: string; step: string; message: string; auto: string; lines: string };
    assert.equal(out.status, 'setup-error');
    assert.equal(out.step, 'id-map');
    assert.match(out.message, /\/etc\/subuid: ENOENT \(no subordinate uids for 4242: ask an admin for a range/);
    assert.equal(out.auto, 'ok');
    assert.equal(out.lines, '1\n');
  });

  it("idMap 'auto' is multi where the helpers and ranges exist, else single; --id-map checks its word", () => {
    const o = resolveOptions(['/bin/true'], { idMap: 'auto' });
    assert.equal(o.idMap, 'error' in plan ? 'single' : 'multi');
    assert.throws(() => resolveOptions(['/bin/true'], { idMap: 'both' as 'auto' }), /idMap: expected 'single', 'multi' or 'auto'/);
  });

  it('a pool makes multi-map sandboxes ahead: the whole map inside', { skip: why }, async () => {
    if ('error' in plan) return;
    const pool = createPool({ size: 1, idMap: 'multi' });
    try {
      for (let i = 0; i < 2; i++) {
        const r = await pool.run(['/bin/sh', '-c', `${MAPS}; ${CHOWN}`]);
        assert.equal(r.status, 'ok', r.error?.message ?? r.stderr.toString());
        const lines = r.stdout.toString().trim().split('\n');
        assert.deepEqual(numbers(lines.slice(1, -1).join('\n')), [...plan.uid, ...plan.gid]);
        assert.equal(lines.at(-1), '1000');
        assert.match(r.stderr.toString(), /Operation not permitted/);
      }
      assert.ok(pool.stats.taken >= 1, `taken from the pool: ${JSON.stringify(pool.stats)}`);
    } finally {
      await pool.close();
    }
  });
});

guardLeaks();
