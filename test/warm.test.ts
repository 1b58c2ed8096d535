// Warm namespaces (src/launch/warm.ts): user and network namespace pairs made ahead
// of launches. They must make launches no less isolated: every sandbox still
// gets a user and a network namespace of its own, fresh, that nothing else
// is in, mapped as before; and what is waiting is given back.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { describe, it } from 'node:test';
import { run, spawn } from '../src/index.js';
import { dropWarm, setWarm, warmFds } from '../src/launch/warm.js';
import { guardLeaks } from './helpers.js';

const NS = 'readlink /proc/self/ns/user /proc/self/ns/net; cat /proc/self/uid_map /proc/self/gid_map; id -u; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " "; wc -l < /proc/net/if_inet6';

describe('warm namespaces', () => {
  it('runs launched into pairs made ahead each have their own user and network namespaces, mapped and set up as without', async () => {
    const host = [readlinkSync('/proc/self/ns/user'), readlinkSync('/proc/self/ns/net')];
    // Cold, the reference: what a run that makes its own namespaces sees.
    const cold = spawnSync(process.execPath, ['--input-type=module', '-e', `import { run } from ${JSON.stringify(new URL('../src/index.js', import.meta.url).href)}; const r = await run(['/bin/sh', '-c', ${JSON.stringify(NS)}], { timings: true }); process.stdout.write(JSON.stringify({ out: r.stdout.toString(), warm: r.timings.warm }));`], { encoding: 'utf8', env: { ...process.env, BRIG_NO_WARM: '1' } });
    assert.equal(cold.status, 0, cold.stderr);
    const reference = JSON.parse(cold.stdout) as { out: string; warm: boolean };
    assert.equal(reference.warm, false, 'BRIG_NO_WARM=1 makes every namespace at launch');
    const tail = (out: string) => out.split('\n').slice(2).join('\n');

    // Four at a time, a few rounds: pairs are made for as many launches as
    // came without one. (By default a launch takes none while a sandbox runs
    // on every spare CPU: allowed here, to have four alive at once.)
    let last: Awaited<ReturnType<typeof run>>[] = [];
    setWarm(true, 8);
    try {
      for (let round = 0; round < 4; round++) {
        last = await Promise.all([0, 1, 2, 3].map(() => run(['/bin/sh', '-c', `${NS}; sleep 0.2`], { timings: true })));
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      setWarm(true);
    }
    assert.ok(last.every((r) => r.timings!.warm), `the last round all warm: ${last.map((r) => r.timings!.warm).join(' ')}`);
    const seen = new Set<string>();
    for (const r of last) {
      assert.equal(r.status, 'ok', r.stderr.toString());
      const [user, net] = r.stdout.toString().split('\n');
      // Alive at the same time (each sleeps), so distinct inodes are distinct namespaces.
      for (const ns of [user, net]) {
        assert.ok(!host.includes(ns), `${ns} is the host's`);
        assert.ok(!seen.has(ns), `${ns} shared by two sandboxes`);
        seen.add(ns);
      }
      // The same maps, uid and loopback (down, no addresses) as a cold launch.
      assert.equal(tail(r.stdout.toString()), tail(reference.out));
    }
  });

  it("a pair's network namespace is the sandbox's own: network: 'loopback' brings its lo up", async () => {
    for (let i = 0; i < 3; i++) await run(['/bin/true'], { network: 'loopback' });
    const r = await run(['/bin/sh', '-c', 'grep -c " lo$" /proc/net/if_inet6'], { network: 'loopback', timings: true });
    assert.equal(r.timings!.warm, true);
    assert.equal(r.stdout.toString(), '1\n');
    const down = await run(['/bin/sh', '-c', 'wc -l < /proc/net/if_inet6'], { timings: true });
    assert.equal(down.stdout.toString(), '0\n');
  });

  it('while sandboxes run on every spare CPU, a launch takes no pair: making them ahead would only add work', async () => {
    for (let i = 0; i < 3; i++) await run(['/bin/true']);
    const busy = Array.from({ length: availableParallelism() }, () => spawn(['/bin/sleep', '0.3']));
    try {
      const r = await run(['/bin/true'], { timings: true });
      assert.equal(r.timings!.warm, false);
    } finally {
      await Promise.all(busy.map((b) => b.wait()));
    }
    const r = await run(['/bin/true'], { timings: true });
    assert.equal(r.timings!.warm, true, 'with nothing else running, the pair waiting is taken');
  });

  it('the pairs waiting are fds of namespaces, given back when asked and after launches stop', async () => {
    await run(['/bin/true']);
    await run(['/bin/true']);
    await new Promise((r) => setTimeout(r, 50));
    const fds = warmFds();
    assert.ok(fds.length >= 2, `pairs waiting: ${fds.join(' ')}`);
    const kinds = fds.map((fd) => readlinkSync(`/proc/self/fd/${fd}`).split(':')[0]).sort();
    assert.deepEqual([...new Set(kinds)], ['net', 'user']);
    dropWarm();
    assert.deepEqual(warmFds(), []);
    for (const fd of fds) assert.throws(() => readlinkSync(`/proc/self/fd/${fd}`), { code: 'ENOENT' });

    // Idle: a process that stopped launching holds nothing after 2 s.
    await run(['/bin/true']);
    await run(['/bin/true']);
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(warmFds().length >= 2);
    await new Promise((r) => setTimeout(r, 4100));
    assert.deepEqual(warmFds(), []);
  });
});

guardLeaks();
