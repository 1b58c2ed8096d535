// Policy profiles: the schema and its error messages, layering and its merge
// rules, the typed builder, the shipped presets (each runs a program of its
// own from inside the sandbox), and the CLI.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { checkProfile, createBox, defineProfile, ProfileError, resolveProfile, run, SHIPPED_PROFILE_DIR, validateProfile, type Profile, type SandboxOptions } from '../src/index.js';
import { resolveOptions } from '../src/launch/options.js';
import { schemaProblems } from '../src/profile/index.js';
import { brigCli, guardLeaks } from './helpers.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const work = mkdtempSync(join(tmpdir(), 'brig-profile-'));
chmodSync(work, 0o755);
after(() => rmSync(work, { recursive: true, force: true }));

function file(name: string, content: unknown): string {
  const p = join(work, name);
  writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content));
  return p;
}

const cli = (args: string[], env: NodeJS.ProcessEnv = process.env) => brigCli(args, { env, timeoutMs: 60000 });

const sh = async (script: string, o: SandboxOptions = {}) => {
  const r = await run(['/bin/sh', '-c', script], o);
  return { ...r, out: r.stdout.toString(), err: r.stderr.toString() };
};

const SHIPPED = ['default', 'judge', 'strict', 'network', 'c', 'cpp', 'python', 'node', 'java'];

describe('profile schema', () => {
  it('the generated types and validator are those of profiles/schema.json', () => {
    execFileSync(process.execPath, [join(root, 'scripts/gen-profile.mjs'), '--check'], { stdio: 'pipe' });
  });

  it('every shipped profile is valid, resolves, and passes the checks beyond the schema', () => {
    const names = readdirSync(SHIPPED_PROFILE_DIR).filter((f) => f.endsWith('.json') && f !== 'schema.json').map((f) => f.slice(0, -5)).sort();
    assert.deepEqual(names, [...SHIPPED].sort());
    for (const n of names) {
      assert.deepEqual(schemaProblems(JSON.parse(readFileSync(join(SHIPPED_PROFILE_DIR, n + '.json'), 'utf8'))), [], n);
      const c = checkProfile(n);
      assert.deepEqual(c.problems, [], n);
      assert.match(c.resolved!.policy.description ?? '', /\w/, `${n} has a description`);
    }
  });

  it('the default profile states what a run gets with no options at all', () => {
    // resolveOptions' own fallbacks are what a run gets with none of these
    // fields set; the default profile must not contradict them.
    const bare = resolveOptions(['true'], {});
    const viaDefault = resolveOptions(['true'], resolveProfile('default').policy as SandboxOptions);
    assert.deepEqual(viaDefault, bare);
  });

  it('names every wrong field by JSON pointer, with what is expected', () => {
    const bad = {
      extends: ['judge', 3],
      memory: true,
      pids: 0,
      limitz: 1,
      memroy: '1g',
      network: 'host',
      rlimits: { nofile: [1, 'x'], stak: 1 },
      mounts: [{ source: 'rel/path', target: '/x' }, { target: '/a' }],
      env: { 'A=B': 'x', OK: 5 },
      cpuTimeLimitMs: -5,
      shmSize: 'lots',
      replace: ['mounts', 'mounts'],
      seccomp: 7,
    };
    const problems = schemaProblems(bad);
    const by = Object.fromEntries(problems.map((p) => [p.pointer, p.message]));
    assert.deepEqual(Object.keys(by).sort(), [
      '/cpuTimeLimitMs',
      '/env/A=B',
      '/env/OK',
      '/extends/1',
      '/limitz',
      '/memory',
      '/memroy',
      '/mounts/0/source',
      '/mounts/1/source',
      '/network',
      '/pids',
      '/replace',
      '/rlimits/nofile/1',
      '/rlimits/stak',
      '/seccomp',
      '/shmSize',
    ]);
    assert.equal(by['/memory'], 'expected a size such as "64m" or "1g", or a whole number of bytes above 0, got true');
    assert.equal(by['/pids'], 'expected a whole number of at least 1, got 0');
    assert.equal(by['/memroy'], 'unknown field; did you mean "memory"?');
    assert.equal(by['/rlimits/stak'], 'unknown field; did you mean "stack"?');
    assert.equal(by['/network'], 'expected one of "none", "loopback", "pasta", got "host"');
    assert.equal(by['/mounts/1/source'], 'is required');
    assert.equal(by['/mounts/0/source'], 'expected an absolute path on the host, got "rel/path"');
    assert.equal(by['/rlimits/nofile/1'], 'expected a whole number or "unlimited", got "x"');
    assert.equal(by['/env/OK'], 'expected a string, got 5');
    assert.match(by['/seccomp'], /^expected 'default', 'judge', 'none', 'learn', a file path/);
    // In the order of the document's fields.
    assert.equal(problems[0].pointer, '/extends/1');
    assert.throws(() => validateProfile(bad, 'bad'), (e: unknown) => e instanceof ProfileError && e.problems.length === 16 && /^profile bad is invalid:\n {2}\/extends\/1: /.test(e.message));
  });

  it('rejects unreadable files, broken JSON, unknown names and extends cycles, naming the file', () => {
    const broken = file('broken.json', '{\n  "memory": "1g",\n}\n');
    assert.throws(() => resolveProfile(broken), (e: unknown) => e instanceof ProfileError && e.source === broken && /not valid JSON at line 3, column 1/.test(e.message));
    assert.throws(() => resolveProfile(join(work, 'none.json')), /cannot read it: ENOENT/);
    assert.throws(() => resolveProfile('no-such-profile'), /no profile of that name in .*profiles/);
    assert.throws(() => resolveProfile('bad name!'), /a profile name is letters/);
    const a = file('loop-a.json', { extends: './loop-b.json' });
    file('loop-b.json', { extends: 'loop-a.json' });
    assert.throws(() => resolveProfile(a), (e: unknown) => e instanceof ProfileError && /extends itself: .*loop-a.json -> .*loop-b.json -> .*loop-a.json/.test(e.message));
    const missingParent = file('orphan.json', { extends: 'nope' });
    assert.throws(() => resolveProfile(missingParent), (e: unknown) => e instanceof ProfileError && e.source === missingParent && e.problems[0].pointer === '/extends');
  });

  it('finds what only resolving can: mounts over /proc, policies that do not compile, sources missing here', () => {
    const p = file('semantic.json', {
      extends: 'judge',
      mounts: [
        { source: '/nonexistent-brig-src', target: '/data' },
        { source: '/nonexistent-optional', target: '/opt/x', optional: true },
        { source: '/etc', target: '/proc/etc' },
      ],
    });
    const c = checkProfile(p);
    assert.deepEqual(c.problems.map((x) => x.pointer).sort(), ['/mounts/0/source', '/mounts/2/target']);
    assert.match(c.problems.find((x) => x.pointer === '/mounts/2/target')!.message, /must not be under \/proc or \/dev/);
    const pol = file('badpolicy.json', { seccomp: { defaultAction: 'allow', rules: [{ syscalls: ['getpid'], action: 'explode' }] } });
    assert.match(checkProfile(pol).problems[0].pointer, /^\/seccomp/);
  });
});

describe('layering', () => {
  it('resolves extends depth-first, each profile once; scalars override, maps merge, lists append', () => {
    const base = file('base.json', {
      description: 'base',
      hostname: 'base',
      memory: '64m',
      env: { A: 'base', B: 'base' },
      rlimits: { nofile: 32, core: 0 },
      mounts: [
        { source: '/usr', target: '/m1' },
        { source: '/usr', target: '/m2' },
      ],
    });
    const left = file('left.json', { extends: './base.json', memory: '128m', env: { B: 'left' }, mounts: [{ source: '/bin', target: '/m2/' }] });
    const right = file('right.json', { extends: 'base.json', pids: 9, env: { C: 'right' }, tmpfs: [{ target: '/scratch' }] });
    const top = file('top.json', { description: 'top', extends: [left, './right.json'], hostname: 'top', rlimits: { nofile: 16 }, mounts: [{ source: '/lib', target: '/m3' }] });
    const r = resolveProfile(top);
    // The diamond's base is merged once, first.
    assert.deepEqual(r.chain, [base, left, right, top]);
    const p = r.policy;
    assert.equal(p.description, 'top');
    assert.equal(p.hostname, 'top');
    assert.equal(p.memory, '128m');
    assert.equal(p.pids, 9);
    assert.deepEqual(p.env, { A: 'base', B: 'left', C: 'right' });
    assert.deepEqual(p.rlimits, { nofile: 16, core: 0 });
    // left's /m2/ took base's /m2 in its place; top's /m3 was appended.
    assert.deepEqual(p.mounts, [
      { source: '/usr', target: '/m1' },
      { source: '/bin', target: '/m2/' },
      { source: '/lib', target: '/m3' },
    ]);
    assert.deepEqual(p.tmpfs, [{ target: '/scratch' }]);
    assert.equal('extends' in p, false);
  });

  it('replace drops what a list or map inherited; a description is not inherited', () => {
    const base = file('rbase.json', { description: 'base', env: { A: '1' }, mounts: [{ source: '/usr', target: '/m1' }] });
    const r = resolveProfile(file('rtop.json', { extends: base, replace: ['env', 'mounts'], env: { B: '2' }, mounts: [{ source: '/bin', target: '/m9' }] }));
    assert.deepEqual(r.policy.env, { B: '2' });
    assert.deepEqual(r.policy.mounts, [{ source: '/bin', target: '/m9' }]);
    assert.equal(r.policy.description, undefined);
  });

  it('a seccomp file named in a profile is relative to the profile', async () => {
    const dir = mkdtempSync(join(work, 'rel-'));
    writeFileSync(join(dir, 'pol.json'), JSON.stringify({ defaultAction: 'allow', rules: [{ syscalls: ['mkdir', 'mkdirat'], action: 'errno', errno: 13 }] }));
    const prof = join(dir, 'p.json');
    writeFileSync(prof, JSON.stringify({ seccomp: 'pol.json' }));
    assert.equal(resolveProfile(prof).policy.seccomp, join(dir, 'pol.json'));
    const r = await run(['python3', '-c', 'import os\ntry:\n os.mkdir("/tmp/d")\nexcept OSError as e: print(e.errno)'], { profile: prof });
    assert.equal(r.stdout.toString(), '13\n', r.stderr.toString());
  });

  it('per-run options go on top of the profile by the same rules, seen from inside', async () => {
    const p = file('runbase.json', { extends: 'default', hostname: 'prof', env: { A: 'prof', B: 'prof' }, mounts: [{ source: work, target: '/prof' }] });
    const r = await sh('echo $A $B $C; hostname; ls -d /prof /run1', { profile: p, hostname: 'perrun', env: { B: 'run', C: 'run' }, mounts: [{ source: work, target: '/run1' }] });
    assert.equal(r.out, 'prof run run\nperrun\n/prof\n/run1\n', r.err);
  });

  it('re-reads a profile file that changed', async () => {
    const p = file('changing.json', { hostname: 'first' });
    assert.equal((await sh('hostname', { profile: p })).out, 'first\n');
    writeFileSync(p, JSON.stringify({ hostname: 'second' }));
    utimesSync(p, new Date(), new Date(Date.now() + 5000));
    await new Promise((r) => setTimeout(r, 1100));
    assert.equal((await sh('hostname', { profile: p })).out, 'second\n');
  });

  it('a bad profile is an error before anything starts', async () => {
    const p = file('runbad.json', { pids: -1 });
    await assert.rejects(run(['true'], { profile: p }), (e: unknown) => e instanceof ProfileError && e.problems[0].pointer === '/pids');
  });
});

describe('defineProfile', () => {
  it('is checked against the same schema, frozen, and usable as a run profile or a layer', async () => {
    const p = defineProfile({ extends: 'judge', hostname: 'typed', env: { X: '1' } });
    assert.ok(Object.isFrozen(p) && Object.isFrozen(p.env));
    const r = await sh('hostname; echo $X; ulimit -n', { profile: p });
    assert.equal(r.out, 'typed\n1\n64\n', r.err);
    const layered = await sh('hostname; ulimit -n', { profile: ['judge', defineProfile({ hostname: 'second', rlimits: { nofile: 32 } })] });
    assert.equal(layered.out, 'second\n32\n');
    assert.throws(
      () => defineProfile({ pids: 0 } as Profile),
      (e: unknown) => e instanceof ProfileError && e.source === 'defineProfile()' && e.problems[0].pointer === '/pids',
    );
  });

  it('has types generated from the schema (checked when the tests compile)', () => {
    // Each line below must fail to type-check; if the generated types were
    // looser than the schema, the build of this file would fail.
    // @ts-expect-error network is an enum
    const a: Profile = { network: 'host' };
    // @ts-expect-error unknown field
    const b: Profile = { memroy: '1g' };
    // @ts-expect-error a mount needs a target
    const c: Profile = { mounts: [{ source: '/x' }] };
    // @ts-expect-error rlimit names are fixed
    const d: Profile = { rlimits: { stak: 1 } };
    // @ts-expect-error extends is names or paths
    const e: Profile = { extends: [1] };
    const ok: Profile = { extends: ['judge'], rlimits: { stack: 'unlimited', nofile: [32, 64] }, memory: '1g', shmSize: 0 };
    assert.ok([a, b, c, d, e, ok].length === 6);
  });
});

const has = (cmd: string) => ['/usr/bin/', '/bin/'].some((d) => existsSync(d + cmd));
const noToolchain = (cmd: string) => !has(cmd) && `skipped: no toolchain (${cmd})`;

function srcDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(work, 'src-'));
  for (const [n, t] of Object.entries(files)) writeFileSync(join(dir, n), t);
  chmodSync(dir, 0o777);
  return dir;
}

describe('shipped presets, each running a program of its own', () => {
  it('default: every namespace, no network, read-only /dev, writable /tmp', async () => {
    const r = await sh('touch /tmp/x && echo tmp; touch /dev/x 2>/dev/null || echo dev-ro; touch /usr/x 2>/dev/null || echo usr-ro; wc -l < /proc/net/if_inet6; ls -d /dev/shm', { profile: 'default' });
    assert.equal(r.out, 'tmp\ndev-ro\nusr-ro\n0\n/dev/shm\n', r.err);
  });

  it('network: loopback up inside, the host still unreachable', async () => {
    const r = await sh('grep -c " lo$" /proc/net/if_inet6; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " "', { profile: 'network' });
    assert.equal(r.out, '1\nlo\n');
  });

  it('judge: no network, no /dev/shm, read-only but /tmp and /box, its limits in force', async () => {
    const r = await sh('wc -l < /proc/net/if_inet6; ls /dev/shm 2>/dev/null || echo no-shm; ulimit -n; ulimit -f; ulimit -s; touch /tmp/x && echo tmp-rw', { profile: 'judge' });
    assert.equal(r.out, '0\nno-shm\n64\n131072\n65536\ntmp-rw\n', r.err);
    const box = await createBox({ profile: 'judge', size: '8m' });
    try {
      const b = await box.run(['/bin/sh', '-c', 'echo hi > /box/out && cat /box/out; touch /etc/x 2>/dev/null || echo etc-ro; ulimit -n']);
      assert.equal(b.stdout.toString(), 'hi\netc-ro\n64\n', b.stderr.toString());
    } finally {
      box.destroy();
    }
    // Its CPU limit and time-keeping apply: a tight loop is stopped at 2 s + 0.5 s of grace.
    const spin = await run(['/bin/sh', '-c', 'while :; do :; done'], { profile: 'judge' });
    assert.equal(spin.status, 'cpu-time-limit');
    const cpu = spin.cpuTimeMs.user + spin.cpuTimeMs.system;
    assert.ok(cpu >= 2000 && cpu < 2600, `cpu ${cpu}`);
  });

  it('c: compiles with gcc inside; the program runs under judge + c', { skip: noToolchain('gcc') }, async () => {
    const dir = srcDir({ 'sum.c': '#include <stdio.h>\nint main(void) { long a, b; if (scanf("%ld %ld", &a, &b) != 2) return 1; printf("%ld\\n", a + b); return 0; }\n' });
    const mounts = [{ source: dir, target: '/src', readonly: false }];
    const cc = await run(['gcc', '-O2', '-o', '/src/sum', '/src/sum.c'], { profile: 'c', mounts, wallTimeLimitMs: 60000 });
    assert.equal(cc.status, 'ok', cc.stderr.toString());
    const r = await run(['/src/sum'], { profile: ['judge', 'c'], mounts, stdin: '40 2\n' });
    assert.equal(r.status, 'ok', r.stderr.toString());
    assert.equal(r.stdout.toString(), '42\n');
  });

  it('cpp: compiles with g++ inside; the program runs under judge + cpp', { skip: noToolchain('g++') }, async () => {
    const dir = srcDir({ 'hello.cpp': '#include <iostream>\n#include <vector>\nint main() { std::vector<int> v{1, 2, 3}; long s = 0; for (int x : v) s += x; std::cout << "hello c++ " << s << std::endl; }\n' });
    const mounts = [{ source: dir, target: '/src', readonly: false }];
    const cc = await run(['g++', '-O2', '-o', '/src/hello', '/src/hello.cpp'], { profile: 'cpp', mounts, wallTimeLimitMs: 120000 });
    assert.equal(cc.status, 'ok', cc.stderr.toString());
    const r = await run(['/src/hello'], { profile: ['judge', 'cpp'], mounts });
    assert.equal(r.stdout.toString(), 'hello c++ 6\n', r.stderr.toString());
  });

  it('python: runs under judge + python, its environment set', { skip: noToolchain('python3') }, async () => {
    const r = await run(['python3', '-c', 'import sys, os; print("hello python", sys.flags.dont_write_bytecode, os.environ["PYTHONHASHSEED"], hash("brig") == hash("brig"))'], { profile: ['judge', 'python'] });
    assert.equal(r.status, 'ok', r.stderr.toString());
    assert.equal(r.stdout.toString(), 'hello python 1 0 True\n');
  });

  it('node: runs under judge + node with its heap capped inside the memory limit', { skip: noToolchain('node') }, async () => {
    const r = await run(['node', '-e', 'const v8 = require("v8"); console.log("hello node", Math.round(v8.getHeapStatistics().heap_size_limit / 2 ** 20) <= 450)'], { profile: ['judge', 'node'] });
    assert.equal(r.status, 'ok', r.stderr.toString());
    assert.equal(r.stdout.toString(), 'hello node true\n');
  });

  it('java: compiles with javac inside; the class runs under judge + java', { skip: (noToolchain('javac') || noToolchain('java')) as string | false }, async () => {
    const dir = srcDir({ 'Hello.java': 'public class Hello { public static void main(String[] a) { Thread t = new Thread(() -> System.out.println("thread")); t.start(); try { t.join(); } catch (InterruptedException e) {} System.out.println("hello java"); } }\n' });
    const mounts = [{ source: dir, target: '/src', readonly: false }];
    const cc = await run(['javac', '-d', '/src', '/src/Hello.java'], { profile: 'java', mounts, wallTimeLimitMs: 120000 });
    assert.equal(cc.status, 'ok', cc.stderr.toString());
    const r = await run(['java', '-cp', '/src', 'Hello'], { profile: ['judge', 'java'], mounts });
    assert.equal(r.status, 'ok', r.stderr.toString() + (r.violation?.syscall ?? ''));
    assert.equal(r.stdout.toString(), 'thread\nhello java\n');
  });

  it('a profile that lifts RLIMIT_AS leaves memory unenforced without a cgroup, and says so', async () => {
    const java = await run(['/bin/true'], { profile: 'java', cgroup: false });
    assert.deepEqual(java.enforcement, { memory: 'none', pids: 'rlimit' });
    const plain = await sh('ulimit -v', { memory: '64m', cgroup: false });
    assert.deepEqual(plain.enforcement, { memory: 'rlimit' });
    assert.equal(plain.out, '65536\n');
  });

  it('strict: a static C program runs; anything past its few calls is stopped and named', { skip: noToolchain('gcc') }, async () => {
    const dir = srcDir({
      'hello.c': '#include <stdio.h>\n#include <stdlib.h>\nint main(void) { char *p = malloc(1 << 20); p[0] = 1; int a, b; if (scanf("%d %d", &a, &b) == 2) printf("%d\\n", a + b); else puts("hello"); return 0; }\n',
      'sock.c': '#include <stdio.h>\n#include <sys/socket.h>\nint main(void) { puts("before"); fflush(stdout); socket(AF_INET, SOCK_STREAM, 0); puts("after"); return 0; }\n',
    });
    const mounts = [{ source: dir, target: '/src', readonly: false }];
    const cc = await run(['/bin/sh', '-c', 'gcc -O2 -static -o /src/hello /src/hello.c && gcc -O2 -static -o /src/sock /src/sock.c'], { profile: 'c', mounts, wallTimeLimitMs: 60000 });
    if (cc.status !== 'ok' && /cannot find -lc/.test(cc.stderr.toString())) return; // no static libc on this host
    assert.equal(cc.status, 'ok', cc.stderr.toString());
    const r = await run(['/src/hello'], { profile: 'strict', mounts, stdin: '2 3\n' });
    assert.equal(r.status, 'ok', r.stderr.toString() + (r.violation?.syscall ?? ''));
    assert.equal(r.stdout.toString(), '5\n');
    const s = await run(['/src/sock'], { profile: 'strict', mounts });
    assert.equal(s.status, 'seccomp-violation');
    assert.equal(s.violation?.syscall, 'socket');
    assert.equal(s.stdout.toString(), 'before\n');
    // A dynamically linked program cannot even load its libraries.
    const dyn = await run(['/bin/true'], { profile: 'strict' });
    assert.equal(dyn.status, 'seccomp-violation');
  });
});

describe('brig profile and --profile', () => {
  it('lists the shipped profiles with what each is for', () => {
    const r = cli(['profile', 'list']);
    assert.equal(r.code, 0, r.err);
    for (const n of SHIPPED) assert.match(r.out, new RegExp(`^${n} +\\S`, 'm'));
  });

  it('show prints the resolved profile as a valid profile, its layers on stderr', () => {
    const r = cli(['profile', 'show', 'judge']);
    assert.equal(r.code, 0, r.err);
    const shown = JSON.parse(r.out) as Profile;
    assert.deepEqual(schemaProblems(shown), []);
    assert.equal(shown.memory, '256m');
    assert.equal(shown.seccomp, 'judge');
    assert.deepEqual(shown.rlimits, { core: 0, fsize: 67108864, nofile: 64, stack: 67108864 });
    assert.match(r.err, /layers, first to last: .*default\.json -> .*judge\.json/);
    const two = cli(['profile', 'show', 'judge', 'java']);
    assert.equal((JSON.parse(two.out) as Profile).memory, '1g');
  });

  it('check exits 1 and lists every wrong field; no stack trace', () => {
    const p = file('cli-bad.json', { pids: 'many', limitz: 3 });
    const r = cli(['profile', 'check', p, 'judge']);
    assert.equal(r.code, 1);
    assert.equal(r.out, `${p}: invalid\n  /pids: expected a whole number of at least 1, got "many"\n  /limitz: unknown field; did you mean "rlimits"?\njudge: ok (layers: ${join(SHIPPED_PROFILE_DIR, 'default.json')} -> ${join(SHIPPED_PROFILE_DIR, 'judge.json')})\n`);
    assert.doesNotMatch(r.out + r.err, /\n\s+at /);
  });

  it('run --profile applies it; repeated ones layer; per-run options override; BRIG_PROFILE_PATH adds names', () => {
    assert.equal(cli(['run', '--profile', 'judge', '--', '/bin/sh', '-c', 'ulimit -n']).out, '64\n');
    assert.equal(cli(['run', '--profile', 'judge', '--nofile', '32', '--', '/bin/sh', '-c', 'ulimit -n']).out, '32\n');
    const mine = mkdtempSync(join(work, 'path-'));
    writeFileSync(join(mine, 'mine.json'), JSON.stringify({ extends: 'judge', hostname: 'mine' }));
    const env = { ...process.env, BRIG_PROFILE_PATH: mine };
    const r = cli(['run', '--profile', 'mine', '--profile', 'network', '--', '/bin/sh', '-c', 'hostname; ulimit -n; grep -c " lo$" /proc/net/if_inet6'], env);
    assert.equal(r.out, 'mine\n64\n1\n', r.err);
    // The judge profile's output limit makes the CLI capture output so it can hold it.
    const flood = cli(['run', '--profile', 'judge', '--output-limit', '1k', '--', '/bin/sh', '-c', 'yes | head -c 100000']);
    assert.equal(flood.out.length, 1024);
    assert.match(flood.err, /output limit exceeded/);
    const net = cli(['run', '--network', 'loopback', '--shm-size', '0', '--', '/bin/sh', '-c', 'grep -c " lo$" /proc/net/if_inet6; ls /dev/shm 2>/dev/null || echo no-shm']);
    assert.equal(net.out, '1\nno-shm\n', net.err);
    assert.match(cli(['run', '--network', 'wifi', '--', 'true']).err, /--network: network wifi not found/);
    const bad = cli(['run', '--profile', file('cli-bad2.json', { memory: 'lots' }), '--', 'true']);
    assert.equal(bad.code, 125);
    assert.match(bad.err, /\/memory: expected a size/);
  });
});

guardLeaks();
