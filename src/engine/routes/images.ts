// Images: list, pull (create), inspect, history, tag, remove, save (get),
// load, build, push, prune, commit; search answers that brig has none.
// Names in paths may hold slashes (127.0.0.1:5000/org/app), so the
// per-image routes take the rest of the path and split off the action.
import { createReadStream, existsSync, rmSync, statSync } from 'node:fs';
import { arch } from 'node:os';
import { relative, resolve, sep } from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { loadImages, saveDockerArchive } from '../../image/archive.js';
import { build } from '../../image/build.js';
import { parseRemoteRef, pull, push, RegistryError, storeName, type LayerProgress } from '../../image/registry.js';
import { BUILD_CACHE_PREFIX, ImageError, normalizeRef, Store, type Image } from '../../image/store.js';
import { ContainerError, getContainer, listContainers } from '../../container/index.js';
import { globMatch } from '../../cli/format.js';
import { labelsMatch, parseDockerFilters, queryFlag, queryList, queryOne, queryStringMap } from '../docker-filters.js';
import { EngineError } from '../errors.js';
import { findImage, imageHistory, imageId, imageInspect, imageStatus, imageSummary, shortId, uniqueImages } from '../image-shapes.js';
import { oneLine, ProgressStream } from '../progress-stream.js';
import { registryAuthHeader, registryOptions } from '../registry-auth.js';
import { acceptTarBodies, saveBody, tempDir, unpackContext } from '../tar-body.js';

type Query = Record<string, unknown>;

/** Where images built or committed without a name are kept: hidden like the build cache, found by their ID. */
const untaggedName = () => `${BUILD_CACHE_PREFIX}untagged:${Date.now().toString(36)}${process.hrtime.bigint().toString(36).slice(-6)}`;

const repoOf = (ref: string) => ref.replace(/:[^:/]*$/, '');
const tagOf = (ref: string) => (/:[^:/]*$/.exec(ref)?.[0] ?? ':latest').slice(1);

/** The path's image name (everything before the action), decoded. */
function nameIn(req: FastifyRequest, action: string | undefined): string {
  const raw = (req.params as { '*': string })['*'] ?? '';
  const path = action ? raw.slice(0, -(action.length + 1)) : raw;
  try {
    return decodeURIComponent(path);
  } catch {
    throw new EngineError(400, `image name: invalid escape in ${JSON.stringify(path)}`);
  }
}

/** A registry failure as Docker reports it: 404 for what is not there or not readable, else 500. */
function registryStatus(e: unknown): number {
  if (e instanceof EngineError) return e.status;
  if (e instanceof RegistryError) return /HTTP 404|MANIFEST_UNKNOWN|NAME_UNKNOWN|unauthorized|HTTP 401|HTTP 403/i.test(e.message) ? 404 : /an image reference|a digest is|a tag is|repository name/.test(e.message) ? 400 : 500;
  if (e instanceof ImageError) return /^no image/.test(e.message) ? 404 : 400;
  return 500;
}

/** Containers whose image is `img` (running ones first matter: those refuse removal even forced). */
function containersOf(store: Store, img: Image) {
  return listContainers({ all: true }).filter((c) => {
    try {
      return findImage(store, c.Config.Image).digest === img.digest;
    } catch {
      return false;
    }
  });
}

/**
 * Removes names of an image, Docker's way: one name is untagged while others
 * remain; the last name (or the image by ID, or forced) takes the image,
 * unless a container uses it (409; a running one even when forced).
 */
async function removeImage(store: Store, ref: string, force: boolean): Promise<{ Untagged?: string; Deleted?: string }[]> {
  const img = findImage(store, ref);
  const names = img.refs;
  let byName: string | undefined;
  try {
    byName = names.includes(normalizeRef(ref)) ? normalizeRef(ref) : undefined;
  } catch {
    byName = undefined;
  }
  const visible = names.filter((n) => !n.startsWith(BUILD_CACHE_PREFIX));
  if (!byName && visible.length > 1 && !force) throw new EngineError(409, `conflict: unable to delete ${shortId(img)} (must be forced) - image is referenced in multiple repositories`);
  const toRemove = byName && names.length > 1 ? [byName] : names;
  const lastName = toRemove.length === names.length;
  if (lastName) {
    const users = containersOf(store, img);
    const running = users.find((c) => c.State.Running || c.State.Paused || c.State.Restarting);
    if (running) throw new EngineError(409, `conflict: unable to delete ${byName ?? shortId(img)} (cannot be forced) - image is being used by running container ${running.Id.slice(0, 12)}`);
    if (users.length && !force) throw new EngineError(409, `conflict: unable to remove repository reference "${ref}" (must force) - container ${users[0].Id.slice(0, 12)} is using its referenced image ${shortId(img)}`);
  }
  const out: { Untagged?: string; Deleted?: string }[] = [];
  for (const n of toRemove) {
    await store.remove(n);
    if (!n.startsWith(BUILD_CACHE_PREFIX)) out.push({ Untagged: n });
  }
  if (lastName) out.push({ Deleted: imageId(img) });
  return out;
}

/** Docker's pull progress lines for one layer's state. */
function pullLine(p: LayerProgress): object {
  const id = p.digest.slice(7, 19);
  switch (p.state) {
    case 'waiting':
      return { status: 'Waiting', progressDetail: {}, id };
    case 'downloading': {
      const width = 50;
      const filled = p.total ? Math.min(width, Math.round((p.bytes / p.total) * width)) : 0;
      const bar = `[${'='.repeat(Math.max(0, filled - 1))}${filled ? '>' : ''}${' '.repeat(width - filled)}]`;
      return { status: 'Downloading', progressDetail: { current: p.bytes, total: p.total }, progress: `${bar} ${p.bytes}B/${p.total}B`, id };
    }
    case 'verifying':
      return { status: 'Verifying Checksum', progressDetail: {}, id };
    case 'unpacking':
      return { status: 'Extracting', progressDetail: {}, id };
    case 'done':
      return { status: 'Pull complete', progressDetail: {}, id };
    case 'exists':
      return { status: 'Already exists', progressDetail: {}, id };
  }
}

async function pullRoute(req: FastifyRequest, reply: FastifyReply) {
  const q = req.query as Query;
  if (queryOne(q.fromSrc) !== undefined) throw new EngineError(501, 'fromSrc: importing a tarball (docker import) is not supported by brig\'s Engine API; use brig import-rootfs');
  const fromImage = queryOne(q.fromImage);
  if (!fromImage) throw new EngineError(400, 'fromImage: the image to pull is required');
  const tag = queryOne(q.tag);
  let ref = fromImage;
  if (tag && !fromImage.includes('@')) ref = tag.startsWith('sha256:') ? `${repoOf(fromImage)}@${tag}` : `${fromImage.lastIndexOf(':') > fromImage.lastIndexOf('/') ? repoOf(fromImage) : fromImage}:${tag}`;
  const platform = queryOne(q.platform);
  const credentials = registryAuthHeader(req.headers['x-registry-auth']);
  let remote;
  try {
    remote = parseRemoteRef(ref);
  } catch (e) {
    throw new EngineError(400, oneLine(e));
  }
  const store = new Store();
  const name = storeName(remote);
  let before: string | undefined;
  try {
    before = store.get(name).digest;
  } catch {
    before = undefined;
  }
  const out = new ProgressStream(reply);
  const announce = () => {
    if (!out.started) out.write({ status: `Pulling from ${remote.repository}`, id: remote.tag ?? remote.digest });
  };
  const last = new Map<number, { state: string; at: number }>();
  try {
    const r = await pull(ref, {
      ...registryOptions(remote.registry, credentials),
      store,
      platform: platform || undefined,
      onProgress: (p) => {
        announce();
        const prev = last.get(p.index);
        const now = Date.now();
        // Every change of state; bytes at most five times a second a layer.
        if (prev?.state === p.state && p.state === 'downloading' && now - prev.at < 200) return;
        if (!prev) out.write({ status: 'Pulling fs layer', progressDetail: {}, id: p.digest.slice(7, 19) });
        if (prev?.state === 'downloading' && p.state !== 'downloading') out.write({ status: 'Download complete', progressDetail: {}, id: p.digest.slice(7, 19) });
        last.set(p.index, { state: p.state, at: now });
        out.write(pullLine(p));
      },
    });
    announce();
    out.write({ status: `Digest: ${r.digest}` });
    out.write({ status: `Status: ${before === r.digest ? 'Image is up to date' : 'Downloaded newer image'} for ${r.ref}` });
    return out.end();
  } catch (e) {
    if (e instanceof RegistryError && registryStatus(e) === 404 && !out.started) throw new EngineError(404, `pull access denied for ${repoOf(name)}, repository does not exist or may require 'docker login': ${oneLine(e)}`);
    return out.fail(e, registryStatus(e));
  }
}

async function pushRoute(req: FastifyRequest, reply: FastifyReply) {
  const name = nameIn(req, 'push');
  const tag = queryOne((req.query as Query).tag);
  const credentials = registryAuthHeader(req.headers['x-registry-auth']);
  const store = new Store();
  let repo: string;
  try {
    repo = repoOf(normalizeRef(name));
  } catch (e) {
    throw new EngineError(400, oneLine(e));
  }
  // A tag given: that one; else every tag of the repository, as Docker pushes them.
  const refs = tag ? [`${repo}:${tag}`] : store.list().map((s) => s.ref).filter((r) => repoOf(r) === repo && !r.includes('@'));
  for (const r of refs) {
    try {
      store.get(r);
    } catch {
      throw new EngineError(404, `An image does not exist locally with the tag: ${tag ? r : repo}`);
    }
  }
  if (!refs.length) throw new EngineError(404, `An image does not exist locally with the tag: ${repo}`);
  let remote;
  try {
    remote = parseRemoteRef(refs[0]);
  } catch (e) {
    throw new EngineError(400, oneLine(e));
  }
  const out = new ProgressStream(reply);
  out.write({ status: `The push refers to repository [${remote.registry}/${remote.repository}]` });
  try {
    for (const ref of refs) {
      const img = store.get(ref);
      const configDigest = img.manifest.config.digest;
      for (const l of img.manifest.layers) out.write({ status: 'Preparing', progressDetail: {}, id: l.digest.slice(7, 19) });
      let lastAt = 0;
      const r = await push(ref, ref, {
        ...registryOptions(remote.registry, credentials),
        store,
        onProgress: (e) => {
          if (e.digest === configDigest) return;
          const id = e.digest.slice(7, 19);
          if (e.state === 'uploading') {
            if (Date.now() - lastAt < 200) return;
            lastAt = Date.now();
            out.write({ status: 'Pushing', progressDetail: { current: e.bytes, total: e.total }, id });
          } else out.write({ status: e.state === 'exists' ? 'Layer already exists' : 'Pushed', progressDetail: {}, id });
        },
      });
      const size = store.readBlob(img.digest).length;
      out.write({ status: `${tagOf(ref)}: digest: ${r.digest} size: ${size}` });
      out.write({ progressDetail: {}, aux: { Tag: tagOf(ref), Digest: r.digest, Size: size } });
    }
    return out.end();
  } catch (e) {
    return out.fail(e, registryStatus(e));
  }
}

async function buildRoute(req: FastifyRequest, reply: FastifyReply) {
  const q = req.query as Query;
  if (queryOne(q.remote)) throw new EngineError(400, 'remote: builds from a URL or git repository are not supported by brig; send the context as a tar');
  if (queryOne(q.version) === '2') throw new EngineError(400, 'version 2 (BuildKit) is not supported by brig: it answers the classic builder API (DOCKER_BUILDKIT=0)');
  const dockerfile = queryOne(q.dockerfile) ?? 'Dockerfile';
  const tags = queryList(q.t);
  for (const t of tags) {
    try {
      normalizeRef(t);
    } catch (e) {
      throw new EngineError(400, `t: ${oneLine(e)}`);
    }
  }
  const buildArgs = queryStringMap('buildargs', q.buildargs);
  const labels = queryStringMap('labels', q.labels);
  const network = queryOne(q.networkmode) ?? 'default';
  if (!['default', 'bridge', 'none', 'loopback'].includes(network)) throw new EngineError(400, `networkmode: brig builds with RUN's network none (default) or loopback, not ${JSON.stringify(network)}`);
  const platform = queryOne(q.platform);
  const here = `linux/${arch() === 'x64' ? 'amd64' : arch()}`;
  if (platform && platform !== here && platform !== 'linux') throw new EngineError(400, `platform: brig builds for ${here} here, not ${JSON.stringify(platform)}`);
  const quiet = queryFlag(q.q);
  const store = new Store();
  const tmp = tempDir(store, 'engine-build');
  try {
    const tar = `${tmp.dir}/context.tar`;
    const context = `${tmp.dir}/context`;
    await saveBody(req.body, tar, 'build context');
    await unpackContext(tar, context);
    rmSync(tar, { force: true });
    const file = resolve(context, dockerfile);
    if (file !== context && !file.startsWith(context + sep)) throw new EngineError(400, `dockerfile: ${JSON.stringify(dockerfile)} is outside the build context`);
    if (!existsSync(file) || !statSync(file).isFile()) throw new EngineError(500, `Cannot locate specified Dockerfile: ${dockerfile}`);
    // brig's build names the Dockerfile by its path from the working directory: the client knows it by its own name.
    const label = relative(process.cwd(), file) || file;
    const clean = (s: string) => s.split(label).join(dockerfile).split(context + sep).join('');
    const out = new ProgressStream(reply);
    try {
      const img = await build(store, {
        context,
        file,
        tag: tags[0] ?? untaggedName(),
        buildArgs,
        labels,
        target: queryOne(q.target),
        network: network === 'loopback' ? 'loopback' : 'none',
        noCache: queryFlag(q.nocache),
        onProgress: quiet ? undefined : (t) => out.write({ stream: clean(t) }),
      });
      out.write({ aux: { ID: imageId(img) } });
      if (quiet) out.write({ stream: `${imageId(img)}\n` });
      else out.write({ stream: `Successfully built ${shortId(img)}\n` });
      for (const t of tags.slice(1)) {
        const n = store.tag(img.digest, t);
        if (!quiet) out.write({ stream: `Successfully tagged ${n}\n` });
      }
      return out.end();
    } catch (e) {
      return out.fail(new Error(clean(oneLine(e))), e instanceof ImageError ? 400 : 500);
    }
  } finally {
    tmp.remove();
  }
}

async function saveRoute(store: Store, names: string[], reply: FastifyReply) {
  if (!names.length) throw new EngineError(400, 'names: which images?');
  // Each as the store knows it: its name when named so, else its manifest digest.
  const refs = names.map((n) => {
    const img = findImage(store, n);
    try {
      if (img.refs.includes(normalizeRef(n))) return normalizeRef(n);
    } catch {
      // an ID
    }
    return img.refs.find((r) => !r.startsWith(BUILD_CACHE_PREFIX)) ?? img.digest;
  });
  const tmp = tempDir(store, 'engine-save');
  const file = `${tmp.dir}/images.tar`;
  try {
    saveDockerArchive(store, refs, file);
  } catch (e) {
    tmp.remove();
    imageStatus(e);
  }
  const body = createReadStream(file);
  body.on('close', tmp.remove);
  return reply.header('content-type', 'application/x-tar').send(body);
}

async function loadRoute(req: FastifyRequest, reply: FastifyReply) {
  const store = new Store();
  const tmp = tempDir(store, 'engine-load');
  const out = new ProgressStream(reply);
  try {
    const file = `${tmp.dir}/images.tar`;
    await saveBody(req.body, file, 'load');
    const names = await loadImages(store, file);
    for (const n of names) out.write({ stream: `Loaded image: ${n}\n` });
    return out.end();
  } catch (e) {
    return out.fail(e, e instanceof ImageError || e instanceof EngineError ? 400 : (e as Error)?.name === 'TarError' ? 400 : 500);
  } finally {
    tmp.remove();
  }
}

async function commitRoute(req: FastifyRequest, reply: FastifyReply) {
  const q = req.query as Query;
  const container = queryOne(q.container);
  if (!container) throw new EngineError(400, 'container: which container to commit?');
  if (queryList(q.changes).length) throw new EngineError(400, 'changes: applying Dockerfile instructions on commit is not supported by brig');
  const repo = queryOne(q.repo);
  const tag = queryOne(q.tag);
  let layerName: string;
  try {
    const r = getContainer(container).inspect();
    if (!r.Options.container) throw new EngineError(409, `container ${r.Name} is not from an image: it has no writable layer to commit`);
    layerName = r.Options.container;
  } catch (e) {
    if (e instanceof ContainerError && /^No such container/.test(e.message)) throw new EngineError(404, e.message);
    throw e;
  }
  const store = new Store();
  let ref: string;
  try {
    ref = repo ? normalizeRef(`${repo}:${tag || 'latest'}`) : untaggedName();
  } catch (e) {
    throw new EngineError(400, oneLine(e));
  }
  try {
    const img = await store.commitContainer(layerName, ref, queryOne(q.comment) ?? '');
    return reply.code(201).send({ Id: imageId(img) });
  } catch (e) {
    return imageStatus(e);
  }
}

async function pruneRoute(req: FastifyRequest) {
  const f = parseDockerFilters((req.query as Query).filters, ['dangling', 'label', 'label!', 'until']);
  const dangling = (f.get('dangling') ?? ['true']).some((v) => v === 'true' || v === '1');
  const until = f.get('until')?.[0];
  const cutoff = until === undefined ? Infinity : /^\d+$/.test(until) ? Number(until) * 1000 : Date.parse(until);
  if (until !== undefined && !Number.isFinite(cutoff)) throw new EngineError(400, `until: expected a Unix time or a date, got ${JSON.stringify(until)}`);
  const store = new Store();
  const deleted: { Untagged?: string; Deleted?: string }[] = [];
  let reclaimed = 0;
  for (const img of uniqueImages(store, true)) {
    const visible = img.refs.filter((r) => !r.startsWith(BUILD_CACHE_PREFIX));
    // Dangling: brig's cached build steps and unnamed images; with dangling=false, every image no container uses.
    if (dangling && visible.length) continue;
    if (Date.parse(img.config.created ?? '') >= cutoff) continue;
    if (!labelsMatch(img.config.config?.Labels, f.get('label'))) continue;
    if (f.get('label!')?.length && !f.get('label!')!.every((l) => !labelsMatch(img.config.config?.Labels, [l]))) continue;
    if (containersOf(store, img).length) continue;
    for (const n of img.refs) {
      await store.remove(n);
      if (!n.startsWith(BUILD_CACHE_PREFIX)) deleted.push({ Untagged: n });
    }
    deleted.push({ Deleted: imageId(img) });
    reclaimed += img.manifest.layers.reduce((a, l) => a + l.size, 0);
  }
  return { ImagesDeleted: deleted.length ? deleted : null, SpaceReclaimed: reclaimed };
}

function listRoute(req: FastifyRequest) {
  const q = req.query as Query;
  const all = queryFlag(q.all);
  const f = parseDockerFilters(q.filters, ['reference', 'dangling', 'label', 'before', 'since']);
  const store = new Store();
  const refPatterns = f.get('reference') ?? [];
  const byRef = (k: string) => {
    const v = f.get(k)?.[0];
    return v === undefined ? undefined : Date.parse(findImage(store, v).config.created ?? '') || 0;
  };
  const before = byRef('before');
  const since = byRef('since');
  const dangling = f.get('dangling')?.[0];
  const out = [];
  for (const img of uniqueImages(store, all || dangling === 'true')) {
    const s = imageSummary(img, true);
    const created = Date.parse(img.config.created ?? '') || 0;
    if (before !== undefined && created >= before) continue;
    if (since !== undefined && created <= since) continue;
    if (!labelsMatch(img.config.config?.Labels, f.get('label'))) continue;
    const isDangling = s.RepoTags[0] === '<none>:<none>';
    if (dangling !== undefined && (dangling === 'true' || dangling === '1') !== isDangling) continue;
    if (refPatterns.length) {
      // Docker keeps only the names that match: `docker images busybox` shows busybox's rows alone.
      s.RepoTags = s.RepoTags.filter((t) => refPatterns.some((p) => globMatch(p, t) || globMatch(p, repoOf(t)) || globMatch(p.includes(':') || p.includes('@') ? p : `${p}:*`, t)));
      if (!s.RepoTags.length) continue;
      s.RepoDigests = s.RepoDigests.filter((d) => s.RepoTags.some((t) => d.startsWith(`${repoOf(t)}@`)));
    }
    if (isDangling && !all && dangling === undefined) continue;
    out.push(s);
  }
  return out.sort((a, b) => b.Created - a.Created);
}

export default async function imageRoutes(app: FastifyInstance): Promise<void> {
  acceptTarBodies(app);

  app.get('/images/json', async (req) => listRoute(req));
  app.post('/images/create', pullRoute);
  app.get('/images/search', async () => {
    throw new EngineError(501, 'image search is not supported by brig: it keeps no index of registries (search on the registry\'s own site)');
  });
  app.post('/images/prune', pruneRoute);
  app.post('/images/load', loadRoute);
  app.get('/images/get', async (req, reply) => saveRoute(new Store(), queryList((req.query as Query).names), reply));
  app.post('/build', buildRoute);
  app.post('/build/prune', async () => {
    const store = new Store();
    const caches = store.list(true).filter((s) => s.ref.startsWith(BUILD_CACHE_PREFIX) && !s.ref.startsWith(`${BUILD_CACHE_PREFIX}untagged:`));
    const ids = [...new Set(caches.map((c) => c.digest))];
    for (const c of caches) await store.remove(c.ref);
    return { CachesDeleted: ids, SpaceReclaimed: 0 };
  });
  app.post('/commit', commitRoute);

  app.get('/images/*', async (req, reply) => {
    const rest = (req.params as { '*': string })['*'] ?? '';
    const action = /\/(json|history|get)$/.exec(rest)?.[1];
    if (!action) throw new EngineError(404, `page not found: GET /images/${rest}`);
    const store = new Store();
    const name = nameIn(req, action);
    if (action === 'get') return saveRoute(store, [name], reply);
    const img = findImage(store, name);
    return action === 'json' ? imageInspect(img) : imageHistory(img);
  });

  app.post('/images/*', async (req, reply) => {
    const rest = (req.params as { '*': string })['*'] ?? '';
    const action = /\/(tag|push)$/.exec(rest)?.[1];
    if (action === 'push') return pushRoute(req, reply);
    if (action !== 'tag') throw new EngineError(404, `page not found: POST /images/${rest}`);
    const q = req.query as Query;
    const repo = queryOne(q.repo);
    if (!repo) throw new EngineError(400, 'repo: the name to give the image is required');
    const store = new Store();
    const img = findImage(store, nameIn(req, 'tag'));
    try {
      store.tag(img.digest, `${repo}:${queryOne(q.tag) || 'latest'}`);
    } catch (e) {
      imageStatus(e);
    }
    return reply.code(201).send();
  });

  app.delete('/images/*', async (req) => {
    const q = req.query as Query;
    return removeImage(new Store(), nameIn(req, undefined), queryFlag(q.force));
  });
}
