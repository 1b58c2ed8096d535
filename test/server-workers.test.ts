// brig worker processes on a real redis-server: two workers share 100 jobs
// (both do some), a worker SIGKILLed while it runs jobs loses none (BullMQ's
// stalled check hands them to the other; each submission ends once with the
// right verdict), Redis stopped and restarted under load (503 meanwhile, then
// recovery by itself), a sandbox that cannot start is Internal Error 13, and
// SIGTERM lets a worker finish its running jobs.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { brigBin, guardLeaks } from './helpers.js';
import { freePort, startRedis, type RedisServer } from './redis-util.js';
import { startServer, testRuntimes, type Running } from './server-util.js';

interface WorkerProc {
  child: ChildProcess;
  metrics: string;
  log: () => string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

async function startWorkerProc(redis: string, name: string, extra: string[] = []): Promise<WorkerProc> {
  const port = await freePort();
  const concurrency = extra.includes('--concurrency') ? [] : ['--concurrency', '2'];
  const tmp = mkdtempSync(join(tmpdir(), 'brig-test-worker-'));
  const child = spawn(process.execPath, [brigBin, 'worker', '--redis', redis, '--name', name, ...concurrency, '--metrics', `127.0.0.1:${port}`, '--lock-duration', '1500', ...extra], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, TMPDIR: tmp } });
  let log = '';
  child.stderr!.on('data', (d) => (log += d));
  await new Promise<void>((resolve, reject) => {
    const t = setInterval(() => {
      if (log.includes('worker started')) clearInterval(t), resolve();
      if (child.exitCode !== null) clearInterval(t), reject(new Error(`brig worker exited: ${log}`));
    }, 20);
  });
  return {
    child,
    metrics: `http://127.0.0.1:${port}/metrics`,
    log: () => log,
    async stop(signal = 'SIGTERM') {
      let code = child.exitCode;
      if (child.exitCode === null && child.signalCode === null) {
        const done = once(child, 'close');
        process.kill(child.pid!, signal);
        [code] = (await done) as [number | null];
      }
      rmSync(tmp, { recursive: true, force: true });
      return code;
    },
  };
}

async function jobsDone(w: WorkerProc): Promise<number> {
  const text = await (await fetch(w.metrics)).text();
  return [...text.matchAll(/^brig_worker_jobs_total\{[^}]*\} (\d+)/gm)].reduce((a, m) => a + Number(m[1]), 0);
}

const BASH = 46;

describe('brig worker processes on Redis', () => {
  let redis: RedisServer;
  let s: Running;
  const extra = testRuntimes();
  before(async () => {
    redis = await startRedis({ appendonly: true });
    // The API server only queues: every job runs in a worker process.
    s = await startServer({ redis: redis.url, concurrency: 0, runtimeDirs: [extra.dir], config: { max_queue_size: 500 } });
  });
  after(async () => {
    await s.close();
    await redis.remove();
    extra.remove();
  });

  it('two workers share 100 jobs: every verdict right, both did some', async () => {
    const a = await startWorkerProc(redis.url, 'a');
    const b = await startWorkerProc(redis.url, 'b');
    try {
      const rs = await Promise.all(Array.from({ length: 100 }, (_, i) => s.post('/submissions?wait=true', { language_id: BASH, source_code: `echo job${i}` })));
      rs.forEach((r, i) => {
        assert.equal(r.status, 201, JSON.stringify(r.body));
        assert.equal(r.body.stdout, `job${i}\n`);
        assert.equal(r.body.status.id, 3);
      });
      const [na, nb] = [await jobsDone(a), await jobsDone(b)];
      assert.equal(na + nb, 100);
      assert.ok(na > 0 && nb > 0, `a ran ${na}, b ran ${nb}`);
    } finally {
      assert.equal(await a.stop(), 0);
      assert.equal(await b.stop(), 0);
    }
  });

  it('a worker SIGKILLed mid-job: all 100 still end once, with the right verdicts', async () => {
    const a = await startWorkerProc(redis.url, 'doomed', ['--concurrency', '10']);
    const b = await startWorkerProc(redis.url, 'survivor');
    const verdicts: number[] = [];
    try {
      // Even jobs are accepted, odd ones exit 3 (NZEC, 11); each sleeps so the killed worker is mid-job.
      const tokens: string[] = [];
      for (let i = 0; i < 100; i++) {
        const r = await s.post('/submissions', { language_id: BASH, source_code: `sleep 0.2; echo job${i}; exit ${i % 2 ? 3 : 0}` });
        assert.equal(r.status, 201);
        tokens.push(r.body.token);
      }
      // Kill the worker once it is running jobs.
      for (let t = 0; t < 200; t++) {
        const text = await (await fetch(a.metrics)).text();
        if (/^brig_worker_active [1-9]/m.test(text)) break;
        await new Promise((r) => setTimeout(r, 25));
      }
      await a.stop('SIGKILL');
      const deadline = Date.now() + 90000;
      for (;;) {
        const r = await s.get(`/submissions/batch?tokens=${tokens.join(',')}&fields=token,stdout,status_id`);
        const all = r.body.submissions as { stdout: string; status_id: number }[];
        if (all.every((x) => x.status_id > 2)) {
          all.forEach((x, i) => {
            assert.equal(x.stdout, `job${i}\n`, `job ${i}`);
            assert.equal(x.status_id, i % 2 ? 11 : 3, `job ${i}`);
            verdicts.push(x.status_id);
          });
          break;
        }
        assert.ok(Date.now() < deadline, `unfinished: ${all.filter((x) => x.status_id <= 2).length}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      // Exactly once: the queue completed each job once (none failed, none twice).
      const m = await (await fetch(b.metrics)).text();
      assert.doesNotMatch(m, /^brig_worker_jobs_failed_total [1-9]/m);
      assert.equal(verdicts.length, 100);
    } finally {
      await a.stop('SIGKILL');
      assert.equal(await b.stop(), 0);
    }
  });

  it('a sandbox that cannot start: Internal Error 13 with the reason, once (no retry loop)', async () => {
    const a = await startWorkerProc(redis.url, 'a', ['--runtimes', extra.dir]);
    try {
      const r = await s.post('/submissions?wait=true&fields=*', { language_id: 9001, source_code: 'x' });
      assert.equal(r.status, 201);
      assert.equal(r.body.status.id, 13);
      assert.match(r.body.message, /nonexistent|ENOENT/);
      assert.equal(await jobsDone(a), 1);
    } finally {
      assert.equal(await a.stop(), 0);
    }
  });

  it('SIGTERM: running jobs finish and are answered, exit 0', async () => {
    const a = await startWorkerProc(redis.url, 'a');
    const r = s.post('/api/v2/execute', { language: 'bash', version: '*', files: [{ content: 'sleep 0.8; echo finished' }] });
    // The worker must be running the job when it is told to stop (a loaded machine may take seconds to start it).
    for (let t = 0; ; t++) {
      if (/^brig_worker_active [1-9]/m.test(await (await fetch(a.metrics)).text())) break;
      assert.ok(t < 2400, 'the worker never started the job');
      await new Promise((r) => setTimeout(r, 25));
    }
    assert.equal(await a.stop('SIGTERM'), 0);
    const done = await r;
    assert.equal(done.status, 200);
    assert.equal(done.body.run.stdout, 'finished\n');
    assert.match(a.log(), /stopping: finishing running jobs/);
  });

  it('Redis stopped and restarted under load: 503 meanwhile, queued jobs kept (appendonly), recovery by itself', async () => {
    const a = await startWorkerProc(redis.url, 'a');
    try {
      const first = await Promise.all(Array.from({ length: 20 }, (_, i) => s.post('/submissions', { language_id: BASH, source_code: `sleep 0.3; echo before${i}` })));
      const tokens = first.map((r) => r.body.token as string);
      await redis.stop();
      const t0 = Date.now();
      const down = await s.post('/submissions', { language_id: BASH, source_code: 'echo x' });
      assert.equal(down.status, 503);
      assert.match(down.body.error, /Redis/);
      assert.ok(Date.now() - t0 < 3000, 'answered quickly, not a hang');
      await redis.start();
      // Recovery by itself: new jobs are taken again, and the queued ones all finish.
      let ok;
      for (let t = 0; t < 100; t++) {
        ok = await s.post('/submissions?wait=true', { language_id: BASH, source_code: 'echo after' });
        if (ok.status === 201) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(ok!.status, 201);
      assert.equal(ok!.body.stdout, 'after\n');
      const deadline = Date.now() + 60000;
      for (;;) {
        const r = await s.get(`/submissions/batch?tokens=${tokens.join(',')}&fields=stdout,status_id,message`);
        const all = r.body.submissions as { stdout: string; status_id: number; message: string }[];
        if (all.every((x) => x.status_id > 2)) {
          all.forEach((x, i) => assert.equal(x.stdout, `before${i}\n`, JSON.stringify(x)));
          break;
        }
        assert.ok(Date.now() < deadline, 'queued jobs did not finish after the restart');
        await new Promise((r) => setTimeout(r, 200));
      }
    } finally {
      assert.equal(await a.stop(), 0);
    }
  });
});



describe('Judge0 submissions across API servers (--redis)', () => {
  it('GET /submissions/:token on another server: the record is in Redis, not in the server that took it', async () => {
    const redis = await startRedis();
    // a runs jobs; b only queues and answers.
    const a = await startServer({ redis: redis.url, concurrency: 1 });
    const b = await startServer({ redis: redis.url, concurrency: 0 });
    try {
      const r = await a.post('/submissions', { language_id: BASH, source_code: 'echo "$(cat)" twice; echo oops >&2', stdin: 'said', expected_output: 'said twice' });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      const token = r.body.token as string;
      // Found at once on the other server (In Queue, Processing or done), then done there.
      let got;
      for (let t = 0; t < 300; t++) {
        got = await b.get(`/submissions/${token}?fields=token,status,stdout,stderr,language_id,stdin,time,memory,exit_code`);
        assert.equal(got.status, 200, JSON.stringify(got.body));
        if (got.body.status.id > 2) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.deepEqual(got!.body.status, { id: 3, description: 'Accepted' });
      assert.equal(got!.body.token, token);
      assert.equal(got!.body.stdout, 'said twice\n');
      assert.equal(got!.body.stderr, 'oops\n');
      assert.equal(got!.body.stdin, 'said');
      assert.equal(got!.body.language_id, BASH);
      assert.equal(got!.body.exit_code, 0);
      assert.ok(Number(got!.body.time) >= 0 && got!.body.memory > 0);
      // base64 from the stored bytes; batch GET on the other server too; an unknown token is 404 everywhere.
      assert.equal((await b.get(`/submissions/${token}?base64_encoded=true&fields=stdout`)).body.stdout, Buffer.from('said twice\n').toString('base64'));
      const batch = await b.get(`/submissions/batch?tokens=${token},nope&fields=token,status_id`);
      assert.deepEqual(batch.body.submissions, [{ token, status_id: 3 }, null]);
      assert.equal((await b.get('/submissions/0b1c9a1e-0000-4000-8000-000000000000')).status, 404);
      // wait=true on the queue-only server: another server's worker ran it, the answer is whole.
      const w = await b.post('/submissions?wait=true', { language_id: BASH, source_code: 'echo waited' });
      assert.equal(w.body.stdout, 'waited\n');
      assert.equal((await a.get(`/submissions/${w.body.token}?fields=stdout`)).body.stdout, 'waited\n');
    } finally {
      await a.close();
      await b.close();
      await redis.remove();
    }
  });

  it('the server that took a submission dies before its job ends: another server answers the token with the result', async () => {
    const redis = await startRedis();
    const port = await freePort();
    const tmp = mkdtempSync(join(tmpdir(), 'brig-test-serve-'));
    // a: a brig serve process that only queues, killed once it has handed out the token.
    const a = spawn(process.execPath, [brigBin, 'serve', '--listen', `127.0.0.1:${port}`, '--redis', redis.url, '--concurrency', '0', '--quiet'], { stdio: 'ignore', env: { ...process.env, TMPDIR: tmp } });
    const b = await startServer({ redis: redis.url, concurrency: 0 });
    let runner: Running | undefined;
    try {
      for (let t = 0; ; t++) {
        const up = await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false);
        if (up) break;
        assert.ok(t < 400 && a.exitCode === null, 'brig serve did not come up');
        await new Promise((r) => setTimeout(r, 50));
      }
      const r = await fetch(`http://127.0.0.1:${port}/submissions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ language_id: BASH, source_code: 'echo orphan' }) });
      assert.equal(r.status, 201);
      const { token } = (await r.json()) as { token: string };
      const gone = once(a, 'exit');
      process.kill(a.pid!, 'SIGKILL');
      await gone;
      assert.equal((await b.get(`/submissions/${token}?fields=status_id`)).body.status_id, 1);
      // Now a worker runs the job; its completion has no listener left, yet b answers it.
      runner = await startServer({ redis: redis.url, concurrency: 1 });
      let got;
      for (let t = 0; t < 400; t++) {
        got = await b.get(`/submissions/${token}?fields=status_id,stdout,exit_code`);
        if (got.body.status_id > 2) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.deepEqual(got!.body, { status_id: 3, stdout: 'orphan\n', exit_code: 0 });
    } finally {
      if (a.exitCode === null && a.signalCode === null) process.kill(a.pid!, 'SIGKILL');
      await runner?.close();
      await b.close();
      await redis.remove();
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('max_queue_size holds across servers: admission is one atomic check in Redis', async () => {
    const redis = await startRedis();
    // Two servers that only queue: without a shared check each would take 5.
    const config = { max_queue_size: 5 };
    const a = await startServer({ redis: redis.url, concurrency: 0, config });
    const b = await startServer({ redis: redis.url, concurrency: 0, config });
    let drain: Running | undefined;
    try {
      const rs = await Promise.all(Array.from({ length: 24 }, (_, i) => (i % 2 ? a : b).post('/submissions', { language_id: BASH, source_code: `echo q${i}` })));
      const codes = rs.map((r) => r.status);
      assert.equal(codes.filter((c) => c === 201).length, 5, `accepted: ${codes.join(',')}`);
      assert.equal(codes.filter((c) => c === 503).length, 19);
      const refused = rs.find((r) => r.status === 503)!;
      assert.match(refused.body.error, /queue is full/);
      assert.equal(refused.headers.get('retry-after'), '1');
      // A worker drains the five; every accepted token ends Accepted, on either server.
      drain = await startServer({ redis: redis.url, concurrency: 2 });
      const tokens = rs.filter((r) => r.status === 201).map((r) => r.body.token as string);
      for (let t = 0; ; t++) {
        const all = (await a.get(`/submissions/batch?tokens=${tokens.join(',')}&fields=status_id,stdout`)).body.submissions as { status_id: number; stdout: string }[];
        if (all.every((x) => x.status_id === 3 && /^q\d+\n$/.test(x.stdout))) break;
        assert.ok(t < 600, JSON.stringify(all));
        await new Promise((r) => setTimeout(r, 50));
      }
      // Room again once the queue has drained.
      const again = await b.post('/submissions?wait=true', { language_id: BASH, source_code: 'echo again' });
      assert.equal(again.status, 201);
      assert.equal(again.body.stdout, 'again\n');
    } finally {
      await drain?.close();
      await a.close();
      await b.close();
      await redis.remove();
    }
  });
});

describe('rate limit across API servers', () => {
  it('per API key, in Redis: two servers share one count; 429 with Retry-After', async () => {
    const redis = await startRedis();
    const [a, b] = [
      await startServer({ redis: redis.url, concurrency: 1, apiKeys: ['k1', 'k2'], rateLimitPerMinute: 4 }),
      await startServer({ redis: redis.url, concurrency: 1, apiKeys: ['k1', 'k2'], rateLimitPerMinute: 4 }),
    ];
    try {
      const job = { language: 'bash', version: '*', files: [{ content: 'echo ok' }] };
      // The count is per minute window: start well inside one, so the test does not straddle two.
      const left = 60000 - (Date.now() % 60000);
      if (left < 20000) await new Promise((r) => setTimeout(r, left + 100));
      const k1 = { 'x-auth-token': 'k1' };
      const codes = [];
      for (const s of [a, b, a, b]) codes.push((await s.post('/api/v2/execute', job, k1)).status);
      assert.deepEqual(codes, [200, 200, 200, 200]);
      const over = await b.post('/api/v2/execute', job, k1);
      assert.equal(over.status, 429);
      assert.ok(Number(over.headers.get('retry-after')) >= 1);
      assert.match(over.body.message, /more than 4 submissions a minute/);
      assert.equal((await a.post('/submissions', { language_id: BASH, source_code: 'true' }, k1)).status, 429);
      // Another key has its own count.
      assert.equal((await a.post('/api/v2/execute', job, { 'x-auth-token': 'k2' })).status, 200);
    } finally {
      await a.close();
      await b.close();
      await redis.remove();
    }
  });
});
guardLeaks();
