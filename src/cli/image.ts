// brig images | inspect | tag | rmi | import-rootfs: the image store's verbs.
import { loadImages, saveDockerArchive, saveImages } from '../image/archive.js';
import { build } from '../image/build.js';
import { ImageError, pruneBuildCache, Store } from '../image/store.js';
import { formatHelp, parseArgs, parseInterleaved, UsageError, type OptionSpec, type Parsed } from './args.js';

export const helpSpec: OptionSpec = { name: 'help', short: 'h', help: 'show this help' };

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

/** A verb: its options parsed, --help answered, store errors turned into usage errors (exit 125 with the message). */
export function verb(help: string, specs: OptionSpec[], fn: (p: Parsed) => number | Promise<number>, parse: (argv: string[], specs: OptionSpec[]) => Parsed = parseArgs) {
  return async (argv: string[]): Promise<number> => {
    const p = parse(argv, specs);
    if (p.flags.has('help')) {
      process.stdout.write(help);
      return 0;
    }
    try {
      return await fn(p);
    } catch (e) {
      if (e instanceof ImageError) throw new UsageError(e.message);
      throw e;
    }
  };
}

function wrap(fn: (rest: string[]) => number | Promise<number>, help: string, specs: OptionSpec[] = [helpSpec]) {
  return verb(help, specs, (p) => fn(p.rest));
}

const imagesSpecs: OptionSpec[] = [
  { name: 'all', short: 'a', help: "also brig build's cached steps" },
  { name: 'prune-build-cache', help: "remove brig build's cached steps (and the layers only they use)" },
  helpSpec,
];
export const imagesHelp = formatHelp('brig images [-a] [--prune-build-cache]', 'The images in your store ($BRIG_STORE, else ~/.local/share/brig).', imagesSpecs);
export const imagesCommand = verb(imagesHelp, imagesSpecs, async (p) => {
  if (p.flags.has('prune-build-cache')) {
    process.stdout.write(`removed ${await pruneBuildCache(new Store())} cached build steps\n`);
    return 0;
  }
  const rows = new Store().list(p.flags.has('all'));
  const all = [['NAME:TAG', 'IMAGE ID', 'CREATED', 'SIZE'], ...rows.map((r) => [r.ref, r.id, r.created?.slice(0, 19).replace('T', ' ') ?? '', human(r.size)])];
  const w = all[0].map((_, i) => Math.max(...all.map((row) => row[i].length)));
  for (const row of all) process.stdout.write(row.map((c, i) => c.padEnd(w[i])).join('  ').trimEnd() + '\n');
  return 0;
});

export const inspectHelp = formatHelp('brig inspect IMAGE...', 'An image: its names, digest, manifest and config, as JSON.', [helpSpec]);
export const inspectCommand = wrap((rest) => {
  if (!rest.length) throw new UsageError('brig inspect: which image? (brig images lists them)');
  const store = new Store();
  process.stdout.write(JSON.stringify(rest.map((r) => store.get(r)), null, 2) + '\n');
  return 0;
}, inspectHelp);

export const tagHelp = formatHelp('brig tag IMAGE NAME[:TAG]', 'Another name for an image.', [helpSpec]);
export const tagCommand = wrap((rest) => {
  if (rest.length !== 2) throw new UsageError('brig tag IMAGE NAME[:TAG]');
  process.stdout.write(new Store().tag(rest[0], rest[1]) + '\n');
  return 0;
}, tagHelp);

export const rmiHelp = formatHelp('brig rmi IMAGE...', 'Removes names; an image no name refers to goes, with the layers and blobs nothing else uses.', [helpSpec]);
export const rmiCommand = wrap(async (rest) => {
  if (!rest.length) throw new UsageError('brig rmi: which image?');
  const store = new Store();
  for (const r of rest) {
    const out = await store.remove(r);
    process.stdout.write(`Untagged: ${out.untagged}\n${out.deleted.map((d) => `Deleted: ${d}\n`).join('')}`);
  }
  return 0;
}, rmiHelp);

const importSpecs: OptionSpec[] = [
  { name: 'cmd', value: true, arg: 'JSON', help: 'the image\'s default command, e.g. \'["/bin/sh"]\'' },
  { name: 'env', short: 'e', value: true, repeat: true, arg: 'KEY=VAL', help: 'an environment variable of the image' },
  { name: 'workdir', short: 'w', value: true, arg: 'DIR', help: 'the image\'s working directory' },
  helpSpec,
];
export const importHelp = formatHelp('brig import-rootfs DIR|TAR NAME[:TAG]', 'A base image from a directory (debootstrap or busybox output) or a tarball (plain or gzip): one layer.', importSpecs);
export const importCommand = verb(
  importHelp,
  importSpecs,
  async (p) => {
    if (p.rest.length !== 2) throw new UsageError('brig import-rootfs DIR|TAR NAME[:TAG]');
    const config: { Cmd?: string[]; Env?: string[]; WorkingDir?: string } = {};
    const cmd = p.opts.get('cmd')?.[0];
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
    const wd = p.opts.get('workdir')?.[0];
    if (wd) config.WorkingDir = wd;
    const img = await new Store().importRootfs(p.rest[0], p.rest[1], config);
    process.stdout.write(`${img.refs[0]} ${img.digest}\n`);
    return 0;
  },
  parseInterleaved,
);

const commitSpecs: OptionSpec[] = [{ name: 'message', short: 'm', value: true, arg: 'TEXT', help: "a comment for the new layer's history" }, helpSpec];
export const commitHelp = formatHelp('brig commit [-m TEXT] CONTAINER NAME[:TAG]', "A kept container's writable layer as a new image on top of its own (deletions as whiteouts).", commitSpecs);
export const commitCommand = verb(commitHelp, commitSpecs, async (p) => {
  if (p.rest.length !== 2) throw new UsageError('brig commit [-m TEXT] CONTAINER NAME[:TAG]');
  const img = await new Store().commitContainer(p.rest[0], p.rest[1], p.opts.get('message')?.[0]);
  process.stdout.write(`${img.refs[0]} ${img.digest}\n`);
  return 0;
});

export const psHelp = formatHelp('brig ps', 'The kept containers (brig run --image X --name C).', [helpSpec]);
export const psCommand = wrap(() => {
  for (const c of new Store().listContainers()) process.stdout.write(`${c.name}  ${c.ref}  ${c.created.slice(0, 19).replace('T', ' ')}\n`);
  return 0;
}, psHelp);

export const rmHelp = formatHelp('brig rm CONTAINER...', "Removes kept containers and their writable layers.", [helpSpec]);
export const rmCommand = wrap(async (rest) => {
  if (!rest.length) throw new UsageError('brig rm CONTAINER...');
  const store = new Store();
  for (const n of rest) {
    await store.removeContainer(n);
    process.stdout.write(`${n}\n`);
  }
  return 0;
}, rmHelp);

const saveSpecs: OptionSpec[] = [
  { name: 'output', short: 'o', value: true, arg: 'FILE|DIR', help: 'where: a directory (OCI image layout), or FILE.tar (a tar of one, or a docker archive)' },
  { name: 'format', value: true, arg: 'oci|docker', help: 'oci (default): an OCI image layout; docker: a docker save archive (a tar)' },
  helpSpec,
];
export const saveHelp = formatHelp('brig save -o FILE|DIR IMAGE...', 'Images as an OCI image layout, their blobs byte for byte (skopeo and umoci read it).', saveSpecs);
export const saveCommand = verb(saveHelp, saveSpecs, (p) => {
  const out = p.opts.get('output')?.[0];
  if (!out || !p.rest.length) throw new UsageError('brig save -o FILE|DIR IMAGE...');
  const format = p.opts.get('format')?.[0] ?? 'oci';
  if (format !== 'oci' && format !== 'docker') throw new UsageError(`--format: expected oci or docker, got ${JSON.stringify(format)}`);
  if (format === 'docker') saveDockerArchive(new Store(), p.rest, out);
  else saveImages(new Store(), p.rest, out);
  return 0;
});

const loadSpecs: OptionSpec[] = [
  { name: 'input', short: 'i', value: true, arg: 'FILE|DIR', help: 'an OCI image layout or a docker save archive (directory, tar or tar.gz)' },
  { name: 'tag', short: 't', value: true, arg: 'NAME[:TAG]', help: 'the name to give the loaded image (else the names in the archive)' },
  helpSpec,
];
export const loadHelp = formatHelp('brig load -i FILE|DIR [-t NAME:TAG]', 'Loads images, every blob verified against its digest and every layer against its diff ID.', loadSpecs);
export const loadCommand = verb(loadHelp, loadSpecs, async (p) => {
  const input = p.opts.get('input')?.[0];
  if (!input) throw new UsageError('brig load -i FILE|DIR [-t NAME:TAG]');
  for (const n of await loadImages(new Store(), input, p.opts.get('tag')?.[0])) process.stdout.write(`Loaded image: ${n}\n`);
  return 0;
});

const buildSpecs: OptionSpec[] = [
  { name: 'tag', short: 't', value: true, arg: 'NAME[:TAG]', help: 'the name of the image built' },
  { name: 'file', short: 'f', value: true, arg: 'FILE', help: 'the Dockerfile (default CONTEXT/Dockerfile)' },
  { name: 'build-arg', value: true, repeat: true, arg: 'KEY=VAL', help: 'a value for an ARG' },
  { name: 'network', value: true, arg: 'none|loopback', help: "RUN's network (default none)" },
  { name: 'no-cache', help: 'run every step, cached or not' },
  helpSpec,
];
export const buildHelp = formatHelp('brig build -t NAME[:TAG] [-f FILE] CONTEXT', 'Builds an image from a Dockerfile, one layer per step that changes files, every step cached.', buildSpecs);
export const buildCommand = verb(
  buildHelp,
  buildSpecs,
  async (p) => {
    const tag = p.opts.get('tag')?.[0];
    if (!tag || p.rest.length !== 1) throw new UsageError('brig build -t NAME[:TAG] [-f FILE] CONTEXT');
    const network = p.opts.get('network')?.[0];
    if (network !== undefined && network !== 'none' && network !== 'loopback') throw new UsageError(`--network: expected none or loopback, got ${JSON.stringify(network)}`);
    const buildArgs: Record<string, string> = {};
    for (const kv of p.opts.get('build-arg') ?? []) {
      const eq = kv.indexOf('=');
      if (eq <= 0) throw new UsageError(`--build-arg: expected KEY=VAL, got ${JSON.stringify(kv)}`);
      buildArgs[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
    await build(new Store(), { context: p.rest[0], file: p.opts.get('file')?.[0], tag, buildArgs, network: network as 'none' | 'loopback' | undefined, noCache: p.flags.has('no-cache'), onProgress: (t) => process.stdout.write(t) });
    return 0;
  },
  parseInterleaved,
);
