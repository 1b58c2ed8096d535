// Listen mode (nsjail's -Ml): a sandbox per connection, caps, refusals,
// the sandbox killed when its peer goes away. Loopback only.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { describe, it } from 'node:test';
import { listen, OptionsError } from '../src/index.js';
import { guardLeaks } from './helpers.js';

function exchange(port: number, send: string, holdMs = 0): Promise<{ got: string; refused: boolean }> {
  return new Promise((resolve) => {
    const c = connect(port, '127.0.0.1');
    let got = '';
    c.on('connect', () => {
      c.write(send);
      if (holdMs === 0) c.end();
      else setTimeout(() => c.end(), holdMs);
    });
    c.on('data', (d) => (got += d));
    c.on('error', () => {});
    c.on('close', () => resolve({ got, refused: got === '' }));
  });
}

describe('listen', { timeout: 120_000 }, () => {
  it('serves 20 concurrent clients with maxConns 8: 8 served, the rest refused and reported, nothing left behind', async () => {
    // Each sandbox holds its connection until its client closes: the first 8 are all live at once.
    const l = await listen(['sh', '-c', 'read line; echo "served $line"; cat >/dev/null'], { port: 0, maxConns: 8, wallTimeLimitMs: 60000 });
    const refused: string[] = [];
    l.on('refused', (e: { reason: string }) => refused.push(e.reason));
    let started = 0;
    l.on('connection', () => started++);
    const { port } = l.address();
    try {
      const first = Array.from({ length: 8 }, (_, i) => exchange(port, `c${i}\n`, 4000));
      // Until all 8 sandboxes run, the rest wait.
      for (let i = 0; i < 200 && l.active < 8; i++) await new Promise((r) => setTimeout(r, 25));
      assert.equal(l.active, 8);
      const rest = await Promise.all(Array.from({ length: 12 }, (_, i) => exchange(port, `r${i}\n`)));
      assert.equal(rest.filter((r) => r.refused).length, 12);
      const served = await Promise.all(first);
      assert.deepEqual(
        served.map((r) => r.got),
        Array.from({ length: 8 }, (_, i) => `served c${i}\n`),
      );
      assert.equal(started, 8);
      assert.equal(refused.length, 12);
      assert.match(refused[0], /max-conns 8 reached/);
    } finally {
      await l.close();
    }
    assert.equal(l.active, 0);
  });

  it('kills the sandbox when its peer goes away, and caps per client address', async () => {
    const l = await listen(['sleep', '60'], { port: 0, maxConnsPerIp: 1 });
    const exits: string[] = [];
    l.on('exit', (e: { result: { status: string; signal: string | null } }) => exits.push(`${e.result.status}/${e.result.signal}`));
    const refused: string[] = [];
    l.on('refused', (e: { reason: string }) => refused.push(e.reason));
    try {
      const c = connect(l.address().port, '127.0.0.1');
      await new Promise((r) => c.once('connect', r));
      for (let i = 0; i < 200 && l.active < 1; i++) await new Promise((r) => setTimeout(r, 25));
      assert.equal(l.active, 1);
      const second = await exchange(l.address().port, 'x');
      assert.equal(second.refused, true);
      assert.match(refused[0], /max-conns-per-ip 1 reached for 127\.0\.0\.1/);
      c.resetAndDestroy();
      for (let i = 0; i < 200 && l.active > 0; i++) await new Promise((r) => setTimeout(r, 25));
      assert.equal(l.active, 0);
      assert.deepEqual(exits, ['signaled/SIGKILL']);
    } finally {
      await l.close();
    }
  });

  it('checks its options once, up front', async () => {
    await assert.rejects(listen(['true'], { port: -1 }), (e: OptionsError) => e.field === 'port');
    await assert.rejects(listen(['true'], { port: 0, maxConns: 0 }), (e: OptionsError) => e.field === 'maxConns');
    await assert.rejects(listen(['true'], { port: 0, memory: 'lots' }), (e: OptionsError) => e.field === 'memory');
  });
});

guardLeaks();
