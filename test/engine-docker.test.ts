// The Debian docker CLI (20.10, unmodified) driving brig through
// `brig system service`: run, ps, logs, exec (with a terminal), cp, stats,
// wait, kill, rename, top, inspect, events, refusals; and the service
// leaving and coming back without losing a container.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { busyboxImage, DOCKER, docker, dockerAsync, endService, engineRoot, http, startService, type Service } from './engine-util.js';
import { guardLeaks, sleep, until } from './helpers.js';

const { root, env } = engineRoot('engine-docker-');
let svc: Service;
const hasDocker = existsSync(DOCKER);
let hasImage = false;
const skip = !hasDocker ? `no ${DOCKER} (Debian's docker.io)` : false;

before(async () => {
  if (!hasDocker) return;
  hasImage = busyboxImage(env, 'bb:1');
  svc = await startService(env);
});
after(() => endService(svc, root));

describe('docker run, ps, logs, stop, rm', { skip }, () => {
  it('run --rm: output in order on stdout and stderr, its exit code, and the container gone', () => {
    assert.ok(hasImage, 'no busybox to make an image from');
    const r = docker(svc, ['run', '--rm', 'bb:1', 'sh', '-c', 'echo out; echo err >&2; exit 3']);
    assert.equal(r.code, 3, r.err);
    assert.equal(r.out, 'out\n');
    assert.equal(r.err, 'err\n');
    assert.equal(docker(svc, ['ps', '-aq']).out.trim(), '');
  });

  it('run: a command that is not there exits 127, as docker does', () => {
    const r = docker(svc, ['run', '--rm', 'bb:1', '/no/such/program']);
    assert.equal(r.code, 127, r.err);
  });

  it('run by image ID (as docker images shows it, and a prefix)', () => {
    const id = docker(svc, ['images', '-q', 'bb:1']).out.trim();
    assert.match(id, /^[0-9a-f]{12}$/);
    for (const ref of [id, id.slice(0, 6)]) {
      const r = docker(svc, ['run', '--rm', ref, 'echo', 'by-id']);
      assert.deepEqual([r.code, r.out], [0, 'by-id\n'], r.err);
    }
  });

  it('run -d, ps, logs --tail, logs -f until stop, inspect, rm', async () => {
    const r = docker(svc, ['run', '-d', '--name', 'ticker', '--label', 'team=a', 'bb:1', 'sh', '-c', 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done']);
    assert.equal(r.code, 0, r.err);
    const id = r.out.trim();
    assert.match(id, /^[0-9a-f]{64}$/);
    const ps = docker(svc, ['ps', '--format', '{{.ID}} {{.Names}} {{.Status}}']);
    assert.match(ps.out, new RegExp(`^${id.slice(0, 12)} ticker Up `, 'm'));
    assert.equal(docker(svc, ['ps', '-q', '--filter', 'label=team=a']).out.trim(), id.slice(0, 12));
    assert.equal(docker(svc, ['ps', '-q', '--filter', 'label=team=b']).out.trim(), '');
    await until('two ticks', () => docker(svc, ['logs', 'ticker']).out.split('\n').length > 3);
    const tail = docker(svc, ['logs', '--tail', '1', 'ticker']).out.trim().split('\n');
    assert.equal(tail.length, 1);
    assert.match(tail[0], /^tick \d+$/);
    const stamped = docker(svc, ['logs', '-t', '--tail', '1', 'ticker']).out.trim();
    assert.match(stamped, /^\d{4}-\d\d-\d\dT[\d:.]+Z tick \d+$/);
    // logs -f follows new lines and ends when the container stops.
    const follow = dockerAsync(svc, ['logs', '-f', '--tail', '0', 'ticker']);
    await until('followed lines', () => false || (follow.proc.exitCode === null && /tick/.test(readOut(follow))), 10_000);
    assert.equal(docker(svc, ['stop', '-t', '1', 'ticker']).code, 0);
    const f = await follow.done;
    assert.equal(f.code, 0, f.err);
    assert.match(f.out, /^tick \d+\n/);
    const state = JSON.parse(docker(svc, ['inspect', 'ticker']).out)[0];
    assert.equal(state.Id, id);
    assert.equal(state.Name, '/ticker');
    assert.equal(state.State.Status, 'exited');
    assert.equal(state.Config.Labels.team, 'a');
    assert.equal(docker(svc, ['rm', 'ticker']).code, 0);
    assert.match(docker(svc, ['inspect', 'ticker']).err, /No such (container|object): ticker/);
  });

  it('rm refuses a running container (409) unless -f', async () => {
    assert.equal(docker(svc, ['run', '-d', '--name', 'busy', 'bb:1', 'sleep', '100']).code, 0);
    const r = docker(svc, ['rm', 'busy']);
    assert.notEqual(r.code, 0);
    assert.match(r.err, /You cannot remove a running container/);
    assert.equal(docker(svc, ['rm', '-f', 'busy']).code, 0);
    assert.equal(docker(svc, ['ps', '-aq']).out.trim(), '');
  });
});

const outs = new WeakMap<object, string>();
function readOut(h: ReturnType<typeof dockerAsync>): string {
  if (!outs.has(h)) {
    outs.set(h, '');
    h.proc.stdout!.on('data', (d) => outs.set(h, outs.get(h) + d));
  }
  return outs.get(h)!;
}

describe('docker exec, cp, top, stats, kill, wait, rename', { skip }, () => {
  before(() => {
    if (!svc) return;
    const r = docker(svc, ['run', '-d', '--name', 'box', 'bb:1', 'sleep', '1000']);
    assert.equal(r.code, 0, r.err);
  });

  it('exec: output, exit code, stdin with -i, env and workdir', () => {
    const r = docker(svc, ['exec', '-e', 'X=42', '-w', '/tmp', 'box', 'sh', '-c', 'echo $X $(pwd); echo e >&2; exit 5']);
    assert.equal(r.code, 5);
    assert.equal(r.out, '42 /tmp\n');
    assert.equal(r.err, 'e\n');
    const i = docker(svc, ['exec', '-i', 'box', 'wc', '-c'], { input: 'twelve bytes' });
    assert.equal(i.code, 0, i.err);
    assert.equal(i.out.trim(), '12');
  });

  it('exec -it under a pty: the command has a terminal of the size docker gave it', async () => {
    // script(1) gives the docker CLI a terminal; docker passes its size through exec resize.
    // The CLI sizes the exec after its start, as Docker's does: the command waits (up to 10 s) for a size other than the default.
    const cmd = `stty cols 91 rows 33; ${DOCKER} exec -it box sh -c 'test -t 0 && echo TTY-YES; i=0; while [ "\$(stty size)" = "24 80" ] && [ \$i -lt 100 ]; do sleep 0.1; i=\$((i+1)); done; stty size; exit 7'`;
    const p = spawn('script', ['-qec', cmd, '/dev/null'], { env: { ...env, DOCKER_HOST: `unix://${svc.socket}`, DOCKER_CONFIG: join(env.XDG_RUNTIME_DIR!, 'docker-config') }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    const code = await new Promise<number | null>((r) => p.on('close', r));
    assert.match(out, /TTY-YES/);
    assert.match(out, /33 91/);
    assert.equal(code, 7, out);
  });

  it('cp both ways: a file and a directory', () => {
    const host = join(root, 'cp');
    mkdirSync(join(host, 'dir', 'sub'), { recursive: true });
    writeFileSync(join(host, 'a.txt'), 'alpha\n');
    writeFileSync(join(host, 'dir', 'sub', 'b.txt'), 'beta\n');
    assert.equal(docker(svc, ['cp', join(host, 'a.txt'), 'box:/tmp/renamed.txt']).code, 0);
    assert.equal(docker(svc, ['exec', 'box', 'cat', '/tmp/renamed.txt']).out, 'alpha\n');
    assert.equal(docker(svc, ['cp', join(host, 'dir'), 'box:/tmp/']).code, 0);
    assert.equal(docker(svc, ['exec', 'box', 'cat', '/tmp/dir/sub/b.txt']).out, 'beta\n');
    docker(svc, ['exec', 'box', 'sh', '-c', 'mkdir -p /tmp/made/in && echo gamma > /tmp/made/in/c.txt']);
    const r = docker(svc, ['cp', 'box:/tmp/made', join(host, 'out')]);
    assert.equal(r.code, 0, r.err);
    assert.equal(readFileSync(join(host, 'out', 'in', 'c.txt'), 'utf8'), 'gamma\n');
    assert.equal(docker(svc, ['cp', 'box:/tmp/renamed.txt', join(host, 'back.txt')]).code, 0);
    assert.equal(readFileSync(join(host, 'back.txt'), 'utf8'), 'alpha\n');
    const missing = docker(svc, ['cp', 'box:/no/such/file', join(host, 'x')]);
    assert.notEqual(missing.code, 0);
    assert.match(missing.err, /No such container:path: box:\/no\/such\/file/); // the docker CLI's words for our 404
  });

  it('top lists the container\'s processes; stats --no-stream shows it', () => {
    const t = docker(svc, ['top', 'box']);
    assert.equal(t.code, 0, t.err);
    assert.match(t.out, /^UID\s+PID\s+PPID/);
    assert.match(t.out, /sleep 1000/);
    const s = docker(svc, ['stats', '--no-stream', '--format', '{{.Name}} {{.PIDs}} {{.MemUsage}}', 'box']);
    assert.equal(s.code, 0, s.err);
    assert.match(s.out.trim(), /^box 1 [\d.]+[KMG]i?B \/ /);
  });

  it('rename, then kill with a signal, and wait gives its code', async () => {
    assert.equal(docker(svc, ['rename', 'box', 'box2']).code, 0);
    const w = dockerAsync(svc, ['wait', 'box2']);
    await sleep(300);
    assert.equal(docker(svc, ['kill', '-s', 'TERM', 'box2']).code, 0);
    const r = await w.done;
    assert.equal(r.out.trim(), '143', r.err);
    assert.equal(docker(svc, ['inspect', '-f', '{{.State.ExitCode}}', 'box2']).out.trim(), '143');
    const k = docker(svc, ['kill', 'box2']);
    assert.notEqual(k.code, 0);
    assert.match(k.err, /is not running/);
    assert.equal(docker(svc, ['rm', 'box2']).code, 0);
  });
});

describe('what brig refuses, and events', { skip }, () => {
  it('--privileged, --cap-add, --device, --pid host, seccomp=unconfined: refused with the reason', () => {
    for (const [flags, why] of [
      [['--privileged'], /Privileged: refused/],
      [['--cap-add', 'SYS_ADMIN'], /CapAdd \(SYS_ADMIN\): refused/],
      [['--device', '/dev/null'], /Devices: refused/],
      [['--pid', 'host'], /PidMode=host: refused/],
      [['--ipc', 'host'], /IpcMode=host: refused/],
      [['--security-opt', 'seccomp=unconfined'], /seccomp=unconfined: refused/],
    ] as const) {
      const r = docker(svc, ['run', '--rm', ...flags, 'bb:1', 'true']);
      assert.equal(r.code, 125, `${flags.join(' ')}: ${r.err}`);
      assert.match(r.err, why);
    }
    assert.equal(docker(svc, ['ps', '-aq']).out.trim(), '');
  });

  it('events: create, start, die, destroy of a container, filtered to it', async () => {
    const since = Math.floor(Date.now() / 1000);
    const ev = dockerAsync(svc, ['events', '--filter', 'type=container', '--filter', 'container=evt', '--format', '{{.Action}} {{.Actor.Attributes.name}}']);
    await sleep(500);
    assert.equal(docker(svc, ['run', '-d', '--name', 'evt', 'bb:1', 'sh', '-c', 'sleep 0.3; exit 2']).code, 0);
    assert.equal(docker(svc, ['wait', 'evt']).out.trim(), '2');
    assert.equal(docker(svc, ['rm', 'evt']).code, 0);
    await until('destroy event', () => /destroy evt/.test(readOut(ev)), 5000);
    ev.proc.kill('SIGTERM');
    await ev.done;
    const lines = readOut(ev).trim().split('\n');
    assert.deepEqual(lines, ['create evt', 'start evt', 'die evt', 'destroy evt']);
    void since;
  });

  it('system df counts the image and containers', () => {
    const r = docker(svc, ['system', 'df', '--format', '{{.Type}} {{.TotalCount}}']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^Images 1$/m);
  });
});

describe('the service leaves and comes back', { skip }, () => {
  it('a running container outlives the service; the next service sees it, stops and removes it', async () => {
    assert.equal(docker(svc, ['run', '-d', '--name', 'lasting', 'bb:1', 'sleep', '1000']).code, 0);
    const pid = Number(docker(svc, ['inspect', '-f', '{{.State.Pid}}', 'lasting']).out.trim());
    assert.ok(pid > 0);
    await svc.stop();
    assert.ok(existsSync(`/proc/${pid}`), 'the container died with the service');
    assert.ok(!existsSync(svc.socket), 'the socket stayed after the service left');
    svc = await startService(env);
    assert.match(docker(svc, ['ps', '--format', '{{.Names}} {{.Status}}']).out, /^lasting Up /m);
    assert.equal(docker(svc, ['exec', 'lasting', 'echo', 'still here']).out, 'still here\n');
    assert.equal(docker(svc, ['rm', '-f', 'lasting']).code, 0);
    const r = await http(svc.socket, 'GET', '/containers/lasting/json');
    assert.equal(r.status, 404);
    assert.match(r.json().message, /No such container: lasting/);
  });

  it('SIGKILL of the service: the container runs on, and the next service takes over the dead socket and sees it', async () => {
    assert.equal(docker(svc, ['run', '-d', '--name', 'survivor', 'bb:1', 'sleep', '1000']).code, 0);
    const pid = Number(docker(svc, ['inspect', '-f', '{{.State.Pid}}', 'survivor']).out.trim());
    svc.proc.kill('SIGKILL');
    await svc.stop();
    assert.ok(existsSync(`/proc/${pid}`), 'the container died with the service');
    svc = await startService(env);
    assert.match(docker(svc, ['ps', '--format', '{{.Names}} {{.Status}}']).out, /^survivor Up /m);
    assert.equal(docker(svc, ['rm', '-f', 'survivor']).code, 0);
    await until('the container gone', () => !existsSync(`/proc/${pid}`));
  });
});

guardLeaks();
