// Images as the Engine API names and shows them: lookup by name or by
// Docker's image ID (the config's digest, or a unique prefix of it), and
// the ImageSummary, ImageInspect and history shapes built from brig's store.
import { ImageError, type Image, type Store } from '../image/store.js';
import { EngineError } from './errors.js';

/** Docker's image ID: the config's digest. */
export const imageId = (img: Image): string => img.manifest.config.digest;
export const shortId = (img: Image): string => imageId(img).slice(7, 19);

const HEX_PREFIX = /^(?:sha256:)?[0-9a-f]{1,64}$/;

/**
 * An image by what a Docker client may name it: name[:tag], name@digest,
 * its ID (sha256:<config hex>) or a unique prefix of that, or brig's own
 * manifest digest. A name wins over an ID prefix, as in Docker. 404 "No
 * such image" when nothing matches; 409 when an ID prefix is ambiguous.
 */
export function findImage(store: Store, ref: string): Image {
  if (typeof ref !== 'string' || !ref) throw new EngineError(400, 'an image name or ID is required');
  if (!ref.startsWith('sha256:')) {
    try {
      return store.get(ref);
    } catch (e) {
      if (!(e instanceof ImageError)) throw e;
      if (!HEX_PREFIX.test(ref)) throw new EngineError(404, `No such image: ${ref}`);
    }
  }
  if (HEX_PREFIX.test(ref)) {
    const hex = ref.replace(/^sha256:/, '');
    const seen = new Map<string, Image>();
    for (const s of store.list(true)) {
      if (seen.has(s.digest)) continue;
      const img = store.get(s.digest);
      if (imageId(img).slice(7).startsWith(hex) || img.digest.slice(7).startsWith(hex)) seen.set(s.digest, img);
    }
    if (seen.size > 1) {
      const ids = new Set([...seen.values()].map(imageId));
      if (ids.size > 1) throw new EngineError(409, `conflict: ${ref} is ambiguous: ${ids.size} images have an ID starting with it`);
    }
    const found = [...seen.values()][0];
    if (found) return found;
  }
  throw new EngineError(404, `No such image: ${ref}`);
}

/** An ImageError as the status Docker would give it. */
export function imageStatus(e: unknown): never {
  if (e instanceof ImageError) throw new EngineError(/^no image/.test(e.message) ? 404 : 400, e.message);
  throw e;
}

const unix = (iso: string | undefined) => (iso && Number.isFinite(Date.parse(iso)) ? Math.floor(Date.parse(iso) / 1000) : 0);
const sizeOf = (img: Image) => img.manifest.layers.reduce((a, l) => a + l.size, 0);
const repoDigests = (img: Image) => [...new Set(img.refs.filter((r) => !r.includes('@')).map((r) => `${r.replace(/:[^:/]*$/, '')}@${img.digest}`))];
const repoTags = (img: Image) => img.refs.filter((r) => !r.includes('@'));

/** Every image once (several names to one image are one entry), as Docker lists them. */
export function uniqueImages(store: Store, all: boolean): Image[] {
  const byDigest = new Map<string, Image>();
  for (const s of store.list(all)) if (!byDigest.has(s.digest)) byDigest.set(s.digest, store.get(s.digest));
  return [...byDigest.values()];
}

/** GET /images/json's ImageSummary. */
export function imageSummary(img: Image, all: boolean) {
  // The build cache's names are brig's own: shown (as <none>) only with all, never as tags.
  const tags = repoTags(img).filter((r) => !r.startsWith('brig-build-cache/'));
  // Docker's dangling image: <none>:<none> and <none>@<none>, which the CLI shows as a <none> row.
  const dangling = !tags.length && all;
  return {
    Id: imageId(img),
    ParentId: '',
    RepoTags: dangling ? ['<none>:<none>'] : tags,
    RepoDigests: dangling ? ['<none>@<none>'] : repoDigests(img).filter((r) => !r.startsWith('brig-build-cache/')),
    Created: unix(img.config.created),
    Size: sizeOf(img),
    SharedSize: -1,
    VirtualSize: sizeOf(img),
    Labels: img.config.config?.Labels ?? {},
    Containers: -1,
  };
}

/** The image's config in Docker's ContainerConfig form (the fields Docker always shows, then the image's own). */
function containerConfig(img: Image) {
  const c = (img.config.config ?? {}) as Record<string, unknown>;
  return {
    Hostname: '',
    Domainname: '',
    User: '',
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
    Tty: false,
    OpenStdin: false,
    StdinOnce: false,
    Env: null,
    Cmd: null,
    Image: '',
    Volumes: null,
    WorkingDir: '',
    Entrypoint: null,
    OnBuild: null,
    Labels: null,
    ...c,
  };
}

/** GET /images/{name}/json: Docker's ImageInspect. */
export function imageInspect(img: Image) {
  const cfg = img.config as Image['config'] & { author?: string; variant?: string; comment?: string };
  const config = containerConfig(img);
  return {
    Id: imageId(img),
    RepoTags: repoTags(img).filter((r) => !r.startsWith('brig-build-cache/')),
    RepoDigests: repoDigests(img).filter((r) => !r.startsWith('brig-build-cache/')),
    Parent: '',
    Comment: cfg.comment ?? '',
    Created: cfg.created ?? '1970-01-01T00:00:00Z',
    Container: '',
    ContainerConfig: config,
    DockerVersion: '',
    Author: cfg.author ?? '',
    Config: config,
    Architecture: cfg.architecture ?? '',
    ...(cfg.variant ? { Variant: cfg.variant } : {}),
    Os: cfg.os ?? 'linux',
    Size: sizeOf(img),
    VirtualSize: sizeOf(img),
    GraphDriver: { Name: 'overlay', Data: null },
    RootFS: { Type: 'layers', Layers: cfg.rootfs?.diff_ids ?? [] },
    Metadata: { LastTagTime: '0001-01-01T00:00:00Z' },
  };
}

/** GET /images/{name}/history: newest first; the top entry carries the ID and names, the rest "<missing>" as Docker shows layers it has no image for. */
export function imageHistory(img: Image) {
  const layers = img.manifest.layers;
  const history = img.config.history?.length ? img.config.history : layers.map(() => ({}) as { created?: string; created_by?: string; comment?: string; empty_layer?: boolean });
  let layer = 0;
  const rows = history.map((h) => {
    const size = h.empty_layer ? 0 : (layers[layer++]?.size ?? 0);
    return { Id: '<missing>', Created: unix(h.created), CreatedBy: h.created_by ?? '', Tags: null as string[] | null, Size: size, Comment: h.comment ?? '' };
  });
  rows.reverse();
  if (rows.length) {
    rows[0].Id = imageId(img);
    rows[0].Tags = repoTags(img).filter((r) => !r.startsWith('brig-build-cache/'));
  }
  return rows;
}
