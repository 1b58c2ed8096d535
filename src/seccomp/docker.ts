// Docker/OCI seccomp profiles (the JSON Docker, Podman and containerd use)
// turned into brig policies, so a host's existing profile decides the same.
//
// What differs, on purpose: calls of a sub-architecture (i386 and x32 on
// x86_64, arm on aarch64) are always killed, as every brig policy does;
// Docker would let them through by the same names.
import { readFileSync, statSync } from 'node:fs';
import { kernelAtLeast } from '../kernel.js';
import { SeccompPolicyError, toU64, type ActionName, type Arch, type ArgCondition, type SeccompPolicy, type SeccompRule, precedence, actionRet } from './policy.js';

interface DockerArg {
  index: number;
  value: number | string;
  valueTwo?: number | string;
  op: string;
}
interface DockerFilter {
  caps?: string[];
  arches?: string[];
  minKernel?: string;
}
interface DockerSyscall {
  names?: string[];
  name?: string;
  action: string;
  errnoRet?: number;
  args?: DockerArg[] | null;
  includes?: DockerFilter;
  excludes?: DockerFilter;
}
export interface DockerProfile {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  archMap?: { architecture: string; subArchitectures?: string[] }[];
  syscalls?: DockerSyscall[];
}

const ACTION_NAMES: Record<string, ActionName> = {
  SCMP_ACT_ALLOW: 'allow',
  SCMP_ACT_ERRNO: 'errno',
  SCMP_ACT_KILL: 'kill-thread',
  SCMP_ACT_KILL_THREAD: 'kill-thread',
  SCMP_ACT_KILL_PROCESS: 'kill-process',
  SCMP_ACT_TRAP: 'trap',
  SCMP_ACT_LOG: 'log',
  SCMP_ACT_NOTIFY: 'notify',
};

const OPS: Record<string, ArgCondition['op']> = {
  SCMP_CMP_EQ: 'eq',
  SCMP_CMP_NE: 'ne',
  SCMP_CMP_LT: 'lt',
  SCMP_CMP_LE: 'le',
  SCMP_CMP_GT: 'gt',
  SCMP_CMP_GE: 'ge',
  SCMP_CMP_MASKED_EQ: 'masked-eq',
};

// The names a profile may use for an architecture: libseccomp's and Go's.
const ARCH_NAMES: Record<Arch, string[]> = {
  x86_64: ['SCMP_ARCH_X86_64', 'amd64', 'x86_64'],
  aarch64: ['SCMP_ARCH_AARCH64', 'arm64', 'aarch64'],
};

const EPERM = 1;

function action(field: string, name: string): ActionName {
  const a = ACTION_NAMES[name];
  if (!a) {
    if (name === 'SCMP_ACT_TRACE') throw new SeccompPolicyError(field, 'SCMP_ACT_TRACE needs a ptrace supervisor, which brig is not');
    throw new SeccompPolicyError(field, `unknown action ${JSON.stringify(name)}`);
  }
  return a;
}

/** Whether includes/excludes let this entry apply to a sandbox that holds no capabilities. */
function applies(s: DockerSyscall, arch: Arch): boolean {
  const archOk = (list: string[] | undefined) => !list?.length || list.some((a) => ARCH_NAMES[arch].includes(a));
  const inc = s.includes ?? {};
  if (inc.caps?.length) return false; // brig sandboxes hold no capabilities
  if (!archOk(inc.arches)) return false;
  if (inc.minKernel && !kernelAtLeast(inc.minKernel)) return false;
  const exc = s.excludes ?? {};
  if (exc.arches?.length && exc.arches.some((a) => ARCH_NAMES[arch].includes(a))) return false;
  if (exc.minKernel && kernelAtLeast(exc.minKernel)) return false;
  // excludes.caps: applies unless the sandbox has the capability: it never does.
  return true;
}

/**
 * Converts a Docker profile for one architecture. Where several entries name
 * the same call, libseccomp applies the strongest action among those whose
 * arguments match; rules are ordered by that precedence so brig's first
 * match is the same decision.
 */
export function fromDocker(profile: DockerProfile, arch: Arch): SeccompPolicy {
  if (!profile || typeof profile !== 'object' || typeof profile.defaultAction !== 'string') throw new SeccompPolicyError('profile', 'not a Docker seccomp profile: no defaultAction');
  const arches = [...(profile.architectures ?? []), ...(profile.archMap ?? []).map((m) => m.architecture)];
  if (arches.length && !arches.some((a) => ARCH_NAMES[arch].includes(a)))
    throw new SeccompPolicyError('profile.architectures', `the profile does not cover ${arch} (it lists ${arches.join(', ')})`);
  const defaultAction = action('profile.defaultAction', profile.defaultAction);
  const rules: SeccompRule[] = [];
  (profile.syscalls ?? []).forEach((s, i) => {
    const f = `profile.syscalls[${i}]`;
    if (!applies(s, arch)) return;
    const names = s.names ?? (s.name ? [s.name] : []);
    if (!names.length) return;
    const act = action(`${f}.action`, s.action);
    const args = (s.args ?? []).map((a, j): ArgCondition => {
      const op = OPS[a.op];
      if (!op) throw new SeccompPolicyError(`${f}.args[${j}].op`, `unknown operator ${JSON.stringify(a.op)}`);
      // libseccomp's masked-eq: (arg & value) == valueTwo
      if (op === 'masked-eq') return { index: a.index, op, mask: toU64(`${f}.args[${j}].value`, a.value), value: toU64(`${f}.args[${j}].valueTwo`, a.valueTwo ?? 0) };
      return { index: a.index, op, value: toU64(`${f}.args[${j}].value`, a.value) };
    });
    const rule: SeccompRule = { syscalls: names, action: act, reason: `Docker profile entry ${i}` };
    if (act === 'errno' || act === 'trap') rule.errno = s.errnoRet ?? (act === 'errno' ? EPERM : 0);
    if (args.length) rule.args = args;
    rules.push(rule);
  });
  const strength = (r: SeccompRule) => precedence(actionRet('rule', r.action, r.errno));
  rules.sort((a, b) => strength(a) - strength(b)); // stable: file order among equals
  const policy: SeccompPolicy = { defaultAction, rules };
  if (defaultAction === 'errno') policy.defaultErrno = profile.defaultErrnoRet ?? EPERM;
  return policy;
}

export function isDockerProfile(v: unknown): v is DockerProfile {
  return !!v && typeof v === 'object' && typeof (v as DockerProfile).defaultAction === 'string' && (v as DockerProfile).defaultAction.startsWith('SCMP_ACT_');
}

const fileCache = new Map<string, { stamp: string; policy: SeccompPolicy }>();

/** A policy file: brig's own format or a Docker profile; re-read only when it changed. */
export function loadPolicyFile(path: string, arch: Arch): SeccompPolicy {
  let stamp: string;
  try {
    const st = statSync(path);
    stamp = `${st.mtimeMs}:${st.size}:${st.ino}`;
  } catch (e) {
    throw new SeccompPolicyError('seccomp', `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
  const key = `${arch}:${path}`;
  const hit = fileCache.get(key);
  if (hit && hit.stamp === stamp) return hit.policy;
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new SeccompPolicyError('seccomp', `${path} is not valid JSON: ${(e as Error).message}`);
  }
  const policy = isDockerProfile(json) ? fromDocker(json, arch) : (json as SeccompPolicy);
  fileCache.set(key, { stamp, policy });
  return policy;
}
