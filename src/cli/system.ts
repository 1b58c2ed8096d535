// brig image ... | container ... | system ... (Docker's group names, as
// aliases of the verbs), brig info, brig version.
import { readFileSync } from 'node:fs';
import { arch, release } from 'node:os';
import type { Store } from '../image/store.js';
import { formatHelp, helpSpec, one, parseArgs, positionals, UsageError, type OptionSpec } from './args.js';
import { renderTemplate } from './format.js';
import { runVerb } from './main.js';

// The store and the volume verbs are loaded by the verbs that use them: brig version stays light.
const storeModule = () => import('../image/store.js');
const confirm = async (...a: Parameters<typeof import('./volume.js').confirm>) => (await import('./volume.js')).confirm(...a);

type Group = Record<string, [verb: string, extra?: string[]]>;

function group(name: string, subs: Group, own: Record<string, (argv: string[]) => Promise<number>> = {}) {
  const names = [...Object.keys(subs), ...Object.keys(own)];
  const help = `Usage: brig ${name} COMMAND\n\nCommands: ${names.join(', ')}\n(each as the verb it names: brig ${name} COMMAND --help)\n`;
  return async (argv: string[]): Promise<number> => {
    const [sub, ...rest] = argv;
    if (sub === undefined || sub === '--help' || sub === '-h') {
      process.stdout.write(help);
      return 0;
    }
    if (own[sub]) return own[sub](rest);
    const target = subs[sub];
    if (!target) throw new UsageError(`unknown subcommand ${JSON.stringify(sub)} (${names.join(', ')})`);
    return runVerb(target[0], [...(target[1] ?? []), ...rest], `${name} ${sub}`);
  };
}

const pruneSpecs: OptionSpec[] = [{ name: 'force', short: 'f', help: 'do not ask' }, { name: 'all', short: 'a', help: 'accepted' }, { name: 'volumes', help: 'named volumes too' }, helpSpec];

async function pruneContainers(store: Store): Promise<number> {
  let n = 0;
  for (const c of store.listContainers()) {
    await store.removeContainer(c.name);
    process.stdout.write(`${c.name}\n`);
    n++;
  }
  return n;
}

async function containerPrune(argv: string[]): Promise<number> {
  const p = parseArgs(argv, pruneSpecs.filter((s) => s.name !== 'volumes'));
  if (p.flags.has('help')) return void process.stdout.write(formatHelp('brig container prune [-f]', 'Removes every kept container.', pruneSpecs)), 0;
  positionals(p, 'brig container prune [-f]', 0);
  if (!(await confirm(p, 'This removes every kept container.'))) return 1;
  const { Store } = await storeModule();
  process.stdout.write(`Total: ${await pruneContainers(new Store())} containers removed\n`);
  return 0;
}

async function systemPrune(argv: string[]): Promise<number> {
  const p = parseArgs(argv, pruneSpecs);
  if (p.flags.has('help')) return void process.stdout.write(formatHelp('brig system prune [-f] [--volumes]', "Removes every kept container and brig build's cached steps; with --volumes, named volumes too. Named images stay.", pruneSpecs)), 0;
  positionals(p, 'brig system prune [OPTIONS]', 0);
  const volumes = p.flags.has('volumes');
  if (!(await confirm(p, `This removes every kept container${volumes ? ', every named volume' : ''} and the build cache.`))) return 1;
  const { Store, pruneBuildCache } = await storeModule();
  const store = new Store();
  const containers = await pruneContainers(store);
  const steps = await pruneBuildCache(store);
  let vols = 0;
  if (volumes) for (const v of store.listVolumes()) (store.removeVolume(v), vols++);
  process.stdout.write(`Removed ${containers} containers, ${steps} cached build steps${volumes ? `, ${vols} volumes` : ''}\n`);
  return 0;
}

async function imagePrune(argv: string[]): Promise<number> {
  const p = parseArgs(argv, pruneSpecs.filter((s) => s.name !== 'volumes'));
  if (p.flags.has('help')) return void process.stdout.write(formatHelp('brig image prune [-f]', "Removes brig build's cached steps and the layers only they use (brig keeps no untagged images).", pruneSpecs)), 0;
  positionals(p, 'brig image prune [-f]', 0);
  if (!(await confirm(p, "This removes brig build's cached steps."))) return 1;
  const { Store, pruneBuildCache } = await storeModule();
  process.stdout.write(`removed ${await pruneBuildCache(new Store())} cached build steps\n`);
  return 0;
}

export const imageGroup = group(
  'image',
  { ls: ['images'], list: ['images'], pull: ['pull'], push: ['push'], build: ['build'], rm: ['rmi'], remove: ['rmi'], inspect: ['inspect', ['--type', 'image']], tag: ['tag'], save: ['save'], load: ['load'], import: ['import-rootfs'] },
  { prune: imagePrune },
);

export const containerGroup = group(
  'container',
  {
    run: ['run'], ls: ['ps'], list: ['ps'], ps: ['ps'], rm: ['rm'], remove: ['rm'], commit: ['commit'], inspect: ['inspect', ['--type', 'container']],
    create: ['create'], start: ['start'], stop: ['stop'], restart: ['restart'], kill: ['kill'], pause: ['pause'], unpause: ['unpause'], wait: ['wait'],
    rename: ['rename'], attach: ['attach'], logs: ['logs'], top: ['top'], stats: ['stats'], exec: ['exec'], cp: ['cp'],
  },
  { prune: containerPrune },
);

const formatSpecs: OptionSpec[] = [{ name: 'format', short: 'f', value: true, arg: 'TEMPLATE', help: "a Go template, e.g. '{{.Client.Version}}' or '{{json .}}'" }, helpSpec];

export function brigVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export async function versionCommand(argv: string[]): Promise<number> {
  const p = parseArgs(argv, formatSpecs);
  if (p.flags.has('help')) return void process.stdout.write(formatHelp('brig version [-f TEMPLATE]', "brig's version, node's and the kernel's.", formatSpecs)), 0;
  positionals(p, 'brig version [OPTIONS]', 0);
  const goArch = arch() === 'x64' ? 'amd64' : arch();
  const v = { Client: { Version: brigVersion(), NodeVersion: process.versions.node, Os: 'linux', Arch: goArch, KernelVersion: release() } };
  const f = one(p, 'format');
  if (f) process.stdout.write(renderTemplate(f, v) + '\n');
  else process.stdout.write(`brig ${v.Client.Version}\n Node:     ${v.Client.NodeVersion}\n OS/Arch:  linux/${goArch}\n Kernel:   ${v.Client.KernelVersion}\n`);
  return 0;
}

export async function infoCommand(argv: string[]): Promise<number> {
  const p = parseArgs(argv, formatSpecs);
  if (p.flags.has('help')) return void process.stdout.write(formatHelp('brig info [-f TEMPLATE]', 'What brig sees on this host: the store, cgroups, the kernel. brig doctor checks it for real.', formatSpecs)), 0;
  positionals(p, 'brig info [OPTIONS]', 0);
  const { Store } = await storeModule();
  const { chooseBackend, discover } = await import('../cgroup/hierarchy.js');
  const store = new Store();
  const h = discover(process.env.BRIG_CGROUP_PARENT || undefined);
  const cgroups: Record<string, string> = {};
  for (const c of ['memory', 'pids', 'cpu', 'cpuset'] as const) {
    const b = chooseBackend(h, [c]);
    cgroups[c] = b.kind === 'none' ? 'rlimit fallback' : b.kind === 'v2' ? `v2 ${b.parent}` : `v1 ${b.places.get(c)?.parent}`;
  }
  const read = (f: string) => {
    try {
      return readFileSync(f, 'utf8').trim();
    } catch {
      return '';
    }
  };
  const info = {
    ServerVersion: brigVersion(),
    Driver: 'overlay (in a user namespace)',
    StoreRoot: store.root,
    Images: store.list().length,
    Containers: store.listContainers().length,
    Volumes: store.listVolumes().length,
    CgroupVersion: h.v2 && h.v1.size ? 'hybrid' : h.v2 ? '2' : h.v1.size ? '1' : 'none',
    CgroupParent: process.env.BRIG_CGROUP_PARENT || '',
    Cgroups: cgroups,
    KernelVersion: release(),
    OperatingSystem: read('/etc/os-release').match(/^PRETTY_NAME="?([^"\n]*)"?/m)?.[1] ?? 'linux',
    Architecture: arch() === 'x64' ? 'x86_64' : arch(),
    Uid: process.getuid?.() ?? -1,
    SeccompActions: read('/proc/sys/kernel/seccomp/actions_avail'),
  };
  const f = one(p, 'format');
  if (f) process.stdout.write(renderTemplate(f, info) + '\n');
  else {
    process.stdout.write(
      `brig ${info.ServerVersion}\n Store:          ${info.StoreRoot}\n Images:         ${info.Images}\n Containers:     ${info.Containers} (kept)\n Volumes:        ${info.Volumes}\n` +
        ` Cgroups:        ${info.CgroupVersion}${info.CgroupParent ? ` (BRIG_CGROUP_PARENT=${info.CgroupParent})` : ''}\n${Object.entries(cgroups).map(([k, v]) => `   ${k.padEnd(8)} ${v}\n`).join('')}` +
        ` Kernel:         ${info.KernelVersion}\n OS:             ${info.OperatingSystem}\n Architecture:   ${info.Architecture}\n Uid:            ${info.Uid}\n Seccomp:        ${info.SeccompActions}\n`,
    );
  }
  return 0;
}

const serviceSpecs: OptionSpec[] = [
  { name: 'socket', short: 'H', value: true, arg: 'PATH', help: 'the unix socket to serve on (default $XDG_RUNTIME_DIR/brig/docker.sock, else /tmp/brig-UID/docker.sock; made 0600)' },
  { name: 'listen', value: true, arg: 'HOST:PORT', help: 'also listen on TCP: anyone who can connect drives your containers (no peer check there)' },
  { name: 'debug', short: 'D', help: 'a line per request on stderr' },
  helpSpec,
];

/** brig system service: the Docker Engine API on a unix socket, in the foreground until SIGINT or SIGTERM. */
export async function serviceCommand(argv: string[]): Promise<number> {
  const p = parseArgs(argv, serviceSpecs);
  if (p.flags.has('help')) return void process.stdout.write(formatHelp('brig system service [--socket PATH] [--listen HOST:PORT]', 'Serves the Docker Engine API (1.41) on a unix socket, so docker (DOCKER_HOST=unix://PATH), docker-compose and dockerode drive brig. Containers outlive the service.', serviceSpecs)), 0;
  positionals(p, 'brig system service [OPTIONS]', 0);
  const { createEngineServer, defaultSocket } = await import('../engine/server.js');
  const socketFlag = one(p, 'socket');
  const socket = socketFlag === undefined ? defaultSocket() : socketFlag.replace(/^unix:\/\//, '');
  const listen = one(p, 'listen');
  if (listen !== undefined) process.stderr.write(`WARNING: --listen ${listen}: the API on TCP has no authentication: any process that can connect there runs containers as you\n`);
  const log = p.flags.has('debug') ? (l: string) => process.stderr.write(`${new Date().toISOString()} ${l}\n`) : (l: string) => (/^(refused|error)/.test(l) ? process.stderr.write(`brig system service: ${l}\n`) : undefined);
  const server = await createEngineServer({ socket, listen, log: (l) => void log(l) });
  process.stderr.write(`brig system service: listening on unix://${server.socket}${server.address ? ` and tcp://${server.address}` : ''} (DOCKER_HOST=unix://${server.socket})\n`);
  await new Promise<void>((resolve) => {
    const leave = () => void server.close().then(resolve, resolve);
    process.once('SIGINT', leave);
    process.once('SIGTERM', leave);
  });
  return 0;
}

export const systemGroup = group('system', {}, { info: infoCommand, prune: systemPrune, version: versionCommand, service: serviceCommand });
