// up, down, start, stop, restart and run: a project's containers, networks
// and volumes made, changed and removed through brig's container library,
// each carrying the com.docker.compose.* labels that find it again.
import { randomBytes } from 'node:crypto';
import { ContainerError, createContainer, getContainer, type ContainerOptions, type ContainerRecord } from '../container/index.js';
import { Store } from '../image/store.js';
import { ComposeError } from './load.js';
import { configHash, startOrder, type ProjectModel, type ServiceModel } from './model.js';
import { ensureImages, findImage, imageRef } from './images.js';
import { COMPOSE_VERSION, LABEL, numberOf, projectContainers, projectVolumes, serviceOf, setVolumeLabels, volumeLabels } from './project.js';
import { effectiveHealth } from '../container/health.js';
import { networkApi } from './networks.js';

export interface Reporter {
  say(line: string): void;
  warn(line: string): void;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The services named (all when none is), each one checked: for verbs that act on just those (build, pull). */
export function namedServices(project: ProjectModel, names: string[]): ServiceModel[] {
  return (names.length ? names : Object.keys(project.services)).map((n) => {
    const s = project.services[n];
    if (!s) throw new ComposeError(`no such service: ${n}`);
    return s;
  });
}

/** The services asked for, with everything they depend on, in start order. */
export function withDependencies(project: ProjectModel, names: string[] | undefined): string[] {
  if (!names?.length) return startOrder(project.services);
  const want = new Set<string>();
  const add = (n: string) => {
    if (want.has(n)) return;
    const s = project.services[n];
    if (!s) throw new ComposeError(`no such service: ${n}`);
    want.add(n);
    for (const d of Object.keys(s.dependsOn)) add(d);
  };
  names.forEach(add);
  return startOrder(project.services).filter((n) => want.has(n));
}

function projectLabels(project: ProjectModel): Record<string, string> {
  return { [LABEL.project]: project.name, [LABEL.workingDir]: project.workingDir, [LABEL.configFiles]: project.files.join(','), [LABEL.version]: COMPOSE_VERSION };
}

/** The networks the services use: made when missing (with labels), external ones checked. */
export async function ensureNetworks(project: ProjectModel, names: string[], r: Reporter): Promise<boolean> {
  const used = new Set(names.flatMap((n) => Object.keys(project.services[n].networks)));
  if (!used.size) return true;
  const api = await networkApi();
  for (const key of used) {
    const n = project.networks[key];
    let exists = true;
    try {
      api.getNetwork(n.name);
    } catch {
      exists = false;
    }
    if (n.external) {
      if (!exists) throw new ComposeError(`network ${n.name} declared as external, but could not be found`);
      continue;
    }
    if (!exists) {
      api.createNetwork({ name: n.name, internal: n.internal, subnet: n.subnet, labels: { ...n.labels, ...projectLabels(project), [LABEL.network]: key } });
      r.say(` ✔ Network ${n.name}  Created`);
    }
  }
  return true;
}

/** The named volumes the services use: made when missing, with labels; external ones checked. */
export function ensureVolumes(store: Store, project: ProjectModel, names: string[], r: Reporter): void {
  const used = new Set(names.flatMap((n) => project.services[n].mounts.filter((m) => m.type === 'volume').map((m) => m.source!)));
  for (const key of used) {
    const v = project.volumes[key];
    const exists = store.listVolumes().includes(v.name);
    if (v.external) {
      if (!exists) throw new ComposeError(`external volume "${v.name}" not found`);
      continue;
    }
    if (!exists) {
      store.createVolume(v.name);
      setVolumeLabels(store, v.name, { ...v.labels, ...projectLabels(project), [LABEL.volume]: key });
      r.say(` ✔ Volume "${v.name}"  Created`);
    }
  }
}

/** The container options for one of a service's containers. */
export function containerOptions(store: Store, project: ProjectModel, s: ServiceModel, o: { name: string; number: number; hash: string; oneoff: boolean; networks: boolean }): { argv: string[]; options: ContainerOptions } {
  const ref = imageRef(project, s);
  const img = findImage(store, ref);
  if (!img) throw new ComposeError(`service "${s.name}": no image ${ref} (brig compose pull, or build)`);
  const labels: Record<string, string> = {
    ...s.labels,
    ...projectLabels(project),
    [LABEL.service]: s.name,
    [LABEL.number]: String(o.number),
    [LABEL.hash]: o.hash,
    [LABEL.oneoff]: o.oneoff ? 'True' : 'False',
    [LABEL.image]: img.digest,
    [LABEL.dependsOn]: Object.entries(s.dependsOn)
      .map(([d, c]) => `${d}:${c.condition}:${c.restart}`)
      .join(','),
  };
  const options: ContainerOptions = { name: o.name, image: ref, labels, env: s.environment };
  let argv = s.command ?? [];
  // entrypoint: replaces the image's and drops its CMD (Compose's rule); command: [] clears CMD.
  if (s.entrypoint !== undefined) options.entrypoint = s.entrypoint;
  else if (s.command !== undefined && s.command.length === 0) {
    options.entrypoint = img.config.Entrypoint ?? [];
    if (!options.entrypoint.length) throw new ComposeError(`service "${s.name}": command: [] clears the image's command and it has no entrypoint: nothing to run`);
  }
  if (s.entrypoint !== undefined && s.entrypoint.length === 0 && argv.length === 0) throw new ComposeError(`service "${s.name}": entrypoint: [] and no command: nothing to run`);
  if (s.restart) options.restart = s.restart;
  if (s.workingDir) options.cwd = s.workingDir;
  if (s.user) {
    options.uid = s.user.uid;
    if (s.user.gid !== undefined) options.gid = s.user.gid;
  }
  if (s.hostname) options.hostname = s.hostname;
  if (s.stopSignal) options.stopSignal = s.stopSignal;
  if (s.stopGracePeriodS !== undefined) options.stopTimeout = s.stopGracePeriodS;
  if (s.limits.memory) options.memory = s.limits.memory;
  if (s.limits.cpus) options.cpus = s.limits.cpus;
  if (s.limits.pids) options.pids = s.limits.pids;
  if (s.shmSize) options.shmSize = s.shmSize;
  if (s.extraHosts.length) options.extraHosts = s.extraHosts;
  if (s.dns.length) options.dns = s.dns;
  if (s.dnsSearch.length) options.dnsSearch = s.dnsSearch;
  if (s.healthcheck) options.healthcheck = s.healthcheck;
  options.mounts = s.mounts.filter((m) => m.type === 'bind').map((m) => ({ source: m.source!, target: m.target, readonly: m.readOnly }));
  options.volumes = s.mounts.filter((m) => m.type === 'volume').map((m) => ({ name: project.volumes[m.source!].name, target: m.target, readonly: m.readOnly }));
  options.tmpfs = s.mounts.filter((m) => m.type === 'tmpfs').map((m) => ({ target: m.target, ...(m.size ? { size: m.size } : {}) }));
  // oneoff containers publish nothing (compose run without --service-ports).
  if (s.ports.length && !o.oneoff) options.publish = s.ports.map((p) => ({ containerPort: p.containerPort, protocol: p.protocol, ...(p.hostPort ? { hostPort: p.hostPort } : {}), ...(p.hostIp ? { hostIp: p.hostIp } : {}) }));
  if (s.networkMode === 'none') options.network = 'none';
  else if (s.networkMode?.startsWith('container:')) options.network = s.networkMode as ContainerOptions['network'];
  else if (s.networkMode?.startsWith('service:')) {
    const target = projectContainers(project.name, { service: s.networkMode.slice(8) })[0];
    if (!target) throw new ComposeError(`service "${s.name}": network_mode ${s.networkMode}: that service has no container`);
    options.network = `container:${target.Name}` as ContainerOptions['network'];
  } else if (o.networks) {
    const first = Object.keys(s.networks)[0];
    options.network = project.networks[first].name as ContainerOptions['network'];
    (options as { networkAliases?: string[] }).networkAliases = [s.name, ...s.networks[first].aliases];
    // pasta cannot publish into a user network's namespace (it finds no tun there); brig's own proxy can.
    if (options.publish) options.publishVia = 'proxy';
  } else options.network = 'loopback';
  return { argv, options };
}

/** The hash that says a container is out of date: the service's config and its image. */
export function serviceHash(store: Store, project: ProjectModel, s: ServiceModel): string {
  return configHash(s, findImage(store, imageRef(project, s))?.digest ?? '');
}

function containerName(project: ProjectModel, s: ServiceModel, n: number): string {
  return s.containerName ?? `${project.name}-${s.name}-${n}`;
}

async function removeRecord(r: ContainerRecord): Promise<void> {
  try {
    await getContainer(r.Id).remove({ force: true });
  } catch (e) {
    if (!(e instanceof ContainerError && /No such container/.test(e.message))) throw e;
  }
}

async function stopRecord(r: ContainerRecord, timeout?: number): Promise<void> {
  await getContainer(r.Id).stop(timeout === undefined ? {} : { timeout });
}

/** Waits for what depends_on asks of each dependency. */
async function waitDependencies(project: ProjectModel, s: ServiceModel, limitMs = 300_000): Promise<void> {
  for (const [dep, c] of Object.entries(s.dependsOn)) {
    const until = Date.now() + limitMs;
    for (;;) {
      const recs = projectContainers(project.name, { service: dep });
      if (!recs.length) {
        if (!c.required) break;
        throw new ComposeError(`dependency ${dep} of ${s.name} has no container`);
      }
      const r = recs[0];
      if (c.condition === 'service_started' && (r.State.Running || r.State.Status === 'exited')) break;
      if (c.condition === 'service_healthy') {
        const h = r.State.Health;
        if (!effectiveHealth(r)) throw new ComposeError(`dependency failed to start: container ${r.Name} has no healthcheck configured`);
        if (h?.Status === 'healthy') break;
        if (h?.Status === 'unhealthy') throw new ComposeError(`dependency failed to start: container ${r.Name} is unhealthy`);
        if (!r.State.Running && !r.State.Restarting) throw new ComposeError(`dependency failed to start: container ${r.Name} exited (${r.State.ExitCode})`);
      }
      if (c.condition === 'service_completed_successfully' && r.State.Status === 'exited' && !r.State.Restarting) {
        if (r.State.ExitCode === 0) break;
        throw new ComposeError(`service "${dep}" didn't complete successfully: exit ${r.State.ExitCode}`);
      }
      if (Date.now() > until) throw new ComposeError(`timed out waiting for ${dep} (${c.condition}) before starting ${s.name}`);
      await sleep(100);
    }
  }
}

export interface UpOptions {
  services?: string[];
  build?: boolean;
  forceRecreate?: boolean;
  noRecreate?: boolean;
  removeOrphans?: boolean;
  /** No dependency waits and no start: create only (compose create). */
  noStart?: boolean;
}

/** compose up -d: images, networks, volumes, then each service's container, in dependency order. */
export async function up(project: ProjectModel, o: UpOptions, r: Reporter): Promise<ContainerRecord[]> {
  const store = new Store();
  const names = withDependencies(project, o.services);
  await ensureImages(store, project, names, { build: o.build, say: r.say });
  const nets = await ensureNetworks(project, names, r);
  ensureVolumes(store, project, names, r);
  const orphans = projectContainers(project.name).filter((c) => !project.services[serviceOf(c)] && !project.disabled[serviceOf(c)]);
  if (orphans.length) {
    if (o.removeOrphans) for (const c of orphans) await removeRecord(c);
    else r.warn(`WARN: Found orphan containers (${orphans.map((c) => c.Name).join(', ')}) for this project. If you removed or renamed this service in your compose file, you can run this command with the --remove-orphans flag to clean it up.`);
  }
  const recreated = new Set<string>();
  for (const n of names) {
    const s = project.services[n];
    const hash = serviceHash(store, project, s);
    const existing = projectContainers(project.name, { service: n });
    // A dependency that was recreated recreates its dependents only when they ask for it (depends_on restart: true).
    const depChanged = Object.entries(s.dependsOn).some(([d, c]) => c.restart && recreated.has(d));
    let rec = existing[0];
    for (const extra of existing.slice(1)) await removeRecord(extra);
    if (rec && !o.noRecreate && (o.forceRecreate || depChanged || rec.Config.Labels[LABEL.hash] !== hash)) {
      r.say(` ✔ Container ${rec.Name}  Recreate`);
      await stopRecord(rec);
      await removeRecord(rec);
      rec = undefined as unknown as ContainerRecord;
      recreated.add(n);
    }
    if (!rec) {
      const name = containerName(project, s, 1);
      const { argv, options } = containerOptions(store, project, s, { name, number: 1, hash, oneoff: false, networks: nets });
      const c = createContainer(argv, options);
      if (nets) {
        const api = await networkApi();
        for (const key of Object.keys(s.networks).slice(1)) await api.connectNetwork(c.id, project.networks[key].name, { aliases: [s.name, ...s.networks[key].aliases] });
      }
      rec = c.inspect();
      recreated.add(n);
      r.say(` ✔ Container ${name}  Created`);
    }
    if (o.noStart) continue;
    if (!rec.State.Running) {
      await waitDependencies(project, s);
      await getContainer(rec.Id).start();
      r.say(` ✔ Container ${rec.Name}  Started`);
    }
  }
  return names.map((n) => projectContainers(project.name, { service: n })[0]).filter(Boolean);
}

/** --wait: every service running, and healthy where it has a healthcheck. */
export async function waitHealthy(project: ProjectModel, names: string[], timeoutMs = 300_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    let ready = true;
    for (const n of names) {
      const rec = projectContainers(project.name, { service: n })[0];
      if (!rec) throw new ComposeError(`service "${n}" has no container`);
      const h = rec.State.Health;
      if (h?.Status === 'unhealthy') throw new ComposeError(`container ${rec.Name} is unhealthy`);
      if (!rec.State.Running) {
        if (rec.State.Status === 'exited' && !rec.State.Restarting) {
          // A one-shot service that ended well is done (Compose's --wait treats it so).
          if (rec.State.ExitCode === 0) continue;
          throw new ComposeError(`container ${rec.Name} exited (${rec.State.ExitCode})`);
        }
        ready = false;
      } else if (effectiveHealth(rec) && h?.Status !== 'healthy') ready = false;
    }
    if (ready) return;
    if (Date.now() > until) throw new ComposeError('timed out waiting for the services to be healthy');
    await sleep(50);
  }
}

export interface DownOptions {
  volumes?: boolean;
  removeOrphans?: boolean;
  timeout?: number;
}

/** compose down: the project's containers (oneoff ones too), then its networks; volumes with -v. */
export async function down(project: ProjectModel, o: DownOptions, r: Reporter): Promise<void> {
  const all = projectContainers(project.name, { oneoff: true });
  const known = (c: ContainerRecord) => project.services[serviceOf(c)] || project.disabled[serviceOf(c)];
  const orphans = all.filter((c) => !known(c));
  const mine = all.filter((c) => known(c) || o.removeOrphans);
  // Dependents first: the reverse of the start order.
  const order = startOrder({ ...project.disabled, ...project.services }).reverse();
  mine.sort((a, b) => order.indexOf(serviceOf(a)) - order.indexOf(serviceOf(b)) || numberOf(a) - numberOf(b));
  for (const c of mine) {
    if (c.State.Running || c.State.Restarting || c.State.Paused) {
      await stopRecord(c, o.timeout);
      r.say(` ✔ Container ${c.Name}  Stopped`);
    }
    await removeRecord(c);
    r.say(` ✔ Container ${c.Name}  Removed`);
  }
  if (orphans.length && !o.removeOrphans) r.warn(`WARN: Found orphan containers (${orphans.map((c) => c.Name).join(', ')}) for this project. If you removed or renamed this service in your compose file, you can run this command with the --remove-orphans flag to clean it up.`);
  const api = await networkApi();
  for (const n of api.listNetworks()) {
    if (n.Labels?.[LABEL.project] !== project.name) continue;
    await api.removeNetwork(n.Id);
    r.say(` ✔ Network ${n.Name}  Removed`);
  }
  if (o.volumes) {
    const store = new Store();
    const declared = Object.values(project.volumes)
      .filter((v) => !v.external)
      .map((v) => v.name);
    for (const v of new Set([...projectVolumes(store, project.name), ...declared])) {
      if (!store.listVolumes().includes(v)) continue;
      // A volume of the same name that another project made is not ours to remove.
      const owner = volumeLabels(store, v)[LABEL.project];
      if (owner !== undefined && owner !== project.name) continue;
      store.removeVolume(v);
      r.say(` ✔ Volume ${v}  Removed`);
    }
  }
}

/** The project's containers of these services (all when none named). */
export function serviceContainers(project: ProjectModel, names: string[] | undefined, o: { oneoff?: boolean } = {}): ContainerRecord[] {
  for (const n of names ?? []) if (!project.services[n] && !project.disabled[n]) throw new ComposeError(`no such service: ${n}`);
  return projectContainers(project.name, o).filter((c) => !names?.length || names.includes(serviceOf(c)));
}

export async function stop(project: ProjectModel, names: string[] | undefined, o: { timeout?: number }, r: Reporter): Promise<void> {
  const order = startOrder(project.services).reverse();
  const recs = serviceContainers(project, names).sort((a, b) => order.indexOf(serviceOf(a)) - order.indexOf(serviceOf(b)));
  for (const c of recs) {
    if (!c.State.Running && !c.State.Restarting && !c.State.Paused) continue;
    await stopRecord(c, o.timeout);
    r.say(` ✔ Container ${c.Name}  Stopped`);
  }
}

export async function start(project: ProjectModel, names: string[] | undefined, r: Reporter): Promise<void> {
  const order = startOrder(project.services);
  const recs = serviceContainers(project, names).sort((a, b) => order.indexOf(serviceOf(a)) - order.indexOf(serviceOf(b)));
  if (!recs.length) throw new ComposeError('no containers to start (brig compose up makes them)');
  for (const c of recs) {
    if (c.State.Running) continue;
    const s = project.services[serviceOf(c)];
    if (s) await waitDependencies(project, s);
    await getContainer(c.Id).start();
    r.say(` ✔ Container ${c.Name}  Started`);
  }
}

export async function restart(project: ProjectModel, names: string[] | undefined, o: { timeout?: number }, r: Reporter): Promise<void> {
  for (const c of serviceContainers(project, names)) {
    await getContainer(c.Id).restart(o.timeout === undefined ? {} : { timeout: o.timeout });
    r.say(` ✔ Container ${c.Name}  Restarted`);
  }
}

/** compose run: a oneoff container of the service (its dependencies started first), created and started; the caller attaches. */
export async function runOneoff(project: ProjectModel, service: string, command: string[] | undefined, o: { rm?: boolean; noDeps?: boolean; env?: Record<string, string>; entrypoint?: string[]; user?: string; workdir?: string; name?: string }, r: Reporter) {
  const s0 = project.services[service] ?? project.disabled[service];
  if (!s0) throw new ComposeError(`no such service: ${service}`);
  if (!o.noDeps && Object.keys(s0.dependsOn).length) await up(project, { services: Object.keys(s0.dependsOn) }, r);
  const s: ServiceModel = { ...s0, environment: { ...s0.environment, ...o.env }, ...(command?.length ? { command } : {}), ...(o.entrypoint ? { entrypoint: o.entrypoint } : {}), ...(o.workdir ? { workingDir: o.workdir } : {}), restart: undefined };
  if (o.user) {
    const m = /^(\d+)(?::(\d+))?$/.exec(o.user);
    if (!m) throw new ComposeError(`--user: expected UID[:GID] as numbers, got ${JSON.stringify(o.user)}`);
    s.user = { uid: Number(m[1]), ...(m[2] ? { gid: Number(m[2]) } : {}) };
  }
  const store = new Store();
  await ensureImages(store, project, [service], { say: r.say });
  const nets = await ensureNetworks(project, [service], r);
  ensureVolumes(store, project, [service], r);
  const name = o.name ?? `${project.name}-${service}-run-${randomBytes(6).toString('hex')}`;
  const { argv, options } = containerOptions(store, project, s, { name, number: 1, hash: configHash(s), oneoff: true, networks: nets });
  options.autoRemove = o.rm === true;
  return createContainer(argv, options);
}
