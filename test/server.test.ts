// brig serve: Piston's API v2 through real HTTP and WebSocket on loopback,
// the piston-client package unchanged, /v1/runs, /healthz, /metrics,
// authentication, a full queue, and a drained shutdown leaving nothing.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { piston } from 'piston-client';
import { MemoryQueue, QueueClosedError, QueueFullError } from '../src/server/queue.js';
import { brigBin, brigCli, guardLeaks } from './helpers.js';
import { startServer, testRuntimes, WebSocket, type Running } from './server-util.js';

const C_HELLO = '#include <stdio.h>\nint main(void) { puts("hello from c"); return 0; }\n';

describe('Piston API v2', () => {
  let s: Running;
  const extra = testRuntimes();
  before(async () => {
    s = await startServer({ runtimeDirs: [extra.dir] });
  });
  after(async () => {
    await s.close();
    extra.remove();
  });
  const exec = (body: object) => s.post('/api/v2/execute', { version: '*', ...body });

  it('GET /api/v2/runtimes: the host toolchains, versions detected; a runtime without its toolchain is not offered', async () => {
    const r = await s.get('/api/v2/runtimes');
    assert.equal(r.status, 200);
    const py = r.body.find((x: any) => x.language === 'python');
    assert.match(py.version, /^3\.\d+\.\d+$/);
    assert.ok(py.aliases.includes('py'));
    const js = r.body.find((x: any) => x.language === 'javascript');
    assert.equal(js.runtime, 'node');
    assert.equal(js.version, process.versions.node);
    assert.ok(r.body.some((x: any) => x.language === 'c'));
    assert.ok(!r.body.some((x: any) => x.language === 'nochain'));
    assert.match(s.server.unavailable.find((u) => u.language === 'nochain')!.reason, /no-such-toolchain-brig not found/);
  });

  it('packages: listed as installed; installing a present one is a no-op, an unknown one 404', async () => {
    const list = await s.get('/api/v2/packages');
    assert.ok(list.body.some((p: any) => p.language === 'python' && p.installed === true && p.language_version));
    const ok = await s.post('/api/v2/packages', { language: 'python', version: '*' });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.language, 'python');
    const missing = await s.post('/api/v2/packages', { language: 'cobol', version: '1.0.0' });
    assert.equal(missing.status, 404);
    assert.match(missing.body.message, /cobol-1\.0\.0/);
  });

  it('python: stdin gets its newline, args reach the program, the stage reports time and memory', async () => {
    const r = await exec({ language: 'py', files: [{ content: 'import sys\nprint(repr(sys.stdin.read()), sys.argv[1:])' }], stdin: 'abc', args: ['x', 'y'] });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.language, 'python');
    assert.equal(r.body.run.stdout, "'abc\\n' ['x', 'y']\n");
    assert.equal(r.body.run.code, 0);
    assert.equal(r.body.run.status, null);
    assert.equal(r.body.compile, undefined);
    assert.ok(r.body.run.wall_time > 0 && r.body.run.cpu_time >= 0 && r.body.run.memory > 0);
  });

  it('c: compiled in a box, then run with the box read-only', async () => {
    const r = await exec({ language: 'c', files: [{ name: 'hello.c', content: C_HELLO }] });
    assert.equal(r.body.compile.code, 0);
    assert.equal(r.body.run.stdout, 'hello from c\n');
    const w = await exec({ language: 'c', files: [{ content: '#include <stdio.h>\nint main(void){ FILE*f=fopen("/box/x","w"); printf("%s\\n", f ? "wrote" : "refused"); return 0; }' }] });
    assert.equal(w.body.run.stdout, 'refused\n');
  });

  it('base64 and hex files; a second file is there beside the entry', async () => {
    const r = await exec({
      language: 'python',
      files: [
        { name: 'main.py', content: 'import helper\nprint(helper.V, open("data.txt").read())' },
        { name: 'helper.py', content: Buffer.from('V = 42\n').toString('base64'), encoding: 'base64' },
        { name: 'data.txt', content: Buffer.from('hex!').toString('hex'), encoding: 'hex' },
      ],
    });
    assert.equal(r.body.run.stdout, '42 hex!\n');
  });

  it('statuses as Piston sets them: RE, SG, TO, OL, EL, XX; a failed compile is reported as run too', async () => {
    const re = await exec({ language: 'python', files: [{ content: 'raise SystemExit(3)' }] });
    assert.deepEqual([re.body.run.status, re.body.run.code, re.body.run.signal], ['RE', 3, null]);
    const sg = await exec({ language: 'python', files: [{ content: 'import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)' }] });
    assert.deepEqual([sg.body.run.status, sg.body.run.signal, sg.body.run.code], ['SG', 'SIGSEGV', null]);
    const to = await exec({ language: 'python', files: [{ content: 'while True: pass' }], run_cpu_time: 300 });
    assert.deepEqual([to.body.run.status, to.body.run.signal], ['TO', 'SIGKILL']);
    assert.ok(to.body.run.cpu_time >= 300 && to.body.run.cpu_time < 1000, `cpu ${to.body.run.cpu_time}`);
    const sleep = await exec({ language: 'bash', files: [{ content: 'sleep 5' }], run_timeout: 300 });
    assert.equal(sleep.body.run.status, 'TO');
    const ol = await exec({ language: 'python', files: [{ content: 'import sys\nwhile True: sys.stdout.write("x" * 4096)' }] });
    assert.deepEqual([ol.body.run.status, ol.body.run.signal], ['OL', 'SIGKILL']);
    assert.equal(ol.body.run.stdout.length, 1024);
    const el = await exec({ language: 'python', files: [{ content: 'import sys\nwhile True: sys.stderr.write("e" * 4096)' }] });
    assert.equal(el.body.run.status, 'EL');
    assert.equal(el.body.run.stderr.length, 1024);
    const xx = await exec({ language: 'missing', files: [{ content: 'x' }] });
    assert.equal(xx.status, 200);
    assert.equal(xx.body.run.status, 'XX');
    assert.match(xx.body.run.message, /exec/);
    const ce = await exec({ language: 'c', files: [{ content: 'int main( { return 0; }' }] });
    assert.equal(ce.body.compile.status, 'RE');
    assert.match(ce.body.compile.stderr, /error/);
    assert.deepEqual(ce.body.run, ce.body.compile);
  });

  it("output: stdout and stderr interleaved in the order written (Piston's), each stream also apart", async () => {
    // Each write waits until the service has read the pipe empty (FIONREAD on
    // the write end), so the order is the program's whatever the load.
    const taken = [
      'import sys, fcntl, termios, struct, time',
      'def taken(fd):',
      '    for _ in range(5000):',
      "        if struct.unpack('i', fcntl.ioctl(fd, termios.FIONREAD, b'\\0' * 4))[0] == 0: return",
      '        time.sleep(0.001)',
    ].join('\n');
    const program = `${taken}\nfor i in range(3):\n    sys.stdout.write(f'out{i}\\n'); sys.stdout.flush(); taken(1)\n    sys.stderr.write(f'err{i}\\n'); sys.stderr.flush(); taken(2)\n`;
    const r = await exec({ language: 'python', files: [{ content: program }], run_timeout: 3000 });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.run.code, 0, JSON.stringify(r.body.run));
    assert.equal(r.body.run.output, 'out0\nerr0\nout1\nerr1\nout2\nerr2\n');
    assert.equal(r.body.run.stdout, 'out0\nout1\nout2\n');
    assert.equal(r.body.run.stderr, 'err0\nerr1\nerr2\n');
    // A stream cut at output_max_size is cut in output too, in its place.
    const ol = await exec({ language: 'python', files: [{ content: `${taken}\nsys.stderr.write('e\\n'); sys.stderr.flush(); taken(2)\nwhile True: sys.stdout.write('x' * 4096)\n` }] });
    assert.equal(ol.body.run.status, 'OL');
    assert.equal(ol.body.run.output, 'e\n' + 'x'.repeat(1024));
  });

  it('bad input: 400 naming the field (or 413, 415), before anything runs', async () => {
    const bad = async (body: unknown, status: number, pattern: RegExp, headers?: Record<string, string>) => {
      const r = await s.post('/api/v2/execute', body, headers);
      assert.equal(r.status, status, JSON.stringify(r.body));
      assert.match(r.body.message, pattern);
    };
    await bad('{"language": "python", ', 400, /body: not valid JSON/);
    await bad({ version: '*', files: [] }, 400, /^language is required/);
    await bad({ language: 'python', version: '*', files: [{ content: 'print(1)' }], run_timeout: -5 }, 400, /^run_timeout cannot be negative/);
    await bad({ language: 'python', version: '*', files: [{ content: 'print(1)' }], run_timeout: 999999 }, 400, /^run_timeout cannot exceed the configured limit of 3000/);
    await bad({ language: 'python', version: '*', files: [{ content: 'print(1)' }], compile_memory_limit: 'lots' }, 400, /^compile_memory_limit must be a number/);
    await bad({ language: 'brainfuck', version: '*', files: [{ content: '+' }] }, 400, /^brainfuck-\* runtime is unknown/);
    await bad({ language: 'python', version: '9.9.9', files: [{ content: '+' }] }, 400, /^python-9\.9\.9 runtime is unknown/);
    await bad({ language: 'python', version: '*', files: [{ content: 'print(1)' }, { name: 'x', content: '%%%', encoding: 'base64' }] }, 400, /^files\[1\]\.content is not valid base64/);
    await bad({ language: 'python', version: '*', files: [{ content: 'print(1)' }, { name: '../../etc/evil', content: 'x' }] }, 400, /^files\[1\]\.name must be a relative path/);
    await bad({ language: 'python', version: '*', files: [{ content: 'print(1)' }, { name: '/etc/evil', content: 'x' }] }, 400, /^files\[1\]\.name must be a relative path/);
    await bad({ language: 'python', version: '*', files: [{ content: 'eA==', encoding: 'base64' }] }, 400, /at least one utf8/);
    await bad('language=python', 415, /content-type: text\/plain is not supported/, { 'content-type': 'text/plain' });
    await bad('language=python', 415, /content-type: application\/x-www-form-urlencoded is not supported/, { 'content-type': 'application/x-www-form-urlencoded' });
    await bad({ language: 'python', version: '*', files: [{ content: 'x'.repeat(2 << 20) }] }, 413, /body: larger than/);
  });

  it('the piston-client package works unchanged', async () => {
    const client = piston({ server: s.url });
    const runtimes = await client.runtimes();
    assert.ok(runtimes.some((r: any) => r.language === 'python'));
    const r = await client.execute('python', 'import sys\nprint("from piston-client", sys.argv[1:])');
    assert.equal(r.run.stdout, "from piston-client ['1', '2', '3']\n");
    const c = await client.execute('c', C_HELLO, { stdin: '' });
    assert.equal(c.run.stdout, 'hello from c\n');
  });

  describe('WebSocket /api/v2/connect', () => {
    interface Conversation {
      messages: any[];
      code: number;
      reason: string;
    }
    const talk = (send: (ws: any, messages: any[]) => void): Promise<Conversation> =>
      new Promise((resolve, reject) => {
        const ws = new WebSocket(s.url.replace('http', 'ws') + '/api/v2/connect');
        const messages: any[] = [];
        ws.on('open', () => send(ws, messages));
        ws.on('message', (d: Buffer) => {
          messages.push(JSON.parse(d.toString()));
          ws.emit('brig-message', messages[messages.length - 1]);
        });
        ws.on('error', reject);
        ws.on('close', (code: number, reason: Buffer) => resolve({ messages, code, reason: reason.toString() }));
      });

    it('interactive: stdin written while it runs, stdout streamed, exit, then 4999', async () => {
      const c = await talk((ws) => {
        ws.send(JSON.stringify({ type: 'init', language: 'python', version: '*', files: [{ content: 'import sys\nfor line in sys.stdin:\n    print("echo", line.strip(), flush=True)\n    if line.strip() == "bye": break' }] }));
        ws.on('brig-message', (m: any) => {
          if (m.type === 'stage' && m.stage === 'run') ws.send(JSON.stringify({ type: 'data', stream: 'stdin', data: 'hi\n' }));
          if (m.type === 'data' && m.data.includes('echo hi')) ws.send(JSON.stringify({ type: 'data', stream: 'stdin', data: 'bye\n' }));
        });
      });
      assert.equal(c.code, 4999);
      assert.deepEqual(c.messages[0], { type: 'runtime', language: 'python', version: c.messages[0].version });
      assert.deepEqual(c.messages[1], { type: 'stage', stage: 'run' });
      const out = c.messages.filter((m) => m.type === 'data' && m.stream === 'stdout').map((m) => m.data).join('');
      assert.equal(out, 'echo hi\necho bye\n');
      assert.deepEqual(c.messages[c.messages.length - 1], { type: 'exit', stage: 'run', code: 0, signal: null });
    });

    it('a signal ends the run; compiled languages report both stages', async () => {
      const c = await talk((ws) => {
        ws.send(JSON.stringify({ type: 'init', language: 'c', version: '*', files: [{ content: '#include <unistd.h>\n#include <stdio.h>\nint main(void){ puts("up"); fflush(stdout); sleep(30); return 0; }' }] }));
        ws.on('brig-message', (m: any) => m.type === 'data' && ws.send(JSON.stringify({ type: 'signal', signal: 'SIGKILL' })));
      });
      assert.equal(c.code, 4999);
      const kinds = c.messages.map((m) => (m.type === 'stage' || m.type === 'exit' ? `${m.type}:${m.stage}` : m.type));
      assert.deepEqual(kinds, ['runtime', 'stage:compile', 'exit:compile', 'stage:run', 'data', 'exit:run']);
      assert.equal(c.messages[5].signal, 'SIGKILL');
    });

    it('a signal reaches the program by name: one trapping SIGTERM or SIGINT sees it, and the exit reports it', async () => {
      // bash traps TERM, says so, then dies of it; python catches INT, says so, then dies of it.
      const bash = "trap 'echo got TERM; trap - TERM; kill -TERM $$' TERM\necho ready\nwhile :; do sleep 0.05; done";
      const python = [
        'import os, signal, sys, time',
        'def on_int(n, f):',
        '    os.write(1, b"got INT\\n")',
        '    signal.signal(signal.SIGINT, signal.SIG_DFL)',
        '    os.kill(os.getpid(), signal.SIGINT)',
        'signal.signal(signal.SIGINT, on_int)',
        'print("ready", flush=True)',
        'while True: time.sleep(0.05)',
      ].join('\n');
      for (const [language, content, signal, said] of [['bash', bash, 'SIGTERM', 'got TERM\n'], ['python', python, 'SIGINT', 'got INT\n']]) {
        let sent = false;
        const c = await talk((ws) => {
          ws.send(JSON.stringify({ type: 'init', language, version: '*', files: [{ content }] }));
          ws.on('brig-message', (m: any) => {
            if (!sent && m.type === 'data' && m.data.includes('ready')) {
              sent = true;
              ws.send(JSON.stringify({ type: 'signal', signal }));
            }
          });
        });
        assert.equal(c.code, 4999, JSON.stringify(c.messages));
        const out = c.messages.filter((m) => m.type === 'data' && m.stream === 'stdout').map((m) => m.data).join('');
        assert.equal(out, `ready\n${said}`, `${language}: ${JSON.stringify(c.messages)}`);
        assert.deepEqual(c.messages[c.messages.length - 1], { type: 'exit', stage: 'run', code: null, signal });
      }
      // A signal the program does not handle: its default action (SIGUSR1 ends it).
      const c = await talk((ws) => {
        ws.send(JSON.stringify({ type: 'init', language: 'bash', version: '*', files: [{ content: 'echo up\nwhile :; do sleep 0.05; done' }] }));
        ws.on('brig-message', (m: any) => m.type === 'data' && ws.send(JSON.stringify({ type: 'signal', signal: 'SIGUSR1' })));
      });
      assert.deepEqual(c.messages[c.messages.length - 1], { type: 'exit', stage: 'run', code: null, signal: 'SIGUSR1' });
    });

    it("Piston's close codes: 4000, 4001, 4002, 4003, 4004, 4005", async () => {
      const init = JSON.stringify({ type: 'init', language: 'bash', version: '*', files: [{ content: 'read x' }] });
      const notInit = await talk((ws) => ws.send(JSON.stringify({ type: 'data', stream: 'stdin', data: 'x' })));
      assert.equal(notInit.code, 4003);
      const timeout = await talk(() => {});
      assert.equal(timeout.code, 4001);
      const twice = await talk((ws) => (ws.send(init), ws.send(init)));
      assert.equal(twice.code, 4000);
      const error = await talk((ws) => ws.send(JSON.stringify({ type: 'init', language: 'nope', version: '*', files: [{ content: 'x' }] })));
      assert.equal(error.code, 4002);
      assert.match(error.messages[0].message, /nope-\* runtime is unknown/);
      const stdout = await talk((ws) => (ws.send(init), ws.send(JSON.stringify({ type: 'data', stream: 'stdout', data: 'x' }))));
      assert.equal(stdout.code, 4004);
      const signal = await talk((ws) => (ws.send(init), ws.send(JSON.stringify({ type: 'signal', signal: 'SIGNOPE' }))));
      assert.equal(signal.code, 4005);
    });
  });

  it('/v1/runs: the whole RunResult; profiles by configured name only, no option naming a host path', async () => {
    const r = await s.post('/v1/runs', { argv: ['/bin/sh', '-c', 'echo $0; cat', 'hi'], stdin: 'in', profile: 'judge', options: { cpuTimeLimitMs: 1000 } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.status, 'ok');
    assert.equal(r.body.stdout, 'hi\nin');
    assert.ok('cpuTimeMs' in r.body && 'wallTimeMs' in r.body);
    const path = await s.post('/v1/runs', { argv: ['/bin/true'], profile: '/etc/passwd' });
    assert.equal(path.status, 400);
    assert.equal(path.body.field, 'profile');
    const mounts = await s.post('/v1/runs', { argv: ['/bin/true'], options: { mounts: [{ source: '/', target: '/host' }] } });
    assert.equal(mounts.status, 400);
    assert.equal(mounts.body.field, 'options.mounts');
    const over = await s.post('/v1/runs', { argv: ['/bin/true'], options: { wallTimeLimitMs: 3600000 } });
    assert.equal(over.status, 400);
    assert.equal(over.body.message, "options.wallTimeLimitMs: 3600000 is over the service's ceiling of 20000");
    const sleepy = await s.post('/v1/runs', { argv: ['/bin/sleep', '60'], profile: 'default', options: { wallTimeLimitMs: 300 } });
    assert.equal(sleepy.body.status, 'wall-time-limit');
    const neg = await s.post('/v1/runs', { argv: ['/bin/true'], options: { cpuTimeLimitMs: -1 } });
    assert.equal(neg.status, 400);
    assert.match(neg.body.message, /cpuTimeLimitMs/);
  });

  it('/v1/runs from a warm pool for its options: made on the first run, taken by the next; env, stdin and limits per run', async () => {
    const stats = async () => (await s.get('/healthz')).body.pools as { made: number; taken: number };
    const body = (greeting: string, stdin: string) => ({
      argv: ['/bin/sh', '-c', 'echo "$GREETING"; cat; cat /proc/self/status | grep -c NoNewPrivs'],
      stdin,
      profile: 'judge',
      options: { env: { GREETING: greeting }, cpuTimeLimitMs: 1000, memory: 64 << 20 },
    });
    const start = await stats();
    const first = await s.post('/v1/runs', body('hi', 'one'));
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.body.stdout, 'hi\none1\n');
    // The pool for these options makes its sandboxes once the first run has asked for it.
    for (let t = 0; t < 200 && (await stats()).made <= start.made; t++) await new Promise((r) => setTimeout(r, 50));
    const second = await s.post('/v1/runs', body('ho', 'two'));
    assert.equal(second.body.stdout, 'ho\ntwo1\n');
    assert.ok((await stats()).taken > start.taken, 'the second run took a sandbox made ahead');
    // Limits are per run in a pooled sandbox too.
    const slow = await s.post('/v1/runs', { ...body('x', ''), argv: ['/bin/sh', '-c', 'while :; do :; done'], options: { ...body('x', '').options, cpuTimeLimitMs: 200 } });
    assert.equal(slow.body.status, 'cpu-time-limit');
  });

  it('/healthz and /metrics (Prometheus text: queue depth, runs by status, latency histograms)', async () => {
    const h = await s.get('/healthz');
    assert.equal(h.status, 200);
    assert.equal(h.body.status, 'ok');
    assert.ok(h.body.runtimes.some((r: string) => r.startsWith('python-')));
    const m = await s.get('/metrics');
    assert.equal(m.status, 200);
    assert.match(m.headers.get('content-type')!, /text\/plain/);
    assert.match(m.body, /^brig_queue_depth 0$/m);
    assert.match(m.body, /^brig_runs_total\{status="ok",language="python"\} \d+$/m);
    assert.match(m.body, /^brig_runs_total\{status="cpu-time-limit",language="python"\} 1$/m);
    assert.match(m.body, /^brig_run_duration_seconds_bucket\{le="0\.5",language="c"\} \d+$/m);
    assert.match(m.body, /^brig_http_request_duration_seconds_count\{method="POST",route="\/api\/v2\/execute",code="200"\} \d+$/m);
  });
});

describe('capacity, authentication, shutdown', () => {
  it('the embedded queue: runs N at a time, refuses past its capacity, drains on close, refuses after', async () => {
    let running = 0;
    let most = 0;
    const q = new MemoryQueue<number, number>(async (n) => {
      most = Math.max(most, ++running);
      await new Promise((r) => setTimeout(r, 30));
      running--;
      return n * 2;
    }, 2, 3);
    const jobs = [1, 2, 3, 4, 5].map((n) => q.submit(n));
    assert.equal(q.active, 2);
    assert.equal(q.depth, 3);
    await assert.rejects(q.submit(6), QueueFullError);
    const closed = q.close();
    await assert.rejects(q.submit(7), QueueClosedError);
    assert.deepEqual(await Promise.all(jobs), [2, 4, 6, 8, 10]);
    await closed;
    assert.equal(most, 2);
  });

  it('brig runtimes: what is offered, and why a runtime is not', async () => {
    const extra = testRuntimes();
    try {
      const r = brigCli(['runtimes', '--runtimes', extra.dir]);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /^LANGUAGE\s+VERSION\s+JUDGE0\s+ALIASES$/m);
      assert.match(r.out, /^python\s+3\.\d+\.\d+\s+71\s+py,py3,python3$/m);
      assert.match(r.out, /^not offered: nochain: no-such-toolchain-brig not found on PATH/m);
      const j = JSON.parse(brigCli(['runtimes', '--format', 'json']).out);
      assert.equal(j.find((x: any) => x.language === 'c').judge0_id, 50);
      const bad = brigCli(['runtimes', '--runtimes', '/nonexistent/dir']);
      assert.equal(bad.code, 125);
      assert.equal(bad.err, 'brig runtimes: runtimes directory /nonexistent/dir: ENOENT\n');
    } finally {
      extra.remove();
    }
  });

  it('a full queue: 503 with Retry-After (Piston and Judge0 alike), nothing queued for it', async () => {
    const s = await startServer({ concurrency: 1, config: { max_queue_size: 1 } });
    try {
      const slow = { language: 'bash', version: '*', files: [{ content: 'sleep 2; echo done' }] };
      const first = s.post('/api/v2/execute', slow);
      const second = s.post('/api/v2/execute', slow);
      // A third sent after the first was answered meets a queue with room again (the embedded queue admits it too): said so if it fails.
      let firstAnswered = false;
      void first.then(() => (firstAnswered = true));
      // Both taken (one running, one waiting) before the third comes: no race with a loaded machine.
      let seen: unknown;
      for (let t = 0; t < 100; t++) {
        const q = (seen = (await s.get('/healthz')).body.queue);
        if (q.active + q.depth >= 2) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const answeredBefore = firstAnswered;
      const third = await s.post('/api/v2/execute', slow);
      if (third.status !== 503) {
        const why = answeredBefore ? 'the first job had already been answered when the third was sent (machine too slow for this test)' : 'a third job admitted while the first still ran';
        assert.fail(`${why}; /healthz queue before it: ${JSON.stringify(seen)}; second: ${(await second).status}`);
      }
      assert.equal(third.headers.get('retry-after'), '1');
      assert.match(third.body.message, /queue is full/);
      const judge0 = await s.post('/submissions', { language_id: 46, source_code: 'echo x' });
      assert.equal(judge0.status, 503);
      assert.match(judge0.body.error, /queue is full/);
      assert.equal((await first).body.run.stdout, 'done\n');
      assert.equal((await second).body.run.stdout, 'done\n');
      const m = await s.get('/metrics');
      assert.match(m.body, /^brig_rejected_total\{reason="queue-full"\} 2$/m);
    } finally {
      await s.close();
    }
  });

  it('a config file: ceilings and defaults by Piston\'s and Judge0\'s names; a bad field named', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'brig-test-config-'));
    try {
      const file = join(dir, 'serve.json');
      writeFileSync(file, JSON.stringify({ max_queue_size: 7, piston: { run_timeout: 1000, output_max_size: 16 }, judge0: { max_cpu_time_limit: 2, submission_cache_duration: 1 } }));
      const s = await startServer({ configFile: file });
      try {
        const over = await s.post('/api/v2/execute', { language: 'bash', version: '*', files: [{ content: 'true' }], run_timeout: 2000 });
        assert.equal(over.status, 400);
        assert.equal(over.body.message, 'run_timeout cannot exceed the configured limit of 1000');
        const cut = await s.post('/api/v2/execute', { language: 'bash', version: '*', files: [{ content: 'echo 0123456789abcdefXYZ' }] });
        assert.deepEqual([cut.body.run.status, cut.body.run.stdout], ['OL', '0123456789abcdef']);
        const j = await s.post('/submissions?wait=true', { language_id: 46, source_code: 'echo kept', cpu_time_limit: 3 });
        assert.deepEqual(j.body.cpu_time_limit, ['must be less than or equal to 2']);
        const kept = await s.post('/submissions?wait=true', { language_id: 46, source_code: 'echo kept' });
        assert.equal((await s.get(`/submissions/${kept.body.token}`)).status, 200);
        assert.equal((await s.get('/config_info')).body.max_queue_size, 7);
        // Kept for submission_cache_duration (1 s here), then dropped.
        await new Promise((r) => setTimeout(r, 2100));
        assert.equal((await s.get(`/submissions/${kept.body.token}`)).status, 404);
      } finally {
        await s.close();
      }
      writeFileSync(file, JSON.stringify({ piston: { run_timout: 5 } }));
      await assert.rejects(startServer({ configFile: file }), /serve\.json: piston: must NOT have additional properties: unknown field run_timout/);
      writeFileSync(file, JSON.stringify({ judge0: { max_cpu_time_limit: -1 } }));
      await assert.rejects(startServer({ configFile: file }), /judge0\.max_cpu_time_limit: must be >= 0/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--api-key: X-Auth-Token required everywhere but /healthz and the page', async () => {
    const s = await startServer({ apiKeys: ['secret-key-1', 'secret-key-2'] });
    try {
      assert.equal((await s.get('/api/v2/runtimes')).status, 401);
      assert.equal((await s.get('/languages', { 'X-Auth-Token': 'wrong-key-xx' })).status, 401);
      assert.equal((await s.get('/languages', { 'X-Auth-Token': 'secret-key-2' })).status, 200);
      assert.equal((await s.get('/healthz')).status, 200);
      assert.equal((await s.get('/')).status, 200);
      const r = await s.post('/api/v2/execute', { language: 'bash', version: '*', files: [{ content: 'echo ok' }] }, { 'X-Auth-Token': 'secret-key-1' });
      assert.equal(r.body.run.stdout, 'ok\n');
    } finally {
      await s.close();
    }
  });

  it('close() drains: a running job finishes and is answered, new ones are refused', async () => {
    const s = await startServer({ concurrency: 1 });
    const running = s.post('/api/v2/execute', { language: 'bash', version: '*', files: [{ content: 'sleep 0.5; echo finished' }] });
    await new Promise((r) => setTimeout(r, 150));
    const closed = s.close();
    const r = await running;
    assert.equal(r.status, 200);
    assert.equal(r.body.run.stdout, 'finished\n');
    await closed;
    await assert.rejects(fetch(s.url + '/healthz'));
  });

  it('brig serve: listens where told, answers, stops on SIGTERM with exit 0; bad flags are one line, exit 125', async () => {
    const child = spawn(process.execPath, [brigBin, 'serve', '--listen', '127.0.0.1:0', '--quiet', '--concurrency', '1'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr.on('data', (d: Buffer) => {
        err += d;
        const m = /listening on (http:\/\/\S+)/.exec(err);
        if (m) resolve(m[1]);
      });
      child.once('close', () => reject(new Error(`brig serve exited: ${err}`)));
    });
    const r = await fetch(url + '/api/v2/execute', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ language: 'python', version: '3', files: [{ content: 'print(6*7)' }] }) });
    assert.equal((await r.json()).run.stdout, '42\n');
    const code = await new Promise<number | null>((resolve) => {
      child.once('close', (c) => resolve(c));
      child.kill('SIGTERM');
    });
    assert.equal(code, 0);
    assert.match(err, /SIGTERM: draining/);
    const bad = spawn(process.execPath, [brigBin, 'serve', '--config', '/nonexistent/brig.json'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let badErr = '';
    bad.stderr.on('data', (d: Buffer) => (badErr += d));
    const badCode = await new Promise<number | null>((resolve) => bad.once('close', resolve));
    assert.equal(badCode, 125);
    assert.equal(badErr, 'brig serve: --config /nonexistent/brig.json: ENOENT\n');
  });
});

guardLeaks();
