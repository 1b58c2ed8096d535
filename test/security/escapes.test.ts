// The classes of escape that broke real containers, each tried from inside a
// sandbox under the default and the judge profiles by test/fixtures/escape.c.
// Every try must fail: the probe prints "blocked ..." for each, or the
// seccomp policy ends it at the first forbidden call. Under default a
// privileged call is refused with an errno and the program goes on (only
// foreign-architecture calls end the run); under judge the forbidden ones
// (mounts, modules, kexec, swap) end it as a seccomp-violation.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer as netServer, type Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { run, type RunResult } from '../../src/index.js';
import { guardLeaks, running } from '../helpers.js';
import { fixture, i386EntryWorks } from '../probe.js';

const escape = fixture('escape');

const judgeKills = new Set(['mount', 'umount', 'kexec', 'init_module', 'swapoff']);

function assertBlocked(r: RunResult, what: string, profile = 'default'): void {
  const out = r.stdout.toString();
  const detail = `${what}: status ${r.status}${r.error ? ` (${r.error.message})` : ''}\n${out}${r.stderr.toString()}`;
  assert.doesNotMatch(out, /^ESCAPED/m, detail);
  const foreignArch = what.startsWith('i386-') || what.startsWith('x32-');
  if (profile === 'judge' && judgeKills.has(what)) assert.equal(r.status, 'seccomp-violation', detail);
  if (profile === 'default' && !foreignArch) assert.notEqual(r.status, 'seccomp-violation', `${detail}: the default policy refuses, it does not kill`);
  if (r.status === 'seccomp-violation') return; // the filter ended it at a forbidden call
  // a kernel without the i386 gate ends an int 0x80 with SIGSEGV before the call runs
  if (what.startsWith('i386-') && !i386EntryWorks() && r.status === 'signaled' && r.signal === 'SIGSEGV') return;
  assert.equal(r.status, 'ok', detail);
  assert.match(out, /^blocked /m, detail);
}

for (const profile of ['default', 'judge']) {
  describe(`escapes under the ${profile} profile`, () => {
    const attempt = (args: string[]) => run(['/escape', ...args], { profile, mounts: [{ source: escape, target: '/escape' }], wallTimeLimitMs: 10000 });

    for (const [name, why] of [
      ['proc-exe', "the runtime's binary through /proc/self/exe or /proc/1/exe (runc CVE-2019-5736)"],
      ['leaked-fd', "a host fd or cwd reached through /proc/self/fd (runc CVE-2024-21626)"],
      ['open-by-handle', 'open_by_handle_at (the "shocker" escape)'],
      ['ptrace-init', "ptrace, process_vm_readv, pidfd_getfd or a kill of init, which runs in Node's memory"],
      ['tty', 'TIOCSTI and TIOCLINUX injection, /dev/tty, /dev/console'],
      ['kernel-knobs', '/proc/sys, /proc/sysrq-trigger, /sys, cgroup files, id maps'],
      ['rlimits', 'raising hard rlimits'],
    ] as const) {
      it(`${name}: ${why}`, async () => assertBlocked(await attempt([name]), name, profile));
    }

    // One forbidden call per run: a policy that kills at the first would hide the rest.
    const calls = ['unshare-user', 'unshare-mount', 'clone-user', 'setns', 'mount', 'umount', 'add_key', 'keyctl', 'bpf', 'perf', 'io_uring', 'userfaultfd', 'kexec', 'init_module', 'swapoff', 'chroot', 'setuid'];
    if (process.arch === 'x64') calls.unshift('i386-unshare', 'i386-mount', 'x32-unshare');
    it(`privileged calls, each in its own run: ${calls.join(', ')}`, async () => {
      const results = await Promise.all(calls.map((c) => attempt(['call', c])));
      results.forEach((r, i) => assertBlocked(r, calls[i], profile));
      // what default refused it also reported, once
      if (profile === 'default') {
        const mount = results[calls.indexOf('mount')];
        assert.deepEqual(mount.seccompDenials?.map((d) => [d.syscall, d.errno, d.count]), [['mount', 1, 1]]);
      }
    });

    let tcp: Server;
    let unix: Server;
    const abstract = `brig-escape-${process.pid}-${profile}`;
    before(async () => {
      tcp = netServer((s) => s.end('host secret\n'));
      unix = netServer((s) => s.end('host secret\n'));
      await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
      await new Promise<void>((r) => unix.listen(`\0${abstract}`, r));
    });
    after(() => {
      tcp.close();
      unix.close();
    });

    it("host-network: the host's loopback services and abstract unix sockets", async () => {
      const port = (tcp.address() as { port: number }).port;
      assertBlocked(await attempt(['host-network', String(port), abstract]), 'host-network', profile);
    });

    it('signals: a host process by pid, and kill(-1)', async () => {
      const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
      try {
        assertBlocked(await attempt(['signals', String(sleeper.pid)]), 'signals', profile);
        assert.ok(running(sleeper.pid!), 'the host process outlived the attempts');
      } finally {
        sleeper.kill('SIGKILL');
        await new Promise((r) => sleeper.once('exit', r));
      }
    });
  });
}

guardLeaks();
