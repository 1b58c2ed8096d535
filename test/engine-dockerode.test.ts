// dockerode (the Node client, unmodified) driving brig through `brig system
// service`: the same calls as the docker CLI's, from JS.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import Docker from 'dockerode';
import { busyboxImage, engineRoot, http, startService, type Service } from './engine-util.js';
import { guardLeaks } from './helpers.js';

const { root, env } = engineRoot('engine-dockerode-');
let svc: Service;
let docker: Docker;

before(async () => {
  assert.ok(busyboxImage(env, 'bb:1'), 'no busybox to make an image from');
  svc = await startService(env);
  docker = new Docker({ socketPath: svc.socket });
});
after(async () => {
  if (docker) for (const c of await docker.listContainers({ all: true })) await docker.getContainer(c.Id).remove({ force: true });
  await svc?.stop();
  rmSync(root, { recursive: true, force: true });
});

/** Docker's multiplexed frames → stdout and stderr. */
function demux(b: Buffer): { out: string; err: string } {
  let out = '';
  let err = '';
  for (let i = 0; i + 8 <= b.length; ) {
    const n = b.readUInt32BE(i + 4);
    const data = b.subarray(i + 8, i + 8 + n).toString();
    if (b[i] === 1) out += data;
    else if (b[i] === 2) err += data;
    i += 8 + n;
  }
  return { out, err };
}

function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('close', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
}

describe('dockerode against brig', () => {
  it('ping and version', async () => {
    assert.equal(String(await docker.ping()), 'OK');
    const v = await docker.version();
    assert.equal(v.ApiVersion, '1.41');
  });

  it('create, attach (hijacked), start, wait, remove: output demultiplexed, exit code', async () => {
    const c = await docker.createContainer({ Image: 'bb:1', Cmd: ['sh', '-c', 'echo to-out; echo to-err >&2; exit 6'], Labels: { suite: 'dockerode' } });
    const stream = await c.attach({ stream: true, stdout: true, stderr: true, hijack: true });
    const out = new PassThrough();
    const err = new PassThrough();
    c.modem.demuxStream(stream, out, err);
    const outText = collect(out);
    const errText = collect(err);
    // Listened for now: the stream may end (the container done) before wait answers.
    const ended = new Promise((r) => (stream.on('end', r), stream.on('close', r)));
    await c.start();
    const w = await c.wait();
    await ended;
    out.end();
    err.end();
    assert.equal(w.StatusCode, 6);
    assert.equal((await outText).toString(), 'to-out\n');
    assert.equal((await errText).toString(), 'to-err\n');
    const list = await docker.listContainers({ all: true, filters: { label: ['suite=dockerode'] } });
    assert.equal(list.length, 1);
    assert.equal(list[0].State, 'exited');
    assert.match(list[0].Status, /^Exited \(6\)/);
    const logs = demux((await c.logs({ stdout: true, stderr: true })) as unknown as Buffer);
    assert.deepEqual(logs, { out: 'to-out\n', err: 'to-err\n' });
    await c.remove();
    await assert.rejects(c.inspect(), (e: { statusCode?: number }) => e.statusCode === 404);
  });

  it('a refused HostConfig is a 400 with the reason', async () => {
    await assert.rejects(docker.createContainer({ Image: 'bb:1', Cmd: ['true'], HostConfig: { CapAdd: ['NET_ADMIN'] } }), (e: { statusCode?: number; json?: { message?: string } }) => e.statusCode === 400 && /CapAdd \(NET_ADMIN\): refused/.test(e.json?.message ?? ''));
    await assert.rejects(docker.createContainer({ Image: 'no-such-image:1', Cmd: ['true'] }), (e: { statusCode?: number }) => e.statusCode === 404);
  });

  describe('a running container', () => {
    let c: Docker.Container;
    before(async () => {
      c = await docker.createContainer({ Image: 'bb:1', Cmd: ['sleep', '1000'], name: 'node-box', HostConfig: { PidsLimit: 50, Memory: 256 * 1024 * 1024, RestartPolicy: { Name: 'no' } } });
      await c.start();
    });
    after(async () => {
      await c?.remove({ force: true }).catch(() => {});
    });

    it('inspect: running, with its limits', async () => {
      const i = await c.inspect();
      assert.equal(i.State.Running, true);
      assert.equal(i.Name, '/node-box');
      assert.equal(i.HostConfig.PidsLimit, 50);
      assert.equal(i.HostConfig.Memory, 256 * 1024 * 1024);
    });

    it('exec (hijacked, with stdin) and its exit code from exec inspect', async () => {
      const ex = await c.exec({ Cmd: ['sh', '-c', 'cat; echo done >&2; exit 9'], AttachStdin: true, AttachStdout: true, AttachStderr: true });
      const stream = await ex.start({ hijack: true, stdin: true });
      const out = new PassThrough();
      const err = new PassThrough();
      docker.modem.demuxStream(stream, out, err);
      const o = collect(out);
      const e = collect(err);
      const ended = new Promise((r) => (stream.on('end', r), stream.on('close', r)));
      stream.end('from stdin\n');
      await ended;
      out.end();
      err.end();
      assert.equal((await o).toString(), 'from stdin\n');
      assert.equal((await e).toString(), 'done\n');
      const info = await ex.inspect();
      assert.equal(info.Running, false);
      assert.equal(info.ExitCode, 9);
    });

    it('putArchive and getArchive: a tar in, the same file out', async () => {
      const dir = join(root, 'tar-in');
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'hello.txt'), 'hello from the host\n');
      const tar = execFileSync('tar', ['-c', '-f', '-', '-C', dir, 'hello.txt']);
      await c.putArchive(tar, { path: '/tmp' });
      const got = await collect(await c.getArchive({ path: '/tmp/hello.txt' }));
      const back = join(root, 'tar-out');
      mkdirSync(back, { recursive: true });
      execFileSync('tar', ['-x', '-f', '-', '-C', back], { input: got });
      assert.equal(execFileSync('cat', [join(back, 'hello.txt')]).toString(), 'hello from the host\n');
      // dockerode's infoArchive gives the (empty) body: the stat is in the header the docker CLI reads.
      const head = await http(svc.socket, 'HEAD', `/v1.41/containers/${c.id}/archive?path=/tmp/hello.txt`);
      assert.equal(head.status, 200);
      const stat = JSON.parse(Buffer.from(String(head.headers['x-docker-container-path-stat']), 'base64').toString());
      assert.equal(stat.name, 'hello.txt');
      assert.equal(stat.size, 20);
      assert.ok(stat.mode < 2 ** 31, 'a file has no ModeDir bit');
      const dirStat = JSON.parse(Buffer.from(String((await http(svc.socket, 'HEAD', `/containers/${c.id}/archive?path=/tmp`)).headers['x-docker-container-path-stat']), 'base64').toString());
      assert.ok(dirStat.mode >= 2 ** 31, 'a directory has Go\'s ModeDir bit');
    });

    it('top, stats (one shot), pause and unpause, rename', async () => {
      const top = await c.top();
      assert.ok(top.Processes.some((p: string[]) => p[p.length - 1] === 'sleep 1000'));
      const s = await c.stats({ stream: false });
      assert.equal(s.pids_stats?.current, 1);
      assert.ok(s.memory_stats.usage > 0);
      assert.ok(s.precpu_stats.system_cpu_usage! > 0);
      await c.pause();
      assert.equal((await c.inspect()).State.Paused, true);
      await c.unpause();
      assert.equal((await c.inspect()).State.Paused, false);
      await c.rename({ name: 'node-box-2' });
      assert.equal((await c.inspect()).Name, '/node-box-2');
    });

    it('stop, then wait (not-running) gives 137 or 143, and prune removes it', async () => {
      await c.stop({ t: 1 });
      const w = await c.wait();
      assert.ok([137, 143].includes(w.StatusCode), String(w.StatusCode));
      const pruned = await docker.pruneContainers();
      assert.ok(pruned.ContainersDeleted?.includes(c.id));
    });
  });
});

guardLeaks();
