// The image store: content-addressed, per user, shared by every brig process
// of that user. Layout under the root ($BRIG_STORE, else
// $XDG_DATA_HOME/brig, else ~/.local/share/brig), all 0700:
//
//   blobs/sha256/<hex>     layer tarballs (uncompressed), image configs, manifests
//   layers/<hex>/          a layer unpacked in overlayfs' form, keyed by its diff ID
//   images.json            name:tag -> manifest digest
//   tmp/                   staging; everything enters the store by rename
//   lock                   held (O_EXCL, with the holder's pid) while images.json changes
//
// A blob or a layer is written under tmp/ and renamed into place, so a reader
// never sees half of one, and two processes making the same layer both
// succeed (the second finds it there and drops its own). Changes to the
// image list take the lock; a lock whose holder is dead is taken over.
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, linkSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { BrigError } from '../errors.js';
import { pidAlive } from '../kernel.js';
import { packLayer, removeTree, unpackLayer } from './layer.js';
import { canKeepOwners, chownInNamespace, ownersHelper, type Owner } from './owners.js';

export class ImageError extends BrigError {
  override name = 'ImageError';
}

export const MEDIA = {
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
} as const;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
}

/** The OCI image configuration (the fields brig reads and writes). */
export interface ImageConfig {
  created?: string;
  architecture: string;
  os: string;
  config: {
    Env?: string[];
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    WorkingDir?: string;
    User?: string;
    ExposedPorts?: Record<string, object>;
    Volumes?: Record<string, object>;
    Labels?: Record<string, string>;
  };
  rootfs: { type: 'layers'; diff_ids: string[] };
  history?: { created?: string; created_by?: string; comment?: string; empty_layer?: boolean }[];
}

export interface ImageSummary {
  ref: string;
  /** The manifest's digest: the image's identity. */
  digest: string;
  /** The config's digest, shortened, as `docker images` shows IDs. */
  id: string;
  created?: string;
  /** Bytes of its layers (uncompressed). */
  size: number;
}

export interface Image {
  refs: string[];
  digest: string;
  manifest: ImageManifest;
  config: ImageConfig;
}

export const DIGEST = /^sha256:[0-9a-f]{64}$/;
// A registry host with a port may lead (localhost:5000/busybox), as Docker's names allow.
/** A repository path: lowercase components joined by / (library/busybox, org/app). */
export const REPOSITORY = /^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$/;
const NAME = new RegExp(`^(?:[A-Za-z0-9.-]+:[0-9]+\\/)?${REPOSITORY.source.slice(1)}`);
export const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/** `name[:tag]` with the tag defaulting to latest, checked. */
export function normalizeRef(ref: string): string {
  if (typeof ref !== 'string' || !ref) throw new ImageError('an image reference is name[:tag], e.g. busybox:1.36');
  // name@sha256:...: an image pulled by digest is named by it.
  const at = ref.indexOf('@');
  if (at > 0) {
    const digest = ref.slice(at + 1);
    if (!DIGEST.test(digest)) throw new ImageError(`${JSON.stringify(ref)}: a digest is sha256: and 64 hex digits`);
    const name = normalizeRef(ref.slice(0, at)).replace(/:[^:/]*$/, '');
    return `${name}@${digest}`;
  }
  const colon = ref.lastIndexOf(':');
  const hasTag = colon > ref.lastIndexOf('/');
  // Docker Hub's long names are its short ones: docker.io/library/busybox is busybox.
  const name = (hasTag ? ref.slice(0, colon) : ref).replace(/^(docker\.io|index\.docker\.io)\/(library\/)?/, '');
  const tag = hasTag ? ref.slice(colon + 1) : 'latest';
  if (!NAME.test(name)) throw new ImageError(`${JSON.stringify(ref)}: an image name is lowercase letters, digits and . _ - /`);
  if (!TAG.test(tag)) throw new ImageError(`${JSON.stringify(ref)}: a tag is letters, digits, _ . - (up to 128)`);
  return `${name}:${tag}`;
}

/** The names brig build gives its cached steps. */
export const BUILD_CACHE_PREFIX = 'brig-build-cache/';

/** Removes every cached build step; layers and blobs only they used go too. */
export async function pruneBuildCache(store: Store): Promise<number> {
  const refs = store.list(true).filter((i) => i.ref.startsWith(BUILD_CACHE_PREFIX));
  for (const r of refs) await store.remove(r.ref);
  return refs.length;
}

export function storeRoot(): string {
  if (process.env.BRIG_STORE && isAbsolute(process.env.BRIG_STORE)) return process.env.BRIG_STORE;
  const data = process.env.XDG_DATA_HOME && isAbsolute(process.env.XDG_DATA_HOME) ? process.env.XDG_DATA_HOME : join(homedir(), '.local', 'share');
  return join(data, 'brig');
}

const hex = (digest: string) => digest.slice('sha256:'.length);
export const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export class Store {
  constructor(readonly root = storeRoot()) {
    for (const d of ['', 'blobs/sha256', 'layers', 'owners', 'volumes', 'containers', 'tmp']) mkdirSync(join(root, d), { recursive: true, mode: 0o700 });
  }

  /** A fresh path in the store's tmp/ (same filesystem: renames into place). */
  tmp(kind: string): string {
    return join(this.root, 'tmp', `${kind}-${process.pid}-${randomBytes(6).toString('hex')}`);
  }

  /** Runs fn holding the store's lock (waiting up to 10 s; a dead holder's lock is taken over). */
  private locked<T>(fn: () => T): T {
    const lock = join(this.root, 'lock');
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        const fd = openSync(lock, 'wx', 0o600);
        writeSync(fd, String(process.pid));
        closeSync(fd);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        let holder: number;
        try {
          holder = Number(readFileSync(lock, 'utf8') || 0);
        } catch (r) {
          if ((r as NodeJS.ErrnoException).code === 'ENOENT') continue; // released in between: try again
          throw r;
        }
        if (holder && !pidAlive(holder)) {
          // Taken over by rename, so two waiters cannot both remove a fresh lock.
          const stale = this.tmp('stale-lock');
          try {
            renameSync(lock, stale);
            // Another waiter may have taken it over and a live process locked
            // again in between: then that lock goes back.
            if (Number(readFileSync(stale, 'utf8') || 0) !== holder) linkSync(stale, lock);
            unlinkSync(stale);
          } catch {}
          continue;
        }
        if (Date.now() > deadline) throw new ImageError(`the image store is locked by process ${holder} (${lock})`);
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
      }
    }
    try {
      return fn();
    } finally {
      rmSync(lock, { force: true });
    }
  }

  private readIndex(): Record<string, string> {
    try {
      return JSON.parse(readFileSync(join(this.root, 'images.json'), 'utf8')) as Record<string, string>;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw new ImageError(`the image store's index is unreadable: ${(e as Error).message}`);
    }
  }

  private writeIndex(index: Record<string, string>): void {
    const t = this.tmp('index');
    writeFileSync(t, JSON.stringify(index, null, 2) + '\n', { mode: 0o600 });
    renameSync(t, join(this.root, 'images.json'));
  }

  blobPath(digest: string): string {
    if (!DIGEST.test(digest)) throw new ImageError(`not a sha256 digest: ${JSON.stringify(digest)}`);
    return join(this.root, 'blobs', 'sha256', hex(digest));
  }

  /** Stores bytes as a blob; its digest. */
  putBlob(data: Buffer | string): string {
    const digest = sha256(data);
    const p = this.blobPath(digest);
    if (!existsSync(p)) {
      const t = this.tmp('blob');
      writeFileSync(t, data, { mode: 0o600 });
      renameSync(t, p);
    }
    return digest;
  }

  readBlob(digest: string): Buffer {
    const p = this.blobPath(digest);
    const data = readFileSync(p);
    if (sha256(data) !== digest) throw new ImageError(`blob ${digest} is corrupt (its content does not match its digest)`);
    return data;
  }

  /** The unpacked layer's directory (the root overlayfs stacks). */
  layerDir(diffId: string): string {
    if (!DIGEST.test(diffId)) throw new ImageError(`not a sha256 diff ID: ${JSON.stringify(diffId)}`);
    return join(this.root, 'layers', hex(diffId));
  }

  /**
   * Adds a layer tarball (plain or gzip) to the store: unpacked under tmp/,
   * then renamed into place under its diff ID. Returns the diff ID; a layer
   * already there is kept as it is.
   */
  async addLayerTar(tarPath: string): Promise<{ diffId: string; size: number }> {
    const staging = this.tmp('layer');
    // The uncompressed archive is kept as the layer's blob (its digest is the
    // diff ID), for save and push.
    const blobTmp = this.tmp('layer-blob');
    const fd = openSync(blobTmp, 'w', 0o600);
    let size = 0;
    try {
      let r;
      try {
        r = await unpackLayer(tarPath, staging, (c) => {
          for (let off = 0; off < c.length; ) off += writeSync(fd, c, off, c.length - off);
          size += c.length;
        });
      } finally {
        closeSync(fd);
      }
      const dest = this.layerDir(r.diffId);
      if (!existsSync(dest)) {
        // Files of other owners get them, through a multi-id map, before the
        // layer is in place (where they can, else they stay the caller's).
        let owned = false;
        if (r.owners.length && canKeepOwners(Math.max(...r.owners.flatMap(([, u, g]) => [u, g])))) {
          await chownInNamespace(r.owners.map(([rel, u, g]) => [join(staging, rel), u, g] as Owner));
          owned = true;
        }
        try {
          renameSync(staging, dest);
          if (owned) writeFileSync(this.ownersFile(r.diffId), JSON.stringify(r.owners));
        } catch (e) {
          if (owned) await chownInNamespace(r.owners.map(([rel]) => [join(staging, rel), 0, 0] as Owner));
          if (!['EEXIST', 'ENOTEMPTY'].includes((e as NodeJS.ErrnoException).code ?? '')) throw e;
        }
      }
      const blob = this.blobPath(r.diffId);
      if (!existsSync(blob)) renameSync(blobTmp, blob);
      return { diffId: r.diffId, size };
    } finally {
      removeTree(staging);
      rmSync(blobTmp, { force: true });
    }
  }

  /** A layer from a directory: packed into a blob (the diff ID is the tar's digest), then unpacked. */
  async addLayerDir(dir: string, exclude?: ReadonlySet<string>, owners = false): Promise<{ diffId: string; size: number }> {
    const t = this.tmp('tar');
    let packed: { diffId: string; size: number };
    try {
      if (owners) {
        // Files of the map's other users may be unreadable to the caller: the
        // pack runs inside the map, where they are readable and show their owners.
        await ownersHelper(`layer of ${dir}`, ['pack', dir, t, JSON.stringify([...(exclude ?? [])])]);
        packed = JSON.parse(readFileSync(`${t}.json`, 'utf8')) as { diffId: string; size: number };
      } else {
        const fd = openSync(t, 'w', 0o600);
        try {
          packed = packLayer(dir, fd, exclude);
        } finally {
          closeSync(fd);
        }
      }
      const r = await this.addLayerTar(t);
      if (r.diffId !== packed.diffId) throw new ImageError(`layer of ${dir}: packed as ${packed.diffId}, unpacked as ${r.diffId}`);
      return { diffId: packed.diffId, size: packed.size };
    } finally {
      rmSync(t, { force: true });
      rmSync(`${t}.json`, { force: true });
    }
  }

  /**
   * Records an image (config and manifest blobs) and names it. Its layers
   * must be in the store already.
   */
  commitImage(ref: string, config: ImageConfig, layers: { diffId: string; size: number; mediaType?: string; digest?: string }[]): Image {
    const name = normalizeRef(ref);
    for (const l of layers) if (!existsSync(this.layerDir(l.diffId))) throw new ImageError(`layer ${l.diffId} is not in the store`);
    const configBytes = Buffer.from(JSON.stringify(config));
    const configDigest = this.putBlob(configBytes);
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: MEDIA.manifest,
      config: { mediaType: MEDIA.config, digest: configDigest, size: configBytes.length },
      layers: layers.map((l) => ({ mediaType: l.mediaType ?? MEDIA.layer, digest: l.digest ?? l.diffId, size: l.size })),
    };
    const digest = this.putBlob(JSON.stringify(manifest));
    this.locked(() => {
      const index = this.readIndex();
      index[name] = digest;
      this.writeIndex(index);
    });
    return { refs: [name], digest, manifest, config };
  }

  /**
   * A base image from a directory (debootstrap or busybox output, say) or a
   * tarball: one layer, the config given (env, cmd, ...).
   */
  async importRootfs(source: string, ref: string, config: Partial<ImageConfig['config']> = {}, comment = `imported from ${source}`): Promise<Image> {
    normalizeRef(ref);
    let st;
    try {
      st = statSync(source);
    } catch (e) {
      throw new ImageError(`import-rootfs: ${source}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    const layer = st.isDirectory() ? await this.addLayerDir(source) : await this.addLayerTar(source);
    const created = new Date().toISOString();
    const cfg: ImageConfig = {
      created,
      architecture: process.arch === 'x64' ? 'amd64' : process.arch,
      os: 'linux',
      config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], ...config },
      rootfs: { type: 'layers', diff_ids: [layer.diffId] },
      history: [{ created, created_by: 'brig import-rootfs', comment }],
    };
    return this.commitImage(ref, cfg, [layer]);
  }

  /** An image by name[:tag] or manifest digest (or a unique digest prefix). */
  get(refOrDigest: string): Image {
    const index = this.readIndex();
    let digest: string | undefined;
    if (refOrDigest.startsWith('sha256:')) {
      const all = [...new Set(Object.values(index))].filter((d) => d.startsWith(refOrDigest));
      if (all.length > 1) throw new ImageError(`${refOrDigest} is ambiguous: ${all.length} images start with it`);
      digest = all[0];
    } else digest = index[normalizeRef(refOrDigest)];
    if (!digest) throw new ImageError(`no image ${JSON.stringify(refOrDigest)} in ${this.root} (brig images lists them)`);
    return this.image(digest, index);
  }

  /** The image whose manifest is `digest`, its names from `index`; its blobs checked against their digests unless `verify` is false. */
  private image(digest: string, index: Record<string, string>, verify = true): Image {
    const read = (d: string) => (verify ? this.readBlob(d) : readFileSync(this.blobPath(d)));
    const manifest = JSON.parse(read(digest).toString()) as ImageManifest;
    const config = JSON.parse(read(manifest.config.digest).toString()) as ImageConfig;
    return { refs: Object.keys(index).filter((k) => index[k] === digest).sort(), digest, manifest, config };
  }

  /** Named images; the build cache's steps (BUILD_CACHE_PREFIX) only with `all`. */
  list(all = false): ImageSummary[] {
    const index = this.readIndex();
    return Object.keys(index)
      .filter((ref) => all || !ref.startsWith(BUILD_CACHE_PREFIX))
      .sort()
      .map((ref) => {
        const img = this.image(index[ref], index);
        return { ref, digest: img.digest, id: hex(img.manifest.config.digest).slice(0, 12), created: img.config.created, size: img.manifest.layers.reduce((a, l) => a + l.size, 0) };
      });
  }

  /** Names a manifest already in the store (after load). */
  name(ref: string, manifestDigest: string): string {
    const n = normalizeRef(ref);
    if (!existsSync(this.blobPath(manifestDigest))) throw new ImageError(`manifest ${manifestDigest} is not in the store`);
    this.locked(() => {
      const index = this.readIndex();
      index[n] = manifestDigest;
      this.writeIndex(index);
    });
    return n;
  }

  tag(source: string, ref: string): string {
    const img = this.get(source);
    const name = normalizeRef(ref);
    this.locked(() => {
      const index = this.readIndex();
      index[name] = img.digest;
      this.writeIndex(index);
    });
    return name;
  }

  /**
   * Untags `ref`; an image no name refers to any more goes, and so do the
   * layers and blobs no remaining image uses. Returns what was removed.
   */
  async remove(ref: string): Promise<{ untagged: string; deleted: string[] }> {
    const { untagged, deleted, gone } = this.locked(() => {
      const index = this.readIndex();
      const name = ref.startsWith('sha256:') ? Object.keys(index).find((k) => index[k].startsWith(ref)) : normalizeRef(ref);
      if (!name || !index[name]) throw new ImageError(`no image ${JSON.stringify(ref)} in ${this.root}`);
      delete index[name];
      this.writeIndex(index);
      return { untagged: name, ...this.collect(index) };
    });
    // Layers whose files have other owners get them back first: the caller
    // could not remove them otherwise.
    for (const g of gone) {
      if (g.owners) await chownInNamespace(g.owners.map(([rel]) => [join(g.dir, rel), 0, 0] as Owner));
      removeTree(g.dir);
    }
    return { untagged, deleted };
  }

  ownersFile(diffId: string): string {
    return join(this.root, 'owners', `${hex(diffId)}.json`);
  }

  /** Whether any of the image's layers has files of other owners than the caller. */
  imageHasOwners(image: Image): boolean {
    return image.config.rootfs.diff_ids.some((d) => this.hasOwners(d));
  }

  /** Whether the layer's files belong to other owners than the caller (through the multi-id map). */
  hasOwners(diffId: string): boolean {
    return existsSync(this.ownersFile(diffId));
  }

  /** Removes blobs no named image refers to, and moves such layers aside (under the lock). */
  private collect(index: Record<string, string>): { deleted: string[]; gone: { dir: string; owners?: Owner[] }[] } {
    const keepBlobs = new Set<string>();
    const keepLayers = new Set<string>();
    for (const digest of new Set(Object.values(index))) {
      const { manifest, config } = this.image(digest, index, false);
      keepBlobs.add(hex(digest));
      keepBlobs.add(hex(manifest.config.digest));
      for (const l of manifest.layers) keepBlobs.add(hex(l.digest));
      for (const d of config.rootfs.diff_ids) keepLayers.add(hex(d));
    }
    const deleted: string[] = [];
    const gone: { dir: string; owners?: Owner[] }[] = [];
    for (const b of readdirSync(join(this.root, 'blobs', 'sha256')))
      if (!keepBlobs.has(b)) {
        rmSync(join(this.root, 'blobs', 'sha256', b), { force: true });
        deleted.push(`blob sha256:${b}`);
      }
    for (const l of readdirSync(join(this.root, 'layers')))
      if (!keepLayers.has(l)) {
        // Renamed away first: a run stacking it keeps its open directories.
        const t = this.tmp('gone');
        renameSync(join(this.root, 'layers', l), t);
        const ownersFile = this.ownersFile(`sha256:${l}`);
        let owners: Owner[] | undefined;
        if (existsSync(ownersFile)) {
          owners = JSON.parse(readFileSync(ownersFile, 'utf8')) as Owner[];
          rmSync(ownersFile, { force: true });
        }
        gone.push({ dir: t, owners });
        deleted.push(`layer sha256:${l}`);
      }
    return { deleted, gone };
  }

  // -------------------------------------------------------------------------
  // Volumes: directories that outlive runs, bound read-write by name.

  volumePath(name: string): string {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(name)) throw new ImageError(`${JSON.stringify(name)}: a volume name is letters, digits, _ . - (up to 128)`);
    return join(this.root, 'volumes', name, 'data');
  }

  /** Makes the volume if it is not there; its directory. */
  createVolume(name: string): string {
    const p = this.volumePath(name);
    if (!existsSync(p)) {
      const t = this.tmp('volume');
      mkdirSync(join(t, 'data'), { recursive: true, mode: 0o755 });
      writeFileSync(join(t, 'created'), new Date().toISOString());
      try {
        renameSync(t, join(this.root, 'volumes', name));
      } catch (e) {
        rmSync(t, { recursive: true, force: true });
        if (!['EEXIST', 'ENOTEMPTY'].includes((e as NodeJS.ErrnoException).code ?? '')) throw e;
      }
    }
    return p;
  }

  inspectVolume(name: string): { name: string; path: string; created: string; bytes: number } {
    const p = this.volumePath(name);
    if (!existsSync(p)) throw new ImageError(`no volume ${JSON.stringify(name)} (brig volume ls lists them)`);
    let bytes = 0;
    const walk = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const q = join(d, e.name);
        if (e.isDirectory()) walk(q);
        else if (e.isFile()) bytes += statSync(q).size;
      }
    };
    walk(p);
    return { name, path: p, created: readFileSync(join(p, '..', 'created'), 'utf8'), bytes };
  }

  listVolumes(): string[] {
    return readdirSync(join(this.root, 'volumes')).filter((n) => existsSync(join(this.root, 'volumes', n, 'data'))).sort();
  }

  removeVolume(name: string): void {
    const p = this.volumePath(name);
    if (!existsSync(p)) throw new ImageError(`no volume ${JSON.stringify(name)}`);
    const t = this.tmp('gone');
    renameSync(join(p, '..'), t);
    rmSync(t, { recursive: true, force: true });
  }

  // -------------------------------------------------------------------------
  // Kept containers: a run's writable layer on disk, for commit.

  containerDir(name: string): string {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(name)) throw new ImageError(`${JSON.stringify(name)}: a container name is letters, digits, _ . - (up to 128)`);
    return join(this.root, 'containers', name);
  }

  /**
   * The container's directory (upper/ and work/ for overlayfs), made for
   * `image` if new; a container of another image is an error.
   */
  prepareContainer(name: string, image: Image): string {
    const dir = this.containerDir(name);
    const meta = join(dir, 'container.json');
    if (existsSync(meta)) {
      const m = JSON.parse(readFileSync(meta, 'utf8')) as { image: string };
      if (m.image !== image.digest) throw new ImageError(`container ${name} is of another image (${m.image}); brig rm ${name} first`);
      return dir;
    }
    const t = this.tmp('container');
    mkdirSync(join(t, 'upper'), { recursive: true, mode: 0o755 });
    mkdirSync(join(t, 'work'), { mode: 0o755 });
    writeFileSync(join(t, 'container.json'), JSON.stringify({ name, image: image.digest, ref: image.refs[0] ?? image.digest, created: new Date().toISOString(), owners: this.imageHasOwners(image) }) + '\n');
    try {
      renameSync(t, dir);
    } catch (e) {
      rmSync(t, { recursive: true, force: true });
      if (!['EEXIST', 'ENOTEMPTY'].includes((e as NodeJS.ErrnoException).code ?? '')) throw e;
    }
    return dir;
  }

  listContainers(): { name: string; image: string; ref: string; created: string }[] {
    return readdirSync(join(this.root, 'containers'))
      .filter((n) => existsSync(join(this.root, 'containers', n, 'container.json')))
      .sort()
      .map((n) => JSON.parse(readFileSync(join(this.root, 'containers', n, 'container.json'), 'utf8')));
  }

  /**
   * Removes a kept container. A container of an image with owners holds files
   * of the map's other users, which only a process inside the map may remove.
   */
  async removeContainer(name: string): Promise<void> {
    const dir = this.containerDir(name);
    if (!existsSync(dir)) throw new ImageError(`no container ${JSON.stringify(name)}`);
    const owners = this.containerMeta(name)?.owners === true;
    const t = this.tmp('gone');
    renameSync(dir, t);
    if (owners) return ownersHelper(`removing container ${name}`, ['rm', t]);
    removeTree(t);
  }

  private containerMeta(name: string): { name: string; image: string; ref: string; created: string; owners?: boolean } | undefined {
    try {
      return JSON.parse(readFileSync(join(this.containerDir(name), 'container.json'), 'utf8'));
    } catch {
      return undefined;
    }
  }

  /**
   * The container's writable layer as a new layer in the store (not yet part
   * of any image) on top of its image's: deletions as whiteouts, replaced
   * directories as opaque ones, owners as the image sees them. The files
   * brig writes into every run (/etc/hosts, /etc/hostname) are left out.
   */
  async containerLayer(name: string): Promise<{ diffId: string; size: number; image: string }> {
    const dir = this.containerDir(name);
    const meta = this.containerMeta(name);
    if (!meta) throw new ImageError(`no container ${JSON.stringify(name)} (brig ps lists them)`);
    const layer = await this.addLayerDir(join(dir, 'upper'), new Set(['etc/hosts', 'etc/hostname', 'etc/resolv.conf']), meta.owners === true);
    return { ...layer, image: meta.image };
  }

  async commitContainer(name: string, ref: string, comment = ''): Promise<Image> {
    normalizeRef(ref);
    const { image, ...layer } = await this.containerLayer(name);
    const parent = this.get(image);
    const created = new Date().toISOString();
    const config: ImageConfig = {
      ...parent.config,
      created,
      rootfs: { type: 'layers', diff_ids: [...parent.config.rootfs.diff_ids, layer.diffId] },
      history: [...(parent.config.history ?? []), { created, created_by: `brig commit ${name}`, ...(comment ? { comment } : {}) }],
    };
    const layers = parent.manifest.layers.map((l, i) => ({ diffId: parent.config.rootfs.diff_ids[i], size: l.size, mediaType: l.mediaType, digest: l.digest }));
    return this.commitImage(ref, config, [...layers, layer]);
  }
}
