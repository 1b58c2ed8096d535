// Images in and out of the store as files: the OCI image layout (a
// directory, or a tar of one) and `docker save` archives. What is saved keeps
// the store's blobs byte for byte, so digests survive a round trip; what is
// loaded is verified blob by blob (a digest that does not match is an error,
// and nothing of that image is named), and its layers are unpacked and their
// diff IDs checked against the image's config.
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { unpackLayer } from './layer.js';
import { ImageError, MEDIA, normalizeRef, sha256, type ImageConfig, type ImageManifest, type Store } from './store.js';
import { TarFileWriter } from './tar.js';

export const INDEX = 'application/vnd.oci.image.index.v1+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
const REF_NAME = 'org.opencontainers.image.ref.name';
const CONTAINERD_NAME = 'io.containerd.image.name';

const hexOf = (d: string) => d.slice('sha256:'.length);

interface IndexEntry {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os?: string; architecture?: string };
  annotations?: Record<string, string>;
}

export function goArch(): string {
  return process.arch === 'x64' ? 'amd64' : process.arch;
}

// ---------------------------------------------------------------------------
// Save

/** Writes the images as an OCI image layout: a directory, or a tar if `out` ends in .tar. */
export function saveImages(store: Store, refs: string[], out: string): void {
  if (!refs.length) throw new ImageError('save: which images?');
  const images = refs.map((r) => store.get(r));
  const manifests: IndexEntry[] = [];
  const blobs = new Set<string>();
  for (const [i, img] of images.entries()) {
    const name = img.refs.includes(normalizeRef(refs[i])) ? normalizeRef(refs[i]) : img.refs[0];
    const raw = store.readBlob(img.digest);
    manifests.push({ mediaType: img.manifest.mediaType ?? MEDIA.manifest, digest: img.digest, size: raw.length, annotations: { [REF_NAME]: name, [CONTAINERD_NAME]: name } });
    blobs.add(img.digest);
    blobs.add(img.manifest.config.digest);
    for (const l of img.manifest.layers) blobs.add(l.digest);
  }
  const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests }));
  const layout = Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  for (const b of blobs) if (!existsSync(store.blobPath(b))) throw new ImageError(`save: blob ${b} is not in the store`);
  if (out.endsWith('.tar')) {
    const fd = openSync(out, 'w', 0o644);
    try {
      const tar = new TarFileWriter(fd);
      tar.addPath('oci-layout', layout);
      tar.addPath('index.json', index);
      tar.addPath('blobs');
      tar.addPath('blobs/sha256');
      for (const b of [...blobs].sort()) tar.addPath(`blobs/sha256/${hexOf(b)}`, readFileSync(store.blobPath(b)));
      tar.end();
    } finally {
      closeSync(fd);
    }
    return;
  }
  if (existsSync(out) && readdirSync(out).length) throw new ImageError(`save: ${out} exists and is not empty`);
  mkdirSync(join(out, 'blobs', 'sha256'), { recursive: true });
  writeFileSync(join(out, 'oci-layout'), layout);
  writeFileSync(join(out, 'index.json'), index);
  for (const b of blobs) copyFileSync(store.blobPath(b), join(out, 'blobs', 'sha256', hexOf(b)));
}

/**
 * Writes the images as a `docker save` archive (tar): manifest.json, each
 * config as <hex>.json, each layer as <diff ID hex>/layer.tar (uncompressed,
 * as docker load expects), and the repositories file.
 */
export function saveDockerArchive(store: Store, refs: string[], out: string): void {
  if (!refs.length) throw new ImageError('save: which images?');
  const fd = openSync(out, 'w', 0o644);
  try {
    const tar = new TarFileWriter(fd);
    const manifest: { Config: string; RepoTags: string[]; Layers: string[] }[] = [];
    const repositories: Record<string, Record<string, string>> = {};
    const written = new Set<string>();
    for (const ref of refs) {
      const img = store.get(ref);
      const name = img.refs.includes(normalizeRef(ref)) ? normalizeRef(ref) : img.refs[0];
      const configHex = hexOf(img.manifest.config.digest);
      if (!written.has(configHex)) tar.addPath(`${configHex}.json`, store.readBlob(img.manifest.config.digest));
      written.add(configHex);
      const layers: string[] = [];
      for (const diffId of img.config.rootfs.diff_ids) {
        const h = hexOf(diffId);
        layers.push(`${h}/layer.tar`);
        if (written.has(h)) continue;
        written.add(h);
        // The uncompressed layer: the blob under its diff ID, or the directory packed again.
        let data: Buffer;
        if (existsSync(store.blobPath(diffId))) data = store.readBlob(diffId);
        else throw new ImageError(`save: layer ${diffId} has no uncompressed blob in the store`);
        tar.addPath(`${h}/`);
        tar.addPath(`${h}/layer.tar`, data);
      }
      manifest.push({ Config: `${configHex}.json`, RepoTags: name ? [name] : [], Layers: layers });
      if (name) {
        const colon = name.lastIndexOf(':');
        (repositories[name.slice(0, colon)] ??= {})[name.slice(colon + 1)] = hexOf(img.config.rootfs.diff_ids[img.config.rootfs.diff_ids.length - 1]);
      }
    }
    tar.addPath('manifest.json', Buffer.from(JSON.stringify(manifest)));
    tar.addPath('repositories', Buffer.from(JSON.stringify(repositories)));
    tar.end();
  } finally {
    closeSync(fd);
  }
}

// ---------------------------------------------------------------------------
// Load

/** A loaded archive's files: read by path. */
interface Source {
  read(path: string): Buffer;
  has(path: string): boolean;
}

function dirSource(dir: string): Source {
  const safe = (p: string) => {
    if (p.startsWith('/') || p.split('/').includes('..')) throw new ImageError(`load: ${JSON.stringify(p)} points outside the archive`);
    return join(dir, p);
  };
  return { read: (p) => readFileSync(safe(p)), has: (p) => existsSync(safe(p)) };
}

function blob(src: Source, digest: string, what: string): Buffer {
  if (!/^sha256:[0-9a-f]{64}$/.test(digest)) throw new ImageError(`load: ${what} has an unsupported digest ${JSON.stringify(digest)}`);
  const p = `blobs/sha256/${hexOf(digest)}`;
  if (!src.has(p)) throw new ImageError(`load: ${what} ${digest} is missing from the archive`);
  const data = src.read(p);
  if (sha256(data) !== digest) throw new ImageError(`load: ${what} ${digest} does not match its digest (corrupt archive)`);
  return data;
}

/** What is wrong with a layer's media type (not a tarball), or undefined. */
export function layerTypeProblem(mediaType: string, what: string): string | undefined {
  return /tar/.test(mediaType) ? undefined : `${what} has media type ${mediaType}, not a layer tarball`;
}

/** Picks this machine's platform from an image index. */
function pick(entries: IndexEntry[], what: string): IndexEntry {
  const images = entries.filter((e) => e.mediaType !== INDEX && e.mediaType !== DOCKER_LIST);
  const mine = images.filter((e) => !e.platform || (e.platform.os === 'linux' && e.platform.architecture === goArch()));
  if (!mine.length) throw new ImageError(`load: ${what} has no image for linux/${goArch()}`);
  return mine[0];
}

interface Loaded {
  name?: string;
  manifestDigest: string;
}

async function storeImage(store: Store, src: Source, manifestDigest: string, work: string): Promise<void> {
  const manifestRaw = blob(src, manifestDigest, 'manifest');
  const manifest = JSON.parse(manifestRaw.toString()) as ImageManifest;
  if (manifest.schemaVersion !== 2 || !manifest.config || !Array.isArray(manifest.layers)) throw new ImageError(`load: manifest ${manifestDigest} is not an image manifest`);
  const configRaw = blob(src, manifest.config.digest, 'config');
  const config = JSON.parse(configRaw.toString()) as ImageConfig;
  const diffIds = config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== manifest.layers.length) throw new ImageError(`load: ${manifestDigest}: ${manifest.layers.length} layers but ${diffIds.length} diff IDs in its config`);
  for (const [i, l] of manifest.layers.entries()) {
    const problem = layerTypeProblem(l.mediaType, `layer ${i}`);
    if (problem) throw new ImageError(`load: ${problem}`);
    const data = blob(src, l.digest, `layer ${i}`);
    const tmpTar = join(work, `layer-${i}`);
    writeFileSync(tmpTar, data);
    const r = await store.addLayerTar(tmpTar);
    rmSync(tmpTar, { force: true });
    if (r.diffId !== diffIds[i]) throw new ImageError(`load: layer ${i} unpacks to ${r.diffId}, but the config says ${diffIds[i]}`);
    if (l.digest !== r.diffId) store.putBlob(data); // the compressed form, as the manifest names it
  }
  store.putBlob(configRaw);
  store.putBlob(manifestRaw);
}

async function loadOci(store: Store, src: Source, work: string): Promise<Loaded[]> {
  const index = JSON.parse(src.read('index.json').toString()) as { manifests: IndexEntry[] };
  const out: Loaded[] = [];
  for (const e of index.manifests ?? []) {
    let entry = e;
    if (e.mediaType === INDEX || e.mediaType === DOCKER_LIST) {
      const nested = JSON.parse(blob(src, e.digest, 'image index').toString()) as { manifests: IndexEntry[] };
      entry = { ...pick(nested.manifests, e.digest), annotations: e.annotations };
    }
    if (entry.mediaType !== MEDIA.manifest && entry.mediaType !== DOCKER_MANIFEST) throw new ImageError(`load: unsupported manifest type ${entry.mediaType}`);
    await storeImage(store, src, entry.digest, work);
    const a = entry.annotations ?? {};
    out.push({ name: a[CONTAINERD_NAME] ?? a[REF_NAME], manifestDigest: entry.digest });
  }
  return out;
}

/** `docker save`: manifest.json naming a config file and layer tars per image. */
async function loadDocker(store: Store, src: Source, work: string): Promise<Loaded[]> {
  const list = JSON.parse(src.read('manifest.json').toString()) as { Config: string; RepoTags?: string[] | null; Layers: string[] }[];
  const out: Loaded[] = [];
  for (const m of list) {
    const configRaw = src.read(m.Config);
    const config = JSON.parse(configRaw.toString()) as ImageConfig;
    const diffIds = config.rootfs?.diff_ids ?? [];
    if (diffIds.length !== m.Layers.length) throw new ImageError(`load: ${m.Config}: ${m.Layers.length} layers but ${diffIds.length} diff IDs`);
    const layers: { diffId: string; size: number }[] = [];
    for (const [i, l] of m.Layers.entries()) {
      const tmpTar = join(work, `dlayer-${i}`);
      writeFileSync(tmpTar, src.read(l));
      const r = await store.addLayerTar(tmpTar);
      rmSync(tmpTar, { force: true });
      if (r.diffId !== diffIds[i]) throw new ImageError(`load: layer ${l} unpacks to ${r.diffId}, but the config says ${diffIds[i]}`);
      layers.push(r);
    }
    const configDigest = store.putBlob(configRaw);
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: MEDIA.manifest,
      config: { mediaType: MEDIA.config, digest: configDigest, size: configRaw.length },
      layers: layers.map((l) => ({ mediaType: MEDIA.layer, digest: l.diffId, size: l.size })),
    };
    const manifestDigest = store.putBlob(Buffer.from(JSON.stringify(manifest)));
    for (const tag of m.RepoTags?.length ? m.RepoTags : [undefined]) out.push({ name: tag, manifestDigest });
  }
  return out;
}

/**
 * Loads an OCI image layout or a `docker save` archive (a directory, or a
 * tar of one, plain or gzip) into the store, and names what it loaded: by the
 * names in the archive, or `name` (NAME:TAG) when given or when the archive
 * has none. Returns the names.
 */
export async function loadImages(store: Store, input: string, name?: string): Promise<string[]> {
  const work = join(store.root, 'tmp', `load-${process.pid}-${Date.now()}`);
  mkdirSync(work, { recursive: true, mode: 0o700 });
  try {
    let dir = input;
    if (!statSync(input).isDirectory()) {
      dir = join(work, 'archive');
      await unpackLayer(input, dir);
    }
    const src = dirSource(dir);
    let loaded: Loaded[];
    if (src.has('oci-layout') && src.has('index.json')) loaded = await loadOci(store, src, work);
    else if (src.has('manifest.json')) loaded = await loadDocker(store, src, work);
    else throw new ImageError(`load: ${input} is neither an OCI image layout nor a docker save archive`);
    const names: string[] = [];
    for (const l of loaded) {
      let ref = name ?? l.name;
      if (ref && !ref.includes(':') && !ref.includes('/') && !name) ref = `${basename(input).replace(/\.(tar|tgz|tar\.gz)$/, '').toLowerCase()}:${ref}`;
      if (!ref) throw new ImageError(`load: ${input} does not name its image; give one (-t NAME:TAG)`);
      names.push(store.name(ref, l.manifestDigest));
    }
    return names;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
