// Containers on user networks: what a container's record says about its
// networks (Docker's NetworkSettings.Networks), connect and disconnect, and
// (with src/net/holder.ts) the endpoints a container's monitor makes at each
// start and gives back at each end.
import { closeSync, ftruncateSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { ContainerError, get, monitorAlive, processStart, setMonitorDiedHook, readRecord, runtimeDir, update, type ContainerRecord, type EndpointSettings } from '../container/state.js';
import { Store } from '../image/store.js';
import { holderPid, plugVeths, prepareEndpoint, removeBridge, stopHolderIfUnused, unplugVeth, type LaunchMaps, type PreparedEndpoint } from './holder.js';
import { NetworkError, getNetwork, leaseAddress, leasesOf, readNetworksLocked, releaseAddress, setAfterNetworkChange, setConnectImpl, sweepLeases, withNetLock, type ConnectOptions, type Lease, type NetworkRecord } from './networks.js';

function emptyEndpoint(n: NetworkRecord, aliases: string[], ip?: string): EndpointSettings {
  return { NetworkID: n.Id, EndpointID: '', Gateway: '', IPAddress: '', IPPrefixLen: 0, MacAddress: '', Aliases: aliases, ...(ip ? { IPAMConfig: { IPv4Address: ip } } : {}) };
}

/** NetworkSettings for a container created on `network` (a user network's name, checked to exist). */
export function initialNetworkSettings(network: string, aliases: string[] = []): NonNullable<ContainerRecord['NetworkSettings']> {
  const n = getNetwork(network);
  return { Networks: { [n.Name]: emptyEndpoint(n, aliases) }, Ports: {} };
}

function userNetworksOf(r: ContainerRecord): string[] {
  return Object.keys(r.NetworkSettings?.Networks ?? {});
}

/** Whether the container's program runs now (its monitor lives and says so). */
function isRunning(r: ContainerRecord): boolean {
  return monitorAlive(r) && r.State.Running && r.State.Pid > 0;
}

/**
 * The running container's init pid, if its network namespace can take (or
 * give back) an interface: it was made under the network holder that runs
 * now. Else a one-line error saying why it cannot, and what to do.
 */
function pluggablePid(r: ContainerRecord, verb: 'connect' | 'disconnect'): number {
  const pid = r.State.Pid;
  const again = verb === 'connect' ? 'stop it, connect, start it' : 'stop it first';
  if (!r.NetHolder) throw new NetworkError(`container ${r.Name} is running on network mode ${r.HostConfig.NetworkMode}, not on a user network: its interfaces are its own (${again})`, 400);
  const h = holderPid();
  if (h !== r.NetHolder.Pid || processStart(h) !== r.NetHolder.Start) throw new NetworkError(`container ${r.Name} is running, but the network holder its namespace was made under has ended (it was disconnected from every network meanwhile): ${again}`, 400);
  let comm = '';
  try {
    comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    // gone
  }
  if (comm !== 'brig-init') throw new NetworkError(`container ${r.Name} is not running any more`, 409);
  return pid;
}

/**
 * Docker's `network connect`. A stopped container is on the network from its
 * next start. A running one gets an interface at once, plugged from the
 * network holder's side (the program gains no capability over it), and every
 * container on the network learns its names, and it theirs.
 */
async function connect(containerRef: string, n: NetworkRecord, o: ConnectOptions): Promise<void> {
  const r = get(containerRef);
  const mode = r.HostConfig.NetworkMode;
  if (mode === 'host' || mode.startsWith('container:')) throw new NetworkError(`container ${r.Name} is on network mode ${mode}: it cannot be connected to a user network`, 400);
  if (userNetworksOf(r).includes(n.Name)) throw new NetworkError(`endpoint with name ${r.Name} already exists in network ${n.Name}`, 403);
  // A running one gets its interface now; a stopped one at its next start.
  const pid = isRunning(r) ? pluggablePid(r, 'connect') : undefined;
  const lease = pid === undefined ? undefined : leaseAddress(n.Name, r.Id, r.Name, o.ipv4Address);
  try {
    // The default route only when it has no other network (its old route went with its last interface).
    if (lease) await plugVeths(pid!, [lease], { route: userNetworksOf(r).length === 0 });
    update(r.Id, (cur) => {
      cur.NetworkSettings ??= { Networks: {}, Ports: {} };
      cur.NetworkSettings.Networks[n.Name] = {
        ...emptyEndpoint(n, o.aliases ?? [], o.ipv4Address),
        ...(lease && { EndpointID: lease.endpointId, Gateway: lease.gateway, IPAddress: lease.ip, IPPrefixLen: lease.prefix, MacAddress: lease.mac }),
      };
      // A container with no network of its own joins the first one it is connected to.
      if (cur.HostConfig.NetworkMode === 'none' || cur.HostConfig.NetworkMode === 'loopback') {
        cur.HostConfig.NetworkMode = n.Name;
        cur.Options.network = n.Name;
      }
    });
  } catch (e) {
    if (lease) releaseAddress(lease.networkId, r.Id);
    throw e;
  }
  if (!lease) return;
  // It may have ended while its interface was made: then its monitor gave back what it knew of; this lease too.
  const now = readRecord(r.Id);
  if (!now || !isRunning(now) || now.State.Pid !== pid) releaseAddress(lease.networkId, r.Id);
  refreshHosts();
}

/** Docker's `network disconnect`: a running container's interface on the network goes at once, with its lease and names. */
async function disconnect(containerRef: string, n: NetworkRecord, o: { force?: boolean }): Promise<void> {
  let r: ContainerRecord;
  try {
    r = get(containerRef);
  } catch (e) {
    if (o.force && e instanceof ContainerError) return;
    throw e;
  }
  if (!userNetworksOf(r).includes(n.Name)) throw new NetworkError(`container ${r.Id} is not connected to network ${n.Name}`, 403);
  if (isRunning(r)) {
    const pid = pluggablePid(r, 'disconnect');
    const lease = leasesOf(r.Id).find((l) => l.networkId === n.Id);
    if (lease) {
      try {
        await unplugVeth(pid, lease.ip);
      } catch (e) {
        // Gone with its program meanwhile: nothing to unplug. -f goes on regardless.
        const still = readRecord(r.Id);
        if (!o.force && still && isRunning(still) && still.State.Pid === pid) throw e;
      }
      releaseAddress(n.Id, r.Id);
    }
  }
  update(r.Id, (cur) => {
    delete cur.NetworkSettings!.Networks[n.Name];
    if (cur.HostConfig.NetworkMode === n.Name) {
      const next = Object.keys(cur.NetworkSettings!.Networks)[0];
      cur.HostConfig.NetworkMode = next ?? 'none';
      cur.Options.network = next ?? 'none';
    }
  });
  refreshHosts();
}

setConnectImpl(connect, disconnect);

// ---- a container's start and end on its networks ------------------------------

/** What the monitor adds to one start of a container on user networks, container:NAME or links. */
export interface StartNetwork {
  /** Options merged into the run's: the hosts file bound over /etc/hosts, link variables. */
  options: { mounts?: { source: string; target: string; readonly: boolean }[]; env?: Record<string, string> };
  /** The pair the launch joins, made once the launch's maps are known. */
  prepareNet?: (maps: LaunchMaps) => Promise<PreparedEndpoint>;
  /** After the run ended (however it ended): leases back, names updated, the holder ended if unused. */
  ended(): Promise<void>;
}

function hostsPathOf(id: string): string {
  return join(runtimeDir(id), 'hosts');
}

function shortId(id: string): string {
  return id.slice(0, 12);
}

/** The names a container has on a network: its name, its aliases, its short id. */
function namesOn(rec: ContainerRecord | undefined, id: string, fallbackName: string, network: string): string[] {
  const aliases = rec?.NetworkSettings?.Networks[network]?.Aliases ?? [];
  return [...new Set([rec?.Name ?? fallbackName, ...aliases, shortId(id)])];
}

/** A container's /etc/hosts on its user networks. Call under withNetLock (reads the records as they are). */
function hostsText(id: string, nets: NetworkRecord[]): string | undefined {
  const rec = readRecord(id);
  if (!rec) return undefined;
  const hostname = rec.Config.Hostname || 'brig';
  let text = `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n`;
  const seen = new Set<string>();
  const line = (ip: string, names: string[]) => {
    const fresh = names.filter((n) => !seen.has(`${ip} ${n}`));
    for (const n of fresh) seen.add(`${ip} ${n}`);
    if (fresh.length) text += `${ip}\t${fresh.join(' ')}\n`;
  };
  const mine = nets.filter((n) => n.Containers[id]);
  // Its own address first, with its hostname (as Docker writes it).
  for (const n of mine) line(n.Containers[id].IPv4Address.split('/')[0], [hostname, ...namesOn(rec, id, rec.Name, n.Name)]);
  for (const n of mine)
    for (const [other, ep] of Object.entries(n.Containers)) {
      if (other === id) continue;
      line(ep.IPv4Address.split('/')[0], namesOn(readRecord(other), other, ep.Name, n.Name));
    }
  for (const l of rec.HostConfig.Links ?? []) {
    const { target, alias } = parseLink(l);
    for (const n of mine)
      for (const [other, ep] of Object.entries(n.Containers))
        if (ep.Name === target || other === target || other.startsWith(target)) line(ep.IPv4Address.split('/')[0], [alias, ep.Name]);
  }
  for (const h of (rec.Options.extraHosts as string[] | undefined) ?? []) {
    const c = h.indexOf(':');
    if (c > 0 && isIP(h.slice(c + 1))) line(h.slice(c + 1), [h.slice(0, c)]);
  }
  return text;
}

/**
 * Rewrites, in place, the hosts file of every running container on a user
 * network (a bind mount shows a file's new contents, not a new file: no
 * rename). Under the network lock, so two writers never interleave.
 */
export function refreshHosts(): void {
  withNetLock(() => {
    const nets = readNetworksLocked();
    const ids = new Set(nets.flatMap((n) => Object.keys(n.Containers)));
    for (const id of ids) {
      const path = hostsPathOf(id);
      const text = hostsText(id, nets);
      if (text === undefined) continue;
      let fd: number;
      try {
        fd = openSync(path, 'r+');
      } catch {
        continue; // not started yet, or gone
      }
      try {
        const old = readFileSync(fd, 'utf8');
        if (old !== text) {
          ftruncateSync(fd, 0);
          writeSync(fd, text, 0);
        }
      } finally {
        closeSync(fd);
      }
    }
  });
}

export function parseLink(l: string): { target: string; alias: string } {
  const c = l.indexOf(':');
  const target = (c < 0 ? l : l.slice(0, c)).replace(/^\//, '');
  const alias = c < 0 ? target : l.slice(c + 1).replace(/^.*\//, '');
  return { target, alias };
}

/** Docker's legacy link variables for a target at `ip`: ALIAS_NAME, ALIAS_PORT*, ALIAS_ENV_*. */
export function linkEnv(me: string, alias: string, ip: string, exposed: string[], targetEnv: string[]): Record<string, string> {
  const A = alias.toUpperCase().replace(/[^A-Z0-9_]/g, '_');
  const env: Record<string, string> = { [`${A}_NAME`]: `/${me}/${alias}` };
  const ports = exposed
    .map((p) => {
      const [port, proto = 'tcp'] = p.split('/');
      return { port: Number(port), proto };
    })
    .filter((p) => Number.isInteger(p.port))
    .sort((a, b) => a.port - b.port || a.proto.localeCompare(b.proto));
  if (ports.length) env[`${A}_PORT`] = `${ports[0].proto}://${ip}:${ports[0].port}`;
  for (const p of ports) {
    const P = `${A}_PORT_${p.port}_${p.proto.toUpperCase()}`;
    env[P] = `${p.proto}://${ip}:${p.port}`;
    env[`${P}_ADDR`] = ip;
    env[`${P}_PORT`] = String(p.port);
    env[`${P}_PROTO`] = p.proto;
  }
  const skip = new Set(['HOME', 'HOSTNAME', 'PATH']);
  for (const kv of targetEnv) {
    const eq = kv.indexOf('=');
    if (eq > 0 && !skip.has(kv.slice(0, eq))) env[`${A}_ENV_${kv.slice(0, eq)}`] = kv.slice(eq + 1);
  }
  return env;
}

/** The ports a container's image exposes (EXPOSE), as `80/tcp`. */
export function exposedPorts(rec: ContainerRecord): string[] {
  const ref = rec.Options.image;
  if (typeof ref !== 'string') return [];
  try {
    return Object.keys(new Store().get(ref).config.config.ExposedPorts ?? {});
  } catch {
    return [];
  }
}

/** Opens a running container's user and network namespaces (container:NAME). */
function joinContainer(ref: string): PreparedEndpoint {
  const t = get(ref);
  if (!monitorAlive(t) || !t.State.Running || t.State.Pid === 0) throw new NetworkError(`cannot join network of a non running container: ${ref}`, 409);
  const pid = t.State.Pid;
  const fds: number[] = [];
  try {
    if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'brig-init') throw new Error('not brig-init');
    fds.push(openSync(`/proc/${pid}/ns/user`, 'r'));
    fds.push(openSync(`/proc/${pid}/ns/net`, 'r'));
  } catch {
    for (const fd of fds) closeSync(fd);
    throw new NetworkError(`cannot join network of a non running container: ${ref}`, 409);
  }
  return {
    fds: [fds[0], fds[1]],
    done: () => {
      for (const fd of fds) closeSync(fd);
    },
  };
}

/** What one start of this container needs for its networks; undefined when it is on none of brig's joined kinds. */
export function startNetwork(id: string): StartNetwork | undefined {
  const rec = readRecord(id);
  if (!rec) return undefined;
  const mode = rec.HostConfig.NetworkMode;
  const links = rec.HostConfig.Links ?? [];
  if (mode.startsWith('container:')) {
    if (links.length) throw new NetworkError('conflicting options: --link and --network container:NAME', 400);
    const ref = mode.slice('container:'.length);
    return { options: {}, prepareNet: async () => joinContainer(ref), ended: async () => {} };
  }
  const names = Object.keys(rec.NetworkSettings?.Networks ?? {});
  if (!names.length) {
    if (links.length) throw new NetworkError('--link: links need a user network both containers are on (--network NAME)', 400);
    return undefined;
  }
  // The primary network first: its gateway is the default route.
  names.sort((a, b) => (a === mode ? -1 : b === mode ? 1 : 0));
  const leases: Lease[] = [];
  const release = async () => {
    // Every lease it holds: those of its start, and those of networks connected while it ran.
    for (const l of leases) releaseAddress(l.networkId, id);
    for (const l of leasesOf(id)) releaseAddress(l.networkId, id);
    try {
      update(id, (r) => {
        for (const ep of Object.values(r.NetworkSettings?.Networks ?? {})) Object.assign(ep, { EndpointID: '', Gateway: '', IPAddress: '', IPPrefixLen: 0, MacAddress: '' });
        delete r.NetHolder;
      });
    } catch {
      // removed meanwhile
    }
    refreshHosts();
    stopHolderIfUnused();
  };
  try {
    for (const name of names) {
      const fixed = rec.NetworkSettings!.Networks[name].IPAMConfig?.IPv4Address;
      leases.push(leaseAddress(name, id, rec.Name, fixed));
    }
  } catch (e) {
    for (const l of leases) releaseAddress(l.networkId, id);
    throw e;
  }
  update(id, (r) => {
    for (const l of leases) {
      const ep = r.NetworkSettings!.Networks[l.networkName] ?? emptyEndpoint({ Id: l.networkId } as NetworkRecord, []);
      r.NetworkSettings!.Networks[l.networkName] = { ...ep, NetworkID: l.networkId, EndpointID: l.endpointId, Gateway: l.gateway, IPAddress: l.ip, IPPrefixLen: l.prefix, MacAddress: l.mac };
    }
  });
  // Link variables: the targets' addresses on a network this one is on.
  const env: Record<string, string> = {};
  for (const link of links) {
    const { target, alias } = parseLink(link);
    const t = get(target);
    const ip = leases.map((l) => t.NetworkSettings?.Networks[l.networkName]?.IPAddress).find((x) => x);
    if (!ip || !monitorAlive(t)) throw new NetworkError(`Cannot link to /${target}: it is not running on a network this container is on`, 400);
    Object.assign(env, linkEnv(rec.Name, alias, ip, exposedPorts(t), t.Config.Env));
  }
  // Kept in the record too: an exec sees the variables the program does.
  update(id, (r) => {
    if (Object.keys(env).length) r.LinkEnv = env;
    else delete r.LinkEnv;
  });
  const hostsPath = hostsPathOf(id);
  mkdirSync(runtimeDir(id), { recursive: true, mode: 0o700 });
  writeFileSync(hostsPath, '', { mode: 0o644 });
  refreshHosts();
  return {
    options: { mounts: [{ source: hostsPath, target: '/etc/hosts', readonly: true }], env },
    prepareNet: async (maps) => {
      const ep = await prepareEndpoint(leases, maps);
      try {
        update(id, (r) => {
          r.NetHolder = ep.holder;
        });
      } catch (e) {
        ep.done();
        throw e;
      }
      return ep;
    },
    ended: release,
  };
}

/** After a container's monitor died (SIGKILL): its leases back, names updated, the holder ended if unused. */
export function afterMonitorDied(): void {
  sweepLeases();
  refreshHosts();
  stopHolderIfUnused();
}
setMonitorDiedHook(afterMonitorDied);
setAfterNetworkChange(async (removedBridges) => {
  stopHolderIfUnused();
  // A holder that stays (other networks are in use) keeps no bridge of a
  // removed network: its gateway route would shadow a later network's on the same subnet.
  // (One left behind, by a failure here, is swept when its gateway is next used.)
  for (const bridge of removedBridges) await removeBridge(bridge).catch(() => {});
});
