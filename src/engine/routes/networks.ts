// Networks: brig's user networks (src/net/networks.ts) as Docker's bridge
// networks, plus Docker's three pre-defined ones (bridge, host, none), which
// brig has as network modes: listed and inspectable, never removed.
import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { ContainerError } from '../../container/index.js';
import { NetworkError } from '../../errors.js';
import { connectNetwork, createNetwork, disconnectNetwork, getNetwork, listNetworks, pruneNetworks, removeNetwork, type NetworkRecord } from '../../net/networks.js';
import { labelsMatch, parseDockerFilters, queryFlag } from '../docker-filters.js';
import { EngineError } from '../errors.js';

type Query = Record<string, unknown>;

const PREDEFINED: { name: string; driver: string }[] = [
  { name: 'bridge', driver: 'bridge' },
  { name: 'host', driver: 'host' },
  { name: 'none', driver: 'null' },
];

/** A pre-defined network in Docker's shape; its ID is fixed (a hash of its name), so it is the same in every call. */
function predefined(p: { name: string; driver: string }) {
  return {
    Name: p.name,
    Id: createHash('sha256').update(`brig-network-mode:${p.name}`).digest('hex'),
    Created: '0001-01-01T00:00:00Z',
    Scope: 'local',
    Driver: p.driver,
    EnableIPv6: false,
    IPAM: { Driver: 'default', Options: null, Config: [] },
    Internal: false,
    Attachable: false,
    Ingress: false,
    ConfigFrom: { Network: '' },
    ConfigOnly: false,
    Containers: {},
    Options: {},
    Labels: {},
  };
}

/**
 * A user network as the API shows it. The bridge's name, which brig picks
 * and keeps among the options, is left out: Docker shows only the options
 * the user gave, and docker-compose takes any other for a changed network.
 */
function shape(n: NetworkRecord) {
  const { 'com.docker.network.bridge.name': _bridge, ...options } = n.Options;
  return { ...n, Options: options };
}

function findPredefined(ref: string) {
  return PREDEFINED.map(predefined).find((p) => p.Name === ref || (ref.length >= 12 && p.Id.startsWith(ref) && /^[0-9a-f]+$/.test(ref)));
}

/** brig's network and container errors as the statuses Docker gives. */
function netStatus(e: unknown): never {
  if (e instanceof NetworkError) throw new EngineError(e.status, e.message);
  if (e instanceof ContainerError && /^No such container/.test(e.message)) throw new EngineError(404, e.message);
  throw e;
}

function inspect(ref: string) {
  const p = findPredefined(ref);
  if (p) return p;
  try {
    return shape(getNetwork(ref));
  } catch (e) {
    return netStatus(e);
  }
}

export default async function networkRoutes(app: FastifyInstance): Promise<void> {
  app.get('/networks', async (req) => {
    const f = parseDockerFilters((req.query as Query).filters, ['dangling', 'driver', 'id', 'label', 'name', 'scope', 'type']);
    const user = listNetworks().map(shape);
    const types = f.get('type') ?? [];
    const all = [...(types.length && !types.includes('builtin') ? [] : PREDEFINED.map(predefined)), ...(types.length && !types.includes('custom') ? [] : user)];
    const dangling = f.get('dangling')?.[0];
    return all.filter((n) => {
      if (f.get('name')?.length && !f.get('name')!.some((s) => n.Name.includes(s))) return false;
      if (f.get('id')?.length && !f.get('id')!.some((s) => n.Id.startsWith(s))) return false;
      if (f.get('driver')?.length && !f.get('driver')!.includes(n.Driver)) return false;
      if (f.get('scope')?.length && !f.get('scope')!.includes('local')) return false;
      if (!labelsMatch(n.Labels, f.get('label'))) return false;
      // Dangling: no container on it; the pre-defined ones never are (as Docker).
      if (dangling !== undefined && (dangling === 'true' || dangling === '1') !== (Object.keys(n.Containers).length === 0 && !findPredefined(n.Name))) return false;
      return true;
    });
  });

  app.get('/networks/:id', async (req) => inspect((req.params as { id: string }).id));

  app.post('/networks/create', async (req, reply) => {
    const b = req.body as Record<string, unknown> | null;
    if (!b || typeof b !== 'object') throw new EngineError(400, 'the body is a JSON object: {"Name": ..., "Driver": "bridge", ...}');
    if (typeof b.Name !== 'string' || !b.Name) throw new EngineError(400, 'Name: the network name is required');
    if (b.Driver != null && b.Driver !== '' && b.Driver !== 'bridge') throw new EngineError(404, `Driver: brig has the bridge driver only, not ${JSON.stringify(b.Driver)}`);
    if (b.EnableIPv6 === true) throw new EngineError(400, 'EnableIPv6: IPv6 on user networks is not supported by brig');
    if (b.ConfigOnly === true || (b.ConfigFrom && typeof b.ConfigFrom === 'object' && (b.ConfigFrom as { Network?: string }).Network)) throw new EngineError(400, 'ConfigOnly/ConfigFrom: config-only networks are not supported by brig');
    if (PREDEFINED.some((p) => p.name === b.Name)) throw new EngineError(403, `${b.Name} is a pre-defined network and cannot be created`);
    const ipam = (b.IPAM ?? {}) as { Driver?: string; Config?: { Subnet?: string; Gateway?: string; IPRange?: string; AuxiliaryAddresses?: object }[] | null };
    if (ipam.Driver && ipam.Driver !== 'default') throw new EngineError(400, `IPAM.Driver: brig has the default IPAM driver only, not ${JSON.stringify(ipam.Driver)}`);
    const configs = ipam.Config ?? [];
    if (configs.length > 1) throw new EngineError(400, 'IPAM.Config: brig gives a network one IPv4 subnet');
    const c = configs[0] ?? {};
    if (c.IPRange) throw new EngineError(400, 'IPAM.Config.IPRange: not supported by brig (addresses come from the whole subnet)');
    if (c.AuxiliaryAddresses && Object.keys(c.AuxiliaryAddresses).length) throw new EngineError(400, 'IPAM.Config.AuxiliaryAddresses: not supported by brig');
    const options = (b.Options ?? {}) as Record<string, string>;
    let rec: NetworkRecord;
    try {
      rec = createNetwork({
        name: b.Name,
        subnet: c.Subnet || undefined,
        gateway: c.Gateway || undefined,
        internal: b.Internal === true,
        attachable: b.Attachable === true,
        labels: (b.Labels ?? {}) as Record<string, string>,
        options,
      });
    } catch (e) {
      return netStatus(e);
    }
    return reply.code(201).send({ Id: rec.Id, Warning: '' });
  });

  app.delete('/networks/:id', async (req, reply) => {
    const id = (req.params as { id: string }).id;
    const p = findPredefined(id);
    if (p) throw new EngineError(403, `${p.Name} is a pre-defined network and cannot be removed`);
    try {
      await removeNetwork(id);
    } catch (e) {
      return netStatus(e);
    }
    return reply.code(204).send();
  });

  app.post('/networks/prune', async (req) => {
    const f = parseDockerFilters((req.query as Query).filters, ['label', 'label!', 'until']);
    if (f.size) {
      // Only the networks the filters pick: brig's prune takes every unused one, so the picking is done here.
      const until = f.get('until')?.[0];
      const cutoff = until === undefined ? Infinity : /^\d+$/.test(until) ? Number(until) * 1000 : Date.parse(until);
      const picked = listNetworks().filter((n) => !Object.keys(n.Containers).length && labelsMatch(n.Labels, f.get('label')) && !f.get('label!')?.some((l) => labelsMatch(n.Labels, [l])) && Date.parse(n.Created) < cutoff);
      const gone: string[] = [];
      for (const n of picked) {
        try {
          await removeNetwork(n.Id);
          gone.push(n.Name);
        } catch (e) {
          if (!(e instanceof NetworkError)) throw e;
        }
      }
      return { NetworksDeleted: gone.length ? gone : null };
    }
    const gone = await pruneNetworks();
    return { NetworksDeleted: gone.length ? gone : null };
  });

  app.post('/networks/:id/connect', async (req, reply) => {
    const b = (req.body ?? {}) as { Container?: unknown; EndpointConfig?: { Aliases?: string[] | null; IPAMConfig?: { IPv4Address?: string } | null } | null };
    if (typeof b.Container !== 'string' || !b.Container) throw new EngineError(400, 'Container: which container to connect?');
    const id = (req.params as { id: string }).id;
    if (findPredefined(id)) throw new EngineError(400, `${id} is a network mode in brig, not a network containers join: give it as the container's NetworkMode`);
    try {
      await connectNetwork(b.Container, id, { aliases: b.EndpointConfig?.Aliases ?? undefined, ipv4Address: b.EndpointConfig?.IPAMConfig?.IPv4Address || undefined });
    } catch (e) {
      return netStatus(e);
    }
    return reply.code(200).send();
  });

  app.post('/networks/:id/disconnect', async (req, reply) => {
    const b = (req.body ?? {}) as { Container?: unknown; Force?: unknown };
    if (typeof b.Container !== 'string' || !b.Container) throw new EngineError(400, 'Container: which container to disconnect?');
    const id = (req.params as { id: string }).id;
    if (findPredefined(id)) throw new EngineError(400, `${id} is a network mode in brig, not a network containers leave`);
    try {
      await disconnectNetwork(b.Container, id, { force: queryFlag(String(b.Force ?? false)) });
    } catch (e) {
      return netStatus(e);
    }
    return reply.code(200).send();
  });
}
