// Published ports: Docker's -p syntax and the API's objects, checked and
// expanded to one entry per port.
import { net } from '../builtins.js';
import { OptionsError, shown } from '../errors.js';
import type { PublishedPort as PublishedPortSpec } from '../profile/types.js';

export type PublishOption = string | PublishedPortSpec;

/** One host port forwarded to one port inside. hostPort 0: a free port, chosen when the sandbox starts. */
export interface PublishedPort {
  hostIp: string;
  hostPort: number;
  containerPort: number;
  protocol: 'tcp' | 'udp';
}

/**
 * The host address when none is given. Docker's is 0.0.0.0, which serves
 * every network the host is on: a port meant for the developer's browser
 * reaches the café's Wi-Fi. brig serves loopback unless told otherwise.
 */
export const DEFAULT_HOST_IP = '127.0.0.1';

function port(field: string, s: string, allowZero: boolean): number {
  if (!/^\d{1,5}$/.test(s)) throw new OptionsError(field, `expected a port number, got ${JSON.stringify(s)}`);
  const n = Number(s);
  if (n > 65535 || (n === 0 && !allowZero)) throw new OptionsError(field, `port out of range (1-65535): ${n}`);
  return n;
}

function range(field: string, s: string, allowZero: boolean): [number, number] {
  const m = /^([^-]+)(?:-([^-]+))?$/.exec(s);
  if (!m) throw new OptionsError(field, `expected PORT or FIRST-LAST, got ${JSON.stringify(s)}`);
  const a = port(field, m[1], allowZero);
  const b = m[2] === undefined ? a : port(field, m[2], allowZero);
  if (b < a) throw new OptionsError(field, `a range must go up: ${JSON.stringify(s)}`);
  return [a, b];
}

function hostIp(field: string, ip: string): string {
  const bare = ip.startsWith('[') && ip.endsWith(']') ? ip.slice(1, -1) : ip;
  if (!net().isIP(bare)) throw new OptionsError(field, `expected an IPv4 or IPv6 address, got ${JSON.stringify(ip)}`);
  return bare;
}

/**
 * `[IP:][HOSTPORT:]CPORT[/tcp|udp]`, ports or ranges of equal length
 * (`8000-8009:80-89`); IPv6 addresses in brackets (`[::1]:8080:80`). A
 * missing host port is a free one, per container port.
 */
export function parsePublish(field: string, spec: string): PublishedPort[] {
  let rest = spec;
  let protocol: 'tcp' | 'udp' = 'tcp';
  const slash = rest.lastIndexOf('/');
  if (slash >= 0) {
    const p = rest.slice(slash + 1);
    if (p !== 'tcp' && p !== 'udp') throw new OptionsError(field, `protocol must be tcp or udp, got ${JSON.stringify(p)} in ${JSON.stringify(spec)}`);
    protocol = p;
    rest = rest.slice(0, slash);
  }
  let ip = DEFAULT_HOST_IP;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']:');
    if (close < 0) throw new OptionsError(field, `expected [IPv6]:..., got ${JSON.stringify(spec)}`);
    ip = hostIp(field, rest.slice(1, close));
    rest = rest.slice(close + 2);
  }
  const parts = rest.split(':');
  if (parts.length > 3 || parts.some((p, i) => p === '' && !(parts.length === 3 && i === 1))) throw new OptionsError(field, `expected [IP:][HOSTPORT:]PORT[/tcp|udp], got ${JSON.stringify(spec)}`);
  if (parts.length === 3) ip = hostIp(field, parts.shift()!);
  const inside = range(field, parts[parts.length - 1], false);
  const host: [number, number] = parts.length === 2 && parts[0] !== '' ? range(field, parts[0], false) : [0, 0];
  const count = inside[1] - inside[0] + 1;
  if (host[0] !== 0 && host[1] - host[0] + 1 !== count) throw new OptionsError(field, `the host range and the container range differ in length: ${JSON.stringify(spec)}`);
  const out: PublishedPort[] = [];
  for (let i = 0; i < count; i++) out.push({ hostIp: ip, hostPort: host[0] === 0 ? 0 : host[0] + i, containerPort: inside[0] + i, protocol });
  return out;
}

/** The publish option, checked: one entry per port, no host address and port taken twice. */
export function publishOption(v: unknown): PublishedPort[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new OptionsError('publish', `expected a list, got ${shown(v)}`);
  const out: PublishedPort[] = [];
  for (const [i, item] of v.entries()) {
    const f = `publish[${i}]`;
    if (typeof item === 'string') {
      out.push(...parsePublish(f, item));
      continue;
    }
    if (!item || typeof item !== 'object') throw new OptionsError(f, 'expected "[IP:][HOSTPORT:]PORT[/tcp|udp]" or { hostIp?, hostPort?, containerPort, protocol? }');
    const o = item as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!['hostIp', 'hostPort', 'containerPort', 'protocol'].includes(k)) throw new OptionsError(`${f}.${k}`, 'unknown field');
    const num = (k: string, allowZero: boolean) => {
      const x = o[k];
      if (typeof x !== 'number' || !Number.isInteger(x) || x < (allowZero ? 0 : 1) || x > 65535) throw new OptionsError(`${f}.${k}`, `expected a port number from ${allowZero ? 0 : 1} to 65535, got ${shown(x)}`);
      return x;
    };
    const protocol = o.protocol ?? 'tcp';
    if (protocol !== 'tcp' && protocol !== 'udp') throw new OptionsError(`${f}.protocol`, `expected tcp or udp, got ${shown(protocol)}`);
    out.push({
      hostIp: o.hostIp === undefined ? DEFAULT_HOST_IP : hostIp(`${f}.hostIp`, String(o.hostIp)),
      hostPort: o.hostPort === undefined ? 0 : num('hostPort', true),
      containerPort: num('containerPort', false),
      protocol,
    });
  }
  const seen = new Set<string>();
  for (const p of out) {
    if (p.hostPort === 0) continue;
    const key = `${p.protocol}/${p.hostIp}/${p.hostPort}`;
    if (seen.has(key)) throw new OptionsError('publish', `host port ${p.hostIp}:${p.hostPort}/${p.protocol} is published twice`);
    seen.add(key);
  }
  return out;
}
