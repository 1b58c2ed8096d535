// Compiles a policy to a classic BPF seccomp program:
//
//   arch check (a foreign architecture is killed: i386's int 0x80 on x86_64)
//   x32 check on x86_64 (any number with bit 30 is killed)
//   binary search on the syscall number over ranges of equal outcome
//   per-syscall blocks testing argument conditions, first match wins
//   one `ret` per distinct outcome
//
// Jumps are symbolic until the end; a conditional jump whose target is
// beyond its 8-bit reach goes through an inserted `ja` (32-bit reach).
import { crypto } from '../builtins.js';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  BPF_ABS,
  BPF_ALU,
  BPF_AND,
  BPF_JA,
  BPF_JEQ,
  BPF_JGE,
  BPF_JGT,
  BPF_JMP,
  BPF_K,
  BPF_LD,
  BPF_MAXINSNS,
  BPF_RET,
  BPF_W,
  OFF_ARCH,
  OFF_NR,
  SECCOMP_RET_ALLOW,
  SECCOMP_RET_KILL_PROCESS,
  SECCOMP_RET_USER_NOTIF,
  encode,
  offArgHi,
  offArgLo,
  type Insn,
} from './bpf.js';
import { AUDIT_ARCH, X32_SYSCALL_BIT, normalize, type Arch, type NormCondition, type NormPolicy, type NormRule, type SeccompPolicy } from './policy.js';
import { SYSCALLS } from './syscalls.js';

export class SeccompCompileError extends Error {
  override name = 'SeccompCompileError';
}

/**
 * The default fd on which the program hands its notification listener to
 * brig; a launch uses the number the addon reserved (native.handoffFd).
 */
export const NOTIFY_HANDOFF_FD = 200;

export interface CompileOptions {
  /**
   * Kill-process outcomes become user notifications, which brig's parent
   * turns into a kill of the whole sandbox and a report naming the call.
   * The program hands the listener over with one sendmsg on
   * NOTIFY_HANDOFF_FD, which the filter lets through (only a socket the
   * program itself made could be there after exec: nothing is gained).
   */
  report?: boolean;
  /** With report: the handoff fd number (default NOTIFY_HANDOFF_FD). */
  handoffFd?: number;
}

export interface Compiled {
  arch: Arch;
  prog: Insn[];
  /** struct sock_filter[], ready for the kernel. */
  bytes: Buffer;
  /** Longest path through the program, in instructions executed. */
  maxDepth: number;
  unknown: string[];
  /** sha256 of the program: the cache key downstream. */
  id: string;
  /**
   * With report: the refusals brig answers itself, as flat pairs [nr, errno,
   * ...] for this architecture. A notification for any other call (or any
   * other architecture) is a violation: the sandbox is killed.
   */
  refusals: number[];
}

// ---- symbolic assembly ------------------------------------------------------

class Label {
  at: Node | null = null;
}

interface Node {
  code: number;
  k: number;
  jt?: Label;
  jf?: Label;
  /** ja target */
  to?: Label;
}

class Assembler {
  readonly nodes: Node[] = [];
  private pending: Label[] = [];

  place(l: Label): void {
    this.pending.push(l);
  }
  emit(n: Node): Node {
    for (const l of this.pending) l.at = n;
    this.pending = [];
    this.nodes.push(n);
    return n;
  }
  ld(off: number) {
    return this.emit({ code: BPF_LD | BPF_W | BPF_ABS, k: off });
  }
  and(k: number) {
    return this.emit({ code: BPF_ALU | BPF_AND | BPF_K, k });
  }
  jmp(op: number, k: number, jt: Label, jf: Label) {
    return this.emit({ code: BPF_JMP | op | BPF_K, k, jt, jf });
  }
  ret(k: number) {
    return this.emit({ code: BPF_RET | BPF_K, k });
  }
  ja(to: Label) {
    return this.emit({ code: BPF_JMP | BPF_JA, k: 0, to });
  }

  /** Resolves labels, inserting `ja` where a conditional jump cannot reach. */
  link(): Insn[] {
    const nodes = this.nodes;
    for (let changed = true; changed; ) {
      changed = false;
      const index = new Map<Node, number>();
      nodes.forEach((n, i) => index.set(n, i));
      for (let i = 0; i < nodes.length; i++) {
        const n = nodes[i];
        if (!n.jt || !n.jf) continue;
        const far = (l: Label) => index.get(l.at!)! - (i + 1) > 255;
        const inserts: Node[] = [];
        for (const side of ['jt', 'jf'] as const) {
          const l = n[side]!;
          if (!far(l)) continue;
          const hop: Node = { code: BPF_JMP | BPF_JA, k: 0, to: l };
          const hopLabel = new Label();
          hopLabel.at = hop;
          n[side] = hopLabel;
          inserts.push(hop);
        }
        if (inserts.length) {
          nodes.splice(i + 1, 0, ...inserts);
          changed = true;
          break; // indices moved: start over
        }
      }
    }
    const index = new Map<Node, number>();
    nodes.forEach((n, i) => index.set(n, i));
    const off = (from: number, l: Label | undefined) => {
      const t = index.get(l!.at!);
      if (t === undefined) throw new SeccompCompileError('internal: unplaced label');
      const d = t - (from + 1);
      if (d < 0) throw new SeccompCompileError('internal: backward jump');
      return d;
    };
    return nodes.map((n, i) => {
      if (n.to) return { code: n.code, jt: 0, jf: 0, k: off(i, n.to) };
      if (n.jt) return { code: n.code, jt: off(i, n.jt), jf: off(i, n.jf), k: n.k >>> 0 };
      return { code: n.code, jt: 0, jf: 0, k: n.k >>> 0 };
    });
  }
}

// ---- argument conditions ----------------------------------------------------

const hi32 = (v: bigint) => Number((v >> 32n) & 0xffffffffn);
const lo32 = (v: bigint) => Number(v & 0xffffffffn);

/** Falls through when the condition holds, jumps to `fail` when not. */
function condition(a: Assembler, c: NormCondition, fail: Label): void {
  const pass = new Label();
  const next = new Label();
  const vh = hi32(c.value);
  const vl = lo32(c.value);
  const wide = c.width === 64;
  switch (c.op) {
    case 'eq':
    case 'masked-eq': {
      const masked = c.op === 'masked-eq';
      if (wide && masked && hi32(c.mask) === 0) {
        // The mask keeps nothing of the upper half: it is 0, equal only to 0.
        if (vh !== 0) {
          a.ja(fail);
          a.place(pass);
          return;
        }
      } else if (wide) {
        a.ld(offArgHi(c.index));
        if (masked) a.and(hi32(c.mask));
        a.jmp(BPF_JEQ, vh, next, fail);
        a.place(next);
      }
      a.ld(offArgLo(c.index));
      if (masked) a.and(lo32(c.mask));
      a.jmp(BPF_JEQ, vl, pass, fail);
      break;
    }
    case 'ne': {
      if (wide) {
        a.ld(offArgHi(c.index));
        a.jmp(BPF_JEQ, vh, next, pass);
        a.place(next);
      }
      a.ld(offArgLo(c.index));
      a.jmp(BPF_JEQ, vl, fail, pass);
      break;
    }
    case 'gt':
    case 'ge':
    case 'lt':
    case 'le': {
      // Unsigned 64-bit order from two halves: the upper halves decide unless
      // they are equal. `above` conditions hold on the greater side.
      const above = c.op === 'gt' || c.op === 'ge';
      const greater = above ? pass : fail;
      const smaller = above ? fail : pass;
      if (wide) {
        a.ld(offArgHi(c.index));
        const eq = new Label();
        a.jmp(BPF_JGT, vh, greater, eq);
        a.place(eq);
        a.jmp(BPF_JEQ, vh, next, smaller);
        a.place(next);
      }
      a.ld(offArgLo(c.index));
      // Upper halves equal: gt and le split at lo > v, ge and lt at lo >= v.
      a.jmp(c.op === 'gt' || c.op === 'le' ? BPF_JGT : BPF_JGE, vl, greater, smaller);
      break;
    }
  }
  a.place(pass);
}

// ---- the whole program ------------------------------------------------------

type Target = { ret: number } | { block: number };

function sameTarget(x: Target, y: Target): boolean {
  return 'ret' in x && 'ret' in y ? x.ret === y.ret : 'block' in x && 'block' in y && x.block === y.block;
}

/**
 * Kill-process and reported refusals both become user notifications; the
 * parent tells them apart by the syscall number alone (refusals). So a
 * reported refusal is only answered by brig where no rule for the same call
 * kills: otherwise it stays a plain errno in the filter (still refused, not
 * reported), and every notification for that call is a violation.
 */
function rewriteForReport(p: NormPolicy): { policy: NormPolicy; refusals: number[] } {
  const kill = SECCOMP_RET_KILL_PROCESS >>> 0;
  const swap = (ret: number) => (ret === kill ? SECCOMP_RET_USER_NOTIF : ret);
  const bySyscall = new Map<number, NormRule[]>();
  const refusals: number[] = [];
  const defaultKills = p.defaultRet === kill;
  for (const [nr, rules] of p.bySyscall) {
    const kills = rules.some((r) => r.ret === kill) || (defaultKills && rules.every((r) => r.conds.length > 0));
    const reported = !kills && rules.find((r) => r.report);
    if (reported) refusals.push(nr, reported.ret & 0xffff);
    bySyscall.set(nr, rules.map((r) => ({ ...r, ret: r.report && !kills ? SECCOMP_RET_USER_NOTIF : swap(r.ret) })));
  }
  return { policy: { ...p, defaultRet: swap(p.defaultRet), bySyscall }, refusals };
}

export function compileNormalized(input: NormPolicy, opts: CompileOptions = {}): Compiled {
  const rewritten = opts.report ? rewriteForReport(input) : { policy: input, refusals: [] };
  const p = rewritten.policy;
  const killRet = opts.report ? SECCOMP_RET_USER_NOTIF : SECCOMP_RET_KILL_PROCESS >>> 0;
  const a = new Assembler();
  const rets = new Map<number, Label>();
  const retLabel = (v: number) => {
    let l = rets.get(v);
    if (!l) rets.set(v, (l = new Label()));
    return l;
  };

  // 1. Only this architecture's calling convention; anything else is killed.
  a.ld(OFF_ARCH);
  const archOk = new Label();
  a.jmp(BPF_JEQ, AUDIT_ARCH[p.arch], archOk, retLabel(killRet));
  a.place(archOk);
  a.ld(OFF_NR);
  if (p.arch === 'x86_64') {
    const native = new Label();
    a.jmp(BPF_JGE, X32_SYSCALL_BIT, retLabel(killRet), native);
    a.place(native);
  }
  if (opts.report) {
    // The listener handoff: sendmsg on NOTIFY_HANDOFF_FD, just before execve.
    const sendmsg = (SYSCALLS[p.arch] as Record<string, number>).sendmsg;
    const dispatch = new Label();
    const check = new Label();
    a.jmp(BPF_JEQ, sendmsg, check, dispatch);
    a.place(check);
    condition(a, { index: 0, op: 'eq', value: BigInt(opts.handoffFd ?? NOTIFY_HANDOFF_FD), mask: 0n, width: 64 }, dispatch);
    a.ja(retLabel(SECCOMP_RET_ALLOW));
    a.place(dispatch);
    a.ld(OFF_NR);
  }

  // 2. Ranges of syscall numbers with one outcome each.
  const targets = new Map<number, Target>();
  for (const [nr, rules] of p.bySyscall) {
    const first = rules[0];
    targets.set(nr, first.conds.length === 0 ? { ret: first.ret } : { block: nr });
  }
  const nrs = [...targets.keys()].sort((x, y) => x - y);
  const segs: { start: number; target: Target }[] = [];
  const push = (start: number, target: Target) => {
    const last = segs[segs.length - 1];
    if (last && sameTarget(last.target, target)) return;
    segs.push({ start, target });
  };
  let cursor = 0;
  for (const nr of nrs) {
    if (nr > cursor) push(cursor, { ret: p.defaultRet });
    push(nr, targets.get(nr)!);
    cursor = nr + 1;
  }
  push(cursor, { ret: p.defaultRet });

  const blocks = new Map<number, Label>();
  const labelOf = (t: Target) => {
    if ('ret' in t) return retLabel(t.ret);
    let l = blocks.get(t.block);
    if (!l) blocks.set(t.block, (l = new Label()));
    return l;
  };
  const tree = (lo: number, hi: number): Label => {
    if (lo === hi) return labelOf(segs[lo].target);
    const here = new Label();
    a.place(here);
    const mid = (lo + hi + 1) >> 1;
    const node = a.jmp(BPF_JGE, segs[mid].start, here, here); // targets patched below
    node.jf = tree(lo, mid - 1);
    node.jt = tree(mid, hi);
    return here;
  };
  const root = tree(0, segs.length - 1);
  if (segs.length === 1) a.ja(root); // one outcome for every number

  // 3. Blocks for syscalls whose outcome depends on their arguments.
  for (const [nr, label] of blocks) {
    a.place(label);
    for (const rule of p.bySyscall.get(nr)!) {
      const next = new Label();
      for (const c of rule.conds) condition(a, c, next);
      a.ret(rule.ret);
      a.place(next);
    }
    if (p.bySyscall.get(nr)!.every((r) => r.conds.length > 0)) a.ret(p.defaultRet);
  }

  // 4. The outcomes.
  for (const [v, l] of rets) {
    a.place(l);
    a.ret(v);
  }

  const prog = a.link();
  if (prog.length > BPF_MAXINSNS) throw new SeccompCompileError(`the program has ${prog.length} instructions, above the kernel's limit of ${BPF_MAXINSNS}; simplify the policy`);
  const bytes = encode(prog);
  return {
    arch: p.arch,
    prog,
    bytes,
    maxDepth: longestPath(prog),
    unknown: p.unknown,
    // The refusals are part of what the program means: in the key too.
    id: crypto().createHash('sha256').update(bytes).update(Int32Array.from(rewritten.refusals)).digest('hex').slice(0, 16),
    refusals: rewritten.refusals,
  };
}

/** The most instructions any call can execute: every jump is forward, so a pass from the end. */
export function longestPath(prog: Insn[]): number {
  const d = new Array<number>(prog.length + 1).fill(0);
  for (let i = prog.length - 1; i >= 0; i--) {
    const { code, jt, jf, k } = prog[i];
    if ((code & 0x07) === BPF_RET) d[i] = 1;
    else if ((code & 0x07) === BPF_JMP && (code & 0xf0) === BPF_JA) d[i] = 1 + d[i + 1 + k];
    else if ((code & 0x07) === BPF_JMP) d[i] = 1 + Math.max(d[i + 1 + jt], d[i + 1 + jf]);
    else d[i] = 1 + d[i + 1];
  }
  return d[0];
}

const byContent = new Map<string, Compiled>();
// The same policy object (the default policy, a loaded file) is looked up by
// identity first: no serialising per run. Policies are treated as immutable.
const byObject = new WeakMap<SeccompPolicy, Map<string, Compiled>>();

/** Compiles once per (policy content, arch, options); later calls return the same object. */
/**
 * What compile() caches a program by, and the build-time table's key: the
 * policy's content and the variant, in full. (Not a hash of it: hashing
 * would load node:crypto, a sizeable share of a CLI start; the table holds
 * a few policies, and a key compared in full cannot collide.)
 */
export function compileKey(policy: SeccompPolicy, arch: Arch, opts: CompileOptions = {}): { variant: string; key: string } {
  const variant = `${arch}:${opts.report ? 1 : 0}:${opts.handoffFd ?? NOTIFY_HANDOFF_FD}`;
  const key = JSON.stringify([policy, variant], (_k, v) => (typeof v === 'bigint' ? `${v}n` : v));
  return { variant, key };
}

type Stored = Omit<Compiled, 'bytes'> & { key: string; bytes: string };
/**
 * The shipped policies compiled at build time (scripts/gen-prebuilt.mjs):
 * precompiled/VARIANT-LENGTH.json, the programs whose key has that variant
 * and that length (one, as a rule), each with its key to compare in full. A
 * run reads the one small file its key names, not a table of every policy
 * (reading and parsing that was 2-3 ms of a CLI start); no file, no program.
 */
export function prebuiltFile(variant: string, key: string): string {
  return `precompiled/${variant.replaceAll(':', '-')}-${key.length}.json`;
}

function prebuilt(variant: string, key: string): Compiled | undefined {
  let stored: Stored[];
  try {
    stored = JSON.parse(readFileSync(join(import.meta.dirname ?? dirname(fileURLToPath(import.meta.url)), prebuiltFile(variant, key)), 'utf8')) as Stored[];
  } catch {
    return undefined;
  }
  const s = stored.find((e) => e.key === key);
  if (!s) return undefined;
  const { key: _key, bytes, ...compiled } = s;
  return { ...compiled, bytes: Buffer.from(bytes, 'base64') };
}

export function compile(policy: SeccompPolicy, arch: Arch, opts: CompileOptions = {}): Compiled {
  const variant = `${arch}:${opts.report ? 1 : 0}:${opts.handoffFd ?? NOTIFY_HANDOFF_FD}`;
  let mine = byObject.get(policy);
  const hit = mine?.get(variant);
  if (hit) return hit;
  const { key } = compileKey(policy, arch, opts);
  let c = byContent.get(key);
  if (!c) {
    c = prebuilt(variant, key) ?? compileNormalized(normalize(policy, arch), opts);
    if (byContent.size > 256) byContent.delete(byContent.keys().next().value!);
    byContent.set(key, c);
  }
  if (!mine) byObject.set(policy, (mine = new Map()));
  mine.set(variant, c);
  return c;
}
