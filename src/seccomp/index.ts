// The seccomp module: policy model, compiler, interpreter, Docker import.
import { compile, NOTIFY_HANDOFF_FD, type Compiled } from './compile.js';
import { DEFAULT_POLICY, JUDGE_POLICY } from './default.js';
import { fromDocker, isDockerProfile, loadPolicyFile, type DockerProfile } from './docker.js';
import { hostArch, type Arch, type SeccompPolicy } from './policy.js';

export { compile, compileKey, longestPath, prebuiltFile, NOTIFY_HANDOFF_FD, SeccompCompileError, type Compiled, type CompileOptions } from './compile.js';
export { DEFAULT_POLICY, JUDGE_POLICY } from './default.js';
export { fromDocker, isDockerProfile, loadPolicyFile, type DockerProfile } from './docker.js';
export { interpret, disassemble, decode, encode, retName, type Insn, type SeccompData } from './bpf.js';
export {
  AUDIT_ARCH,
  AUDIT_ARCH_I386,
  X32_SYSCALL_BIT,
  decide,
  decideWhy,
  hostArch,
  normalize,
  syscallName,
  SeccompPolicyError,
  type Arch,
  type ActionName,
  type ArgCondition,
  type CompareOp,
  type SeccompPolicy,
  type SeccompRule,
} from './policy.js';

/** Every call is reported to brig and let through: what `brig seccomp learn` runs under. */
export const LEARN_POLICY: SeccompPolicy = { defaultAction: 'notify', rules: [] };

export type SeccompOption = 'default' | 'judge' | 'none' | 'learn' | SeccompPolicy | DockerProfile | string;

export interface ResolvedSeccomp {
  mode: 'report' | 'learn';
  compiled: Compiled;
  /** The fd the program hands its listener over on. */
  handoffFd: number;
}

/** The policy an option names: a word (default, judge, none, learn), a policy object, a Docker profile object, or a file of either. */
export function policyFor(v: SeccompOption, arch: Arch = hostArch()): SeccompPolicy | null {
  if (v === 'none') return null;
  if (v === 'default') return DEFAULT_POLICY;
  if (v === 'judge') return JUDGE_POLICY;
  if (v === 'learn') return LEARN_POLICY;
  if (typeof v === 'string') return loadPolicyFile(v, arch);
  if (isDockerProfile(v)) return fromDocker(v, arch);
  return v;
}

export function resolveSeccomp(v: SeccompOption, handoffFd = NOTIFY_HANDOFF_FD): ResolvedSeccomp | null {
  const arch = hostArch();
  const policy = policyFor(v, arch);
  if (!policy) return null;
  return { mode: v === 'learn' ? 'learn' : 'report', compiled: compile(policy, arch, { report: true, handoffFd }), handoffFd };
}
