// Checks beyond the schema: what only resolving the profile as run options
// finds (a mount over /proc, a seccomp policy that does not compile, a
// seccomp file that is missing) and what this host lacks (mount sources).
import { statSync } from 'node:fs';
import { errnoName, errnoOf, OptionsError, ProfileError, type ProfileProblem } from '../errors.js';
import { resolveOptions } from '../launch/options.js';
import { resolveProfile, type ProfileOption, type ResolvedProfile } from './index.js';

/** `mounts[0].target` or `seccomp.rules[3]` as a JSON pointer. */
export function fieldToPointer(field: string): string {
  return '/' + field.replace(/\[(\d+)\]/g, '.$1').split('.').map((p) => p.replace(/~/g, '~0').replace(/\//g, '~1')).join('/');
}

export interface ProfileCheck {
  resolved?: ResolvedProfile;
  /** Where the problems are: the profile at fault, or the merged profile for problems found after merging. */
  source: string;
  problems: ProfileProblem[];
}

export function checkProfile(option: ProfileOption, label = typeof option === 'string' ? option : 'profile'): ProfileCheck {
  let resolved: ResolvedProfile;
  try {
    resolved = resolveProfile(option);
  } catch (e) {
    if (e instanceof ProfileError) return { source: e.source, problems: e.problems };
    throw e;
  }
  const problems: ProfileProblem[] = [];
  const merged = `${label} (merged)`;
  try {
    resolveOptions(['/bin/true'], resolved.policy as Parameters<typeof resolveOptions>[1]);
  } catch (e) {
    if (!(e instanceof OptionsError)) throw e;
    problems.push({ pointer: fieldToPointer(e.field), message: e.message.slice(e.field.length + 2) });
  }
  for (const [i, m] of (resolved.policy.mounts ?? []).entries()) {
    if (m.optional) continue;
    try {
      statSync(m.source);
    } catch (e) {
      problems.push({ pointer: `/mounts/${i}/source`, message: `${m.source} is not on this host (${errnoName(errnoOf(e))}); mark the mount "optional": true if that is expected` });
    }
  }
  const root = resolved.policy.rootfs;
  if (root && root !== 'host') {
    try {
      if (!statSync(root).isDirectory()) problems.push({ pointer: '/rootfs', message: `${root} is not a directory` });
    } catch (e) {
      problems.push({ pointer: '/rootfs', message: `${root} is not on this host (${errnoName(errnoOf(e))})` });
    }
  }
  return { resolved, source: problems.length ? merged : label, problems };
}
