// The policy model: what a seccomp policy says, and what it decides for a
// given call. The compiler must agree with decide() on every input; the
// tests check that over thousands of cases through the BPF interpreter.
import {
  SECCOMP_RET_ALLOW,
  SECCOMP_RET_ERRNO,
  SECCOMP_RET_KILL_PROCESS,
  SECCOMP_RET_KILL_THREAD,
  SECCOMP_RET_LOG,
  SECCOMP_RET_TRAP,
  SECCOMP_RET_USER_NOTIF,
  SECCOMP_RET_ACTION_FULL,
} from './bpf.js';
import { SYSCALLS } from './syscalls.js';

export type Arch = 'x86_64' | 'aarch64';
export const AUDIT_ARCH: Record<Arch, number> = { x86_64: 0xc000003e, aarch64: 0xc00000b7 };
export const AUDIT_ARCH_I386 = 0x40000003;
/** x32 ABI calls on x86_64 carry this bit in their number. */
export const X32_SYSCALL_BIT = 0x40000000;

export function hostArch(): Arch {
  if (process.arch === 'x64') return 'x86_64';
  if (process.arch === 'arm64') return 'aarch64';
  throw new Error(`seccomp: unsupported architecture ${process.arch}`);
}

/**
 * allow; errno (fails with `errno`); kill-process and notify (reported to
 * brig, which ends the run as a seccomp-violation before the call runs);
 * kill-thread (the kernel kills the calling thread); trap (SIGSYS to the
 * caller, which may handle it); log (allowed, logged by the kernel's audit).
 */
export type ActionName = 'allow' | 'errno' | 'kill-process' | 'kill-thread' | 'trap' | 'log' | 'notify';
export const ACTIONS: ActionName[] = ['allow', 'errno', 'kill-process', 'kill-thread', 'trap', 'log', 'notify'];
export type CompareOp = 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge' | 'masked-eq';
export const OPS: CompareOp[] = ['eq', 'ne', 'lt', 'le', 'gt', 'ge', 'masked-eq'];

export interface ArgCondition {
  /** Argument 0-5. */
  index: number;
  op: CompareOp;
  /** Compared value (unsigned 64-bit; numbers, bigints or decimal/0x strings). */
  value: number | bigint | string;
  /** masked-eq: (arg & mask) == value. */
  mask?: number | bigint | string;
  /**
   * 64 (default): the whole register, compared as two 32-bit halves. 32:
   * the low half only, for int arguments whose upper half the caller may
   * leave undefined.
   */
  width?: 32 | 64;
}

export interface SeccompRule {
  /** Syscall names; names this architecture lacks are skipped. */
  syscalls: string[];
  action: ActionName;
  /** For action 'errno' (default EPERM), 'trap' (si_errno) */
  errno?: number;
  /** All must hold (AND). */
  args?: ArgCondition[];
  /** Why the rule exists: shown by `brig seccomp dump`. */
  reason?: string;
  /**
   * For action 'errno' on a whole syscall (no args): the refusal is also
   * reported in RunResult.seccompDenials. brig answers the call itself
   * through a seccomp user notification, so only the refused calls pay for
   * it (a round trip to brig's event loop); allowed calls never do.
   */
  report?: boolean;
}

/**
 * For each call: the first rule (in order) naming the syscall whose
 * conditions all hold decides; if none does, the default action. Calls of
 * another architecture (i386's int 0x80 on x86_64) and x32 calls are killed.
 */
export interface SeccompPolicy {
  defaultAction: ActionName;
  defaultErrno?: number;
  rules: SeccompRule[];
}

export interface NormCondition {
  index: number;
  op: CompareOp;
  value: bigint;
  mask: bigint;
  width: 32 | 64;
}

export interface NormRule {
  conds: NormCondition[];
  ret: number;
  /** A refusal (errno) that brig answers and reports: see SeccompRule.report. */
  report?: boolean;
  /** Index of the policy rule it came from. */
  source: number;
}

/** A policy resolved for one architecture: numbers instead of names, return values instead of actions. */
export interface NormPolicy {
  arch: Arch;
  defaultRet: number;
  bySyscall: Map<number, NormRule[]>;
  /** Names the architecture has no number for. */
  unknown: string[];
}

export class SeccompPolicyError extends Error {
  override name = 'SeccompPolicyError';
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

const U64 = (1n << 64n) - 1n;

export function toU64(field: string, v: unknown): bigint {
  let b: bigint;
  try {
    if (typeof v === 'bigint') b = v;
    else if (typeof v === 'number' && Number.isSafeInteger(v)) b = BigInt(v);
    else if (typeof v === 'string' && /^(0x[0-9a-f]+|\d+)$/i.test(v.trim())) b = BigInt(v.trim());
    else throw new Error();
  } catch {
    throw new SeccompPolicyError(field, `expected a whole number, got ${JSON.stringify(typeof v === 'bigint' ? v.toString() : v)}`);
  }
  if (b < 0n) b &= U64; // -1 means all bits, as C would have it
  if (b > U64) throw new SeccompPolicyError(field, 'does not fit in 64 bits');
  return b;
}

export function actionRet(field: string, action: ActionName, errno?: number): number {
  const data = (n: number | undefined, dflt: number) => {
    const v = n ?? dflt;
    if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new SeccompPolicyError(field, `expected an errno from 0 to 65535, got ${v}`);
    return v;
  };
  switch (action) {
    case 'allow':
      return SECCOMP_RET_ALLOW;
    case 'errno':
      return (SECCOMP_RET_ERRNO | data(errno, 1)) >>> 0;
    case 'kill-process':
      return SECCOMP_RET_KILL_PROCESS >>> 0;
    case 'kill-thread':
      return SECCOMP_RET_KILL_THREAD;
    case 'trap':
      return (SECCOMP_RET_TRAP | data(errno, 0)) >>> 0;
    case 'log':
      return SECCOMP_RET_LOG;
    case 'notify':
      return SECCOMP_RET_USER_NOTIF;
    default:
      throw new SeccompPolicyError(field, `unknown action ${JSON.stringify(action)}; expected one of ${ACTIONS.join(', ')}`);
  }
}

/** The kernel's order when filters disagree: lower is stronger. */
export function precedence(ret: number): number {
  const a = (ret & SECCOMP_RET_ACTION_FULL) >>> 0;
  const order = [SECCOMP_RET_KILL_PROCESS >>> 0, SECCOMP_RET_KILL_THREAD, SECCOMP_RET_TRAP, SECCOMP_RET_ERRNO, SECCOMP_RET_USER_NOTIF, 0x7ff00000, SECCOMP_RET_LOG, SECCOMP_RET_ALLOW];
  const i = order.indexOf(a);
  return i < 0 ? 0 : i;
}

export function normalize(policy: SeccompPolicy, arch: Arch): NormPolicy {
  if (!policy || typeof policy !== 'object') throw new SeccompPolicyError('seccomp', 'expected a policy object');
  if (!Array.isArray(policy.rules)) throw new SeccompPolicyError('seccomp.rules', 'expected an array');
  const table = SYSCALLS[arch] as Record<string, number>;
  const defaultRet = actionRet('seccomp.defaultAction', policy.defaultAction, policy.defaultErrno);
  const bySyscall = new Map<number, NormRule[]>();
  const unknown = new Set<string>();
  policy.rules.forEach((rule, ri) => {
    const f = `seccomp.rules[${ri}]`;
    if (!rule || typeof rule !== 'object' || !Array.isArray(rule.syscalls)) throw new SeccompPolicyError(f, 'expected { syscalls: [...], action }');
    const ret = actionRet(`${f}.action`, rule.action, rule.errno);
    if (rule.report !== undefined && typeof rule.report !== 'boolean') throw new SeccompPolicyError(`${f}.report`, 'expected true or false');
    const report = rule.report === true;
    if (report && rule.action !== 'errno') throw new SeccompPolicyError(`${f}.report`, "only an 'errno' rule is reported (kill-process is reported anyway)");
    if (report && rule.args?.length) throw new SeccompPolicyError(`${f}.report`, 'a reported refusal covers whole syscalls: no args');
    // errno 0 would make the call "succeed" without running: never for a refusal brig answers.
    if (report && (ret & 0xffff) === 0) throw new SeccompPolicyError(`${f}.errno`, 'a reported refusal needs an errno from 1 to 65535');
    const conds: NormCondition[] = (rule.args ?? []).map((c, ci) => {
      const cf = `${f}.args[${ci}]`;
      if (!Number.isInteger(c.index) || c.index < 0 || c.index > 5) throw new SeccompPolicyError(`${cf}.index`, 'expected 0 to 5');
      if (!OPS.includes(c.op)) throw new SeccompPolicyError(`${cf}.op`, `expected one of ${OPS.join(', ')}`);
      const width = c.width ?? 64;
      if (width !== 32 && width !== 64) throw new SeccompPolicyError(`${cf}.width`, 'expected 32 or 64');
      let value = toU64(`${cf}.value`, c.value);
      let mask = c.op === 'masked-eq' ? toU64(`${cf}.mask`, c.mask ?? U64) : U64;
      if (c.op !== 'masked-eq' && c.mask !== undefined) throw new SeccompPolicyError(`${cf}.mask`, 'only masked-eq takes a mask');
      if (width === 32) {
        value &= 0xffffffffn;
        mask &= 0xffffffffn;
      }
      return { index: c.index, op: c.op, value, mask, width };
    });
    rule.syscalls.forEach((name, si) => {
      if (typeof name !== 'string') throw new SeccompPolicyError(`${f}.syscalls[${si}]`, 'expected a syscall name');
      const nr = table[name];
      if (nr === undefined) {
        unknown.add(name);
        return;
      }
      const list = bySyscall.get(nr) ?? [];
      // After an unconditional rule nothing for this syscall is reachable.
      if (!list.some((r) => r.conds.length === 0)) list.push(report ? { conds, ret, source: ri, report } : { conds, ret, source: ri });
      bySyscall.set(nr, list);
    });
  });
  return { arch, defaultRet, bySyscall, unknown: [...unknown].sort() };
}

function holds(c: NormCondition, arg: bigint): boolean {
  let a = arg & U64;
  if (c.width === 32) a &= 0xffffffffn;
  switch (c.op) {
    case 'eq':
      return a === c.value;
    case 'ne':
      return a !== c.value;
    case 'lt':
      return a < c.value;
    case 'le':
      return a <= c.value;
    case 'gt':
      return a > c.value;
    case 'ge':
      return a >= c.value;
    case 'masked-eq':
      return (a & c.mask) === c.value;
  }
}

/**
 * What the policy decides for one call, and why: the index of the deciding
 * rule, 'default', or 'arch' (another architecture, or x32).
 */
export function decideWhy(p: NormPolicy, auditArch: number, nr: number, args: bigint[] = []): { ret: number; by: number | 'default' | 'arch' } {
  const kill = SECCOMP_RET_KILL_PROCESS >>> 0;
  if (auditArch >>> 0 !== AUDIT_ARCH[p.arch]) return { ret: kill, by: 'arch' };
  if (p.arch === 'x86_64' && nr >>> 0 >= X32_SYSCALL_BIT) return { ret: kill, by: 'arch' };
  for (const rule of p.bySyscall.get(nr >>> 0) ?? []) if (rule.conds.every((c) => holds(c, args[c.index] ?? 0n))) return { ret: rule.ret, by: rule.source };
  return { ret: p.defaultRet, by: 'default' };
}

/** What the policy decides for one call: a seccomp return value. */
export function decide(p: NormPolicy, auditArch: number, nr: number, args: bigint[] = []): number {
  return decideWhy(p, auditArch, nr, args).ret;
}

export function syscallName(arch: Arch, nr: number): string | undefined {
  for (const [name, n] of Object.entries(SYSCALLS[arch])) if (n === nr) return name;
  return undefined;
}
