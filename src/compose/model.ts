// The Compose model: the merged document checked key by key and turned into
// what brig runs. Every error names file, line and path
// (`compose.yaml:12: services.web.ports[0]: ...`); keys brig does not
// implement are named once in a warning with their line; keys that would
// weaken the sandbox are refused, with why.
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { isAbsolute, join, resolve } from 'node:path';
import { homedir } from 'node:os';
import { listToMap, loadFiles, projectNameFrom, ComposeError, type LoadInput, type Positions } from './load.js';
import { readDotEnv, InterpolationError } from './interpolate.js';

export interface PortSpec {
  hostIp?: string;
  hostPort?: number;
  containerPort: number;
  protocol: 'tcp' | 'udp';
}

export interface MountSpec {
  type: 'volume' | 'bind' | 'tmpfs';
  /** volume: the project's volume key; bind: an absolute host path. */
  source?: string;
  target: string;
  readOnly: boolean;
  /** tmpfs: bytes */
  size?: number;
}

export interface HealthSpec {
  test: string[];
  intervalMs?: number;
  timeoutMs?: number;
  retries?: number;
  startPeriodMs?: number;
}

export type DependCondition = 'service_started' | 'service_healthy' | 'service_completed_successfully';

export interface ServiceModel {
  name: string;
  image?: string;
  build?: { context: string; dockerfile?: string; args: Record<string, string>; target?: string };
  /** undefined: the image's; [] cleared. */
  command?: string[];
  entrypoint?: string[];
  environment: Record<string, string>;
  ports: PortSpec[];
  mounts: MountSpec[];
  dependsOn: Record<string, { condition: DependCondition; required: boolean; restart: boolean }>;
  healthcheck?: HealthSpec;
  restart?: string;
  workingDir?: string;
  user?: { uid: number; gid?: number };
  hostname?: string;
  containerName?: string;
  /** network key -> aliases */
  networks: Record<string, { aliases: string[] }>;
  /** 'none' or container:NAME (service:S resolved at up) */
  networkMode?: string;
  extraHosts: string[];
  dns: string[];
  dnsSearch: string[];
  labels: Record<string, string>;
  stopSignal?: string;
  stopGracePeriodS?: number;
  limits: { cpus?: number; memory?: string; pids?: number };
  shmSize?: string;
  profiles: string[];
  init?: boolean;
}

export interface ProjectModel {
  name: string;
  workingDir: string;
  files: string[];
  services: Record<string, ServiceModel>;
  /** Services left out by their profiles. */
  disabled: Record<string, ServiceModel>;
  networks: Record<string, { name: string; external: boolean; internal: boolean; labels: Record<string, string>; subnet?: string }>;
  volumes: Record<string, { name: string; external: boolean; labels: Record<string, string> }>;
  warnings: string[];
  env: Record<string, string | undefined>;
}

// What brig implements, key by key; the rest of the specification's keys are warned about.
const SERVICE_KEYS = new Set(['image', 'build', 'command', 'entrypoint', 'environment', 'env_file', 'ports', 'expose', 'volumes', 'depends_on', 'healthcheck', 'restart', 'working_dir', 'user', 'hostname', 'container_name', 'networks', 'network_mode', 'extra_hosts', 'dns', 'dns_search', 'labels', 'stop_signal', 'stop_grace_period', 'deploy', 'mem_limit', 'cpus', 'pids_limit', 'shm_size', 'profiles', 'tmpfs', 'init', 'privileged', 'cap_add', 'cap_drop', 'devices', 'pid', 'ipc', 'userns_mode', 'cgroup', 'security_opt', 'pull_policy']);
/** The specification's other service keys: accepted with a warning that they do nothing here. */
const SPEC_SERVICE_KEYS = new Set(['annotations', 'attach', 'blkio_config', 'cgroup_parent', 'configs', 'cpu_count', 'cpu_percent', 'cpu_shares', 'cpu_period', 'cpu_quota', 'cpu_rt_runtime', 'cpu_rt_period', 'cpuset', 'credential_spec', 'develop', 'device_cgroup_rules', 'dns_opt', 'domainname', 'driver_opts', 'extends', 'external_links', 'gpus', 'group_add', 'isolation', 'label_file', 'links', 'logging', 'mac_address', 'mem_reservation', 'mem_swappiness', 'memswap_limit', 'oom_kill_disable', 'oom_score_adj', 'platform', 'post_start', 'pre_stop', 'provider', 'read_only', 'runtime', 'scale', 'secrets', 'stdin_open', 'storage_opt', 'sysctls', 'tty', 'ulimits', 'use_api_socket', 'uts', 'volumes_from', 'models']);
const TOP_KEYS = new Set(['version', 'name', 'services', 'networks', 'volumes', 'configs', 'secrets', 'include', 'models']);

export interface ModelInput extends LoadInput {
  projectName?: string;
  /** --profile (COMPOSE_PROFILES when none). */
  profiles?: string[];
  /** Services named on the command line: enabled whatever their profiles. */
  services?: string[];
}

/** Loads the files and gives the checked model. */
export function loadProject(input: ModelInput): ProjectModel {
  const loaded = loadFiles(input);
  return buildModel(loaded.raw, loaded.positions, { ...input, workingDir: loaded.workingDir, files: loaded.files, env: loaded.env });
}

type Ctx = { pos: Positions; warnings: string[]; warned: Set<string>; workingDir: string; env: Record<string, string | undefined> };

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function buildModel(raw: Record<string, unknown>, pos: Positions, o: ModelInput & { workingDir: string; files: string[]; env: Record<string, string | undefined> }): ProjectModel {
  const ctx: Ctx = { pos, warnings: [], warned: new Set(), workingDir: o.workingDir, env: o.env };
  const warn = (path: string, what: string) => {
    if (ctx.warned.has(path)) return;
    ctx.warned.add(path);
    const w = pos.where(path);
    ctx.warnings.push(`${w ? `${w}: ` : ''}${path}: ${what}`);
  };
  for (const k of Object.keys(raw)) {
    if (k.startsWith('x-')) continue;
    if (!TOP_KEYS.has(k)) throw pos.error(k, 'unknown top-level key (services, networks, volumes, name, or x-... for extensions)');
    if (k === 'version') warn(k, 'the attribute `version` is obsolete, it is ignored');
    else if (k === 'configs' || k === 'secrets' || k === 'include' || k === 'models') warn(k, 'not supported by brig yet, ignored');
  }
  const name = projectNameFrom({ flag: o.projectName, env: o.env, top: raw.name, workingDir: o.workingDir });
  if (!isObj(raw.services)) throw pos.error('services', raw.services === undefined ? 'no services: a Compose file needs a services: mapping' : 'expected a mapping of service names');
  // Networks and volumes first: services refer to them.
  const networks: ProjectModel['networks'] = {};
  const rawNets = raw.networks ?? {};
  if (!isObj(rawNets)) throw pos.error('networks', 'expected a mapping of network names');
  for (const [k, v0] of Object.entries(rawNets)) {
    const path = `networks.${k}`;
    const v = v0 ?? {};
    if (!isObj(v)) throw pos.error(path, 'expected a mapping (or nothing)');
    for (const key of Object.keys(v)) {
      if (key.startsWith('x-')) continue;
      if (!['driver', 'internal', 'external', 'name', 'labels', 'ipam', 'attachable', 'enable_ipv6', 'driver_opts'].includes(key)) throw pos.error(`${path}.${key}`, 'unknown network key');
      if (key === 'driver' && v.driver !== 'bridge') warn(`${path}.driver`, `driver ${JSON.stringify(v.driver)}: brig's user networks are bridges; ignored`);
      if (key === 'enable_ipv6' || key === 'driver_opts') warn(`${path}.${key}`, 'not supported by brig, ignored');
    }
    const external = v.external === true || isObj(v.external);
    const subnet = isObj(v.ipam) && Array.isArray(v.ipam.config) && isObj(v.ipam.config[0]) ? v.ipam.config[0].subnet : undefined;
    if (subnet !== undefined && typeof subnet !== 'string') throw pos.error(`${path}.ipam.config[0].subnet`, 'expected a CIDR such as 172.28.0.0/16');
    networks[k] = { name: typeof v.name === 'string' ? v.name : external ? k : `${name}_${k}`, external, internal: v.internal === true, labels: strMap(ctx, `${path}.labels`, v.labels), subnet };
  }
  const volumes: ProjectModel['volumes'] = {};
  const rawVols = raw.volumes ?? {};
  if (!isObj(rawVols)) throw pos.error('volumes', 'expected a mapping of volume names');
  for (const [k, v0] of Object.entries(rawVols)) {
    const path = `volumes.${k}`;
    const v = v0 ?? {};
    if (!isObj(v)) throw pos.error(path, 'expected a mapping (or nothing)');
    for (const key of Object.keys(v)) {
      if (key.startsWith('x-')) continue;
      if (!['driver', 'driver_opts', 'external', 'name', 'labels'].includes(key)) throw pos.error(`${path}.${key}`, 'unknown volume key');
      if ((key === 'driver' && v.driver !== 'local') || key === 'driver_opts') warn(`${path}.${key}`, 'brig volumes are local directories; ignored');
    }
    const external = v.external === true || isObj(v.external);
    const vname = typeof v.name === 'string' ? v.name : external ? k : `${name}_${k}`;
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(vname)) throw pos.error(path, `volume name ${JSON.stringify(vname)}: letters, digits, _ . - (up to 128)`);
    volumes[k] = { name: vname, external, labels: strMap(ctx, `${path}.labels`, v.labels) };
  }
  const all: Record<string, ServiceModel> = {};
  for (const [sname, def] of Object.entries(raw.services)) {
    if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(sname)) throw pos.error(`services.${sname}`, 'a service name is letters, digits, _ . - starting with a letter or digit');
    all[sname] = service(ctx, sname, def, networks, volumes, warn);
  }
  // Every service is on the default network unless it lists its own.
  const usesDefault = Object.values(all).some((s) => !s.networkMode && Object.keys(s.networks).length === 0);
  if (usesDefault && !networks.default) networks.default = { name: `${name}_default`, external: false, internal: false, labels: {} };
  for (const s of Object.values(all)) if (!s.networkMode && Object.keys(s.networks).length === 0) s.networks.default = { aliases: [] };
  // depends_on: each a service, and no cycle.
  for (const s of Object.values(all))
    for (const d of Object.keys(s.dependsOn)) {
      if (!all[d]) throw pos.error(`services.${s.name}.depends_on.${d}`, `service "${s.name}" depends on undefined service "${d}"`);
      if (s.dependsOn[d].condition === 'service_healthy' && !all[d].healthcheck && !all[d].image) {
        // decided at up for image services (the image's HEALTHCHECK may apply)
      }
    }
  checkCycles(ctx, all);
  // Profiles: a service with profiles runs only when one is active, or when named.
  const active = new Set(o.profiles?.length ? o.profiles : (o.env.COMPOSE_PROFILES ?? '').split(',').filter(Boolean));
  const named = new Set(o.services ?? []);
  const services: Record<string, ServiceModel> = {};
  const disabled: Record<string, ServiceModel> = {};
  for (const s of Object.values(all)) {
    const on = active.has('*') || s.profiles.length === 0 || s.profiles.some((p) => active.has(p)) || named.has(s.name);
    (on ? services : disabled)[s.name] = s;
  }
  for (const n of named) if (!all[n]) throw new ComposeError(`no such service: ${n}`);
  // An enabled service depending on a disabled one: that one is needed too (Compose enables it when named; otherwise an error).
  for (const s of Object.values(services))
    for (const d of Object.keys(s.dependsOn))
      if (disabled[d]) {
        if (s.dependsOn[d].required) throw pos.error(`services.${s.name}.depends_on.${d}`, `service "${d}" is disabled by its profiles (${disabled[d].profiles.join(', ')}); activate one with --profile`);
        delete s.dependsOn[d];
      }
  return { name, workingDir: o.workingDir, files: o.files, services, disabled, networks, volumes, warnings: ctx.warnings, env: o.env };
}

function checkCycles(ctx: Ctx, all: Record<string, ServiceModel>): void {
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (n: string, trail: string[]): void => {
    if (state.get(n) === 'done') return;
    if (state.get(n) === 'visiting') {
      const cycle = [...trail.slice(trail.indexOf(n)), n];
      throw ctx.pos.error(`services.${cycle[cycle.length - 2]}.depends_on.${n}`, `dependency cycle: ${cycle.join(' -> ')}`);
    }
    state.set(n, 'visiting');
    for (const d of Object.keys(all[n].dependsOn)) visit(d, [...trail, n]);
    state.set(n, 'done');
  };
  for (const n of Object.keys(all)) visit(n, []);
}

/** Services in start order: each after those it depends on. */
export function startOrder(services: Record<string, ServiceModel>): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const visit = (n: string) => {
    if (seen.has(n) || !services[n]) return;
    seen.add(n);
    for (const d of Object.keys(services[n].dependsOn)) visit(d);
    out.push(n);
  };
  for (const n of Object.keys(services).sort()) visit(n);
  return out;
}

function strMap(ctx: Ctx, path: string, v: unknown): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (!isObj(v) && !Array.isArray(v)) throw ctx.pos.error(path, 'expected a mapping or a list of KEY=VALUE');
  const m = listToMap(v);
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(m)) {
    if (x !== null && typeof x === 'object') throw ctx.pos.error(`${path}.${k}`, 'expected a string, number or boolean');
    out[k] = x === null ? '' : String(x);
  }
  return out;
}

function str(ctx: Ctx, path: string, v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  throw ctx.pos.error(path, `expected a string, got ${JSON.stringify(v)}`);
}

/** Compose splits a string command as a POSIX shell would split words (no expansion). */
export function shellSplit(ctx: Ctx | undefined, path: string, s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let has = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === "'") {
      const j = s.indexOf("'", i + 1);
      if (j < 0) throw fail(ctx, path, `no closing ' in ${JSON.stringify(s)}`);
      cur += s.slice(i + 1, j);
      has = true;
      i = j;
    } else if (c === '"') {
      let j = i + 1;
      for (; j < s.length && s[j] !== '"'; j++) {
        if (s[j] === '\\' && j + 1 < s.length && '"\\$`'.includes(s[j + 1])) j++;
        cur += s[j];
      }
      if (j >= s.length) throw fail(ctx, path, `no closing " in ${JSON.stringify(s)}`);
      has = true;
      i = j;
    } else if (c === '\\' && i + 1 < s.length) {
      cur += s[++i];
      has = true;
    } else if (/\s/.test(c)) {
      if (has) out.push(cur);
      cur = '';
      has = false;
    } else {
      cur += c;
      has = true;
    }
  }
  if (has) out.push(cur);
  return out;
}

function fail(ctx: Ctx | undefined, path: string, what: string): Error {
  return ctx ? ctx.pos.error(path, what) : new ComposeError(`${path}: ${what}`);
}

function argv(ctx: Ctx, path: string, v: unknown): string[] | undefined {
  if (v === null || v === undefined) return undefined;
  if (typeof v === 'string') return shellSplit(ctx, path, v);
  if (Array.isArray(v)) return v.map((x, i) => str(ctx, `${path}[${i}]`, x));
  throw ctx.pos.error(path, 'expected a string or a list of strings');
}

/** Go durations as Compose takes them: 1m30s, 500ms, 10s; a bare number is seconds. */
export function durationMs(ctx: Ctx | undefined, path: string, v: unknown): number {
  if (typeof v === 'number' && v >= 0) return v * 1000;
  const s = typeof v === 'string' ? v.trim() : '';
  if (!/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(s)) throw fail(ctx, path, `expected a duration such as 30s, 1m30s or 500ms, got ${JSON.stringify(v)}`);
  const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let ms = 0;
  for (const m of s.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) ms += Number(m[1]) * unit[m[2]];
  return ms;
}

function sizeText(ctx: Ctx, path: string, v: unknown): string {
  if (typeof v === 'number' && Number.isInteger(v) && v > 0) return String(v);
  if (typeof v === 'string' && /^\d+(\.\d+)?\s*[bkmgt]?b?$/i.test(v.trim())) return v.trim().toLowerCase().replace(/\s+/g, '').replace(/(.)b$/, '$1');
  throw ctx.pos.error(path, `expected a size such as 512m or 1g, got ${JSON.stringify(v)}`);
}

function sizeBytes(text: string): number {
  const m = /^(\d+(?:\.\d+)?)([kmgt]?)$/.exec(text);
  if (!m) return Number(text);
  return Math.round(Number(m[1]) * ({ '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 } as Record<string, number>)[m[2]]);
}

function port(ctx: Ctx, path: string, v: string, what: string): number {
  if (!/^\d+$/.test(v)) throw ctx.pos.error(path, `invalid ${what} port ${JSON.stringify(v)}: expected a number`);
  const n = Number(v);
  if (n < 1 || n > 65535) throw ctx.pos.error(path, `invalid ${what} port ${n}: ports are 1-65535`);
  return n;
}

function range(ctx: Ctx, path: string, v: string, what: string): number[] {
  const m = /^([^-]+)-([^-]+)$/.exec(v);
  if (!m) return [port(ctx, path, v, what)];
  const a = port(ctx, path, m[1], what);
  const b = port(ctx, path, m[2], what);
  if (b < a) throw ctx.pos.error(path, `invalid ${what} port range ${v}`);
  return Array.from({ length: b - a + 1 }, (_, i) => a + i);
}

/** Short `[IP:][HOST:]CONTAINER[/PROTO]` (ranges too) or the long form. */
export function parsePorts(ctx: Ctx, path: string, v: unknown): PortSpec[] {
  if (isObj(v)) {
    for (const k of Object.keys(v)) if (!['target', 'published', 'host_ip', 'protocol', 'mode', 'name', 'app_protocol'].includes(k)) throw ctx.pos.error(`${path}.${k}`, 'unknown port key (target, published, host_ip, protocol, mode)');
    if (v.target === undefined) throw ctx.pos.error(path, 'target: the container port is required');
    const protocol = v.protocol === undefined ? 'tcp' : v.protocol;
    if (protocol !== 'tcp' && protocol !== 'udp') throw ctx.pos.error(`${path}.protocol`, `expected tcp or udp, got ${JSON.stringify(protocol)}`);
    if (v.mode !== undefined && v.mode !== 'host' && v.mode !== 'ingress') throw ctx.pos.error(`${path}.mode`, `expected host or ingress, got ${JSON.stringify(v.mode)}`);
    const target = port(ctx, `${path}.target`, String(v.target), 'container');
    const hostIp = v.host_ip === undefined ? undefined : str(ctx, `${path}.host_ip`, v.host_ip);
    if (hostIp !== undefined && !isIP(hostIp)) throw ctx.pos.error(`${path}.host_ip`, `not an IP address: ${JSON.stringify(hostIp)}`);
    const published = v.published === undefined || v.published === '' ? [] : range(ctx, `${path}.published`, String(v.published), 'host');
    if (published.length > 1) throw ctx.pos.error(`${path}.published`, 'a range with one target port: give ranges of equal size in the short form');
    return [{ containerPort: target, protocol, ...(published[0] ? { hostPort: published[0] } : {}), ...(hostIp ? { hostIp } : {}) }];
  }
  if (typeof v !== 'string' && typeof v !== 'number') throw ctx.pos.error(path, 'expected "[IP:][HOST:]CONTAINER[/PROTO]" or a mapping with target:');
  let s = String(v);
  let protocol: 'tcp' | 'udp' = 'tcp';
  const slash = s.lastIndexOf('/');
  if (slash >= 0) {
    const p = s.slice(slash + 1);
    if (p !== 'tcp' && p !== 'udp') throw ctx.pos.error(path, `invalid protocol ${JSON.stringify(p)} (tcp or udp)`);
    protocol = p;
    s = s.slice(0, slash);
  }
  let hostIp: string | undefined;
  const v6 = /^\[([^\]]+)\]:(.*)$/.exec(s);
  if (v6) {
    hostIp = v6[1];
    s = v6[2];
  }
  const parts = s.split(':');
  if (!hostIp && parts.length === 3) hostIp = parts.shift();
  if (parts.length > 2 || parts.some((p, i) => p === '' && !(i === 0 && parts.length === 2 && hostIp))) throw ctx.pos.error(path, `invalid port ${JSON.stringify(String(v))}: expected [IP:][HOST:]CONTAINER[/PROTO]`);
  if (hostIp !== undefined && !isIP(hostIp)) throw ctx.pos.error(path, `invalid host IP ${JSON.stringify(hostIp)}`);
  const container = range(ctx, path, parts[parts.length - 1], 'container');
  const host = parts.length === 2 && parts[0] !== '' ? range(ctx, path, parts[0], 'host') : [];
  if (host.length && host.length !== container.length) throw ctx.pos.error(path, `port ranges of different sizes: ${parts[0]} and ${parts[1]}`);
  return container.map((c, i) => ({ containerPort: c, protocol, ...(host.length ? { hostPort: host[i] } : {}), ...(hostIp ? { hostIp } : {}) }));
}

function bindSource(ctx: Ctx, src: string): string {
  if (src.startsWith('~')) return join(ctx.env.HOME ?? homedir(), src.slice(1));
  return isAbsolute(src) ? src : resolve(ctx.workingDir, src);
}

function mount(ctx: Ctx, path: string, v: unknown, volumes: ProjectModel['volumes']): MountSpec {
  let m: MountSpec;
  if (typeof v === 'string') {
    const parts = v.split(':');
    if (parts.length === 1) throw ctx.pos.error(path, `${JSON.stringify(v)}: anonymous volumes are not supported by brig yet; name it (NAME:${v}) and declare it under volumes:`);
    if (parts.length > 3) throw ctx.pos.error(path, `invalid volume ${JSON.stringify(v)}: expected SOURCE:TARGET[:MODE]`);
    const [src, target, mode = 'rw'] = parts;
    const modes = mode.split(',');
    for (const x of modes) if (!['ro', 'rw', 'z', 'Z', 'cached', 'delegated', 'consistent', 'nocopy'].includes(x)) throw ctx.pos.error(path, `invalid mode ${JSON.stringify(x)} (ro or rw)`);
    const bind = src.startsWith('.') || src.startsWith('/') || src.startsWith('~');
    m = { type: bind ? 'bind' : 'volume', source: bind ? bindSource(ctx, src) : src, target, readOnly: modes.includes('ro') };
  } else if (isObj(v)) {
    for (const k of Object.keys(v)) if (!['type', 'source', 'target', 'read_only', 'bind', 'volume', 'tmpfs', 'consistency'].includes(k)) throw ctx.pos.error(`${path}.${k}`, 'unknown volume key (type, source, target, read_only, tmpfs)');
    const type = v.type;
    if (type !== 'volume' && type !== 'bind' && type !== 'tmpfs') throw ctx.pos.error(`${path}.type`, `expected volume, bind or tmpfs, got ${JSON.stringify(type)}`);
    if (typeof v.target !== 'string') throw ctx.pos.error(`${path}.target`, 'required: the path in the container');
    const readOnly = v.read_only === true;
    if (type === 'tmpfs') {
      const t = isObj(v.tmpfs) ? v.tmpfs : {};
      m = { type, target: v.target, readOnly, ...(t.size !== undefined ? { size: sizeBytes(sizeText(ctx, `${path}.tmpfs.size`, t.size)) } : {}) };
    } else {
      if (typeof v.source !== 'string') throw ctx.pos.error(`${path}.source`, type === 'volume' ? 'anonymous volumes are not supported by brig yet; give source: NAME' : 'required: the host path');
      m = { type, source: type === 'bind' ? bindSource(ctx, v.source) : v.source, target: v.target, readOnly };
    }
  } else throw ctx.pos.error(path, 'expected "SOURCE:TARGET[:ro]" or a mapping with type:, source:, target:');
  if (!m.target.startsWith('/')) throw ctx.pos.error(path, `target ${JSON.stringify(m.target)}: an absolute path in the container`);
  if (m.type === 'volume' && !volumes[m.source!]) throw ctx.pos.error(path, `service refers to undefined volume ${m.source}: declare it under the top-level volumes:`);
  return m;
}

function health(ctx: Ctx, path: string, v: unknown): HealthSpec | undefined {
  if (v === null || v === undefined) return undefined;
  if (!isObj(v)) throw ctx.pos.error(path, 'expected a mapping (test, interval, timeout, retries, start_period)');
  for (const k of Object.keys(v)) {
    if (!['test', 'interval', 'timeout', 'retries', 'start_period', 'start_interval', 'disable'].includes(k)) throw ctx.pos.error(`${path}.${k}`, 'unknown healthcheck key');
  }
  if (v.start_interval !== undefined) ctx.warnings.push(`${ctx.pos.where(`${path}.start_interval`)}: ${path}.start_interval: not supported by brig yet, ignored (interval applies from the start)`);
  if (v.disable === true) return { test: ['NONE'] };
  let test: string[];
  if (typeof v.test === 'string') test = ['CMD-SHELL', v.test];
  else if (Array.isArray(v.test) && v.test.length) {
    test = v.test.map((x, i) => str(ctx, `${path}.test[${i}]`, x));
    if (!['NONE', 'CMD', 'CMD-SHELL'].includes(test[0])) throw ctx.pos.error(`${path}.test[0]`, `the first word is NONE, CMD or CMD-SHELL, got ${JSON.stringify(test[0])}`);
    if (test[0] === 'CMD-SHELL') test = ['CMD-SHELL', test.slice(1).join(' ')];
    if (test[0] !== 'NONE' && test.length < 2) throw ctx.pos.error(`${path}.test`, `${test[0]} needs a command`);
  } else throw ctx.pos.error(`${path}.test`, 'required: a string (run by sh -c) or [CMD, ...], [CMD-SHELL, ...], [NONE]');
  const h: HealthSpec = { test };
  if (v.interval !== undefined) h.intervalMs = durationMs(ctx, `${path}.interval`, v.interval);
  if (v.timeout !== undefined) h.timeoutMs = durationMs(ctx, `${path}.timeout`, v.timeout);
  if (v.start_period !== undefined) h.startPeriodMs = durationMs(ctx, `${path}.start_period`, v.start_period);
  if (v.retries !== undefined) {
    if (!Number.isInteger(v.retries) || (v.retries as number) < 0) throw ctx.pos.error(`${path}.retries`, `expected a whole number, got ${JSON.stringify(v.retries)}`);
    h.retries = v.retries as number;
  }
  return h;
}

const REFUSED: Record<string, (v: unknown) => string | undefined> = {
  privileged: (v) => (v === true ? 'brig runs every container without capabilities inside a user namespace; it cannot give a container privileges over the host' : undefined),
  cap_add: (v) => (Array.isArray(v) && v.length ? 'brig drops every capability and cannot add one (the sandbox runs with none)' : undefined),
  devices: (v) => (Array.isArray(v) && v.length ? "host devices would give the container the host's hardware; brig gives only its own /dev (null, zero, random, urandom, tty)" : undefined),
  pid: (v) => (v === 'host' ? "the host's pid namespace would let the container see and signal every host process; brig gives each container its own" : v === undefined || v === null ? undefined : 'only a pid namespace of its own is supported'),
  ipc: (v) => (v === 'host' ? "the host's IPC namespace would share the host's System V objects and POSIX queues" : undefined),
  userns_mode: (v) => (v === 'host' ? "brig's isolation starts with a user namespace; it cannot run a container in the host's" : undefined),
  cgroup: (v) => (v === 'host' ? "the host's cgroup namespace is not given to containers" : undefined),
  network_mode: (v) => (v === 'host' ? "the host's network namespace would give the container every host interface and port; use ports: to publish (on 127.0.0.1 by default)" : undefined),
  security_opt: (v) => {
    const list = Array.isArray(v) ? v.map(String) : [];
    const bad = list.find((s) => /^(seccomp|apparmor)[:=]unconfined$/.test(s) || /^label[:=]disable$/.test(s) || /^systempaths[:=]unconfined$/.test(s));
    return bad ? `${JSON.stringify(bad)} would lift a confinement brig always applies (seccomp filter, no_new_privs, masked paths)` : undefined;
  },
};

function service(ctx: Ctx, name: string, def: unknown, networks: ProjectModel['networks'], volumes: ProjectModel['volumes'], warn: (p: string, w: string) => void): ServiceModel {
  const base = `services.${name}`;
  if (!isObj(def)) throw ctx.pos.error(base, 'expected a mapping');
  for (const k of Object.keys(def)) {
    if (k.startsWith('x-')) continue;
    if (SPEC_SERVICE_KEYS.has(k)) warn(`${base}.${k}`, 'not supported by brig yet, ignored');
    else if (!SERVICE_KEYS.has(k)) throw ctx.pos.error(`${base}.${k}`, 'unknown service key');
    const why = REFUSED[k]?.(def[k]);
    if (why) throw ctx.pos.error(`${base}.${k}`, `refused: ${why}`);
  }
  const s: ServiceModel = { name, environment: {}, ports: [], mounts: [], dependsOn: {}, networks: {}, extraHosts: [], dns: [], dnsSearch: [], labels: {}, limits: {}, profiles: [] };
  if (def.image !== undefined && def.image !== null) s.image = str(ctx, `${base}.image`, def.image);
  if (def.build !== undefined && def.build !== null) {
    const b = def.build;
    const p = `${base}.build`;
    if (typeof b === 'string') s.build = { context: resolve(ctx.workingDir, b), args: {} };
    else if (isObj(b)) {
      for (const k of Object.keys(b)) {
        if (['context', 'dockerfile', 'args', 'target'].includes(k) || k.startsWith('x-')) continue;
        warn(`${p}.${k}`, 'not supported by brig yet, ignored');
      }
      const args = strMap(ctx, `${p}.args`, b.args);
      // A bare arg takes the environment's value, else it is left out.
      for (const [k, val] of Object.entries(listToMap(b.args))) if (val === null) ctx.env[k] === undefined ? delete args[k] : (args[k] = ctx.env[k]!);
      s.build = { context: resolve(ctx.workingDir, b.context === undefined ? '.' : str(ctx, `${p}.context`, b.context)), args };
      if (b.dockerfile !== undefined) s.build.dockerfile = str(ctx, `${p}.dockerfile`, b.dockerfile);
      if (b.target !== undefined) s.build.target = str(ctx, `${p}.target`, b.target);
    } else throw ctx.pos.error(p, 'expected a context path or a mapping (context, dockerfile, args, target)');
  }
  if (!s.image && !s.build) throw ctx.pos.error(base, `service "${name}" has neither an image nor a build context specified`);
  if (s.image && !s.build && !/^[a-z0-9]/.test(s.image)) throw ctx.pos.error(`${base}.image`, `invalid reference format: ${JSON.stringify(s.image)}`);
  if ('command' in def) s.command = argv(ctx, `${base}.command`, def.command);
  if ('entrypoint' in def) s.entrypoint = argv(ctx, `${base}.entrypoint`, def.entrypoint);
  // env_file first, environment wins.
  if (def.env_file !== undefined && def.env_file !== null) {
    const list = Array.isArray(def.env_file) ? def.env_file : [def.env_file];
    list.forEach((f, i) => {
      const p = Array.isArray(def.env_file) ? `${base}.env_file[${i}]` : `${base}.env_file`;
      const file = isObj(f) ? f.path : f;
      const required = isObj(f) ? f.required !== false : true;
      const abs = resolve(ctx.workingDir, str(ctx, p, file));
      try {
        Object.assign(s.environment, readDotEnv(abs, ctx.env));
      } catch (e) {
        if (e instanceof InterpolationError) {
          if (!required && /cannot read/.test(e.message)) return;
          throw ctx.pos.error(p, e.message);
        }
        throw e;
      }
    });
  }
  if (def.environment !== undefined && def.environment !== null) {
    if (!isObj(def.environment) && !Array.isArray(def.environment)) throw ctx.pos.error(`${base}.environment`, 'expected a mapping or a list of KEY=VALUE');
    for (const [k, v] of Object.entries(listToMap(def.environment))) {
      if (v === null) {
        // A bare key takes the host's value; unset stays unset.
        const host = ctx.env[k];
        if (host !== undefined) s.environment[k] = host;
        else delete s.environment[k];
      } else if (typeof v === 'object') throw ctx.pos.error(`${base}.environment.${k}`, 'expected a string, number or boolean');
      else s.environment[k] = String(v);
    }
  }
  if (def.ports !== undefined && def.ports !== null) {
    if (!Array.isArray(def.ports)) throw ctx.pos.error(`${base}.ports`, 'expected a list');
    def.ports.forEach((p, i) => s.ports.push(...parsePorts(ctx, `${base}.ports[${i}]`, p)));
  }
  if (def.volumes !== undefined && def.volumes !== null) {
    if (!Array.isArray(def.volumes)) throw ctx.pos.error(`${base}.volumes`, 'expected a list');
    def.volumes.forEach((v, i) => s.mounts.push(mount(ctx, `${base}.volumes[${i}]`, v, volumes)));
  }
  if (def.tmpfs !== undefined && def.tmpfs !== null) {
    const list = Array.isArray(def.tmpfs) ? def.tmpfs : [def.tmpfs];
    list.forEach((t, i) => {
      const p = Array.isArray(def.tmpfs) ? `${base}.tmpfs[${i}]` : `${base}.tmpfs`;
      const [target, ...opts] = str(ctx, p, t).split(':');
      if (!target.startsWith('/')) throw ctx.pos.error(p, `${JSON.stringify(target)}: an absolute path in the container`);
      let size: number | undefined;
      for (const o of opts.join(':').split(',').filter(Boolean)) {
        const m = /^size=(.+)$/.exec(o);
        if (m) size = sizeBytes(sizeText(ctx, p, m[1]));
      }
      s.mounts.push({ type: 'tmpfs', target, readOnly: false, ...(size ? { size } : {}) });
    });
  }
  if (def.depends_on !== undefined && def.depends_on !== null) {
    const d = def.depends_on;
    const p = `${base}.depends_on`;
    if (Array.isArray(d))
      d.forEach((x, i) => {
        const dep = str(ctx, `${p}[${i}]`, x);
        s.dependsOn[dep] = { condition: 'service_started', required: true, restart: false };
        // Errors about the dependency name its list item's line.
        const at = ctx.pos.of(`${p}[${i}]`);
        if (at) ctx.pos.set(`${p}.${dep}`, at);
      });
    else if (isObj(d))
      for (const [k, v] of Object.entries(d)) {
        const c = isObj(v) ? v : {};
        const condition = (c.condition ?? 'service_started') as DependCondition;
        if (!['service_started', 'service_healthy', 'service_completed_successfully'].includes(condition)) throw ctx.pos.error(`${p}.${k}.condition`, `expected service_started, service_healthy or service_completed_successfully, got ${JSON.stringify(condition)}`);
        s.dependsOn[k] = { condition, required: c.required !== false, restart: c.restart === true };
      }
    else throw ctx.pos.error(p, 'expected a list of services or a mapping');
  }
  s.healthcheck = health(ctx, `${base}.healthcheck`, def.healthcheck);
  if (def.restart !== undefined && def.restart !== null) {
    const r = str(ctx, `${base}.restart`, def.restart);
    if (!/^(no|always|unless-stopped|on-failure(:\d+)?)$/.test(r)) throw ctx.pos.error(`${base}.restart`, `expected no, always, on-failure[:N] or unless-stopped, got ${JSON.stringify(r)}`);
    s.restart = r;
  }
  if (def.working_dir !== undefined) {
    s.workingDir = str(ctx, `${base}.working_dir`, def.working_dir);
    if (!s.workingDir.startsWith('/')) throw ctx.pos.error(`${base}.working_dir`, 'an absolute path in the container');
  }
  if (def.user !== undefined && def.user !== null) {
    const u = str(ctx, `${base}.user`, def.user);
    const m = /^(\d+|root)(?::(\d+|root))?$/.exec(u);
    if (!m) throw ctx.pos.error(`${base}.user`, `give the user as numbers, UID[:GID] (brig does not read user names from the image yet), got ${JSON.stringify(u)}`);
    const n = (x: string) => (x === 'root' ? 0 : Number(x));
    s.user = { uid: n(m[1]), ...(m[2] !== undefined ? { gid: n(m[2]) } : {}) };
  }
  if (def.hostname !== undefined) s.hostname = str(ctx, `${base}.hostname`, def.hostname);
  if (def.container_name !== undefined) {
    s.containerName = str(ctx, `${base}.container_name`, def.container_name);
    if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/.test(s.containerName)) throw ctx.pos.error(`${base}.container_name`, 'letters, digits, _ . - starting with a letter or digit');
  }
  if (def.networks !== undefined && def.networks !== null) {
    const n = def.networks;
    const p = `${base}.networks`;
    const entries: [string, unknown][] = Array.isArray(n) ? n.map((x, i) => [str(ctx, `${p}[${i}]`, x), null]) : isObj(n) ? Object.entries(n) : (() => { throw ctx.pos.error(p, 'expected a list or a mapping of networks'); })();
    for (const [k, v] of entries) {
      if (!networks[k]) throw ctx.pos.error(`${p}.${k}`, `service "${name}" refers to undefined network ${k}: declare it under the top-level networks:`);
      const o = isObj(v) ? v : {};
      for (const key of Object.keys(o)) if (key !== 'aliases') warn(`${p}.${k}.${key}`, 'not supported by brig yet, ignored');
      s.networks[k] = { aliases: Array.isArray(o.aliases) ? o.aliases.map((a, i) => str(ctx, `${p}.${k}.aliases[${i}]`, a)) : [] };
    }
  }
  if (def.network_mode !== undefined && def.network_mode !== null) {
    const m = str(ctx, `${base}.network_mode`, def.network_mode);
    if (m === 'none' || m === 'bridge' || /^(service|container):[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(m)) s.networkMode = m === 'bridge' ? undefined : m;
    else throw ctx.pos.error(`${base}.network_mode`, `expected none, bridge, service:NAME or container:NAME, got ${JSON.stringify(m)}`);
    if (s.networkMode && def.networks) throw ctx.pos.error(`${base}.network_mode`, 'network_mode and networks cannot be combined');
  }
  if (def.extra_hosts !== undefined && def.extra_hosts !== null) {
    const e = def.extra_hosts;
    const list = Array.isArray(e) ? e.map((x) => String(x).replace(/^([^:=]+)=/, '$1:')) : isObj(e) ? Object.entries(e).map(([k, v]) => `${k}:${v}`) : [];
    list.forEach((h, i) => {
      const [host, ...ip] = h.split(':');
      const addr = ip.join(':').replace(/^\[(.*)\]$/, '$1');
      if (!host || (addr !== 'host-gateway' && !isIP(addr))) throw ctx.pos.error(`${base}.extra_hosts${Array.isArray(e) ? `[${i}]` : `.${host}`}`, `expected HOST:IP, got ${JSON.stringify(h)}`);
      s.extraHosts.push(`${host}:${addr}`);
    });
  }
  for (const [k, f] of [['dns', 'dns'], ['dns_search', 'dnsSearch']] as const) {
    const v = def[k];
    if (v === undefined || v === null) continue;
    s[f] = (Array.isArray(v) ? v : [v]).map((x, i) => str(ctx, `${base}.${k}[${i}]`, x));
  }
  s.labels = strMap(ctx, `${base}.labels`, def.labels);
  if (def.stop_signal !== undefined) s.stopSignal = str(ctx, `${base}.stop_signal`, def.stop_signal);
  if (def.stop_grace_period !== undefined) s.stopGracePeriodS = Math.ceil(durationMs(ctx, `${base}.stop_grace_period`, def.stop_grace_period) / 1000);
  if (def.mem_limit !== undefined) s.limits.memory = sizeText(ctx, `${base}.mem_limit`, def.mem_limit);
  if (def.cpus !== undefined) s.limits.cpus = cpus(ctx, `${base}.cpus`, def.cpus);
  if (def.pids_limit !== undefined) s.limits.pids = pids(ctx, `${base}.pids_limit`, def.pids_limit);
  if (def.deploy !== undefined && def.deploy !== null) {
    const d = def.deploy;
    const p = `${base}.deploy`;
    if (!isObj(d)) throw ctx.pos.error(p, 'expected a mapping');
    for (const k of Object.keys(d)) if (k !== 'resources') warn(`${p}.${k}`, 'not supported by brig yet, ignored');
    const r = isObj(d.resources) ? d.resources : {};
    for (const k of Object.keys(r)) if (k !== 'limits') warn(`${p}.resources.${k}`, 'not supported by brig yet, ignored');
    const l = isObj(r.limits) ? r.limits : {};
    for (const k of Object.keys(l)) {
      const lp = `${p}.resources.limits.${k}`;
      if (k === 'cpus') s.limits.cpus = cpus(ctx, lp, l.cpus);
      else if (k === 'memory') s.limits.memory = sizeText(ctx, lp, l.memory);
      else if (k === 'pids') s.limits.pids = pids(ctx, lp, l.pids);
      else warn(lp, 'not supported by brig yet, ignored');
    }
  }
  if (def.shm_size !== undefined) s.shmSize = sizeText(ctx, `${base}.shm_size`, def.shm_size);
  if (def.profiles !== undefined && def.profiles !== null) {
    if (!Array.isArray(def.profiles)) throw ctx.pos.error(`${base}.profiles`, 'expected a list of profile names');
    s.profiles = def.profiles.map((x, i) => str(ctx, `${base}.profiles[${i}]`, x));
  }
  if (def.init !== undefined) {
    if (typeof def.init !== 'boolean') throw ctx.pos.error(`${base}.init`, 'expected true or false');
    s.init = def.init;
  }
  if (def.pull_policy !== undefined && !['always', 'never', 'missing', 'if_not_present', 'build'].includes(String(def.pull_policy))) throw ctx.pos.error(`${base}.pull_policy`, 'expected always, never, missing or build');
  if (def.security_opt !== undefined) for (const o of Array.isArray(def.security_opt) ? def.security_opt : []) if (!/^no-new-privileges(:true)?$/.test(String(o))) warn(`${base}.security_opt`, `${JSON.stringify(o)}: not supported by brig, ignored (no_new_privs and brig's seccomp filter always apply)`);
  return s;
}

function cpus(ctx: Ctx, path: string, v: unknown): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw ctx.pos.error(path, `expected a number of CPUs such as 0.5, got ${JSON.stringify(v)}`);
  return n;
}

function pids(ctx: Ctx, path: string, v: unknown): number {
  if (!Number.isInteger(v) || (v as number) < 1) throw ctx.pos.error(path, `expected a whole number of at least 1, got ${JSON.stringify(v)}`);
  return v as number;
}

/** The hash Compose puts in com.docker.compose.config-hash: the service's config, so an edit shows. */
export function configHash(s: ServiceModel, extra = ''): string {
  const { profiles: _p, ...rest } = s;
  void _p;
  return createHash('sha256').update(stable(rest) + extra).digest('hex');
}

function stable(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stable).join(',')}]`;
  if (v && typeof v === 'object') return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${stable((v as Record<string, unknown>)[k])}`).join(',')}}`;
  return JSON.stringify(v) ?? 'null';
}
