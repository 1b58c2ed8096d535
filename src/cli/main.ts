// bin/brig: a thin CLI over the library, one file per verb (crun's layout).
// Verb modules are imported on demand: `brig run` loads the sandbox, not the
// image store's archive code, the registry client or the Dockerfile builder.
import { BrigError } from '../errors.js';
import { didYouMean, UsageError } from './args.js';

/** brig's own failure (a bad flag, a setup step), as Docker's 125. */
export const EXIT_BRIG_ERROR = 125;

export interface Verb {
  summary: string;
  main: (argv: string[]) => Promise<number>;
  /** Printed by `brig help VERB`; when left out, `VERB --help` is asked. */
  help?: string;
  /** Left out of the command list (group aliases, completion's helper). */
  hidden?: boolean;
}

type Main = (argv: string[]) => Promise<number>;

/** A verb's main from a module loaded when the verb is used. */
export function lazy<M>(load: () => Promise<M>, pick: (m: M) => Main): Main {
  return async (argv) => pick(await load())(argv);
}

const run = () => import('./run.js');
const image = () => import('./image.js');
const registry = () => import('./registry.js');
const system = () => import('./system.js');
const container = () => import('./container.js');

export const verbs: Record<string, Verb> = {
  run: { summary: 'run a command in a new sandbox (from an image, or the host read-only)', main: lazy(run, (m) => m.runCommand) },
  images: { summary: 'list the images in your store', main: lazy(image, (m) => m.imagesCommand) },
  pull: { summary: 'pull an image from a registry', main: lazy(registry, (m) => m.pullCommand) },
  push: { summary: 'push an image to a registry', main: lazy(registry, (m) => m.pushCommand) },
  build: { summary: 'build an image from a Dockerfile', main: lazy(image, (m) => m.buildCommand) },
  'import-rootfs': { summary: 'make a base image from a directory or tarball', main: lazy(image, (m) => m.importCommand) },
  inspect: { summary: 'show containers or images as JSON, or fields of them with --format', main: lazy(container, (m) => m.inspectCommand) },
  tag: { summary: 'give an image another name', main: lazy(image, (m) => m.tagCommand) },
  rmi: { summary: 'remove images (and layers nothing else uses)', main: lazy(image, (m) => m.rmiCommand) },
  save: { summary: 'write images as an OCI image layout or docker archive (tar, dir or stdout)', main: lazy(image, (m) => m.saveCommand) },
  load: { summary: 'load an OCI image layout or docker save archive (file or stdin)', main: lazy(image, (m) => m.loadCommand) },
  // Containers (src/cli/container.ts): ps, rm, inspect and commit there serve the containers kept by run --name IMAGE too.
  create: { summary: 'make a container (brig start runs it)', main: lazy(container, (m) => m.createCommand) },
  start: { summary: 'start containers', main: lazy(container, (m) => m.startCommand) },
  stop: { summary: 'stop containers', main: lazy(container, (m) => m.stopCommand) },
  restart: { summary: 'restart containers', main: lazy(container, (m) => m.restartCommand) },
  kill: { summary: "signal containers' programs", main: lazy(container, (m) => m.killCommand) },
  pause: { summary: 'freeze containers', main: lazy(container, (m) => m.pauseCommand) },
  unpause: { summary: 'thaw containers', main: lazy(container, (m) => m.unpauseCommand) },
  wait: { summary: 'wait for containers to stop, print exit codes', main: lazy(container, (m) => m.waitCommand) },
  rm: { summary: 'remove containers', main: lazy(container, (m) => m.rmCommand) },
  rename: { summary: 'rename a container', main: lazy(container, (m) => m.renameCommand) },
  attach: { summary: "attach to a running container's output (and input, with a terminal)", main: lazy(container, (m) => m.attachCommand) },
  ps: { summary: 'list containers', main: lazy(container, (m) => m.psCommand) },
  logs: { summary: "a container's output", main: lazy(container, (m) => m.logsCommand) },
  top: { summary: "a container's processes", main: lazy(container, (m) => m.topCommand) },
  port: { summary: "a container's published ports", main: lazy(container, (m) => m.portCommand) },
  stats: { summary: "containers' CPU, memory, pids", main: lazy(container, (m) => m.statsCommand) },
  exec: { summary: 'run a command in a running container', main: lazy(container, (m) => m.execCommand) },
  cp: { summary: 'copy files between a container and the host', main: lazy(container, (m) => m.cpCommand) },
  commit: { summary: "a container's changes as a new image", main: lazy(container, (m) => m.commitCommand) },
  login: { summary: 'store credentials for a registry', main: lazy(registry, (m) => m.loginCommand) },
  logout: { summary: 'remove stored credentials for a registry', main: lazy(registry, (m) => m.logoutCommand) },
  // [i25 compose] src/cli/compose.ts
  compose: { summary: 'multi-container applications from compose.yaml: up, down, ps, logs, exec, run, build, config, ...', main: lazy(() => import('./compose.js'), (m) => m.composeCommand) },
  volume: { summary: 'named volumes: create, ls, inspect, rm, prune', main: lazy(() => import('./volume.js'), (m) => m.volumeCommand) },
  network: { summary: 'user networks: create, ls, inspect, rm, prune, connect, disconnect', main: lazy(() => import('./network.js'), (m) => m.networkCommand) },
  image: { summary: 'image commands by group: ls, pull, push, build, rm, inspect, tag, save, load, import, prune', main: lazy(system, (m) => m.imageGroup) },
  container: { summary: 'container commands by group: run, create, start, stop, exec, logs, ls, rm, commit, inspect, prune, ...', main: lazy(system, (m) => m.containerGroup) },
  system: { summary: 'info, prune, service (the Docker Engine API on a socket)', main: lazy(system, (m) => m.systemGroup) },
  seccomp: { summary: 'dump, test or learn syscall policies', main: lazy(() => import('./seccomp.js'), (m) => m.seccompCommand) },
  profile: { summary: 'list, show and check policy profiles', main: lazy(() => import('./profile.js'), (m) => m.profileCommand) },
  listen: { summary: 'serve a command on a TCP port, a sandbox per connection (nsjail\'s listen mode)', main: lazy(() => import('./listen.js'), (m) => m.listenCommand) },
  box: { summary: 'persistent boxes: create, run in, remove', main: lazy(() => import('./box.js'), (m) => m.boxCommand) },
  serve: { summary: 'the execution service: Piston and Judge0 APIs over HTTP, a playground', main: lazy(() => import('./serve.js'), (m) => m.serveCommand) },
  worker: { summary: 'run the jobs brig serve --redis queues, on this machine', main: lazy(() => import('./worker.js'), (m) => m.workerCommand) },
  runtimes: { summary: 'list the runtimes brig serve offers on this host', main: lazy(() => import('./serve.js'), (m) => m.runtimesCommand) },
  doctor: { summary: 'check what this host gives a rootless user, and how to fix what is missing', main: lazy(() => import('./doctor.js'), (m) => m.doctorCommand) },
  info: { summary: 'what brig sees on this host: store, cgroups, kernel', main: lazy(system, (m) => m.infoCommand) },
  version: { summary: "brig's version, node's and the kernel's", main: lazy(system, (m) => m.versionCommand) },
  completion: { summary: 'shell completion: bash, zsh or fish', main: lazy(() => import('./completion.js'), (m) => m.completionCommand) },
};

export function mainHelp(): string {
  return `Usage: brig [--help | --version] COMMAND [OPTIONS] [ARG...]

brig: a rootless container sandbox for untrusted code.

Commands:
${Object.entries(verbs)
  .filter(([, v]) => !v.hidden)
  .map(([name, v]) => `  ${name.padEnd(14)}${v.summary}`)
  .join('\n')}

Run 'brig COMMAND --help' for a command's options. Docker's flags mean what
they mean in Docker; docs/cli.md has the table of what brig supports.
`;
}

const KNOWN_ERRORS = new Set(['UsageError', 'SeccompPolicyError', 'SeccompCompileError', 'TarError']);

/** A system error (ENOENT opening a file the user named) in a line: the call, the path, the errno. */
function systemErrorLine(e: NodeJS.ErrnoException & { dest?: string }): string | undefined {
  if (typeof e.code !== 'string' || !/^E[A-Z0-9]+$/.test(e.code)) return undefined;
  const text = e.message.replace(/^E[A-Z0-9]+: /, '').replace(/, \w+ '.*'$/, '');
  const where = e.syscall ? `${e.syscall}${e.path ? ` ${e.path}` : ''}${e.dest ? ` -> ${e.dest}` : ''}: ` : '';
  return `${where}${e.code} (${text})`;
}

/** One line for any error: what a user can cause in their terms; anything else marked internal. */
/** Any thrown value as text, even one whose toString is missing or throws (a fuzzer's favourite). */
function safeString(v: unknown): string {
  try {
    return String(v);
  } catch {
    return Object.prototype.toString.call(v);
  }
}

export function describeError(verb: string, e: unknown): { line: string; internal: boolean } {
  const err = e as Error;
  let msg: string;
  let internal = false;
  if (err instanceof BrigError || KNOWN_ERRORS.has(err?.name)) msg = err.message;
  else if (err instanceof Error && systemErrorLine(err)) msg = systemErrorLine(err)!;
  else {
    msg = `internal error: ${err instanceof Error ? `${err.name}: ${err.message}` : safeString(e)} (BRIG_DEBUG=1 shows where)`;
    internal = true;
  }
  // One prefix: messages that carry their own are trimmed of it.
  const own = new RegExp(`^(brig(:| ${verb.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:) )+`);
  msg = msg.replace(own, '');
  // Library errors that name their operation after the verb ("build: ...", "load: ..."): said once.
  const last = verb.split(' ').pop()!;
  if (msg.startsWith(`${last}: `)) msg = msg.slice(last.length + 2);
  msg = msg
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .reduce((acc, l) => (acc ? `${acc}${acc.endsWith(':') ? ' ' : '; '}${l}` : l), '');
  return { line: `brig ${verb}: ${msg}`, internal };
}

function report(verb: string, e: unknown): number {
  const { line } = describeError(verb, e);
  process.stderr.write(line + '\n');
  if (process.env.BRIG_DEBUG === '1' && e instanceof Error && e.stack) process.stderr.write(e.stack + '\n');
  return EXIT_BRIG_ERROR;
}

let current = 'brig';

/** Runs a verb by name (the group aliases come back here); `label` is what the user typed, for messages. */
export async function runVerb(verb: string, argv: string[], label = verb): Promise<number> {
  const v = verbs[verb];
  if (!v) throw new UsageError(`unknown command ${JSON.stringify(verb)}`);
  current = label;
  return v.main(argv);
}

let stdoutGuarded = false;
/**
 * process.stdout, made ready: a reader that goes away (brig images | head)
 * ends the writing, not with a trace. `run` asks for it only when it writes:
 * making process.stdout on a pipe loads node:net, which a run from a judge's
 * pipe would otherwise pay for on every start, to write nothing.
 */
export function guardedStdout(): NodeJS.WriteStream {
  if (!stdoutGuarded) {
    stdoutGuarded = true;
    process.stdout.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    });
  }
  return process.stdout;
}

export async function main(argv: string[]): Promise<number> {
  if (argv[0] !== 'run') guardedStdout();
  const fatal = (e: unknown) => {
    process.exitCode = report(current, e);
    process.exit(process.exitCode);
  };
  process.on('uncaughtException', fatal);
  process.on('unhandledRejection', fatal);

  const [verb, ...rest] = argv;
  if (verb === undefined || verb === '--help' || verb === '-h' || verb === 'help') {
    if (verb === 'help' && rest[0] && verbs[rest[0]]) {
      if (verbs[rest[0]].help) process.stdout.write(verbs[rest[0]].help!);
      else return main([rest[0], '--help']);
    } else process.stdout.write(mainHelp());
    return 0;
  }
  if (verb === '--version' || verb === '-v') return main(['version']);
  if (verb.startsWith('-')) {
    process.stderr.write(`brig: unknown flag: ${verb} (options go after the command: brig COMMAND [OPTIONS])\n`);
    return EXIT_BRIG_ERROR;
  }
  if (!verbs[verb]) {
    const guess = didYouMean(verb, Object.keys(verbs));
    process.stderr.write(`brig: ${JSON.stringify(verb)} is not a brig command${guess ? ` (did you mean ${guess}?)` : ''}; brig --help lists them\n`);
    return EXIT_BRIG_ERROR;
  }
  current = verb;
  try {
    return await verbs[verb].main(rest);
  } catch (e) {
    return report(current, e);
  }
}
