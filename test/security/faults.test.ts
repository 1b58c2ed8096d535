// Faults around the sandbox: the Node process killed mid-run, out of fds,
// output streams that fail or stop reading, programs that close their stdio
// early, a full writable space. Each must end in a result or an error that
// says what happened, never in a hang.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { Readable, Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { RunCgroups } from '../../src/cgroup/run.js';
import { run, spawn as spawnSandbox } from '../../src/index.js';
import { descendants, guardLeaks, ownCgroups, running } from '../helpers.js';

const index = new URL('../../src/index.js', import.meta.url).href;
const warmModule = new URL('../../src/launch/warm.js', import.meta.url).href;
const skeletonModule = new URL('../../src/launch/skeleton.js', import.meta.url).href;
const probe = RunCgroups.create({ memoryBytes: 1 << 30 }, process.env.BRIG_CGROUP_PARENT || undefined);
const cgroups = probe instanceof RunCgroups;
if (probe instanceof RunCgroups) probe.remove();

/** A Node process that starts `script`'s sandboxes and says "ready". */
function parent(script: string) {
  const child = spawn(process.execPath, ['--input-type=module', '-e', `import { run, createPool } from ${JSON.stringify(index)};\n${script}\nconsole.log('ready');`], { stdio: ['ignore', 'pipe', 'inherit'] });
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    child.once('exit', (code) => reject(new Error(`the parent exited early (${code})`)));
  });
  return { child, ready };
}

describe('the Node parent killed with SIGKILL', () => {
  it('20 running sandboxes (15 runs, 5 idle in a pool) all end within 1 s; the next start sweeps their cgroups', async () => {
    const limits = cgroups ? "{ memory: '64m', pids: 64 }" : '{}';
    const { child, ready } = parent(`
      const pool = await createPool({ size: 5 });
      for (let i = 0; i < 15; i++) run(['/bin/sleep', '600'], ${limits});
      await new Promise((r) => setTimeout(r, 500));`);
    await ready;
    const inside = descendants(child.pid);
    // 15 inits + 15 sleeps, and 5 pooled inits + their 5 waiting programs.
    assert.ok(inside.length >= 40, `${inside.length} processes under the parent: ${inside.map((p) => p.comm).join(' ')}`);
    // The parent was started here, so its cgroups sit under the same parents as ours.
    const leftCgroups = () => ownCgroups(child.pid);
    if (cgroups) assert.ok(leftCgroups().length > 0, 'the runs had cgroups');
    const killedAt = performance.now();
    process.kill(child.pid!, 'SIGKILL');
    while (inside.some((p) => running(p.pid)) && performance.now() - killedAt < 5000) await new Promise((r) => setTimeout(r, 10));
    const took = performance.now() - killedAt;
    assert.deepEqual(inside.filter((p) => running(p.pid)).map((p) => `${p.pid} ${p.comm}`), [], 'sandbox processes left');
    assert.ok(took < 1000, `all ended in ${took.toFixed(0)} ms`);
    if (!cgroups) return;
    // Their cgroups stay until a brig process makes its own next to them.
    assert.ok(leftCgroups().length > 0, 'a dead process cannot remove its cgroups');
    const next = parent(`const r = await run(['/bin/true'], { memory: '64m' }); if (r.status !== 'ok') throw new Error(r.status);`);
    await next.ready;
    await new Promise((r) => next.child.once('exit', r));
    assert.deepEqual(leftCgroups(), [], 'swept by the next start');
  });
});

// Each of these would hang without its fix: a test's own timeout turns a
// hang into a failure.
const NO_HANG = { timeout: 30_000 };
const flood = (bytes: number) => ['/bin/sh', '-c', `yes | head -c ${bytes}`];

describe("the caller's output streams", () => {
  it('a destination that stops reading: the program blocks, the wall-time limit ends it, and the result comes', NO_HANG, async () => {
    let taken = 0;
    const stalled = new Writable({
      highWaterMark: 1024,
      write(chunk: Buffer, _enc, _done) {
        taken += chunk.length; // and never calls back
      },
    });
    const r = await run(flood(10_000_000), { stdout: stalled, wallTimeLimitMs: 300 });
    assert.equal(r.status, 'wall-time-limit');
    assert.ok(taken > 0 && taken < 10_000_000, `${taken} bytes reached it`);
  });

  it('a destination that fails: the run ends as output-error, naming the stream and its errno', NO_HANG, async () => {
    const full = new Writable({
      write(_chunk, _enc, done) {
        done(Object.assign(new Error('no room'), { code: 'ENOSPC' }));
      },
    });
    const r = await run(flood(100_000_000), { stdout: full, wallTimeLimitMs: 20_000 });
    assert.equal(r.status, 'output-error');
    assert.equal(r.killed, true);
    assert.deepEqual([r.error?.step, r.error?.code], ['stdout', 'ENOSPC']);
    assert.match(r.error!.message, /stdout failed: ENOSPC \(the stdout stream failed: no room; brig ended the run\)/);

    // stderr's failure is named as stderr's; stdout still got what came before.
    const chunks: Buffer[] = [];
    const keep = new Writable({ write: (c: Buffer, _e, done) => (chunks.push(c), done()) });
    const closed = new Writable({ write: (_c, _e, done) => done(Object.assign(new Error('gone'), { code: 'EPIPE' })) });
    const e = await run(['/bin/sh', '-c', 'echo first; echo oops >&2; sleep 30'], { stdout: keep, stderr: closed, wallTimeLimitMs: 20_000 });
    assert.equal(e.status, 'output-error');
    assert.deepEqual([e.error?.step, e.error?.code], ['stderr', 'EPIPE']);
    assert.equal(Buffer.concat(chunks).toString(), 'first\n');
  });

  it('a slow destination gets every byte; the result does not wait for it to drain', NO_HANG, async () => {
    let got = 0;
    const slow = new Writable({
      highWaterMark: 4096,
      write(chunk: Buffer, _enc, done) {
        got += chunk.length;
        setTimeout(done, 1);
      },
    });
    const r = await run(flood(300_000), { stdout: slow });
    assert.equal(r.status, 'ok');
    // 'drain' comes only after a write() that returned false, so poll: what
    // is still buffered reaches it a write at a time.
    while (slow.writableLength > 0) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(got, 300_000);
  });

  it("spawn()'s stdout never read: the program blocks, the wall-time limit ends it, wait() resolves", NO_HANG, async () => {
    const p = spawnSandbox(flood(10_000_000), { wallTimeLimitMs: 300 });
    const r = await p.wait();
    assert.equal(r.status, 'wall-time-limit');
    p.stdout!.destroy();
    p.stderr!.destroy();
  });
});

describe('a program that closes its stdio early', () => {
  it('closed stdout: the run goes on to its exit, and what came before is kept', NO_HANG, async () => {
    const r = await run(['/bin/sh', '-c', 'echo before; exec >&-; sleep 0.2; echo after >&2; exit 3']);
    assert.deepEqual([r.status, r.exitCode, r.stdout.toString(), r.stderr.toString()], ['exit-nonzero', 3, 'before\n', 'after\n']);
    const p = spawnSandbox(['/bin/sh', '-c', 'echo before; exec >&-; sleep 0.2; exit 3']);
    let ended = false;
    p.stdout!.on('data', () => {}).on('end', () => (ended = true));
    const s = await p.wait();
    assert.deepEqual([ended, s.exitCode], [true, 3]);
  });

  it('closed stdin while brig still feeds it (a buffer, a stream): no EPIPE reaches the caller', NO_HANG, async () => {
    const script = 'head -c 10 >/dev/null; exec <&-; echo done';
    const fromBuffer = await run(['/bin/sh', '-c', script], { stdin: Buffer.alloc(8 << 20, 97) });
    assert.deepEqual([fromBuffer.status, fromBuffer.stdout.toString()], ['ok', 'done\n']);
    const fromStream = await run(['/bin/sh', '-c', script], { stdin: Readable.from((function* () { for (let i = 0; i < 128; i++) yield Buffer.alloc(64 << 10, 98); })()) });
    assert.deepEqual([fromStream.status, fromStream.stdout.toString()], ['ok', 'done\n']);
  });
});

describe('a full writable space', () => {
  // An image's writable layer: test/image.test.ts "a full writable layer".
  it("a full /tmp: the program's writes fail with ENOSPC and it goes on", NO_HANG, async () => {
    const r = await run(['/bin/sh', '-c', 'head -c 4000000 /dev/zero > /tmp/big; echo rc=$?; echo more > /tmp/small; echo rc=$?'], { tmpSize: '1m' });
    assert.equal(r.status, 'ok');
    assert.equal(r.stdout.toString(), 'rc=1\nrc=1\n');
    assert.match(r.stderr.toString(), /No space left on device/);
  });
});

describe('out of file descriptors in the Node process (EMFILE)', () => {
  it('runs, spawns, pools and pairs fail with a setup-error naming the step; nothing leaks; with fds back, all work again', NO_HANG, async () => {
    // A Node process with a file limit of 64, filled up to it but for a few fds.
    const script = `
      import { run, spawn, createPool, runInteractive } from ${JSON.stringify(index)};
      import { dropWarm, warmSettled } from ${JSON.stringify(warmModule)};
      import { dropSkeletons, skeletonsSettled } from ${JSON.stringify(skeletonModule)};
      import { openSync, closeSync, readdirSync, readlinkSync } from 'node:fs';
      // Warm namespace pairs (made after each run, waiting for the next) and
      // skeletons are meant to be open: counted without them.
      const openFds = async () => {
        await warmSettled(); await skeletonsSettled(); dropWarm(); dropSkeletons();
        const fds = new Map();
        for (const fd of readdirSync('/proc/self/fd')) try { fds.set(fd, readlinkSync('/proc/self/fd/' + fd)); } catch {}
        return fds;
      };
      const pool = createPool({ size: 1 });
      await new Promise((r) => setTimeout(r, 300));
      // Warm: what the first run opens for good (/dev/null, the profile) is open.
      await run(['/bin/true']);
      // And the fd libuv holds for the life of the process on /dev/null
      // (loop->emfile_fd, its reserve for accept() at EMFILE), opened when the
      // process makes its first stream (a pipe, socket or terminal): here
      // the pipes spawn() gives. Unless made now, it would be opened in the
      // loop below, the first time an fd is free, and look like a leak.
      await spawn(['/bin/true']).wait();
      const before = await openFds();
      const seen = [];
      for (const free of [0, 1, 2, 3, 5, 8, 12]) {
        const fill = [];
        try { for (;;) fill.push(openSync('/dev/null', 'r')); } catch (e) { if (e.code !== 'EMFILE') throw e; }
        for (let i = 0; i < free; i++) closeSync(fill.pop());
        for (const start of [
          () => run(['/bin/echo', 'hi']),
          () => run(['/bin/cat'], { stdin: 'x', memory: '64m' }),
          () => spawn(['/bin/echo', 'hi']).wait(),
          () => pool.run(['/bin/echo', 'hi']),
          () => runInteractive({ argv: ['/bin/true'] }, { argv: ['/bin/true'] }).then((p) => p.solution),
        ]) {
          try {
            const r = await start();
            seen.push(r.status === 'ok' ? 'ok' : r.status + ' ' + r.error?.step + ' ' + r.error?.code + ' ' + r.error?.message);
          } catch (e) {
            seen.push('threw ' + e.name + ' ' + (e.detail?.step ?? '') + ' ' + (e.detail?.code ?? '') + ' ' + e.message);
          }
        }
        for (const fd of fill) closeSync(fd);
      }
      // The pool tried again once fds were back.
      for (let i = 0; i < 200 && pool.available === 0; i++) await new Promise((r) => setTimeout(r, 50));
      const poolBack = pool.available;
      const after = await run(['/bin/echo', 'back']);
      await pool.close();
      const now = await openFds();
      const leaked = [...now].filter(([fd, to]) => before.get(fd) !== to).map(([fd, to]) => fd + ' -> ' + to);
      console.log(JSON.stringify({ seen, after: after.stdout.toString(), poolBack, leaked }));`;
    const child = spawn('bash', ['-c', 'ulimit -n 64 && exec "$0" --input-type=module -e "$1"', process.execPath, script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    const code = await new Promise((r) => child.once('exit', r));
    assert.equal(code, 0, out);
    const { seen, after, poolBack, leaked } = JSON.parse(out.trim().split('\n').pop()!) as { seen: string[]; after: string; poolBack: number; leaked: string[] };
    const failures = seen.filter((s) => s !== 'ok');
    assert.ok(failures.length >= 20, `${failures.length} of ${seen.length} failed: ${seen.join('\n')}`);
    for (const f of failures) assert.match(f, /^(setup-error|threw SetupError) [a-z-]+ E[MN]FILE .*out of file descriptors|file table is full/, f);
    assert.equal(after, 'back\n');
    assert.equal(poolBack, 1, 'the pool makes sandboxes again');
    assert.deepEqual(leaked, [], 'fds left open');
  });
});

guardLeaks();
