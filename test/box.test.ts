// Persistent boxes (compile, then run) and interactive pairs.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createBox, openBox, OptionsError, runInteractive } from '../src/index.js';
import { guardLeaks } from './helpers.js';

const root = mkdtempSync(join(tmpdir(), 'brig-boxes-'));
after(() => rmSync(root, { recursive: true, force: true }));
const brig = join(dirname(fileURLToPath(import.meta.url)), '../../bin/brig-node');
const has = (cmd: string) => ['/usr/bin/', '/bin/'].some((d) => existsSync(d + cmd));

describe('boxes', () => {
  it('compile C++, then run it with limits, in a fresh sandbox each time', { skip: !has('g++') && 'skipped: no toolchain (g++)' }, async () => {
    const box = await createBox({ root });
    box.writeFile('main.cpp', '#include <iostream>\nint main() { long a, b; std::cin >> a >> b; std::cout << a * b << "\\n"; }\n');
    const build = await box.run(['g++', '-O2', '-o', 'main', 'main.cpp'], { wallTimeLimitMs: 60000 });
    assert.equal(build.status, 'ok', build.stderr.toString());
    const r = await box.run(['./main'], { stdin: '6 7', cpuTimeLimitMs: 1000 });
    assert.equal(r.status, 'ok');
    assert.equal(r.stdout.toString(), '42\n');
    // A new sandbox each run: nothing but the box carries over.
    const again = await box.run(['/bin/sh', '-c', 'echo $$; ls /tmp | wc -l; ls /box']);
    assert.equal(again.stdout.toString(), '2\n0\nmain\nmain.cpp\n');
    box.destroy();
    assert.equal(existsSync(box.path), false);
  });

  it('runs Python and Node programs from the box and returns their files', async () => {
    const box = await createBox({ root });
    box.writeFile('sol.py', 'open("out.txt", "w").write(str(sum(map(int, input().split()))))\n');
    const py = await box.run(['python3', 'sol.py'], { stdin: '1 2 3' });
    assert.equal(py.status, 'ok', py.stderr.toString());
    assert.equal(box.readFile('out.txt').toString(), '6');
    box.writeFile('dir/sol.js', 'require("fs").writeFileSync("dir/js.txt", String(6 * 7))\n');
    const js = await box.run([process.execPath, 'dir/sol.js']);
    assert.equal(js.status, 'ok', js.stderr.toString());
    assert.equal(box.readFile('dir/js.txt').toString(), '42');
    box.destroy();
  });

  it('caps files at the box size, reports usage, and refuses runs while over it', async () => {
    const box = await createBox({ root, size: '1m' });
    const big = await box.run(['dd', 'if=/dev/zero', 'of=big', 'bs=1M', 'count=2']);
    assert.equal(big.status, 'file-size-limit');
    const many = await box.run(['/bin/sh', '-c', 'for i in 1 2 3; do head -c 700000 /dev/urandom > f$i; done']);
    assert.equal(many.boxOverLimit, true);
    assert.ok(many.boxBytes > 1 << 20);
    // Writing on and on in small files: the watch ends it.
    const flood = await (await createBox({ root, size: '2m' })).run(['/bin/sh', '-c', 'i=0; while :; do head -c 65536 /dev/zero > f$i; i=$((i+1)); done']);
    assert.equal(flood.status, 'file-size-limit');
    assert.equal(flood.killed, true);
    assert.ok(flood.boxBytes > 2 << 20 && flood.boxBytes < 64 << 20, `box ${flood.boxBytes}`);
    const refused = await box.run(['/bin/true']);
    assert.equal(refused.status, 'setup-error');
    assert.equal(refused.error?.step, 'box-full');
    assert.equal(refused.error?.code, 'ENOSPC');
    box.destroy();
  });

  it("a symlink the program leaves does not lead brig's file access out of the box", async () => {
    const box = await createBox({ root });
    await box.run(['/bin/sh', '-c', 'ln -s /etc/passwd leak; mkdir d; ln -s /etc sub']);
    assert.throws(() => box.readFile('leak'), OptionsError);
    assert.throws(() => box.writeFile('sub/evil', 'x'), OptionsError);
    assert.throws(() => box.readFile('../size'), OptionsError);
    assert.throws(() => box.writeFile('/abs', 'x'), OptionsError);
    box.destroy();
  });

  it('brig box create, run and rm across processes', () => {
    const env = { ...process.env, BRIG_BOX_ROOT: root };
    const cli = (args: string[], input = '') => spawnSync(process.execPath, [brig, ...args], { encoding: 'utf8', env, input });
    const made = cli(['box', 'create', '--id', '7', '--size', '8m']);
    assert.equal(made.status, 0, made.stderr);
    const [id, path] = made.stdout.trim().split(' ');
    assert.equal(id, '7');
    writeFileSync(join(path, 'hello.sh'), 'echo "hello $(cat)"\n');
    assert.equal(cli(['box', 'run', '7', '--', '/bin/sh', 'hello.sh'], 'box').stdout, 'hello box\n');
    assert.equal(openBox(7, { root }).readFile('hello.sh').toString().startsWith('echo'), true);
    assert.equal(cli(['box', 'create', '--id', '7']).status, 125);
    assert.equal(cli(['box', 'rm', '7']).status, 0);
    assert.equal(existsSync(path), false);
    assert.equal(cli(['box', 'run', '7', '--', 'true']).status, 125);
  });
});

describe('interactive pairs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'brig-interactive-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(
    join(dir, 'interactor.py'),
    [
      'import sys',
      'secret, guesses = int(sys.argv[1]), 0',
      'while True:',
      '    line = sys.stdin.readline()',
      '    if not line: print("WA: no answer", file=sys.stderr); sys.exit(1)',
      '    guesses += 1; g = int(line)',
      '    if g == secret: print("=", flush=True); print(f"OK {guesses} guesses", file=sys.stderr); sys.exit(0)',
      '    print("<" if secret < g else ">", flush=True)',
    ].join('\n'),
  );
  writeFileSync(
    join(dir, 'solution.py'),
    ['lo, hi = 1, 1000', 'while True:', '    mid = (lo + hi) // 2', '    print(mid, flush=True)', '    r = input()', '    if r == "=": break', '    if r == "<": hi = mid - 1', '    else: lo = mid + 1'].join('\n'),
  );
  const mounts = [{ source: dir, target: '/judge' }];

  it('guess the number: two sandboxes talk through their stdio', async () => {
    const r = await runInteractive({ argv: ['python3', '/judge/solution.py'], options: { mounts, cpuTimeLimitMs: 2000 } }, { argv: ['python3', '/judge/interactor.py', '737'], options: { mounts } });
    assert.equal(r.interactor.status, 'ok', r.interactor.stderr.toString());
    assert.match(r.interactor.stderr.toString(), /^OK \d+ guesses\n$/);
    assert.ok(Number(/OK (\d+)/.exec(r.interactor.stderr.toString())![1]) <= 10);
    assert.equal(r.solution.status, 'ok', r.solution.stderr.toString());
  });

  it('says which side ended first, and why', async () => {
    // A solution that never answers: its CPU limit ends it first; the
    // interactor then sees end of input and fails.
    const r = await runInteractive({ argv: ['python3', '-c', 'while True: pass'], options: { cpuTimeLimitMs: 300 } }, { argv: ['python3', '/judge/interactor.py', '5'], options: { mounts } });
    assert.equal(r.first, 'solution');
    assert.equal(r.solution.status, 'cpu-time-limit');
    assert.equal(r.interactor.status, 'exit-nonzero');
    assert.match(r.interactor.stderr.toString(), /WA: no answer/);
  });
});

guardLeaks();
