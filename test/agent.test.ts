// The fast path: `brig` (the native client, build/Release/brig-client, as
// installed: a symlink on PATH) -> the per-user agent. Every test uses its
// own XDG_RUNTIME_DIR, so no real agent of this user is touched, and compares
// with the Node CLI (BRIG_NO_AGENT=1) where "the same as in-process" is the
// claim.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { guardLeaks, isRoot, ownCgroups } from './helpers.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '../..');
const client = join(repo, 'build/Release/brig-client');
const brigNode = join(repo, 'bin/brig-node');
const clientBuilt = existsSync(client);
const skip = !clientBuilt && 'skipped: build/Release/brig-client not built';

const dirs: string[] = [];
// `brig` as docs/agent.md installs it: a symlink to the client in a
// directory on PATH (here a chain of two links, as npm's bin link into a
// linked package makes), far from the package.
const pathDir = mkdtempSync(join(tmpdir(), 'agent-path-'));
dirs.push(pathDir);
mkdirSync(join(pathDir, 'bin'));
mkdirSync(join(pathDir, 'lib'));
symlinkSync(client, join(pathDir, 'lib/brig-client'));
symlinkSync('../lib/brig-client', join(pathDir, 'bin/brig'));
const brig = join(pathDir, 'bin/brig');
const PATH = `${join(pathDir, 'bin')}:${process.env.PATH}`;
after(async () => {
  for (const d of dirs) await stopAgents(d);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A fresh runtime dir: its own agent, started on demand. */
function runtime(idleSeconds = 60): { dir: string; env: NodeJS.ProcessEnv } {
  const dir = mkdtempSync(join(tmpdir(), 'agent-test-'));
  dirs.push(dir);
  // BRIG_AGENT_VERBOSE: a run the agent did not serve says so on stderr,
  // so the comparisons with the Node CLI below would see it.
  const env: NodeJS.ProcessEnv = { ...process.env, PATH, XDG_RUNTIME_DIR: dir, BRIG_AGENT_IDLE: String(idleSeconds), BRIG_AGENT_VERBOSE: '1', BRIG_BOX_ROOT: join(dir, 'boxes') };
  delete env.BRIG_NO_AGENT;
  return { dir, env };
}

/** The pids of the agents that logged that they listen in this runtime dir. */
function agentPids(dir: string): number[] {
  const log = join(dir, 'brig/agent.log');
  if (!existsSync(log)) return [];
  return [...readFileSync(log, 'utf8').matchAll(/brig agent (\d+): listening/g)].map((m) => Number(m[1]));
}

function alive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

async function until(what: string, ok: () => boolean, ms = 10000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Ends the agents of a runtime dir (we started them, by pid) and waits until they are gone. */
async function stopAgents(dir: string): Promise<void> {
  for (const pid of agentPids(dir)) {
    if (!alive(pid)) continue;
    process.kill(pid, 'SIGTERM');
    await until(`agent ${pid} to leave`, () => !alive(pid));
  }
}

/** Processes of this user whose command line holds marker (a sandboxed program the agent runs is no descendant of ours). */
function withMarker(marker: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0').includes(marker) && statSync(`/proc/${e}`).uid === process.getuid!()) out.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function brigSync(args: string[], env: NodeJS.ProcessEnv, opts: { input?: string; stdio?: [unknown, unknown, unknown]; cwd?: string } = {}) {
  const r = spawnSync(brig, args, { encoding: 'utf8', env, input: opts.input ?? '', timeout: 60000, cwd: opts.cwd, ...(opts.stdio ? { stdio: opts.stdio as never } : {}) });
  return { code: r.status, signal: r.signal, out: r.stdout, err: r.stderr };
}

describe('brig run through the agent', { skip }, () => {
  const { dir, env } = runtime();
  const inProcess = { ...env, BRIG_NO_AGENT: '1' };

  it('starts the agent on first use; its socket is 0600 in a 0700 directory', () => {
    assert.equal(existsSync(join(dir, 'brig/agent.sock')), false);
    const r = brigSync(['run', '--', '/bin/sh', '-c', 'echo started'], env);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, 'started\n');
    assert.equal(agentPids(dir).length, 1);
    assert.equal(statSync(join(dir, 'brig/agent.sock')).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'brig')).mode & 0o777, 0o700);
    // the next run is served by the same agent
    assert.equal(brigSync(['run', '--', '/bin/true'], env).code, 0);
    assert.equal(agentPids(dir).length, 1);
  });

  it('passes stdin, stdout and stderr through: pipes', () => {
    const r = brigSync(['run', '--', '/bin/sh', '-c', 'cat; echo to-err >&2; exit 3'], env, { input: 'piped in\n' });
    assert.deepEqual(r, { code: 3, signal: null, out: 'piped in\n', err: 'to-err\n' });
  });

  it('passes files as stdin and stdout', () => {
    const work = mkdtempSync(join(dir, 'files-'));
    writeFileSync(join(work, 'in'), 'from a file\n');
    const inFd = openSync(join(work, 'in'), 'r');
    const outFd = openSync(join(work, 'out'), 'w');
    try {
      const r = brigSync(['run', '--', '/bin/sh', '-c', 'cat; test -f /proc/self/fd/1 || ls -l /proc/self/fd/1 >/dev/null; echo done'], env, { stdio: [inFd, outFd, 'pipe'] });
      assert.equal(r.code, 0, r.err);
    } finally {
      closeSync(inFd);
      closeSync(outFd);
    }
    assert.equal(readFileSync(join(work, 'out'), 'utf8'), 'from a file\ndone\n');
  });

  it('gives a closed fd what the Node CLI gives it', () => {
    for (const redirect of ['<&-', '>&-', '2>&-']) {
      const script = `"${brig}" run -- /bin/sh -c 'read x; echo "read=$?"; echo out; echo err >&2' ${redirect}; echo "rc=$?"`;
      const fast = spawnSync('/bin/sh', ['-c', script], { encoding: 'utf8', env, timeout: 30000 });
      const slow = spawnSync('/bin/sh', ['-c', script], { encoding: 'utf8', env: inProcess, timeout: 30000 });
      assert.equal(fast.stdout, slow.stdout, redirect);
      assert.equal(fast.stderr, slow.stderr, redirect);
      assert.match(fast.stdout + fast.stderr, /rc=0/);
    }
  });

  it('passes a terminal through (script(1) makes one)', { skip: !existsSync('/usr/bin/script') && 'skipped: no script(1)' }, () => {
    const cmd = `"${brig}" run -- /bin/sh -c 'test -t 0 && test -t 1 && test -t 2 && echo all-terminals; exit 4'`;
    const r = spawnSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', env, timeout: 30000 });
    assert.match(r.stdout, /all-terminals/);
    assert.equal(r.status, 4);
  });

  it('gives the exit codes and messages of the Node CLI', () => {
    const cases = [
      ['run', '--', '/bin/sh', '-c', 'exit 7'],
      ['run', '--', '/bin/sh', '-c', 'kill -TERM $$'],
      ['run', '--', '/bin/sh', '-c', 'kill -SEGV $$'],
      ['run', '--', 'no-such-command'],
      ['run', '--nope', '--', 'true'],
      ['run', '--memory', 'lots', '--', 'true'],
      ['run'],
      ['run', '--wall-time', '0.3', '--', '/bin/sleep', '5'],
      ['run', '--output-limit', '10', '--', '/bin/sh', '-c', 'echo 0123456789abcdef; exec /bin/sleep 5'],
      ['run', '-e', 'FROM_HOST', '-e', 'SET=1', '--', '/bin/sh', '-c', 'echo "$FROM_HOST $SET"'],
    ];
    for (const args of cases) {
      const e = { ...env, FROM_HOST: 'host-value' };
      const fast = brigSync(args, e);
      const slow = brigSync(args, { ...e, BRIG_NO_AGENT: '1' });
      assert.equal(fast.code, slow.code, args.join(' '));
      assert.equal(fast.out, slow.out, args.join(' '));
      assert.equal(fast.err, slow.err, args.join(' '));
    }
  });

  it('serves brig box run as the Node CLI does', () => {
    const created = brigSync(['box', 'create'], env);
    assert.equal(created.code, 0, created.err);
    const id = created.out.split(' ')[0];
    const script = 'pwd; echo "$0" >> log; cat log; exit 5';
    const fast = brigSync(['box', 'run', id, '--', '/bin/sh', '-c', script, 'fast'], env);
    const slow = brigSync(['box', 'run', id, '--', '/bin/sh', '-c', script, 'slow'], inProcess);
    assert.deepEqual([fast.code, fast.out, fast.err], [5, '/box\nfast\n', '']);
    assert.deepEqual([slow.code, slow.out, slow.err], [5, '/box\nfast\nslow\n', '']);
    const missing = brigSync(['box', 'run', '999', '--', '/bin/true'], env);
    const missingSlow = brigSync(['box', 'run', '999', '--', '/bin/true'], inProcess);
    assert.deepEqual([missing.code, missing.err], [missingSlow.code, missingSlow.err]);
    assert.equal(brigSync(['box', 'rm', id], env).code, 0);
  });

  it('writes --report (relative to the caller) as the Node CLI does', () => {
    const work = mkdtempSync(join(dir, 'report-'));
    const fast = brigSync(['run', '--report', 'fast.json', '--', '/bin/sh', '-c', 'exit 2'], env, { cwd: work });
    const slow = brigSync(['run', '--report', 'slow.json', '--', '/bin/sh', '-c', 'exit 2'], inProcess, { cwd: work });
    assert.equal(fast.code, 2);
    assert.equal(slow.code, 2);
    const a = JSON.parse(readFileSync(join(work, 'fast.json'), 'utf8'));
    const b = JSON.parse(readFileSync(join(work, 'slow.json'), 'utf8'));
    assert.deepEqual(Object.keys(a).sort(), Object.keys(b).sort());
    assert.equal(a.status, 'exit-nonzero');
    assert.equal(a.exitCode, 2);
    const meta = brigSync(['run', '--report', 'meta.txt', '--report-format', 'isolate', '--', '/bin/true'], env, { cwd: work });
    assert.equal(meta.code, 0);
    assert.match(readFileSync(join(work, 'meta.txt'), 'utf8'), /^exitcode:0$/m);
    for (const cmd of [['/bin/true'], ['/bin/sh', '-c', 'exit 3']]) {
      const bad = brigSync(['run', '--report', 'no/such/dir/r.json', '--', ...cmd], env, { cwd: work });
      const badSlow = brigSync(['run', '--report', 'no/such/dir/r.json', '--', ...cmd], inProcess, { cwd: work });
      assert.deepEqual([bad.code, bad.err], [badSlow.code, badSlow.err]);
      assert.match(bad.err, /^brig run: --report no\/such\/dir\/r.json: ENOENT; the run's result was not written\n$/);
    }
  });

  it('hands what it does not serve to the Node CLI', () => {
    const help = brigSync(['run', '--help'], env);
    assert.equal(help.code, 0);
    assert.match(help.out, /^Usage: brig run/);
    assert.equal(brigSync(['--version'], env).out, brigSync(['--version'], inProcess).out);
    // a variable brig reads differs from the agent's: the Node CLI runs it, correctly
    const r = brigSync(['run', '--', '/bin/sh', '-c', 'echo ok'], { ...env, BRIG_NO_SKELETON: '1' });
    assert.deepEqual([r.code, r.out], [0, 'ok\n']);
  });

  it('forwards SIGINT and SIGTERM to the run', async () => {
    for (const [sig, marker] of [['SIGINT', '41.25'], ['SIGTERM', '41.5']] as const) {
      const child = spawn(brig, ['run', '--', '/bin/sh', '-c', `echo ready; exec /bin/sleep ${marker}`], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      await new Promise<void>((ready) => child.stdout.once('data', () => ready()));
      await until('the program to start', () => withMarker(marker).length === 1);
      child.kill(sig);
      const [, signal] = await new Promise<[number | null, string | null]>((done) => child.once('exit', (c, s) => done([c, s])));
      assert.equal(signal, sig);
      await until('the sandboxed program to end', () => withMarker(marker).length === 0);
    }
  });

  it('fails a run with exit 125 when the agent is killed during it, and the next run works', async () => {
    const [agent] = agentPids(dir).filter(alive);
    assert.ok(agent);
    const child = spawn(brig, ['run', '--', '/bin/sh', '-c', 'echo ready; exec /bin/sleep 42.5'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d));
    await new Promise<void>((ready) => child.stdout.once('data', () => ready()));
    process.kill(agent, 'SIGKILL');
    const code = await new Promise<number | null>((done) => child.once('exit', (c) => done(c)));
    assert.equal(code, 125);
    assert.match(err, /^brig: the brig agent \(pid \d+\) ended during the run; the run failed/);
    assert.equal(err.trim().split('\n').length, 1);
    await until('the sandboxed program to end', () => withMarker('42.5').length === 0);
    const next = brigSync(['run', '--', '/bin/sh', '-c', 'echo next'], env);
    assert.deepEqual([next.code, next.out], [0, 'next\n']);
    assert.equal(agentPids(dir).filter(alive).length, 1);
    assert.notEqual(agentPids(dir).filter(alive)[0], agent);
  });

  it('ends a run with exit 125 and a message when the agent is stopped (SIGTERM) during it', async () => {
    const [agent] = agentPids(dir).filter(alive);
    assert.ok(agent);
    const child = spawn(brig, ['run', '--', '/bin/sh', '-c', 'echo ready; exec /bin/sleep 43.5'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d));
    await new Promise<void>((ready) => child.stdout.once('data', () => ready()));
    process.kill(agent, 'SIGTERM');
    const code = await new Promise<number | null>((done) => child.once('exit', (c) => done(c)));
    assert.equal(code, 125);
    assert.match(err, /^brig: the brig agent \(pid \d+\) was stopped during the run; the run was ended\n$/);
    await until('the agent to leave', () => !alive(agent));
    assert.equal(existsSync(join(dir, 'brig/agent.sock')), false);
    assert.equal(withMarker('43.5').length, 0);
    assert.deepEqual([brigSync(['run', '--', '/bin/true'], env).code], [0]);
  });

  it('never runs a request twice: an agent that stops answering before it acknowledges loses the run to the Node CLI', async () => {
    const [agent] = agentPids(dir).filter(alive);
    assert.ok(agent);
    const work = mkdtempSync(join(dir, 'twice-'));
    const ran = join(work, 'ran');
    process.kill(agent, 'SIGSTOP');
    let r;
    try {
      // The client waits 5 s for the acknowledgement, withdraws, and runs the Node CLI.
      r = brigSync(['run', '-v', `${work}:/work:rw`, '--', '/bin/sh', '-c', 'echo once >> /work/ran; echo done'], env);
    } finally {
      process.kill(agent, 'SIGCONT');
    }
    assert.deepEqual([r.code, r.out], [0, 'done\n']);
    // The agent now reads the withdrawn request; its acknowledgement fails, so it runs nothing.
    await new Promise((res) => setTimeout(res, 1500));
    assert.equal(readFileSync(ran, 'utf8'), 'once\n');
    assert.ok(alive(agent));
    assert.equal(brigSync(['run', '--', '/bin/true'], env).code, 0);
  });

  it('runs through the Node CLI when an agent holds the lock but never listens (half-started)', async () => {
    const { native } = await import('../src/native.js');
    const half = runtime();
    mkdirSync(join(half.dir, 'brig'), { mode: 0o700 });
    const lock = native.lockExclusive(join(half.dir, 'brig/agent.lock'));
    try {
      const t0 = Date.now();
      const r = brigSync(['run', '--', '/bin/sh', '-c', 'echo fell-back'], half.env);
      assert.deepEqual([r.code, r.out], [0, 'fell-back\n']);
      assert.ok(Date.now() - t0 < 30000);
      assert.deepEqual(agentPids(half.dir), []);
    } finally {
      native.close(lock);
    }
  });

  it("refuses another user's connection (SO_PEERCRED)", { skip: !isRoot && 'skipped: needs root to connect as another uid' }, async () => {
    const sock = join(dir, 'brig/agent.sock');
    // Open the way for the test only, so that SO_PEERCRED is what refuses.
    chmodSync(dir, 0o711);
    chmodSync(join(dir, 'brig'), 0o711);
    chmodSync(sock, 0o666);
    try {
      const probe = `const s = require('net').connect(${JSON.stringify(sock)}); const len = Buffer.alloc(4); const body = Buffer.from('brig-agent-1\\0' + '000\\0/\\0' + '18\\0' + '3\\0run\\0--\\0/bin/true\\0' + '0\\0' + '0\\0'); len.writeUInt32LE(body.length); let got = 0; s.on('data', (d) => (got += d.length)); s.on('error', () => {}); s.on('close', () => { console.log('closed after ' + got + ' bytes'); }); s.write(Buffer.concat([len, body]));`;
      const r = spawnSync(process.execPath, ['-e', probe], { uid: 65534, gid: 65534, encoding: 'utf8', timeout: 20000 });
      assert.equal(r.stdout.trim(), 'closed after 0 bytes', r.stderr);
      assert.match(readFileSync(join(dir, 'brig/agent.log'), 'utf8'), /refused a connection from pid \d+ uid 65534/);
    } finally {
      chmodSync(sock, 0o600);
      chmodSync(join(dir, 'brig'), 0o700);
      chmodSync(dir, 0o700);
    }
  });
});

describe('the brig command is the native client', { skip }, () => {
  /** The process a spawned `brig` is, once the program inside printed "ready". */
  async function exeOf(args: string[], env: NodeJS.ProcessEnv, marker: string): Promise<{ exe: string; cmdline: string[] }> {
    const child = spawn('brig', args, { env, cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      await new Promise<void>((ready, fail) => {
        child.stdout.once('data', () => ready());
        child.once('exit', (c) => fail(new Error(`brig ended (${c}) before the program was ready`)));
      });
      return { exe: readlinkSync(`/proc/${child.pid}/exe`), cmdline: readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0') };
    } finally {
      child.kill('SIGTERM');
      await new Promise((done) => (child.exitCode !== null || child.signalCode !== null ? done(null) : child.once('exit', done)));
      await until('the sandboxed program to end', () => withMarker(marker).length === 0);
    }
  }

  it('is the client itself, found on PATH through symlinks, and finds its package from there', async () => {
    const { dir, env } = runtime();
    // No shell and no Node in between: the process the caller started is the client.
    const got = await exeOf(['run', '--', '/bin/sh', '-c', 'echo ready; exec /bin/sleep 44.25'], env, '44.25');
    assert.equal(got.exe, realpathSync(client));
    assert.equal(agentPids(dir).length, 1);
    const r = spawnSync('/bin/sh', ['-c', 'cd / && brig run -- /bin/sh -c "echo through-path"'], { encoding: 'utf8', env, timeout: 30000 });
    assert.deepEqual([r.status, r.stdout, r.stderr], [0, 'through-path\n', '']);
    await stopAgents(dir);
  });

  it('BRIG_NO_AGENT=1 makes it the Node CLI (exec, same process), with no agent', async () => {
    const { dir, env } = runtime();
    const got = await exeOf(['run', '--', '/bin/sh', '-c', 'echo ready; exec /bin/sleep 44.75'], { ...env, BRIG_NO_AGENT: '1' }, '44.75');
    assert.notEqual(got.exe, realpathSync(client));
    assert.match(got.exe, /\/node[^/]*$/);
    assert.deepEqual(got.cmdline.slice(1, 5), ['--', brigNode, 'run', '--']);
    assert.equal(existsSync(join(dir, 'brig')), false);
  });

  it('hands a verb it does not serve to the Node CLI: same exit code and output', () => {
    const { dir, env } = runtime();
    delete env.BRIG_AGENT_VERBOSE; // which would say so on stderr for run --help
    const cases = [['--version'], ['no-such-verb'], ['ps', '--no-such-flag'], ['volume', 'inspect', 'no-such-volume-i20a'], ['run', '--help'], ['--help']];
    for (const args of cases) {
      const viaClient = spawnSync('brig', args, { encoding: 'utf8', env, cwd: '/', timeout: 30000 });
      const direct = spawnSync(process.execPath, ['--', brigNode, ...args], { encoding: 'utf8', env: { ...env, BRIG_NO_AGENT: '1' }, cwd: '/', timeout: 30000 });
      assert.deepEqual([viaClient.status, viaClient.stdout, viaClient.stderr], [direct.status, direct.stdout, direct.stderr], args.join(' '));
    }
    // Only `run --help` reached an agent (run is its verb; it answered "not served").
    assert.equal(agentPids(dir).length, 1);
  });

  it('a copy outside its package says so instead of guessing', () => {
    const { dir, env } = runtime();
    const copy = join(dir, 'brig-copy');
    copyFileSync(client, copy);
    chmodSync(copy, 0o755);
    const r = spawnSync(copy, ['run', '--', '/bin/true'], { encoding: 'utf8', env, timeout: 30000 });
    assert.equal(r.status, 125);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, `brig: ${copy} is not inside a brig package (expected PACKAGE/build/Release/brig-client, with PACKAGE/bin/brig-node): link it (ln -s), do not copy it\n`);
  });

  it('bin/brig without a built client runs the Node CLI (the checkout fallback)', () => {
    const { dir, env } = runtime();
    // A package whose build/ has no client: bin/brig as in the tree, and the
    // Node CLI (a link: it finds dist/ from its real path).
    const pkg = join(dir, 'pkg');
    mkdirSync(join(pkg, 'bin'), { recursive: true });
    copyFileSync(join(repo, 'bin/brig'), join(pkg, 'bin/brig'));
    chmodSync(join(pkg, 'bin/brig'), 0o755);
    symlinkSync(brigNode, join(pkg, 'bin/brig-node'));
    const r = spawnSync(join(pkg, 'bin/brig'), ['run', '--', '/bin/sh', '-c', 'echo no-client; exit 3'], { encoding: 'utf8', env, timeout: 60000 });
    assert.deepEqual([r.status, r.stdout, r.stderr], [3, 'no-client\n', '']);
    assert.equal(existsSync(join(dir, 'brig')), false);
  });

  it('bin/brig in the tree (the script for a checkout) reaches the same agent', () => {
    const { dir, env } = runtime();
    const a = spawnSync(brig, ['run', '--', '/bin/sh', '-c', 'echo one'], { encoding: 'utf8', env, timeout: 30000 });
    const b = spawnSync(join(repo, 'bin/brig'), ['run', '--', '/bin/sh', '-c', 'echo two'], { encoding: 'utf8', env, timeout: 30000 });
    assert.deepEqual([a.status, a.stdout, b.status, b.stdout], [0, 'one\n', 0, 'two\n']);
    assert.equal(agentPids(dir).length, 1);
  });
});

describe('one agent per user', { skip }, () => {
  it('8 parallel shell loops started together share one agent', async () => {
    const { dir, env } = runtime();
    const loops = Array.from({ length: 8 }, (_, n) =>
      new Promise<{ code: number | null; out: string }>((done) => {
        const c = spawn('/bin/bash', ['-c', `for i in 1 2 3 4 5; do "${brig}" run -- /bin/sh -c "echo ${n}-\\$0" $i || exit 1; done`], { env, stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        c.stdout.on('data', (d: Buffer) => (out += d));
        c.once('close', (code) => done({ code, out }));
      }),
    );
    const results = await Promise.all(loops);
    results.forEach((r, n) => assert.deepEqual(r, { code: 0, out: [1, 2, 3, 4, 5].map((i) => `${n}-${i}\n`).join('') }));
    assert.equal(agentPids(dir).length, 1, readFileSync(join(dir, 'brig/agent.log'), 'utf8'));
    await stopAgents(dir);
  });

  it('leaves after the idle time, and nothing of it is left', async () => {
    const { dir, env } = runtime(1);
    const r = brigSync(['run', '--memory', '64m', '--', '/bin/sh', '-c', 'echo idle'], env);
    assert.deepEqual([r.code, r.out], [0, 'idle\n']);
    const [agent] = agentPids(dir);
    assert.ok(agent && alive(agent));
    await until('the idle agent to leave', () => !alive(agent), 15000);
    assert.equal(existsSync(join(dir, 'brig/agent.sock')), false);
    assert.deepEqual(ownCgroups(agent), []);
    assert.match(readFileSync(join(dir, 'brig/agent.log'), 'utf8'), /leaving \(idle\)/);
    // and the next client starts a new one
    assert.equal(brigSync(['run', '--', '/bin/true'], env).code, 0);
    assert.equal(agentPids(dir).length, 2);
    await stopAgents(dir);
    assert.equal(existsSync(join(dir, 'brig/agent.sock')), false);
  });

  it('BRIG_NO_AGENT=1 starts no agent', () => {
    const { dir, env } = runtime();
    const r = brigSync(['run', '--', '/bin/sh', '-c', 'echo in-process'], { ...env, BRIG_NO_AGENT: '1' });
    assert.deepEqual([r.code, r.out], [0, 'in-process\n']);
    assert.equal(existsSync(join(dir, 'brig')), false);
  });
});

guardLeaks();
