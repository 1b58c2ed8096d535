// The default policy as the kernel enforces it, seen from inside a sandbox.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { run, type SandboxOptions } from '../src/index.js';
import { DEFAULT_POLICY, JUDGE_POLICY, hostArch, type SeccompPolicy } from '../src/seccomp/index.js';
import { SYSCALLS } from '../src/seccomp/syscalls.js';
import { i386EntryWorks, probe, probeMount } from './probe.js';
import { spawnSync } from 'node:child_process';
import { guardLeaks } from './helpers.js';

const arch = hostArch();
const table = SYSCALLS[arch] as Record<string, number>;
const nr = (name: string) => table[name];
const mounts = [probeMount()];
const work = mkdtempSync(join(tmpdir(), 'brig-seccomp-'));
after(() => rmSync(work, { recursive: true, force: true }));

async function call(name: string, args: (number | string)[] = [], opts: SandboxOptions = {}) {
  const r = await run(['/probe', 'syscall', String(nr(name)), ...args.map(String)], { mounts, ...opts });
  return { r, out: r.stdout.toString().trim() };
}

describe('the default policy in the kernel', () => {
  const denials = DEFAULT_POLICY.rules.filter((rule) => !rule.args && rule.action !== 'allow' && !(rule.syscalls.includes('clone') || rule.syscalls.includes('ioctl') || rule.syscalls.includes('socket') || rule.syscalls.includes('personality')));

  it('refuses every call it lists with an errno, with that errno; reports exactly the reported ones', async () => {
    let n = 0;
    for (const rule of denials) {
      assert.equal(rule.action, 'errno', `${rule.syscalls.join(',')}: the default policy kills nothing`);
      for (const name of rule.syscalls.filter((s) => table[s] !== undefined)) {
        const { r, out } = await call(name);
        assert.equal(r.status, 'ok', `${name}: ${r.status} ${r.violation?.syscall ?? ''}`);
        assert.equal(out, `ret=-1 errno=${rule.errno}`, name);
        assert.deepEqual(r.seccompDenials, rule.report ? [{ syscall: name, arch, errno: rule.errno, count: 1 }] : [], name);
        n++;
      }
    }
    assert.ok(n >= 60, `${n} calls`);
  });

  it('a C program calling every reported call gets each errno, keeps running, and each is listed once with its count', async () => {
    const reported = denials.filter((d) => d.report).flatMap((d) => d.syscalls.filter((s) => table[s] !== undefined).map((s) => ({ name: s, errno: d.errno! })));
    const r = await run(['/probe', 'refused', '3', ...reported.map((c) => String(nr(c.name)))], { mounts });
    assert.equal(r.status, 'ok', r.stderr.toString());
    const lines = r.stdout.toString().trim().split('\n');
    assert.equal(lines.pop(), 'alive');
    assert.deepEqual(lines, reported.map((c) => `${nr(c.name)} ret=-1 errno=${c.errno}`));
    assert.deepEqual(r.seccompDenials, reported.map((c) => ({ syscall: c.name, arch, errno: c.errno, count: 3 })));
    assert.ok(reported.some((c) => c.name === 'mount') && reported.some((c) => c.name === 'clock_settime') && reported.some((c) => c.name === 'open_by_handle_at'));
  });

  it('judge ends the run on every call the default policy forbids, naming the call', async () => {
    let n = 0;
    for (const rule of JUDGE_POLICY.rules.filter((d) => d.action === 'kill-process')) {
      for (const name of rule.syscalls.filter((s) => table[s] !== undefined)) {
        const { r, out } = await call(name, [], { seccomp: 'judge' });
        assert.equal(r.status, 'seccomp-violation', `${name}: ${r.status} ${out}`);
        assert.equal(r.violation?.syscall, name);
        assert.equal(r.violation?.arch, arch);
        assert.equal(r.violation?.nr, nr(name));
        assert.equal(out, '', `${name}: nothing after the call may run`);
        n++;
      }
    }
    assert.ok(n >= 25, `${n} calls`);
    // the judge profile uses it; the other refusals stay errno there, unreported (no notification)
    const viaProfile = await run(['/probe', 'syscall', String(nr('mount'))], { mounts, profile: 'judge' });
    assert.equal(viaProfile.status, 'seccomp-violation');
    const ptrace = await call('ptrace', [], { profile: 'judge' });
    assert.equal(ptrace.out, 'ret=-1 errno=1');
    assert.deepEqual(ptrace.r.seccompDenials, []);
  });

  it('a refused call never runs: mount answered EPERM leaves /tmp as it was', async () => {
    const r = await run(['/bin/sh', '-c', 'touch /tmp/mark; python3 -c "import ctypes,os; l=ctypes.CDLL(None,use_errno=True); print(l.mount(b\'none\', b\'/tmp\', b\'tmpfs\', 0, None), ctypes.get_errno())"; ls /tmp'], {});
    assert.equal(r.status, 'ok', r.stderr.toString());
    assert.equal(r.stdout.toString(), '-1 1\nmark\n');
    assert.deepEqual(r.seccompDenials, [{ syscall: 'mount', arch, errno: 1, count: 1 }]);
  });

  it('a notification nobody can answer fails the call with ENOSYS (the kernel), never lets it run', () => {
    // brig's refusals rely on it: were brig's listener gone (brig itself
    // dead), a refused call must fail, not run. A filter chain holds one
    // listener only (EBUSY inside a sandbox), so the probe shows it on the
    // host, stacking its own filter for the harmless getppid and closing the
    // listener before the call.
    const r = spawnSync(probe(), ['notify-dead', String(nr('getppid'))], { encoding: 'utf8' });
    assert.equal(r.stdout, 'ret=-1 errno=38\n');
  });

  it('unlisted calls fail with ENOSYS', async () => {
    const { out } = await call('memfd_secret');
    assert.equal(out, 'ret=-1 errno=38');
  });

  it('checks arguments: clone flags, ioctl commands, socket families, personalities', async () => {
    assert.equal((await call('clone', [0x10000000])).out, 'ret=-1 errno=1', 'clone(CLONE_NEWUSER)');
    assert.equal((await call('clone3')).out, 'ret=-1 errno=38', 'clone3 -> ENOSYS, for libc to fall back');
    assert.equal((await call('ioctl', [0, 0x5412, 0])).out, 'ret=-1 errno=1', 'TIOCSTI');
    assert.equal((await call('ioctl', [0, 0x541c, 0])).out, 'ret=-1 errno=1', 'TIOCLINUX');
    assert.equal((await call('ioctl', [0, 0x5401, 0])).out, 'ret=-1 errno=25', 'TCGETS on /dev/null: the kernel answers ENOTTY');
    assert.equal((await call('socket', [17, 3, 0])).out, 'ret=-1 errno=97', 'AF_PACKET');
    assert.equal((await call('socket', [38, 5, 0])).out, 'ret=-1 errno=97', 'AF_ALG');
    assert.equal((await call('socket', [16, 3, 9])).out, 'ret=-1 errno=97', 'NETLINK_AUDIT');
    assert.match((await call('socket', [16, 3, 0])).out, /^ret=\d+ errno=0$/, 'NETLINK_ROUTE');
    assert.match((await call('socket', [2, 1, 0])).out, /^ret=\d+ errno=0$/, 'AF_INET');
    assert.equal((await call('personality', [0x0040000])).out, 'ret=-1 errno=1', 'ADDR_NO_RANDOMIZE');
    assert.match((await call('personality', [0xffffffff])).out, /^ret=\d+ errno=0$/, 'query');
    // fork and threads still work: a pipeline needs clone without namespace flags
    const sh = await run(['/bin/sh', '-c', 'echo a | tr a b']);
    assert.equal(sh.stdout.toString(), 'b\n');
  });

  it('kills i386 int 0x80 and x32 calls', { skip: arch !== 'x86_64' && 'skipped: x86_64 only' }, async () => {
    const i386 = await run(['/probe', 'int80', '20'], { mounts });
    if (i386EntryWorks()) {
      assert.equal(i386.status, 'seccomp-violation');
      assert.equal(i386.violation?.arch, 'i386');
    } else {
      // this kernel refuses the gate itself: the call never ran
      assert.equal(i386.status, 'signaled');
      assert.equal(i386.signal, 'SIGSEGV');
    }
    assert.equal(i386.stdout.toString(), '');
    const x32 = await run(['/probe', 'x32', '39'], { mounts });
    assert.equal(x32.status, 'seccomp-violation');
    assert.equal(x32.violation?.arch, 'x32');
    assert.equal(x32.violation?.syscall, 'getpid');
  });

  it('runs programs in C, Python and Node', async () => {
    const c = await run(['/probe', 'hello'], { mounts });
    assert.equal(c.stdout.toString(), 'hello\n');
    const py = await run(['python3', '-c', 'import json, os, threading, subprocess; t = threading.Thread(target=print, args=("thread",)); t.start(); t.join(); print(subprocess.run(["echo", "sub"], capture_output=True).stdout.decode().strip(), json.dumps([os.getpid()]))']);
    assert.equal(py.status, 'ok', py.stderr.toString());
    assert.equal(py.stdout.toString(), 'thread\nsub [2]\n');
    const node = await run([
      process.execPath,
      '-e',
      'require("child_process").execFileSync("true"); const { Worker } = require("worker_threads"); new Worker("0", { eval: true }).on("exit", () => console.log("node ok"))',
    ]);
    assert.equal(node.status, 'ok', node.stderr.toString());
    assert.equal(node.stdout.toString(), 'node ok\n');
  });

  const has = (cmd: string) => ['/usr/bin/', '/bin/'].some((d) => existsSync(d + cmd));
  it('runs Java (under the java profile, which mounts its /etc configuration)', { skip: !has('java') && 'skipped: no toolchain (java)' }, async () => {
    const dir = mkdtempSync(join(work, 'java-'));
    writeFileSync(join(dir, 'Hello.java'), 'public class Hello { public static void main(String[] a) throws Exception { Thread t = new Thread(() -> System.out.println("thread")); t.start(); t.join(); System.out.println("hello java"); } }');
    chmodSync(dir, 0o755);
    const r = await run(['java', '/src/Hello.java'], { profile: 'java', mounts: [{ source: dir, target: '/src' }] });
    assert.equal(r.status, 'ok', r.stderr.toString() + (r.violation?.syscall ?? ''));
    assert.equal(r.stdout.toString(), 'thread\nhello java\n');
  });

  it('compiles and runs C++ inside the sandbox', { skip: !has('g++') && 'skipped: no toolchain (g++)' }, async () => {
    const dir = mkdtempSync(join(work, 'cpp-'));
    writeFileSync(join(dir, 'a.cpp'), '#include <iostream>\n#include <thread>\nint main() { std::thread t([] { std::cout << "t\\n"; }); t.join(); std::cout << "c++ ok\\n"; }\n');
    chmodSync(dir, 0o755);
    const r = await run(['/bin/sh', '-c', 'g++ -O1 -pthread -o /tmp/a /src/a.cpp && /tmp/a'], { mounts: [{ source: dir, target: '/src' }], wallTimeLimitMs: 60000 });
    assert.equal(r.status, 'ok', r.stderr.toString() + (r.violation?.syscall ?? ''));
    assert.equal(r.stdout.toString(), 't\nc++ ok\n');
  });

  it('learns the calls a program makes, and the learned policy runs it and nothing more', async () => {
    const learned = await run(['/probe', 'hello'], { mounts, seccomp: 'learn' });
    assert.equal(learned.status, 'ok');
    assert.equal(learned.stdout.toString(), 'hello\n');
    const names = learned.seccompCalls!.map((c) => c.syscall);
    for (const n of ['execve', 'write', 'exit_group']) assert.ok(names.includes(n), `learned ${names.join(' ')}`);
    assert.ok(!names.includes('getpriority'));
    const policy: SeccompPolicy = { defaultAction: 'kill-process', rules: [{ syscalls: names, action: 'allow' }] };
    const again = await run(['/probe', 'hello'], { mounts, seccomp: policy });
    assert.equal(again.status, 'ok', again.violation?.syscall);
    const more = await run(['/probe', 'syscall', String(nr('getpriority')), '0', '0'], { mounts, seccomp: policy });
    assert.equal(more.status, 'seccomp-violation');
    assert.equal(more.violation?.syscall, 'getpriority');
  });

  it('takes a Docker profile from a file', async () => {
    const file = join(work, 'profile.json');
    writeFileSync(
      file,
      JSON.stringify({
        defaultAction: 'SCMP_ACT_ERRNO',
        defaultErrnoRet: 1,
        architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_AARCH64'],
        syscalls: [
          { names: Object.keys(table).filter((n) => !['ptrace', 'getpriority'].includes(n)), action: 'SCMP_ACT_ALLOW' },
          { names: ['ptrace'], action: 'SCMP_ACT_KILL_PROCESS' },
        ],
      }),
    );
    assert.equal((await call('getpriority', [0, 0], { seccomp: file })).out, 'ret=-1 errno=1');
    const p = await call('ptrace', [], { seccomp: file });
    assert.equal(p.r.status, 'seccomp-violation');
    assert.equal(p.r.violation?.syscall, 'ptrace');
  });
});

guardLeaks();
