// Registries: a real one on loopback (Debian's docker-registry, the CNCF
// distribution server), started here with a temp config and token auth
// served by a small token server in this file (ES256 JWTs signed with a key
// and certificate made by openssl, as the registry's rootcertbundle).
// Images are pushed from one store and pulled into an empty one.
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, createPrivateKey, randomBytes, sign, X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { pull, push, RegistryError, run } from '../src/index.js';
import { Store } from '../src/image/store.js';
import { bcrypt, brigBin, brigCliAsync as brigCli, freePort, guardLeaks } from './helpers.js';

const which = (cmd: string) => ['/usr/bin', '/usr/sbin', '/bin'].map((d) => join(d, cmd)).find((p) => existsSync(p));
const registryBin = which('docker-registry');
const busybox = which('busybox');
const skip = (!registryBin && 'skipped: no docker-registry (apt-get install docker-registry)') || (!busybox && 'skipped: no busybox') || (!which('openssl') && 'skipped: no openssl');

const work = mkdtempSync(join(tmpdir(), 'brig-registry-'));
chmodSync(work, 0o755);
const USER = 'alice';
const PASSWORD = 'wonderland';
const SERVICE = 'brig-test-registry';
const ISSUER = 'brig-test-token-server';

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

interface TokenServer {
  server: Server;
  port: number;
  /** The scopes asked for, and whether credentials came. */
  asked: { scope: string[]; user: string | null }[];
}

/** Hands out tokens for any scope to alice, and none to anyone else. */
async function tokenServer(keyPem: string, certPem: string): Promise<TokenServer> {
  const key = createPrivateKey(keyPem);
  const x5c = new X509Certificate(certPem).raw.toString('base64');
  const asked: TokenServer['asked'] = [];
  const server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const scope = u.searchParams.getAll('scope');
    const m = /^Basic (.+)$/.exec(req.headers.authorization ?? '');
    const [user, pass] = m ? Buffer.from(m[1], 'base64').toString().split(':') : [null, null];
    asked.push({ scope, user });
    if (user !== USER || pass !== PASSWORD) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"bad credentials"}');
      return;
    }
    const now = Math.floor(Date.now() / 1000);
    const access = scope.map((s) => {
      const [type, name, actions] = s.split(':');
      return { type, name, actions: actions.split(',') };
    });
    const header = b64url(JSON.stringify({ typ: 'JWT', alg: 'ES256', x5c: [x5c] }));
    const claims = b64url(JSON.stringify({ iss: ISSUER, sub: user, aud: SERVICE, exp: now + 300, nbf: now - 10, iat: now, jti: randomBytes(8).toString('hex'), access }));
    const sig = sign('sha256', Buffer.from(`${header}.${claims}`), { key, dsaEncoding: 'ieee-p1363' });
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: `${header}.${claims}.${b64url(sig)}`, expires_in: 300 }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port, asked };
}

/** A proxy in front of the registry that breaks the first download of each blob halfway, to make brig resume. */
async function breakingProxy(target: number): Promise<{ server: Server; port: number; ranges: string[] }> {
  const broken = new Set<string>();
  const ranges: string[] = [];
  const server = createServer((req, res) => {
    const isBlob = req.method === 'GET' && /\/blobs\/sha256:/.test(req.url ?? '');
    if (isBlob && req.headers.range) ranges.push(`${req.url} ${req.headers.range}`);
    const up = httpRequest({ host: '127.0.0.1', port: target, method: req.method, path: req.url, headers: req.headers }, (r) => {
      const breakIt = isBlob && r.statusCode === 200 && !broken.has(req.url!) && Number(r.headers['content-length']) > 1000;
      res.writeHead(r.statusCode ?? 502, r.headers);
      if (!breakIt) {
        r.pipe(res);
        return;
      }
      broken.add(req.url!);
      const half = Math.floor(Number(r.headers['content-length']) / 2);
      let sent = 0;
      r.on('data', (c: Buffer) => {
        if (sent >= half) return;
        const part = c.subarray(0, half - sent);
        sent += part.length;
        res.write(part);
        if (sent >= half) {
          r.destroy();
          res.socket?.destroy();
        }
      });
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port, ranges };
}

function busyboxRoot(tag: string): string {
  const dir = mkdtempSync(join(work, 'root-'));
  mkdirSync(join(dir, 'bin'));
  mkdirSync(join(dir, 'etc'));
  execFileSync('cp', [busybox!, join(dir, 'bin', 'busybox')]);
  for (const a of ['sh', 'cat', 'echo']) symlinkSync('busybox', join(dir, 'bin', a));
  writeFileSync(join(dir, 'etc', 'passwd'), 'root:x:0:0:root:/:/bin/sh\n');
  writeFileSync(join(dir, 'etc', 'motd'), `${tag}\n`);
  return dir;
}

/** docker-registry on a free loopback port with its own storage and `auth` section; resolves once it answers. */
async function startRegistry(kind: string, auth: string): Promise<{ proc: ChildProcess; host: string; storage: string }> {
  const host = `127.0.0.1:${await freePort()}`;
  const storage = mkdtempSync(join(work, `registry-${kind}-`));
  const config = join(storage, 'config.yml');
  writeFileSync(
    config,
    ['version: 0.1', 'log: { level: error }', `storage: { filesystem: { rootdirectory: ${storage}/data }, delete: { enabled: true } }`, `http: { addr: "${host}" }`, `auth: { ${kind}: ${auth} }`, ''].join('\n'),
  );
  const proc = spawn(registryBin!, ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr!.on('data', (d: Buffer) => (log += d));
  for (let i = 0; ; i++) {
    const ok = await fetch(`http://${host}/v2/`).then(
      (r) => r.status === 401,
      () => false,
    );
    if (ok) break;
    if (i > 100 || proc.exitCode !== null) {
      await stopRegistry(proc);
      throw new Error(`the registry did not start: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { proc, host, storage: join(storage, 'data') };
}

async function stopRegistry(proc: ChildProcess | undefined): Promise<void> {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  await exited;
}

describe('registry: push, pull, auth', { skip }, () => {
  let registry: ChildProcess;
  let tokens: TokenServer;
  let host: string;
  let storage: string;
  let source: Store;
  const creds = { username: USER, password: PASSWORD };
  const insecure = true;
  const fresh = () => new Store(mkdtempSync(join(work, 'store-')));

  before(async () => {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(work, 'key.pem'), '-out', join(work, 'cert.pem'), '-days', '1', '-subj', '/CN=brig-test-token'], { stdio: 'ignore' });
    tokens = await tokenServer(readFileSync(join(work, 'key.pem'), 'utf8'), readFileSync(join(work, 'cert.pem'), 'utf8'));
    ({ proc: registry, host, storage } = await startRegistry('token', `{ realm: "http://127.0.0.1:${tokens.port}/token", service: ${SERVICE}, issuer: ${ISSUER}, rootcertbundle: ${join(work, 'cert.pem')} }`));
    source = fresh();
    await source.importRootfs(busyboxRoot('one'), 'bb:one', { Cmd: ['/bin/cat', '/etc/motd'], Env: ['PATH=/bin'] });
  });

  after(async () => {
    await stopRegistry(registry);
    await new Promise((r) => tokens?.server.close(r));
    rmSync(work, { recursive: true, force: true });
  });

  it('pushes an image, then pulls it into an empty store by tag and by digest, with the same digest; it runs', async () => {
    const pushed = await push('bb:one', `${host}/brig/busybox:1`, { store: source, insecure, credentials: creds });
    assert.equal(pushed.digest, source.get('bb:one').digest);
    assert.equal(pushed.uploaded, 2, 'one layer and the config');
    // The token server was asked for push rights on the repository, with alice's credentials.
    assert.ok(tokens.asked.some((a) => a.user === USER && a.scope.some((s) => /^repository:brig\/busybox:(push,pull|pull,push)$/.test(s))), JSON.stringify(tokens.asked));

    const again = await push('bb:one', `${host}/brig/busybox:1`, { store: source, insecure, credentials: creds });
    assert.deepEqual([again.uploaded, again.skipped], [0, 2], 'blobs the registry has are not sent again');

    const dest = fresh();
    const events: string[] = [];
    const byTag = await pull(`${host}/brig/busybox:1`, { store: dest, insecure, credentials: creds, onProgress: (p) => events.push(p.state) });
    assert.equal(byTag.ref, `${host}/brig/busybox:1`);
    assert.equal(byTag.digest, pushed.digest);
    assert.equal(byTag.downloaded, 1);
    assert.ok(events.includes('downloading') && events.includes('done'), events.join(' '));
    const byDigest = await pull(`${host}/brig/busybox@${pushed.digest}`, { store: dest, insecure, credentials: creds });
    assert.equal(byDigest.ref, `${host}/brig/busybox@${pushed.digest}`);
    assert.deepEqual([byDigest.downloaded, byDigest.skipped], [0, 1], 'the layer is in the store already');

    const saved = process.env.BRIG_STORE;
    process.env.BRIG_STORE = dest.root;
    try {
      for (const image of [byTag.ref, byDigest.ref]) {
        const r = await run([], { image });
        assert.equal(r.status, 'ok', r.error?.message);
        assert.equal(r.stdout.toString(), 'one\n');
      }
    } finally {
      if (saved === undefined) delete process.env.BRIG_STORE;
      else process.env.BRIG_STORE = saved;
    }
  });

  it('layers download in parallel, each with its own progress; the image is the same', async () => {
    // Three layers: the base and two of files of their own.
    const base = source.get('bb:one');
    const extra = [];
    for (const n of [1, 2]) {
      const dir = mkdtempSync(join(work, 'layer-'));
      writeFileSync(join(dir, `file${n}`), randomBytes(200_000));
      extra.push(await source.addLayerDir(dir));
    }
    const config = { ...base.config, rootfs: { type: 'layers' as const, diff_ids: [...base.config.rootfs.diff_ids, ...extra.map((l) => l.diffId)] } };
    source.commitImage('bb:three-layers', config, [...base.manifest.layers.map((l) => ({ diffId: l.digest, size: l.size })), ...extra]);
    const pushed = await push('bb:three-layers', `${host}/brig/layers:3`, { store: source, insecure, credentials: creds });
    assert.deepEqual([pushed.uploaded, pushed.skipped], [4, 0], 'three layers and the config (a new repository has none of them)');
    const order: string[] = [];
    const r = await pull(`${host}/brig/layers:3`, { store: fresh(), insecure, credentials: creds, onProgress: (p) => order.push(`${p.index}:${p.state}`) });
    assert.equal(r.digest, pushed.digest);
    assert.equal(r.downloaded, 3);
    const firstDone = order.findIndex((e) => e.endsWith(':done'));
    const startedBefore = new Set(order.slice(0, firstDone).filter((e) => e.endsWith(':downloading')).map((e) => e.split(':')[0]));
    assert.equal(startedBefore.size, 3, `all three downloading before the first finished: ${order.join(' ')}`);
  });

  it('uploads in chunks (PATCH with Content-Range) and the registry reassembles the same digest', async () => {
    const pushed = await push('bb:one', `${host}/brig/chunked:c`, { store: source, insecure, credentials: creds, chunkSize: 64 << 10 });
    const layer = source.get('bb:one').manifest.layers[0];
    assert.ok(layer.size > 4 * (64 << 10), `the layer (${layer.size} bytes) takes several chunks`);
    const dest = fresh();
    const r = await pull(`${host}/brig/chunked:c`, { store: dest, insecure, credentials: creds });
    assert.equal(r.digest, pushed.digest);
  });

  it('credentials: none, wrong ones, and Docker\'s config.json', async () => {
    const dest = fresh();
    const saved = { BRIG_AUTH_FILE: process.env.BRIG_AUTH_FILE, DOCKER_CONFIG: process.env.DOCKER_CONFIG };
    process.env.BRIG_AUTH_FILE = join(work, 'no-auth.json');
    process.env.DOCKER_CONFIG = join(work, 'no-docker');
    try {
      await assert.rejects(pull(`${host}/brig/busybox:1`, { store: dest, insecure }), (e: unknown) => e instanceof RegistryError && /no credentials: brig login 127\.0\.0\.1/.test(e.message));
      await assert.rejects(pull(`${host}/brig/busybox:1`, { store: dest, insecure, credentials: { username: USER, password: 'nope' } }), (e: unknown) => e instanceof RegistryError && /HTTP 401 \(wrong credentials\)/.test(e.message));
      const docker = join(work, 'docker');
      mkdirSync(docker, { recursive: true });
      writeFileSync(join(docker, 'config.json'), JSON.stringify({ auths: { [host]: { auth: Buffer.from(`${USER}:${PASSWORD}`).toString('base64') } } }));
      process.env.DOCKER_CONFIG = docker;
      const r = await pull(`${host}/brig/busybox:1`, { store: dest, insecure });
      assert.equal(r.downloaded, 1);
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
    assert.deepEqual(dest.list().map((i) => i.ref), [`${host}/brig/busybox:1`], 'the failed pulls named nothing');
  });

  it('a multi-platform index: this machine\'s image is picked, or the one asked for; a missing platform names those there are', async () => {
    await source.importRootfs(busyboxRoot('two'), 'bb:two', { Cmd: ['/bin/cat', '/etc/motd'], Env: ['PATH=/bin'] });
    const one = await push('bb:one', `${host}/brig/multi:one`, { store: source, insecure, credentials: creds });
    const two = await push('bb:two', `${host}/brig/multi:two`, { store: source, insecure, credentials: creds });
    const size = (d: string) => source.readBlob(d).length;
    const arch = process.arch === 'x64' ? 'amd64' : process.arch;
    const other = arch === 'amd64' ? 'arm64' : 'amd64';
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [
          { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: two.digest, size: size(two.digest), platform: { os: 'linux', architecture: other } },
          { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: one.digest, size: size(one.digest), platform: { os: 'linux', architecture: arch } },
        ],
      }),
    );
    // Put the index up as the registry's API would be used by any client.
    const tok = await fetch(`http://127.0.0.1:${tokens.port}/token?service=${SERVICE}&scope=repository:brig/multi:pull,push`, { headers: { authorization: `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}` } }).then((r) => r.json() as Promise<{ token: string }>);
    const put = await fetch(`http://${host}/v2/brig/multi/manifests/both`, { method: 'PUT', headers: { authorization: `Bearer ${tok.token}`, 'content-type': 'application/vnd.oci.image.index.v1+json' }, body: index });
    assert.equal(put.status, 201, await put.text());

    const mine = await pull(`${host}/brig/multi:both`, { store: fresh(), insecure, credentials: creds });
    assert.equal(mine.digest, one.digest);
    const theirs = await pull(`${host}/brig/multi:both`, { store: fresh(), insecure, credentials: creds, platform: `linux/${other}` });
    assert.equal(theirs.digest, two.digest);
    await assert.rejects(pull(`${host}/brig/multi:both`, { store: fresh(), insecure, credentials: creds, platform: 'linux/s390x' }), /has no image for linux\/s390x \(it has linux\/\w+, linux\/\w+\)/);
  });

  it("gzip and zstd layers, under Docker's schema 2 and OCI media types, are pulled and run", { skip: !which('zstd') && 'skipped: no zstd' }, async () => {
    const img = source.get('bb:one');
    const tar = source.readBlob(img.manifest.layers[0].digest);
    const configRaw = source.readBlob(img.manifest.config.digest);
    const digestOf = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
    const tok = await fetch(`http://127.0.0.1:${tokens.port}/token?service=${SERVICE}&scope=repository:brig/compressed:pull,push`, { headers: { authorization: `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}` } }).then((r) => r.json() as Promise<{ token: string }>);
    const auth = { authorization: `Bearer ${tok.token}` };
    const upload = async (data: Buffer) => {
      const start = await fetch(`http://${host}/v2/brig/compressed/blobs/uploads/`, { method: 'POST', headers: auth });
      const loc = new URL(start.headers.get('location')!, `http://${host}`);
      loc.searchParams.set('digest', digestOf(data));
      const put = await fetch(loc, { method: 'PUT', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: new Uint8Array(data) });
      assert.equal(put.status, 201, await put.text());
      return { digest: digestOf(data), size: data.length };
    };
    const manifest = async (tag: string, body: object, type: string) => {
      const put = await fetch(`http://${host}/v2/brig/compressed/manifests/${tag}`, { method: 'PUT', headers: { ...auth, 'content-type': type }, body: JSON.stringify(body) });
      assert.equal(put.status, 201, await put.text());
      return put.headers.get('docker-content-digest')!;
    };
    const config = await upload(configRaw);
    const gz = await upload(gzipSync(tar));
    const zst = await upload(execFileSync('zstd', ['-q', '-c'], { input: tar, maxBuffer: 64 << 20 }));
    const docker = 'application/vnd.docker.distribution.manifest.v2+json';
    await manifest('docker-gzip', { schemaVersion: 2, mediaType: docker, config: { mediaType: 'application/vnd.docker.container.image.v1+json', ...config }, layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', ...gz }] }, docker);
    const oci = 'application/vnd.oci.image.manifest.v1+json';
    await manifest('oci-zstd', { schemaVersion: 2, mediaType: oci, config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', ...zst }] }, oci);
    for (const tag of ['docker-gzip', 'oci-zstd']) {
      const dest = fresh();
      const r = await pull(`${host}/brig/compressed:${tag}`, { store: dest, insecure, credentials: creds });
      assert.equal(r.downloaded, 1, tag);
      // The compressed blob is kept as the manifest names it, so the image can be pushed on unchanged.
      assert.ok(existsSync(dest.blobPath(tag === 'docker-gzip' ? gz.digest : zst.digest)));
      const saved = process.env.BRIG_STORE;
      process.env.BRIG_STORE = dest.root;
      try {
        const out = await run([], { image: r.ref });
        assert.equal(out.stdout.toString(), 'one\n', `${tag}: ${out.error?.message ?? out.stderr}`);
      } finally {
        if (saved === undefined) delete process.env.BRIG_STORE;
        else process.env.BRIG_STORE = saved;
      }
      const back = await push(r.ref, `${host}/brig/compressed-again:${tag}`, { store: dest, insecure, credentials: creds });
      assert.equal(back.digest, r.digest, 'pushed on byte for byte');
    }
  });

  it('a download that breaks off is resumed with a Range request, and verified whole', async () => {
    const proxy = await breakingProxy(Number(host.split(':')[1]));
    try {
      const dest = fresh();
      const r = await pull(`127.0.0.1:${proxy.port}/brig/busybox:1`, { store: dest, insecure, credentials: creds });
      assert.equal(r.downloaded, 1);
      assert.ok(proxy.ranges.some((x) => / bytes=\d+-$/.test(x)), `ranges asked: ${proxy.ranges.join(', ')}`);
    } finally {
      await new Promise((res) => proxy.server.close(res));
    }
  });

  it('a corrupted blob in the registry is refused: nothing of the image enters the store', async () => {
    await source.importRootfs(busyboxRoot('three'), 'bb:three', { Env: ['PATH=/bin'] });
    const pushed = await push('bb:three', `${host}/brig/corrupt:1`, { store: source, insecure, credentials: creds });
    const layer = source.get('bb:three').manifest.layers[0].digest.slice(7);
    const data = join(storage, 'docker/registry/v2/blobs/sha256', layer.slice(0, 2), layer, 'data');
    const bytes = readFileSync(data);
    bytes[bytes.length >> 1] ^= 0xff;
    writeFileSync(data, bytes);
    const dest = fresh();
    await assert.rejects(pull(`${host}/brig/corrupt:1`, { store: dest, insecure, credentials: creds }), (e: unknown) => e instanceof RegistryError && /does not match, so nothing of it was stored/.test(e.message));
    assert.deepEqual(dest.list(), []);
    assert.deepEqual(readdirSync(join(dest.root, 'layers')), []);
    assert.deepEqual(readdirSync(join(dest.root, 'tmp')), []);
    assert.ok(!existsSync(dest.blobPath(pushed.digest)), 'no manifest stored');
  });

  it('basic auth (a registry with an htpasswd file): push and pull with the user and password', { skip: !bcrypt(PASSWORD) && 'skipped: no bcrypt (python3 crypt)' }, async () => {
    const htpasswd = join(work, 'htpasswd');
    writeFileSync(htpasswd, `${USER}:${bcrypt(PASSWORD)}\n`);
    const basic = await startRegistry('htpasswd', `{ realm: brig-test, path: ${htpasswd} }`);
    try {
      const pushed = await push('bb:one', `${basic.host}/brig/basic:1`, { store: source, insecure, credentials: creds });
      const r = await pull(`${basic.host}/brig/basic:1`, { store: fresh(), insecure, credentials: creds });
      assert.equal(r.digest, pushed.digest);
      await assert.rejects(pull(`${basic.host}/brig/basic:1`, { store: fresh(), insecure, credentials: { username: USER, password: 'nope' } }), /unauthorized \(as alice\)/);
    } finally {
      await stopRegistry(basic.proc);
    }
  });

  it('the CLI: login stores credentials 0600, push and pull use them, logout removes them', async () => {
    const env = { ...process.env, BRIG_AUTH_FILE: join(work, 'cli-auth.json'), DOCKER_CONFIG: join(work, 'no-docker'), BRIG_STORE: source.root };
    const bad = await brigCli(['login', '-u', USER, '--password-stdin', '--insecure-registry', host], { env, input: 'wrong\n' });
    assert.equal(bad.code, 125, bad.err);
    assert.match(bad.err, /wrong credentials/);
    const ok = await brigCli(['login', '-u', USER, '--password-stdin', '--insecure-registry', host], { env, input: `${PASSWORD}\n` });
    assert.equal(ok.code, 0, ok.err);
    assert.equal(statSync(env.BRIG_AUTH_FILE).mode & 0o777, 0o600);
    const p = await brigCli(['push', '--insecure-registry', 'bb:one', `${host}/brig/cli:1`], { env });
    assert.equal(p.code, 0, p.err);
    assert.match(p.out, new RegExp(`^${host}/brig/cli:1@sha256:[0-9a-f]{64}\\n$`));
    // Docker's forms: -p on the command line (with its warning), push NAME under its own name, flags after it.
    const withP = await brigCli(['login', host, '-u', USER, '-p', PASSWORD, '--insecure-registry'], { env });
    assert.equal(withP.code, 0, withP.err);
    assert.match(withP.err, /^WARNING! Using --password via the command line is insecure/);
    assert.equal((await brigCli(['tag', 'bb:one', `${host}/brig/own:1`], { env })).code, 0);
    const own = await brigCli(['push', `${host}/brig/own:1`, '--insecure-registry'], { env });
    assert.equal(own.code, 0, own.err);
    assert.match(own.out, new RegExp(`^${host}/brig/own:1@sha256:[0-9a-f]{64}\\n$`));
    const dest = mkdtempSync(join(work, 'cli-store-'));
    const q = await brigCli(['pull', '--insecure-registry', `${host}/brig/cli:1`], { env: { ...env, BRIG_STORE: dest } });
    assert.equal(q.code, 0, q.err);
    assert.equal(q.out, `${host}/brig/cli:1\n`);
    assert.match(q.err, /pull complete\nDigest: sha256:/);
    // The README's own form: flags after the reference (issue 19).
    const arch = process.arch === 'x64' ? 'amd64' : process.arch;
    const after = await brigCli(['pull', `${host}/brig/cli:1`, '--platform', `linux/${arch}`, '--insecure-registry', '-q'], { env: { ...env, BRIG_STORE: mkdtempSync(join(work, 'platform-store-')) } });
    assert.equal(after.code, 0, after.err);
    assert.equal(after.out, `${host}/brig/cli:1\n`);
    // On a terminal (script(1) gives it one), a bar per layer, redrawn in place.
    if (which('script')) {
      const tty = await new Promise<string>((resolve) => {
        const child = spawn('script', ['-qec', `${JSON.stringify(process.execPath)} ${JSON.stringify(brigBin)} pull --insecure-registry ${host}/brig/cli:1`, '/dev/null'], { env: { ...env, BRIG_STORE: mkdtempSync(join(work, 'tty-store-')) }, stdio: ['ignore', 'pipe', 'inherit'] });
        let all = '';
        child.stdout!.on('data', (d: Buffer) => (all += d));
        child.once('close', () => resolve(all));
      });
      assert.match(tty, /\x1b\[2K[0-9a-f]{12}: \[=*\s*\] [\d.]+ (B|KiB|MiB)\/[\d.]+ (B|KiB|MiB)/, 'a progress bar');
      assert.equal(tty.match(/\x1b\[\d+A/g) !== null, true, 'redrawn in place');
      assert.match(tty, /pull complete/);
    }
    const plain = await brigCli(['pull', `${host}/brig/cli:1`], { env: { ...env, BRIG_STORE: dest } });
    assert.equal(plain.code, 125);
    assert.match(plain.err, /--insecure-registry for a plain-HTTP one/);
    const out = await brigCli(['logout', host], { env });
    assert.equal(out.code, 0);
    assert.deepEqual(JSON.parse(readFileSync(env.BRIG_AUTH_FILE, 'utf8')), { auths: {} });
    // Docker's prompts on a terminal (script(1) gives it one): the user name
    // echoed as typed, the password not echoed.
    if (which('script')) {
      const child = spawn('script', ['-qec', `${JSON.stringify(process.execPath)} ${JSON.stringify(brigBin)} login --insecure-registry ${host}`, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'inherit'] });
      let all = '';
      child.stdout!.on('data', (d: Buffer) => (all += d));
      const code = new Promise<number | null>((resolve) => child.once('close', resolve));
      const shown = async (what: string) => {
        for (const end = Date.now() + 30_000; !all.includes(what); await new Promise((r) => setTimeout(r, 50)))
          if (Date.now() > end) assert.fail(`no ${JSON.stringify(what)} in ${JSON.stringify(all)}`);
      };
      await shown('Username: ');
      child.stdin!.write(`${USER}\r`);
      await shown('Password: ');
      child.stdin!.write(`${PASSWORD}\r`);
      assert.equal(await code, 0, all);
      child.stdin!.destroy();
      assert.match(all, new RegExp(`Username: ${USER}`));
      assert.ok(!all.includes(PASSWORD), `the password was echoed: ${JSON.stringify(all)}`);
      assert.match(all, /Login succeeded/);
      assert.deepEqual(Object.keys(JSON.parse(readFileSync(env.BRIG_AUTH_FILE, 'utf8')).auths), [host]);
      assert.equal((await brigCli(['logout', host], { env })).code, 0);
    }
  });
});

describe('registry references', () => {
  it("are read as Docker reads them", async () => {
    const { parseRemoteRef } = await import('../src/image/registry.js');
    assert.deepEqual(parseRemoteRef('busybox'), { registry: 'docker.io', repository: 'library/busybox', tag: 'latest', digest: undefined });
    assert.deepEqual(parseRemoteRef('ghcr.io/org/app:v1'), { registry: 'ghcr.io', repository: 'org/app', tag: 'v1', digest: undefined });
    assert.deepEqual(parseRemoteRef('localhost:5000/x@sha256:' + 'a'.repeat(64)), { registry: 'localhost:5000', repository: 'x', tag: undefined, digest: 'sha256:' + 'a'.repeat(64) });
    assert.deepEqual(parseRemoteRef('user/app'), { registry: 'docker.io', repository: 'user/app', tag: 'latest', digest: undefined });
    for (const bad of ['', 'UPPER/case', 'x@sha256:12', 'a b'])
      assert.throws(() => parseRemoteRef(bad), RegistryError, bad);
  });
});

guardLeaks();
