// Containers that live: made, watched, entered, paused, stopped, restarted
// and removed by separate brig processes (bin/brig), as users do.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { brigCli, brigRoot, brigCliAsync, guardLeaks, isRoot, running, sleep, until } from './helpers.js';

const { root, env, brig } = brigRoot('ctrtest-');
const brigAsync = (...args: string[]) => brigCliAsync(args, { env });

function inspect(name: string) {
  const r = brig('inspect', '--type', 'container', name);
  assert.equal(r.code, 0, r.err);
  return JSON.parse(r.out)[0];
}

/** CPU ticks of a process tree, from the host's /proc. */
function ticks(pids: number[]): number {
  let t = 0;
  for (const p of pids) {
    try {
      const s = readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      t += Number(f[11]) + Number(f[12]);
    } catch {
      // gone
    }
  }
  return t;
}

function topPids(name: string): number[] {
  const r = brig('top', name);
  assert.equal(r.code, 0, r.err);
  return r.out
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => Number(l.trim().split(/\s+/)[1]));
}

/** cgroup directories named for this container, anywhere brig could have made them. */
function containerCgroups(id: string): string[] {
  const out: string[] = [];
  const walk = (dir: string, depth: number) => {
    if (depth > 4) return;
    let names: string[] = [];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const n of names) {
      if (n === `brig-ctr-${id.slice(0, 12)}`) out.push(join(dir, n));
      else if (!n.includes('.')) walk(join(dir, n), depth + 1);
    }
  };
  walk('/sys/fs/cgroup', 0);
  return out;
}

before(() => {
  assert.equal(brig('ps', '-a', '-q').out, '');
});

after(() => {
  for (const id of brig('ps', '-a', '-q').out.trim().split('\n').filter(Boolean)) brig('rm', '-f', id);
  rmSync(root, { recursive: true, force: true });
});

describe('a detached container', () => {
  let id = '';
  it('outlives the brig run -d that made it, and other brig processes see it', async () => {
    const r = brig('run', '-d', '--name', 'life', '--', '/bin/sh', '-c', 'echo hello; echo oops >&2; echo made > /tmp/mark; while :; do sleep 0.1; done');
    assert.equal(r.code, 0, r.err);
    id = r.out.trim();
    assert.match(id, /^[0-9a-f]{64}$/);
    const ps = brig('ps');
    assert.match(ps.out, /CONTAINER ID\s+IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+NAMES/);
    assert.match(ps.out, new RegExp(`${id.slice(0, 12)}.*Up .*life`));
    const j = JSON.parse(brig('ps', '--format', 'json', '--filter', 'name=life').out);
    assert.equal(j.State, 'running');
    assert.equal(inspect(id.slice(0, 8)).Name, '/life');
  });

  it('logs: stdout and stderr apart, in json-file on disk', async () => {
    await until('the first lines', () => brig('logs', 'life').out.includes('hello'));
    const l = brig('logs', 'life');
    assert.equal(l.out, 'hello\n');
    assert.equal(l.err, 'oops\n');
    const file = inspect('life').LogPath;
    const first = JSON.parse(readFileSync(file, 'utf8').split('\n')[0]);
    assert.deepEqual(Object.keys(first).sort(), ['log', 'stream', 'time']);
    assert.match(first.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
    assert.match(brig('logs', '-t', 'life').out, /^\d{4}-.*Z hello\n$/);
  });

  it('logs of 300,000 lines (read whole before --tail picks the last)', () => {
    assert.equal(brig('run', '-d', '--name', 'many', '--', 'seq', '300000').code, 0);
    assert.equal(brig('wait', 'many').out.trim(), '0');
    const l = brig('logs', '--tail', '2', 'many');
    assert.equal(l.err, '');
    assert.equal(l.out, '299999\n300000\n');
    assert.equal(l.code, 0);
    assert.equal(brig('rm', 'many').code, 0);
  });

  it("exec runs in the container: its files, its hostname, its policy; nothing of the host's", async () => {
    await until('the mark', () => brig('exec', 'life', 'cat', '/tmp/mark').out === 'made\n');
    const r = brig('exec', 'life', '/bin/sh', '-c', 'hostname; grep -E "^(CapEff|NoNewPrivs|Seccomp):" /proc/self/status; ls /home /root 2>&1 | head -1; ls /proc | grep -c "^[0-9]"');
    assert.equal(r.code, 0, r.err);
    const lines = r.out.trim().split('\n');
    assert.equal(lines[0], 'brig');
    assert.match(r.out, /CapEff:\s+0000000000000000/);
    assert.match(r.out, /NoNewPrivs:\s+1/);
    assert.match(r.out, /Seccomp:\s+2/);
    assert.match(lines[4], /No such file or directory/);
    // Its pid namespace is the container's: a handful of processes, not the host's hundreds.
    assert.ok(Number(lines[5]) < 10, r.out);
    // The exec's own environment and working directory.
    assert.equal(brig('exec', '-e', 'X=42', '-w', '/tmp', 'life', '/bin/sh', '-c', 'echo $X; pwd').out, '42\n/tmp\n');
    // A write where the container may not write fails there too.
    assert.notEqual(brig('exec', 'life', '/bin/sh', '-c', 'echo x > /usr/x').code, 0);
    // exec -d: started by the monitor, it runs on after this command.
    assert.equal(brig('exec', '-d', 'life', '/bin/sh', '-c', 'echo bg > /tmp/bg').code, 0);
    await until('exec -d ran', () => brig('exec', 'life', 'cat', '/tmp/bg').out === 'bg\n');
  });

  it('top and stats from other processes', () => {
    const pids = topPids('life');
    assert.ok(pids.length >= 1);
    const s = brig('stats', '--no-stream', '--format', 'json', 'life');
    assert.equal(s.code, 0, s.err);
    const row = JSON.parse(s.out);
    assert.equal(row.Name, 'life');
    assert.ok(Number(row.PIDs) >= 1, s.out);
  });

  it("an exec's process shows in top, and ends when the brig exec that started it is killed", async () => {
    const ex = spawn(process.execPath, [join(import.meta.dirname, '../../bin/brig-node'), 'exec', 'life', '/bin/sleep', '77'], { env, stdio: 'ignore' });
    const closed = new Promise((r) => ex.once('close', r));
    await until('the exec in top', () => brig('top', 'life').out.includes('/bin/sleep 77'));
    ex.kill('SIGKILL');
    await closed;
    await until('the exec gone', () => !brig('top', 'life').out.includes('/bin/sleep 77'), 5000);
  });

  it('rename keeps it; cp copies both ways', () => {
    assert.equal(brig('rename', 'life', 'life2').code, 0);
    assert.equal(brig('exec', 'life2', 'true').code, 0);
    assert.equal(brig('exec', 'life', 'true').code, 125);
    const src = join(root, 'in.txt');
    writeFileSync(src, 'from host\n');
    assert.equal(brig('cp', src, 'life2:/tmp/').code, 0);
    assert.equal(brig('exec', 'life2', 'cat', '/tmp/in.txt').out, 'from host\n');
    assert.equal(brig('cp', src, 'life2:/tmp/renamed.txt').code, 0);
    assert.equal(brig('exec', 'life2', 'cat', '/tmp/renamed.txt').out, 'from host\n');
    const out = join(root, 'out.txt');
    const r = brig('cp', 'life2:/tmp/mark', out);
    assert.equal(r.code, 0, r.err);
    assert.equal(readFileSync(out, 'utf8'), 'made\n');
    // Into a read-only place: the container's own rules refuse.
    const ro = brig('cp', src, 'life2:/usr/');
    assert.notEqual(ro.code, 0);
    assert.equal(ro.err.trim().split('\n').length, 1, ro.err);
    brig('rename', 'life2', 'life');
  });

  it('stop, start again, restart; rm leaves nothing', async () => {
    const rec = inspect('life');
    const init = rec.State.Pid;
    const monitor = rec.Brig.MonitorPid;
    assert.ok(running(init) && running(monitor));
    assert.equal(brig('stop', '-t', '2', 'life').code, 0);
    assert.ok(!running(init) && !running(monitor));
    assert.match(brig('ps', '-a').out, /Exited \(143\)/);
    assert.equal(brig('ps', '-q').out, '');
    assert.equal(brig('start', 'life').code, 0);
    assert.equal(inspect('life').State.Status, 'running');
    const before = inspect('life').State.Pid;
    assert.equal(brig('restart', '-t', '1', 'life').code, 0);
    const after = inspect('life').State;
    assert.equal(after.Status, 'running');
    assert.notEqual(after.Pid, before);
    const rm = brig('rm', 'life');
    assert.equal(rm.code, 125);
    assert.match(rm.err, /^Error: cannot remove container "life": container is running/);
    assert.equal(rm.err.trim().split('\n').length, 1);
    const last = inspect('life');
    assert.equal(brig('rm', '-f', 'life').code, 0);
    assert.ok(!running(last.State.Pid) && !running(last.Brig.MonitorPid));
    assert.ok(!existsSync(join(env.BRIG_STORE, 'ctr', id)), 'record left');
    assert.ok(!existsSync(join(env.XDG_RUNTIME_DIR, 'brig', id.slice(0, 12))), 'runtime dir left');
    assert.deepEqual(containerCgroups(id), []);
    assert.equal(brig('ps', '-a', '-q').out, '');
  });
});

describe('pause', () => {
  it("freezes a spinner: its CPU time does not grow while paused, and grows again after", async () => {
    assert.equal(brig('run', '-d', '--name', 'spin', '--', '/bin/sh', '-c', 'while :; do :; done').code, 0);
    const pids = topPids('spin');
    await sleep(200);
    const p = brig('pause', 'spin');
    assert.equal(p.code, 0, p.err);
    assert.match(brig('ps').out, /\(Paused\)/);
    // The freezer may take a moment to reach every task.
    await sleep(100);
    const t1 = ticks(pids);
    await sleep(600);
    assert.equal(ticks(pids), t1, 'CPU time grew while paused');
    assert.equal(brig('exec', 'spin', 'true').code, 125);
    assert.equal(brig('unpause', 'spin').code, 0);
    await sleep(600);
    assert.ok(ticks(pids) > t1, 'CPU time did not grow after unpause');
    const by = inspect('spin').Brig.PauseBy;
    assert.ok(by === 'cgroup-v1' || by === 'cgroup-v2' || by === 'sigstop', by);
    if (isRoot) assert.notEqual(by, 'sigstop');
    assert.equal(brig('rm', '-f', 'spin').code, 0);
  });
});

describe('restart policies', () => {
  it('on-failure:3 restarts a crashing program exactly 3 times', async () => {
    const r = brig('run', '-d', '--name', 'crash', '--restart', 'on-failure:3', '--', '/bin/sh', '-c', 'echo run; exit 3');
    assert.equal(r.code, 0, r.err);
    const w = brig('wait', 'crash');
    assert.equal(w.out, '3\n');
    const rec = inspect('crash');
    assert.equal(rec.RestartCount, 3);
    assert.equal(rec.State.Status, 'exited');
    assert.equal(brig('logs', 'crash').out, 'run\nrun\nrun\nrun\n');
    assert.equal(brig('rm', 'crash').code, 0);
  });

  it('--rm removes the container when it exits', async () => {
    const r = brig('run', '-d', '--rm', '--name', 'gone', '--', '/bin/true');
    assert.equal(r.code, 0, r.err);
    await until('removal', () => brig('ps', '-a', '-q').out === '');
  });
});

describe('logs -f', () => {
  it('streams lines as they are written and ends when the container stops', async () => {
    assert.equal(brig('run', '-d', '--name', 'talk', '--log-opt', 'max-size=2k', '--log-opt', 'max-file=2', '--', '/bin/sh', '-c', 'i=0; while :; do i=$((i+1)); echo line $i; sleep 0.05; done').code, 0);
    const f = spawn(process.execPath, [join(import.meta.dirname, '../../bin/brig-node'), 'logs', '-f', '--tail', '0', 'talk'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    f.stdout.on('data', (d) => (out += d));
    // Enough for the 2 KiB log to have rotated once (about 70 bytes a line).
    await until('streamed lines', () => (out.match(/line \d+/g) ?? []).length >= 45);
    const nums = out.match(/line (\d+)/g)!.map((l) => Number(l.slice(5)));
    for (let i = 1; i < nums.length; i++) assert.equal(nums[i], nums[i - 1] + 1, out);
    const closed = new Promise((r) => f.once('close', r));
    assert.equal(brig('stop', '-t', '1', 'talk').code, 0);
    await closed;
    // Rotated at 2 KiB, two files at most.
    const log = inspect('talk').LogPath;
    assert.ok(existsSync(`${log}.1`) && !existsSync(`${log}.2`));
    assert.ok(readFileSync(log).length <= 2048);
    assert.equal(brig('rm', 'talk').code, 0);
  });
});

describe('two brig processes at once', () => {
  it('racing starts make one monitor; racing stops and removals leave it consistent', async () => {
    assert.equal(brig('create', '--name', 'race', '--', '/bin/sh', '-c', 'while :; do sleep 0.1; done').code, 0);
    const starts = await Promise.all([brigAsync('start', 'race'), brigAsync('start', 'race')]);
    for (const s of starts) assert.equal(s.code, 0, s.err);
    const rec = inspect('race');
    assert.equal(rec.State.Status, 'running');
    const monitors = readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          // (init shares its monitor's memory, so its cmdline reads the same: told apart by comm)
          return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(`brig-monitor ${rec.Id.slice(0, 12)}`) && readFileSync(`/proc/${p}/comm`, 'utf8').trim() !== 'brig-init';
        } catch {
          return false;
        }
      });
    assert.equal(monitors.length, 1, 'one monitor');
    const stops = await Promise.all([brigAsync('stop', '-t', '1', 'race'), brigAsync('stop', '-t', '1', 'race')]);
    for (const s of stops) assert.equal(s.code, 0, s.err);
    assert.equal(inspect('race').State.Status, 'exited');
    assert.equal(brig('start', 'race').code, 0);
    const rms = await Promise.all([brigAsync('rm', '-f', 'race'), brigAsync('rm', '-f', 'race')]);
    assert.equal(rms.filter((r) => r.code === 0).length >= 1, true, JSON.stringify(rms));
    for (const r of rms) if (r.code !== 0) assert.match(r.err, /^Error: No such container: race\n$/);
    assert.equal(brig('ps', '-a', '-q').out, '');
    assert.ok(!running(rec.State.Pid));
  });
});

describe('SIGKILL of the monitor', () => {
  it('takes the container down; ps then says it exited and why; nothing is left', async () => {
    assert.equal(brig('run', '-d', '--name', 'orphan', '--', '/bin/sh', '-c', 'while :; do sleep 0.1; done').code, 0);
    const rec = inspect('orphan');
    const pids = [rec.State.Pid, ...topPids('orphan')];
    const runtime = join(env.XDG_RUNTIME_DIR, 'brig', rec.Id.slice(0, 12));
    assert.ok(existsSync(runtime));
    process.kill(rec.Brig.MonitorPid, 'SIGKILL');
    await until('the container to die', () => pids.every((p) => !running(p)), 3000);
    // Cleaned up by the monitor's reaper, before any brig command looks.
    await until('its cgroups and runtime directory to go', () => containerCgroups(rec.Id).length === 0 && !existsSync(runtime), 5000);
    const ps = brig('ps', '-a');
    assert.match(ps.out, /Exited \(137\) .*monitor \(pid \d+\) died/);
    assert.equal(inspect('orphan').State.Status, 'exited');
    assert.deepEqual(containerCgroups(rec.Id), []);
    assert.ok(!existsSync(join(env.XDG_RUNTIME_DIR, 'brig', rec.Id.slice(0, 12))));
    assert.equal(brig('rm', 'orphan').code, 0);
  });
});

describe('bad input', () => {
  it('one line, Docker exit codes', async () => {
    const cases: [string[], number, RegExp][] = [
      [['start', 'nosuch'], 125, /^Error: No such container: nosuch$/],
      [['exec', 'nosuch', 'true'], 125, /^Error: No such container: nosuch$/],
      [['logs', 'nosuch'], 125, /^Error: No such container: nosuch$/],
      [['run', '-d', '--restart', 'sometimes', '--', 'true'], 125, /restart: expected no, on-failure\[:N\], always or unless-stopped/],
      [['run', '-d', '--name', 'bad name', '--', 'true'], 125, /a container name is letters/],
      [['run', '--stop-timeout', '3', '--', 'true'], 125, /--stop-timeout needs -d/],
      [['run', '-d'], 125, /requires an image or a command/],
      [['ps', '--filter', 'colour=red'], 125, /--filter: expected/],
    ];
    for (const [args, code, re] of cases) {
      const r = brig(...args);
      assert.equal(r.code, code, `${args.join(' ')}: ${r.err}`);
      assert.equal(r.err.trim().split('\n').length, 1, r.err);
      assert.match(r.err.trim(), re);
    }
    assert.equal(brig('run', '-d', '--name', 'dup', '--', '/bin/sh', '-c', 'sleep 30').code, 0);
    const dup = brig('run', '-d', '--name', 'dup', '--', 'true');
    assert.equal(dup.code, 125);
    assert.match(dup.err, /Conflict\. The container name "\/dup" is already in use/);
    const nf = brig('exec', 'dup', 'nosuchcommand');
    assert.equal(nf.code, 127);
    assert.match(nf.err, /^Error: exec failed: .*ENOENT/);
    assert.equal(brig('exec', 'dup', '/etc').code, 126);
    assert.equal(brig('stop', '-t', '0', 'dup').code, 0);
    const stopped = brig('exec', 'dup', 'true');
    assert.equal(stopped.code, 125);
    assert.match(stopped.err, /^Error: Container [0-9a-f]{64} is not running\n$/);
    assert.equal(brig('rm', 'dup').code, 0);
    // A command that does not exist: the container says so, and start fails with 127.
    const missing = brig('run', '-d', '--name', 'nocmd', '--', 'nosuchcommand');
    assert.equal(missing.code, 127, missing.err);
    assert.equal(brig('rm', 'nocmd').code, 0);
  });
});

describe('exec and the container\'s processes', () => {
  it('an exec lists the container\'s program and signals it (kill PID, kill -TERM 1 through init), still confined', async () => {
    const prog = 'trap "echo got-usr1" USR1; trap "echo got-term; exit 7" TERM; while :; do sleep 0.1; done';
    assert.equal(brig('run', '-d', '--name', 'sig', '--', '/bin/sh', '-c', prog).code, 0);
    // From inside: the program is in the exec's /proc (ps), with its pid there.
    const ps = brig('exec', 'sig', '/bin/sh', '-c', 'for p in /proc/[0-9]*; do printf "%s %s\\n" "${p#/proc/}" "$(tr "\\0" " " < $p/cmdline)"; done');
    assert.equal(ps.code, 0, ps.err);
    const line = ps.out.split('\n').find((l) => l.includes('trap "echo got-usr1"'));
    assert.ok(line, `the program is not in the exec's /proc:\n${ps.out}`);
    const pid = line!.split(' ')[0];
    const usr1 = brig('exec', 'sig', '/bin/sh', '-c', `kill -USR1 ${pid}`);
    assert.equal(usr1.code, 0, usr1.err);
    await until('the program to get SIGUSR1', () => brig('logs', 'sig').out.includes('got-usr1'));
    // Still confined: brig's init (pid 1, outside the program's Landlock domain, with capabilities) shows its name only.
    const environ = brig('exec', 'sig', '/bin/sh', '-c', 'cat /proc/1/environ >/dev/null && echo READ');
    assert.notEqual(environ.code, 0);
    assert.doesNotMatch(environ.out, /READ/);
    const caps = brig('exec', 'sig', '/bin/sh', '-c', 'grep CapEff /proc/self/status');
    assert.match(caps.out, /CapEff:\s+0+\n/);
    // pid 1 is brig's init: it passes SIGTERM on to the program, as Docker's --init does.
    assert.equal(brig('exec', 'sig', '/bin/sh', '-c', 'kill -TERM 1').code, 0);
    await until('the container to exit', () => inspect('sig').State.Status === 'exited');
    assert.equal(inspect('sig').State.ExitCode, 7);
    assert.match(brig('logs', 'sig').out, /got-term/);
    assert.equal(brig('rm', 'sig').code, 0);
  });
});

describe('detached terminals', () => {
  const script = ['/usr/bin/script', '/bin/script'].find((p) => existsSync(p));
  const bin = join(import.meta.dirname, '../../bin/brig-node');
  function session(cmd: string) {
    const s = spawn(script!, ['-qec', cmd, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const o = { out: '', code: new Promise<number | null>((r) => s.once('close', r)), s };
    s.stdout.on('data', (d) => (o.out += d));
    return o;
  }
  /** Types the line again every 2 s until the answer shows (the attach is up once it does). */
  async function typeUntil(o: ReturnType<typeof session>, line: string, re: RegExp): Promise<void> {
    const end = Date.now() + 30_000;
    while (!re.test(o.out)) {
      if (Date.now() > end) assert.fail(`no ${re} in ${JSON.stringify(o.out)}`);
      o.s.stdin.write(line);
      const next = Date.now() + 2000;
      while (Date.now() < next && !re.test(o.out)) await sleep(50);
    }
  }
  it('run -d -t -i: a terminal of the container\'s own devpts, attach with stdin, ctrl-p ctrl-q detaches, logs keep it', { skip: !script && 'no script(1)' }, async () => {
    const r = brig('run', '-d', '-t', '-i', '--name', 'tty', '--', '/bin/sh');
    assert.equal(r.code, 0, r.err);
    assert.equal(inspect('tty').Config.Tty, true);
    const a = session(`stty cols 77 rows 21; ${process.execPath} ${bin} attach tty`);
    // The attach is raw once it is up: a line typed before then would be echoed by the outer terminal too.
    await typeUntil(a, 'echo up-$((1+1))\n', /up-2/);
    a.s.stdin.write('tty; ls /dev/pts | tr "\\n" " "; echo; stty size; echo $((40+2))\n');
    await until('the answers', () => /42/.test(a.out.replace('$((40+2))', '')));
    assert.match(a.out, /\/dev\/pts\/0/);
    // The container's own devpts: its terminal and ptmx, none of the host's.
    assert.match(a.out, /\n0 ptmx \r*\n/);
    assert.match(a.out, /21 77/);
    a.s.stdin.write('\x10\x11');
    assert.equal(await a.code, 0, a.out);
    a.s.stdin.destroy();
    assert.equal(inspect('tty').State.Running, true, 'detaching left it running');
    assert.match(brig('logs', 'tty').out, /\/dev\/pts\/0/);
    const b = session(`${process.execPath} ${bin} attach tty`);
    await typeUntil(b, 'echo again-$((2+2))\n', /again-4/);
    b.s.stdin.write('exit 5\n');
    assert.equal(await b.code, 5);
    b.s.stdin.destroy();
    assert.equal(inspect('tty').State.ExitCode, 5);
    assert.equal(brig('rm', 'tty').code, 0);
  });

  it('create -i and start -a -i: stdin through the monitor, the output and exit code back', async () => {
    assert.equal(brig('create', '-i', '--name', 'in', '--', '/bin/sh', '-c', 'read x; echo "got $x"; echo err-line >&2; exit 4').code, 0);
    const r = brigCli(['start', '-a', '-i', 'in'], { env, input: 'hello\n', timeoutMs: 60_000 });
    assert.equal(r.code, 4, r.err);
    assert.equal(r.out, 'got hello\n');
    assert.equal(r.err, 'err-line\n');
    assert.equal(brig('rm', 'in').code, 0);
  });
});

describe('exec -t', () => {
  const script = ['/usr/bin/script', '/bin/script'].find((p) => existsSync(p));
  it('a terminal session under script(1): a tty, its size, input and the exit code', { skip: !script && 'no script(1)' }, async () => {
    assert.equal(brig('run', '-d', '--name', 'term', '--', '/bin/sleep', '60').code, 0);
    const bin = join(import.meta.dirname, '../../bin/brig-node');
    const cmd = `stty cols 91 rows 33; ${process.execPath} ${bin} exec -it term /bin/sh`;
    const s = spawn(script!, ['-qec', cmd, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    s.stdout.on('data', (d) => (out += d));
    const code = new Promise<number | null>((r) => s.once('close', r));
    await until('a prompt', () => out.includes('$ '));
    s.stdin.write('test -t 0 && echo on-a-tty; stty size; echo $((40+2))\n');
    await until('the answers', () => /42/.test(out.replace('$((40+2))', '')));
    s.stdin.write('exit 3\n');
    assert.equal(await code, 3);
    assert.match(out, /on-a-tty/);
    assert.match(out, /33 91/);
    s.stdin.destroy();
    // Piped stdin cannot drive a terminal: Docker's refusal, at once, instead of a shell waiting for ever.
    const piped = brig('exec', '-it', 'term', '/bin/sh');
    assert.equal(piped.code, 125);
    assert.equal(piped.err, 'brig exec: the input device is not a TTY: -it needs a terminal as standard input; drop -t to pipe input (-i)\n');
    assert.equal(brig('exec', '-d', '-t', 'term', '/bin/true').err, 'brig exec: -d and -t do not go together\n');
    assert.equal(brig('rm', '-f', 'term').code, 0);
  });

  it('run -it in the foreground under script(1): a tty as its controlling terminal, its size, input and the exit code', { skip: !script && 'no script(1)' }, async () => {
    const bin = join(import.meta.dirname, '../../bin/brig-node');
    const cmd = `stty cols 87 rows 29; ${process.execPath} ${bin} run -it -- /bin/sh`;
    const s = spawn(script!, ['-qec', cmd, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    s.stdout.on('data', (d) => (out += d));
    const code = new Promise<number | null>((r) => s.once('close', r));
    await until('a prompt', () => out.includes('$ '));
    // The sandbox's shell owns the terminal (tty_nr of its stat is set: it has a controlling terminal).
    s.stdin.write('test -t 0 && test -t 1 && echo on-a-tty; stty size; cut -d" " -f7 /proc/$$/stat | grep -qv "^0$" && echo has-ctty; echo $((40+2))\n');
    await until('the answers', () => /42/.test(out.replace('$((40+2))', '')));
    s.stdin.write('exit 5\n');
    assert.equal(await code, 5);
    assert.match(out, /on-a-tty/);
    assert.match(out, /29 87/);
    assert.match(out, /has-ctty/);
    s.stdin.destroy();
  });
});

describe('a container from an image', () => {
  const busybox = ['/usr/bin/busybox', '/bin/busybox'].find((p) => existsSync(p));
  it('keeps its writable layer across stop and start; commit makes an image of it; rm removes it', { skip: !busybox && 'no busybox' }, () => {
    const dir = join(root, 'rootfs');
    mkdirSync(join(dir, 'bin'), { recursive: true });
    mkdirSync(join(dir, 'etc'));
    writeFileSync(join(dir, 'bin', 'busybox'), readFileSync(busybox!), { mode: 0o755 });
    for (const a of ['sh', 'cat', 'echo', 'sleep', 'tar', 'test', 'ls']) symlinkSync('busybox', join(dir, 'bin', a));
    writeFileSync(join(dir, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
    chmodSync(root, 0o755);
    assert.equal(brig('import-rootfs', '--cmd', '["/bin/sh","-c","echo hi > /made.txt; sleep 100"]', dir, 'bb:1').code, 0);
    const r = brig('run', '-d', '--name', 'img', 'bb:1');
    assert.equal(r.code, 0, r.err);
    const id = r.out.trim();
    assert.ok(existsSync(join(env.BRIG_STORE, 'containers', id)), 'writable layer on disk');
    assert.equal(brig('exec', 'img', '/bin/sh', '-c', 'while ! test -e /made.txt; do sleep 0.05; done; echo more > /more.txt; cat /made.txt').out, 'hi\n');
    // exec -i: stdin passed through.
    assert.equal(brigCli(['exec', '-i', 'img', 'cat'], { env, input: 'piped\n' }).out, 'piped\n');
    assert.equal(brig('stop', '-t', '0', 'img').code, 0);
    assert.equal(brig('start', 'img').code, 0);
    assert.equal(brig('exec', 'img', 'cat', '/more.txt').out, 'more\n');
    assert.equal(brig('stop', '-t', '0', 'img').code, 0);
    // A container kept by a foreground run --name: in ps -a (exited), not in ps.
    assert.equal(brig('run', '--name', 'kept', 'bb:1', 'echo', 'x').code, 0);
    assert.doesNotMatch(brig('ps').out, /kept/);
    const kept = brig('ps', '-a', '--filter', 'name=kept', '--format', 'json').out.trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(kept.length, 1);
    assert.equal(kept[0].Names, 'kept');
    assert.equal(kept[0].State, 'exited');
    assert.equal(kept[0].Image, 'bb:1');
    assert.match(kept[0].ID, /^[0-9a-f]{12}$/);
    assert.equal(brig('rm', 'kept').code, 0);
    assert.doesNotMatch(brig('ps', '-a').out, /kept/);
    const c = brig('commit', 'img', 'bb:2');
    assert.equal(c.code, 0, c.err);
    assert.equal(brig('run', 'bb:2', 'cat', '/more.txt').out, 'more\n');
    assert.equal(brig('rm', 'img').code, 0);
    assert.ok(!existsSync(join(env.BRIG_STORE, 'containers', id)), 'writable layer left');
    assert.equal(brig('rmi', 'bb:2').code, 0);
    assert.equal(brig('rmi', 'bb:1').code, 0);
  });
});

describe('the library', () => {
  it('createContainer, getContainer, listContainers, exec and logs as an iterator', async () => {
    process.env.BRIG_STORE = env.BRIG_STORE;
    process.env.XDG_RUNTIME_DIR = env.XDG_RUNTIME_DIR;
    const { createContainer, getContainer, listContainers } = await import('../src/index.js');
    const c = createContainer(['/bin/sh', '-c', 'echo one; echo two; sleep 30'], { name: 'lib' });
    await c.start();
    assert.equal(getContainer('lib').id, c.id);
    assert.deepEqual(
      listContainers().map((r) => r.Name),
      ['lib'],
    );
    const r = await c.exec(['/bin/sh', '-c', 'echo $((6*7))']);
    assert.equal(r.status, 'ok');
    assert.equal(r.stdout.toString(), '42\n');
    await until('two lines', () => brig('logs', 'lib').out === 'one\ntwo\n');
    const seen: string[] = [];
    for await (const e of c.logs()) seen.push(e.log);
    assert.deepEqual(seen, ['one\n', 'two\n']);
    await c.stop({ timeout: 1 });
    assert.equal(await c.wait(), 143);
    await c.remove();
    delete process.env.BRIG_STORE;
    delete process.env.XDG_RUNTIME_DIR;
  });
});

guardLeaks();
