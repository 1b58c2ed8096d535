// Images: a busybox base image made in the test (Debian's busybox-static),
// run with its layers under a writable layer, seen from inside; names,
// removal with the layers nothing else uses; a store shared by concurrent
// processes; the CLI verbs.
import assert from 'node:assert/strict';
import { execFileSync, spawn as cpSpawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { OptionsError, run } from '../src/index.js';
import { pruneBuildCache, Store } from '../src/image/store.js';
import { build } from '../src/image/build.js';
import { brigCli, guardLeaks } from './helpers.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const busybox = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p));
const skip = !busybox && 'skipped: no busybox (apt-get install busybox-static)';
const work = mkdtempSync(join(tmpdir(), 'brig-image-'));
chmodSync(work, 0o755);
process.env.BRIG_STORE = join(work, 'store');
after(() => rmSync(work, { recursive: true, force: true }));

/** A busybox root: the static binary, its applets as links, a passwd and a file to change. */
function busyboxRoot(): string {
  const dir = mkdtempSync(join(work, 'rootfs-'));
  mkdirSync(join(dir, 'bin'));
  mkdirSync(join(dir, 'etc'));
  mkdirSync(join(dir, 'data', 'sub'), { recursive: true });
  execFileSync('cp', [busybox!, join(dir, 'bin', 'busybox')]);
  for (const applet of ['sh', 'ls', 'cat', 'echo', 'id', 'rm', 'touch', 'mkdir', 'hostname', 'pwd', 'sleep', 'test']) symlinkSync('busybox', join(dir, 'bin', applet));
  writeFileSync(join(dir, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(join(dir, 'etc', 'motd'), 'base\n');
  writeFileSync(join(dir, 'data', 'sub', 'f'), 'f\n');
  execFileSync('chmod', ['-R', 'a+rX', dir]);
  return dir;
}

/** A busybox root as a tarball whose /srv/www (and its index) belong to uid and gid 33. */
function ownersTar(name: string): string {
  const r = busyboxRoot();
  mkdirSync(join(r, 'srv', 'www'), { recursive: true });
  writeFileSync(join(r, 'srv', 'www', 'index'), 'web\n');
  execFileSync('chmod', ['-R', 'a+rX', r]);
  const tar = join(work, name);
  execFileSync('tar', ['--numeric-owner', '--owner=0', '--group=0', '-cf', tar, '-C', r, 'bin', 'etc']);
  execFileSync('tar', ['--numeric-owner', '--owner=33', '--group=33', '-rf', tar, '-C', r, 'srv']);
  return tar;
}

const sh = async (image: string, script: string, extra = {}) => {
  const r = await run(['/bin/sh', '-c', script], { image, ...extra });
  return { ...r, out: r.stdout.toString(), err: r.stderr.toString() };
};

describe('images', { skip }, () => {
  let store: Store;
  before(async () => {
    store = new Store();
    await store.importRootfs(busyboxRoot(), 'busybox:test', { Cmd: ['/bin/sh', '-c', 'echo default cmd; id -u; pwd'], Env: ['PATH=/bin', 'GREETING=from-image'], WorkingDir: '/data' });
  });

  it('runs the image: its command, env, working dir and root user by default; the run\'s own over them', async () => {
    const d = await run([], { image: 'busybox:test' });
    assert.equal(d.status, 'ok', d.stderr.toString() + (d.error?.message ?? ''));
    assert.equal(d.stdout.toString(), 'default cmd\n0\n/data\n');
    const r = await sh('busybox:test', 'echo $GREETING $PATH; cat /etc/motd; hostname; ls /', { env: { GREETING: 'from-run' }, cwd: '/', hostname: 'imgbox' });
    assert.equal(r.out, 'from-run /bin\nbase\nimgbox\nbin\ndata\ndev\netc\nproc\ntmp\n', r.err);
  });

  it('writes go to the run\'s own layer: a lower file changed and deleted inside, untouched in the store and in the next run', async () => {
    const r = await sh('busybox:test', 'echo changed > /etc/motd; cat /etc/motd; rm /data/sub/f; ls /data/sub; touch /new; ls /new; rm -r /data; ls / | grep -c data');
    assert.equal(r.out, 'changed\n/new\n0\n', r.err);
    const again = await sh('busybox:test', 'cat /etc/motd /data/sub/f; test -e /new || echo no-new');
    assert.equal(again.out, 'base\nf\nno-new\n');
  });

  it("a full writable layer: the program's writes fail with ENOSPC; too small for brig's own files, a setup-error naming the file", async () => {
    const r = await sh('busybox:test', 'cat /bin/busybox /bin/busybox /bin/busybox > /big; echo rc=$?; echo more > /small; echo rc=$?', { tmpSize: '1m' });
    assert.equal(r.status, 'ok', r.error?.message);
    assert.equal(r.out, 'rc=1\nrc=1\n');
    assert.match(r.err, /No space left on device/);
    const tiny = await sh('busybox:test', 'true', { tmpSize: '4k' });
    assert.equal(tiny.status, 'setup-error');
    assert.equal(tiny.error?.code, 'ENOSPC');
    assert.match(tiny.error!.message, /^write-etc failed for \/etc\/\w+: ENOSPC \(the sandbox's writable space is full: tmpSize is 4096 bytes\)$/);
  });

  it('a pool of an image: each run a fresh container of it; another image is refused', async () => {
    const { createPool } = await import('../src/index.js');
    const pool = createPool({ image: 'busybox:test', size: 2 });
    try {
      const a = await pool.run(['/bin/sh', '-c', 'cat /etc/motd; echo x > /etc/motd']);
      const b = await pool.run(['/bin/sh', '-c', 'cat /etc/motd']);
      assert.equal(a.stdout.toString() + b.stdout.toString(), 'base\nbase\n', a.stderr.toString());
      assert.equal((await pool.run([])).stdout.toString(), 'default cmd\n0\n/data\n');
      const otherRoot = busyboxRoot();
      writeFileSync(join(otherRoot, 'etc', 'other'), 'other\n');
      await store.importRootfs(otherRoot, 'other:1');
      assert.throws(() => pool.spawn(['/bin/true'], { image: 'other:1' } as never), (e: unknown) => e instanceof OptionsError && e.field === 'image');
      await store.remove('other:1');
    } finally {
      await pool.close();
    }
  });

  it('two containers of one image at once do not see each other\'s writes', async () => {
    const [a, b] = await Promise.all([
      sh('busybox:test', 'echo a > /etc/motd; sleep 0.3; cat /etc/motd'),
      sh('busybox:test', 'sleep 0.1; cat /etc/motd; echo b > /etc/motd; cat /etc/motd'),
    ]);
    assert.equal(a.out, 'a\n');
    assert.equal(b.out, 'base\nb\n');
  });

  it('names and removal: tag, rmi keeps shared layers, the last name takes the layers with it', async () => {
    // Content of its own: a layer equal to busybox:test's would be shared, and stay.
    const own = busyboxRoot();
    writeFileSync(join(own, 'etc', 'unique'), `${process.pid} ${Date.now()}\n`);
    const img = await store.importRootfs(own, 'tmp:one');
    store.tag('tmp:one', 'tmp:two');
    assert.deepEqual(store.get('tmp:two').refs, ['tmp:one', 'tmp:two']);
    const layer = store.layerDir(img.config.rootfs.diff_ids[0]);
    assert.ok(existsSync(layer));
    assert.deepEqual((await store.remove('tmp:one')).deleted, []);
    assert.ok(existsSync(layer), 'still named tmp:two');
    const gone = await store.remove('tmp:two');
    assert.ok(gone.deleted.includes(`layer ${img.config.rootfs.diff_ids[0]}`), gone.deleted.join(', '));
    assert.equal(existsSync(layer), false);
    assert.ok(store.list().some((i) => i.ref === 'busybox:test'), 'other images untouched');
    await assert.rejects(run(['/bin/true'], { image: 'tmp:two' }), (e: unknown) => e instanceof OptionsError && e.field === 'image' && /no image "tmp:two"/.test(e.message));
    assert.throws(() => store.tag('busybox:test', 'Bad Name'), /an image name is lowercase/);
  });

  it('imports a gzip tarball as well as a directory', async () => {
    const tgz = join(work, 'rootfs.tar.gz');
    execFileSync('tar', ['-czf', tgz, '-C', busyboxRoot(), '.']);
    await store.importRootfs(tgz, 'fromtar:1');
    const r = await sh('fromtar:1', 'cat /etc/motd; ls /bin/sh');
    assert.equal(r.out, 'base\n/bin/sh\n', r.err);
    await store.remove('fromtar:1');
  });

  it('is shared safely by processes importing at the same time', async () => {
    const dir = busyboxRoot();
    const script = (ref: string) => `import { Store } from ${JSON.stringify(join(root, 'dist/src/image/store.js'))}; await new Store().importRootfs(${JSON.stringify(dir)}, ${JSON.stringify(ref)});`;
    const results = await Promise.all(
      ['race:1', 'race:2', 'race:3', 'race:4'].map(
        (ref) =>
          new Promise<number>((resolve) => {
            const p = cpSpawn(process.execPath, ['--input-type=module', '-e', script(ref)], { stdio: 'inherit' });
            p.on('exit', (code) => resolve(code ?? -1));
          }),
      ),
    );
    assert.deepEqual(results, [0, 0, 0, 0]);
    const refs = store.list().map((i) => i.ref);
    for (const r of ['race:1', 'race:2', 'race:3', 'race:4']) assert.ok(refs.includes(r), r);
    const ids = new Set(['race:1', 'race:2', 'race:3', 'race:4'].map((r) => store.get(r).config.rootfs.diff_ids[0]));
    assert.equal(ids.size, 1, 'one layer, shared');
    assert.deepEqual(readdirSync(join(store.root, 'tmp')), [], 'no staging left');
    for (const r of ['race:1', 'race:2', 'race:3', 'race:4']) await store.remove(r);
  });

  it('the CLI: import-rootfs, images, run --image, inspect, rmi', () => {
    const cli = brigCli;
    const imp = cli(['import-rootfs', busyboxRoot(), 'cli:1', '--cmd', '["/bin/echo","cli default"]']);
    assert.equal(imp.code, 0, imp.err);
    assert.match(cli(['images']).out, /^cli +1 +[0-9a-f]{12} /m);
    assert.equal(cli(['run', '--image', 'cli:1']).out, 'cli default\n');
    assert.equal(cli(['run', '--image', 'cli:1', '--', '/bin/cat', '/etc/motd']).out, 'base\n');
    const inspected = JSON.parse(cli(['inspect', 'cli:1']).out) as { config: { config: { Cmd: string[] } } }[];
    assert.deepEqual(inspected[0].config.config.Cmd, ['/bin/echo', 'cli default']);
    const rmi = cli(['rmi', 'cli:1']);
    assert.match(rmi.out, /Untagged: cli:1\n(Deleted: .*\n)+/);
    const missing = cli(['run', '--image', 'cli:1']);
    assert.equal(missing.code, 125);
    assert.match(missing.err, /image: no image "cli:1"/);
  });

  it('named volumes keep data across runs, read-only on request, from the API and the CLI', async () => {
    const w = await run(['/bin/sh', '-c', 'echo kept > /data/note; id -u'], { volumes: [{ name: 'notes', target: '/data' }] });
    assert.equal(w.stdout.toString(), '1000\n', w.stderr.toString());
    const r = await run(['/bin/sh', '-c', 'cat /data/note; echo x > /data/other 2>/dev/null || echo read-only'], { volumes: [{ name: 'notes', target: '/data', readonly: true }] });
    assert.equal(r.stdout.toString(), 'kept\nread-only\n');
    // The same volume in an image's container, where the program is root inside.
    const i = await sh('busybox:test', 'cat /v/note', { volumes: [{ name: 'notes', target: '/v' }] });
    assert.equal(i.out, 'kept\n', i.err);
    assert.deepEqual(store.listVolumes(), ['notes']);
    assert.equal(store.inspectVolume('notes').bytes, 5);
    const cli = brigCli;
    assert.equal(cli(['run', '-v', 'notes:/n', '--', '/bin/cat', '/n/note']).out, 'kept\n');
    assert.equal(cli(['volume', 'ls', '-q']).out, 'notes\n');
    assert.equal(cli(['volume', 'rm', 'notes']).code, 0);
    assert.equal(cli(['volume', 'ls', '-q']).out, '');
    await assert.rejects(run(['/bin/true'], { volumes: [{ name: '../escape', target: '/x' }] }), (e: unknown) => e instanceof OptionsError && e.field === 'volumes[0].name');
  });

  it('commit: a kept container\'s changes, deletions and replaced directories become a layer of a new image', async () => {
    const c = { image: 'busybox:test', container: 'work1' };
    let r = await run(['/bin/sh', '-c', 'echo one > /etc/added; rm /etc/motd; rm -r /data; mkdir /data; echo fresh > /data/only'], c);
    assert.equal(r.status, 'ok', r.stderr.toString() + (r.error?.message ?? ''));
    // The container goes on from where it was.
    r = await run(['/bin/sh', '-c', 'cat /etc/added; echo two >> /etc/added'], c);
    assert.equal(r.stdout.toString(), 'one\n');
    assert.deepEqual(store.listContainers().map((x) => x.name), ['work1']);
    const img = await store.commitContainer('work1', 'committed:1', 'added a file');
    assert.equal(img.config.rootfs.diff_ids.length, 2);
    assert.deepEqual(img.config.history?.map((h) => h.created_by), ['brig import-rootfs', 'brig commit work1']);
    const seen = await sh('committed:1', 'cat /etc/added; test -e /etc/motd || echo no-motd; ls /data');
    assert.equal(seen.out, 'one\ntwo\nno-motd\nonly\n', seen.err);
    // The files brig writes into every run are not part of the layer.
    const top = store.layerDir(img.config.rootfs.diff_ids[1]);
    assert.equal(existsSync(join(top, 'etc', 'hosts')), false);
    assert.equal(existsSync(join(top, 'etc', 'added')), true);
    // The base image is as it was.
    assert.equal((await sh('busybox:test', 'cat /etc/motd')).out, 'base\n');
    await assert.rejects(run(['/bin/true'], { image: 'committed:1', container: 'work1' }), (e: unknown) => e instanceof OptionsError && e.field === 'container');
    await assert.rejects(run(['/bin/true'], { container: 'work1' }), (e: unknown) => e instanceof OptionsError && e.field === 'container');
    // Bad options make nothing in the store: no container, no volume.
    await assert.rejects(run(['/bin/true'], { image: 'busybox:test', container: 'never', volumes: [{ name: 'nevervol', target: '/v' }], hostname: 'bad name!' }), (e: unknown) => e instanceof OptionsError && e.field === 'hostname');
    assert.equal(existsSync(store.containerDir('never')), false);
    assert.equal(store.listVolumes().includes('nevervol'), false);
    await store.removeContainer('work1');
    assert.deepEqual(store.listContainers(), []);
    await store.remove('committed:1');
  });

  const has = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;

  it('save and load: an OCI layout (dir and tar) keeps digests; skopeo and umoci read it; what skopeo writes, brig loads', async () => {
    // A two-layer image with a whiteout, made by commit.
    await run(['/bin/sh', '-c', 'rm /etc/motd; echo saved > /etc/saved'], { image: 'busybox:test', container: 'forsave' });
    const img = await store.commitContainer('forsave', 'saved:1');
    await store.removeContainer('forsave');
    const { loadImages, saveImages } = await import('../src/image/archive.js');
    const dir = join(work, 'layout');
    const tar = join(work, 'layout.tar');
    saveImages(store, ['saved:1'], dir);
    saveImages(store, ['saved:1'], tar);
    // Into an empty store, from the tar: the same digest, and it runs.
    const other = new Store(join(work, 'store2'));
    assert.deepEqual(await loadImages(other, tar), ['saved:1']);
    assert.equal(other.get('saved:1').digest, img.digest);
    const prev = process.env.BRIG_STORE;
    process.env.BRIG_STORE = other.root;
    try {
      const r = await sh('saved:1', 'cat /etc/saved; test -e /etc/motd || echo no-motd');
      assert.equal(r.out, 'saved\nno-motd\n', r.err);
    } finally {
      process.env.BRIG_STORE = prev;
    }
    if (has('skopeo')) {
      const inspected = JSON.parse(execFileSync('skopeo', ['inspect', `oci:${dir}:saved:1`], { encoding: 'utf8' })) as { Digest: string; Layers: string[] };
      assert.equal(inspected.Digest, img.digest);
      assert.equal(inspected.Layers.length, 2);
      // skopeo's docker-archive and its gzip-compressed OCI layout, loaded back.
      const da = join(work, 'docker-archive.tar');
      execFileSync('skopeo', ['copy', '-q', `oci:${dir}:saved:1`, `docker-archive:${da}:fromskopeo:1`]);
      assert.deepEqual(await loadImages(store, da), ['fromskopeo:1']);
      const gz = join(work, 'gz-layout');
      execFileSync('skopeo', ['copy', '-q', '--dest-compress', `oci:${dir}:saved:1`, `oci:${gz}:gz`]);
      assert.deepEqual(await loadImages(store, gz, 'gzipped:1'), ['gzipped:1']);
      for (const ref of ['fromskopeo:1', 'gzipped:1']) {
        const r = await sh(ref, 'cat /etc/saved; test -e /etc/motd || echo no-motd');
        assert.equal(r.out, 'saved\nno-motd\n', `${ref}: ${r.err}`);
        await store.remove(ref);
      }
    }
    // The docker save format too: skopeo reads it, and brig loads it back.
    const { saveDockerArchive } = await import('../src/image/archive.js');
    const dockerTar = join(work, 'saved-docker.tar');
    saveDockerArchive(store, ['saved:1'], dockerTar);
    if (has('skopeo')) assert.equal((JSON.parse(execFileSync('skopeo', ['inspect', `docker-archive:${dockerTar}`], { encoding: 'utf8' })) as { Layers: string[] }).Layers.length, 2);
    assert.deepEqual(await loadImages(store, dockerTar, 'fromdocker:1'), ['fromdocker:1']);
    assert.equal((await sh('fromdocker:1', 'cat /etc/saved')).out, 'saved\n');
    await store.remove('fromdocker:1');
    if (has('umoci')) {
      const bundle = join(work, 'bundle');
      execFileSync('umoci', ['unpack', '--rootless', '--image', `${dir}:saved:1`, bundle], { stdio: 'pipe' });
      assert.equal(readFileSync(join(bundle, 'rootfs', 'etc', 'saved'), 'utf8'), 'saved\n');
      assert.equal(existsSync(join(bundle, 'rootfs', 'etc', 'motd')), false, 'the whiteout was applied');
    }
    await store.remove('saved:1');
  });

  it('load refuses a blob whose content does not match its digest, and names nothing', async () => {
    const { loadImages, saveImages } = await import('../src/image/archive.js');
    const dir = join(work, 'corrupt');
    saveImages(store, ['busybox:test'], dir);
    const blobs = join(dir, 'blobs', 'sha256');
    const biggest = readdirSync(blobs).sort((a, b) => statSync(join(blobs, b)).size - statSync(join(blobs, a)).size)[0];
    const p = join(blobs, biggest);
    const data = readFileSync(p);
    data[data.length >> 1] ^= 0xff;
    writeFileSync(p, data);
    const fresh = new Store(join(work, 'store3'));
    await assert.rejects(loadImages(fresh, dir, 'corrupt:1'), /does not match its digest/);
    assert.deepEqual(fresh.list(), []);
  });

  it('build: a Dockerfile that RUNs, COPYs and ADDs, deletes a lower file and replaces a directory; every layer seen from inside; a rebuild all cached', async () => {

    const ctx = mkdtempSync(join(work, 'ctx-'));
    mkdirSync(join(ctx, 'src'));
    mkdirSync(join(ctx, 'secret'));
    writeFileSync(join(ctx, 'src', 'hello.txt'), 'hello from copy\n');
    writeFileSync(join(ctx, 'src', 'debug.log'), 'ignored\n');
    writeFileSync(join(ctx, 'secret', 'key'), 'never copied\n');
    writeFileSync(join(ctx, '.dockerignore'), 'secret\n**/*.log\n');
    const tarDir = mkdtempSync(join(work, 'addsrc-'));
    writeFileSync(join(tarDir, 'from-tar'), 'unpacked by ADD\n');
    execFileSync('tar', ['-czf', join(ctx, 'extra.tar.gz'), '-C', tarDir, '.']);
    writeFileSync(
      join(ctx, 'Dockerfile'),
      [
        '# built by the test',
        'ARG WHO=hi',
        'FROM busybox:test',
        'ENV APP=/app \\',
        '    MODE=test',
        'WORKDIR /app',
        'COPY src/ ./src/',
        'ADD extra.tar.gz /opt/',
        'RUN echo "$WHO built" > built && rm /etc/motd && \\',
        '    echo one > /data/sub/one',
        'RUN rm -r /data && mkdir -p /data && echo two > /data/two',
        'LABEL org.example.test=yes',
        'CMD ["/bin/sh", "-c", "cat built src/hello.txt /opt/from-tar; ls /data; ls src; echo $APP $MODE; pwd; test -e /etc/motd || echo no-motd"]',
      ].join('\n'),
    );
    chmodSync(ctx, 0o755);
    const lines: string[] = [];
    const img = await build(store, { context: ctx, tag: 'built:1', buildArgs: { WHO: 'hey' }, onProgress: (t) => lines.push(t) });
    assert.equal(img.config.config.Labels?.['org.example.test'], 'yes');
    assert.equal(img.config.rootfs.diff_ids.length, 1 + 5, 'the base, WORKDIR, COPY, ADD and the two RUNs');
    const r = await run([], { image: 'built:1' });
    assert.equal(r.stdout.toString(), 'hey built\nhello from copy\nunpacked by ADD\ntwo\nhello.txt\n/app test\n/app\nno-motd\n', r.stderr.toString());
    assert.match(lines.join(''), /Step 3\/10 : ENV APP=\/app/);
    // Unchanged: every step after FROM from the cache, and the same image.
    const again: string[] = [];
    const t0 = performance.now();
    const img2 = await build(store, { context: ctx, tag: 'built:1', buildArgs: { WHO: 'hey' }, onProgress: (t) => again.push(t) });
    const rebuildMs = performance.now() - t0;
    assert.equal(img2.digest, img.digest);
    assert.equal(again.join('').match(/Using cache/g)?.length, 8);
    assert.ok(rebuildMs < 2000, `rebuild took ${rebuildMs} ms`);
    // A changed file: its COPY and everything after run again.
    writeFileSync(join(ctx, 'src', 'hello.txt'), 'changed\n');
    const third: string[] = [];
    await build(store, { context: ctx, tag: 'built:2', buildArgs: { WHO: 'hey' }, onProgress: (t) => third.push(t) });
    assert.equal(third.join('').match(/Using cache/g)?.length, 2, 'ENV and WORKDIR only');
    assert.equal((await sh('built:2', 'cat /app/src/hello.txt')).out, 'changed\n');
    // A failing step names its line.
    writeFileSync(join(ctx, 'Dockerfile.bad'), 'FROM busybox:test\nRUN true\nRUN exit 3\n');
    await assert.rejects(build(store, { context: ctx, file: join(ctx, 'Dockerfile.bad'), tag: 'bad:1' }), /Dockerfile\.bad:3: RUN failed: exit code 3/);
    writeFileSync(join(ctx, 'Dockerfile.bad2'), 'FROM busybox:test\nCOPY secret/key /key\n');
    await assert.rejects(build(store, { context: ctx, file: join(ctx, 'Dockerfile.bad2'), tag: 'bad:2' }), /Dockerfile\.bad2:2: COPY secret\/key: not found in the build context \(excluded by \.dockerignore\)/);
    assert.deepEqual(store.listContainers(), [], 'no build containers left');
    // Cached steps are kept out of the image list, and can be pruned.
    assert.ok(store.list().every((i) => !i.ref.startsWith('brig-build-cache/')));
    assert.ok(store.list(true).some((i) => i.ref.startsWith('brig-build-cache/')));
    const { pruneBuildCache } = await import('../src/image/store.js');
    assert.ok((await pruneBuildCache(store)) > 0);
    assert.deepEqual(store.list(true).filter((i) => i.ref.startsWith('brig-build-cache/')), []);
    assert.equal((await sh('built:1', 'cat /app/built')).out, 'hey built\n', 'the built image keeps its layers');
  });

  it('build: multi-stage, COPY --from reads a stage through its layers (whiteouts and opaque dirs applied)', async () => {

    const ctx = mkdtempSync(join(work, 'ms-'));
    writeFileSync(
      join(ctx, 'Dockerfile'),
      [
        'FROM busybox:test AS builder',
        'RUN mkdir -p /out/sub /out/old && echo artifact > /out/sub/a && echo gone > /out/b && echo x > /out/old/x && rm /etc/motd',
        'RUN rm /out/b && rm -r /out/old && mkdir /out/old && echo new > /out/old/new',
        'FROM busybox:test',
        'COPY --from=builder /out /app',
        'COPY --from=0 /out/sub/a /single',
        'CMD ["/bin/sh", "-c", "ls /app /app/old; cat /single /etc/motd"]',
      ].join('\n'),
    );
    chmodSync(ctx, 0o755);
    await build(store, { context: ctx, tag: 'staged:1' });
    const r = await run([], { image: 'staged:1' });
    assert.equal(r.stdout.toString(), '/app:\nold\nsub\n\n/app/old:\nnew\nartifact\nbase\n', r.stderr.toString());
    writeFileSync(join(ctx, 'Dockerfile.bad'), 'FROM busybox:test\nCOPY --from=nowhere /x /x\n');
    await assert.rejects(build(store, { context: ctx, file: join(ctx, 'Dockerfile.bad'), tag: 'bad:3' }), /Dockerfile\.bad:2: COPY --from=nowhere: no earlier stage or image of that name/);
  });

  it('files of many owners keep them through a multi-id map where newuidmap and a range exist, else stay the caller\'s', async () => {
    const { planMultiMap } = await import('../src/launch/idmap.js');
    const multi = !('error' in planMultiMap(0, 0));
    const img = await store.importRootfs(ownersTar('owners.tar'), 'owners:1');
    const layer = store.layerDir(img.config.rootfs.diff_ids[0]);
    const inside = await sh('owners:1', 'stat -c "%u:%g %n" /srv/www /srv/www/index /bin/busybox');
    if (multi) {
      assert.equal(inside.out, '33:33 /srv/www\n33:33 /srv/www/index\n0:0 /bin/busybox\n', inside.err);
      assert.notEqual(statSync(join(layer, 'srv', 'www', 'index')).uid, process.getuid!(), 'a subordinate id on the host');
    } else {
      assert.equal(inside.out, '0:0 /srv/www\n0:0 /srv/www/index\n0:0 /bin/busybox\n', inside.err);
    }
    // Removing it gives the files back first: nothing is left behind.
    await store.remove('owners:1');
    assert.equal(existsSync(layer), false);
    assert.deepEqual(readdirSync(join(store.root, 'tmp')), []);
  });

  it('an image with owners: kept containers, commit, build and rm keep each file\'s owner, and the program runs as the image\'s user', async (t) => {
    const { planMultiMap } = await import('../src/launch/idmap.js');
    if ('error' in planMultiMap(0, 0)) return t.skip('no multi-id map here (newuidmap and a subordinate range)');
    await store.importRootfs(ownersTar('owners2.tar'), 'owners:2');
    // As uid 33, in a kept container: a private file in its own directory, a lower file deleted.
    const k = await sh('owners:2', 'id -u; id -g; echo secret > /srv/www/private && chmod 600 /srv/www/private && chmod 700 /srv/www && rm /srv/www/index && ls -n /etc/passwd | cut -c1-30 && touch /etc/x', { container: 'own1', uid: 33, gid: 33 });
    assert.equal(k.status, 'exit-nonzero', 'uid 33 may not write root\'s /etc');
    assert.match(k.out, /^33\n33\n-rw-r--r-- +1 0 +0 /, k.err);
    assert.match(k.err, /touch: \/etc\/x: Permission denied/);
    // Its change of uid left Node's own memory dumpable (/proc/self stays the caller's).
    assert.equal(statSync('/proc/self').uid, process.getuid!());
    // The caller cannot read the container's new file on the host: it is the range's.
    const upper = join(store.containerDir('own1'), 'upper', 'srv', 'www');
    assert.notEqual(statSync(upper).uid, process.getuid!());
    const img = await store.commitContainer('own1', 'owners:3');
    const seen = await sh('owners:3', 'stat -c "%u:%g %a %n" /srv/www; ls /srv/www');
    assert.equal(seen.out, '33:33 700 /srv/www\n', seen.err);
    assert.match(seen.err, /Permission denied/, 'root of the sandbox has no capabilities: the directory is 33\'s');
    const as33 = await sh('owners:3', 'ls /srv/www; stat -c "%u:%g %a %n" /srv/www/private; cat /srv/www/private', { uid: 33, gid: 33 });
    assert.equal(as33.out, 'private\n33:33 600 /srv/www/private\nsecret\n', as33.err);
    const other = await sh('owners:3', 'cat /srv/www/private', { uid: 34, gid: 34 });
    assert.equal(other.status, 'exit-nonzero', 'another uid is refused');
    await store.removeContainer('own1');
    assert.equal(existsSync(store.containerDir('own1')), false);
    // brig build: RUN as the image's user on the image with owners.
    const ctx = mkdtempSync(join(work, 'ctx-owners-'));
    writeFileSync(join(ctx, 'Dockerfile'), 'FROM owners:3\nUSER 33:33\nRUN echo built > /srv/www/b && chmod 640 /srv/www/b\nUSER 0\n');
    chmodSync(ctx, 0o755);
    await build(store, { context: ctx, tag: 'owners:4' });
    const b = await sh('owners:4', 'stat -c "%u:%g %a %n" /srv/www/b; id -u', { uid: 33, gid: 33 });
    assert.equal(b.out, '33:33 640 /srv/www/b\n33\n', b.err);
    assert.deepEqual(store.listContainers().map((c) => c.name), []);
    const layers = [...img.config.rootfs.diff_ids, ...store.get('owners:4').config.rootfs.diff_ids].map((d) => store.layerDir(d));
    for (const ref of ['owners:4', 'owners:3', 'owners:2']) await store.remove(ref);
    await pruneBuildCache(store);
    for (const l of layers) assert.equal(existsSync(l), false, `${l} removed`);
    assert.deepEqual(readdirSync(join(store.root, 'tmp')), []);
  });

  it("an image's symlinks cannot lead a mount target out of its root onto the host", async () => {
    // The plan builds the root at /newroot with the host's root parked at
    // /oldroot: a symlink in the image pointing there, absolute or through
    // "..", must be resolved inside the image, never on the host.
    const victim = mkdtempSync(join(work, 'victim-'));
    const r = busyboxRoot();
    symlinkSync(`/oldroot${victim}`, join(r, 'mnt'));
    symlinkSync(`../../../../../..${'/oldroot'}${victim}`, join(r, 'rel'));
    await store.importRootfs(r, 'symlinks:1');
    const src = mkdtempSync(join(work, 'src-'));
    chmodSync(src, 0o755);
    for (const target of ['/mnt/x', '/rel/y', '/mnt', '/rel/a/b']) {
      const res = await run(['/bin/true'], { image: 'symlinks:1', mounts: [{ source: src, target }] });
      assert.equal(res.status, 'setup-error', `${target}: ${res.status}`);
      assert.match(res.error!.message, /failed for .*: ENOENT/, target);
      assert.deepEqual(readdirSync(victim), [], `${target}: nothing made on the host`);
    }
    await store.remove('symlinks:1');
  });

  it('a store whose path has a colon or a comma still stacks (overlayfs options escaped)', async () => {
    const odd = join(work, 'odd:dir,name');
    mkdirSync(odd);
    chmodSync(odd, 0o755);
    const other = new Store(join(odd, 'store'));
    await other.importRootfs(busyboxRoot(), 'odd:1');
    const prev = process.env.BRIG_STORE;
    process.env.BRIG_STORE = other.root;
    try {
      const r = await run(['/bin/cat', '/etc/motd'], { image: 'odd:1' });
      assert.equal(r.stdout.toString(), 'base\n', r.error?.message ?? r.stderr.toString());
    } finally {
      process.env.BRIG_STORE = prev;
    }
  });
});

guardLeaks();
