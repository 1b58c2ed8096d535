// A real redis-server for one test: a free loopback port, its own temp dir,
// stopped by pid (and its dir removed) after. No mock of Redis anywhere.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';

export interface RedisServer {
  url: string;
  port: number;
  dir: string;
  pid(): number | undefined;
  /** Stops it (SIGTERM, by pid; an appendonly server writes its file first). */
  stop(): Promise<void>;
  /** Starts it again on the same port and dir. */
  start(): Promise<void>;
  /** Stops it and removes its dir. */
  remove(): Promise<void>;
}

import { freePort } from './helpers.js';

export { freePort };

export async function startRedis(opts: { appendonly?: boolean } = {}): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'brig-test-redis-'));
  let child: ChildProcess | undefined;
  const start = async () => {
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', opts.appendonly ? 'yes' : 'no', '--appendfsync', 'always', '--loglevel', 'warning'];
    const c = spawn('/usr/bin/redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = c;
    let out = '';
    c.stdout!.on('data', (d) => (out += d));
    c.stderr!.on('data', (d) => (out += d));
    // Ready when it accepts a connection.
    const deadline = Date.now() + 10000;
    for (;;) {
      if (c.exitCode !== null) throw new Error(`redis-server exited ${c.exitCode}: ${out}`);
      const ok = await new Promise<boolean>((resolve) => {
        const net = require_net();
        const s = net.connect(port, '127.0.0.1');
        s.once('connect', () => (s.destroy(), resolve(true)));
        s.once('error', () => resolve(false));
      });
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`redis-server did not listen on ${port}: ${out}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const stop = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    const gone = once(c, 'exit');
    process.kill(c.pid!, 'SIGTERM');
    await gone;
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    pid: () => child?.pid,
    stop,
    start,
    async remove() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

import * as netModule from 'node:net';
function require_net(): typeof netModule {
  return netModule;
}
