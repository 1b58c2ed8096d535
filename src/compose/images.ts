// A service's image: its image: from the store (pulled when missing), or
// built from its build: context and named <project>-<service> unless it
// names its image itself.
import { build } from '../image/build.js';
import { ImageError, Store } from '../image/store.js';
import { ComposeError } from './load.js';
import type { ProjectModel, ServiceModel } from './model.js';

export function imageRef(project: ProjectModel, s: ServiceModel): string {
  return s.image ?? `${project.name}-${s.name}`;
}

/** The image in the store, or undefined. */
export function findImage(store: Store, ref: string): { digest: string; config: { Entrypoint?: string[] | null; Cmd?: string[] | null } } | undefined {
  try {
    const img = store.get(ref);
    return { digest: img.digest, config: (img as unknown as { config: { config: { Entrypoint?: string[] | null; Cmd?: string[] | null } } }).config?.config ?? {} };
  } catch (e) {
    if (e instanceof ImageError) return undefined;
    throw e;
  }
}

export async function buildService(store: Store, project: ProjectModel, s: ServiceModel, say: (line: string) => void): Promise<void> {
  if (!s.build) return;
  const tag = imageRef(project, s);
  say(`[+] Building ${s.name} (${tag})`);
  try {
    await build(store, { context: s.build.context, file: s.build.dockerfile, tag, buildArgs: s.build.args, target: s.build.target, labels: { 'com.docker.compose.project': project.name, 'com.docker.compose.service': s.name }, onProgress: (t) => say(`${s.name}  ${t.replace(/\n$/, '')}`) });
  } catch (e) {
    if (e instanceof ImageError) throw new ComposeError(`service "${s.name}" failed to build: ${e.message}`);
    throw e;
  }
}

export async function pullService(store: Store, project: ProjectModel, s: ServiceModel, say: (line: string) => void): Promise<void> {
  const ref = imageRef(project, s);
  say(`[+] Pulling ${s.name} (${ref})`);
  const { pull } = await import('../image/registry.js');
  try {
    await pull(ref, { store });
  } catch (e) {
    throw new ComposeError(`service "${s.name}": pulling ${ref}: ${(e as Error).message}`);
  }
}

/** Makes sure every service has its image: built when asked or missing, pulled when missing. */
export async function ensureImages(store: Store, project: ProjectModel, names: string[], o: { build?: boolean; say: (l: string) => void }): Promise<void> {
  for (const n of names) {
    const s = project.services[n];
    const have = findImage(store, imageRef(project, s));
    if (s.build && (o.build || !have)) await buildService(store, project, s, o.say);
    else if (!have) await pullService(store, project, s, o.say);
  }
}
