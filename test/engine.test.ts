// brig system service, the basics: the socket (its mode, the peer check),
// version prefixes, _ping/version/info as the docker CLI reads them.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, rmSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { docker, engineRoot, http, startService, type Service } from './engine-util.js';
import { guardLeaks, isRoot } from './helpers.js';

const { root, env } = engineRoot('engine-');
let svc: Service;

before(async () => {
  svc = await startService(env);
});
after(async () => {
  await svc?.stop();
  rmSync(root, { recursive: true, force: true });
});

describe('the engine socket', () => {
  it('is 0600 in a 0700 directory, at $XDG_RUNTIME_DIR/brig/docker.sock', () => {
    assert.equal(svc.socket, join(env.XDG_RUNTIME_DIR!, 'brig', 'docker.sock'));
    assert.equal(statSync(svc.socket).mode & 0o777, 0o600);
    assert.equal(statSync(join(env.XDG_RUNTIME_DIR!, 'brig')).mode & 0o777, 0o700);
  });

  it('answers _ping (GET and HEAD) with Docker\'s headers, with and without a version prefix', async () => {
    for (const path of ['/_ping', '/v1.41/_ping', '/v1.24/_ping']) {
      const g = await http(svc.socket, 'GET', path);
      assert.equal(g.status, 200, path);
      assert.equal(g.body.toString(), 'OK');
      assert.equal(g.headers['api-version'], '1.41');
      assert.equal(g.headers['docker-experimental'], 'false');
      assert.equal(g.headers['cache-control'], 'no-cache, no-store, must-revalidate');
      const h = await http(svc.socket, 'HEAD', path);
      assert.equal(h.status, 200);
      assert.equal(h.body.length, 0);
      assert.equal(h.headers['api-version'], '1.41');
    }
  });

  it('refuses a client newer than 1.41 with Docker\'s message, and says page not found as JSON', async () => {
    const r = await http(svc.socket, 'GET', '/v1.43/version');
    assert.equal(r.status, 400);
    assert.match(r.json().message, /client version 1\.43 is too new\. Maximum supported API version is 1\.41/);
    const n = await http(svc.socket, 'GET', '/v1.41/no/such/thing');
    assert.equal(n.status, 404);
    assert.match(n.json().message, /page not found/);
  });

  it('refuses a connection from another uid even with the socket opened up (SO_PEERCRED)', { skip: !isRoot && 'needs root to connect as another user' }, async () => {
    const dir = join(env.XDG_RUNTIME_DIR!, 'brig');
    chmodSync(root, 0o755);
    chmodSync(env.XDG_RUNTIME_DIR!, 0o755);
    chmodSync(dir, 0o755);
    chmodSync(svc.socket, 0o666);
    try {
      // cloudsdk (uid 1000) connects and asks: the service closes without an answer.
      const script = `const c=require('net').connect(${JSON.stringify(svc.socket)});let got='';c.on('connect',()=>c.write('GET /_ping HTTP/1.1\\r\\nHost: d\\r\\n\\r\\n'));c.on('data',d=>got+=d);c.on('error',e=>{console.log('error '+e.code);});c.on('close',()=>{console.log('closed '+JSON.stringify(got));process.exit(0)});setTimeout(()=>{console.log('timeout');process.exit(0)},10000)`;
      const r = spawnSync('runuser', ['-u', 'cloudsdk', '--', process.execPath, '-e', script], { encoding: 'utf8', timeout: 20_000 });
      // Closed without a byte of answer (the client may see EPIPE or ECONNRESET on its write first).
      assert.match(r.stdout, /closed ""/, r.stdout + r.stderr);
      assert.doesNotMatch(r.stdout, /error EACCES|timeout/, r.stdout + r.stderr);
      await new Promise((res) => setTimeout(res, 100));
      assert.match(svc.stderr(), /refused a connection from pid \d+ uid 1000/);
      // We (the same uid) are still served.
      assert.equal((await http(svc.socket, 'GET', '/_ping')).status, 200);
    } finally {
      chmodSync(svc.socket, 0o600);
      chmodSync(dir, 0o700);
      chmodSync(env.XDG_RUNTIME_DIR!, 0o700);
      chmodSync(root, 0o700);
    }
  });

  it('will not take over a socket another service is listening on', () => {
    const r = spawnSync(process.execPath, [join(import.meta.dirname, '../../bin/brig-node'), 'system', 'service', '--socket', svc.socket], { env, encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 125, r.stderr);
    assert.match(r.stderr, /another service is listening there/);
  });

  it('rejects a socket directory someone else can read', () => {
    const open = join(root, 'open');
    spawnSync('mkdir', ['-m', '0755', open]);
    const r = spawnSync(process.execPath, [join(import.meta.dirname, '../../bin/brig-node'), 'system', 'service', '--socket', join(open, 'd.sock')], { env, encoding: 'utf8', timeout: 30_000 });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /not a private directory of this user/);
    void connect;
  });
});

describe('the docker CLI (20.10) against it', () => {
  it('docker version shows the server: brig, API 1.41', () => {
    const r = docker(svc, ['version', '--format', '{{.Server.APIVersion}} {{.Server.Platform.Name}} {{.Server.Os}}']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out.trim(), /^1\.41 brig \S+ linux$/);
  });

  it('docker info shows the store and the container counts', () => {
    const r = docker(svc, ['info', '--format', '{{.Containers}} {{.OSType}} {{.DockerRootDir}}']);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out.trim(), `0 linux ${env.BRIG_STORE}`);
  });
});

guardLeaks();
