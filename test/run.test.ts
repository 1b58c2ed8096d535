// Lifecycle of a run: exit codes, signals, stdio, limits, cancellation.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { run, spawn } from '../src/index.js';
import { descendants, guardLeaks } from './helpers.js';

describe('exit status', () => {
  it('ok for exit 0, exit-nonzero with the code otherwise', async () => {
    const ok = await run(['/bin/true']);
    assert.equal(ok.status, 'ok');
    assert.equal(ok.exitCode, 0);
    assert.equal(ok.signal, null);
    const bad = await run(['/bin/sh', '-c', 'exit 42']);
    assert.equal(bad.status, 'exit-nonzero');
    assert.equal(bad.exitCode, 42);
  });

  it('signaled with the signal name when the program dies of a signal', async () => {
    const r = await run(['/bin/sh', '-c', 'kill -SEGV $$']);
    assert.equal(r.status, 'signaled');
    assert.equal(r.signal, 'SIGSEGV');
    assert.equal(r.exitCode, null);
    const abrt = await run(['/bin/sh', '-c', 'kill -ABRT $$']);
    assert.equal(abrt.signal, 'SIGABRT');
  });

  it('SIGPIPE is not ignored in the program (Node ignores it in its own process)', async () => {
    const r = await run(['/bin/sh', '-c', 'grep -E "^Sig(Ign|Blk)" /proc/self/status']);
    assert.match(r.stdout.toString(), /SigBlk:\s+0000000000000000\nSigIgn:\s+0000000000000000/);
  });

  it('reports CPU time of the whole tree, children included', async () => {
    // The busy loop runs in a grandchild: only tree accounting sees it.
    const r = await run(['/bin/sh', '-c', "sh -c 'i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done' & wait"]);
    assert.equal(r.status, 'ok');
    assert.ok(r.cpuTimeMs.user + r.cpuTimeMs.system > 50, `cpu ${JSON.stringify(r.cpuTimeMs)}`);
    assert.ok(r.wallTimeMs >= r.cpuTimeMs.user * 0.5);
  });
});

describe('accounting of killed runs', () => {
  it('counts the CPU time of a tree ended by the wall-time limit', async () => {
    // The program and an orphan (its grandchild, reparented to init) each
    // burn 300 ms of CPU by their own CPU clock, say so, then sleep until
    // the wall-time limit: init kills and reaps them itself, so the kernel
    // adds the orphan's time to its account too. CPU time, not wall time,
    // so a loaded host changes nothing but how soon they are done.
    const burn = [
      'import os, sys, time',
      'def burn():',
      '    t = time.process_time()',
      '    while time.process_time() - t < 0.3: pass',
      '    print("burnt", flush=True)',
      '    time.sleep(100)',
      'if os.fork() == 0:',
      '    if os.fork() == 0: burn()',
      '    os._exit(0)',
      'burn()',
    ].join('\n');
    const r = await run(['python3', '-c', burn], { wallTimeLimitMs: 3000 });
    assert.equal(r.status, 'wall-time-limit');
    assert.equal(r.stdout.toString(), 'burnt\nburnt\n', 'both burnt their 300 ms before the limit');
    const cpu = r.cpuTimeMs.user + r.cpuTimeMs.system;
    // 600 ms burnt, plus two Python starts; one burner's time alone would be under 500
    assert.ok(cpu >= 590 && cpu <= 1500, `cpu ${cpu} ms in ${r.wallTimeMs} ms`);
  });
});

describe('stdio', () => {
  it('round-trips 10 MB from stdin to stdout', async () => {
    const data = randomBytes(10 * 1024 * 1024);
    const r = await run(['/bin/cat'], { stdin: data });
    assert.equal(r.status, 'ok');
    assert.equal(r.stdout.length, data.length);
    assert.ok(r.stdout.equals(data));
  });

  it('takes stdin from a string, a stream or a file', async () => {
    assert.equal((await run(['/bin/cat'], { stdin: 'hello' })).stdout.toString(), 'hello');
    assert.equal((await run(['/bin/cat'], { stdin: Readable.from(['a', 'b', 'c']) })).stdout.toString(), 'abc');
    const dir = mkdtempSync(join(tmpdir(), 'brig-stdin-'));
    try {
      writeFileSync(join(dir, 'in'), 'from file');
      assert.equal((await run(['/bin/cat'], { stdin: { file: join(dir, 'in') } })).stdout.toString(), 'from file');
      await run(['/bin/sh', '-c', 'echo out; echo err >&2'], { stdout: { file: join(dir, 'out') }, stderr: { file: join(dir, 'err') } });
      assert.equal(readFileSync(join(dir, 'out'), 'utf8'), 'out\n');
      assert.equal(readFileSync(join(dir, 'err'), 'utf8'), 'err\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('captures stdout and stderr apart, and caps what it keeps', async () => {
    const r = await run(['/bin/sh', '-c', 'echo out; echo err >&2']);
    assert.equal(r.stdout.toString(), 'out\n');
    assert.equal(r.stderr.toString(), 'err\n');
    const big = await run(['/bin/sh', '-c', 'head -c 100000 /dev/zero'], { maxOutputBytes: 1000 });
    assert.equal(big.status, 'ok');
    assert.equal(big.stdout.length, 1000);
    assert.equal(big.stdoutTruncated, true);
    assert.equal(big.stderrTruncated, false);
  });

  it('stdio is right whatever fd numbers the launch gets, the listener handoff fd included', async () => {
    // The program dup3s the seccomp listener socket onto a fixed fd before
    // exec; were that number one of the launch's own pipes, stdin would be
    // lost. Fill the fd table so that the launch's pipes land just there.
    await run(['/bin/true']);
    const dummies: number[] = [];
    try {
      for (let fd = openSync('/dev/null', 'r'); ; fd = openSync('/dev/null', 'r')) {
        dummies.push(fd);
        if (fd >= 199) break;
      }
      const r = await run(['/bin/cat'], { stdin: 'through stdin\n' });
      assert.equal(r.status, 'ok');
      assert.equal(r.stdout.toString(), 'through stdin\n');
    } finally {
      for (const fd of dummies) closeSync(fd);
    }
  });

  it('a program that does not read its stdin is not an error', async () => {
    const r = await run(['/bin/true'], { stdin: randomBytes(1 << 20) });
    assert.equal(r.status, 'ok');
  });

  it('spawn gives streams and a writable stdin', async () => {
    const p = spawn(['/bin/sh', '-c', 'read x; echo "got $x"'], { stdin: 'pipe' });
    const chunks: Buffer[] = [];
    p.stdout!.on('data', (c: Buffer) => chunks.push(c));
    p.stdin!.end('line\n');
    const r = await p.wait();
    await new Promise((res) => (p.stdout!.readableEnded ? res(null) : p.stdout!.once('end', res)));
    assert.equal(r.status, 'ok');
    assert.equal(Buffer.concat(chunks).toString(), 'got line\n');
    assert.ok(p.pid > 0);
  });

  it('pipes output into a Writable', async () => {
    const got: Buffer[] = [];
    const sink = new Writable({
      write(c, _e, cb) {
        got.push(c);
        cb();
      },
    });
    const r = await run(['/bin/echo', 'to-sink'], { stdout: sink });
    assert.equal(r.status, 'ok');
    assert.equal(Buffer.concat(got).toString(), 'to-sink\n');
  });
});

describe('rlimits', () => {
  it('applies resource limits to the program, and no core dumps by default', async () => {
    const r = await run(['/bin/sh', '-c', 'ulimit -c; ulimit -n; ulimit -Hn; ulimit -s'], { rlimits: { nofile: [64, 128], stack: 'unlimited' } });
    assert.equal(r.status, 'ok', r.error?.message);
    assert.equal(r.stdout.toString(), '0\n64\n128\nunlimited\n');
  });

  it('the file-size limit stops a large write', async () => {
    const r = await run(['/bin/sh', '-c', 'head -c 100000 /dev/zero > /tmp/f; echo rc=$?; stat -c %s /tmp/f'], { rlimits: { fsize: 4096 } });
    assert.match(r.stdout.toString(), /rc=[1-9][0-9]*\n4096\n/);
  });

  it('a hard limit above the caller\'s own cannot be had, not even by root', async () => {
    const limits = readFileSync('/proc/self/limits', 'utf8');
    const hard = Number(/^Max open files\s+\S+\s+(\d+)/m.exec(limits)![1]);
    const r = await run(['/bin/true'], { rlimits: { nofile: hard + 1 } });
    assert.equal(r.status, 'setup-error');
    assert.equal(r.error?.step, 'rlimit');
    assert.equal(r.error?.path, 'nofile');
    assert.equal(r.error?.code, 'EPERM');
  });
});

describe('limits and cancellation', () => {
  it('the wall-time limit kills the whole tree, orphans included', async () => {
    const t0 = Date.now();
    // The subshell's sleep is orphaned (reparented to the sandbox's init) at once.
    const r = await run(['/bin/sh', '-c', '(sleep 60 &); (sh -c "sleep 60" &); sleep 60'], { wallTimeLimitMs: 300 });
    assert.equal(r.status, 'wall-time-limit');
    assert.equal(r.signal, 'SIGKILL');
    assert.ok(Date.now() - t0 < 5000);
    assert.ok(r.wallTimeMs >= 290, `wall ${r.wallTimeMs}`);
    assert.deepEqual(descendants().filter((p) => p.comm === 'sleep' || p.comm === 'brig-init'), []);
  });

  it('the run ends when the program exits: orphans it left are killed', async () => {
    const t0 = Date.now();
    const r = await run(['/bin/sh', '-c', '(sleep 60 &); echo started']);
    assert.equal(r.status, 'ok');
    assert.equal(r.stdout.toString(), 'started\n');
    assert.ok(Date.now() - t0 < 5000);
    assert.deepEqual(descendants().filter((p) => p.comm === 'sleep'), []);
  });

  it('an AbortSignal cancels a run', async () => {
    const ac = new AbortController();
    const t0 = Date.now();
    setTimeout(() => ac.abort(new Error('user cancelled')), 200);
    await assert.rejects(run(['/bin/sleep', '60'], { signal: ac.signal }), (e: Error) => e.name === 'AbortError' && (e.cause as Error).message === 'user cancelled');
    assert.ok(Date.now() - t0 < 5000);
    assert.deepEqual(descendants().filter((p) => p.comm === 'sleep' || p.comm === 'brig-init'), []);
    // Already aborted: nothing starts.
    await assert.rejects(run(['/bin/true'], { signal: ac.signal }), { name: 'AbortError' });
  });

  it('kill() ends a spawned sandbox', async () => {
    const p = spawn(['/bin/sleep', '60']);
    setTimeout(() => p.kill(), 100);
    const r = await p.wait();
    assert.equal(r.status, 'signaled');
    assert.equal(r.signal, 'SIGKILL');
    assert.equal(p.kill(), false);
  });
});

guardLeaks();
