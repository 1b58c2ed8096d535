// _ping, version, info, events, system/df: what a client asks first, and
// the daemon-wide views.
import { readFileSync } from 'node:fs';
import { arch, cpus, hostname, release, totalmem } from 'node:os';
import type { FastifyInstance } from 'fastify';
import { brigVersion } from '../../cli/system.js';
import { listContainers } from '../../container/index.js';
import { Store } from '../../image/store.js';
import { API_VERSION, MIN_API_VERSION } from '../server.js';
import { watchEvents, type EngineEvent } from '../events.js';
import { EngineError } from '../errors.js';
import { dirBytes, filtersOf } from './util.js';

const goArch = () => (arch() === 'x64' ? 'amd64' : arch());

function osName(): string {
  try {
    return /^PRETTY_NAME="?([^"\n]*)"?/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? 'Linux';
  } catch {
    return 'Linux';
  }
}

export default async function system(app: FastifyInstance): Promise<void> {
  // Docker's ping: the headers are the answer (the CLI reads Api-Version from them to pick its version).
  const ping = (method: 'GET' | 'HEAD') =>
    app.route({
      method,
      url: '/_ping',
      handler: async (_req, reply) => {
        reply.header('Cache-Control', 'no-cache, no-store, must-revalidate').header('Pragma', 'no-cache').header('Builder-Version', '1').type('text/plain; charset=utf-8');
        return method === 'HEAD' ? '' : 'OK';
      },
    });
  ping('GET');
  ping('HEAD');

  app.get('/version', async () => {
    const details = { ApiVersion: API_VERSION, MinAPIVersion: MIN_API_VERSION, GitCommit: 'brig', GoVersion: `node ${process.versions.node}`, Os: 'linux', Arch: goArch(), KernelVersion: release(), Experimental: 'false', BuildTime: '' };
    return {
      Platform: { Name: `brig ${brigVersion()}` },
      Components: [{ Name: 'Engine', Version: brigVersion(), Details: details }],
      Version: brigVersion(),
      ApiVersion: API_VERSION,
      MinAPIVersion: MIN_API_VERSION,
      GitCommit: 'brig',
      GoVersion: `node ${process.versions.node}`,
      Os: 'linux',
      Arch: goArch(),
      KernelVersion: release(),
      BuildTime: '',
    };
  });

  app.get('/info', async () => {
    const all = listContainers({ all: true });
    const store = new Store();
    const running = all.filter((r) => r.State.Running && !r.State.Paused).length;
    const paused = all.filter((r) => r.State.Paused).length;
    return {
      ID: `brig-${process.getuid!()}`,
      Containers: all.length,
      ContainersRunning: running,
      ContainersPaused: paused,
      ContainersStopped: all.length - running - paused,
      Images: store.list().length,
      Driver: 'overlay',
      DriverStatus: [['Backing Filesystem', 'overlay in a user namespace'], ['Store', store.root]],
      DockerRootDir: store.root,
      Plugins: { Volume: ['local'], Network: ['bridge', 'host', 'none'], Authorization: null, Log: ['json-file'] },
      MemoryLimit: true,
      SwapLimit: false,
      KernelMemory: false,
      CpuCfsPeriod: true,
      CpuCfsQuota: true,
      CPUShares: false,
      CPUSet: true,
      PidsLimit: true,
      OomKillDisable: false,
      IPv4Forwarding: true,
      BridgeNfIptables: false,
      BridgeNfIp6tables: false,
      Debug: false,
      NFd: 0,
      NGoroutines: 0,
      SystemTime: new Date().toISOString(),
      LoggingDriver: 'json-file',
      CgroupDriver: 'cgroupfs',
      CgroupVersion: '1',
      NEventsListener: 0,
      KernelVersion: release(),
      OperatingSystem: osName(),
      OSVersion: '',
      OSType: 'linux',
      Architecture: arch() === 'x64' ? 'x86_64' : arch(),
      NCPU: cpus().length,
      MemTotal: totalmem(),
      IndexServerAddress: 'https://index.docker.io/v1/',
      RegistryConfig: { AllowNondistributableArtifactsCIDRs: [], AllowNondistributableArtifactsHostnames: [], InsecureRegistryCIDRs: ['127.0.0.0/8'], IndexConfigs: {}, Mirrors: [] },
      GenericResources: null,
      HttpProxy: '',
      HttpsProxy: '',
      NoProxy: '',
      Name: hostname(),
      Labels: [],
      ExperimentalBuild: false,
      ServerVersion: brigVersion(),
      Runtimes: { brig: { path: 'brig' } },
      DefaultRuntime: 'brig',
      Swarm: { NodeID: '', NodeAddr: '', LocalNodeState: 'inactive', ControlAvailable: false, Error: '', RemoteManagers: null },
      LiveRestoreEnabled: true,
      Isolation: '',
      InitBinary: 'brig-init',
      ContainerdCommit: { ID: 'brig', Expected: 'brig' },
      RuncCommit: { ID: 'brig', Expected: 'brig' },
      InitCommit: { ID: 'brig', Expected: 'brig' },
      SecurityOptions: ['name=seccomp,profile=default', 'name=rootless', 'name=no-new-privileges'],
      Warnings: [],
    };
  });

  // Events: changes seen in the containers' records (the monitors write them), as Docker's event objects.
  app.get('/events', async (req, reply) => {
    const q = req.query as Record<string, string>;
    const filters = filtersOf(q.filters);
    for (const k of Object.keys(filters)) if (!['type', 'container', 'event', 'label'].includes(k)) throw new EngineError(400, `invalid filter '${k}' (brig's events filter on type, container, event, label)`);
    const since = q.since ? Number(q.since) : undefined;
    const until = q.until ? Number(q.until) : undefined;
    if ((q.since && !Number.isFinite(since)) || (q.until && !Number.isFinite(until))) throw new EngineError(400, 'since/until: expected unix seconds');
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'Content-Type': 'application/json', 'Api-Version': API_VERSION, 'Docker-Experimental': 'false' });
    res.flushHeaders();
    const wanted = (e: EngineEvent) => {
      if (filters.type && !filters.type.includes(e.Type)) return false;
      if (filters.event && !filters.event.includes(e.Action)) return false;
      if (filters.container && !filters.container.some((c) => e.Actor.ID.startsWith(c) || e.Actor.Attributes.name === c)) return false;
      if (filters.label && !filters.label.some((l) => (l.includes('=') ? e.Actor.Attributes[l.slice(0, l.indexOf('='))] === l.slice(l.indexOf('=') + 1) : l in e.Actor.Attributes))) return false;
      return true;
    };
    await new Promise<void>((done) => {
      let timer: NodeJS.Timeout | undefined;
      const stop = watchEvents((e) => {
        if (since !== undefined && e.time < since) return;
        if (until !== undefined && e.time > until) return finish();
        if (wanted(e)) res.write(JSON.stringify(e) + '\n');
      });
      const finish = () => {
        stop();
        clearTimeout(timer);
        res.end();
        done();
      };
      if (until !== undefined) timer = setTimeout(finish, Math.max(0, until * 1000 - Date.now()));
      res.on('close', finish);
      req.raw.on('close', finish);
    });
  });

  app.get('/system/df', async () => {
    const store = new Store();
    const containers = listContainers({ all: true });
    const images = store.list();
    const inUse = (ref: string) => containers.filter((c) => c.Config.Image === ref).length;
    return {
      LayersSize: images.reduce((s, i) => s + i.size, 0),
      Images: images.map((i) => ({ Id: `sha256:${i.id}`, ParentId: '', RepoTags: [i.ref], RepoDigests: [], Created: i.created ? Math.floor(Date.parse(i.created) / 1000) : 0, Size: i.size, SharedSize: -1, VirtualSize: i.size, Labels: {}, Containers: inUse(i.ref) })),
      Containers: containers.map((c) => {
        const rw = c.Options.container ? dirBytes(store.containerDir(c.Options.container)) : 0;
        return { Id: c.Id, Names: [`/${c.Name}`], Image: c.Config.Image, ImageID: '', Command: c.Config.Cmd.join(' '), Created: Math.floor(Date.parse(c.Created) / 1000), State: c.State.Paused ? 'paused' : c.State.Status, Status: c.State.Status, SizeRw: rw, SizeRootFs: rw, Labels: c.Config.Labels, Mounts: [] };
      }),
      Volumes: store.listVolumes().map((name) => {
        const v = store.inspectVolume(name);
        return { Name: name, Driver: 'local', Mountpoint: v.path, CreatedAt: v.created, Labels: {}, Scope: 'local', Options: {}, UsageData: { Size: v.bytes, RefCount: -1 } };
      }),
      BuildCache: [],
    };
  });
}
