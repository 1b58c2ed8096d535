// Many runs leave nothing behind: no processes or zombies, no fds in the
// Node process, no mounts.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { native } from '../src/native.js';
import { run } from '../src/index.js';
import { leaksSince, snapshot } from './helpers.js';

describe('nothing leaks', () => {
  // Warm up: the first run opens the one /dev/null fd all runs share.
  before(() => run(['/bin/true']));

  it('200 sequential runs', async () => {
    const before = snapshot();
    for (let i = 0; i < 200; i++) {
      const r = await run(['/bin/sh', '-c', 'echo $1; cat >/dev/null', 'sh', String(i)], { stdin: 'input' });
      assert.equal(r.status, 'ok');
      assert.equal(r.stdout.toString(), `${i}\n`);
    }
    const leaks = await leaksSince(before);
    assert.deepEqual(leaks.processes, [], 'processes left');
    assert.deepEqual(leaks.fds, [], 'fds left');
    assert.equal(leaks.mountsChanged, false);
    assert.equal(native.live(), 0);
  });

  it('50 concurrent runs, some failing and some killed', async () => {
    const before = snapshot();
    const runs = Array.from({ length: 50 }, (_, i) => {
      if (i % 10 === 3) return run(['no-such-command']);
      if (i % 10 === 7) return run(['/bin/sleep', '30'], { wallTimeLimitMs: 200 });
      return run(['/bin/sh', '-c', 'echo $1', 'sh', String(i)]);
    });
    const results = await Promise.all(runs);
    results.forEach((r, i) => {
      if (i % 10 === 3) assert.equal(r.status, 'setup-error');
      else if (i % 10 === 7) assert.equal(r.status, 'wall-time-limit');
      else assert.equal(r.stdout.toString(), `${i}\n`);
    });
    const leaks = await leaksSince(before);
    assert.deepEqual(leaks.processes, [], 'processes left');
    assert.deepEqual(leaks.fds, [], 'fds left');
    assert.equal(leaks.mountsChanged, false);
    assert.equal(native.live(), 0);
  });
});
