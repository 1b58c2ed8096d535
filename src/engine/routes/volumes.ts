// Volumes: brig's named volumes (directories in the store) as Docker's local
// driver shows them. Labels, which brig's store does not keep, are kept
// beside the volume's data in labels.json, written once when it is made.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { listContainers } from '../../container/index.js';
import { ImageError, Store } from '../../image/store.js';
import { labelsMatch, parseDockerFilters } from '../docker-filters.js';
import { EngineError } from '../errors.js';

type Query = Record<string, unknown>;

function labelsFile(store: Store, name: string): string {
  return join(store.volumePath(name), '..', 'labels.json');
}

function labelsOf(store: Store, name: string): Record<string, string> {
  try {
    const v = JSON.parse(readFileSync(labelsFile(store, name), 'utf8')) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, string>) : {};
  } catch {
    return {};
  }
}

/** Docker's Volume shape for a volume of the store (404 when it is not there). */
function volume(store: Store, name: string, usage = false) {
  let v;
  try {
    v = store.inspectVolume(name);
  } catch (e) {
    if (e instanceof ImageError) throw new EngineError(404, `get ${name}: no such volume`);
    throw e;
  }
  return {
    CreatedAt: v.created,
    Driver: 'local',
    Labels: labelsOf(store, name),
    Mountpoint: v.path,
    Name: v.name,
    Options: {},
    Scope: 'local',
    ...(usage ? { UsageData: { Size: v.bytes, RefCount: usersOf(name).length } } : {}),
  };
}

/** The containers (ids) whose binds or mounts name the volume. */
function usersOf(name: string): string[] {
  return listContainers({ all: true })
    .filter((c) => {
      const rec = c as unknown as { HostConfig?: { Binds?: string[]; Mounts?: { Type?: string; Source?: string }[] }; Mounts?: { Type?: string; Name?: string }[] };
      if (rec.HostConfig?.Binds?.some((b) => b.split(':')[0] === name)) return true;
      if (rec.HostConfig?.Mounts?.some((m) => m.Type === 'volume' && m.Source === name)) return true;
      return rec.Mounts?.some((m) => m.Type === 'volume' && m.Name === name) ?? false;
    })
    .map((c) => c.Id);
}

export default async function volumeRoutes(app: FastifyInstance): Promise<void> {
  app.get('/volumes', async (req) => {
    const f = parseDockerFilters((req.query as Query).filters, ['name', 'label', 'dangling', 'driver']);
    const store = new Store();
    const dangling = f.get('dangling')?.[0];
    const volumes = store
      .listVolumes()
      .filter((n) => !f.get('name')?.length || f.get('name')!.some((s) => n.includes(s)))
      .filter((n) => !f.get('driver')?.length || f.get('driver')!.includes('local'))
      .filter((n) => labelsMatch(labelsOf(store, n), f.get('label')))
      .filter((n) => dangling === undefined || (dangling === 'true' || dangling === '1') === (usersOf(n).length === 0))
      .map((n) => volume(store, n));
    return { Volumes: volumes, Warnings: null };
  });

  app.post('/volumes/create', async (req, reply) => {
    const body = (req.body ?? {}) as { Name?: unknown; Driver?: unknown; DriverOpts?: unknown; Labels?: unknown };
    if (typeof body !== 'object') throw new EngineError(400, 'the body is a JSON object: {"Name": ..., "Labels": {...}}');
    const name = body.Name === undefined || body.Name === '' ? randomBytes(32).toString('hex') : body.Name;
    if (typeof name !== 'string') throw new EngineError(400, 'Name: expected a string');
    if (body.Driver !== undefined && body.Driver !== '' && body.Driver !== 'local') throw new EngineError(404, `Driver: brig has the local volume driver only, not ${JSON.stringify(body.Driver)}`);
    if (body.DriverOpts && typeof body.DriverOpts === 'object' && Object.keys(body.DriverOpts).length) throw new EngineError(400, `DriverOpts: not supported by brig (a volume is a directory in your store): ${Object.keys(body.DriverOpts).join(', ')}`);
    const labels = body.Labels ?? {};
    if (typeof labels !== 'object' || labels === null || Array.isArray(labels) || !Object.values(labels).every((v) => typeof v === 'string')) throw new EngineError(400, 'Labels: expected a map of strings');
    const store = new Store();
    let existed: boolean;
    try {
      existed = existsSync(store.volumePath(name));
      store.createVolume(name);
    } catch (e) {
      if (e instanceof ImageError) throw new EngineError(400, e.message);
      throw e;
    }
    // Docker answers an existing volume's create with the volume as it is.
    if (!existed && Object.keys(labels).length) writeFileSync(labelsFile(store, name), JSON.stringify(labels) + '\n', { mode: 0o600 });
    return reply.code(201).send(volume(store, name));
  });

  app.post('/volumes/prune', async (req) => {
    const f = parseDockerFilters((req.query as Query).filters, ['label', 'label!']);
    const store = new Store();
    const deleted: string[] = [];
    let reclaimed = 0;
    for (const n of store.listVolumes()) {
      const labels = labelsOf(store, n);
      if (!labelsMatch(labels, f.get('label'))) continue;
      if (f.get('label!')?.some((l) => labelsMatch(labels, [l]))) continue;
      if (usersOf(n).length) continue;
      reclaimed += store.inspectVolume(n).bytes;
      store.removeVolume(n);
      deleted.push(n);
    }
    return { VolumesDeleted: deleted.length ? deleted : null, SpaceReclaimed: reclaimed };
  });

  app.get('/volumes/:name', async (req) => volume(new Store(), (req.params as { name: string }).name, true));

  app.delete('/volumes/:name', async (req, reply) => {
    const name = (req.params as { name: string }).name;
    const store = new Store();
    volume(store, name);
    const users = usersOf(name);
    if (users.length) throw new EngineError(409, `remove ${name}: volume is in use - [${users.join(', ')}]`);
    store.removeVolume(name);
    return reply.code(204).send();
  });
}
