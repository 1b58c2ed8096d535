// brig serve --redis: the embedded mode's service suites re-run with every
// server queueing on a real redis-server (BullMQ), each suite on its own
// Redis database so two suites' servers never take each other's jobs.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { guardLeaks } from './helpers.js';
import { startRedis, type RedisServer } from './redis-util.js';

const here = dirname(fileURLToPath(import.meta.url));

function runSuite(file: string, redisUrl: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    // A test run of its own (not a subtest of this one): node:test's context variable is not passed on.
    const { NODE_TEST_CONTEXT: _, ...env } = process.env;
    const c = spawn(process.execPath, ['--test', '--test-reporter=tap', join(here, file)], { env: { ...env, BRIG_TEST_REDIS: redisUrl }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (out += d));
    c.on('close', (code) => resolve({ code, out }));
  });
}

describe('the service suites in Redis mode', () => {
  let redis: RedisServer;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis.remove();
  });
  for (const [i, file] of ['server.test.js', 'server-judge0.test.js'].entries()) {
    it(`${file} passes with its servers on BullMQ`, async () => {
      const r = await runSuite(file, `${redis.url}/${i + 1}`);
      const failed = r.out.split('\n').filter((l) => /^\s*not ok /.test(l));
      assert.equal(r.code, 0, `${file} in Redis mode:\n${failed.join('\n')}\n${r.out.slice(-3000)}`);
      assert.match(r.out, /# pass [1-9]/);
    });
  }
});

guardLeaks();
