// brig create | start | stop | restart | kill | pause | unpause | wait | rm |
// rename | ps | inspect | logs | top | stats | cp | exec, and run -d: the
// container verbs, thin over src/container (Docker's names, flags, exit codes).
import { spawn as spawnProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, renameSync, rmSync, statSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { ContainerError, createContainer, getContainer, listContainers, startAll, type Container, type ContainerRecord } from '../container/index.js';
import { ago, exitCodeOf } from '../container/common.js';
import { healthSuffix } from '../container/health.js';
import { ImageError, Store } from '../image/store.js';
import { all, formatHelp, one, parseArgs, parseInterleaved, positionals, UsageError, wholeNumber, type OptionSpec, type Parsed } from './args.js';
import { containerRunSpecs, healthFromFlags } from './container-specs.js';
import { relayTerminal } from './terminal.js';
import { inUserTerms, runSpecs, runTarget, sandboxOptions } from './run.js';
import { human, inspectHelp, inspectOne, inspectSpecs, printInspected, verb as imageVerb } from './image.js';

const helpSpec: OptionSpec = { name: 'help', short: 'h', help: 'show this help' };

/** A verb as image.ts's, with a ContainerError said as Docker says it ("Error: ...") and its exit code. */
function verb(help: string, specs: OptionSpec[], fn: (p: Parsed) => number | Promise<number>, parse = parseInterleaved) {
  return imageVerb(help, specs, fn, parse, (e) => {
    if (!(e instanceof ContainerError)) return undefined;
    process.stderr.write(`Error: ${e.message}\n`);
    return e.exitCode;
  });
}

function need(p: Parsed, usage: string, min = 1): string[] {
  if (p.rest.length < min) throw new UsageError(`"${usage.split(' ').slice(0, 2).join(' ')}" requires at least ${min} argument${min > 1 ? 's' : ''}: ${usage}`);
  return p.rest;
}

/** Each container in turn; errors are printed and the last one's code returned (Docker goes on past a failure). */
async function each(refs: string[], fn: (c: Container, ref: string) => Promise<void> | void): Promise<number> {
  let code = 0;
  for (const ref of refs) {
    try {
      await fn(getContainer(ref), ref);
      process.stdout.write(`${ref}\n`);
    } catch (e) {
      if (!(e instanceof ContainerError)) throw e;
      process.stderr.write(`Error: ${e.message}\n`);
      code = e.exitCode;
    }
  }
  return code;
}

// ---- run -d and create -------------------------------------------------------

function keyVals(option: string, list: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of list) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new UsageError(`--${option}: expected KEY=VAL, got ${JSON.stringify(kv)}`);
    out[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return out;
}

function createFrom(p: Parsed, verbName: 'run' | 'create', extra: { stdinOnce?: boolean } = {}): Container {
  const target = runTarget(p, verbName);
  // --name names the container here (its writable layer follows its id), so --rm goes with it.
  const opts = sandboxOptions({ ...p, opts: new Map([...p.opts].filter(([k]) => k !== 'name')) }) as Record<string, unknown>;
  if (target.image) opts.image = target.image;
  delete opts.stdin;
  delete opts.stdout;
  delete opts.stderr;
  const logOpts = keyVals('log-opt', all(p, 'log-opt'));
  for (const k of Object.keys(logOpts)) if (k !== 'max-size' && k !== 'max-file') throw new UsageError(`--log-opt: unknown option ${k} (json-file takes max-size and max-file)`);
  if (logOpts['max-file'] !== undefined) wholeNumber('log-opt max-file', logOpts['max-file']);
  const stopTimeout = one(p, 'stop-timeout');
  return createContainer(target.command, {
    ...opts,
    name: one(p, 'name'),
    restart: one(p, 'restart'),
    autoRemove: p.flags.has('rm'),
    stopSignal: one(p, 'stop-signal'),
    stopTimeout: stopTimeout === undefined ? undefined : wholeNumber('stop-timeout', stopTimeout),
    labels: keyVals('label', all(p, 'label')),
    logOptions: logOpts,
    tty: p.flags.has('tty'),
    openStdin: p.flags.has('interactive'),
    healthcheck: healthFromFlags(p),
    ...(all(p, 'network-alias').length ? { networkAliases: all(p, 'network-alias') } : {}),
    ...(all(p, 'link').length ? { links: all(p, 'link') } : {}),
    ...(p.flags.has('publish-all') ? { publishAll: true } : {}),
    ...extra,
  });
}

/**
 * Attaches this terminal (or these pipes) to a running container through its
 * monitor: its output here until it ends, then its exit code; with stdin,
 * ours to it (raw when both are terminals, so ^C and the like reach its line
 * discipline), the detach keys ending the attach (exit 0, the container
 * runs on); our size passed on at the start and on every resize.
 */
async function attachTerminal(c: Container, o: { stdin: boolean; backlog?: boolean; detachKeys?: string }): Promise<number> {
  const rec = c.inspect();
  const withStdin = o.stdin && rec.Config.OpenStdin;
  const stdin = process.stdin;
  const out = process.stdout;
  let raw = false;
  const onResize = () => {
    if (out.columns && out.rows) c.resize(out.columns, out.rows).catch(() => {});
  };
  if (rec.Config.Tty && out.isTTY) {
    onResize();
    out.on('resize', onResize);
  }
  if (withStdin && rec.Config.Tty && stdin.isTTY) {
    stdin.setRawMode(true);
    raw = true;
  }
  try {
    const r = await c.attach({ stdin: withStdin ? stdin : undefined, stdout: process.stdout, stderr: process.stderr, detachKeys: o.detachKeys, backlog: o.backlog });
    if (r.detached) return 0;
    return await c.wait();
  } finally {
    out.off('resize', onResize);
    if (raw) stdin.setRawMode(false);
    if (withStdin) stdin.pause();
  }
}

/** brig run -d (src/cli/run.ts hands over here): create, start, print the id. */
export async function runDetached(p: Parsed): Promise<number> {
  let c: Container;
  try {
    c = createFrom(p, 'run');
    await c.start();
  } catch (e) {
    if (e instanceof ContainerError) {
      process.stderr.write(`brig run: ${e.message}\n`);
      // Docker's codes: 127 command not found, 126 not executable, 125 its own failure.
      return e.exitCode === 126 || e.exitCode === 127 ? e.exitCode : 125;
    }
    throw e;
  }
  process.stdout.write(`${c.id}\n`);
  return 0;
}

/**
 * brig run --network NET (a user network, or container:NAME) in the
 * foreground: the program runs as a container, since only a container's
 * monitor joins such a network (it makes the namespaces under the network
 * holder, holds the lease and keeps the names current for the program's
 * life). This terminal is attached until it ends; then it is removed (unless
 * --name keeps it) and its exit code is ours. ^C or SIGTERM here is passed on.
 */
export async function runOnNetwork(p: Parsed): Promise<number> {
  for (const o of ['report', 'report-format']) if (p.opts.has(o)) throw new UsageError(`--${o}: not with --network ${one(p, 'network')} (the program runs as a container there: brig inspect and brig logs tell how it ended)`);
  const keep = p.opts.has('name') && !p.flags.has('rm');
  let c: Container | undefined;
  // Removed here, after its output was read (the monitor's own removal could race the reading).
  const parsed: Parsed = { ...p, flags: new Set([...p.flags].filter((f) => f !== 'rm')) };
  // Docker's sig-proxy: ^C and SIGTERM here are passed on to the program (once it runs, if they come before).
  let started = false;
  let pending: NodeJS.Signals | undefined;
  const stop = (sig: NodeJS.Signals) => {
    if (started) void c?.kill(sig).catch(() => {});
    else pending = sig;
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  try {
    try {
      // Docker's run -i: the end of our input is the end of the program's.
      c = createFrom(parsed, 'run', { stdinOnce: true });
      await c.start();
      started = true;
      if (pending) stop(pending);
    } catch (e) {
      if (e instanceof ContainerError) {
        process.stderr.write(`brig run: ${e.message}\n`);
        return e.exitCode === 126 || e.exitCode === 127 ? e.exitCode : 125;
      }
      // An option's error in the user's terms: the flag they typed (--network: network X not found).
      throw inUserTerms(e, p, {});
    }
    try {
      return await attachTerminal(c, { stdin: p.flags.has('interactive'), backlog: true });
    } catch (e) {
      // It ran to its end before the attach: its output is in the log.
      if (!(e instanceof ContainerError) || !/stopped container/.test(e.message)) throw e;
      for await (const l of c.logs({})) (l.stream === 'stderr' ? process.stderr : process.stdout).write(l.log);
      return c.wait();
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    if (c && !keep) await c.remove({ force: true }).catch(() => {});
  }
}

const createSpecs = [...runSpecs, ...containerRunSpecs.filter((s) => s.name !== 'detach')];
const createHelp = formatHelp('brig create [OPTIONS] IMAGE [COMMAND [ARG...]]\n       brig create [OPTIONS] -- COMMAND [ARG...]', "Makes a container (state created) with run's options; brig start runs it.", createSpecs);
export const createCommand = verb(
  createHelp,
  createSpecs,
  (p) => {
    process.stdout.write(`${createFrom(p, 'create').id}\n`);
    return 0;
  },
  (argv, specs) => parseArgs(argv, specs, { interspersed: false }),
);

// ---- lifecycle ----------------------------------------------------------------

const detachKeysSpec: OptionSpec = { name: 'detach-keys', value: true, arg: 'KEYS', help: 'the keys that detach, leaving the container running (default ctrl-p,ctrl-q)' };
const startSpecs: OptionSpec[] = [
  { name: 'all', help: 'start every container whose restart policy is always or unless-stopped (for a user service at boot)' },
  { name: 'attach', short: 'a', help: "attach to the container's output until it exits, and exit with its code" },
  { name: 'interactive', short: 'i', help: "attach this stdin to the container's (one made with -i)" },
  detachKeysSpec,
  helpSpec,
];
const startHelp = formatHelp('brig start [-a] [-i] CONTAINER... | brig start --all', 'Starts containers (each gets a monitor process that outlives this command).', startSpecs);
export const startCommand = verb(startHelp, startSpecs, async (p) => {
  if (p.flags.has('all')) {
    for (const n of await startAll()) process.stdout.write(`${n}\n`);
    return 0;
  }
  const refs = need(p, 'brig start CONTAINER...');
  if (p.flags.has('attach') || p.flags.has('interactive')) {
    if (refs.length !== 1) throw new UsageError('brig start -a/-i: one container only');
    const c = getContainer(refs[0]);
    await c.start();
    // What the program wrote before this attach is sent first (the monitor keeps this run's last 64 KiB).
    try {
      return await attachTerminal(c, { stdin: p.flags.has('interactive'), backlog: true, detachKeys: one(p, 'detach-keys') });
    } catch (e) {
      // It ran to its end before the attach: its output is in the log.
      if (!(e instanceof ContainerError) || !/stopped container/.test(e.message)) throw e;
      for await (const l of c.logs({})) (l.stream === 'stderr' ? process.stderr : process.stdout).write(l.log);
      return c.wait();
    }
  }
  return each(refs, (c) => c.start());
});

const stopSpecs: OptionSpec[] = [{ name: 'time', short: 't', value: true, arg: 'SECONDS', help: 'seconds to wait before SIGKILL (default: the container\'s --stop-timeout, 10)' }, { name: 'signal', short: 's', value: true, arg: 'SIGNAL', help: 'the signal to send first (default: its --stop-signal, SIGTERM)' }, helpSpec];
const stopHelp = formatHelp('brig stop [-t S] CONTAINER...', 'Stops containers: the stop signal, then SIGKILL after the timeout.', stopSpecs);
export const stopCommand = verb(stopHelp, stopSpecs, (p) => {
  const t = one(p, 'time');
  const timeout = t === undefined ? undefined : wholeNumber('time', t);
  return each(need(p, 'brig stop CONTAINER...'), (c) => c.stop({ timeout, signal: one(p, 'signal') }));
});

const restartHelp = formatHelp('brig restart [-t S] CONTAINER...', 'Stops, then starts containers.', stopSpecs);
export const restartCommand = verb(restartHelp, stopSpecs, (p) => {
  const t = one(p, 'time');
  const timeout = t === undefined ? undefined : wholeNumber('time', t);
  return each(need(p, 'brig restart CONTAINER...'), (c) => c.restart({ timeout }));
});

const killSpecs: OptionSpec[] = [{ name: 'signal', short: 's', value: true, arg: 'SIGNAL', help: 'the signal (default SIGKILL, which ends the whole container)' }, helpSpec];
const killHelp = formatHelp('brig kill [-s SIGNAL] CONTAINER...', "Sends a signal to containers' programs.", killSpecs);
export const killCommand = verb(killHelp, killSpecs, (p) => each(need(p, 'brig kill CONTAINER...'), (c) => c.kill(one(p, 'signal') ?? 'SIGKILL')));

const pauseHelp = formatHelp('brig pause CONTAINER...', "Freezes every process of containers: the cgroup freezer (v1 freezer.state, v2 cgroup.freeze) where brig has a cgroup, else SIGSTOP to each process.", [helpSpec]);
export const pauseCommand = verb(pauseHelp, [helpSpec], (p) => each(need(p, 'brig pause CONTAINER...'), async (c) => void (await c.pause())));
const unpauseHelp = formatHelp('brig unpause CONTAINER...', 'Thaws paused containers.', [helpSpec]);
export const unpauseCommand = verb(unpauseHelp, [helpSpec], (p) => each(need(p, 'brig unpause CONTAINER...'), (c) => c.unpause()));

const waitHelp = formatHelp('brig wait CONTAINER...', "Waits until containers stop; prints each one's exit code.", [helpSpec]);
export const waitCommand = verb(waitHelp, [helpSpec], async (p) => {
  let code = 0;
  for (const ref of need(p, 'brig wait CONTAINER...')) {
    try {
      process.stdout.write(`${await getContainer(ref).wait()}\n`);
    } catch (e) {
      if (!(e instanceof ContainerError)) throw e;
      process.stderr.write(`Error: ${e.message}\n`);
      code = e.exitCode;
    }
  }
  return code;
});

const rmSpecs: OptionSpec[] = [{ name: 'force', short: 'f', help: 'kill a running container first' }, { name: 'volumes', short: 'v', help: "accepted for Docker's sake: brig's containers have no anonymous volumes" }, helpSpec];
const rmHelp = formatHelp('brig rm [-f] CONTAINER...', 'Removes containers: record, logs, writable layer. Also removes containers kept by brig run --image X --name C.', rmSpecs);
export const rmCommand = verb(rmHelp, rmSpecs, async (p) => {
  let code = 0;
  for (const ref of need(p, 'brig rm CONTAINER...')) {
    try {
      await getContainer(ref).remove({ force: p.flags.has('force') });
      process.stdout.write(`${ref}\n`);
    } catch (e) {
      if (!(e instanceof ContainerError)) throw e;
      // A container kept by a foreground run (brig run --image X --name C).
      if (/^No such container/.test(e.message) && new Store().listContainers().some((k) => k.name === ref)) {
        await new Store().removeContainer(ref);
        process.stdout.write(`${ref}\n`);
        continue;
      }
      if (p.flags.has('force') && /^No such container/.test(e.message)) continue;
      process.stderr.write(`Error: ${e.message}\n`);
      code = e.exitCode;
    }
  }
  return code;
});

const renameHelp = formatHelp('brig rename CONTAINER NEW_NAME', 'Renames a container.', [helpSpec]);
export const renameCommand = verb(renameHelp, [helpSpec], (p) => {
  if (p.rest.length !== 2) throw new UsageError('brig rename CONTAINER NEW_NAME');
  getContainer(p.rest[0]).rename(p.rest[1]);
  return 0;
});

// ---- ps and inspect -------------------------------------------------------------


/**
 * The containers a foreground `brig run --name C IMAGE` kept (a writable
 * layer in the store, no record, nothing running) as ps rows: exited, an id
 * derived from the name (stable, 64 hex as Docker's), the layer's last
 * change as the time it ended. Layers of records (named by their id) are not repeated.
 */
function keptRecords(records: ContainerRecord[]): ContainerRecord[] {
  const layers = new Set(records.map((r) => r.Options.container).filter((n): n is string => typeof n === 'string'));
  let kept: { name: string; ref: string; created: string }[];
  const store = new Store();
  try {
    kept = store.listContainers();
  } catch {
    return []; // no store yet
  }
  return kept
    .filter((k) => !layers.has(k.name) && !/^[0-9a-f]{64}$/.test(k.name))
    .map((k) => {
      let ended = k.created;
      try {
        ended = statSync(join(store.containerDir(k.name), 'upper')).mtime.toISOString();
      } catch {
        // no upper directory: its creation then
      }
      const exited: ContainerRecord['State'] = { Status: 'exited', Running: false, Paused: false, Restarting: false, OOMKilled: false, Dead: false, Pid: 0, ExitCode: 0, Error: '', StartedAt: k.created, FinishedAt: ended };
      return {
        Id: createHash('sha256').update(`brig-kept-container:${k.name}`).digest('hex'),
        Name: k.name,
        Created: k.created,
        Path: '',
        Args: [],
        Config: { Cmd: [], Image: k.ref, Env: [], WorkingDir: '', Labels: {}, Tty: false, OpenStdin: false, StopSignal: 'SIGTERM', StopTimeout: 10, Hostname: '' },
        HostConfig: { RestartPolicy: { Name: 'no', MaximumRetryCount: 0 }, AutoRemove: false, LogConfig: { Type: 'json-file', Config: {} }, Memory: 0, NanoCpus: 0, PidsLimit: 0, NetworkMode: '', Binds: [] },
        State: exited,
        RestartCount: 0,
        LogPath: '',
        Options: { container: k.name },
        Cgroups: [],
        Kept: true,
      } as ContainerRecord & { Kept: true };
    });
}

/** Docker's STATUS column. */
export function statusText(r: ContainerRecord): string {
  const s = r.State;
  if ((r as { Kept?: boolean }).Kept) return `Exited ${ago(s.FinishedAt)} ago (kept by brig run --name; its exit code is not recorded)`;
  if (s.Status === 'created') return 'Created';
  if (s.Status === 'restarting' || s.Restarting) return `Restarting (${s.ExitCode}) ${ago(s.FinishedAt)} ago`;
  if (s.Running) return `Up ${ago(s.StartedAt)}${s.Paused ? ' (Paused)' : healthSuffix(r)}`;
  if (s.Status === 'removing') return 'Removal In Progress';
  return `Exited (${s.ExitCode}) ${ago(s.FinishedAt)} ago${s.Error ? `: ${s.Error}` : ''}`;
}

function stateName(r: ContainerRecord): string {
  return r.State.Paused ? 'paused' : r.State.Status;
}

const psSpecs: OptionSpec[] = [
  { name: 'all', short: 'a', help: 'all containers (default: running ones)' },
  { name: 'quiet', short: 'q', help: 'ids only' },
  { name: 'no-trunc', help: 'full ids and commands' },
  { name: 'filter', short: 'f', value: true, repeat: true, arg: 'KEY=VALUE', help: 'name=, status=, label=KEY[=VAL], id=' },
  { name: 'format', value: true, arg: 'table|json', help: 'table (default) or json (one object a line, as docker ps --format json)' },
  helpSpec,
];
const psHelp = formatHelp('brig ps [-a] [-q] [--filter K=V] [--format table|json]', 'Lists containers.', psSpecs);
export const psCommand = verb(psHelp, psSpecs, (p) => {
  const format = one(p, 'format') ?? 'table';
  if (format !== 'table' && format !== 'json') throw new UsageError(`--format: expected table or json, got ${JSON.stringify(format)}`);
  const filters = all(p, 'filter').map((f) => {
    const eq = f.indexOf('=');
    const key = eq < 0 ? f : f.slice(0, eq);
    if (!['name', 'status', 'label', 'id'].includes(key) || eq < 0) throw new UsageError(`--filter: expected name=, status=, label= or id=, got ${JSON.stringify(f)}`);
    return [key, f.slice(eq + 1)] as const;
  });
  const statusFilter = filters.some(([k]) => k === 'status');
  let rows = listContainers({ all: p.flags.has('all') || statusFilter });
  // Docker lists every container it keeps: with -a, those a foreground
  // `brig run --name C IMAGE` kept (a writable layer, no record) too.
  if (p.flags.has('all') || statusFilter) rows = [...rows, ...keptRecords(rows)].sort((a, b) => b.Created.localeCompare(a.Created));
  for (const [k, v] of filters) {
    if (k === 'name') rows = rows.filter((r) => r.Name.includes(v));
    if (k === 'id') rows = rows.filter((r) => r.Id.startsWith(v));
    if (k === 'status') rows = rows.filter((r) => stateName(r) === v);
    if (k === 'label') {
      const eq = v.indexOf('=');
      rows = rows.filter((r) => (eq < 0 ? v in r.Config.Labels : r.Config.Labels[v.slice(0, eq)] === v.slice(eq + 1)));
    }
  }
  const full = p.flags.has('no-trunc');
  const id = (r: ContainerRecord) => (full ? r.Id : r.Id.slice(0, 12));
  if (p.flags.has('quiet')) {
    for (const r of rows) process.stdout.write(`${id(r)}\n`);
    return 0;
  }
  const command = (r: ContainerRecord) => {
    const c = JSON.stringify(r.Config.Cmd.join(' '));
    return full || c.length <= 22 ? c : `${c.slice(0, 20)}…"`;
  };
  if (format === 'json') {
    for (const r of rows)
      process.stdout.write(
        JSON.stringify({
          Command: command(r),
          CreatedAt: r.Created,
          ID: id(r),
          Image: r.Config.Image,
          Labels: Object.entries(r.Config.Labels).map(([k, v]) => `${k}=${v}`).join(','),
          Names: r.Name,
          State: stateName(r),
          Status: statusText(r),
          RunningFor: `${ago(r.Created)} ago`,
        }) + '\n',
      );
    return 0;
  }
  const table = [['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'NAMES'], ...rows.map((r) => [id(r), r.Config.Image, command(r), `${ago(r.Created)} ago`, statusText(r), r.Name])];
  const w = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
  for (const row of table) process.stdout.write(row.map((c, i) => c.padEnd(w[i])).join('   ').trimEnd() + '\n');
  return 0;
});

/**
 * Docker's order: a container first (one made by run -d or create), then
 * image.ts's inspectOne (an image, a container kept by run --name, a volume);
 * -f/--format renders each through the same Go-template formatter.
 */
export const inspectCommand = verb(inspectHelp, inspectSpecs, (p) => {
  positionals(p, 'brig inspect [OPTIONS] NAME...', 1, Infinity);
  const type = one(p, 'type');
  const store = new Store();
  const items = p.rest.map((ref) => {
    if (type === undefined || type === 'container') {
      try {
        return dockerShape(getContainer(ref).inspect());
      } catch (e) {
        if (!(e instanceof ContainerError) || !/^No such container/.test(e.message)) throw e;
      }
    }
    return inspectOne(store, ref, type);
  });
  printInspected(items, one(p, 'format'));
  return 0;
});

/** The record as docker inspect shows a container (brig's own fields under Brig). */
function dockerShape(r: ContainerRecord) {
  return {
    Id: r.Id,
    Created: r.Created,
    Path: r.Path,
    Args: r.Args,
    State: r.State,
    Image: r.Config.Image,
    LogPath: r.LogPath,
    Name: `/${r.Name}`,
    RestartCount: r.RestartCount,
    Driver: r.Options.image ? 'overlay' : 'none',
    HostConfig: r.HostConfig,
    Mounts: r.HostConfig.Binds.map((b) => {
      const [src, dst, mode] = b.split(':');
      return { Type: 'bind', Source: src, Destination: dst, Mode: mode, RW: mode === 'rw' };
    }),
    Config: r.Config,
    NetworkSettings: r.NetworkSettings ?? { Networks: { [r.HostConfig.NetworkMode]: {} }, Ports: {} },
    Brig: { Options: r.Options, Cgroups: r.Cgroups, PauseBy: r.PauseBy, MonitorPid: r.Monitor?.Pid ?? 0 },
  };
}

// ---- logs, top, stats --------------------------------------------------------------

function sinceMs(v: string): number {
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000; // unix seconds
  const rel = /^(\d+)(s|m|h)$/.exec(v);
  if (rel) return Date.now() - Number(rel[1]) * { s: 1000, m: 60_000, h: 3_600_000 }[rel[2] as 's' | 'm' | 'h'];
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new UsageError(`--since: expected a time (RFC 3339, unix seconds, or 10s/5m/2h), got ${JSON.stringify(v)}`);
  return t;
}

const logsSpecs: OptionSpec[] = [
  { name: 'follow', short: 'f', help: 'keep streaming new output until the container stops' },
  { name: 'tail', short: 'n', value: true, arg: 'N', help: 'only the last N lines (default all)' },
  { name: 'since', value: true, arg: 'TIME', help: 'only lines since TIME (RFC 3339, unix seconds, or relative: 10s, 5m, 2h)' },
  { name: 'timestamps', short: 't', help: 'each line prefixed with its time' },
  helpSpec,
];
const logsHelp = formatHelp('brig logs [-f] [--tail N] [--since T] [-t] CONTAINER', "A container's output (json-file on disk: stdout on stdout, stderr on stderr).", logsSpecs);
export const logsCommand = verb(logsHelp, logsSpecs, async (p) => {
  if (p.rest.length !== 1) throw new UsageError('brig logs [OPTIONS] CONTAINER');
  const tail = one(p, 'tail');
  const since = one(p, 'since');
  const c = getContainer(p.rest[0]);
  const ts = p.flags.has('timestamps');
  for await (const e of c.logs({ follow: p.flags.has('follow'), tail: tail === undefined || tail === 'all' ? undefined : wholeNumber('tail', tail), since: since === undefined ? undefined : sinceMs(since) }))
    (e.stream === 'stderr' ? process.stderr : process.stdout).write(ts ? `${e.time} ${e.log}` : e.log);
  return 0;
});

const topHelp = formatHelp('brig top CONTAINER', "A container's processes (host pids).", [helpSpec]);
export const topCommand = verb(topHelp, [helpSpec], (p) => {
  if (p.rest.length !== 1) throw new UsageError('brig top CONTAINER');
  const rows = getContainer(p.rest[0]).top();
  const table = [['UID', 'PID', 'PPID', 'STAT', 'TIME', 'CMD'], ...rows.map((r) => [String(r.uid), String(r.pid), String(r.ppid), r.state, `${(r.cpuTicks / 100).toFixed(2)}s`, r.cmd])];
  const w = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
  for (const row of table) process.stdout.write(row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(w[i]))).join('  ') + '\n');
  return 0;
});

const portHelp = formatHelp('brig port CONTAINER [PORT[/PROTO]]', "A running container's published ports, as bound (Docker's format).", [helpSpec]);
export const portCommand = verb(portHelp, [helpSpec], (p) => {
  if (p.rest.length < 1 || p.rest.length > 2) throw new UsageError('brig port CONTAINER [PORT[/PROTO]]');
  const c = getContainer(p.rest[0]);
  const r = c.inspect();
  const running = r.State.Running || r.State.Paused;
  const ports = running ? (r.NetworkSettings?.Ports ?? {}) : {};
  if (p.rest[1] !== undefined) {
    const want = p.rest[1].includes('/') ? p.rest[1] : `${p.rest[1]}/tcp`;
    const bound = ports[want];
    if (!bound?.length) throw new ContainerError(`No public port '${want}' published for ${r.Name}`, 1);
    for (const b of bound) process.stdout.write(`${b.HostIp}:${b.HostPort}\n`);
    return 0;
  }
  const keys = Object.keys(ports).sort((a, b) => parseInt(a) - parseInt(b) || a.localeCompare(b));
  for (const k of keys) for (const b of ports[k] ?? []) process.stdout.write(`${k} -> ${b.HostIp}:${b.HostPort}\n`);
  return 0;
});

const statsSpecs: OptionSpec[] = [{ name: 'no-stream', help: 'one sample, then exit' }, { name: 'format', value: true, arg: 'table|json', help: 'table (default) or json' }, helpSpec];
const statsHelp = formatHelp('brig stats [--no-stream] [CONTAINER...]', 'CPU %, memory use/limit and pids of running containers (from their cgroups, else /proc).', statsSpecs);
export const statsCommand = verb(statsHelp, statsSpecs, async (p) => {
  const format = one(p, 'format') ?? 'table';
  if (format !== 'table' && format !== 'json') throw new UsageError(`--format: expected table or json, got ${JSON.stringify(format)}`);
  const containers = p.rest.length ? p.rest.map(getContainer) : listContainers().map((r) => getContainer(r.Id));
  for (;;) {
    const a = containers.map((c) => c.stats());
    await new Promise((r) => setTimeout(r, 500));
    const b = containers.map((c) => c.stats());
    const rows = containers.map((c, i) => {
      const cpu = b[i].at > a[i].at ? ((b[i].cpuNs - a[i].cpuNs) / ((b[i].at - a[i].at) * 1e6)) * 100 : 0;
      return { ID: c.id.slice(0, 12), Name: c.name, CPUPerc: `${Math.max(0, cpu).toFixed(2)}%`, MemUsage: `${human(b[i].memoryBytes)} / ${b[i].memoryLimitBytes ? human(b[i].memoryLimitBytes) : 'no limit'}`, PIDs: String(b[i].pids), Source: b[i].source };
    });
    if (format === 'json') for (const r of rows) process.stdout.write(JSON.stringify(r) + '\n');
    else {
      const table = [['CONTAINER ID', 'NAME', 'CPU %', 'MEM USAGE / LIMIT', 'PIDS'], ...rows.map((r) => [r.ID, r.Name, r.CPUPerc, r.MemUsage, r.PIDs])];
      const w = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
      for (const row of table) process.stdout.write(row.map((c, i) => c.padEnd(w[i])).join('   ').trimEnd() + '\n');
    }
    if (p.flags.has('no-stream')) return 0;
  }
});

// ---- exec and cp ---------------------------------------------------------------------

const execSpecs: OptionSpec[] = [
  { name: 'detach', short: 'd', help: 'start it in the background (its output is dropped)' },
  { name: 'interactive', short: 'i', help: 'pass standard input through' },
  { name: 'tty', short: 't', help: "a new terminal for the command (its controlling terminal), relayed to this one" },
  { name: 'env', short: 'e', value: true, repeat: true, arg: 'KEY=VAL', help: 'a variable besides the container\'s' },
  { name: 'workdir', short: 'w', value: true, arg: 'DIR', help: 'working directory inside' },
  { name: 'user', short: 'u', value: true, arg: 'UID[:GID]', help: 'ids inside (numbers)' },
  helpSpec,
];
const execHelp = formatHelp(
  'brig exec [-d] [-i] [-e K=V] [-w DIR] [-u UID[:GID]] CONTAINER COMMAND [ARGS...]',
  "Runs a command in a running container: its namespaces (setns through its init's pidfd), cgroups,\nseccomp policy, Landlock rules, rlimits; no capabilities, no_new_privs.",
  execSpecs,
  "Exit status: the command's; 126 not executable, 127 not found, 125 brig's own failure.",
);
export const execCommand = verb(
  execHelp,
  execSpecs,
  async (p) => {
    if (p.rest.length < 2) throw new UsageError('"brig exec" requires at least 2 arguments: brig exec [OPTIONS] CONTAINER COMMAND [ARGS...]');
    const [ref, ...argv] = p.rest;
    const c = getContainer(ref);
    const o = { env: all(p, 'env'), workdir: one(p, 'workdir'), user: one(p, 'user') };
    if (p.flags.has('tty')) {
      if (p.flags.has('detach')) throw new UsageError('-d and -t do not go together');
      if (p.flags.has('interactive') && !process.stdin.isTTY) throw new UsageError('the input device is not a TTY: -it needs a terminal as standard input; drop -t to pipe input (-i)');
      return execOnTerminal(c, argv, o, p.flags.has('interactive'));
    }
    if (p.flags.has('detach')) {
      await c.execDetached(argv, o);
      return 0;
    }
    const r = await c.exec(argv, { ...o, stdin: p.flags.has('interactive') ? 'inherit' : 'ignore', stdout: 'inherit', stderr: 'inherit' });
    if (r.status === 'setup-error') process.stderr.write(`Error: exec failed: ${r.error?.message ?? 'setup failed'}\n`);
    return exitCodeOf(r);
  },
  (argv, specs) => parseArgs(argv, specs, { interspersed: false }),
);

/** exec -t: the command on a new terminal (its controlling terminal), relayed to ours. */
async function execOnTerminal(c: Container, argv: string[], o: { env: string[]; workdir?: string; user?: string }, interactive: boolean): Promise<number> {
  const out = process.stdout;
  const { proc, master } = await c.spawnExecTty(argv, { ...o, cols: out.columns, rows: out.rows });
  const r = await relayTerminal(proc, master, interactive);
  if (r.status === 'setup-error') process.stderr.write(`Error: exec failed: ${r.error?.message ?? 'setup failed'}\n`);
  return exitCodeOf(r);
}

/** CONTAINER:PATH, or a host path. */
function side(v: string): { container?: string; path: string } {
  const m = /^([a-zA-Z0-9][a-zA-Z0-9_.-]*):(.*)$/.exec(v);
  if (m && !v.startsWith('/') && !v.startsWith('.')) return { container: m[1], path: m[2] || '/' };
  return { path: v };
}

/** A host command's exit, its stderr on ours. */
function host(cmd: string, args: string[], stdin: 'pipe' | 'ignore'): { proc: ReturnType<typeof spawnProcess>; done: Promise<number> } {
  const proc = spawnProcess(cmd, args, { stdio: [stdin, 'pipe', 'inherit'] });
  const done = new Promise<number>((r) => proc.on('close', (code) => r(code ?? 1)));
  return { proc, done };
}

const cpHelp = formatHelp('brig cp CONTAINER:SRC DEST | brig cp SRC CONTAINER:DEST', "Copies files between a running container and the host, as a tar stream through an exec of tar inside (so the copy inside obeys the container's own rules: its mounts, Landlock, ids).", [helpSpec]);
export const cpCommand = verb(cpHelp, [helpSpec], async (p) => {
  if (p.rest.length !== 2) throw new UsageError('brig cp CONTAINER:SRC DEST | brig cp SRC CONTAINER:DEST');
  const [a, b] = p.rest.map(side);
  if ((a.container === undefined) === (b.container === undefined)) throw new UsageError('brig cp: exactly one of SRC and DEST is CONTAINER:PATH');
  if (a.container !== undefined) {
    // Out: tar inside, untar here (into a temp dir first, so DEST may name the copy).
    const c = getContainer(a.container);
    const tmp = mkdtempSync(join(tmpdir(), 'brig-cp-'));
    try {
      const untar = host('tar', ['-x', '-f', '-', '-C', tmp], 'pipe');
      const r = await c.exec(['tar', '-c', '-f', '-', '-C', dirname(a.path), basename(a.path)], { stdout: untar.proc.stdin!, stderr: 'capture' });
      untar.proc.stdin!.end();
      const code = await untar.done;
      if (r.exitCode !== 0) throw new ContainerError(`cp: could not read ${a.path} in the container: ${r.stderr.toString().trim().split('\n').pop() || r.error?.message || r.status}`, 1);
      if (code !== 0) throw new ContainerError(`cp: tar on the host failed (exit ${code})`, 1);
      const got = join(tmp, basename(a.path));
      const dest = resolve(b.path);
      const into = existsSync(dest) && statSync(dest).isDirectory() ? join(dest, basename(a.path)) : dest;
      try {
        renameSync(got, into);
      } catch {
        cpSync(got, into, { recursive: true });
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
    return 0;
  }
  // In: tar here (the entry named as it will be inside), untar inside.
  const c = getContainer(b.container!);
  const src = resolve(a.path);
  if (!existsSync(src)) throw new ContainerError(`cp: no such file or directory on the host: ${a.path}`, 1);
  const isDir = await c.exec(['test', '-d', b.path]);
  const destDir = isDir.exitCode === 0 ? b.path : dirname(b.path);
  const name = isDir.exitCode === 0 ? basename(src) : basename(b.path);
  const stage = mkdtempSync(join(tmpdir(), 'brig-cp-'));
  try {
    cpSync(src, join(stage, name), { recursive: true });
    const tar = host('tar', ['-c', '-f', '-', '-C', stage, name], 'ignore');
    const r = await c.exec(['tar', '-x', '-f', '-', '-C', destDir], { stdin: tar.proc.stdout!, stderr: 'capture' });
    await tar.done;
    if (r.exitCode !== 0) throw new ContainerError(`cp: could not write into ${destDir} in the container: ${r.stderr.toString().trim().split('\n').pop() || r.error?.message || r.status}`, 1);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
  return 0;
});

const attachSpecs: OptionSpec[] = [{ name: 'no-stdin', help: 'do not attach stdin' }, detachKeysSpec, { name: 'sig-proxy', value: true, arg: 'BOOL', help: "accepted for Docker's sake (with a terminal, ^C goes to the container's terminal)" }, helpSpec];
const attachHelp = formatHelp('brig attach [--no-stdin] [--detach-keys KEYS] CONTAINER', "Attaches to a running container: its output here until it exits (then its exit code), and this\nstdin to its terminal or stdin when it was made with -i; ctrl-p ctrl-q detaches.", attachSpecs);
export const attachCommand = verb(attachHelp, attachSpecs, async (p) => {
  if (p.rest.length !== 1) throw new UsageError('brig attach CONTAINER');
  const c = getContainer(p.rest[0]);
  return attachTerminal(c, { stdin: !p.flags.has('no-stdin'), detachKeys: one(p, 'detach-keys') });
});

// ---- commit: a container's writable layer --------------------------------------------

const commitSpecs: OptionSpec[] = [{ name: 'message', short: 'm', value: true, arg: 'TEXT', help: "a comment for the new layer's history" }, helpSpec];
const commitHelp = formatHelp('brig commit [-m TEXT] CONTAINER NAME[:TAG]', "A container's writable layer (one made from an image) as a new image on top of its image (deletions as whiteouts).", commitSpecs);
export const commitCommand = verb(commitHelp, commitSpecs, async (p) => {
  if (p.rest.length !== 2) throw new UsageError('brig commit [-m TEXT] CONTAINER NAME[:TAG]');
  let layerName = p.rest[0];
  try {
    const r = getContainer(p.rest[0]).inspect();
    if (!r.Options.container) throw new ContainerError(`container ${r.Name} is not from an image: it has no writable layer to commit`);
    layerName = r.Options.container;
  } catch (e) {
    // Not a container record: a container kept by brig run --image X --name C.
    if (!(e instanceof ContainerError) || !/^No such container/.test(e.message)) throw e;
  }
  const img = await new Store().commitContainer(layerName, p.rest[1], one(p, 'message'));
  process.stdout.write(`${img.refs[0]} ${img.digest}\n`);
  return 0;
});
