// A project's state is what carries its labels: containers, networks and
// volumes with Docker's com.docker.compose.* labels, so that ps, down and a
// second up find them from any process, with no state file of compose's own.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { listContainers, type ContainerRecord } from '../container/index.js';
import type { Store } from '../image/store.js';

export const LABEL = {
  project: 'com.docker.compose.project',
  service: 'com.docker.compose.service',
  number: 'com.docker.compose.container-number',
  hash: 'com.docker.compose.config-hash',
  oneoff: 'com.docker.compose.oneoff',
  workingDir: 'com.docker.compose.project.working_dir',
  configFiles: 'com.docker.compose.project.config_files',
  network: 'com.docker.compose.network',
  volume: 'com.docker.compose.volume',
  dependsOn: 'com.docker.compose.depends_on',
  image: 'com.docker.compose.image',
  version: 'com.docker.compose.version',
} as const;

/** What brig says it is, where Compose writes its own version. */
export const COMPOSE_VERSION = '2.0.0-brig';

/** The project's containers (all states); oneoff ones (compose run) only when asked. */
export function projectContainers(project: string, o: { oneoff?: boolean; service?: string } = {}): ContainerRecord[] {
  return listContainers({ all: true })
    .filter((r) => r.Config.Labels[LABEL.project] === project)
    .filter((r) => (o.oneoff ? true : r.Config.Labels[LABEL.oneoff] !== 'True'))
    .filter((r) => o.service === undefined || r.Config.Labels[LABEL.service] === o.service)
    .sort((a, b) => serviceOf(a).localeCompare(serviceOf(b)) || numberOf(a) - numberOf(b));
}

export function serviceOf(r: ContainerRecord): string {
  return r.Config.Labels[LABEL.service] ?? '';
}

export function numberOf(r: ContainerRecord): number {
  return Number(r.Config.Labels[LABEL.number] ?? 0);
}

/**
 * A volume's labels: brig's store keeps volumes as plain directories, so
 * compose keeps the labels in a file beside the volume's data directory.
 */
function labelsFile(store: Store, name: string): string {
  return join(dirname(store.volumePath(name)), 'labels.json');
}

export function setVolumeLabels(store: Store, name: string, labels: Record<string, string>): void {
  writeFileSync(labelsFile(store, name), JSON.stringify(labels), { mode: 0o600 });
}

export function volumeLabels(store: Store, name: string): Record<string, string> {
  const f = labelsFile(store, name);
  if (!existsSync(f)) return {};
  try {
    return JSON.parse(readFileSync(f, 'utf8'));
  } catch {
    return {};
  }
}

/** The project's volumes, by their labels. */
export function projectVolumes(store: Store, project: string): string[] {
  return store.listVolumes().filter((n) => volumeLabels(store, n)[LABEL.project] === project);
}
