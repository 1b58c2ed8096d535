// /containers/...: Docker's container calls on brig's container library
// (src/container). The records are brig's; these shape them as Docker's
// API does, and turn Docker's create body into brig's options, refusing
// what would undo the sandbox.
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { basename, dirname, posix } from 'node:path';
import type { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { ContainerError, createContainer, getContainer, listContainers, type Container, type ContainerOptions, type ContainerRecord } from '../../container/index.js';
import { allIds, get, monitorAlive, readRecord, recordDir } from '../../container/state.js';
import { ago, exitCodeOf } from '../../container/common.js';
import { API_VERSION } from '../server.js';
import { EngineError } from '../errors.js';
import { Store } from '../../image/store.js';
import { findImage } from '../image-shapes.js';
import { frame, hijackRoute, LogFollower, send, sleep, type Hijacked } from '../stream.js';
import { bool, filtersOf, int } from './util.js';

const NO_TIME = '0001-01-01T00:00:00Z';

type Body = Record<string, unknown>;

function isObj(v: unknown): v is Body {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function strings(field: string, v: unknown): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return [v];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new EngineError(400, `${field}: expected a list of strings`);
  return v;
}

/** Docker's create body → brig's container options; what brig will not do is a 400 saying why. */
export function createOptions(body: unknown, name: string | undefined): { argv: string[]; options: ContainerOptions } {
  if (!isObj(body)) throw new EngineError(400, 'the create body must be a JSON object (Docker\'s container Config)');
  const hc: Body = isObj(body.HostConfig) ? body.HostConfig : {};
  // Refused: each would give the program what the sandbox exists to withhold.
  if (hc.Privileged === true) throw new EngineError(400, 'HostConfig.Privileged: refused: brig runs untrusted code and never gives a container the host\'s devices and every capability');
  if (Array.isArray(hc.CapAdd) && hc.CapAdd.length) throw new EngineError(400, `HostConfig.CapAdd (${hc.CapAdd.join(', ')}): refused: brig's containers run with no capabilities`);
  if (Array.isArray(hc.Devices) && hc.Devices.length) throw new EngineError(400, 'HostConfig.Devices: refused: brig gives a container no host device nodes');
  if (Array.isArray(hc.DeviceRequests) && hc.DeviceRequests.length) throw new EngineError(400, 'HostConfig.DeviceRequests: refused: brig gives a container no host devices (GPUs included)');
  if (hc.PidMode === 'host') throw new EngineError(400, 'HostConfig.PidMode=host: refused: a container always has its own pid namespace (it would see and signal the host\'s processes)');
  if (hc.IpcMode === 'host') throw new EngineError(400, 'HostConfig.IpcMode=host: refused: a container always has its own IPC namespace (the host\'s shared memory would be open to it)');
  if (hc.UsernsMode === 'host') throw new EngineError(400, 'HostConfig.UsernsMode=host: refused: brig\'s containers always run in a user namespace');
  for (const s of strings('HostConfig.SecurityOpt', hc.SecurityOpt) ?? []) {
    if (/unconfined/.test(s)) throw new EngineError(400, `HostConfig.SecurityOpt ${s}: refused: brig does not run a container without its seccomp filter and Landlock rules`);
    if (!/^no-new-privileges(:true|=true)?$/.test(s)) throw new EngineError(400, `HostConfig.SecurityOpt ${s}: not supported (brig accepts no-new-privileges, which is always on)`);
  }
  if (hc.ReadonlyRootfs === true) throw new EngineError(400, 'HostConfig.ReadonlyRootfs: not supported yet with an image (brig keeps an image container\'s writable layer)');
  if (typeof body.Image !== 'string' || body.Image === '') throw new EngineError(400, 'Image: a container needs an image (config.Image)');
  // An image ID as `docker images` shows it (or a prefix), resolved to a name the store knows.
  const image = /^(sha256:)?[0-9a-f]{4,64}$/.test(body.Image) ? imageByRef(body.Image) : body.Image;
  const o: ContainerOptions & Record<string, unknown> = { image };
  if (name !== undefined && name !== '') o.name = name.replace(/^\//, '');
  const env: Record<string, string> = {};
  for (const kv of strings('Env', body.Env) ?? []) {
    const eq = kv.indexOf('=');
    if (eq <= 0) continue; // Docker: a bare NAME takes the client's value, which the CLI already resolved
    env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  if (Object.keys(env).length) o.env = env;
  const entrypoint = strings('Entrypoint', body.Entrypoint);
  if (entrypoint !== undefined) o.entrypoint = entrypoint;
  if (typeof body.WorkingDir === 'string' && body.WorkingDir) o.cwd = body.WorkingDir;
  if (typeof body.Hostname === 'string' && body.Hostname) o.hostname = body.Hostname;
  if (typeof body.User === 'string' && body.User) {
    const m = /^(\d+)(?::(\d+))?$/.exec(body.User);
    if (!m) throw new EngineError(400, `User ${JSON.stringify(body.User)}: brig takes a numeric UID[:GID] (names are not looked up in the image)`);
    o.uid = Number(m[1]);
    o.gid = m[2] === undefined ? Number(m[1]) : Number(m[2]);
  }
  if (isObj(body.Labels)) o.labels = Object.fromEntries(Object.entries(body.Labels).map(([k, v]) => [k, String(v)]));
  if (typeof body.StopSignal === 'string' && body.StopSignal) o.stopSignal = body.StopSignal;
  if (typeof body.StopTimeout === 'number') o.stopTimeout = body.StopTimeout;
  // A terminal of the container's own devpts (-t), stdin kept open for attach (-i), closed at the first attach's end of input (run -i).
  if (body.Tty === true) o.tty = true;
  if (body.OpenStdin === true) o.openStdin = true;
  if (body.OpenStdin === true && body.StdinOnce === true) o.stdinOnce = true;
  // HostConfig: what brig honours.
  const mounts: { source: string; target: string; readonly: boolean }[] = [];
  const volumes: { name: string; target: string; readonly: boolean }[] = [];
  const tmpfs: { target: string; size?: number; mode?: number }[] = [];
  for (const b of strings('HostConfig.Binds', hc.Binds) ?? []) {
    const [src, dst, mode = 'rw'] = b.split(':');
    if (!src || !dst) throw new EngineError(400, `HostConfig.Binds ${JSON.stringify(b)}: expected SRC:DEST[:ro|rw]`);
    const ro = mode.split(',').includes('ro');
    if (src.startsWith('/')) mounts.push({ source: src, target: dst, readonly: ro });
    else volumes.push({ name: src, target: dst, readonly: ro });
  }
  if (Array.isArray(hc.Mounts)) {
    for (const [i, m] of hc.Mounts.entries()) {
      if (!isObj(m) || typeof m.Target !== 'string') throw new EngineError(400, `HostConfig.Mounts[${i}]: expected {Type, Source, Target}`);
      const ro = m.ReadOnly === true;
      if (m.Type === 'bind') mounts.push({ source: String(m.Source), target: m.Target, readonly: ro });
      else if (m.Type === 'volume') volumes.push({ name: String(m.Source), target: m.Target, readonly: ro });
      else if (m.Type === 'tmpfs') {
        const t = isObj(m.TmpfsOptions) ? m.TmpfsOptions : {};
        tmpfs.push({ target: m.Target, ...(typeof t.SizeBytes === 'number' && t.SizeBytes > 0 ? { size: t.SizeBytes } : {}), ...(typeof t.Mode === 'number' ? { mode: t.Mode } : {}) });
      } else throw new EngineError(400, `HostConfig.Mounts[${i}].Type ${JSON.stringify(m.Type)}: brig mounts bind, volume and tmpfs`);
    }
  }
  if (isObj(hc.Tmpfs)) {
    for (const [target, opts] of Object.entries(hc.Tmpfs)) {
      const t: { target: string; size?: number; mode?: number } = { target };
      for (const kv of String(opts ?? '').split(',').filter(Boolean)) {
        const [k, v] = kv.split('=');
        if (k === 'size') t.size = sizeBytes(`HostConfig.Tmpfs[${target}].size`, v);
        else if (k === 'mode') t.mode = parseInt(v, 8);
      }
      tmpfs.push(t);
    }
  }
  if (mounts.length) o.mounts = mounts;
  if (volumes.length) o.volumes = volumes;
  if (tmpfs.length) o.tmpfs = tmpfs;
  const publish: string[] = [];
  if (isObj(hc.PortBindings)) {
    for (const [port, binds] of Object.entries(hc.PortBindings)) {
      if (!/^\d+(\/(tcp|udp))?$/.test(port)) throw new EngineError(400, `HostConfig.PortBindings: ${JSON.stringify(port)} is not PORT[/tcp|udp]`);
      for (const b of Array.isArray(binds) && binds.length ? binds : [{}]) {
        const hb = isObj(b) ? b : {};
        const ip = typeof hb.HostIp === 'string' && hb.HostIp ? hb.HostIp : '';
        const hp = typeof hb.HostPort === 'string' ? hb.HostPort : '';
        publish.push(ip ? `${ip}:${hp}:${port}` : hp ? `${hp}:${port}` : port);
      }
    }
  }
  if (publish.length) o.publish = publish;
  const mode = typeof hc.NetworkMode === 'string' ? hc.NetworkMode : '';
  // Docker's default bridge: brig's loopback-only network when ports are published, else brig's default.
  if (mode === 'default' || mode === 'bridge' || mode === '') {
    if (publish.length) o.network = 'loopback';
  } else (o as Record<string, unknown>).network = mode; // none, host, loopback, pasta; a user network or container:NAME once i24c's networks are merged
  // A user network's aliases (compose gives the service name): i24c's ContainerOptions.networkAliases.
  const endpoints = isObj(body.NetworkingConfig) && isObj(body.NetworkingConfig.EndpointsConfig) ? body.NetworkingConfig.EndpointsConfig : {};
  const aliases = Object.values(endpoints).flatMap((ep) => (isObj(ep) ? (strings('NetworkingConfig.EndpointsConfig.Aliases', ep.Aliases) ?? []) : []));
  if (aliases.length && !['', 'default', 'bridge', 'none', 'host', 'loopback', 'pasta'].includes(mode) && !mode.startsWith('container:')) o.networkAliases = [...new Set(aliases)];
  const rp = isObj(hc.RestartPolicy) ? hc.RestartPolicy : undefined;
  if (rp && typeof rp.Name === 'string' && rp.Name !== '' && rp.Name !== 'no') o.restart = rp.Name === 'on-failure' && typeof rp.MaximumRetryCount === 'number' && rp.MaximumRetryCount > 0 ? `on-failure:${rp.MaximumRetryCount}` : rp.Name;
  if (typeof hc.Memory === 'number' && hc.Memory > 0) o.memory = hc.Memory;
  if (typeof hc.NanoCpus === 'number' && hc.NanoCpus > 0) o.cpus = hc.NanoCpus / 1e9;
  if (typeof hc.PidsLimit === 'number' && hc.PidsLimit > 0) o.pids = hc.PidsLimit;
  if (typeof hc.CpusetCpus === 'string' && hc.CpusetCpus) o.cpuset = hc.CpusetCpus;
  if (hc.AutoRemove === true) o.autoRemove = true;
  const extraHosts = strings('HostConfig.ExtraHosts', hc.ExtraHosts);
  if (extraHosts?.length) o.extraHosts = extraHosts;
  const dns = strings('HostConfig.Dns', hc.Dns);
  if (dns?.length) o.dns = dns;
  if (Array.isArray(hc.Ulimits) && hc.Ulimits.length) {
    const rl: Record<string, [number | 'unlimited', number | 'unlimited']> = {};
    for (const [i, u] of hc.Ulimits.entries()) {
      if (!isObj(u) || typeof u.Name !== 'string') throw new EngineError(400, `HostConfig.Ulimits[${i}]: expected {Name, Soft, Hard}`);
      const amt = (v: unknown) => (typeof v === 'number' && v >= 0 ? v : 'unlimited' as const);
      rl[u.Name] = [amt(u.Soft), amt(u.Hard)];
    }
    o.rlimits = rl;
  }
  if (isObj(hc.LogConfig) && isObj(hc.LogConfig.Config)) {
    if (hc.LogConfig.Type && hc.LogConfig.Type !== 'json-file') throw new EngineError(400, `HostConfig.LogConfig.Type ${JSON.stringify(hc.LogConfig.Type)}: brig logs json-file only`);
    const c = hc.LogConfig.Config as Record<string, string>;
    o.logOptions = { ...(c['max-size'] ? { 'max-size': c['max-size'] } : {}), ...(c['max-file'] ? { 'max-file': c['max-file'] } : {}) };
  }
  if (typeof hc.ShmSize === 'number' && hc.ShmSize > 0) o.shmSize = hc.ShmSize;
  const argv = strings('Cmd', body.Cmd) ?? [];
  return { argv, options: o };
}

function sizeBytes(field: string, v: string | undefined): number {
  const m = /^(\d+(?:\.\d+)?)([kmg]?)b?$/i.exec(v ?? '');
  if (!m) throw new EngineError(400, `${field}: expected a size such as 64m, got ${JSON.stringify(v)}`);
  return Math.round(Number(m[1]) * { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2].toLowerCase() as '' | 'k' | 'm' | 'g']);
}

function unixSeconds(iso: string): number {
  return Math.floor(Date.parse(iso) / 1000);
}


function statusText(r: ContainerRecord): string {
  const s = r.State;
  if (s.Status === 'created') return 'Created';
  if (s.Restarting) return `Restarting (${s.ExitCode}) ${ago(s.FinishedAt)} ago`;
  if (s.Running) return `Up ${ago(s.StartedAt)}${s.Paused ? ' (Paused)' : ''}`;
  if (s.Status === 'removing') return 'Removal In Progress';
  return `Exited (${s.ExitCode}) ${ago(s.FinishedAt)} ago`;
}

function stateName(r: ContainerRecord): string {
  return r.State.Paused ? 'paused' : r.State.Restarting ? 'restarting' : r.State.Status;
}

interface PortBinding {
  private: number;
  type: string;
  hostIp: string;
  hostPort: string;
}

function ports(r: ContainerRecord): PortBinding[] {
  const out: PortBinding[] = [];
  const publish = (r.Options as { publish?: unknown[] }).publish ?? [];
  for (const p of publish) {
    if (typeof p !== 'string') continue;
    const m = /^(?:(\[[^\]]*\]|[\d.]+):)?(?:(\d*):)?(\d+)(?:\/(tcp|udp))?$/.exec(p);
    if (!m) continue;
    out.push({ private: Number(m[3]), type: m[4] ?? 'tcp', hostIp: m[1] ?? '127.0.0.1', hostPort: m[2] ?? '' });
  }
  return out;
}

function mountsOf(r: ContainerRecord) {
  const o = r.Options as { mounts?: { source: string; target: string; readonly?: boolean }[]; volumes?: { name: string; target: string; readonly?: boolean }[]; tmpfs?: { target: string }[] };
  return [
    ...(o.mounts ?? []).map((m) => ({ Type: 'bind', Source: m.source, Destination: m.target, Mode: m.readonly === false ? 'rw' : 'ro', RW: m.readonly === false, Propagation: 'rprivate' })),
    ...(o.volumes ?? []).map((v) => ({ Type: 'volume', Name: v.name, Source: '', Destination: v.target, Driver: 'local', Mode: v.readonly ? 'ro' : 'rw', RW: !v.readonly, Propagation: '' })),
    ...(o.tmpfs ?? []).map((t) => ({ Type: 'tmpfs', Source: '', Destination: t.target, Mode: '', RW: true, Propagation: '' })),
  ];
}

/** GET /containers/json: Docker's summary of one. */
function summary(r: ContainerRecord) {
  return {
    Id: r.Id,
    Names: [`/${r.Name}`],
    Image: r.Config.Image,
    ImageID: '',
    Command: r.Config.Cmd.join(' '),
    Created: unixSeconds(r.Created),
    Ports: ports(r).map((p) => ({ PrivatePort: p.private, Type: p.type, ...(p.hostPort ? { PublicPort: Number(p.hostPort), IP: p.hostIp } : {}) })),
    Labels: r.Config.Labels,
    State: stateName(r),
    Status: statusText(r),
    HostConfig: { NetworkMode: r.HostConfig.NetworkMode },
    NetworkSettings: { Networks: (r as unknown as { NetworkSettings?: { Networks?: unknown } }).NetworkSettings?.Networks ?? { [r.HostConfig.NetworkMode]: {} } },
    Mounts: mountsOf(r),
  };
}

/** GET /containers/{id}/json: the record in Docker's inspect shape (brig's own fields under Brig). */
function inspectShape(r: ContainerRecord) {
  const portMap: Record<string, { HostIp: string; HostPort: string }[] | null> = {};
  for (const p of ports(r)) (portMap[`${p.private}/${p.type}`] ??= []).push({ HostIp: p.hostIp, HostPort: p.hostPort });
  const rec = r as ContainerRecord & { NetworkSettings?: Record<string, unknown> };
  return {
    Id: r.Id,
    Created: r.Created,
    Path: r.Path || r.Config.Cmd[0] || '',
    Args: r.Path ? r.Args : r.Config.Cmd.slice(1),
    State: { ...r.State, Status: stateName(r) },
    Image: r.Config.Image,
    ResolvConfPath: '',
    HostnamePath: '',
    HostsPath: '',
    LogPath: r.LogPath,
    Name: `/${r.Name}`,
    RestartCount: r.RestartCount,
    Driver: 'overlay',
    Platform: 'linux',
    MountLabel: '',
    ProcessLabel: '',
    AppArmorProfile: '',
    ExecIDs: execIdsOf(r.Id),
    HostConfig: { ...r.HostConfig, PortBindings: portMap, Privileged: false, CapAdd: null, CapDrop: ['ALL'], SecurityOpt: ['no-new-privileges'], ReadonlyRootfs: false, Init: true, PidMode: '', IpcMode: 'private' },
    GraphDriver: { Name: 'overlay', Data: null },
    Mounts: mountsOf(r),
    Config: {
      ...r.Config,
      Domainname: '',
      User: '',
      AttachStdin: false,
      AttachStdout: false,
      AttachStderr: false,
      StdinOnce: r.Config.StdinOnce === true,
      ExposedPorts: Object.fromEntries(Object.keys(portMap).map((k) => [k, {}])),
      Entrypoint: (r.Options as { entrypoint?: string[] }).entrypoint ?? null,
      Volumes: null,
      OnBuild: null,
    },
    NetworkSettings: { Bridge: '', SandboxID: '', HairpinMode: false, Ports: portMap, Networks: { [r.HostConfig.NetworkMode]: {} }, ...(rec.NetworkSettings ?? {}), ...(rec.NetworkSettings?.Ports ? {} : { Ports: portMap }), ...withShortIdAliases(r.Id, rec.NetworkSettings) },
    Brig: { Options: r.Options, Cgroups: r.Cgroups, PauseBy: r.PauseBy, MonitorPid: r.Monitor?.Pid ?? 0 },
  };
}

/** Docker lists a container's short id among its aliases on a user network (compose reconnects it otherwise). */
function withShortIdAliases(id: string, ns: Record<string, unknown> | undefined): { Networks?: Record<string, unknown> } {
  if (!ns || !isObj(ns.Networks)) return {};
  const nets: Record<string, unknown> = {};
  for (const [name, n] of Object.entries(ns.Networks)) {
    if (!isObj(n) || ['none', 'host', 'loopback', 'pasta', 'bridge', 'default'].includes(name)) {
      nets[name] = n;
      continue;
    }
    const al = Array.isArray(n.Aliases) ? (n.Aliases as string[]) : [];
    nets[name] = { ...n, Aliases: al.includes(id.slice(0, 12)) ? al : [...al, id.slice(0, 12)] };
  }
  return { Networks: nets };
}

let execIdsOf: (containerId: string) => string[] | null = () => null;
/** exec.ts tells inspect which exec instances a container has. */
export function setExecIds(fn: (containerId: string) => string[] | null): void {
  execIdsOf = fn;
}

function container(ref: string): Container {
  return getContainer(ref);
}

function live(r: ContainerRecord): boolean {
  return monitorAlive(r) && (r.State.Running || r.State.Paused || r.State.Restarting);
}

/** The record, or undefined once it is gone (an --rm container's end). */
function recordOrGone(id: string): ContainerRecord | undefined {
  try {
    return get(id);
  } catch (e) {
    if (e instanceof ContainerError && /^No such container/.test(e.message)) return undefined;
    throw e;
  }
}

/** Docker's start failure words, which the docker CLI turns into 127 and 126. */
function startError(e: unknown): unknown {
  if (e instanceof ContainerError && e.exitCode === 127) return new EngineError(400, `OCI runtime create failed: ${e.message}: exec: executable file not found in $PATH: no such file or directory`);
  if (e instanceof ContainerError && e.exitCode === 126) return new EngineError(400, `OCI runtime create failed: ${e.message}: permission denied`);
  return e;
}

/**
 * attach to a container with a terminal, or with stdin to pass on: through
 * its monitor (Container.attach), which holds the terminal's master or the
 * stdin pipe. docker run attaches before it starts the container: the
 * answer goes at once, then the start is waited for and the output of the
 * run so far comes first (the monitor's backlog). The client hanging up is a
 * detach: the container runs on.
 */
async function attachThroughMonitor(h: Hijacked, c: Container, r0: ContainerRecord, follower: LogFollower, w: { wantIn: boolean; wantOut: boolean; wantErr: boolean; withLogs: boolean }): Promise<void> {
  const tty = r0.Config.Tty;
  h.begin();
  let clientGone = false;
  const ac = new AbortController();
  void h.closed.then(() => {
    clientGone = true;
    ac.abort();
  });
  const write = (n: 1 | 2, want: boolean) =>
    ({
      write: (d: Buffer | string) => {
        const b = typeof d === 'string' ? Buffer.from(d) : d;
        if (want && b.length && !h.socket.destroyed && !h.socket.writableEnded) h.socket.write(tty ? b : frame(n, b));
        return true;
      },
    }) as unknown as NodeJS.WritableStream;
  const fromLog = async () => {
    for (const e of follower.read()) {
      if ((e.stream === 'stdout' && !w.wantOut) || (e.stream === 'stderr' && !w.wantErr)) continue;
      await send(h.socket, tty ? Buffer.from(e.log) : frame(e.stream === 'stdout' ? 1 : 2, Buffer.from(e.log)));
    }
  };
  if (w.withLogs) await fromLog();
  const beforeStart = !live(r0);
  for (;;) {
    if (clientGone) return;
    const r = recordOrGone(c.id);
    if (!r) return void (await fromLog()); // an --rm container that came and went
    if (live(r) && r.State.Running && !r.State.Paused) break;
    if (!live(r) && r.State.Status !== 'created' && r.State.StartedAt !== r0.State.StartedAt) return void (await fromLog()); // ran and ended already
    await sleep(20);
  }
  try {
    await c.attach({ stdin: w.wantIn ? h.socket : undefined, stdout: write(1, w.wantOut), stderr: write(2, w.wantErr), backlog: beforeStart && !w.withLogs, detachKeys: h.query.detachKeys || undefined, signal: ac.signal });
  } catch (e) {
    if (!(e instanceof ContainerError)) throw e;
    // It ended between the look and the ask: its output is in the log.
    await fromLog();
  }
}

/** Writes the head of a streamed answer now: the client reads as it comes. */
function streamHead(reply: FastifyReply, contentType: string): NodeJS.WritableStream & { on: (e: string, f: () => void) => void } {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { 'Content-Type': contentType, 'Api-Version': API_VERSION, 'Docker-Experimental': 'false', Ostype: 'linux' });
  res.flushHeaders();
  return res;
}

/** Go's os.FileMode bits for a tar header's mode and type, as X-Docker-Container-Path-Stat carries them. */
function goMode(mode: number, type: string): number {
  let m = mode & 0o777;
  if (mode & 0o4000) m |= 1 << 23;
  if (mode & 0o2000) m |= 1 << 22;
  if (mode & 0o1000) m |= 1 << 20;
  if (type === '5') m |= 2 ** 31;
  if (type === '2') m |= 1 << 27;
  return m >>> 0;
}

interface TarHead {
  name: string;
  mode: number;
  size: number;
  mtime: number;
  type: string;
  link: string;
}

function tarHead(b: Buffer): TarHead | undefined {
  if (b.length < 512 || b.subarray(0, 512).every((x) => x === 0)) return undefined;
  const str = (o: number, n: number) => b.subarray(o, o + n).toString('utf8').replace(/\0.*$/s, '');
  const oct = (o: number, n: number) => parseInt(str(o, n).trim() || '0', 8);
  return { name: str(0, 100), mode: oct(100, 8), size: oct(124, 12), mtime: oct(136, 12), type: str(156, 1) || '0', link: str(157, 100) };
}

/** A path in the container as tar reads it there (an exec of tar: the container's own view and rules). */
async function tarOut(c: Container, path: string, headOnly: boolean): Promise<{ stat: string; first: Buffer; rest?: Readable; done: Promise<void> }> {
  const clean = posix.normalize(path);
  const dir = clean === '/' ? '/' : dirname(clean.replace(/\/$/, ''));
  const base = clean === '/' ? '.' : basename(clean.replace(/\/$/, ''));
  const proc = c.spawnExec(['tar', '-c', '-f', '-', '-C', dir, base], { stdout: 'pipe', stderr: 'pipe' });
  const out = proc.stdout!;
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const first = await new Promise<Buffer>((resolve) => {
    let got = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.length >= 512) (out.off('data', onData), out.off('end', onEnd), out.pause(), resolve(got));
    };
    const onEnd = () => (out.off('data', onData), resolve(got));
    out.on('data', onData);
    out.once('end', onEnd);
  });
  const h = tarHead(first);
  if (!h) {
    await proc.wait();
    throw new EngineError(404, `Could not find the file ${path} in container ${c.name}${err.trim() ? ` (${err.trim().split('\n').pop()})` : ''}`);
  }
  const stat = Buffer.from(JSON.stringify({ name: clean === '/' ? '/' : base, size: h.size, mode: goMode(h.mode, h.type), mtime: new Date(h.mtime * 1000).toISOString(), linkTarget: h.link })).toString('base64');
  if (headOnly) {
    proc.kill();
    out.destroy();
    await proc.wait();
    return { stat, first, done: Promise.resolve() };
  }
  return { stat, first, rest: out, done: proc.wait().then(() => undefined) };
}

function signalName(v: string | undefined): string {
  if (v === undefined || v === '') return 'SIGKILL';
  return v;
}

export default async function containers(app: FastifyInstance): Promise<void> {
  app.post('/containers/create', async (req, reply) => {
    const q = req.query as Record<string, string>;
    const { argv, options } = createOptions(req.body, q.name);
    let c: Container;
    try {
      c = createContainer(argv, options);
    } catch (e) {
      const m = /no image "([^"]*)"/.exec((e as Error).message ?? '');
      if (m) throw new EngineError(404, `No such image: ${m[1]}`);
      throw e;
    }
    return reply.code(201).send({ Id: c.id, Warnings: [] });
  });

  app.get('/containers/json', async (req) => {
    const q = req.query as Record<string, string>;
    const filters = filtersOf(q.filters);
    for (const k of Object.keys(filters)) if (!['id', 'name', 'label', 'status', 'ancestor', 'exited'].includes(k)) throw new EngineError(400, `invalid filter '${k}' (brig filters on id, name, label, status, ancestor, exited)`);
    let rows = listContainers({ all: bool(q.all) || filters.status !== undefined || filters.exited !== undefined });
    if (filters.id) rows = rows.filter((r) => filters.id.some((v) => r.Id.startsWith(v)));
    if (filters.name) rows = rows.filter((r) => filters.name.some((v) => new RegExp(v.replace(/^\//, '')).test(r.Name)));
    if (filters.status) rows = rows.filter((r) => filters.status.includes(stateName(r)));
    if (filters.ancestor) rows = rows.filter((r) => filters.ancestor.some((v) => r.Config.Image === v || r.Config.Image === `${v}:latest`));
    if (filters.exited) rows = rows.filter((r) => r.State.Status === 'exited' && filters.exited.includes(String(r.State.ExitCode)));
    if (filters.label)
      rows = rows.filter((r) =>
        filters.label.every((l) => {
          const eq = l.indexOf('=');
          return eq < 0 ? l in r.Config.Labels : r.Config.Labels[l.slice(0, eq)] === l.slice(eq + 1);
        }),
      );
    const limit = int('limit', q.limit);
    if (limit !== undefined && limit > 0) rows = rows.slice(0, limit);
    return rows.map(summary);
  });

  app.get('/containers/:id/json', async (req) => inspectShape(container((req.params as { id: string }).id).inspect()));

  app.post('/containers/:id/start', async (req, reply) => {
    const c = container((req.params as { id: string }).id);
    if (live(c.inspect())) return reply.code(304).send();
    await c.start().catch((e) => {
      throw startError(e);
    });
    return reply.code(204).send();
  });

  app.post('/containers/:id/stop', async (req, reply) => {
    const c = container((req.params as { id: string }).id);
    if (!live(c.inspect())) return reply.code(304).send();
    await c.stop({ timeout: int('t', (req.query as Record<string, string>).t) });
    return reply.code(204).send();
  });

  app.post('/containers/:id/restart', async (req, reply) => {
    const c = container((req.params as { id: string }).id);
    await c.restart({ timeout: int('t', (req.query as Record<string, string>).t) }).catch((e) => {
      throw startError(e);
    });
    return reply.code(204).send();
  });

  app.post('/containers/:id/kill', async (req, reply) => {
    const c = container((req.params as { id: string }).id);
    const r = c.inspect();
    if (!live(r)) throw new EngineError(409, `Cannot kill container: ${(req.params as { id: string }).id}: Container ${r.Id} is not running`);
    await c.kill(signalName((req.query as Record<string, string>).signal));
    return reply.code(204).send();
  });

  app.post('/containers/:id/pause', async (req, reply) => {
    await container((req.params as { id: string }).id).pause();
    return reply.code(204).send();
  });

  app.post('/containers/:id/unpause', async (req, reply) => {
    await container((req.params as { id: string }).id).unpause();
    return reply.code(204).send();
  });

  app.post('/containers/:id/rename', async (req, reply) => {
    const name = (req.query as Record<string, string>).name;
    if (!name) throw new EngineError(400, 'name: the new name is missing');
    container((req.params as { id: string }).id).rename(name.replace(/^\//, ''));
    return reply.code(204).send();
  });

  app.post('/containers/:id/resize', async (req, reply) => {
    const c = container((req.params as { id: string }).id);
    const r = c.inspect();
    if (!live(r)) throw new EngineError(409, `Container ${r.Id} is not running`);
    const q = req.query as Record<string, string>;
    const rows = int('h', q.h);
    const cols = int('w', q.w);
    // Without a terminal there is nothing to size (Docker answers 200 there too).
    if (r.Config.Tty && rows !== undefined && cols !== undefined && rows > 0 && cols > 0) await c.resize(cols, rows);
    return reply.code(200).send();
  });

  app.delete('/containers/:id', async (req, reply) => {
    const q = req.query as Record<string, string>;
    if (bool(q.link)) throw new EngineError(400, 'link: brig has no container links');
    const c = container((req.params as { id: string }).id);
    try {
      await c.remove({ force: bool(q.force) });
    } catch (e) {
      if (e instanceof ContainerError && /^cannot remove container/.test(e.message)) throw new EngineError(409, `You cannot remove a running container ${c.id}. Stop the container before attempting removal or force remove`);
      throw e;
    }
    return reply.code(204).send();
  });

  app.post('/containers/prune', async (req) => {
    const filters = filtersOf((req.query as Record<string, string>).filters);
    const deleted: string[] = [];
    for (const r of listContainers({ all: true })) {
      if (live(r) || r.State.Status === 'removing') continue;
      if (filters.label && !filters.label.every((l) => (l.includes('=') ? r.Config.Labels[l.slice(0, l.indexOf('='))] === l.slice(l.indexOf('=') + 1) : l in r.Config.Labels))) continue;
      if (filters.until && filters.until.some((u) => Date.parse(r.Created) > (Number.isFinite(Number(u)) ? Number(u) * 1000 : Date.parse(u)))) continue;
      try {
        await getContainer(r.Id).remove();
        deleted.push(r.Id);
      } catch {
        // removed or started meanwhile
      }
    }
    return { ContainersDeleted: deleted, SpaceReclaimed: 0 };
  });

  // wait: the head at once (the docker CLI asks before start), the body when the condition holds.
  app.post('/containers/:id/wait', async (req, reply) => {
    const c = container((req.params as { id: string }).id);
    const condition = (req.query as Record<string, string>).condition || 'not-running';
    if (!['not-running', 'next-exit', 'removed'].includes(condition)) throw new EngineError(400, `condition: expected not-running, next-exit or removed, got ${JSON.stringify(condition)}`);
    const first = c.inspect();
    const res = streamHead(reply, 'application/json');
    let gone = false;
    res.on('close', () => (gone = true));
    let last = first;
    // An --rm container's record goes soon after its end is written: a watch
    // on its directory reads that end before it goes (polling alone can miss it).
    let watcher: FSWatcher | undefined;
    try {
      watcher = watch(recordDir(c.id), () => {
        const r = readRecord(c.id);
        if (r) last = r;
      });
      watcher.on('error', () => {});
    } catch {
      // gone already
    }
    try {
      for (;;) {
        if (gone) return;
        const r = recordOrGone(c.id);
        if (!r) break;
        last = r;
        const ended = !live(r) && r.State.Status !== 'created';
        if (condition === 'not-running' && (!live(r) || r.State.Status === 'created')) break;
        if (condition === 'next-exit' && ended && r.State.FinishedAt !== first.State.FinishedAt) break;
        await sleep(50);
      }
    } finally {
      watcher?.close();
    }
    // Error is for a failure to wait, not the container's own (the docker CLI exits 125 on it).
    res.end(JSON.stringify({ StatusCode: last.State.ExitCode, Error: null }) + '\n');
  });

  app.get('/containers/:id/logs', async (req, reply) => {
    const q = req.query as Record<string, string>;
    const c = container((req.params as { id: string }).id);
    const wantOut = bool(q.stdout);
    const wantErr = bool(q.stderr);
    if (!wantOut && !wantErr) throw new EngineError(400, 'Bad parameters: you must choose at least one stream');
    const tail = q.tail === undefined || q.tail === 'all' || q.tail === '' ? undefined : int('tail', q.tail);
    const since = q.since ? Number(q.since) * 1000 : undefined;
    const until = q.until ? Number(q.until) * 1000 : undefined;
    if ((since !== undefined && !Number.isFinite(since)) || (until !== undefined && !Number.isFinite(until))) throw new EngineError(400, 'since/until: expected unix seconds');
    const stamps = bool(q.timestamps);
    const ac = new AbortController();
    const res = streamHead(reply, 'application/vnd.docker.raw-stream');
    res.on('close', () => ac.abort());
    try {
      for await (const e of c.logs({ follow: bool(q.follow), tail: tail !== undefined && tail >= 0 ? tail : undefined, since: since && since > 0 ? since : undefined, signal: ac.signal })) {
        if (ac.signal.aborted) break;
        if (until !== undefined && until > 0 && Date.parse(e.time) > until) break;
        if ((e.stream === 'stdout' && !wantOut) || (e.stream === 'stderr' && !wantErr)) continue;
        await send(res as unknown as NodeJS.WritableStream, frame(e.stream === 'stdout' ? 1 : 2, Buffer.from(stamps ? `${e.time} ${e.log}` : e.log)));
      }
    } finally {
      res.end();
    }
  });

  // attach: the container's output from now on (and its log with logs=1), until it ends.
  hijackRoute(app, 'POST', '/containers/:id/attach', async (h) => {
    const c = container(h.params.id);
    const r0 = c.inspect();
    const wantOut = bool(h.query.stdout);
    const wantErr = bool(h.query.stderr);
    const withLogs = bool(h.query.logs);
    const streamIt = bool(h.query.stream);
    if (!live(r0) && r0.State.Status !== 'created' && !streamIt && !withLogs) throw new EngineError(409, 'You cannot attach to a stopped container, start it first');
    const follower = new LogFollower(r0.LogPath, withLogs);
    // A terminal, or stdin to pass on: through the monitor (Container.attach), which holds them.
    const wantIn = bool(h.query.stdin) && r0.Config.OpenStdin;
    if (streamIt && (r0.Config.Tty || wantIn)) {
      try {
        return await attachThroughMonitor(h, c, r0, follower, { wantIn, wantOut, wantErr, withLogs });
      } finally {
        follower.close();
      }
    }
    h.begin();
    // stdin: the container has none to give it (no OpenStdin) or it was not asked for; read and dropped.
    h.socket.on('data', () => {});
    let clientGone = false;
    void h.closed.then(() => (clientGone = true));
    const out = async () => {
      for (const e of follower.read()) {
        if ((e.stream === 'stdout' && !wantOut) || (e.stream === 'stderr' && !wantErr)) continue;
        await send(h.socket, frame(e.stream === 'stdout' ? 1 : 2, Buffer.from(e.log)));
      }
    };
    try {
      if (!streamIt) return void (await out());
      const startedBefore = r0.State.StartedAt;
      const wasLive = live(r0);
      for (;;) {
        await out();
        if (clientGone) return;
        const r = recordOrGone(c.id);
        // The end: removed (--rm), or stopped after a start this attach saw.
        const ended = !r || (!live(r) && r.State.Status !== 'created' && (wasLive || r.State.StartedAt !== startedBefore));
        if (ended) {
          await sleep(20);
          await out();
          return;
        }
        await sleep(30);
      }
    } finally {
      follower.close();
    }
  });

  app.get('/containers/:id/top', async (req) => {
    const c = container((req.params as { id: string }).id);
    const procs = c.top();
    const hz = 100;
    const boot = Date.now() / 1000 - Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
    return {
      Titles: ['UID', 'PID', 'PPID', 'C', 'STIME', 'TTY', 'TIME', 'CMD'],
      Processes: procs.map((p) => {
        const t = Math.floor(p.cpuTicks / hz);
        const started = new Date((boot + p.startTicks / hz) * 1000);
        return [String(p.uid), String(p.pid), String(p.ppid), '0', started.toISOString().slice(11, 16), '?', `${String(Math.floor(t / 3600)).padStart(2, '0')}:${String(Math.floor(t / 60) % 60).padStart(2, '0')}:${String(t % 60).padStart(2, '0')}`, p.cmd];
      }),
    };
  });

  app.get('/containers/:id/stats', async (req, reply) => {
    const q = req.query as Record<string, string>;
    const c = container((req.params as { id: string }).id);
    const streaming = bool(q.stream, true);
    const oneShot = bool(q['one-shot'], false);
    const name = `/${c.inspect().Name}`;
    const sample = () => {
      const s = c.stats();
      return { s, system: systemCpuNs(), read: new Date().toISOString() };
    };
    const shape = (cur: ReturnType<typeof sample>, pre: ReturnType<typeof sample> | undefined) => {
      const cpuStats = (x: ReturnType<typeof sample> | undefined) =>
        x ? { cpu_usage: { total_usage: x.s.cpuNs, usage_in_kernelmode: 0, usage_in_usermode: x.s.cpuNs }, system_cpu_usage: x.system, online_cpus: cpus().length, throttling_data: { periods: 0, throttled_periods: 0, throttled_time: 0 } } : { cpu_usage: { total_usage: 0, usage_in_kernelmode: 0, usage_in_usermode: 0 }, throttling_data: { periods: 0, throttled_periods: 0, throttled_time: 0 } };
      return {
        read: cur.read,
        preread: pre?.read ?? NO_TIME,
        pids_stats: { current: cur.s.pids, ...(c.inspect().HostConfig.PidsLimit ? { limit: c.inspect().HostConfig.PidsLimit } : {}) },
        blkio_stats: { io_service_bytes_recursive: null, io_serviced_recursive: null, io_queue_recursive: null, io_service_time_recursive: null, io_wait_time_recursive: null, io_merged_recursive: null, io_time_recursive: null, sectors_recursive: null },
        num_procs: 0,
        storage_stats: {},
        cpu_stats: cpuStats(cur),
        precpu_stats: cpuStats(pre),
        memory_stats: { usage: cur.s.memoryBytes, stats: {}, limit: cur.s.memoryLimitBytes || totalmem() },
        name,
        id: c.id,
      };
    };
    if (!streaming) {
      const pre = oneShot ? undefined : sample();
      if (!oneShot) await sleep(500);
      return shape(sample(), pre);
    }
    const res = streamHead(reply, 'application/json');
    let gone = false;
    res.on('close', () => (gone = true));
    let pre: ReturnType<typeof sample> | undefined;
    while (!gone) {
      const cur = sample();
      res.write(JSON.stringify(shape(cur, pre)) + '\n');
      pre = cur;
      const r = recordOrGone(c.id);
      if (!r || !live(r)) break;
      await sleep(1000);
    }
    res.end();
  });

  // archive: through an exec of tar inside (the container's own view, mounts and rules): it must run.
  const running = (ref: string): Container => {
    const c = container(ref);
    const r = c.inspect();
    if (!live(r) || !r.State.Running) throw new EngineError(409, `container ${r.Name} is not running: brig copies files through an exec of tar inside a running container`);
    return c;
  };
  app.head('/containers/:id/archive', async (req, reply) => {
    const path = (req.query as Record<string, string>).path;
    if (!path) throw new EngineError(400, 'path: missing');
    const t = await tarOut(running((req.params as { id: string }).id), path, true);
    return reply.code(200).header('X-Docker-Container-Path-Stat', t.stat).send();
  });
  app.get('/containers/:id/archive', async (req, reply) => {
    const path = (req.query as Record<string, string>).path;
    if (!path) throw new EngineError(400, 'path: missing');
    const t = await tarOut(running((req.params as { id: string }).id), path, false);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'Content-Type': 'application/x-tar', 'X-Docker-Container-Path-Stat': t.stat, 'Api-Version': API_VERSION });
    res.write(t.first);
    t.rest!.pipe(res);
    res.on('close', () => t.rest!.destroy());
    await t.done;
  });
  app.put('/containers/:id/archive', async (req, reply) => {
    const path = (req.query as Record<string, string>).path;
    if (!path) throw new EngineError(400, 'path: missing');
    const c = running((req.params as { id: string }).id);
    const isDir = await c.exec(['test', '-d', path]);
    if (isDir.exitCode !== 0) {
      (req.body as Readable | undefined)?.resume?.();
      throw new EngineError(404, `Could not find the file ${path} in container ${c.name} (or it is not a directory)`);
    }
    const body = req.body as Readable | undefined;
    if (!body || typeof body.pipe !== 'function') throw new EngineError(400, 'the body must be a tar archive (Content-Type: application/x-tar)');
    const r = await c.exec(['tar', '-x', '-f', '-', '-C', path], { stdin: body, stderr: 'capture' });
    if (r.exitCode !== 0) throw new EngineError(500, `extracting into ${path} in container ${c.name} failed: ${r.stderr.toString().trim().split('\n').pop() || r.error?.message || r.status} (exit ${exitCodeOf(r)})`);
    return reply.code(200).send();
  });

  void allIds;
  void readRecord;
}

/** Every CPU's time since boot (ns), /proc/stat's first line: Docker's system_cpu_usage. */
function systemCpuNs(): number {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
    const ticks = line.trim().split(/\s+/).slice(1, 8).map(Number).reduce((a, b) => a + b, 0);
    return ticks * 10_000_000;
  } catch {
    return 0;
  }
}

function imageByRef(ref: string): string {
  const img = findImage(new Store(), ref);
  return img.refs[0] ?? img.digest;
}
