// Skeletons (src/launch/skeleton.ts): a plan's root built once into a detached
// mount tree that each run clones. A run must see the root a run that builds
// its own sees; the shared tree must stay read-only whatever a sandbox
// holds; each run's mounts must stay its own.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { run } from '../src/index.js';
import { dropSkeletons, setSkeletons, skeletonFds } from '../src/launch/skeleton.js';
import { guardLeaks, heldSettled } from './helpers.js';

/** Runs twice, the first time to have its skeleton made; the second run's result. */
async function secondRun(argv: string[], opts: Parameters<typeof run>[1] = {}) {
  await run(argv, opts);
  await heldSettled();
  return run(argv, { ...opts, timings: true });
}

// What the program can see of its root: every entry's type, mode and owners
// (not times: a skeleton's files are older than the run), /etc's generated
// files, and each mount point with its per-mount options (sorted: the order
// is the plan's). /dev is a tmpfs of its own in a built root and a directory
// of the skeleton's tmpfs: its line is left out.
const VIEW = [
  'stat -c "%n %F %a %U %G %s" / /* /etc/* /dev/* /dev/pts /dev/shm /tmp',
  'for l in /bin /lib /lib64 /sbin /dev/fd /dev/stdout /dev/ptmx /etc/localtime; do [ -L $l ] && echo "$l -> $(readlink $l)"; done',
  'cat /etc/passwd /etc/group /etc/hosts /etc/hostname',
  "awk '$5 != \"/dev\" {print $5, $6}' /proc/self/mountinfo | sort",
  'touch /x /etc/x /dev/x 2>&1; echo > /dev/null && echo null-writable; echo t > /tmp/t && cat /tmp/t',
].join('; ');

const work = mkdtempSync(join(tmpdir(), 'brig-skel-test-'));
after(() => rmSync(work, { recursive: true, force: true }));

describe('skeletons', () => {
  it('a run whose root is cloned from the skeleton sees the root a run that builds it sees', async () => {
    const cloned = await secondRun(['/bin/sh', '-c', VIEW], { hostname: 'skel-view' });
    assert.equal(cloned.status, 'ok', cloned.stderr.toString());
    assert.equal(cloned.timings!.skeleton, true);
    setSkeletons(false);
    let built;
    try {
      built = await run(['/bin/sh', '-c', VIEW], { hostname: 'skel-view', timings: true });
    } finally {
      setSkeletons(true);
    }
    assert.equal(built.timings!.skeleton, false);
    assert.equal(cloned.stdout.toString(), built.stdout.toString());
    assert.equal(cloned.stderr.toString(), built.stderr.toString());
    assert.match(cloned.stdout.toString(), /Read-only file system[\s\S]*null-writable\nt\n$/);
  });

  it('is read-only for good: a process with every capability in a user namespace of its own can clone it, but not write to it', async () => {
    // Exactly one skeleton open, this plan's.
    dropSkeletons();
    await secondRun(['/bin/true'], { hostname: 'skel-probe' });
    const fds = skeletonFds();
    assert.equal(fds.length, 1);
    const target = mkdtempSync(join(work, 'mnt-'));
    // Python's ctypes for open_tree and move_mount (numbers 428 and 429 on
    // every architecture); unshare -Urm for the capabilities.
    const probe = join(work, 'probe.py');
    writeFileSync(
      probe,
      [
        'import ctypes, errno, os, sys',
        'libc = ctypes.CDLL(None, use_errno=True)',
        'def err(): return errno.errorcode[ctypes.get_errno()]',
        'target = sys.argv[1].encode()',
        't = libc.syscall(428, 3, b"", 0x1 | 0x8000 | 0x1000 | 0o2000000)',
        'if t < 0: print("clone", err()); sys.exit(1)',
        'if libc.syscall(429, t, b"", -100, target, 4) < 0: print("attach", err()); sys.exit(1)',
        'print("hostname", open(sys.argv[1] + "/etc/hostname").read().strip())',
        'def write(name):',
        '    try: open(sys.argv[1] + "/etc/brig-probe", "w"); print(name, "written")',
        '    except OSError as e: print(name, errno.errorcode[e.errno])',
        'write("write")',
        'MS_REMOUNT, MS_BIND = 32, 4096',
        'print("mount-rw", "ok" if libc.mount(None, target, None, MS_REMOUNT | MS_BIND, None) == 0 else err())',
        'write("write-after-mount-rw")',
        'print("superblock-rw", "ok" if libc.mount(None, target, None, MS_REMOUNT, None) == 0 else err())',
        'write("write-after-superblock-rw")',
      ].join('\n'),
    );
    const r = spawnSync('unshare', ['-Urm', 'python3', probe, target], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe', fds[0]] });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.equal(
      r.stdout,
      [
        'hostname skel-probe',
        'write EROFS',
        // The mount's own flag can be cleared by whoever owns the mount namespace...
        'mount-rw ok',
        // ...but the tmpfs itself stays read-only: its owner is the maker's user namespace.
        'write-after-mount-rw EROFS',
        'superblock-rw EPERM',
        'write-after-superblock-rw EROFS',
        '',
      ].join('\n'),
    );
  });

  it("the caller's mounts go on mount points in the skeleton; a target inside another mount keeps the plan that builds its root", async () => {
    const data = mkdtempSync(join(work, 'data-'));
    const onSkeleton = await secondRun(['/bin/sh', '-c', 'echo out > /data/out && cat /data/in'], { mounts: [{ source: data, target: '/data', readonly: false }], stdin: undefined });
    writeFileSync(join(data, 'in'), 'in\n');
    const again = await run(['/bin/sh', '-c', 'echo out > /data/out && cat /data/in'], { mounts: [{ source: data, target: '/data', readonly: false }], timings: true });
    assert.equal(onSkeleton.timings!.skeleton, true);
    assert.equal(again.timings!.skeleton, true);
    assert.equal(again.stdout.toString(), 'in\n');
    assert.equal(readFileSync(join(data, 'out'), 'utf8'), 'out\n');

    const nested = await secondRun(['/bin/cat', '/tmp/in/in'], { mounts: [{ source: data, target: '/tmp/in' }] });
    assert.equal(nested.timings!.skeleton, false);
    assert.equal(nested.stdout.toString(), 'in\n');
  });

  it("a plan whose maker fails (a mount point the host's read-only /usr cannot hold) fails as a built root does, and other plans keep theirs", async () => {
    const opts = { mounts: [{ source: work, target: '/usr/brig-no-such-dir' }] };
    const first = await secondRun(['/bin/true'], opts);
    assert.equal(first.timings!.skeleton, false);
    assert.equal(first.status, 'setup-error');
    setSkeletons(false);
    let built;
    try {
      built = await run(['/bin/true'], opts);
    } finally {
      setSkeletons(true);
    }
    assert.deepEqual(first.error, built.error);
    assert.equal((await secondRun(['/bin/true'], { hostname: 'skel-other' })).timings!.skeleton, true);
  });

  it("runs alive at once each mount their own clone: one run's mounts do not reach another's", async () => {
    await secondRun(['/bin/true']);
    const script = (name: string) => `echo ${name} > /tmp/${name}; sleep 0.4; ls /tmp; grep -c ' /tmp ' /proc/self/mountinfo`;
    const a = run(['/bin/sh', '-c', script('a')], { timings: true });
    await new Promise((r) => setTimeout(r, 100));
    const b = await run(['/bin/sh', '-c', script('b')], { timings: true });
    const ra = await a;
    assert.ok(ra.timings!.skeleton && b.timings!.skeleton);
    assert.equal(ra.stdout.toString(), 'a\n1\n');
    assert.equal(b.stdout.toString(), 'b\n1\n');
  });

  it('are closed when asked and after a while without runs; the next runs have them made again', async () => {
    setSkeletons(true, 200);
    try {
      await secondRun(['/bin/true'], { hostname: 'skel-idle' });
      assert.ok(skeletonFds().length >= 1);
      await new Promise((r) => setTimeout(r, 700));
      assert.deepEqual(skeletonFds(), []);
      const r = await run(['/bin/true'], { hostname: 'skel-idle', timings: true });
      assert.equal(r.timings!.skeleton, false, 'made again, for the runs after this one');
      assert.equal((await secondRun(['/bin/true'], { hostname: 'skel-idle' })).timings!.skeleton, true);
      dropSkeletons();
      assert.deepEqual(skeletonFds(), []);
    } finally {
      setSkeletons(true);
    }
  });
});

guardLeaks();
