// The Engine API's images, volumes, networks and auth, driven by Debian's
// docker CLI (/usr/bin/docker, 20.10), unmodified, over brig's unix socket:
// images, tag, inspect, history, rmi, build from a Dockerfile, save and load,
// login, push and pull against a loopback docker-registry (htpasswd auth),
// volume and network commands. What the CLI says is checked against what the
// store holds: the file a RUN step wrote, the digest a pull brought back.
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Store } from '../src/image/store.js';
import { busyboxImage, DOCKER, docker as dockerSync, engineRoot, startService, type Service } from './engine-util.js';
import { bcrypt, freePort, guardLeaks } from './helpers.js';

const which = (cmd: string) => ['/usr/bin', '/usr/sbin', '/bin'].map((d) => join(d, cmd)).find((p) => existsSync(p));
const registryBin = which('docker-registry');
const busybox = which('busybox');
const skip = (!existsSync(DOCKER) && 'skipped: no /usr/bin/docker (apt-get install docker.io)') || (!registryBin && 'skipped: no docker-registry (apt-get install docker-registry)') || (!busybox && 'skipped: no busybox');

const { root: work, env } = engineRoot('brig-engine-images-');
chmodSync(work, 0o755);
const USER = 'alice';
const PASSWORD = 'wonderland';

/** docker-registry on a free loopback port, with htpasswd auth when a hash is given (else none). */
async function startRegistry(htpasswd: string | undefined): Promise<{ proc: ChildProcess; host: string }> {
  const host = `127.0.0.1:${await freePort()}`;
  const dir = mkdtempSync(join(work, 'registry-'));
  const config = join(dir, 'config.yml');
  const auth = htpasswd ? `auth: { htpasswd: { realm: brig-test, path: ${htpasswd} } }` : '';
  writeFileSync(config, ['version: 0.1', 'log: { level: error }', `storage: { filesystem: { rootdirectory: ${dir}/data }, delete: { enabled: true } }`, `http: { addr: "${host}" }`, auth, ''].join('\n'));
  const proc = spawn(registryBin!, ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr!.on('data', (d: Buffer) => (log += d));
  for (let i = 0; ; i++) {
    const ok = await fetch(`http://${host}/v2/`).then(
      (r) => r.status === 200 || r.status === 401,
      () => false,
    );
    if (ok) break;
    if (i > 100 || proc.exitCode !== null) {
      await stopProcess(proc);
      throw new Error(`the registry did not start: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { proc, host };
}

async function stopProcess(proc: ChildProcess | undefined): Promise<void> {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  await exited;
}

describe('Engine API: images, volumes, networks with the docker CLI', { skip }, () => {
  const store = env.BRIG_STORE!;
  let svc: Service;
  let registry: { proc: ChildProcess; host: string } | undefined;
  const hash = bcrypt(PASSWORD);

  /** The docker CLI against brig's service (its own config directory: login writes there). */
  const docker = async (args: string[], input?: string) => dockerSync(svc, args, { input, timeoutMs: 120_000 });
  const ok = async (args: string[], input?: string) => {
    const r = await docker(args, input);
    assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.err}${r.out}`);
    return r.out;
  };

  before(async () => {
    assert.ok(busyboxImage(env, 'brigtest/bb:1'));
    svc = await startService(env);
    if (hash) {
      writeFileSync(join(work, 'htpasswd'), `${USER}:${hash}\n`);
      registry = await startRegistry(join(work, 'htpasswd'));
    } else registry = await startRegistry(undefined);
  });

  after(async () => {
    await svc?.stop();
    await stopProcess(registry?.proc);
    rmSync(work, { recursive: true, force: true });
  });

  it('docker images lists the store by name and ID; -q; a reference filter keeps only matching names', async () => {
    const id = new Store(store).get('brigtest/bb:1').manifest.config.digest;
    const rows = await ok(['images', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}']);
    assert.match(rows, new RegExp(`^brigtest/bb:1 ${id.slice(7, 19)}$`, 'm'));
    assert.equal((await ok(['images', '-q', '--no-trunc'])).trim(), id);
    await ok(['tag', 'brigtest/bb:1', 'other/name:x']);
    const filtered = await ok(['images', '--format', '{{.Repository}}:{{.Tag}}', 'brigtest/bb']);
    assert.equal(filtered.trim(), 'brigtest/bb:1');
    await ok(['rmi', 'other/name:x']);
  });

  it('docker tag, image inspect, history and rmi: by name and by ID; a missing image is "No such image"', async () => {
    await ok(['tag', 'brigtest/bb:1', 'brigtest/bb:two']);
    const [a, b] = (await ok(['image', 'inspect', '-f', '{{.Id}} {{json .Config.Cmd}} {{.Os}}', 'brigtest/bb:1', 'brigtest/bb:two'])).trim().split('\n');
    assert.equal(a, b, 'two names, one image');
    assert.match(a, /^sha256:[0-9a-f]{64} \["\/bin\/sh"\] linux$/);
    const shortId = a.slice(7, 19);
    // By a short ID, as docker images shows it.
    assert.equal((await ok(['image', 'inspect', '-f', '{{.Id}}', shortId])).trim(), a.split(' ')[0]);
    const history = await ok(['history', '--format', '{{.ID}} {{.CreatedBy}}', 'brigtest/bb:1']);
    assert.match(history, new RegExp(`^${shortId} brig import-rootfs$`, 'm'));
    // An ID with two names is refused without -f, as Docker.
    const byId = await docker(['rmi', shortId]);
    assert.notEqual(byId.code, 0);
    assert.match(byId.err, /must be forced.*referenced in multiple repositories/);
    assert.match(await ok(['rmi', 'brigtest/bb:two']), /^Untagged: brigtest\/bb:two$/m);
    assert.ok(new Store(store).get('brigtest/bb:1'), 'the other name stays');
    const missing = await docker(['image', 'inspect', 'no/such:image']);
    assert.equal(missing.code, 1);
    assert.match(missing.err, /No such image: no\/such:image/);
    const rmiMissing = await docker(['rmi', 'no/such:image']);
    assert.equal(rmiMissing.code, 1);
    assert.match(rmiMissing.err, /No such image/);
  });

  it('docker commit makes an image of a container\'s changes; rmi refuses an image a container uses', async () => {
    await ok(['run', '-d', '--name', 'writer', 'brigtest/bb:1', 'sh', '-c', 'echo committed > /made; exec sleep 100']);
    try {
      for (let i = 0; i < 100; i++) {
        if ((await docker(['exec', 'writer', 'cat', '/made'])).out === 'committed\n') break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const id = (await ok(['commit', 'writer', 'brigtest/made:1'])).trim();
      const s = new Store(store);
      const img = s.get('brigtest/made:1');
      assert.equal(id, img.manifest.config.digest);
      const top = s.layerDir(img.config.rootfs.diff_ids[img.config.rootfs.diff_ids.length - 1]);
      assert.equal(readFileSync(join(top, 'made'), 'utf8'), 'committed\n');
      // The base image is the running container's: not removable, even forced.
      const inUse = await docker(['rmi', '-f', 'brigtest/bb:1']);
      assert.notEqual(inUse.code, 0);
      assert.match(inUse.err, /being used by running container/);
    } finally {
      await ok(['rm', '-f', 'writer']);
    }
    await ok(['create', '--name', 'idle', 'brigtest/made:1']);
    const stopped = await docker(['rmi', 'brigtest/made:1']);
    assert.notEqual(stopped.code, 0);
    assert.match(stopped.err, /must force.*is using its referenced image/);
    await ok(['rm', 'idle']);
    assert.match(await ok(['rmi', 'brigtest/made:1']), /Deleted: sha256:/);
  });

  it('docker build: a context tar with a Dockerfile (ARG, RUN, COPY, LABEL, two tags); RUN really ran; a failing step fails the build', async () => {
    const ctx = join(work, 'ctx');
    mkdirSync(ctx);
    writeFileSync(join(ctx, 'note.txt'), 'from the context\n');
    writeFileSync(join(ctx, 'Dockerfile'), 'FROM brigtest/bb:1\nARG WHO=nobody\nRUN echo "built by $WHO" > /built\nCOPY note.txt /note.txt\nLABEL stage=test\nCMD ["/bin/cat", "/built"]\n');
    const r = await docker(['build', '-t', 'brigtest/app:1', '-t', 'brigtest/app:latest', '--build-arg', 'WHO=docker', '--label', 'from=cli', ctx]);
    assert.equal(r.code, 0, r.err + r.out);
    assert.match(r.out, /Step 3\/\d+ : RUN echo/);
    assert.match(r.out, /Successfully built [0-9a-f]{12}/);
    assert.match(r.out, /Successfully tagged brigtest\/app:latest/);
    const s = new Store(store);
    const img = s.get('brigtest/app:1');
    assert.equal(s.get('brigtest/app:latest').digest, img.digest);
    assert.deepEqual(img.config.config.Labels, { stage: 'test', from: 'cli' });
    assert.deepEqual(img.config.config.Cmd, ['/bin/cat', '/built']);
    // What RUN wrote is in the image's layers, with the build arg's value.
    const layers = img.config.rootfs.diff_ids.map((d) => s.layerDir(d));
    const built = layers.map((l) => join(l, 'built')).find((p) => existsSync(p));
    assert.ok(built, 'no layer has /built');
    assert.equal(readFileSync(built, 'utf8'), 'built by docker\n');
    assert.ok(layers.some((l) => existsSync(join(l, 'note.txt'))), 'COPY made no layer with note.txt');
    // -q prints the ID alone, as Docker's.
    const quiet = await ok(['build', '-q', '-t', 'brigtest/app:1', '--build-arg', 'WHO=docker', '--label', 'from=cli', ctx]);
    assert.equal(quiet.trim(), img.manifest.config.digest);

    // Without -t: a dangling image, shown by images -a as <none>, found by its ID, gone with image prune.
    writeFileSync(join(ctx, 'Dockerfile.untagged'), 'FROM brigtest/bb:1\nRUN echo untagged > /u\n');
    const untagged = (await ok(['build', '-q', '-f', join(ctx, 'Dockerfile.untagged'), ctx])).trim();
    assert.match(untagged, /^sha256:[0-9a-f]{64}$/);
    assert.match(await ok(['images', '-a', '--no-trunc', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}']), new RegExp(`^<none>:<none> ${untagged}$`, 'm'));
    assert.doesNotMatch(await ok(['images', '--no-trunc', '-q']), new RegExp(untagged));
    assert.equal((await ok(['image', 'inspect', '-f', '{{.Id}}', untagged.slice(7, 19)])).trim(), untagged);
    assert.match(await ok(['image', 'prune', '-f']), new RegExp(`deleted: ${untagged}`));
    assert.notEqual((await docker(['image', 'inspect', untagged])).code, 0);
    assert.equal(s.get('brigtest/app:1').digest, img.digest, 'prune leaves named images');

    writeFileSync(join(ctx, 'Dockerfile.bad'), 'FROM brigtest/bb:1\nRUN exit 3\n');
    const bad = await docker(['build', '-f', join(ctx, 'Dockerfile.bad'), '-t', 'brigtest/bad:1', ctx]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.err + bad.out, /Dockerfile\.bad:2/);
    assert.throws(() => s.get('brigtest/bad:1'), /no image/);
  });

  it('docker save and docker load: an archive docker reads, and the same image ID back', async () => {
    const id = new Store(store).get('brigtest/app:1').manifest.config.digest;
    const tar = join(work, 'app.tar');
    await ok(['save', '-o', tar, 'brigtest/app:1']);
    const names = execFileSync('tar', ['-tf', tar], { encoding: 'utf8' }).split('\n');
    assert.ok(names.includes('manifest.json'), names.join(' '));
    assert.ok(names.includes(`${id.slice(7)}.json`), 'the config under its ID');
    const manifest = JSON.parse(execFileSync('tar', ['-xOf', tar, 'manifest.json'], { encoding: 'utf8' })) as { RepoTags: string[] }[];
    assert.deepEqual(manifest[0].RepoTags, ['brigtest/app:1']);
    await ok(['rmi', 'brigtest/app:1', 'brigtest/app:latest']);
    assert.throws(() => new Store(store).get('brigtest/app:1'), /no image/);
    assert.match(await ok(['load', '-i', tar]), /^Loaded image: brigtest\/app:1$/m);
    assert.equal(new Store(store).get('brigtest/app:1').manifest.config.digest, id);
    // Two images in one archive (GET /images/get?names=a&names=b).
    const both = join(work, 'both.tar');
    await ok(['save', '-o', both, 'brigtest/app:1', 'brigtest/bb:1']);
    const two = JSON.parse(execFileSync('tar', ['-xOf', both, 'manifest.json'], { encoding: 'utf8' })) as { RepoTags: string[] }[];
    assert.deepEqual(two.map((m) => m.RepoTags[0]).sort(), ['brigtest/app:1', 'brigtest/bb:1']);
  });

  it('docker login, push and pull against a loopback registry: bad credentials refused, the digest kept', { skip: !hash && 'skipped: no bcrypt (python3 crypt) for the registry\'s htpasswd' }, async () => {
    const host = registry!.host;
    const wrong = await docker(['login', '-u', USER, '--password-stdin', host], 'not-the-password\n');
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.err, /unauthorized/i);
    assert.match(await ok(['login', '-u', USER, '--password-stdin', host], `${PASSWORD}\n`), /Login Succeeded/);

    const target = `${host}/brig/app:1`;
    await ok(['tag', 'brigtest/app:1', target]);
    const pushed = await ok(['push', target]);
    assert.match(pushed, new RegExp(`The push refers to repository \\[${host.replace(/\./g, '\\.')}/brig/app\\]`));
    const digest = new Store(store).get(target).digest;
    assert.match(pushed, new RegExp(`1: digest: ${digest}`));
    // The registry has it, under the same digest.
    const auth = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;
    const head = await fetch(`http://${host}/v2/brig/app/manifests/1`, { method: 'HEAD', headers: { authorization: auth, accept: 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('docker-content-digest'), digest);

    await ok(['rmi', target]);
    const pulled = await ok(['pull', target]);
    assert.match(pulled, new RegExp(`Digest: ${digest}`));
    assert.match(pulled, /Status: Downloaded newer image for/);
    assert.equal(new Store(store).get(target).digest, digest);
    assert.match(await ok(['pull', target]), /Status: Image is up to date/);

    const missing = await docker(['pull', `${host}/brig/app:nope`]);
    assert.equal(missing.code, 1);
    assert.match(missing.err, /not found|manifest unknown|does not exist/i);
    await ok(['logout', host]);
    // Without credentials the registry refuses: the error comes back in the stream, docker exits 1.
    const anon = await docker(['push', target]);
    assert.notEqual(anon.code, 0);
    assert.match(anon.err + anon.out, /wants a user and password/);
  });

  it('docker volume create, ls (with a label filter), inspect, rm, prune', async () => {
    assert.equal((await ok(['volume', 'create', 'data1'])).trim(), 'data1');
    assert.equal((await ok(['volume', 'create', '--label', 'team=judges', 'data2'])).trim(), 'data2');
    assert.deepEqual((await ok(['volume', 'ls', '-q'])).trim().split('\n'), ['data1', 'data2']);
    assert.equal((await ok(['volume', 'ls', '-q', '--filter', 'label=team=judges'])).trim(), 'data2');
    const [v] = JSON.parse(await ok(['volume', 'inspect', 'data2'])) as { Name: string; Driver: string; Mountpoint: string; Labels: Record<string, string> }[];
    assert.equal(v.Name, 'data2');
    assert.equal(v.Driver, 'local');
    assert.deepEqual(v.Labels, { team: 'judges' });
    assert.equal(v.Mountpoint, new Store(store).volumePath('data2'));
    assert.ok(existsSync(v.Mountpoint));
    assert.equal((await ok(['volume', 'rm', 'data1'])).trim(), 'data1');
    const gone = await docker(['volume', 'inspect', 'data1']);
    assert.equal(gone.code, 1);
    assert.match(gone.err, /No such volume/);
    writeFileSync(join(v.Mountpoint, 'f'), 'x'.repeat(1000));
    const pruned = await ok(['volume', 'prune', '-f']);
    assert.match(pruned, /Deleted Volumes:\ndata2/);
    assert.equal((await ok(['volume', 'ls', '-q'])).trim(), '');
    assert.ok(!existsSync(v.Mountpoint));
  });

  it('docker network create, ls, inspect, rm; pre-defined networks are listed and not removable', async () => {
    const id = (await ok(['network', 'create', '--label', 'app=web', '--subnet', '10.213.7.0/24', 'brig-test-net'])).trim();
    assert.match(id, /^[0-9a-f]{64}$/);
    const ls = await ok(['network', 'ls', '--format', '{{.Name}} {{.Driver}}']);
    assert.match(ls, /^brig-test-net bridge$/m);
    assert.match(ls, /^none null$/m);
    const [n] = JSON.parse(await ok(['network', 'inspect', 'brig-test-net'])) as { Id: string; Driver: string; Labels: Record<string, string>; IPAM: { Config: { Subnet: string; Gateway: string }[] }; Options: Record<string, string> }[];
    assert.equal(n.Id, id);
    assert.deepEqual(n.Labels, { app: 'web' });
    assert.deepEqual(n.IPAM.Config, [{ Subnet: '10.213.7.0/24', Gateway: '10.213.7.1' }]);
    assert.deepEqual(n.Options, {});
    assert.equal((await ok(['network', 'ls', '-q', '--filter', 'label=app=web'])).trim(), id.slice(0, 12));
    const dup = await docker(['network', 'create', 'brig-test-net']);
    assert.notEqual(dup.code, 0);
    assert.match(dup.err, /already exists/);
    const builtin = await docker(['network', 'rm', 'none']);
    assert.notEqual(builtin.code, 0);
    assert.match(builtin.err, /pre-defined network/);
    assert.equal((await ok(['network', 'rm', id.slice(0, 12)])).trim(), id.slice(0, 12));
    const gone = await docker(['network', 'inspect', 'brig-test-net']);
    assert.notEqual(gone.code, 0);
    assert.match(gone.err, /No such network/);
  });

  it('docker search says brig does not support it', async () => {
    const r = await docker(['search', 'busybox']);
    assert.notEqual(r.code, 0);
    assert.match(r.err, /not supported by brig/);
  });
});

guardLeaks();
