// bin/brig as a user runs it: exit codes, reports, logs, help.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { brigCli, guardLeaks } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'brig-cli-'));
chmodSync(work, 0o777);
after(() => rmSync(work, { recursive: true, force: true }));

const cli = brigCli;

describe('brig run', () => {
  it("passes on the program's exit code, 128+N for a signal, 125 for its own errors", () => {
    assert.equal(cli(['run', '--', '/bin/sh', '-c', 'exit 7']).code, 7);
    assert.equal(cli(['run', '--', '/bin/sh', '-c', 'kill -TERM $$']).code, 128 + 15);
    const missing = cli(['run', '--', 'no-such-command']);
    assert.equal(missing.code, 127); // Docker's "command not found"
    assert.match(missing.err, /^brig run: exec failed for no-such-command: ENOENT/);
    const badOpt = cli(['run', '--nope', '--', 'true']);
    assert.equal(badOpt.code, 125);
    assert.match(badOpt.err, /^brig run: unknown flag: --nope /);
    assert.equal(cli(['run']).code, 125);
  });

  it('inherits stdio by default and reads --stdin FILE', () => {
    const r = cli(['run', '--', '/bin/cat'], { input: 'piped in' });
    assert.equal(r.out, 'piped in');
    writeFileSync(join(work, 'in.txt'), 'file in');
    assert.equal(cli(['run', '--stdin', join(work, 'in.txt'), '--', '/bin/cat']).out, 'file in');
  });

  it('applies -v, --tmpfs, -e, -w, --hostname, --uid', () => {
    writeFileSync(join(work, 'data.txt'), 'data');
    const r = cli([
      'run',
      '-v', `${work}:/work:rw`,
      '--tmpfs', '/scratch:1m',
      '-e', 'GREETING=hi',
      '-w', '/work',
      '--hostname', 'box1',
      '--uid', '2000',
      '--', '/bin/sh', '-c', 'cat data.txt; echo " $GREETING $(hostname) $(id -u) $(pwd)"; echo out > /work/out.txt; echo s > /scratch/s && cat /scratch/s',
    ]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, 'data hi box1 2000 /work\ns\n');
    assert.equal(readFileSync(join(work, 'out.txt'), 'utf8'), 'out\n');
    const ro = cli(['run', '-v', `${work}:/work`, '--', '/bin/sh', '-c', 'echo x > /work/y']);
    assert.notEqual(ro.code, 0);
    assert.match(ro.err, /Read-only file system/);
  });

  it('--wall-time kills the sandbox and says so', () => {
    const t0 = Date.now();
    const r = cli(['run', '--wall-time', '0.3', '--', '/bin/sleep', '30']);
    assert.equal(r.code, 137);
    assert.match(r.err, /wall-time limit/);
    assert.ok(Date.now() - t0 < 10000);
  });

  it('--report writes the result as JSON without the output', () => {
    const file = join(work, 'report.json');
    const r = cli(['run', '--report', file, '--', '/bin/sh', '-c', 'echo hello; exit 3']);
    assert.equal(r.code, 3);
    assert.equal(r.out, 'hello\n');
    const rep = JSON.parse(readFileSync(file, 'utf8'));
    assert.equal(rep.status, 'exit-nonzero');
    assert.equal(rep.exitCode, 3);
    assert.equal(typeof rep.wallTimeMs, 'number');
    assert.equal(typeof rep.cpuTimeMs.user, 'number');
    assert.equal(rep.stdout, undefined);
    const bad = join(work, 'bad.json');
    cli(['run', '--report', bad, '-w', '/nope', '--', 'true']);
    const err = JSON.parse(readFileSync(bad, 'utf8'));
    assert.equal(err.status, 'setup-error');
    assert.equal(err.error.step, 'chdir');
    assert.equal(err.error.code, 'ENOENT');
  });

  it('logs JSON on stderr only when asked, never into the program output', () => {
    const quiet = cli(['run', '--', '/bin/echo', 'out']);
    assert.equal(quiet.err, '');
    const loud = cli(['run', '--log-level', 'debug', '--', '/bin/echo', 'out']);
    assert.equal(loud.out, 'out\n');
    const lines = loud.err.trim().split('\n').map((l) => JSON.parse(l));
    assert.ok(lines.some((l) => l.msg === 'sandbox launched' && l.clone3 === true));
    assert.ok(lines.some((l) => l.msg === 'sandbox exited' && l.status === 'ok'));
  });

  it('falls back to clone when clone3 is unavailable', () => {
    const r = cli(['run', '--log-level', 'debug', '--', '/bin/sh', '-c', 'echo $$; grep CapEff /proc/self/status'], { env: { ...process.env, BRIG_NO_CLONE3: '1' } });
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^2\nCapEff:\s+0+\n$/);
    assert.ok(r.err.split('\n').filter(Boolean).some((l) => JSON.parse(l).clone3 === false));
  });

  it('documents every option in --help', () => {
    const top = cli(['--help']);
    assert.equal(top.code, 0);
    assert.match(top.out, /run\s+run a command in a new sandbox/);
    const h = cli(['run', '--help']);
    assert.equal(h.code, 0);
    for (const opt of ['--rootfs', '--volume', '--tmpfs', '--env', '--workdir', '--hostname', '--uid', '--gid', '--wall-time', '--stdin', '--report', '--log-level', '--tmp-size', '--seccomp', '--rlimit', '--id-map'])
      assert.ok(h.out.includes(opt), `help lacks ${opt}`);
  });

  it('reports a seccomp violation plainly, with exit status 159', () => {
    const r = cli(['run', '--', '/bin/sh', '-c', 'mount -t tmpfs x /mnt; echo after']);
    assert.equal(r.code, 128 + 31);
    assert.equal(r.out, '');
    assert.match(r.err, /brig run: seccomp violation: the program called mount \((x86_64|aarch64), nr \d+\), which the policy forbids/);
    const none = cli(['run', '--seccomp', 'none', '--', '/bin/sh', '-c', 'mount -t tmpfs x /mnt 2>/dev/null; echo after']);
    assert.equal(none.out, 'after\n');
  });
});

describe('brig seccomp', () => {
  it('dump shows the compiled program with its size and depth', () => {
    const r = cli(['seccomp', 'dump']);
    assert.equal(r.code, 0);
    assert.match(r.out, /^; policy default, (x86_64|aarch64): \d+ instructions, worst-case decision depth \d+$/m);
    assert.match(r.out, /^0+: ld  arch$/m);
    const arm = cli(['seccomp', 'dump', '--arch', 'aarch64', '--report']);
    assert.match(arm.out, /jeq #0xc00000b7/);
    assert.match(arm.out, /ret USER_NOTIF/);
  });

  it('test says what the policy decides for a call and why', () => {
    const r = cli(['seccomp', 'test', '--arch', 'x86_64', 'clone', '0x10000000']);
    assert.equal(r.code, 0);
    assert.match(r.out, /^clone\(0x10000000, .*\) on x86_64: ERRNO\(1\) after \d+ instructions \(rule \d+: clone with namespace flags/);
    assert.match(cli(['seccomp', 'test', '--arch', 'x86_64', 'getpid']).out, /ALLOW/);
    assert.match(cli(['seccomp', 'test', '--arch', 'x86_64', 'kexec_load']).out, /KILL_PROCESS .*replacing or restarting the host kernel/);
    const bad = cli(['seccomp', 'test', 'no_such_call']);
    assert.equal(bad.code, 125);
    assert.match(bad.err, /has no syscall named "no_such_call"/);
  });

  it('learn writes a policy that runs the program, in brig or Docker form', () => {
    const file = join(work, 'learned.json');
    const r = cli(['seccomp', 'learn', '-o', file, '--', '/bin/echo', 'learned']);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, 'learned\n');
    assert.match(r.err, /\d+ distinct syscalls seen/);
    const pol = JSON.parse(readFileSync(file, 'utf8'));
    assert.equal(pol.defaultAction, 'kill-process');
    assert.ok(pol.rules[0].syscalls.includes('execve'));
    assert.equal(cli(['run', '--seccomp', file, '--', '/bin/echo', 'again']).out, 'again\n');
    const docker = join(work, 'learned-docker.json');
    cli(['seccomp', 'learn', '--format', 'docker', '-o', docker, '--', '/bin/echo', 'x']);
    const d = JSON.parse(readFileSync(docker, 'utf8'));
    assert.equal(d.defaultAction, 'SCMP_ACT_KILL_PROCESS');
    assert.equal(cli(['run', '--seccomp', docker, '--', '/bin/echo', 'docker']).out, 'docker\n');
  });

  it('brig doctor checks the host for real and says how to fix what is missing', () => {
    const r = cli(['doctor', '--json']);
    const report = JSON.parse(r.out);
    const byName = Object.fromEntries(report.checks.map((c: { name: string }) => [c.name, c]));
    for (const name of ['kernel', 'user namespaces', 'clone3 and pidfd', 'seccomp', 'cgroups', 'overlayfs in a user namespace', 'landlock', 'multi-id maps']) assert.ok(byName[name], `no ${name} check`);
    assert.equal(byName['user namespaces'].state, 'ok'); // the suite itself needs them
    assert.equal(byName['seccomp'].state, 'ok');
    for (const c of report.checks) if (c.state !== 'ok') assert.ok(c.fix, `${c.name} has no fix`);
    assert.equal(r.code, report.checks.some((c: { state: string }) => c.state === 'fail') ? 1 : 0);
    const text = cli(['doctor']);
    assert.match(text.out, /^ok\s+user namespaces: /m);
  });
});

guardLeaks();
