// What a program sees from inside the default sandbox. Each check runs in the
// sandbox and reads the kernel's answer there.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { run } from '../src/index.js';
import { guardLeaks } from './helpers.js';

async function sh(script: string, opts = {}) {
  const r = await run(['/bin/sh', '-c', script], opts);
  assert.equal(r.error, undefined, r.error?.message);
  return { ...r, out: r.stdout.toString(), err: r.stderr.toString() };
}

describe('isolation seen from inside', () => {
  it("pid 1 is the sandbox's init and the program is not pid 1", async () => {
    const r = await sh('echo $$ $PPID');
    assert.equal(r.out, '2 1\n');
  });

  it("the host's processes are invisible", async () => {
    const r = await sh('ls /proc');
    const pids = r.out.split('\n').filter((l) => /^\d+$/.test(l));
    // the shell and ls itself; no host process, not even the sandbox's init
    assert.ok(pids.length <= 2, `saw pids ${pids.join(' ')}`);
    assert.ok(!pids.includes('1'));
  });

  it("the sandbox's init, which runs in Node's memory, is hidden from /proc", async () => {
    // init is a copy of the Node process: its command line, environment and
    // memory are the host's.
    const r = await sh('cat /proc/1/cmdline; echo cmd=$?; cat /proc/1/environ; echo env=$?; readlink /proc/1/exe; echo exe=$?; head -c1 /proc/1/mem; echo mem=$?');
    assert.equal(r.out, 'cmd=1\nenv=1\nexe=1\nmem=1\n');
    assert.doesNotMatch(r.err, /node/);
  });

  it('has its own hostname', async () => {
    const r = await sh('hostname; cat /proc/sys/kernel/hostname', { hostname: 'judge-7' });
    assert.equal(r.out, 'judge-7\njudge-7\n');
    assert.notEqual(hostname(), 'judge-7');
  });

  const pingSelf =
    'python3 -c "import socket; s=socket.socket(); s.bind((\'127.0.0.1\', 0)); s.listen(); c=socket.create_connection(s.getsockname()); a,_=s.accept(); c.send(b\'ping\'); print(a.recv(4).decode())"';

  it('has only a loopback interface, and by default it is down: no socket reaches anything', async () => {
    // An interface that is down has no addresses: /proc/net/if_inet6 is empty.
    const r = await sh('tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " "; wc -l < /proc/net/if_inet6');
    assert.equal(r.out, 'lo\n0\n');
    const tcp = await sh(pingSelf);
    assert.equal(tcp.out, '');
    assert.match(tcp.err, /Network is unreachable/);
  });

  it("with network: 'loopback' (the network profile), lo is up and the program can talk to itself", async () => {
    const r = await sh('tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " "; grep -c " lo$" /proc/net/if_inet6', { profile: 'network' });
    assert.equal(r.out, 'lo\n1\n');
    const tcp = await sh(pingSelf, { network: 'loopback' });
    assert.equal(tcp.out, 'ping\n', tcp.err);
  });

  it('host files outside the mounts are invisible', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'brig-secret-'));
    try {
      writeFileSync(join(dir, 'secret'), 'top secret');
      const r = await sh(`test -e ${dir}/secret && echo visible; ls /; ls /home 2>&1; cat /etc/shadow 2>&1; cat /etc/passwd`);
      assert.doesNotMatch(r.out, /visible/);
      assert.deepEqual(
        r.out.split('\n').filter((l) => /^[a-z0-9]+$/.test(l) && ['bin', 'dev', 'etc', 'lib', 'lib64', 'proc', 'sbin', 'tmp', 'usr', 'lib32', 'libx32'].includes(l) === false),
        [],
        'unexpected top-level entries',
      );
      assert.match(r.out, /ls: cannot access '\/home': No such file or directory/);
      assert.match(r.out, /\/etc\/shadow: No such file or directory/);
      assert.match(r.out, /^sandbox:x:1000:1000:/m);
      const me = userInfo().username;
      if (me !== 'root' && me !== 'nobody') assert.doesNotMatch(r.out, new RegExp(`^${me}:`, 'm'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the root is read-only and /tmp is writable', async () => {
    const r = await sh('touch /newfile 2>&1; touch /usr/newfile 2>&1; echo x > /tmp/f && cat /tmp/f; mount 2>/dev/null | grep " / " ; true');
    assert.match(r.out, /touch: cannot touch '\/newfile': Read-only file system/);
    assert.match(r.out, /touch: cannot touch '\/usr\/newfile': Read-only file system/);
    assert.match(r.out, /^x$/m);
  });

  it('/tmp is capped at tmpSize', async () => {
    const r = await sh('dd if=/dev/zero of=/tmp/big bs=1M count=8 2>&1; echo rc=$?', { tmpSize: '4m' });
    assert.match(r.out, /No space left on device/);
    assert.match(r.out, /rc=1/);
  });

  it('has no capabilities, not even in the bounding set, and no_new_privs', async () => {
    for (const uid of [1000, 0]) {
      const r = await sh('grep -E "^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs)" /proc/self/status; id -u', { uid });
      assert.match(r.out, /CapEff:\s+0000000000000000/);
      assert.match(r.out, /CapPrm:\s+0000000000000000/);
      assert.match(r.out, /CapBnd:\s+0000000000000000/);
      assert.match(r.out, /CapAmb:\s+0000000000000000/);
      assert.match(r.out, /NoNewPrivs:\s+1/);
      assert.match(r.out, new RegExp(`^${uid}$`, 'm'));
    }
  });

  it('cannot mount, unshare or change the hostname, even without a seccomp policy', async () => {
    // No capabilities, no_new_privs: the namespaces hold on their own.
    const r = await sh('mount -t tmpfs x /tmp 2>&1; echo m=$?; unshare -U true 2>&1; echo u=$?; hostname evil 2>&1; echo h=$?; hostname', { seccomp: 'none' });
    assert.match(r.out, /m=[1-9]/);
    assert.match(r.out, /h=[1-9]/);
    assert.match(r.out, /brig\n$/);
  });

  it('no fd beyond 0-2 is open in the program', async () => {
    // ls lists the shell's fds, not its own.
    const r = await sh('ls /proc/$$/fd');
    assert.equal(r.out, '0\n1\n2\n');
  });

  it("cannot write the kernel's knobs in /proc, even when the caller is root", async () => {
    const r = await sh('echo 1 > /proc/sys/vm/drop_caches; echo a=$?; echo h > /proc/sysrq-trigger; echo b=$?; echo x > /proc/sys/kernel/domainname; echo c=$?');
    assert.match(r.out, /a=[12]\nb=[12]\nc=[12]\n/);
    assert.match(r.err, /Read-only file system|Permission denied/);
  });

  it('has a minimal /dev with a private devpts', async () => {
    const r = await sh('ls /dev; head -c 4 /dev/zero | od -An -tx1; echo hi > /dev/null && echo null-ok; ls /dev/pts');
    for (const d of ['null', 'zero', 'full', 'random', 'urandom', 'tty', 'pts', 'ptmx', 'shm', 'fd', 'stdin']) assert.match(r.out, new RegExp(`^${d}$`, 'm'));
    assert.doesNotMatch(r.out, /^(sda|vda|kmsg|mem|kvm)$/m);
    assert.match(r.out, /00 00 00 00/);
    assert.match(r.out, /null-ok/);
  });

  it('the environment is empty but for PATH unless given', async () => {
    const r = await sh('env | sort', { env: { FOO: 'bar' } });
    const vars = r.out.trim().split('\n').map((l) => l.split('=')[0]);
    // the shell adds PWD (and dash nothing else)
    assert.deepEqual(vars.filter((v) => v !== 'PWD' && v !== 'OLDPWD' && v !== 'SHLVL' && v !== '_'), ['FOO', 'PATH']);
  });

  it('binds host paths read-only by default and read-write on request', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'brig-vol-'));
    try {
      writeFileSync(join(dir, 'in.txt'), 'input');
      const { chmodSync, readFileSync } = await import('node:fs');
      chmodSync(dir, 0o777);
      const ro = await sh('cat /data/in.txt; echo x > /data/new 2>&1; echo rc=$?', { mounts: [{ source: dir, target: '/data' }] });
      assert.match(ro.out, /^input/);
      assert.match(ro.out + ro.err, /Read-only file system/);
      const rw = await sh('echo written > /data/out.txt', { mounts: [{ source: dir, target: '/data', readonly: false }] });
      assert.equal(rw.status, 'ok', rw.err);
      assert.equal(readFileSync(join(dir, 'out.txt'), 'utf8'), 'written\n');
      const file = await sh('cat /etc/judge.conf', { mounts: [{ source: join(dir, 'in.txt'), target: '/etc/judge.conf' }] });
      assert.equal(file.out, 'input');
      const t = await sh('echo a > /scratch/a && cat /scratch/a', { tmpfs: [{ target: '/scratch', size: '1m' }] });
      assert.equal(t.out, 'a\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs from a caller-given root directory', async () => {
    const r = await sh('ls /usr/bin/sh >/dev/null && echo ok', { rootfs: '/' });
    assert.equal(r.out, 'ok\n');
    const ro = await sh('touch /etc/x 2>&1', { rootfs: '/' });
    assert.match(ro.out, /Read-only file system/);
  });
});

guardLeaks();
