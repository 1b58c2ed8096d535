// brig images | inspect | tag | rmi | import-rootfs | build | save | load: the image store's verbs
// (inspectOne also serves brig inspect for kept containers and volumes; src/cli/container.ts has ps, rm, commit).
import { execFileSync } from 'node:child_process';
import { createReadStream, createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { arch, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { loadImages, saveDockerArchive, saveImages } from '../image/archive.js';
import { build } from '../image/build.js';
import { ImageError, pruneBuildCache, Store, type Image } from '../image/store.js';
import { all, checks, flagName, formatHelp, helpSpec, one, parseArgs, parseInterleaved, positionals, UsageError, type OptionSpec, type Parsed } from './args.js';
import { formatList, globMatch, parseFilters, renderTemplate } from './format.js';

export { helpSpec };

export function human(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v < 10 && u ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

/** Docker's "2 hours ago". */
export function ago(iso: string | undefined): string {
  if (!iso) return '';
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (!Number.isFinite(s)) return '';
  const [n, unit] = s < 60 ? [Math.round(s), 'second'] : s < 3600 ? [Math.round(s / 60), 'minute'] : s < 86400 ? [Math.round(s / 3600), 'hour'] : s < 86400 * 30 ? [Math.round(s / 86400), 'day'] : [Math.round(s / (86400 * 30)), 'month'];
  return `${n} ${unit}${n === 1 ? '' : 's'} ago`;
}

/** A verb: its options parsed (flags anywhere), --help answered, store errors turned into usage errors (exit 125 with the message). */
export function verb(help: string, specs: OptionSpec[], fn: (p: Parsed) => number | Promise<number>, parse: (argv: string[], specs: OptionSpec[]) => Parsed = parseArgs, onError?: (e: unknown) => number | undefined) {
  return async (argv: string[]): Promise<number> => {
    const p = parse(argv, specs);
    if (p.flags.has('help')) {
      process.stdout.write(help);
      return 0;
    }
    try {
      return await fn(p);
    } catch (e) {
      const code = onError?.(e);
      if (code !== undefined) return code;
      if (e instanceof ImageError) throw new UsageError(e.message);
      throw e;
    }
  };
}

const formatSpec: OptionSpec = { name: 'format', value: true, arg: 'table|json|TEMPLATE', help: "output: table (default), json (a line per item), or a Go template such as '{{.Repository}}:{{.Tag}}'" };

/** `docker images` rows: REPOSITORY and TAG split as Docker shows them. */
function imageRows(store: Store, withCache: boolean) {
  return store.list(withCache).map((r) => {
    const colon = r.ref.lastIndexOf(':');
    const slash = r.ref.lastIndexOf('/');
    const [repo, tag] = colon > slash ? [r.ref.slice(0, colon), r.ref.slice(colon + 1)] : [r.ref, '<none>'];
    return { Repository: repo, Tag: tag, ID: r.id, Digest: r.digest, CreatedAt: r.created ?? '', CreatedSince: ago(r.created), Size: human(r.size), Ref: r.ref };
  });
}

const imagesSpecs: OptionSpec[] = [
  { name: 'all', short: 'a', help: "also brig build's cached steps" },
  { name: 'quiet', short: 'q', help: 'only the image IDs' },
  formatSpec,
  { name: 'filter', short: 'f', value: true, repeat: true, arg: 'reference=PATTERN', help: 'only images whose NAME[:TAG] matches (globs: busy*, *:1.35)' },
  { name: 'no-trunc', help: 'whole IDs (sha256:...)' },
  { name: 'digests', help: 'show digests' },
  { name: 'prune-build-cache', help: "remove brig build's cached steps (and the layers only they use)" },
  helpSpec,
];
export const imagesHelp = formatHelp('brig images [OPTIONS] [REPOSITORY[:TAG]]', 'The images in your store ($BRIG_STORE, else ~/.local/share/brig).', imagesSpecs);
export const imagesCommand = verb(imagesHelp, imagesSpecs, async (p) => {
  positionals(p, 'brig images [OPTIONS] [REPOSITORY[:TAG]]', 0, 1);
  const store = new Store();
  if (p.flags.has('prune-build-cache')) {
    process.stdout.write(`removed ${await pruneBuildCache(store)} cached build steps\n`);
    return 0;
  }
  const filters = parseFilters(all(p, 'filter'), ['reference', 'dangling']);
  let rows = imageRows(store, p.flags.has('all'));
  const refs = [...(filters.get('reference') ?? []), ...p.rest.map((r) => (r.includes(':') ? r : `${r}:*`))];
  if (refs.length) rows = rows.filter((r) => refs.some((pat) => globMatch(pat, r.Ref) || globMatch(pat, r.Repository) || globMatch(pat, r.Ref.replace(/^docker\.io\/(library\/)?/, ''))));
  if (filters.get('dangling')?.includes('true')) rows = rows.filter((r) => r.Tag === '<none>');
  if (p.flags.has('no-trunc')) rows = rows.map((r) => ({ ...r, ID: r.Digest }));
  if (p.flags.has('quiet')) {
    process.stdout.write([...new Set(rows.map((r) => r.ID))].map((id) => id + '\n').join(''));
    return 0;
  }
  const cols: [string, keyof (typeof rows)[number]][] = [['REPOSITORY', 'Repository'], ['TAG', 'Tag'], ...(p.flags.has('digests') ? [['DIGEST', 'Digest'] as [string, 'Digest']] : []), ['IMAGE ID', 'ID'], ['CREATED', 'CreatedSince'], ['SIZE', 'Size']];
  process.stdout.write(formatList(rows, one(p, 'format'), cols));
  return 0;
});

/** An image as `docker inspect` shows one (Id, RepoTags, Config...), with brig's own fields beside. */
function dockerImage(img: Image) {
  const cfg = img.config as unknown as { created?: string; architecture?: string; os?: string; config?: unknown; rootfs?: unknown; author?: string };
  return {
    Id: img.manifest.config.digest,
    RepoTags: img.refs,
    RepoDigests: img.refs.map((r) => `${r.replace(/:[^:/]*$/, '')}@${img.digest}`),
    Created: cfg.created ?? '',
    Author: cfg.author ?? '',
    Architecture: cfg.architecture ?? '',
    Os: cfg.os ?? '',
    Size: img.manifest.layers.reduce((a, l) => a + l.size, 0),
    Config: cfg.config ?? {},
    RootFS: cfg.rootfs ?? {},
    ...img,
  };
}

export const inspectSpecs: OptionSpec[] = [
  { name: 'format', short: 'f', value: true, arg: 'TEMPLATE', help: "a Go template per item, e.g. '{{.Id}}', '{{.Config.Cmd}}', '{{json .Config}}'" },
  { name: 'type', value: true, arg: 'image|container|volume', help: 'what the names are (default: an image, else a container, else a volume)', check: checks.oneOf('image', 'container', 'volume') },
  helpSpec,
];
export const inspectHelp = formatHelp('brig inspect [OPTIONS] NAME...', 'Containers (State, Config, HostConfig, Mounts, NetworkSettings), images (their names, digest,\nmanifest and config, with Docker\'s fields) or volumes, as JSON: a container first, then an image\n(as Docker looks), then a volume.', inspectSpecs);

/** What one name is, by --type or by looking: an image, a kept container, a volume. */
export function inspectOne(store: Store, name: string, type?: string): unknown {
  const errors: string[] = [];
  if (!type || type === 'image') {
    try {
      return dockerImage(store.get(name));
    } catch (e) {
      if (!(e instanceof ImageError)) throw e;
      errors.push(e.message);
    }
  }
  if (!type || type === 'container') {
    const c = store.listContainers().find((x) => x.name === name);
    if (c) return { Name: c.name, Image: c.image, Config: { Image: c.ref }, Created: c.created, ...c };
    errors.push(`no container ${JSON.stringify(name)}`);
  }
  if (!type || type === 'volume') {
    try {
      const v = store.inspectVolume(name);
      return { Name: v.name, Mountpoint: v.path, CreatedAt: v.created, Driver: 'local', ...v };
    } catch (e) {
      if (!(e instanceof ImageError)) throw e;
      errors.push(`no volume ${JSON.stringify(name)}`);
    }
  }
  throw new UsageError(type ? errors[0] : `no image, container or volume named ${JSON.stringify(name)} (brig images, brig ps, brig volume ls)`);
}

export function printInspected(items: unknown[], format: string | undefined): void {
  if (format) {
    renderTemplate(format, {});
    process.stdout.write(items.map((x) => renderTemplate(format, x) + '\n').join(''));
  } else process.stdout.write(JSON.stringify(items, null, 2) + '\n');
}

export const tagHelp = formatHelp('brig tag IMAGE NAME[:TAG]', 'Another name for an image.', [helpSpec]);
export const tagCommand = verb(tagHelp, [helpSpec], (p) => {
  const [from, to] = positionals(p, 'brig tag IMAGE NAME[:TAG]', 2);
  process.stdout.write(new Store().tag(from, to) + '\n');
  return 0;
});

const rmiSpecs: OptionSpec[] = [{ name: 'force', short: 'f', help: 'no error for images that are not there' }, { name: 'no-prune', help: 'accepted (brig keeps no untagged parents)' }, helpSpec];
export const rmiHelp = formatHelp('brig rmi [OPTIONS] IMAGE...', 'Removes names; an image no name refers to goes, with the layers and blobs nothing else uses.', rmiSpecs);
export const rmiCommand = verb(rmiHelp, rmiSpecs, async (p) => {
  positionals(p, 'brig rmi [OPTIONS] IMAGE...', 1, Infinity);
  const store = new Store();
  let failed = 0;
  for (const r of p.rest) {
    try {
      const out = await store.remove(r);
      process.stdout.write(`Untagged: ${out.untagged}\n${out.deleted.map((d) => `Deleted: ${d}\n`).join('')}`);
    } catch (e) {
      if (!(e instanceof ImageError)) throw e;
      if (p.flags.has('force') && /^no image/.test(e.message)) continue;
      process.stderr.write(`brig rmi: ${e.message}\n`);
      failed++;
    }
  }
  return failed ? 1 : 0;
});

const importSpecs: OptionSpec[] = [
  { name: 'cmd', value: true, arg: 'JSON', help: 'the image\'s default command, e.g. \'["/bin/sh"]\'' },
  { name: 'env', short: 'e', value: true, repeat: true, arg: 'KEY=VAL', help: 'an environment variable of the image' },
  { name: 'workdir', short: 'w', value: true, arg: 'DIR', help: 'the image\'s working directory' },
  helpSpec,
];
export const importHelp = formatHelp('brig import-rootfs [OPTIONS] DIR|TAR NAME[:TAG]', 'A base image from a directory (debootstrap or busybox output) or a tarball (plain or gzip): one layer.', importSpecs);

/** What a file the user named could not be read as, in a line (a tar that is not one, a missing file). */
function fileProblem(what: string, file: string, e: unknown): never {
  if (e instanceof ImageError || e instanceof UsageError) throw e;
  const err = e as NodeJS.ErrnoException;
  if (err?.name === 'TarError') throw new UsageError(`${what} ${file}: not a directory or a tar archive (${err.message.split('\n')[0]})`);
  if (err?.code && /^E[A-Z]+$/.test(err.code)) throw new UsageError(`${what} ${file}: ${err.code}${err.syscall ? ` (${err.syscall})` : ''}`);
  throw new UsageError(`${what} ${file}: ${(err?.message ?? String(e)).split('\n')[0]}`);
}

export const importCommand = verb(
  importHelp,
  importSpecs,
  async (p) => {
    const [source, ref] = positionals(p, 'brig import-rootfs [OPTIONS] DIR|TAR NAME[:TAG]', 2);
    const config: { Cmd?: string[]; Env?: string[]; WorkingDir?: string } = {};
    const cmd = one(p, 'cmd');
    if (cmd) {
      let v: unknown;
      try {
        v = JSON.parse(cmd);
      } catch {
        v = undefined;
      }
      if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new UsageError(`--cmd: expected a JSON list of strings, got ${cmd}`);
      config.Cmd = v as string[];
    }
    const env = p.opts.get('env');
    if (env) config.Env = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', ...env];
    const wd = one(p, 'workdir');
    if (wd) config.WorkingDir = wd;
    if (!existsSync(source)) throw new UsageError(`${source}: no such file or directory`);
    let img: Image;
    try {
      img = await new Store().importRootfs(source, ref, config);
    } catch (e) {
      fileProblem('cannot import', source, e);
    }
    process.stdout.write(`${img.refs[0]} ${img.digest}\n`);
    return 0;
  },
  parseInterleaved,
);

/** A temporary directory, removed after `fn`. */
async function withTemp<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'brig-cli-'));
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const saveSpecs: OptionSpec[] = [
  { name: 'output', short: 'o', value: true, arg: 'FILE|DIR|-', help: 'where: FILE.tar, a directory (an OCI image layout), or - for standard output (the default when it is not a terminal)' },
  { name: 'format', value: true, arg: 'oci|docker', help: 'oci (default): an OCI image layout; docker: a docker save archive (a tar)', check: checks.oneOf('oci', 'docker') },
  helpSpec,
];
export const saveHelp = formatHelp('brig save [OPTIONS] IMAGE...', 'Images as an OCI image layout (skopeo and umoci read it) or a docker archive, their blobs byte for byte: a tar, a directory, or a tar on standard output.', saveSpecs);
export const saveCommand = verb(saveHelp, saveSpecs, async (p) => {
  positionals(p, 'brig save [OPTIONS] IMAGE...', 1, Infinity);
  let out = one(p, 'output');
  if (out === undefined) {
    if (process.stdout.isTTY) throw new UsageError('refusing to write a tar to a terminal: give -o FILE, or redirect standard output');
    out = '-';
  }
  const format = one(p, 'format') ?? 'oci';
  const store = new Store();
  for (const r of p.rest) store.get(r); // a missing image is said before anything is written
  const write = (to: string) => (format === 'docker' ? saveDockerArchive(store, p.rest, to) : saveImages(store, p.rest, to));
  if (out === '-') {
    await withTemp(async (dir) => {
      const tar = join(dir, 'out.tar');
      write(tar);
      await pipeline(createReadStream(tar), process.stdout, { end: false });
    });
    return 0;
  }
  const parent = dirname(resolve(out));
  if (!existsSync(parent)) throw new UsageError(`-o ${out}: the directory ${parent} does not exist`);
  try {
    write(out);
  } catch (e) {
    fileProblem('-o', out, e);
  }
  return 0;
});

const loadSpecs: OptionSpec[] = [
  { name: 'input', short: 'i', value: true, arg: 'FILE|DIR', help: 'an OCI image layout or a docker save archive (directory, tar or tar.gz); default: standard input' },
  { name: 'tag', short: 't', value: true, arg: 'NAME[:TAG]', help: 'the name to give the loaded image (else the names in the archive)' },
  { name: 'quiet', short: 'q', help: 'print only the names' },
  helpSpec,
];
export const loadHelp = formatHelp('brig load [-i FILE|DIR] [-t NAME:TAG]', 'Loads images from a file, a directory or standard input, every blob verified against its digest and every layer against its diff ID.', loadSpecs);
export const loadCommand = verb(loadHelp, loadSpecs, async (p) => {
  positionals(p, 'brig load [-i FILE|DIR] [-t NAME:TAG]', 0, 1);
  const input = one(p, 'input') ?? p.rest[0];
  const store = new Store();
  const load = async (file: string, label: string) => {
    try {
      return await loadImages(store, file, one(p, 'tag'));
    } catch (e) {
      if (e instanceof ImageError) throw new UsageError(e.message.replace(file, label));
      return fileProblem(label === 'standard input' ? 'cannot load' : 'cannot load', label, e);
    }
  };
  let names: string[];
  if (input === undefined || input === '-') {
    if (process.stdin.isTTY) throw new UsageError('requested load from standard input, but it is a terminal: give -i FILE or redirect it (brig load < FILE.tar)');
    names = await withTemp(async (dir) => {
      const tar = join(dir, 'stdin.tar');
      await pipeline(process.stdin, createWriteStream(tar));
      if (statSync(tar).size === 0) throw new UsageError('standard input is empty: give -i FILE or redirect a tar to it');
      return load(tar, 'standard input');
    });
  } else {
    // The file as the user named it: after -i/--input, or alone (brig load F.tar).
    const named = one(p, 'input') === undefined ? input : `${flagName(p, 'input')} ${input}`;
    if (!existsSync(input)) throw new UsageError(`${named}: no such file or directory`);
    names = await load(input, input);
  }
  for (const n of names) process.stdout.write(p.flags.has('quiet') ? `${n}\n` : `Loaded image: ${n}\n`);
  return 0;
});

const buildSpecs: OptionSpec[] = [
  { name: 'tag', short: 't', value: true, repeat: true, arg: 'NAME[:TAG]', help: 'a name of the image built (repeat for more)' },
  { name: 'file', short: 'f', value: true, arg: 'FILE', help: 'the Dockerfile (default CONTEXT/Dockerfile; - for standard input)' },
  { name: 'build-arg', value: true, repeat: true, arg: 'KEY=VAL', help: 'a value for an ARG' },
  { name: 'target', value: true, arg: 'STAGE', help: 'build up to this stage (FROM ... AS STAGE)' },
  { name: 'label', value: true, repeat: true, arg: 'KEY=VAL', help: 'a label on the image' },
  { name: 'quiet', short: 'q', help: 'print only the image ID' },
  { name: 'network', value: true, arg: 'none|loopback', help: "RUN's network (default none)", check: checks.oneOf('none', 'loopback') },
  { name: 'no-cache', help: 'run every step, cached or not' },
  { name: 'platform', value: true, arg: 'OS/ARCH', help: "checked: brig builds for this machine's platform" },
  { name: 'pull', help: 'accepted (FROM uses your store; brig pull first)' },
  { name: 'rm', help: 'accepted (intermediate containers are always removed)' },
  helpSpec,
];
export const buildHelp = formatHelp('brig build [OPTIONS] CONTEXT|-', 'Builds an image from a Dockerfile, one layer per step that changes files, every step cached. CONTEXT - reads a tar of the context, or a Dockerfile, from standard input.', buildSpecs);

function keyValues(flag: string, values: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of values) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new UsageError(`${flag}: expected KEY=VAL, got ${JSON.stringify(kv)}`);
    out[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return out;
}

export const buildCommand = verb(
  buildHelp,
  buildSpecs,
  async (p) => {
    const [context] = positionals(p, 'brig build [OPTIONS] CONTEXT|-', 1);
    const tags = all(p, 'tag');
    if (!tags.length) throw new UsageError('give the image a name: -t NAME[:TAG] (brig keeps images by name)');
    const platform = one(p, 'platform');
    const here = `linux/${arch() === 'x64' ? 'amd64' : arch()}`;
    if (platform !== undefined && platform !== here && platform !== 'linux') throw new UsageError(`--platform: brig builds for ${here} here, not ${JSON.stringify(platform)}`);
    const quiet = p.flags.has('quiet');
    const go = async (ctx: string, file: string | undefined) => {
      const img = await build(new Store(), { context: ctx, file, tag: tags[0], buildArgs: keyValues('--build-arg', all(p, 'build-arg')), labels: keyValues('--label', all(p, 'label')), target: one(p, 'target'), network: one(p, 'network') as 'none' | 'loopback' | undefined, noCache: p.flags.has('no-cache'), onProgress: quiet ? undefined : (t) => process.stdout.write(t) });
      const store = new Store();
      for (const t of tags.slice(1)) {
        const name = store.tag(img.digest, t);
        if (!quiet) process.stdout.write(`Successfully tagged ${name}\n`);
      }
      if (quiet) process.stdout.write(`${img.manifest.config.digest}\n`);
    };
    const fileOpt = one(p, 'file');
    if (context === '-' || fileOpt === '-') {
      if (process.stdin.isTTY) throw new UsageError('the context (or Dockerfile) comes from standard input, which is a terminal: redirect a tar or a Dockerfile to it');
      await withTemp(async (dir) => {
        const data = readFileSync(0);
        const ctx = join(dir, 'context');
        mkdirSync(ctx);
        if (context === '-' && data.length >= 512 && data.subarray(257, 262).toString() === 'ustar') {
          writeFileSync(join(dir, 'context.tar'), data);
          try {
            execFileSync('tar', ['-xf', join(dir, 'context.tar'), '-C', ctx, '--no-same-owner', '--no-same-permissions'], { stdio: ['ignore', 'ignore', 'pipe'] });
          } catch (e) {
            throw new UsageError(`the context tar on standard input: ${String((e as { stderr?: Buffer }).stderr ?? '').trim().split('\n')[0] || 'cannot unpack'}`);
          }
          await go(ctx, fileOpt && fileOpt !== '-' ? join(ctx, fileOpt) : undefined);
        } else {
          writeFileSync(join(dir, 'Dockerfile'), data);
          await go(context === '-' ? ctx : context, join(dir, 'Dockerfile'));
        }
      });
      return 0;
    }
    await go(context, fileOpt);
    return 0;
  },
  parseInterleaved,
);
