// brig compose [-f FILE]... [-p NAME] [--env-file FILE] [--profile NAME] COMMAND:
// Docker Compose's verbs over src/compose (one function per verb family).
import { ContainerError, getContainer, type ContainerRecord } from '../container/index.js';
import { exitCodeOf } from '../container/common.js';
import { Store } from '../image/store.js';
import { ComposeError } from '../compose/load.js';
import { loadProject, type ProjectModel } from '../compose/model.js';
import { renderConfig } from '../compose/config.js';
import { down, namedServices, restart, runOneoff, serviceContainers, start, stop, up, waitHealthy, withDependencies, type Reporter } from '../compose/lifecycle.js';
import { buildService, ensureImages, findImage, imageRef, pullService } from '../compose/images.js';
import { LABEL, serviceOf } from '../compose/project.js';
import { all, formatHelp, one, parseArgs, UsageError, wholeNumber, type OptionSpec, type Parsed } from './args.js';
import { formatList } from './format.js';
import { ago, human } from './image.js';
import { statusText } from './container.js';

const helpSpec: OptionSpec = { name: 'help', short: 'h', help: 'show this help' };

const globalSpecs: OptionSpec[] = [
  { name: 'file', short: 'f', value: true, repeat: true, arg: 'FILE', help: 'a Compose file (several merge in order; default compose.yaml, compose.yml, docker-compose.yaml, docker-compose.yml here or above)' },
  { name: 'project-name', short: 'p', value: true, arg: 'NAME', help: "the project's name (default: the file's name:, else its directory's)" },
  { name: 'env-file', value: true, repeat: true, arg: 'FILE', help: "variables for interpolation (default: .env in the project's directory)" },
  { name: 'profile', value: true, repeat: true, arg: 'NAME', help: 'also run the services of this profile' },
  { name: 'project-directory', value: true, arg: 'DIR', help: 'where relative paths and .env are taken from (default: the first file\'s directory)', unsupported: 'paths are taken from the first file\'s directory' },
  helpSpec,
];

const COMMANDS: Record<string, string> = {
  up: 'create and start the services',
  down: 'stop and remove containers and networks (volumes too with -v)',
  ps: "the project's containers",
  logs: "the services' output",
  exec: "run a command in a service's running container",
  run: 'run a one-off command in a new container of a service',
  build: 'build the services that have a build:',
  pull: "pull the services' images",
  start: 'start existing containers',
  stop: 'stop containers',
  restart: 'restart containers',
  config: 'print the resolved Compose file',
  images: "the images the project's containers use",
  create: 'create the containers, without starting them',
};

const mainHelp = formatHelp('brig compose [OPTIONS] COMMAND', 'Multi-container applications from compose.yaml, rootless and without a daemon.', globalSpecs, `Commands:\n${Object.entries(COMMANDS)
  .map(([k, v]) => `  ${k.padEnd(10)}${v}`)
  .join('\n')}`);

interface Ctx {
  global: Parsed;
  reporter: Reporter;
  /** Loaded on first use, with the services named on the command line enabled. */
  project(services?: string[]): ProjectModel;
}

function reporter(): Reporter {
  return { say: (l) => process.stderr.write(l + '\n'), warn: (l) => process.stderr.write(l + '\n') };
}

function sub(argv: string[], usage: string, summary: string, specs: OptionSpec[], interspersed = true): Parsed | undefined {
  const all = [...specs, helpSpec];
  const p = parseArgs(argv, all, { interspersed });
  if (p.flags.has('help')) {
    process.stdout.write(formatHelp(usage, summary, all));
    return undefined;
  }
  return p;
}

function timeoutOf(p: Parsed): number | undefined {
  const t = one(p, 'timeout');
  return t === undefined ? undefined : wholeNumber('timeout', t);
}

const timeoutSpec: OptionSpec = { name: 'timeout', short: 't', value: true, arg: 'SECONDS', help: 'seconds to wait for a stop before SIGKILL (default: the stop_grace_period, else 10)' };

/** Each log line prefixed `service-1  | `, as Compose shows them. */
async function printLogs(recs: ContainerRecord[], o: { follow: boolean; tail?: number; timestamps: boolean; prefix: boolean }): Promise<void> {
  const width = Math.max(0, ...recs.map((r) => r.Name.length));
  await Promise.all(
    recs.map(async (r) => {
      const pre = o.prefix ? `${r.Name.padEnd(width)}  | ` : '';
      let pending = '';
      for await (const e of getContainer(r.Id).logs({ follow: o.follow, tail: o.tail })) {
        const text = pending + e.log;
        const lines = text.split('\n');
        pending = lines.pop() ?? '';
        const out = e.stream === 'stderr' ? process.stderr : process.stdout;
        for (const l of lines) out.write(`${pre}${o.timestamps ? e.time + ' ' : ''}${l}\n`);
      }
      if (pending) process.stdout.write(`${pre}${pending}\n`);
    }),
  );
}

const verbsImpl: Record<string, (ctx: Ctx, argv: string[]) => Promise<number>> = {
  async config(ctx, argv) {
    const p = sub(argv, 'brig compose config [--services|--volumes|--profiles|-q]', COMMANDS.config, [
      { name: 'services', help: 'only the service names' },
      { name: 'volumes', help: 'only the volume names' },
      { name: 'profiles', help: 'only the profile names' },
      { name: 'quiet', short: 'q', help: 'only check the files' },
    ]);
    if (!p) return 0;
    const project = ctx.project();
    for (const w of project.warnings) process.stderr.write(`WARN: ${w}\n`);
    if (p.flags.has('quiet')) return 0;
    if (p.flags.has('services')) process.stdout.write(Object.keys(project.services).map((s) => s + '\n').join(''));
    else if (p.flags.has('volumes')) process.stdout.write(Object.keys(project.volumes).map((s) => s + '\n').join(''));
    else if (p.flags.has('profiles')) process.stdout.write([...new Set([...Object.values(project.services), ...Object.values(project.disabled)].flatMap((s) => s.profiles))].sort().map((s) => s + '\n').join(''));
    else process.stdout.write(renderConfig(project));
    return 0;
  },

  async up(ctx, argv) {
    const p = sub(argv, 'brig compose up [OPTIONS] [SERVICE...]', COMMANDS.up, [
      { name: 'detach', short: 'd', help: 'start in the background and return' },
      { name: 'build', help: 'build images before starting' },
      { name: 'wait', help: 'wait until the services run, and are healthy where they have a healthcheck (implies -d)' },
      { name: 'wait-timeout', value: true, arg: 'SECONDS', help: 'how long --wait waits' },
      { name: 'force-recreate', help: 'recreate the containers even if nothing changed' },
      { name: 'no-recreate', help: 'keep existing containers even if their config changed' },
      { name: 'remove-orphans', help: "remove containers of services not in the file" },
      { name: 'abort-on-container-exit', help: 'in the foreground: stop all when one exits' },
      timeoutSpec,
    ]);
    if (!p) return 0;
    const project = ctx.project(p.rest);
    for (const w of project.warnings) process.stderr.write(`WARN: ${w}\n`);
    const detach = p.flags.has('detach') || p.flags.has('wait');
    await up(project, { services: p.rest, build: p.flags.has('build'), forceRecreate: p.flags.has('force-recreate'), noRecreate: p.flags.has('no-recreate'), removeOrphans: p.flags.has('remove-orphans') }, ctx.reporter);
    const names = withDependencies(project, p.rest);
    if (p.flags.has('wait')) {
      const t = one(p, 'wait-timeout');
      await waitHealthy(project, names, t === undefined ? undefined : wholeNumber('wait-timeout', t) * 1000);
      return 0;
    }
    if (detach) return 0;
    // In the foreground: their logs until they all end; ^C stops them (Compose's behaviour).
    let stopping = false;
    const onSignal = () => {
      if (stopping) return;
      stopping = true;
      process.stderr.write('Gracefully stopping... (press Ctrl+C again to force)\n');
      void stop(project, names, { timeout: timeoutOf(p) }, ctx.reporter);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      const recs = serviceContainers(project, names);
      const logs = printLogs(recs, { follow: true, timestamps: false, prefix: true });
      if (p.flags.has('abort-on-container-exit')) {
        await Promise.race(recs.map((r) => getContainer(r.Id).wait()));
        await stop(project, names, { timeout: timeoutOf(p) }, ctx.reporter);
      }
      await logs;
      const codes = await Promise.all(recs.map((r) => getContainer(r.Id).wait().catch(() => 0)));
      return p.flags.has('abort-on-container-exit') ? (codes.find((c) => c !== 0) ?? 0) : 0;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  },

  async create(ctx, argv) {
    const p = sub(argv, 'brig compose create [OPTIONS] [SERVICE...]', COMMANDS.create, [{ name: 'build', help: 'build images first' }, { name: 'force-recreate', help: 'recreate even if nothing changed' }]);
    if (!p) return 0;
    const project = ctx.project(p.rest);
    await up(project, { services: p.rest, build: p.flags.has('build'), forceRecreate: p.flags.has('force-recreate'), noStart: true }, ctx.reporter);
    return 0;
  },

  async down(ctx, argv) {
    const p = sub(argv, 'brig compose down [-v] [--remove-orphans] [-t SECONDS]', COMMANDS.down, [{ name: 'volumes', short: 'v', help: 'also remove the named volumes the file declares' }, { name: 'remove-orphans', help: 'also remove containers of services not in the file' }, timeoutSpec]);
    if (!p) return 0;
    if (p.rest.length) throw new UsageError('brig compose down takes no service names');
    await down(ctx.project(), { volumes: p.flags.has('volumes'), removeOrphans: p.flags.has('remove-orphans'), timeout: timeoutOf(p) }, ctx.reporter);
    return 0;
  },

  async ps(ctx, argv) {
    const p = sub(argv, 'brig compose ps [-a] [-q] [--services] [--format table|json] [SERVICE...]', COMMANDS.ps, [
      { name: 'all', short: 'a', help: 'also stopped containers (and one-off ones)' },
      { name: 'quiet', short: 'q', help: 'only the ids' },
      { name: 'services', help: 'only the service names' },
      { name: 'format', value: true, arg: 'table|json|TEMPLATE', help: 'output format' },
    ]);
    if (!p) return 0;
    const project = ctx.project();
    const recs = serviceContainers(project, p.rest, { oneoff: p.flags.has('all') }).filter((r) => p.flags.has('all') || r.State.Running || r.State.Restarting || r.State.Paused);
    if (p.flags.has('quiet')) process.stdout.write(recs.map((r) => r.Id + '\n').join(''));
    else if (p.flags.has('services')) process.stdout.write([...new Set(recs.map(serviceOf))].map((s) => s + '\n').join(''));
    else
      process.stdout.write(
        formatList(
          recs.map((r) => ({
            ID: r.Id,
            Name: r.Name,
            Image: r.Config.Image,
            Command: JSON.stringify(r.Config.Cmd.join(' ')),
            Project: project.name,
            Service: serviceOf(r),
            Created: ago(r.Created),
            State: r.State.Status,
            Health: r.State.Health?.Status ?? '',
            ExitCode: r.State.ExitCode,
            Status: statusText(r),
            Publishers: ((r.Options as { publish?: { hostIp?: string; hostPort?: number; containerPort: number; protocol?: string }[] }).publish ?? []).map((x) => ({ URL: x.hostIp ?? '127.0.0.1', PublishedPort: x.hostPort ?? 0, TargetPort: x.containerPort, Protocol: x.protocol ?? 'tcp' })),
            Ports: ((r.Options as { publish?: { hostIp?: string; hostPort?: number; containerPort: number; protocol?: string }[] }).publish ?? []).map((x) => `${x.hostIp ?? '127.0.0.1'}:${x.hostPort ?? '?'}->${x.containerPort}/${x.protocol ?? 'tcp'}`).join(', '),
          })),
          one(p, 'format'),
          [
            ['NAME', 'Name'],
            ['IMAGE', 'Image'],
            ['COMMAND', 'Command'],
            ['SERVICE', 'Service'],
            ['CREATED', 'Created'],
            ['STATUS', 'Status'],
            ['PORTS', 'Ports'],
          ],
        ),
      );
    return 0;
  },

  async logs(ctx, argv) {
    const p = sub(argv, 'brig compose logs [-f] [-n N] [-t] [--no-log-prefix] [SERVICE...]', COMMANDS.logs, [
      { name: 'follow', short: 'f', help: 'keep streaming new output' },
      { name: 'tail', short: 'n', value: true, arg: 'N', help: 'only the last N lines of each container' },
      { name: 'timestamps', short: 't', help: 'show times' },
      { name: 'no-log-prefix', help: 'no "service  | " prefix' },
      { name: 'no-color', help: 'accepted (brig prints no colours)' },
    ]);
    if (!p) return 0;
    const project = ctx.project();
    const tail = one(p, 'tail');
    await printLogs(serviceContainers(project, p.rest), { follow: p.flags.has('follow'), tail: tail === undefined || tail === 'all' ? undefined : wholeNumber('tail', tail), timestamps: p.flags.has('timestamps'), prefix: !p.flags.has('no-log-prefix') });
    return 0;
  },

  async exec(ctx, argv) {
    const p = sub(
      argv,
      'brig compose exec [OPTIONS] SERVICE COMMAND [ARG...]',
      COMMANDS.exec,
      [
        { name: 'no-TTY', short: 'T', help: 'no terminal (the default when stdin is not a terminal)' },
        { name: 'detach', short: 'd', help: 'run in the background' },
        { name: 'env', short: 'e', value: true, repeat: true, arg: 'KEY=VAL', help: 'set a variable' },
        { name: 'workdir', short: 'w', value: true, arg: 'DIR', help: 'working directory' },
        { name: 'user', short: 'u', value: true, arg: 'UID[:GID]', help: 'run as this user' },
        { name: 'index', value: true, arg: 'N', help: 'which container of the service (default 1)' },
      ],
      false,
    );
    if (!p) return 0;
    if (p.rest.length < 2) throw new UsageError('brig compose exec [OPTIONS] SERVICE COMMAND [ARG...]');
    const [service, ...cmd] = p.rest;
    const project = ctx.project();
    const index = Number(one(p, 'index') ?? 1);
    const rec = serviceContainers(project, [service]).find((r) => Number(r.Config.Labels[LABEL.number]) === index);
    if (!rec || !rec.State.Running) throw new ComposeError(`service "${service}" is not running`);
    const flags = [...all(p, 'env').flatMap((e) => ['-e', e]), ...(one(p, 'workdir') ? ['-w', one(p, 'workdir')!] : []), ...(one(p, 'user') ? ['-u', one(p, 'user')!] : [])];
    if (p.flags.has('detach')) flags.push('-d');
    else if (!p.flags.has('no-TTY') && process.stdin.isTTY && process.stdout.isTTY) flags.push('-i', '-t');
    else if (!process.stdin.isTTY) flags.push('-i');
    const { execCommand } = await import('./container.js');
    return execCommand([...flags, rec.Id, ...cmd]);
  },

  async run(ctx, argv) {
    const p = sub(
      argv,
      'brig compose run [OPTIONS] SERVICE [COMMAND [ARG...]]',
      COMMANDS.run,
      [
        { name: 'rm', help: 'remove the container when it exits' },
        { name: 'detach', short: 'd', help: 'run in the background, print the container name' },
        { name: 'no-deps', help: "do not start the service's dependencies" },
        { name: 'env', short: 'e', value: true, repeat: true, arg: 'KEY=VAL', help: 'set a variable' },
        { name: 'entrypoint', value: true, arg: 'CMD', help: "replace the service's entrypoint" },
        { name: 'workdir', short: 'w', value: true, arg: 'DIR', help: 'working directory' },
        { name: 'user', short: 'u', value: true, arg: 'UID[:GID]', help: 'run as this user' },
        { name: 'name', value: true, arg: 'NAME', help: "the container's name" },
        { name: 'no-TTY', short: 'T', help: 'accepted (output is never on a terminal yet)' },
        { name: 'build', help: 'build the image first' },
      ],
      false,
    );
    if (!p) return 0;
    if (p.rest.length < 1) throw new UsageError('brig compose run [OPTIONS] SERVICE [COMMAND [ARG...]]');
    const [service, ...cmd] = p.rest;
    const project = ctx.project([service]);
    if (p.flags.has('build') && project.services[service]?.build) await buildService(new Store(), project, project.services[service], ctx.reporter.say);
    const env: Record<string, string> = {};
    for (const kv of all(p, 'env')) {
      const eq = kv.indexOf('=');
      if (eq <= 0) {
        const v = process.env[kv];
        if (v !== undefined) env[kv] = v;
      } else env[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
    const ep = one(p, 'entrypoint');
    // In the foreground, --rm is done here after its output is read (the monitor's own removal could race the reading).
    const c = await runOneoff(project, service, cmd, { rm: p.flags.has('rm') && p.flags.has('detach'), noDeps: p.flags.has('no-deps'), env, entrypoint: ep === undefined ? undefined : ep === '' ? [] : [ep], user: one(p, 'user'), workdir: one(p, 'workdir'), name: one(p, 'name') }, ctx.reporter);
    const name = c.inspect().Name;
    await c.start();
    if (p.flags.has('detach')) {
      process.stdout.write(name + '\n');
      return 0;
    }
    // Its output until it ends, then its exit code.
    try {
      for await (const e of c.logs({ follow: true })) (e.stream === 'stderr' ? process.stderr : process.stdout).write(e.log);
      return await c.wait();
    } finally {
      if (p.flags.has('rm')) await c.remove({ force: true });
    }
  },

  async build(ctx, argv) {
    const p = sub(argv, 'brig compose build [SERVICE...]', COMMANDS.build, [{ name: 'no-cache', help: 'accepted' }, { name: 'pull', help: 'accepted' }]);
    if (!p) return 0;
    const project = ctx.project(p.rest);
    const store = new Store();
    for (const s of namedServices(project, p.rest)) if (s.build) await buildService(store, project, s, ctx.reporter.say);
    return 0;
  },

  async pull(ctx, argv) {
    const p = sub(argv, 'brig compose pull [SERVICE...]', COMMANDS.pull, [{ name: 'ignore-buildable', help: 'skip services with a build:' }, { name: 'quiet', short: 'q', help: 'less output' }]);
    if (!p) return 0;
    const project = ctx.project(p.rest);
    const store = new Store();
    // A service with build: is built, not pulled.
    for (const s of namedServices(project, p.rest)) if (!s.build) await pullService(store, project, s, ctx.reporter.say);
    return 0;
  },

  async start(ctx, argv) {
    const p = sub(argv, 'brig compose start [SERVICE...]', COMMANDS.start, []);
    if (!p) return 0;
    await start(ctx.project(), p.rest, ctx.reporter);
    return 0;
  },

  async stop(ctx, argv) {
    const p = sub(argv, 'brig compose stop [-t SECONDS] [SERVICE...]', COMMANDS.stop, [timeoutSpec]);
    if (!p) return 0;
    await stop(ctx.project(), p.rest, { timeout: timeoutOf(p) }, ctx.reporter);
    return 0;
  },

  async restart(ctx, argv) {
    const p = sub(argv, 'brig compose restart [-t SECONDS] [SERVICE...]', COMMANDS.restart, [timeoutSpec]);
    if (!p) return 0;
    await restart(ctx.project(), p.rest, { timeout: timeoutOf(p) }, ctx.reporter);
    return 0;
  },

  async images(ctx, argv) {
    const p = sub(argv, 'brig compose images [-q] [SERVICE...]', COMMANDS.images, [{ name: 'quiet', short: 'q', help: 'only the image ids' }, { name: 'format', value: true, arg: 'table|json', help: 'output format' }]);
    if (!p) return 0;
    const project = ctx.project();
    const store = new Store();
    const rows = serviceContainers(project, p.rest).map((r) => {
      const s = project.services[serviceOf(r)];
      const ref = s ? imageRef(project, s) : r.Config.Image;
      const img = findImage(store, ref);
      const colon = ref.lastIndexOf(':');
      const [repo, tag] = colon > ref.lastIndexOf('/') ? [ref.slice(0, colon), ref.slice(colon + 1)] : [ref, 'latest'];
      let size = 0;
      try {
        size = store.list().find((x) => x.digest === img?.digest)?.size ?? 0;
      } catch {
        // listed without a size
      }
      return { Container: r.Name, Repository: repo, Tag: tag, ID: (img?.digest ?? '').replace(/^sha256:/, '').slice(0, 12), Size: human(size) };
    });
    if (p.flags.has('quiet')) process.stdout.write([...new Set(rows.map((r) => r.ID))].map((x) => x + '\n').join(''));
    else
      process.stdout.write(
        formatList(rows, one(p, 'format'), [
          ['CONTAINER', 'Container'],
          ['REPOSITORY', 'Repository'],
          ['TAG', 'Tag'],
          ['IMAGE ID', 'ID'],
          ['SIZE', 'Size'],
        ]),
      );
    return 0;
  },
};

export async function composeCommand(argv: string[]): Promise<number> {
  const g = parseArgs(argv, globalSpecs, { interspersed: false });
  if (g.flags.has('help') || g.rest.length === 0) {
    process.stdout.write(mainHelp);
    return g.rest.length === 0 && !g.flags.has('help') ? 125 : 0;
  }
  const [verbName, ...rest] = g.rest;
  const fn = verbsImpl[verbName];
  if (!fn) throw new UsageError(`unknown compose command ${JSON.stringify(verbName)} (brig compose --help lists them)`);
  let cached: ProjectModel | undefined;
  const ctx: Ctx = {
    global: g,
    reporter: reporter(),
    project(services) {
      cached ??= loadProject({ files: all(g, 'file'), envFiles: all(g, 'env-file'), projectName: one(g, 'project-name'), profiles: all(g, 'profile'), services, env: process.env });
      return cached;
    },
  };
  try {
    return await fn(ctx, rest);
  } catch (e) {
    if (e instanceof ComposeError || e instanceof ContainerError || (e as Error)?.name === 'OptionsError') {
      process.stderr.write(`brig compose ${verbName}: ${(e as Error).message}\n`);
      return 1;
    }
    throw e;
  }
}

void exitCodeOf;
void ensureImages;
