// brig build: a Dockerfile, step by step, one image per step (one layer per
// step that changes files), each step cached under a key made of its parent
// image, its instruction, its build args and, for COPY and ADD, the content
// of what it copies. RUN runs in a brig sandbox of the image so far (the
// default profile, no network unless asked) as a kept container, then
// committed. A failed step names its line.
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, utimesSync } from 'node:fs';
import { isAbsolute, join, posix, relative, resolve } from 'node:path';
import { run } from '../launch/sandbox.js';
import { native } from '../native.js';
import { OPAQUE_XATTR, unpackLayer } from './layer.js';
import { BUILD_CACHE_PREFIX, ImageError, normalizeRef, type Image, type ImageConfig, type Store } from './store.js';

export interface BuildOptions {
  /** The directory whose files COPY and ADD see. */
  context: string;
  /** Default: CONTEXT/Dockerfile. */
  file?: string;
  tag: string;
  buildArgs?: Record<string, string>;
  /** RUN's network: none (default) or loopback. */
  network?: 'none' | 'loopback';
  noCache?: boolean;
  /** Build up to the end of this stage (FROM ... AS target), as docker build --target. */
  target?: string;
  /** Labels on the image built, after the Dockerfile's own (docker build --label). */
  labels?: Record<string, string>;
  /** Each step's progress line, and RUN's output. */
  onProgress?: (text: string) => void;
}

export class BuildError extends ImageError {
  override name = 'BuildError';
  constructor(
    readonly file: string,
    readonly line: number,
    message: string,
  ) {
    super(`${file}:${line}: ${message}`);
  }
}

interface Instruction {
  line: number;
  keyword: string;
  /** The text after the keyword, continuation lines joined. */
  rest: string;
  /** The exec (JSON) form, when the arguments are a JSON array. */
  json?: string[];
}

/** Lines, with `\` continuations joined and comments dropped. */
export function parseDockerfile(text: string, file = 'Dockerfile'): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let l = lines[i].replace(/\r$/, '');
    if (/^\s*(#|$)/.test(l)) continue;
    const start = i + 1;
    while (/\\\s*$/.test(l) && i + 1 < lines.length) {
      l = l.replace(/\\\s*$/, '');
      i++;
      const next = lines[i].replace(/\r$/, '');
      if (/^\s*#/.test(next)) continue;
      l += next;
    }
    const m = /^\s*([A-Za-z]+)\s*(.*)$/.exec(l);
    if (!m) throw new BuildError(file, start, `not an instruction: ${JSON.stringify(l.trim())}`);
    const rest = m[2].trim();
    let json: string[] | undefined;
    if (rest.startsWith('[')) {
      try {
        const v = JSON.parse(rest) as unknown;
        if (Array.isArray(v) && v.every((x) => typeof x === 'string')) json = v as string[];
      } catch {
        // shell form that happens to start with [
      }
    }
    out.push({ line: start, keyword: m[1].toUpperCase(), rest, json });
  }
  return out;
}

/** $VAR, ${VAR}, ${VAR:-default}, ${VAR:+alt}; \$ is a literal $. */
function substitute(s: string, vars: Record<string, string>): string {
  return s.replace(/\\\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([-+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (all, braced, op, word, bare) => {
    if (all === '\\$') return '$';
    const name = braced ?? bare;
    const v = vars[name];
    if (op === '-') return v ? v : word;
    if (op === '+') return v ? word : '';
    return v ?? '';
  });
}

/** Shell-like words: quotes group, backslash escapes. */
function words(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let q: string | null = null;
  let any = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (q) {
      if (c === q) q = null;
      else if (c === '\\' && q === '"' && i + 1 < s.length) cur += s[++i];
      else cur += c;
    } else if (c === '"' || c === "'") {
      q = c;
      any = true;
    } else if (c === '\\' && i + 1 < s.length) {
      cur += s[++i];
      any = true;
    } else if (/\s/.test(c)) {
      if (cur || any) out.push(cur);
      cur = '';
      any = false;
    } else cur += c;
  }
  if (cur || any) out.push(cur);
  return out;
}

/** KEY=VALUE pairs (ENV, LABEL, ARG), or ENV's old `KEY VALUE` form. */
function pairs(rest: string, oldForm: boolean): [string, string][] {
  const w = words(rest);
  if (oldForm && w.length >= 1 && !w[0].includes('=')) {
    const key = w[0];
    return [[key, rest.slice(rest.indexOf(key) + key.length).trim()]];
  }
  return w.map((x) => {
    const eq = x.indexOf('=');
    return eq < 0 ? [x, ''] : [x.slice(0, eq), x.slice(eq + 1)];
  });
}

// ---------------------------------------------------------------------------
// .dockerignore

function globToRegex(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*' && pattern[i + 1] === '*') {
      re += '.*';
      i++;
      if (pattern[i + 1] === '/') i++;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}(/.*)?$`);
}

/** Whether a context path is excluded: the last matching pattern decides (! re-includes). */
export function dockerignore(context: string): (rel: string) => boolean {
  const f = join(context, '.dockerignore');
  if (!existsSync(f)) return () => false;
  const rules = readFileSync(f, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const neg = l.startsWith('!');
      const p = posix.normalize((neg ? l.slice(1) : l).replace(/^\/+/, ''));
      return { neg, re: globToRegex(p) };
    });
  return (rel) => {
    let out = false;
    for (const r of rules) if (r.re.test(rel)) out = !r.neg;
    return out;
  };
}

// ---------------------------------------------------------------------------

const CACHE_PREFIX = BUILD_CACHE_PREFIX;

function emptyConfig(): ImageConfig {
  return { architecture: process.arch === 'x64' ? 'amd64' : process.arch, os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [] }, history: [] };
}

interface State {
  /** The image of the last step (named in the cache), or null before a layer exists (FROM scratch). */
  image: Image | null;
  config: ImageConfig;
  layers: { diffId: string; size: number; mediaType?: string; digest?: string }[];
}

function layersOf(img: Image): State['layers'] {
  return img.manifest.layers.map((l, i) => ({ diffId: img.config.rootfs.diff_ids[i], size: l.size, mediaType: l.mediaType, digest: l.digest }));
}

/** Everything COPY copies, hashed: relative paths, modes, contents, link targets. */
function hashSources(paths: { abs: string; rel: string }[]): string {
  const h = createHash('sha256');
  const walk = (abs: string, rel: string) => {
    const st = lstatSync(abs);
    h.update(`${rel}\0${st.mode}\0`);
    if (st.isSymbolicLink()) h.update(readlinkSync(abs));
    else if (st.isDirectory()) for (const n of readdirSync(abs).sort()) walk(join(abs, n), `${rel}/${n}`);
    else h.update(readFileSync(abs));
  };
  for (const p of paths) walk(p.abs, p.rel);
  return h.digest('hex');
}

export async function build(store: Store, o: BuildOptions): Promise<Image> {
  const context = resolve(o.context);
  if (!statSync(context, { throwIfNoEntry: false })?.isDirectory()) throw new ImageError(`build: the context ${context} is not a directory`);
  const file = o.file ? resolve(o.file) : join(context, 'Dockerfile');
  const fileLabel = relative(process.cwd(), file) || file;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ImageError(`build: cannot read ${file}: ${(e as NodeJS.ErrnoException).code}`);
  }
  const tag = normalizeRef(o.tag);
  let steps = parseDockerfile(text, fileLabel);
  if (o.target !== undefined) {
    const want = o.target.toLowerCase();
    const start = steps.findIndex((st) => st.keyword === 'FROM' && /\sAS\s+(\S+)\s*$/i.exec(st.rest)?.[1].toLowerCase() === want);
    if (start < 0) throw new ImageError(`build: --target ${o.target}: no stage of that name in ${fileLabel}`);
    const next = steps.findIndex((st, i) => i > start && st.keyword === 'FROM');
    if (next >= 0) steps = steps.slice(0, next);
  }
  const labels = Object.entries(o.labels ?? {});
  if (labels.length) steps = [...steps, { line: 0, keyword: 'LABEL', rest: labels.map(([k, v]) => `${JSON.stringify(k)}=${JSON.stringify(v)}`).join(' ') }];
  const say = (s: string) => o.onProgress?.(s);
  const ignored = dockerignore(context);
  const args: Record<string, string> = {};
  const declared = new Set<string>();
  let state: State | undefined;
  const stages: { name?: string; state: State }[] = [];
  let stageName: string | undefined;
  let n = 0;
  const stepCount = steps.length;

  const fail = (s: Instruction, msg: string): never => {
    throw new BuildError(fileLabel, s.line, `${s.keyword} ${msg}`);
  };
  const envOf = (cfg: ImageConfig): Record<string, string> => Object.fromEntries((cfg.config.Env ?? []).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  const vars = () => ({ ...args, ...(state ? envOf(state.config) : {}) });

  /** The step's image, from the cache when its key is known, else made by `make`. */
  const step = async (s: Instruction, key: string, emptyLayer: boolean, make: () => Promise<State>): Promise<void> => {
    const cacheRef = `${CACHE_PREFIX}${key.slice(0, 40)}:cached`;
    if (!o.noCache) {
      try {
        const hit = store.get(cacheRef);
        state = { image: hit, config: hit.config, layers: layersOf(hit) };
        say(' ---> Using cache\n');
        return;
      } catch {
        // not cached
      }
    }
    const next = await make();
    const created = new Date().toISOString();
    next.config = { ...next.config, created, history: [...(next.config.history ?? []), { created, created_by: `${s.keyword} ${s.rest}`.slice(0, 1024), ...(emptyLayer ? { empty_layer: true } : {}) }] };
    next.config.rootfs = { type: 'layers', diff_ids: next.layers.map((l) => l.diffId) };
    next.image = store.commitImage(cacheRef, next.config, next.layers);
    state = next;
    say(` ---> ${next.image.digest.slice(0, 19)}\n`);
  };

  const keyOf = (...parts: string[]) => createHash('sha256').update(parts.join('\0')).digest('hex');
  const parentKey = () => state?.image?.digest ?? (state ? JSON.stringify(state.config) : 'none');

  /** The state so far plus one layer: what `fill` puts in a fresh staging directory. */
  const withLayer = async (kind: string, fill: (staging: string) => void | Promise<void>, config = structuredClone(state!.config)): Promise<State> => {
    const staging = join(store.root, 'tmp', `${kind}-${process.pid}-${n}-${Date.now()}`);
    try {
      await fill(staging);
      const layer = await store.addLayerDir(staging);
      return { image: null, config, layers: [...state!.layers, layer] };
    } finally {
      rmSync(staging, { recursive: true, force: true });
    }
  };

  /** COPY --from=STAGE|IMAGE: paths as the stage's (or image's) layer stack shows them. */
  const copyFrom = async (s: Instruction, from: string, w: string[]): Promise<void> => {
    const byName = stages.find((st) => st.name !== undefined && st.name === from.toLowerCase());
    const byIndex = /^\d+$/.test(from) ? stages[Number(from)] : undefined;
    let src: State | undefined = (byName ?? byIndex)?.state;
    if (!src) {
      try {
        const img = store.get(from);
        src = { image: img, config: img.config, layers: layersOf(img) };
      } catch {
        return fail(s, `--from=${from}: no earlier stage or image of that name`);
      }
    }
    const dirs = src.layers.map((l) => store.layerDir(l.diffId)).reverse();
    const dest = posix.resolve(state!.config.config.WorkingDir || '/', w[w.length - 1]);
    const toDir = w[w.length - 1].endsWith('/') || w.length > 2;
    const paths = w.slice(0, -1).map((p) => posix.resolve('/', p));
    const key = keyOf(parentKey(), 'COPY --from', JSON.stringify(w), JSON.stringify(src.layers.map((l) => l.diffId)));
    await step(s, key, false, () =>
      withLayer('copyfrom', (staging) => {
        for (const p of paths) {
          const found = lookup(dirs, p);
          if (!found) fail(s, `--from=${from}: ${p} is not in that stage`);
          const target = found!.isDir ? dest : toDir ? posix.join(dest, posix.basename(p)) : dest;
          materialize(dirs, p, join(staging, target));
        }
        // Parents of the destination exist in the layer, as directories.
        if (!existsSync(staging)) mkdirSync(join(staging, dest), { recursive: true });
      }),
    );
  };

  for (const s of steps) {
    n++;
    say(`Step ${n}/${stepCount} : ${s.keyword} ${s.rest}\n`);
    const v = vars();
    if (!state && s.keyword !== 'FROM' && s.keyword !== 'ARG') fail(s, 'comes before FROM');
    switch (s.keyword) {
      case 'ARG': {
        for (const [k, dflt] of pairs(s.rest, false)) {
          declared.add(k);
          args[k] = o.buildArgs?.[k] ?? substitute(dflt, v);
        }
        if (state) await step(s, keyOf(parentKey(), 'ARG', s.rest, JSON.stringify(args)), true, async () => ({ ...state!, config: structuredClone(state!.config) }));
        break;
      }
      case 'FROM': {
        const w = words(substitute(s.rest, v));
        if (w.length !== 1 && !(w.length === 3 && w[1].toUpperCase() === 'AS')) fail(s, 'expects an image (FROM image [AS name])');
        // A new stage: the one before is done, and later stages may copy from it.
        if (state) stages.push({ name: stageName, state });
        stageName = w.length === 3 ? w[2].toLowerCase() : undefined;
        const earlier = stages.find((st) => st.name !== undefined && st.name === w[0].toLowerCase());
        if (earlier) state = { image: earlier.state.image, config: structuredClone(earlier.state.config), layers: [...earlier.state.layers] };
        else if (w[0] === 'scratch') state = { image: null, config: emptyConfig(), layers: [] };
        else {
          let base: Image;
          try {
            base = store.get(w[0]);
          } catch (e) {
            return fail(s, (e as Error).message);
          }
          state = { image: base, config: structuredClone(base.config), layers: layersOf(base) };
        }
        say(` ---> ${state.image ? state.image.digest.slice(0, 19) : 'scratch'}\n`);
        break;
      }
      case 'ENV':
      case 'LABEL': {
        const kv = pairs(substitute(s.rest, v), s.keyword === 'ENV');
        if (!kv.length || kv.some(([k]) => !k)) fail(s, 'expects KEY=VALUE');
        await step(s, keyOf(parentKey(), s.keyword, JSON.stringify(kv)), true, async () => {
          const cfg = structuredClone(state!.config);
          if (s.keyword === 'ENV') {
            const env = envOf(cfg);
            for (const [k, val] of kv) env[k] = val;
            cfg.config.Env = Object.entries(env).map(([k, val]) => `${k}=${val}`);
          } else cfg.config.Labels = { ...(cfg.config.Labels ?? {}), ...Object.fromEntries(kv) };
          return { ...state!, config: cfg };
        });
        break;
      }
      case 'WORKDIR':
      case 'USER':
      case 'CMD':
      case 'ENTRYPOINT':
      case 'EXPOSE':
      case 'VOLUME': {
        const value = s.json ?? substitute(s.rest, v);
        if (!value.length) fail(s, 'needs an argument');
        await step(s, keyOf(parentKey(), s.keyword, JSON.stringify(value)), s.keyword !== 'WORKDIR', async () => {
          const cfg = structuredClone(state!.config);
          const c = cfg.config;
          if (s.keyword === 'WORKDIR') {
            c.WorkingDir = posix.resolve(c.WorkingDir || '/', value as string);
            // The directory exists from here on, as Docker makes it: a layer holding it.
            return withLayer('workdir', (staging) => void mkdirSync(join(staging, c.WorkingDir!), { recursive: true, mode: 0o755 }), cfg);
          }
          if (s.keyword === 'USER') c.User = value as string;
          else if (s.keyword === 'CMD') c.Cmd = s.json ?? ['/bin/sh', '-c', s.rest];
          else if (s.keyword === 'ENTRYPOINT') c.Entrypoint = s.json ?? ['/bin/sh', '-c', s.rest];
          else if (s.keyword === 'EXPOSE') c.ExposedPorts = { ...(c.ExposedPorts ?? {}), ...Object.fromEntries(words(value as string).map((p) => [p.includes('/') ? p : `${p}/tcp`, {}])) };
          else c.Volumes = { ...(c.Volumes ?? {}), ...Object.fromEntries((s.json ?? words(value as string)).map((p) => [p, {}])) };
          return { ...state!, config: cfg };
        });
        break;
      }
      case 'RUN': {
        const argv = s.json ?? ['/bin/sh', '-c', s.rest];
        const buildEnv = Object.fromEntries([...declared].filter((k) => args[k] !== undefined).map((k) => [k, args[k]]));
        await step(s, keyOf(parentKey(), 'RUN', JSON.stringify(argv), JSON.stringify(buildEnv), o.network ?? 'none'), false, async () => {
          if (!state!.image) fail(s, 'has nothing to run in (FROM scratch has no files yet)');
          const container = `brig-build-${process.pid}-${n}-${Date.now()}`;
          const wd = state!.config.config.WorkingDir;
          try {
            const r = await run(argv, {
              image: state!.image!.digest,
              container,
              env: { ...buildEnv, ...envOf(state!.config) },
              network: o.network ?? 'none',
              ...(wd ? { cwd: wd } : {}),
            });
            if (r.stdout.length) say(r.stdout.toString());
            if (r.stderr.length) say(r.stderr.toString());
            if (r.status !== 'ok') fail(s, `failed: ${r.status === 'setup-error' ? r.error?.message : r.status === 'exit-nonzero' ? `exit code ${r.exitCode}` : r.status}`);
            const layer = await store.containerLayer(container);
            return { image: null, config: structuredClone(state!.config), layers: [...state!.layers, { diffId: layer.diffId, size: layer.size }] };
          } finally {
            if (existsSync(store.containerDir(container))) await store.removeContainer(container);
          }
        });
        break;
      }
      case 'COPY':
      case 'ADD': {
        const all = s.json ?? words(substitute(s.rest, v));
        const w = all.filter((x) => !x.startsWith('--'));
        const fromFlag = all.find((x) => x.startsWith('--from='))?.slice('--from='.length);
        if (w.length < 2) fail(s, 'expects SRC... DEST');
        if (fromFlag !== undefined) {
          if (s.keyword === 'ADD') fail(s, '--from is for COPY');
          await copyFrom(s, fromFlag, w);
          break;
        }
        const dest = posix.resolve(state!.config.config.WorkingDir || '/', w[w.length - 1]);
        const toDir = w[w.length - 1].endsWith('/') || w.length > 2;
        const sources: { abs: string; rel: string }[] = [];
        for (const src of w.slice(0, -1)) {
          if (/^[a-z]+:\/\//i.test(src)) fail(s, `${src}: URLs are not fetched (builds have no network)`);
          const rel = posix.normalize(src).replace(/^(\.\/)+|\/+$/g, '');
          if (rel.startsWith('..') || isAbsolute(rel)) fail(s, `${src} is outside the build context`);
          const matched = /[*?]/.test(rel) ? readdirSync(join(context, posix.dirname(rel))).filter((x) => globToRegex(posix.basename(rel)).test(x)).map((x) => posix.join(posix.dirname(rel), x)) : [rel];
          for (const m of matched) {
            if (ignored(m) || !existsSync(join(context, m))) fail(s, `${src}: not found in the build context${ignored(m) ? ' (excluded by .dockerignore)' : ''}`);
            sources.push({ abs: join(context, m), rel: m });
          }
        }
        await step(s, keyOf(parentKey(), s.keyword, JSON.stringify(w), hashSources(sources)), false, () =>
          withLayer('copy', async (staging) => {
            for (const src of sources) {
              const st = lstatSync(src.abs);
              if (s.keyword === 'ADD' && st.isFile() && /\.(tar|tgz|tar\.gz)$/.test(src.rel)) {
                await unpackLayer(src.abs, join(staging, dest));
                continue;
              }
              const target = toDir || st.isDirectory() ? (st.isDirectory() ? dest : posix.join(dest, posix.basename(src.rel))) : dest;
              copyTree(src.abs, join(staging, target), src.rel, ignored);
            }
            // Parents of the destination exist in the layer, as directories.
            if (!existsSync(staging)) mkdirSync(join(staging, dest), { recursive: true });
          }),
        );
        break;
      }
      case 'STOPSIGNAL':
      case 'HEALTHCHECK':
      case 'SHELL':
      case 'ONBUILD':
      case 'MAINTAINER':
        say(` ---> ${s.keyword} is not applied by brig; skipped\n`);
        break;
      default:
        fail(s, 'is not a Dockerfile instruction');
    }
  }
  if (!state) throw new ImageError(`build: ${fileLabel} has no FROM`);
  if (!state.image) {
    // FROM scratch with only configuration steps: an image without layers cannot run; refuse.
    throw new ImageError(`build: ${fileLabel} makes no files (FROM scratch needs a COPY or ADD)`);
  }
  store.tag(state.image.digest, tag);
  say(`Successfully tagged ${tag}\n`);
  return store.get(tag);
}

/** Copies a file or tree from the context, .dockerignore applied, times and modes kept. */
function copyTree(abs: string, out: string, rel: string, ignored: (rel: string) => boolean): void {
  const st = lstatSync(abs);
  mkdirSync(join(out, '..'), { recursive: true });
  if (st.isSymbolicLink()) symlinkSync(readlinkSync(abs), out);
  else if (st.isDirectory()) {
    mkdirSync(out, { recursive: true, mode: st.mode & 0o7777 });
    for (const name of readdirSync(abs).sort()) {
      const r = `${rel}/${name}`;
      if (!ignored(r)) copyTree(join(abs, name), join(out, name), r, ignored);
    }
    utimesSync(out, st.atime, st.mtime);
  } else if (st.isFile()) {
    copyFileSync(abs, out);
    utimesSync(out, st.atime, st.mtime);
  }
}

// ---------------------------------------------------------------------------
// Reading a path through a stack of layer directories (top first), as
// overlayfs would show it: a whiteout hides what is below, an opaque
// directory hides the lower directories' entries.

function isWhiteoutAt(p: string): boolean {
  const st = lstatSync(p, { throwIfNoEntry: false });
  return !!st && st.isCharacterDevice() && st.rdev === 0;
}

function isOpaque(p: string): boolean {
  return native.getXattr(p, OPAQUE_XATTR)?.toString() === 'y';
}

/** What `path` is in the merged view: the layers holding it (top first), and whether it is a directory. */
function lookup(dirs: string[], path: string): { isDir: boolean; holders: string[] } | undefined {
  const rel = path.replace(/^\/+/, '');
  const holders: string[] = [];
  let isDir: boolean | undefined;
  for (const d of dirs) {
    // A whiteout or a non-directory at any parent in this layer ends the search.
    const parts = rel ? rel.split('/') : [];
    // A non-directory (a whiteout included) at a parent hides the path here
    // and below; an opaque parent hides it below this layer.
    let blocked = false;
    let lastLayer = false;
    for (let i = 1; i < parts.length; i++) {
      const parent = join(d, ...parts.slice(0, i));
      const st = lstatSync(parent, { throwIfNoEntry: false });
      if (st && !st.isDirectory()) blocked = true;
      else if (st && isOpaque(parent)) lastLayer = true;
    }
    if (blocked) break;
    const p = join(d, rel);
    if (isWhiteoutAt(p)) break;
    const st = lstatSync(p, { throwIfNoEntry: false });
    if (!st) {
      if (lastLayer) break;
      continue;
    }
    if (!st.isDirectory()) {
      if (isDir === undefined) return { isDir: false, holders: [d] };
      break;
    }
    isDir = true;
    holders.push(d);
    if (isOpaque(p) || lastLayer) break;
  }
  return isDir ? { isDir: true, holders } : undefined;
}

/** Copies `path` of the merged view to `out` (a file, link or tree). */
function materialize(dirs: string[], path: string, out: string): void {
  const found = lookup(dirs, path);
  if (!found) return;
  const rel = path.replace(/^\/+/, '');
  const top = join(found.holders[0], rel);
  const st = lstatSync(top);
  mkdirSync(join(out, '..'), { recursive: true });
  if (!found.isDir) {
    if (st.isSymbolicLink()) symlinkSync(readlinkSync(top), out);
    else if (st.isFile()) {
      copyFileSync(top, out);
      utimesSync(out, st.atime, st.mtime);
    }
    return;
  }
  mkdirSync(out, { recursive: true, mode: st.mode & 0o7777 });
  const names = new Set<string>();
  for (const h of found.holders) for (const name of readdirSync(join(h, rel))) names.add(name);
  for (const name of [...names].sort()) materialize(dirs, rel ? `${rel}/${name}` : name, join(out, name));
  utimesSync(out, st.atime, st.mtime);
}
