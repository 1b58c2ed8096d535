// Containers on user networks: what a container's record says about its
// networks (Docker's NetworkSettings.Networks), connect and disconnect, and
// (with src/net/holder.ts) the endpoints a container's monitor makes at each
// start and gives back at each end.
import { ContainerError, get, listRecords, monitorAlive, update, type ContainerRecord, type EndpointSettings } from '../container/state.js';
import { NetworkError, getNetwork, setConnectImpl, setLiveContainers, type ConnectOptions, type NetworkRecord } from './networks.js';

/** The ids of containers whose monitors live: their leases are real. */
export function liveContainerIds(): Set<string> {
  return new Set(
    listRecords()
      .filter((r) => monitorAlive(r))
      .map((r) => r.Id),
  );
}
setLiveContainers(liveContainerIds);

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

async function connect(containerRef: string, n: NetworkRecord, o: ConnectOptions): Promise<void> {
  const r = get(containerRef);
  const mode = r.HostConfig.NetworkMode;
  if (mode === 'host' || mode === 'none' || mode.startsWith('container:')) throw new NetworkError(`container ${r.Name} is on network mode ${mode}: it cannot be connected to a user network`, 400);
  if (userNetworksOf(r).includes(n.Name)) throw new NetworkError(`endpoint with name ${r.Name} already exists in network ${n.Name}`, 403);
  const running = monitorAlive(r) && r.State.Running;
  if (running) throw new NetworkError(`container ${r.Name} is running: connecting a running container is not supported yet (stop it, connect, start it)`, 400);
  update(r.Id, (cur) => {
    cur.NetworkSettings ??= { Networks: {}, Ports: {} };
    cur.NetworkSettings.Networks[n.Name] = emptyEndpoint(n, o.aliases ?? [], o.ipv4Address);
    // A container with no network of its own joins the first one it is connected to.
    if (cur.HostConfig.NetworkMode === 'none' || cur.HostConfig.NetworkMode === 'loopback') {
      cur.HostConfig.NetworkMode = n.Name;
      cur.Options.network = n.Name;
    }
  });
}

async function disconnect(containerRef: string, n: NetworkRecord, o: { force?: boolean }): Promise<void> {
  let r: ContainerRecord;
  try {
    r = get(containerRef);
  } catch (e) {
    if (o.force && e instanceof ContainerError) return;
    throw e;
  }
  if (!userNetworksOf(r).includes(n.Name)) throw new NetworkError(`container ${r.Id} is not connected to network ${n.Name}`, 403);
  if (monitorAlive(r) && r.State.Running) throw new NetworkError(`container ${r.Name} is running: disconnecting a running container is not supported yet (stop it first)`, 400);
  update(r.Id, (cur) => {
    delete cur.NetworkSettings!.Networks[n.Name];
    if (cur.HostConfig.NetworkMode === n.Name) {
      const next = Object.keys(cur.NetworkSettings!.Networks)[0];
      cur.HostConfig.NetworkMode = next ?? 'none';
      cur.Options.network = next ?? 'none';
    }
  });
}

setConnectImpl(connect, disconnect);
