// Images to and from registries over the OCI distribution API (v2): Docker
// Hub, GHCR, a company's own. Pull fetches the manifest (an image index is
// narrowed to this platform), the config and each layer, verifies every blob
// against its digest before anything enters the store, and stores the
// manifest byte for byte so the image keeps the registry's digest. Push sends
// the store's blobs (skipping what the registry has) and then the manifest.
// Auth follows the registry's challenge: basic, or a bearer token from the
// realm it names, with the credentials of `brig login` or Docker's
// config.json.
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, existsSync, mkdirSync, openSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { BrigError } from '../errors.js';
import { DOCKER_LIST, DOCKER_MANIFEST, goArch, INDEX, layerTypeProblem } from './archive.js';
import { DIGEST, MEDIA, normalizeRef, REPOSITORY, sha256, Store, TAG, type Descriptor, type ImageConfig, type ImageManifest } from './store.js';

export class RegistryError extends BrigError {
  override name = 'RegistryError';
}

const DOCKER_CONFIG_MEDIA = 'application/vnd.docker.container.image.v1+json';
const MANIFEST_ACCEPT = [MEDIA.manifest, DOCKER_MANIFEST, INDEX, DOCKER_LIST].join(', ');

// ---------------------------------------------------------------------------
// References

/** Where an image lives: registry host, repository, and a tag or a digest. */
export interface RemoteRef {
  /** Host[:port], e.g. docker.io, ghcr.io, localhost:5000. */
  registry: string;
  /** e.g. library/busybox, org/app. */
  repository: string;
  tag?: string;
  digest?: string;
}

/**
 * Docker's rules: the first component is a registry if it has a dot or a
 * port or is localhost, else the image is on Docker Hub, where one-word
 * names are under library/. The tag defaults to latest unless a digest is given.
 */
export function parseRemoteRef(ref: string): RemoteRef {
  if (typeof ref !== 'string' || !ref || /\s|\0/.test(ref)) throw new RegistryError(`${JSON.stringify(ref)}: an image reference is [registry/]name[:tag][@digest]`);
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw new RegistryError(`${JSON.stringify(ref)}: a digest is sha256: and 64 hex digits`);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  const slash = rest.indexOf('/');
  const first = slash < 0 ? '' : rest.slice(0, slash);
  let registry = 'docker.io';
  let repository = rest;
  if (first && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    registry = first;
    repository = rest.slice(slash + 1);
  }
  if (registry === 'index.docker.io') registry = 'docker.io';
  if (registry === 'docker.io' && !repository.includes('/')) repository = `library/${repository}`;
  if (!REPOSITORY.test(repository)) throw new RegistryError(`${JSON.stringify(ref)}: a repository name is lowercase letters, digits and . _ - /`);
  if (tag !== undefined && !TAG.test(tag)) throw new RegistryError(`${JSON.stringify(ref)}: a tag is letters, digits, _ . - (up to 128)`);
  if (tag === undefined && digest === undefined) tag = 'latest';
  return { registry, repository, tag, digest };
}

/** The name the store gives a pulled image: Docker Hub's short form, others with their registry. */
export function storeName(r: RemoteRef): string {
  const name = r.registry === 'docker.io' ? r.repository.replace(/^library\//, '') : `${r.registry}/${r.repository}`;
  return r.digest && !r.tag ? normalizeRef(`${name}@${r.digest}`) : normalizeRef(`${name}:${r.tag}`);
}

// ---------------------------------------------------------------------------
// Credentials

export interface Credentials {
  username: string;
  password: string;
}

/** brig's own credential file: $BRIG_AUTH_FILE, else ~/.config/brig/auth.json (0600). */
export function authFile(): string {
  if (process.env.BRIG_AUTH_FILE && isAbsolute(process.env.BRIG_AUTH_FILE)) return process.env.BRIG_AUTH_FILE;
  const config = process.env.XDG_CONFIG_HOME && isAbsolute(process.env.XDG_CONFIG_HOME) ? process.env.XDG_CONFIG_HOME : join(homedir(), '.config');
  return join(config, 'brig', 'auth.json');
}

function dockerConfigFile(): string {
  return join(process.env.DOCKER_CONFIG && isAbsolute(process.env.DOCKER_CONFIG) ? process.env.DOCKER_CONFIG : join(homedir(), '.docker'), 'config.json');
}

/** Docker names Docker Hub by its v1 URL in config.json. */
const authKeys = (registry: string) => (registry === 'docker.io' ? ['https://index.docker.io/v1/', 'index.docker.io', 'docker.io', 'registry-1.docker.io'] : [registry, `https://${registry}`, `http://${registry}`]);

function readAuths(file: string): Record<string, { auth?: string; username?: string; password?: string }> {
  try {
    const j = JSON.parse(readFileSync(file, 'utf8')) as { auths?: Record<string, { auth?: string }> };
    return j.auths && typeof j.auths === 'object' ? j.auths : {};
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new RegistryError(`${file}: cannot read it: ${(e as Error).message}`);
  }
}

/** The credentials for `registry`: brig's file first, then Docker's config.json. */
export function credentialsFor(registry: string): Credentials | undefined {
  for (const file of [authFile(), dockerConfigFile()]) {
    const auths = readAuths(file);
    for (const k of authKeys(registry)) {
      const a = auths[k];
      if (!a) continue;
      if (a.username && a.password) return { username: a.username, password: a.password };
      if (a.auth) {
        const plain = Buffer.from(a.auth, 'base64').toString();
        const colon = plain.indexOf(':');
        if (colon > 0) return { username: plain.slice(0, colon), password: plain.slice(colon + 1) };
      }
    }
  }
  return undefined;
}

/** Stores credentials for `registry` in brig's file, readable by the user alone. */
export function saveCredentials(registry: string, c: Credentials): string {
  const file = authFile();
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const auths = readAuths(file);
  auths[authKeys(registry)[0]] = { auth: Buffer.from(`${c.username}:${c.password}`).toString('base64') };
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify({ auths }, null, 2) + '\n', { mode: 0o600 });
  renameSync(tmp, file);
  return file;
}

export function removeCredentials(registry: string): boolean {
  const file = authFile();
  const auths = readAuths(file);
  let removed = false;
  for (const k of authKeys(registry)) if (k in auths) removed = delete auths[k];
  if (removed) writeFileSync(file, JSON.stringify({ auths }, null, 2) + '\n', { mode: 0o600 });
  return removed;
}

// ---------------------------------------------------------------------------
// The HTTP side

export interface RegistryOptions {
  /** Speak plain HTTP to these registries (host[:port]), or to any when true: for loopback test registries. */
  insecure?: boolean | string[];
  /** Credentials instead of the stored ones. */
  credentials?: Credentials;
}

/** Parses `Bearer realm="...",service="...",scope="..."` (or Basic). */
function parseChallenge(h: string): { scheme: string; params: Record<string, string> } {
  const m = /^(\w+)\s*(.*)$/s.exec(h.trim());
  const params: Record<string, string> = {};
  if (!m) return { scheme: '', params };
  for (const p of m[2].matchAll(/(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) params[p[1].toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3];
  return { scheme: m[1].toLowerCase(), params };
}

export class RegistryClient {
  private readonly base: string;
  private readonly creds: Credentials | undefined;
  /** Authorization header by scope, once a challenge was answered. */
  private readonly auth = new Map<string, string>();

  constructor(
    readonly registry: string,
    opts: RegistryOptions = {},
  ) {
    const insecure = opts.insecure === true || (Array.isArray(opts.insecure) && opts.insecure.includes(registry));
    const host = registry === 'docker.io' ? 'registry-1.docker.io' : registry;
    this.base = `${insecure ? 'http' : 'https'}://${host}`;
    this.creds = opts.credentials ?? credentialsFor(registry);
  }

  /**
   * A request to the API: answers one 401 by the challenge it carries
   * (basic, or a bearer token for `scope`) and tries again.
   */
  async request(method: string, path: string, scope: string, init: { headers?: Record<string, string>; body?: Buffer | ReadableStream | null; duplex?: 'half' } = {}): Promise<Response> {
    const url = path.startsWith('http') ? path : `${this.base}${path}`;
    const send = (authz?: string) =>
      fetch(url, {
        method,
        headers: { ...(init.headers ?? {}), ...(authz ? { authorization: authz } : {}) },
        body: init.body ?? undefined,
        redirect: 'follow',
        ...(init.duplex ? { duplex: init.duplex } : {}),
      } as RequestInit).catch((e: Error & { cause?: Error & { code?: string } }) => {
        const why = e.cause?.code ?? e.cause?.message ?? e.message;
        throw new RegistryError(`${method} ${url}: ${why}${/ECONNREFUSED|EPROTO|WRONG_VERSION|wrong version/i.test(why) ? ' (is the registry up, and does it speak HTTPS? --insecure-registry for a plain-HTTP one)' : ''}`);
      });
    let res = await send(this.auth.get(scope));
    if (res.status !== 401) return res;
    const challenge = res.headers.get('www-authenticate');
    await res.body?.cancel();
    if (!challenge) throw new RegistryError(`${method} ${url}: 401 without a challenge`);
    const authz = await this.answer(challenge, scope);
    this.auth.set(scope, authz);
    // A body already sent as a stream cannot be sent again.
    if (init.body && !Buffer.isBuffer(init.body)) throw new RegistryError(`${method} ${url}: the registry asked for credentials mid-upload`);
    res = await send(authz);
    if (res.status === 401) {
      await res.body?.cancel();
      throw new RegistryError(`${method} ${url}: unauthorized${this.creds ? ` (as ${this.creds.username})` : ' (no credentials for ' + this.registry + ': brig login ' + this.registry + ')'}`);
    }
    return res;
  }

  private async answer(challenge: string, scope: string): Promise<string> {
    const { scheme, params } = parseChallenge(challenge);
    const basic = this.creds ? `Basic ${Buffer.from(`${this.creds.username}:${this.creds.password}`).toString('base64')}` : undefined;
    if (scheme === 'basic') {
      if (!basic) throw new RegistryError(`${this.registry} wants a user and password: brig login ${this.registry}`);
      return basic;
    }
    if (scheme !== 'bearer' || !params.realm) throw new RegistryError(`${this.registry}: unsupported auth challenge ${JSON.stringify(challenge)}`);
    const u = new URL(params.realm);
    if (params.service) u.searchParams.set('service', params.service);
    for (const s of (params.scope ?? scope).split(' ').filter(Boolean)) u.searchParams.append('scope', s);
    const res = await fetch(u, { headers: basic ? { authorization: basic } : {} }).catch((e: Error) => {
      throw new RegistryError(`token from ${u.origin}${u.pathname}: ${(e as Error & { cause?: Error }).cause?.message ?? e.message}`);
    });
    const text = await res.text();
    if (!res.ok) throw new RegistryError(`token from ${u.origin}${u.pathname}: HTTP ${res.status}${res.status === 401 ? ` (${basic ? 'wrong credentials' : 'no credentials: brig login ' + this.registry})` : ''}: ${text.slice(0, 200)}`);
    let token: string | undefined;
    try {
      const j = JSON.parse(text) as { token?: string; access_token?: string };
      token = j.token ?? j.access_token;
    } catch {
      // fall through
    }
    if (!token) throw new RegistryError(`token from ${u.origin}${u.pathname}: no token in its answer`);
    return `Bearer ${token}`;
  }

  /** Fails with the registry's own error message (its JSON errors list) unless the status is expected. */
  async check(res: Response, what: string, ok: number[] = [200]): Promise<Response> {
    if (ok.includes(res.status)) return res;
    const body = await res.text().catch(() => '');
    let detail = body.slice(0, 300);
    try {
      const j = JSON.parse(body) as { errors?: { code?: string; message?: string }[] };
      if (j.errors?.length) detail = j.errors.map((e) => `${e.code ?? ''}: ${e.message ?? ''}`).join('; ');
    } catch {
      // not JSON
    }
    throw new RegistryError(`${what}: HTTP ${res.status}${detail ? ` (${detail})` : ''}`);
  }
}

// ---------------------------------------------------------------------------
// Pull

export interface LayerProgress {
  /** The layer's digest, as the manifest names it. */
  digest: string;
  index: number;
  /** Bytes received (compressed), of `total`. */
  bytes: number;
  total: number;
  state: 'waiting' | 'downloading' | 'verifying' | 'unpacking' | 'done' | 'exists';
}

export interface PullOptions extends RegistryOptions {
  /** linux/amd64 style; default linux and this machine's architecture. */
  platform?: string;
  onProgress?: (p: LayerProgress) => void;
  /** Layers downloaded at once (default 3). */
  concurrency?: number;
  store?: Store;
}

export interface PullResult {
  /** The name in the store: busybox:latest, localhost:5000/app:1, or name@sha256:... */
  ref: string;
  /** The image's manifest digest (the registry's). */
  digest: string;
  /** Layers fetched, and found in the store already. */
  downloaded: number;
  skipped: number;
}

interface Platformed {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os?: string; architecture?: string; variant?: string };
}

/** Reads a response body into a file, hashing it; resumes a broken download with a Range request. */
async function download(client: RegistryClient, repo: string, d: Descriptor, file: string, onBytes: (n: number) => void): Promise<void> {
  const scope = `repository:${repo}:pull`;
  const hash = createHash('sha256');
  const fd = openSync(file, 'w', 0o600);
  let open = true;
  let got = 0;
  try {
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = got > 0 ? { range: `bytes=${got}-` } : {};
      let res: Response;
      try {
        res = await client.request('GET', `/v2/${repo}/blobs/${d.digest}`, scope, { headers });
      } catch (e) {
        if (attempt < 3) continue;
        throw e;
      }
      if (got > 0 && res.status === 200) {
        // The server ignored the range: start over (the file is truncated).
        await res.body?.cancel();
        closeSync(fd);
        open = false;
        return download(client, repo, d, file, onBytes);
      }
      await client.check(res, `blob ${d.digest}`, got > 0 ? [206] : [200]);
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          const b = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
          for (let off = 0; off < b.length; ) off += writeSync(fd, b, off, b.length - off);
          hash.update(b);
          got += b.length;
          onBytes(got);
          if (got > d.size) throw new RegistryError(`blob ${d.digest}: more than the ${d.size} bytes the manifest says`);
        }
      } catch (e) {
        if (e instanceof RegistryError || attempt >= 3) throw e instanceof RegistryError ? e : new RegistryError(`blob ${d.digest}: download broke off at ${got} of ${d.size} bytes: ${(e as Error).message}`);
        continue; // resume from `got`
      }
      if (got < d.size && attempt < 3) continue;
      break;
    }
  } finally {
    if (open) closeSync(fd);
  }
  const digest = `sha256:${hash.digest('hex')}`;
  if (got !== d.size || digest !== d.digest) throw new RegistryError(`blob ${d.digest}: what came is ${got} bytes with digest ${digest}: it does not match, so nothing of it was stored`);
}

async function getManifest(client: RegistryClient, repo: string, reference: string, expectDigest?: string): Promise<{ raw: Buffer; digest: string; mediaType: string }> {
  const res = await client.check(await client.request('GET', `/v2/${repo}/manifests/${reference}`, `repository:${repo}:pull`, { headers: { accept: MANIFEST_ACCEPT } }), `manifest ${repo}:${reference}`);
  const raw = Buffer.from(await res.arrayBuffer());
  const digest = sha256(raw);
  const claimed = expectDigest ?? res.headers.get('docker-content-digest') ?? undefined;
  if (claimed && claimed !== digest) throw new RegistryError(`manifest ${repo}:${reference}: its digest is ${digest}, not ${claimed}: refused`);
  let mediaType = (res.headers.get('content-type') ?? '').split(';')[0].trim();
  try {
    const j = JSON.parse(raw.toString()) as { mediaType?: string; schemaVersion?: number; manifests?: unknown };
    if (j.schemaVersion !== 2) throw new RegistryError(`manifest ${repo}:${reference}: schema version ${j.schemaVersion}; only version 2 (OCI, Docker v2 schema 2) is supported`);
    mediaType = j.mediaType ?? (j.manifests ? INDEX : mediaType || MEDIA.manifest);
  } catch (e) {
    if (e instanceof RegistryError) throw e;
    throw new RegistryError(`manifest ${repo}:${reference}: not JSON`);
  }
  return { raw, digest, mediaType };
}

function pickPlatform(entries: Platformed[], platform: string, what: string): Platformed {
  const [os, arch, variant] = platform.split('/');
  const fits = entries.filter((e) => e.platform?.os === os && e.platform?.architecture === arch && (!variant || e.platform?.variant === variant));
  if (!fits.length) {
    const has = entries.map((e) => [e.platform?.os, e.platform?.architecture, e.platform?.variant].filter(Boolean).join('/')).join(', ');
    throw new RegistryError(`${what} has no image for ${platform} (it has ${has || 'none'})`);
  }
  return fits[0];
}

/** Runs fn over items, at most `n` at a time. */
async function parallel<T>(items: T[], n: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown;
  const worker = async () => {
    while (next < items.length && failed === undefined) {
      const i = next++;
      try {
        await fn(items[i], i);
      } catch (e) {
        failed ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(n, items.length)) }, worker));
  if (failed !== undefined) throw failed;
}

/** Pulls `ref` into the store and names it there. */
export async function pull(ref: string, opts: PullOptions = {}): Promise<PullResult> {
  const r = parseRemoteRef(ref);
  const store = opts.store ?? new Store();
  const client = new RegistryClient(r.registry, opts);
  const repo = r.repository;
  const platform = opts.platform ?? `linux/${goArch()}`;
  if (!/^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/.test(platform)) throw new RegistryError(`platform: expected os/arch[/variant] such as linux/amd64, got ${JSON.stringify(platform)}`);

  let m = await getManifest(client, repo, r.digest ?? r.tag!, r.digest);
  if (m.mediaType === INDEX || m.mediaType === DOCKER_LIST) {
    const index = JSON.parse(m.raw.toString()) as { manifests?: Platformed[] };
    const entry = pickPlatform(index.manifests ?? [], platform, `${ref}`);
    m = await getManifest(client, repo, entry.digest, entry.digest);
  }
  if (m.mediaType !== MEDIA.manifest && m.mediaType !== DOCKER_MANIFEST) throw new RegistryError(`${ref}: manifest type ${m.mediaType} is not an image manifest`);
  const manifest = JSON.parse(m.raw.toString()) as ImageManifest;
  if (!manifest.config || !Array.isArray(manifest.layers)) throw new RegistryError(`${ref}: the manifest has no config or layers`);
  for (const d of [manifest.config, ...manifest.layers]) if (!DIGEST.test(d.digest) || !Number.isSafeInteger(d.size) || d.size < 0) throw new RegistryError(`${ref}: bad descriptor ${JSON.stringify(d)}`);
  if (manifest.config.mediaType !== MEDIA.config && manifest.config.mediaType !== DOCKER_CONFIG_MEDIA) throw new RegistryError(`${ref}: config type ${manifest.config.mediaType} is not an image config`);
  manifest.layers.forEach((l, i) => {
    const problem = layerTypeProblem(l.mediaType, `layer ${i}`);
    if (problem) throw new RegistryError(`${ref}: ${problem}`);
  });

  // The config: small, read whole, verified.
  const cres = await client.check(await client.request('GET', `/v2/${repo}/blobs/${manifest.config.digest}`, `repository:${repo}:pull`), `config ${manifest.config.digest}`);
  const configRaw = Buffer.from(await cres.arrayBuffer());
  if (sha256(configRaw) !== manifest.config.digest) throw new RegistryError(`config ${manifest.config.digest}: what came does not match its digest: refused`);
  const config = JSON.parse(configRaw.toString()) as ImageConfig;
  const diffIds = config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== manifest.layers.length) throw new RegistryError(`${ref}: ${manifest.layers.length} layers but ${diffIds.length} diff IDs in its config`);

  const progress = manifest.layers.map((l, index): LayerProgress => ({ digest: l.digest, index, bytes: 0, total: l.size, state: 'waiting' }));
  const tell = (p: LayerProgress) => opts.onProgress?.({ ...p });
  progress.forEach(tell);
  let downloaded = 0;
  let skipped = 0;
  await parallel(manifest.layers, opts.concurrency ?? 3, async (l, i) => {
    const p = progress[i];
    // Layers already here (by their diff ID, and the blob the manifest names) are not fetched again.
    if (existsSync(store.layerDir(diffIds[i])) && existsSync(store.blobPath(l.digest))) {
      p.state = 'exists';
      p.bytes = p.total;
      tell(p);
      skipped++;
      return;
    }
    const tmp = store.tmp('pull');
    try {
      p.state = 'downloading';
      tell(p);
      await download(client, repo, l, tmp, (n) => {
        p.bytes = n;
        tell(p);
      });
      p.state = 'unpacking';
      tell(p);
      const added = await store.addLayerTar(tmp);
      if (added.diffId !== diffIds[i]) throw new RegistryError(`${ref}: layer ${i} unpacks to ${added.diffId}, but the config says ${diffIds[i]}`);
      // The compressed form, as the manifest names it (the uncompressed one is stored under the diff ID).
      if (l.digest !== added.diffId && !existsSync(store.blobPath(l.digest))) renameSync(tmp, store.blobPath(l.digest));
      p.state = 'done';
      tell(p);
      downloaded++;
    } finally {
      rmSync(tmp, { force: true });
    }
  });
  store.putBlob(configRaw);
  store.putBlob(m.raw);
  const name = store.name(storeName(r), m.digest);
  return { ref: name, digest: m.digest, downloaded, skipped };
}

// ---------------------------------------------------------------------------
// Push

export interface PushOptions extends RegistryOptions {
  store?: Store;
  /** Blobs larger than this go up in chunks of it (PATCH), else in one PUT. Default 16 MiB. */
  chunkSize?: number;
  onProgress?: (p: { digest: string; bytes: number; total: number; state: 'uploading' | 'exists' | 'done' }) => void;
}

export interface PushResult {
  /** Where it went: registry/repository:tag */
  target: string;
  digest: string;
  uploaded: number;
  skipped: number;
}

function location(client: RegistryClient, res: Response, what: string): string {
  const loc = res.headers.get('location');
  if (!loc) throw new RegistryError(`${what}: the registry gave no upload location`);
  return new URL(loc, `${res.url}`).toString();
}

const withDigest = (url: string, digest: string) => {
  const u = new URL(url);
  u.searchParams.set('digest', digest);
  return u.toString();
};

async function uploadBlob(client: RegistryClient, repo: string, d: Descriptor, file: string, chunkSize: number, onBytes: (n: number) => void): Promise<boolean> {
  const scope = `repository:${repo}:pull,push`;
  const head = await client.request('HEAD', `/v2/${repo}/blobs/${d.digest}`, scope);
  await head.body?.cancel();
  if (head.status === 200) return false;
  const start = await client.check(await client.request('POST', `/v2/${repo}/blobs/uploads/`, scope), `upload of ${d.digest}`, [202]);
  await start.body?.cancel();
  let url = location(client, start, `upload of ${d.digest}`);
  const size = statSync(file).size;
  if (size <= chunkSize) {
    const body = readFileSync(file);
    const res = await client.check(await client.request('PUT', withDigest(url, d.digest), scope, { headers: { 'content-type': 'application/octet-stream', 'content-length': String(body.length) }, body }), `upload of ${d.digest}`, [201]);
    await res.body?.cancel();
    onBytes(size);
    return true;
  }
  // Chunked: PATCH each chunk at its range, the location moving on each time; a PUT closes it.
  const fd = openSync(file, 'r');
  try {
    for (let off = 0; off < size; off += chunkSize) {
      const n = Math.min(chunkSize, size - off);
      const chunk = Buffer.alloc(n);
      let got = 0;
      while (got < n) got += readSync(fd, chunk, got, n - got, off + got);
      const res = await client.check(
        await client.request('PATCH', url, scope, { headers: { 'content-type': 'application/octet-stream', 'content-range': `${off}-${off + n - 1}`, 'content-length': String(n) }, body: chunk }),
        `upload of ${d.digest} (bytes ${off}-${off + n - 1})`,
        [202],
      );
      await res.body?.cancel();
      url = location(client, res, `upload of ${d.digest}`);
      onBytes(off + n);
    }
  } finally {
    closeSync(fd);
  }
  const done = await client.check(await client.request('PUT', withDigest(url, d.digest), scope, { headers: { 'content-length': '0' }, body: Buffer.alloc(0) }), `upload of ${d.digest}`, [201]);
  await done.body?.cancel();
  return true;
}

/** Pushes the store's image `name` to `target` ([registry/]repository[:tag]). */
export async function push(name: string, target: string, opts: PushOptions = {}): Promise<PushResult> {
  const store = opts.store ?? new Store();
  const img = store.get(name);
  const r = parseRemoteRef(target);
  if (r.digest) throw new RegistryError(`${target}: push to a tag, not a digest (the digest is the manifest's own)`);
  const client = new RegistryClient(r.registry, opts);
  const repo = r.repository;
  const chunkSize = opts.chunkSize ?? 16 << 20;
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 1) throw new RegistryError(`chunkSize: expected a whole number of bytes above 0`);
  let uploaded = 0;
  let skipped = 0;
  for (const d of [...img.manifest.layers, img.manifest.config]) {
    const file = store.blobPath(d.digest);
    if (!existsSync(file)) throw new RegistryError(`${name}: blob ${d.digest} is not in the store`);
    // What goes out is what the manifest names: check it on the way.
    const hash = createHash('sha256');
    await new Promise<void>((resolve, reject) => createReadStream(file).on('data', (c) => hash.update(c)).on('end', resolve).on('error', reject));
    if (`sha256:${hash.digest('hex')}` !== d.digest) throw new RegistryError(`${name}: blob ${d.digest} in the store is corrupt: not pushed`);
    const sent = await uploadBlob(client, repo, d, file, chunkSize, (bytes) => opts.onProgress?.({ digest: d.digest, bytes, total: d.size, state: 'uploading' }));
    opts.onProgress?.({ digest: d.digest, bytes: d.size, total: d.size, state: sent ? 'done' : 'exists' });
    if (sent) uploaded++;
    else skipped++;
  }
  const raw = store.readBlob(img.digest);
  const res = await client.check(
    await client.request('PUT', `/v2/${repo}/manifests/${r.tag}`, `repository:${repo}:pull,push`, { headers: { 'content-type': img.manifest.mediaType ?? MEDIA.manifest }, body: raw }),
    `manifest ${repo}:${r.tag}`,
    [201],
  );
  await res.body?.cancel();
  const claimed = res.headers.get('docker-content-digest');
  if (claimed && claimed !== img.digest) throw new RegistryError(`manifest ${repo}:${r.tag}: the registry stored it as ${claimed}, not ${img.digest}`);
  return { target: `${r.registry}/${repo}:${r.tag}`, digest: img.digest, uploaded, skipped };
}

/** Checks credentials against the registry (a /v2/ request answered with them). */
export async function login(registry: string, c: Credentials, opts: RegistryOptions = {}): Promise<void> {
  const client = new RegistryClient(registry, { ...opts, credentials: c });
  const res = await client.request('GET', '/v2/', '');
  await client.check(res, `login to ${registry}`);
  await res.body?.cancel();
}
