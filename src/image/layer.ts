// Layers between their two forms: the OCI tarball (deletions as `.wh.NAME`
// files, opaque directories as `.wh..wh..opq`) and the directory overlayfs
// stacks (a deletion is a character device 0:0, an opaque directory carries
// the user.overlay.opaque xattr: the form overlay takes with `userxattr`,
// inside a user namespace, with no privilege needed).
//
// Unpacking is where an attacker's archive meets the host's filesystem, so
// every path is resolved component by component under the layer's root:
// absolute paths and `..` are refused, no symlink the archive made earlier is
// ever followed, hardlinks must point inside, device nodes are not made, and
// setuid/setgid bits and overlay's own xattrs are dropped.
import { createHash } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  constants as fsConstants,
  fchmodSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeSync,
  type Stats,
} from 'node:fs';
import { join, posix } from 'node:path';
import type { Readable } from 'node:stream';
import { native } from '../native.js';
import { readTar, TarError, TarFileWriter, type TarWriteEntry } from './tar.js';

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_MARKER = '.wh..wh..opq';
export const OPAQUE_XATTR = 'user.overlay.opaque';

export interface UnpackResult {
  /** sha256 of the uncompressed tar: the layer's diff ID, "sha256:...". */
  diffId: string;
  entries: number;
  whiteouts: number;
  opaqueDirs: number;
  /** What was left out, and why (device nodes, xattrs that cannot be kept). */
  skipped: string[];
  /** Entries the archive gives another owner than root: [path relative to the layer, uid, gid]. */
  owners: [string, number, number][];
}

/** A relative path inside the layer, or a TarError: no absolute paths, no `..`. */
export function layerPath(p: string): string {
  const n = posix.normalize(p.replace(/^(\.\/)+/, ''));
  if (p.startsWith('/') || n === '..' || n.startsWith('../') || n.includes('\0')) throw new TarError(`entry ${JSON.stringify(p)} points outside the layer`);
  return n === '.' ? '' : n.replace(/\/+$/, '');
}

/**
 * The host path of `rel` under root, with every parent directory made (0755)
 * where missing, and none of them a symlink: the archive's own symlinks must
 * not lead a later entry out of the layer.
 */
function placeUnder(root: string, rel: string): string {
  const parts = rel.split('/');
  let p = root;
  for (const part of parts.slice(0, -1)) {
    p = join(p, part);
    let st: Stats | undefined;
    try {
      st = lstatSync(p);
    } catch {
      mkdirSync(p, { mode: 0o755 });
      continue;
    }
    if (st.isSymbolicLink()) throw new TarError(`entry ${JSON.stringify(rel)} goes through a symlink (${JSON.stringify(parts.slice(0, parts.indexOf(part) + 1).join('/'))})`);
    if (!st.isDirectory()) throw new TarError(`entry ${JSON.stringify(rel)}: ${JSON.stringify(part)} is not a directory`);
  }
  return join(root, rel);
}

/** `rel` as a directory under root (made if missing), neither it nor a parent a symlink. */
function dirUnder(root: string, rel: string): string {
  if (!rel) return root;
  const p = placeUnder(root, rel);
  const st = lstatSync(p, { throwIfNoEntry: false });
  if (!st) mkdirSync(p, { mode: 0o755 });
  else if (!st.isDirectory()) throw new TarError(`entry ${JSON.stringify(rel)} is not a directory`);
  return p;
}

/** Whatever is at p (not followed) removed; a directory only when it is replaced by a non-directory. */
function clear(p: string, forDir: boolean): void {
  let st: Stats;
  try {
    st = lstatSync(p);
  } catch {
    return;
  }
  if (st.isDirectory()) {
    if (!forDir) rmSync(p, { recursive: true, force: true });
  } else unlinkSync(p);
}

/**
 * Removes a tree of the caller's, such as a layer or an overlay work
 * directory, whose directories may deny the caller write or search
 * permission (a layer's 0555 directories, overlayfs' 000 work/work).
 */
export function removeTree(dir: string): void {
  const openUp = (d: string) => {
    chmodSync(d, 0o700);
    for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) openUp(join(d, e.name));
  };
  try {
    openUp(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  rmSync(dir, { recursive: true, force: true });
}

const SAFE_MODE = 0o1777; // no setuid or setgid: the files are the user's on the host

/** Unpacks an OCI layer tarball (plain or gzip) into `dir`, in overlayfs' form. */
export async function unpackLayer(source: string | Buffer | Readable, dir: string, tee?: (chunk: Buffer) => void): Promise<UnpackResult> {
  const digest = createHash('sha256');
  const result: UnpackResult = { diffId: '', entries: 0, whiteouts: 0, opaqueDirs: 0, skipped: [], owners: [] };
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  // Directories get their mode and time last: a mode without write
  // permission must not stop their children being made.
  const dirAttrs: [string, number, number][] = [];
  const onBytes = (c: Buffer) => {
    digest.update(c);
    tee?.(c);
  };
  for await (const e of readTar(source, { onBytes })) {
    result.entries++;
    const rel = layerPath(e.path);
    if (rel === '') {
      if (e.type === 'dir') dirAttrs.push([dir, e.mtime, -1]);
      continue;
    }
    const name = posix.basename(rel);
    const parent = posix.dirname(rel) === '.' ? '' : posix.dirname(rel);
    if (name === OPAQUE_MARKER) {
      native.setXattr(dirUnder(dir, parent), OPAQUE_XATTR, Buffer.from('y'));
      result.opaqueDirs++;
      continue;
    }
    if (name.startsWith(WHITEOUT_PREFIX) || (e.type === 'char' && e.devmajor === 0 && e.devminor === 0)) {
      const hidden = name.startsWith(WHITEOUT_PREFIX) ? name.slice(WHITEOUT_PREFIX.length) : name;
      if (!hidden || hidden === '.' || hidden === '..') throw new TarError(`entry ${JSON.stringify(e.path)}: a whiteout of nothing`);
      const target = placeUnder(dir, parent ? `${parent}/${hidden}` : hidden);
      clear(target, false);
      native.mknodWhiteout(target);
      result.whiteouts++;
      continue;
    }
    const target = placeUnder(dir, rel);
    switch (e.type) {
      case 'dir': {
        clear(target, true);
        try {
          mkdirSync(target, { mode: 0o755 });
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        }
        dirAttrs.push([target, e.mtime, e.mode & SAFE_MODE]);
        break;
      }
      case 'file': {
        clear(target, false);
        const fd = openSync(target, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, 0o600);
        try {
          for (let off = 0; off < e.data.length; ) off += writeSync(fd, e.data, off, e.data.length - off);
          fchmodSync(fd, e.mode & SAFE_MODE);
        } finally {
          closeSync(fd);
        }
        utimesSync(target, e.mtime, e.mtime);
        break;
      }
      case 'symlink':
        clear(target, false);
        symlinkSync(e.linkname, target);
        lutimesSync(target, e.mtime, e.mtime);
        break;
      case 'hardlink': {
        const to = join(dir, layerPath(e.linkname));
        placeUnder(dir, layerPath(e.linkname));
        const st = lstatSync(to, { throwIfNoEntry: false });
        if (!st || st.isDirectory()) throw new TarError(`entry ${JSON.stringify(e.path)}: hardlink to ${JSON.stringify(e.linkname)}, which is not a file in the layer`);
        clear(target, false);
        linkSync(to, target);
        break;
      }
      default:
        result.skipped.push(`${rel}: ${e.type} device or fifo not made (an unprivileged user cannot)`);
        continue;
    }
    if (e.uid !== 0 || e.gid !== 0) result.owners.push([rel, e.uid, e.gid]);
    for (const [k, v] of Object.entries(e.xattrs)) {
      if (!k.startsWith('user.') || k.startsWith('user.overlay.')) {
        result.skipped.push(`${rel}: xattr ${k} not kept`);
        continue;
      }
      if (e.type !== 'symlink') native.setXattr(target, k, v);
    }
  }
  // Last, deepest first: making the children changed the directories' times.
  for (const [d, t, mode] of dirAttrs.reverse()) {
    if (mode >= 0) chmodSync(d, mode);
    utimesSync(d, t, t);
  }
  result.diffId = `sha256:${digest.digest('hex')}`;
  return result;
}

export interface PackResult {
  diffId: string;
  size: number;
  entries: number;
}

function isWhiteout(st: Stats): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
}

/**
 * Writes `dir` (a layer or an overlay upper directory) as an OCI layer
 * tarball to the file descriptor: entries sorted, so the same tree gives the
 * same bytes and diff ID; whiteouts and opaque directories in OCI form;
 * hardlinks kept. Entries are root's unless `keepOwners`, for a pack made
 * inside the multi-id map (owners-helper.ts), where lstat already shows each
 * file's owner as the image sees it.
 */
export function packLayer(dir: string, fd: number, exclude: ReadonlySet<string> = new Set(), keepOwners = false): PackResult {
  const hash = createHash('sha256');
  const out = new TarFileWriter(fd, (b) => hash.update(b));
  let entries = 0;
  const emit = (e: TarWriteEntry) => {
    out.add(e);
    entries++;
  };
  const inodes = new Map<string, string>();
  const xattrsOf = (p: string): Record<string, Buffer> => {
    const out: Record<string, Buffer> = {};
    for (const k of native.listXattr(p)) {
      if (!k.startsWith('user.') || k.startsWith('user.overlay.')) continue;
      const v = native.getXattr(p, k);
      if (v) out[k] = v;
    }
    return out;
  };
  const walk = (abs: string, rel: string) => {
    for (const name of readdirSync(abs).sort()) {
      const p = join(abs, name);
      const r = rel ? `${rel}/${name}` : name;
      if (exclude.has(r)) continue;
      const st = lstatSync(p);
      const base = { mode: st.mode & 0o7777, uid: keepOwners ? st.uid : 0, gid: keepOwners ? st.gid : 0, mtime: Math.floor(st.mtimeMs / 1000) };
      if (isWhiteout(st)) {
        emit({ ...base, path: rel ? `${rel}/${WHITEOUT_PREFIX}${name}` : `${WHITEOUT_PREFIX}${name}`, type: 'file', mode: 0o644 });
      } else if (st.isDirectory()) {
        emit({ ...base, path: r, type: 'dir', xattrs: xattrsOf(p) });
        if (native.getXattr(p, OPAQUE_XATTR)?.toString() === 'y') emit({ ...base, path: `${r}/${OPAQUE_MARKER}`, type: 'file', mode: 0o644 });
        walk(p, r);
      } else if (st.isSymbolicLink()) {
        emit({ ...base, path: r, type: 'symlink', linkname: readlinkSync(p) });
      } else if (st.isFile()) {
        const key = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1 ? inodes.get(key) : undefined;
        if (first) emit({ ...base, path: r, type: 'hardlink', linkname: first });
        else {
          if (st.nlink > 1) inodes.set(key, r);
          emit({ ...base, path: r, type: 'file', data: readFileSync(p), xattrs: xattrsOf(p) });
        }
      }
      // Sockets, fifos and devices other than whiteouts are not layer content.
    }
  };
  walk(dir, '');
  out.end();
  return { diffId: `sha256:${hash.digest('hex')}`, size: out.size, entries };
}
