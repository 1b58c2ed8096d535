// User networks: records in the store (net/<id>.json), in the shape of
// Docker's `docker network inspect`, and the address leases of the
// containers on them.
//
// Several brig processes (CLIs, monitors, the engine server) change the
// same records, so every read-modify-write happens under one flock on
// net/.lock (the kernel drops it if its holder dies). Lock order: a process
// holding the containers' lock (ctr/.lock) may take this one, never the
// other way round; nothing here takes the containers' lock while holding it.
//
// A network's `Containers` are its active endpoints: the containers running
// on it, each with the address leased to it. A lease is written before the
// container's interface is made and removed after it is gone, so two brig
// processes never hand out one address; a lease whose container's monitor
// died (SIGKILL) is swept by the next process that looks (sweepLeases).
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NetworkError } from '../errors.js';
import { storeRoot } from '../image/store.js';
import { native } from '../native.js';
import { allIds, monitorAlive, readRecord, type ContainerRecord } from '../container/state.js';

export { NetworkError } from '../errors.js';

export interface EndpointRecord {
  Name: string;
  EndpointID: string;
  MacAddress: string;
  /** `a.b.c.d/nn` */
  IPv4Address: string;
  IPv6Address: string;
}

/** Docker's `docker network inspect` shape. */
export interface NetworkRecord {
  Name: string;
  /** 64 hex digits. */
  Id: string;
  Created: string;
  Scope: 'local';
  Driver: 'bridge';
  EnableIPv6: false;
  IPAM: { Driver: 'default'; Options: Record<string, string>; Config: { Subnet: string; Gateway: string }[] };
  Internal: boolean;
  Attachable: boolean;
  Ingress: false;
  ConfigFrom: { Network: string };
  ConfigOnly: false;
  /** Active endpoints: container id -> its address on this network. */
  Containers: Record<string, EndpointRecord>;
  Options: Record<string, string>;
  Labels: Record<string, string>;
}

export interface CreateNetworkOptions {
  name: string;
  /** IPv4 CIDR, e.g. 10.90.0.0/24; default: the first free 10.89.N.0/24. */
  subnet?: string;
  /** Default: the subnet's first address. */
  gateway?: string;
  /** No route out of the network (no pasta for it). */
  internal?: boolean;
  labels?: Record<string, string>;
  /** Docker's -o: kept, shown by inspect. */
  options?: Record<string, string>;
  /** Docker's --attachable: accepted and kept. */
  attachable?: boolean;
}

/** Names that are network modes, not networks (Docker's predefined ones among them). */
export const RESERVED_NETWORK_NAMES: ReadonlySet<string> = new Set(['none', 'host', 'bridge', 'default', 'loopback', 'pasta']);
export const NETWORK_NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;
const ID_RE = /^[0-9a-f]{64}$/;
/** Default subnets: 10.89.N.0/24, the first N no network has (podman's range for created networks). */
const DEFAULT_POOL = { base: (10 << 24) | (89 << 16), count: 256 };

export function networksRoot(): string {
  return join(storeRoot(), 'net');
}

/** The bridge's interface name in the network holder: Docker's br-<short id> (15 bytes, IFNAMSIZ-1). */
export function bridgeName(netId: string): string {
  return `br-${netId.slice(0, 12)}`;
}

/** Runs fn holding the lock every brig process takes to change networks and leases. Short by rule. */
export function withNetLock<T>(fn: () => T): T {
  mkdirSync(networksRoot(), { recursive: true, mode: 0o700 });
  const path = join(networksRoot(), '.lock');
  const fd = openSync(path, 'a', 0o600);
  try {
    const r = native.flock(fd, true, true);
    if (r < 0) throw new NetworkError(`network lock ${path}: errno ${-r}`);
    return fn();
  } finally {
    closeSync(fd); // closing drops the lock
  }
}

function recordPath(id: string): string {
  return join(networksRoot(), `${id}.json`);
}

function readAll(): NetworkRecord[] {
  let names: string[];
  try {
    names = readdirSync(networksRoot());
  } catch {
    return [];
  }
  const out: NetworkRecord[] = [];
  for (const n of names) {
    if (!n.endsWith('.json') || !ID_RE.test(n.slice(0, -5))) continue;
    try {
      out.push(JSON.parse(readFileSync(join(networksRoot(), n), 'utf8')) as NetworkRecord);
    } catch {
      // half-removed: not a network
    }
  }
  return out.sort((a, b) => a.Created.localeCompare(b.Created));
}

/** Replaces the record whole (write and rename): call under withNetLock. */
function writeNet(r: NetworkRecord): void {
  const tmp = join(networksRoot(), `.${r.Id}.${process.pid}.tmp`);
  writeFileSync(tmp, JSON.stringify(r, null, 2) + '\n', { mode: 0o600 });
  renameSync(tmp, recordPath(r.Id));
}

/** Docker's lookup: full id, then name, then a unique id prefix. Call under withNetLock. */
function find(all: NetworkRecord[], ref: string): NetworkRecord {
  if (typeof ref !== 'string' || ref === '') throw new NetworkError('a network name or id is needed', 400);
  const byId = all.find((n) => n.Id === ref);
  if (byId) return byId;
  const byName = all.find((n) => n.Name === ref);
  if (byName) return byName;
  if (/^[0-9a-f]+$/.test(ref)) {
    const m = all.filter((n) => n.Id.startsWith(ref));
    if (m.length === 1) return m[0];
    if (m.length > 1) throw new NetworkError(`network ${ref} is ambiguous (${m.length} matches found based on ID prefix)`, 400);
  }
  throw new NetworkError(`network ${ref} not found`, 404);
}

// ---- IPv4 arithmetic -------------------------------------------------------

export function ipToInt(ip: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (!m) return undefined;
  const b = m.slice(1).map(Number);
  if (b.some((x) => x > 255)) return undefined;
  return ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
}

export function intToIp(n: number): string {
  return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** A CIDR as its network address and prefix length, checked. */
export function parseSubnet(field: string, cidr: string): { base: number; prefix: number } {
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(cidr);
  const base = m ? ipToInt(m[1]) : undefined;
  const prefix = m ? Number(m[2]) : NaN;
  if (base === undefined || !(prefix >= 8 && prefix <= 30)) throw new NetworkError(`invalid ${field} ${JSON.stringify(cidr)}: expected an IPv4 CIDR such as 10.90.0.0/24 (prefix 8 to 30)`, 400);
  const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
  if ((base & mask) >>> 0 !== base) throw new NetworkError(`invalid ${field} ${JSON.stringify(cidr)}: host bits are set (the network is ${intToIp((base & mask) >>> 0)}/${prefix})`, 400);
  return { base, prefix };
}

function overlaps(a: { base: number; prefix: number }, b: { base: number; prefix: number }): boolean {
  const p = Math.min(a.prefix, b.prefix);
  const mask = (~0 << (32 - p)) >>> 0;
  return (a.base & mask) >>> 0 === (b.base & mask) >>> 0;
}

function subnetOf(n: NetworkRecord): { base: number; prefix: number } {
  return parseSubnet('subnet', n.IPAM.Config[0].Subnet);
}

function checkLabels(labels: unknown): Record<string, string> {
  if (labels === undefined) return {};
  if (labels === null || typeof labels !== 'object' || Array.isArray(labels)) throw new NetworkError('labels: expected an object of strings', 400);
  for (const [k, v] of Object.entries(labels)) if (typeof v !== 'string' || k === '') throw new NetworkError(`labels: ${JSON.stringify(k)} must have a string value`, 400);
  return { ...(labels as Record<string, string>) };
}

// ---- networks ---------------------------------------------------------------

export function createNetwork(o: CreateNetworkOptions): NetworkRecord {
  const name = o?.name;
  if (typeof name !== 'string' || !NETWORK_NAME_RE.test(name)) throw new NetworkError(`invalid network name ${JSON.stringify(name)}: letters, digits, _ . - (up to 128), starting with a letter or digit`, 400);
  if (RESERVED_NETWORK_NAMES.has(name)) throw new NetworkError(`network name ${name} is a network mode (none, host, bridge, default, loopback, pasta are not user networks)`, 403);
  const labels = checkLabels(o.labels);
  let wanted: { base: number; prefix: number } | undefined;
  if (o.subnet !== undefined) wanted = parseSubnet('subnet', o.subnet);
  return withNetLock(() => {
    const all = readAll();
    if (all.some((n) => n.Name === name)) throw new NetworkError(`network with name ${name} already exists`, 409);
    const taken = all.map(subnetOf);
    let subnet = wanted;
    if (subnet) {
      const clash = all.find((n) => overlaps(subnetOf(n), subnet!));
      if (clash) throw new NetworkError(`invalid pool request: Pool overlaps with other one on this address space (network ${clash.Name}, ${clash.IPAM.Config[0].Subnet})`, 403);
    } else {
      for (let i = 0; i < DEFAULT_POOL.count && !subnet; i++) {
        const cand = { base: (DEFAULT_POOL.base + (i << 8)) >>> 0, prefix: 24 };
        if (!taken.some((t) => overlaps(t, cand))) subnet = cand;
      }
      if (!subnet) throw new NetworkError('could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network (10.89.0.0/16 is used up): give --subnet', 403);
    }
    const size = 2 ** (32 - subnet.prefix);
    let gateway = subnet.base + 1;
    if (o.gateway !== undefined) {
      const g = ipToInt(o.gateway);
      if (g === undefined || g <= subnet.base || g >= subnet.base + size - 1) throw new NetworkError(`invalid gateway ${JSON.stringify(o.gateway)}: expected an address inside ${intToIp(subnet.base)}/${subnet.prefix}`, 400);
      gateway = g;
    }
    let id = randomBytes(32).toString('hex');
    while (/^\d+$/.test(id.slice(0, 12))) id = randomBytes(32).toString('hex'); // a short id is never all digits, as Docker's
    const rec: NetworkRecord = {
      Name: name,
      Id: id,
      Created: new Date().toISOString(),
      Scope: 'local',
      Driver: 'bridge',
      EnableIPv6: false,
      IPAM: { Driver: 'default', Options: {}, Config: [{ Subnet: `${intToIp(subnet.base)}/${subnet.prefix}`, Gateway: intToIp(gateway) }] },
      Internal: o.internal === true,
      Attachable: o.attachable === true,
      Ingress: false,
      ConfigFrom: { Network: '' },
      ConfigOnly: false,
      Containers: {},
      Options: { ...o.options, 'com.docker.network.bridge.name': bridgeName(id) },
      Labels: labels,
    };
    writeNet(rec);
    return rec;
  });
}

/**
 * The ids of containers whose monitors live: their endpoints are real. Read
 * without the containers' lock (records are replaced by rename), as this
 * runs from reconcile(), which holds it.
 */
export function liveContainerIds(): Set<string> {
  return new Set(
    allIds()
      .map((id) => readRecord(id))
      .filter((r): r is ContainerRecord => r !== undefined && monitorAlive(r))
      .map((r) => r.Id),
  );
}

/** Drops the leases of containers that are not running any more (their monitor died). Returns what it dropped. */
export function sweepLeases(): { network: string; container: string }[] {
  const live = liveContainerIds();
  return withNetLock(() => {
    const gone: { network: string; container: string }[] = [];
    for (const n of readAll()) {
      let changed = false;
      for (const cid of Object.keys(n.Containers)) {
        if (!live.has(cid)) {
          delete n.Containers[cid];
          gone.push({ network: n.Id, container: cid });
          changed = true;
        }
      }
      if (changed) writeNet(n);
    }
    return gone;
  });
}

export function listNetworks(): NetworkRecord[] {
  sweepLeases();
  return withNetLock(readAll);
}

export function getNetwork(ref: string): NetworkRecord {
  sweepLeases();
  return withNetLock(() => find(readAll(), ref));
}

export async function removeNetwork(ref: string): Promise<void> {
  sweepLeases();
  const bridge = withNetLock(() => {
    const n = find(readAll(), ref);
    if (Object.keys(n.Containers).length) throw new NetworkError(`error while removing network: network ${n.Name} id ${n.Id} has active endpoints`, 409);
    rmSync(recordPath(n.Id), { force: true });
    return bridgeName(n.Id);
  });
  await ensureImpl();
  await afterNetworkChange?.([bridge]);
}

/** Removes every network no running container is on; returns their names. */
export async function pruneNetworks(): Promise<string[]> {
  sweepLeases();
  const gone = withNetLock(() => {
    const out: NetworkRecord[] = [];
    for (const n of readAll()) {
      if (Object.keys(n.Containers).length) continue;
      rmSync(recordPath(n.Id), { force: true });
      out.push(n);
    }
    return out;
  });
  await ensureImpl();
  await afterNetworkChange?.(gone.map((n) => bridgeName(n.Id)));
  return gone.map((n) => n.Name);
}

/** Called after networks went, with their bridges (the holder may be ended when nothing needs it, or their bridges removed from it). */
let afterNetworkChange: ((removedBridges: string[]) => Promise<void>) | undefined;
export function setAfterNetworkChange(fn: (removedBridges: string[]) => Promise<void>): void {
  afterNetworkChange = fn;
}

// ---- leases -------------------------------------------------------------------

export interface Lease {
  networkId: string;
  networkName: string;
  bridge: string;
  ip: string;
  prefix: number;
  gateway: string;
  mac: string;
  endpointId: string;
  internal: boolean;
}

function macFor(ip: number): string {
  // Docker's: 02:42 and the address, locally administered and unique per network.
  return ['02', '42', ...[24, 16, 8, 0].map((s) => ((ip >>> s) & 255).toString(16).padStart(2, '0'))].join(':');
}

/**
 * Leases an address on the network to a container (the same one again if
 * it has one): the first free address after the gateway, or `want`.
 */
export function leaseAddress(ref: string, containerId: string, containerName: string, want?: string): Lease {
  return withNetLock(() => {
    const n = find(readAll(), ref);
    const { base, prefix } = subnetOf(n);
    const gateway = ipToInt(n.IPAM.Config[0].Gateway)!;
    const size = 2 ** (32 - prefix);
    let ep = n.Containers[containerId];
    if (!ep) {
      const used = new Set(Object.values(n.Containers).map((e) => ipToInt(e.IPv4Address.split('/')[0])));
      let ip: number | undefined;
      if (want !== undefined) {
        const w = ipToInt(want);
        if (w === undefined || w <= base || w >= base + size - 1 || w === gateway) throw new NetworkError(`invalid address ${JSON.stringify(want)} for network ${n.Name} (${n.IPAM.Config[0].Subnet})`, 400);
        if (used.has(w)) throw new NetworkError(`Address already in use: ${want} on network ${n.Name}`, 403);
        ip = w;
      } else {
        for (let a = base + 1; a < base + size - 1; a++) {
          if (a !== gateway && !used.has(a)) {
            ip = a;
            break;
          }
        }
      }
      if (ip === undefined) throw new NetworkError(`no available IPv4 addresses on network ${n.Name} (${n.IPAM.Config[0].Subnet})`, 403);
      ep = { Name: containerName, EndpointID: randomBytes(32).toString('hex'), MacAddress: macFor(ip), IPv4Address: `${intToIp(ip)}/${prefix}`, IPv6Address: '' };
      n.Containers[containerId] = ep;
      writeNet(n);
    }
    return { networkId: n.Id, networkName: n.Name, bridge: bridgeName(n.Id), ip: ep.IPv4Address.split('/')[0], prefix, gateway: intToIp(gateway), mac: ep.MacAddress, endpointId: ep.EndpointID, internal: n.Internal };
  });
}

/** Gives a container's address back (no error if it had none, or the network is gone). */
export function releaseAddress(networkId: string, containerId: string): void {
  withNetLock(() => {
    const n = readAll().find((x) => x.Id === networkId);
    if (!n || !n.Containers[containerId]) return;
    delete n.Containers[containerId];
    writeNet(n);
  });
}

/** Every lease a container holds (on any network). */
export function leasesOf(containerId: string): { networkId: string; name: string; ip: string }[] {
  return withNetLock(() =>
    readAll()
      .filter((n) => n.Containers[containerId])
      .map((n) => ({ networkId: n.Id, name: n.Name, ip: n.Containers[containerId].IPv4Address.split('/')[0] })),
  );
}

/** Whether any network has an active endpoint (the holder is needed while one does). Call under withNetLock. */
export function anyEndpointsLocked(): boolean {
  return readAll().some((n) => Object.keys(n.Containers).length > 0);
}

/** Every network's record, read under a lock the caller holds (withNetLock). */
export function readNetworksLocked(): NetworkRecord[] {
  return readAll();
}

/** Whether `v` names a user network (rather than a mode): for option checks. */
export function isUserNetworkName(v: string): boolean {
  return !RESERVED_NETWORK_NAMES.has(v) && !v.startsWith('container:') && NETWORK_NAME_RE.test(v);
}

// ---- connect / disconnect: implemented with the container side (src/net/attach.ts) ----

export interface ConnectOptions {
  aliases?: string[];
  /** A fixed address on the network (docker network connect --ip). */
  ipv4Address?: string;
}

type ConnectImpl = (containerRef: string, network: NetworkRecord, o: ConnectOptions) => Promise<void>;
type DisconnectImpl = (containerRef: string, network: NetworkRecord, o: { force?: boolean }) => Promise<void>;
let connectImpl: ConnectImpl | undefined;
let disconnectImpl: DisconnectImpl | undefined;

/** @internal src/net/attach.ts registers how a container joins and leaves (it needs the container records). */
export function setConnectImpl(c: ConnectImpl, d: DisconnectImpl): void {
  connectImpl = c;
  disconnectImpl = d;
}

async function ensureImpl(): Promise<void> {
  if (!connectImpl) await import('./attach.js');
}

/** Docker's `network connect`: the container is on the network from its next start, or at once if it runs. */
export async function connectNetwork(containerRef: string, network: string, o: ConnectOptions = {}): Promise<void> {
  if (o.aliases !== undefined && (!Array.isArray(o.aliases) || o.aliases.some((a) => typeof a !== 'string' || !NETWORK_NAME_RE.test(a)))) throw new NetworkError('aliases: expected names (letters, digits, _ . -)', 400);
  const n = getNetwork(network);
  await ensureImpl();
  await connectImpl!(containerRef, n, o);
}

/** Docker's `network disconnect`. */
export async function disconnectNetwork(containerRef: string, network: string, o: { force?: boolean } = {}): Promise<void> {
  const n = getNetwork(network);
  await ensureImpl();
  await disconnectImpl!(containerRef, n, o);
}
