// Layers: tar reading and writing (and GNU tar agreeing with both), OCI
// whiteouts to overlayfs' form and back, overlay stacking the result, and
// hostile archives refused without touching anything outside the layer.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, closeSync, linkSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { after, describe, it } from 'node:test';
import { native } from '../src/native.js';
import { OPAQUE_XATTR, packLayer, removeTree, unpackLayer } from '../src/image/layer.js';
import { readTar, TAR_END, tarEntryBlocks, TarError, type TarWriteEntry } from '../src/image/tar.js';
import { guardLeaks } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'brig-layer-'));
after(() => removeTree(work));
let n = 0;
const fresh = (name: string) => {
  const d = join(work, `${name}-${++n}`);
  mkdirSync(d);
  return d;
};

function tarOf(entries: TarWriteEntry[]): Buffer {
  return Buffer.concat([...entries.flatMap((e) => tarEntryBlocks(e)), TAR_END]);
}

function pack(dir: string): { tar: Buffer; diffId: string } {
  const out = join(work, `pack-${++n}.tar`);
  const fd = openSync(out, 'w');
  let r;
  try {
    r = packLayer(dir, fd);
  } finally {
    closeSync(fd);
  }
  return { tar: readFileSync(out), diffId: r.diffId };
}

/** type, mode, size, content hash, link target, xattrs: what a layer must keep. */
function describeTree(dir: string): string[] {
  const out: string[] = [];
  const walk = (abs: string, rel: string) => {
    for (const name of readdirSync(abs).sort()) {
      const p = join(abs, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(p);
      const mtime = Math.floor(st.mtimeMs / 1000);
      if (st.isSymbolicLink()) out.push(`${r} -> ${readlinkSync(p)} @${mtime}`);
      else if (st.isDirectory()) {
        out.push(`${r}/ ${(st.mode & 0o7777).toString(8)} @${mtime} opaque=${native.getXattr(p, OPAQUE_XATTR)?.toString() ?? '-'}`);
        walk(p, r);
      } else if (st.isCharacterDevice()) out.push(`${r} char ${st.rdev}`);
      else {
        const x = native.listXattr(p).filter((k) => k.startsWith('user.')).map((k) => `${k}=${native.getXattr(p, k)}`);
        out.push(`${r} ${(st.mode & 0o7777).toString(8)} ${st.size} ${createHash('sha256').update(readFileSync(p)).digest('hex').slice(0, 12)} links=${st.nlink} @${mtime} ${x.join(',')}`);
      }
    }
  };
  walk(dir, '');
  return out;
}

function sampleTree(): string {
  const d = fresh('tree');
  const deep = join(d, 'a'.repeat(60), 'b'.repeat(60));
  mkdirSync(deep, { recursive: true });
  writeFileSync(join(deep, 'long-path-file.txt'), 'deep\n');
  mkdirSync(join(d, 'bin'));
  writeFileSync(join(d, 'bin', 'tool'), '#!/bin/sh\necho tool\n');
  chmodSync(join(d, 'bin', 'tool'), 0o755);
  writeFileSync(join(d, 'empty'), '');
  writeFileSync(join(d, 'été ünïcode'), 'utf8 name\n');
  writeFileSync(join(d, 'big'), Buffer.alloc(300_000, 7));
  linkSync(join(d, 'big'), join(d, 'big-link'));
  symlinkSync('bin/tool', join(d, 'tool-link'));
  symlinkSync('/absolute/elsewhere', join(d, 'abs-link'));
  native.setXattr(join(d, 'empty'), 'user.note', Buffer.from('kept'));
  // Directory modes, including one that denies its owner writes into it.
  mkdirSync(join(d, 'private'), { mode: 0o700 });
  mkdirSync(join(d, 'shared'));
  chmodSync(join(d, 'shared'), 0o1777);
  mkdirSync(join(d, 'ro'));
  writeFileSync(join(d, 'ro', 'inside'), 'ro\n');
  chmodSync(join(d, 'ro'), 0o555);
  for (const p of [join(d, 'bin', 'tool'), join(d, 'big'), deep]) utimesSync(p, 1_600_000_000, 1_600_000_000);
  return d;
}

describe('layers', () => {
  it('pack and unpack keep files, modes, long and unicode names, links, hardlinks, times and user xattrs; the same tree gives the same diff ID', async () => {
    const src = sampleTree();
    const a = pack(src);
    assert.equal(a.diffId, `sha256:${createHash('sha256').update(a.tar).digest('hex')}`);
    assert.equal(pack(src).diffId, a.diffId, 'deterministic');
    const dst = fresh('unpacked');
    const r = await unpackLayer(a.tar, dst);
    assert.equal(r.diffId, a.diffId);
    assert.deepEqual(r.skipped, []);
    assert.deepEqual(describeTree(dst), describeTree(src));
    assert.equal(lstatSync(join(dst, 'big')).ino, lstatSync(join(dst, 'big-link')).ino);
  });

  it('agrees with GNU tar both ways, gzip and long names included', async () => {
    const src = sampleTree();
    // GNU tar reads what we write...
    const ours = join(work, 'ours.tar');
    writeFileSync(ours, pack(src).tar);
    const listed = execFileSync('tar', ['-tf', ours], { encoding: 'utf8' }).split('\n').filter(Boolean).sort();
    assert.ok(listed.includes(`${'a'.repeat(60)}/${'b'.repeat(60)}/long-path-file.txt`), listed.join('\n'));
    assert.ok(listed.includes('été ünïcode'));
    const extracted = fresh('gnu-x');
    execFileSync('tar', ['-xf', ours, '-C', extracted]);
    assert.equal(readFileSync(join(extracted, 'bin', 'tool'), 'utf8'), '#!/bin/sh\necho tool\n');
    // ...and we read what it writes, in its formats.
    for (const format of ['gnu', 'pax', 'ustar']) {
      if (format === 'ustar') continue; // ustar cannot hold the 130-byte path
      const tgz = join(work, `gnu-${format}.tar.gz`);
      execFileSync('tar', [`--format=${format}`, '--xattrs', '-czf', tgz, '-C', src, '.']);
      const dst = fresh(`from-${format}`);
      const r = await unpackLayer(tgz, dst);
      assert.equal(r.diffId, `sha256:${createHash('sha256').update(gunzipSync(readFileSync(tgz))).digest('hex')}`);
      assert.deepEqual(describeTree(dst), describeTree(src), format);
    }
  });

  it('turns OCI whiteouts into overlayfs whiteouts and opaque dirs, and back', async () => {
    const tar = tarOf([
      { path: 'etc', type: 'dir' },
      { path: 'etc/.wh.passwd', type: 'file' },
      { path: 'var', type: 'dir' },
      { path: 'var/cache', type: 'dir' },
      { path: 'var/cache/.wh..wh..opq', type: 'file' },
      { path: 'var/cache/new', type: 'file', data: Buffer.from('new') },
      { path: '.wh.gone', type: 'file' },
    ]);
    const dst = fresh('wh');
    const r = await unpackLayer(gzipSync(tar), dst);
    assert.equal(r.whiteouts, 2);
    assert.equal(r.opaqueDirs, 1);
    for (const p of ['etc/passwd', 'gone']) {
      const st = lstatSync(join(dst, p));
      assert.ok(st.isCharacterDevice() && st.rdev === 0, `${p} is a whiteout`);
    }
    assert.equal(native.getXattr(join(dst, 'var/cache'), OPAQUE_XATTR)?.toString(), 'y');
    const back: string[] = [];
    for await (const e of readTar(pack(dst).tar)) back.push(`${e.type} ${e.path}`);
    assert.deepEqual(back.sort(), ['dir etc/', 'dir var/', 'dir var/cache/', 'file .wh.gone', 'file etc/.wh.passwd', 'file var/cache/.wh..wh..opq', 'file var/cache/new'].sort());
  });

  it('stacks under overlayfs in a user namespace: whiteouts hide, opaque dirs hide, upper writes become whiteouts', { skip: spawnSync('unshare', ['-Urm', 'true']).status !== 0 && 'skipped: unshare -Urm not usable here' }, async () => {
    const lower = fresh('lower');
    await unpackLayer(tarOf([{ path: 'a', type: 'file', data: Buffer.from('a') }, { path: 'b', type: 'file', data: Buffer.from('b') }, { path: 'd', type: 'dir' }, { path: 'd/old', type: 'file', data: Buffer.from('old') }]), lower);
    const upperLayer = fresh('upper-layer');
    await unpackLayer(tarOf([{ path: '.wh.a', type: 'file' }, { path: 'd', type: 'dir' }, { path: 'd/.wh..wh..opq', type: 'file' }, { path: 'd/new', type: 'file', data: Buffer.from('new') }]), upperLayer);
    for (const d of [work, lower, upperLayer]) chmodSync(d, 0o755);
    const script = `set -e; cd ${work}; m=$(mktemp -d ${work}/m.XXXX); mount -t tmpfs t $m; mkdir $m/up $m/wk $m/root;
      mount -t overlay overlay -o lowerdir=${upperLayer}:${lower},upperdir=$m/up,workdir=$m/wk,userxattr $m/root;
      ls $m/root; ls $m/root/d; rm $m/root/b; stat -c '%F %t:%T' $m/up/b`;
    const out = execFileSync('unshare', ['-Urm', 'sh', '-c', script], { encoding: 'utf8' });
    assert.equal(out, 'b\nd\nnew\ncharacter special file 0:0\n');
  });

  it('refuses hostile archives without touching anything outside the layer', async () => {
    const outside = fresh('outside');
    const cases: [string, TarWriteEntry[]][] = [
      ['absolute path', [{ path: `${outside}/x`, type: 'file', data: Buffer.from('x') }]],
      ['dot-dot', [{ path: `../${outside.split('/').pop()}/x`, type: 'file', data: Buffer.from('x') }]],
      ['through its own symlink', [{ path: 'link', type: 'symlink', linkname: outside }, { path: 'link/x', type: 'file', data: Buffer.from('x') }]],
      ['symlink then dir in it', [{ path: 'link', type: 'symlink', linkname: outside }, { path: 'link/sub', type: 'dir' }]],
      ['whiteout through a symlink', [{ path: 'link', type: 'symlink', linkname: outside }, { path: 'link/.wh.x', type: 'file' }]],
      ['hardlink outside', [{ path: 'h', type: 'hardlink', linkname: '../../etc/passwd' }]],
      ['hardlink absolute', [{ path: 'h', type: 'hardlink', linkname: '/etc/passwd' }]],
    ];
    writeFileSync(join(outside, 'keep'), 'keep');
    for (const [what, entries] of cases) {
      const dst = fresh('hostile');
      await assert.rejects(unpackLayer(tarOf(entries), dst), TarError, what);
      assert.deepEqual(readdirSync(outside), ['keep'], what);
    }
    // A device node is not made (an unprivileged user cannot), and says so.
    const r = await unpackLayer(tarOf([{ path: 'null', type: 'char', devmajor: 1, devminor: 3 }, { path: 'ok', type: 'file', data: Buffer.from('ok') }]), fresh('dev'));
    assert.deepEqual(r.skipped, ['null: char device or fifo not made (an unprivileged user cannot)']);
    // setuid and setgid bits are dropped.
    const d = fresh('suid');
    await unpackLayer(tarOf([{ path: 'su', type: 'file', mode: 0o6755, data: Buffer.from('x') }]), d);
    assert.equal(lstatSync(join(d, 'su')).mode & 0o7777, 0o755);
  });

  it('says what is wrong with a broken archive', async () => {
    const good = tarOf([{ path: 'f', type: 'file', data: Buffer.alloc(2000, 1) }]);
    await assert.rejects(unpackLayer(good.subarray(0, 1024), fresh('trunc')), /truncated/);
    const bad = Buffer.from(good);
    bad[10] ^= 0xff;
    await assert.rejects(unpackLayer(bad, fresh('sum')), /bad header checksum/);
  });
});

guardLeaks();
