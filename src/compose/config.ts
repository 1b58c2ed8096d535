// `brig compose config`: the resolved model in Compose's own form
// (interpolated, merged, relative paths made absolute, long forms), the
// document brig would run.
import { stringify } from 'yaml';
import type { ProjectModel, ServiceModel } from './model.js';

function ns(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

function serviceDoc(p: ProjectModel, s: ServiceModel): Record<string, unknown> {
  const d: Record<string, unknown> = {};
  if (s.build) d.build = { context: s.build.context, dockerfile: s.build.dockerfile ?? 'Dockerfile', ...(Object.keys(s.build.args).length ? { args: s.build.args } : {}), ...(s.build.target ? { target: s.build.target } : {}) };
  if (s.image) d.image = s.image;
  if (s.containerName) d.container_name = s.containerName;
  if (s.entrypoint !== undefined) d.entrypoint = s.entrypoint;
  if (s.command !== undefined) d.command = s.command;
  if (Object.keys(s.dependsOn).length) d.depends_on = Object.fromEntries(Object.entries(s.dependsOn).map(([k, v]) => [k, { condition: v.condition, required: v.required, restart: v.restart }]));
  if (Object.keys(s.environment).length) d.environment = s.environment;
  if (s.healthcheck) {
    const h = s.healthcheck;
    d.healthcheck = { test: h.test, ...(h.intervalMs !== undefined ? { interval: ns(h.intervalMs) } : {}), ...(h.timeoutMs !== undefined ? { timeout: ns(h.timeoutMs) } : {}), ...(h.retries !== undefined ? { retries: h.retries } : {}), ...(h.startPeriodMs !== undefined ? { start_period: ns(h.startPeriodMs) } : {}) };
  }
  if (s.hostname) d.hostname = s.hostname;
  if (s.init !== undefined) d.init = s.init;
  if (Object.keys(s.labels).length) d.labels = s.labels;
  if (s.networkMode) d.network_mode = s.networkMode;
  else d.networks = Object.fromEntries(Object.entries(s.networks).map(([k, v]) => [k, v.aliases.length ? { aliases: v.aliases } : null]));
  if (s.ports.length) d.ports = s.ports.map((x) => ({ mode: 'ingress', ...(x.hostIp ? { host_ip: x.hostIp } : {}), target: x.containerPort, ...(x.hostPort ? { published: String(x.hostPort) } : {}), protocol: x.protocol }));
  if (s.profiles.length) d.profiles = s.profiles;
  if (s.restart) d.restart = s.restart;
  if (s.stopSignal) d.stop_signal = s.stopSignal;
  if (s.stopGracePeriodS !== undefined) d.stop_grace_period = `${s.stopGracePeriodS}s`;
  if (s.user) d.user = s.user.gid === undefined ? String(s.user.uid) : `${s.user.uid}:${s.user.gid}`;
  const vols = s.mounts.filter((m) => m.type !== 'tmpfs' || m.size);
  if (vols.length) d.volumes = vols.map((m) => ({ type: m.type, ...(m.source ? { source: m.source } : {}), target: m.target, ...(m.readOnly ? { read_only: true } : {}), ...(m.size ? { tmpfs: { size: m.size } } : {}) }));
  const tmpfs = s.mounts.filter((m) => m.type === 'tmpfs' && !m.size).map((m) => m.target);
  if (tmpfs.length) d.tmpfs = tmpfs;
  if (s.workingDir) d.working_dir = s.workingDir;
  if (s.extraHosts.length) d.extra_hosts = s.extraHosts;
  if (s.dns.length) d.dns = s.dns;
  if (s.dnsSearch.length) d.dns_search = s.dnsSearch;
  if (s.shmSize) d.shm_size = s.shmSize;
  const l = s.limits;
  if (l.cpus !== undefined || l.memory !== undefined || l.pids !== undefined) d.deploy = { resources: { limits: { ...(l.cpus !== undefined ? { cpus: l.cpus } : {}), ...(l.memory !== undefined ? { memory: l.memory } : {}), ...(l.pids !== undefined ? { pids: l.pids } : {}) } } };
  void p;
  return d;
}

export function renderConfig(p: ProjectModel): string {
  const doc: Record<string, unknown> = { name: p.name, services: Object.fromEntries(Object.keys(p.services).sort().map((n) => [n, serviceDoc(p, p.services[n])])) };
  if (Object.keys(p.networks).length) doc.networks = Object.fromEntries(Object.entries(p.networks).map(([k, n]) => [k, { name: n.name, ...(n.external ? { external: true } : {}), ...(n.internal ? { internal: true } : {}), ...(Object.keys(n.labels).length ? { labels: n.labels } : {}), ...(n.subnet ? { ipam: { config: [{ subnet: n.subnet }] } } : {}) }]));
  if (Object.keys(p.volumes).length) doc.volumes = Object.fromEntries(Object.entries(p.volumes).map(([k, v]) => [k, { name: v.name, ...(v.external ? { external: true } : {}), ...(Object.keys(v.labels).length ? { labels: v.labels } : {}) }]));
  return stringify(doc, { lineWidth: 0 });
}
