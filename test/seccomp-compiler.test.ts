// The compiler against the policy model: every decision the BPF program
// makes (run in brig's interpreter) must be the model's.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  AUDIT_ARCH,
  AUDIT_ARCH_I386,
  DEFAULT_POLICY,
  JUDGE_POLICY,
  NOTIFY_HANDOFF_FD,
  SeccompCompileError,
  X32_SYSCALL_BIT,
  compile,
  decide,
  disassemble,
  fromDocker,
  interpret,
  normalize,
  type ActionName,
  type Arch,
  type ArgCondition,
  type CompareOp,
  type DockerProfile,
  type SeccompPolicy,
} from '../src/seccomp/index.js';
import { SYSCALLS } from '../src/seccomp/syscalls.js';
import { dockerLikeProfile } from './fixtures/docker-profile.js';
import { guardLeaks } from './helpers.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');

// A small deterministic generator, so a failure can be replayed.
function rng(seed: number) {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
  return {
    int: (n: number) => next() % n,
    pick: <T>(a: readonly T[]) => a[next() % a.length],
    u64: () => (BigInt(next()) << 32n) | BigInt(next()),
  };
}

const ACTIONS: ActionName[] = ['allow', 'errno', 'kill-process', 'kill-thread', 'trap', 'log', 'notify'];
const OPS: CompareOp[] = ['eq', 'ne', 'lt', 'le', 'gt', 'ge', 'masked-eq'];
const INTERESTING = [0n, 1n, 2n, 0xffn, 0x7fffffffn, 0x80000000n, 0xffffffffn, 0x100000000n, 0x100000001n, 0xffffffff00000000n, (1n << 64n) - 1n];

function randomValue(r: ReturnType<typeof rng>): bigint {
  if (r.int(3) === 0) return r.u64();
  const v = r.pick(INTERESTING) + BigInt(r.int(3)) - 1n; // around an interesting value
  return v < 0n ? 0n : v & ((1n << 64n) - 1n);
}

function randomPolicy(r: ReturnType<typeof rng>, arch: Arch): SeccompPolicy {
  const names = Object.keys(SYSCALLS[arch]);
  const rules = [];
  for (let i = 0; i < 30 + r.int(40); i++) {
    const args: ArgCondition[] = [];
    for (let j = r.int(4); j > 0; j--) {
      const op = r.pick(OPS);
      const c: ArgCondition = { index: r.int(6), op, value: randomValue(r) };
      if (op === 'masked-eq') c.mask = r.u64();
      if (r.int(3) === 0) c.width = 32;
      args.push(c);
    }
    const action = r.pick(ACTIONS);
    rules.push({ syscalls: [r.pick(names), ...(r.int(3) ? [] : [r.pick(names)])], action, errno: r.int(200), ...(args.length ? { args } : {}) });
  }
  return { defaultAction: r.pick(ACTIONS), defaultErrno: r.int(100), rules };
}

function casesFor(r: ReturnType<typeof rng>, arch: Arch, policy: SeccompPolicy, n: number) {
  const table = SYSCALLS[arch] as Record<string, number>;
  const cases: { arch: number; nr: number; args: bigint[] }[] = [];
  for (let i = 0; i < n; i++) {
    const rule = r.pick(policy.rules);
    const nr = r.int(5) === 0 ? r.int(600) : table[rule.syscalls[0]];
    const args = Array.from({ length: 6 }, () => randomValue(r));
    // Aim at the conditions' edges.
    for (const c of rule.args ?? []) {
      const v = BigInt(c.value as bigint);
      const d = BigInt(r.int(3)) - 1n;
      let x = (v + d) & ((1n << 64n) - 1n);
      if (c.op === 'masked-eq' && r.int(2)) x = (args[c.index] & ~BigInt(c.mask as bigint)) | v;
      if (r.int(4) === 0) x ^= BigInt(r.int(2)) << 32n; // dirty upper half
      args[c.index] = x;
    }
    let a = AUDIT_ARCH[arch];
    if (r.int(25) === 0) a = AUDIT_ARCH_I386;
    cases.push({ arch: a, nr: arch === 'x86_64' && r.int(25) === 0 ? nr | X32_SYSCALL_BIT : nr, args });
  }
  return cases;
}

describe('seccomp compiler', () => {
  it('the syscall tables match the installed kernel headers', () => {
    const out = execFileSync(process.execPath, [join(root, 'scripts/gen-syscalls.mjs'), '--check'], { encoding: 'utf8' });
    assert.match(out, /match the headers/);
    assert.equal(SYSCALLS.x86_64.read, 0);
    assert.equal(SYSCALLS.aarch64.read, 63);
    assert.ok(Object.keys(SYSCALLS.x86_64).length > 300 && Object.keys(SYSCALLS.aarch64).length > 250);
  });

  it('decides like the policy model on thousands of calls, both architectures, both modes', () => {
    const r = rng(20261123);
    let checked = 0;
    for (const arch of ['x86_64', 'aarch64'] as Arch[]) {
      for (let p = 0; p < 12; p++) {
        const policy = randomPolicy(r, arch);
        const model = normalize(policy, arch);
        for (const report of [false, true]) {
          const c = compile(policy, arch, { report });
          assert.ok(c.prog.length <= 4096);
          for (const call of casesFor(r, arch, policy, 300)) {
            let want = decide(model, call.arch, call.nr, call.args);
            if (report && want === 0x80000000) want = 0x7fc00000; // kill-process is reported through a notification
            if (report && call.arch === AUDIT_ARCH[arch] && call.nr === (SYSCALLS[arch] as Record<string, number>).sendmsg && call.args[0] === BigInt(NOTIFY_HANDOFF_FD))
              want = 0x7fff0000; // the listener handoff
            const got = interpret(c.prog, call).ret;
            assert.equal(got, want, `${arch} policy ${p} report=${report}: nr ${call.nr} args ${call.args.join(',')}`);
            checked++;
          }
        }
      }
    }
    assert.ok(checked >= 14000, `checked ${checked}`);
  });

  it('kills calls of another architecture and x32 calls', () => {
    const c = compile(DEFAULT_POLICY, 'x86_64');
    assert.equal(interpret(c.prog, { arch: AUDIT_ARCH_I386, nr: 20 }).ret, 0x80000000);
    assert.equal(interpret(c.prog, { arch: AUDIT_ARCH.x86_64, nr: X32_SYSCALL_BIT | 39 }).ret, 0x80000000);
    assert.equal(interpret(c.prog, { arch: AUDIT_ARCH.x86_64, nr: 39 }).ret, 0x7fff0000);
    const arm = compile(DEFAULT_POLICY, 'aarch64');
    assert.equal(interpret(arm.prog, { arch: AUDIT_ARCH.x86_64, nr: 39 }).ret, 0x80000000);
    assert.equal(interpret(arm.prog, { arch: AUDIT_ARCH.aarch64, nr: 172 }).ret, 0x7fff0000); // getpid
  });

  it('dispatches by binary search: depth grows with the log of the rules, not their number', () => {
    const names = Object.keys(SYSCALLS.x86_64);
    const policy: SeccompPolicy = { defaultAction: 'errno', defaultErrno: 1, rules: names.filter((_, i) => i % 2 === 0).map((n) => ({ syscalls: [n], action: 'allow' as const })) };
    const c = compile(policy, 'x86_64');
    // about 180 alternating ranges: log2(360) ~ 9 comparisons, plus the prelude
    assert.ok(c.maxDepth <= 16, `depth ${c.maxDepth}`);
    for (const [name, nr] of Object.entries(SYSCALLS.x86_64)) {
      const want = names.indexOf(name) % 2 === 0 ? 0x7fff0000 : 0x50001;
      assert.equal(interpret(c.prog, { arch: AUDIT_ARCH.x86_64, nr }).ret, want, name);
    }
  });

  it('reaches targets beyond 255 instructions through ja', () => {
    // Many argument blocks push the outcomes far from the dispatch jumps.
    const names = Object.keys(SYSCALLS.x86_64).slice(0, 120);
    const policy: SeccompPolicy = {
      defaultAction: 'kill-process',
      rules: names.map((n, i) => ({ syscalls: [n], action: 'allow' as const, args: [{ index: i % 6, op: 'le' as const, value: 1000n + BigInt(i) }] })),
    };
    const c = compile(policy, 'x86_64');
    assert.ok(c.prog.length > 600, `length ${c.prog.length}`);
    assert.ok(c.prog.some((i) => i.code === 0x05), 'expected ja hops');
    const model = normalize(policy, 'x86_64');
    names.forEach((n, i) => {
      const nr = (SYSCALLS.x86_64 as Record<string, number>)[n];
      for (const v of [999n, 1000n + BigInt(i), 1001n + BigInt(i), 1n << 40n]) {
        const args = [0n, 0n, 0n, 0n, 0n, 0n];
        args[i % 6] = v;
        assert.equal(interpret(c.prog, { arch: AUDIT_ARCH.x86_64, nr, args }).ret, decide(model, AUDIT_ARCH.x86_64, nr, args));
      }
    });
  });

  it('refuses a program above the kernel limit of 4096 instructions', () => {
    const rules = Array.from({ length: 1000 }, (_, i) => ({ syscalls: ['read'], action: 'allow' as const, args: [{ index: 0, op: 'eq' as const, value: BigInt(i) << 33n }] }));
    assert.throws(() => compile({ defaultAction: 'errno', rules }, 'x86_64'), (e: unknown) => e instanceof SeccompCompileError && /above the kernel's limit of 4096/.test(e.message));
  });

  it('reported refusals: notified with report, plain errno without; never by number where a rule kills', () => {
    const t = SYSCALLS.x86_64 as Record<string, number>;
    const policy: SeccompPolicy = {
      defaultAction: 'errno',
      defaultErrno: 38,
      rules: [
        { syscalls: ['mount'], action: 'errno', errno: 1, report: true },
        { syscalls: ['chroot'], action: 'kill-process', args: [{ index: 0, op: 'eq', value: 7 }] },
        { syscalls: ['chroot'], action: 'errno', errno: 1, report: true },
        { syscalls: ['getpid'], action: 'allow' },
      ],
    };
    const at = (c: ReturnType<typeof compile>, nr: number, a0 = 0n) => interpret(c.prog, { arch: AUDIT_ARCH.x86_64, nr, args: [a0, 0n, 0n, 0n, 0n, 0n] }).ret >>> 0;
    const plain = compile(policy, 'x86_64');
    assert.equal(at(plain, t.mount), 0x00050001, 'ERRNO(EPERM) in the filter');
    assert.deepEqual(plain.refusals, []);
    const reported = compile(policy, 'x86_64', { report: true });
    assert.equal(at(reported, t.mount), 0x7fc00000, 'USER_NOTIF');
    assert.equal(at(reported, t.getpid), 0x7fff0000, 'allowed calls never reach brig');
    // chroot also has a kill rule: its notifications are all violations, so
    // its refusal stays in the filter and is not in the table.
    assert.equal(at(reported, t.chroot, 7n), 0x7fc00000);
    assert.equal(at(reported, t.chroot, 1n), 0x00050001);
    assert.deepEqual(reported.refusals, [t.mount, 1]);
    assert.notEqual(reported.id, compile({ ...policy, rules: policy.rules.map((r) => ({ ...r, report: false })) }, 'x86_64', { report: true }).id);
    for (const [bad, field] of [
      [{ syscalls: ['mount'], action: 'kill-process', report: true }, 'seccomp.rules[0].report'],
      [{ syscalls: ['mount'], action: 'errno', errno: 1, report: true, args: [{ index: 0, op: 'eq', value: 1 }] }, 'seccomp.rules[0].report'],
      [{ syscalls: ['mount'], action: 'errno', errno: 0, report: true }, 'seccomp.rules[0].errno'],
      [{ syscalls: ['mount'], action: 'errno', report: 'yes' }, 'seccomp.rules[0].report'],
    ] as const)
      assert.throws(() => normalize({ defaultAction: 'allow', rules: [bad as never] }, 'x86_64'), (e: unknown) => (e as { field?: string }).field === field);
    // The shipped policies: default reports its privileged refusals, judge none.
    assert.ok(compile(DEFAULT_POLICY, 'x86_64', { report: true }).refusals.length >= 100);
    assert.deepEqual(compile(JUDGE_POLICY, 'x86_64', { report: true }).refusals, []);
  });

  it('compiles once per policy', () => {
    const a = compile(DEFAULT_POLICY, 'x86_64', { report: true });
    const b = compile(JSON.parse(JSON.stringify(DEFAULT_POLICY)), 'x86_64', { report: true });
    assert.equal(a, b);
  });

  it('disassembles with field names and outcomes', () => {
    const text = disassemble(compile(DEFAULT_POLICY, 'x86_64').prog);
    assert.match(text, /^0+: ld  arch$/m);
    assert.match(text, /jeq #0xc000003e/);
    assert.match(text, /ret ERRNO\(38\)/);
    assert.match(text, /ret KILL_PROCESS/);
    assert.match(text, /ld  args\[1\]_lo/);
  });
});

// ---- Docker profiles ---------------------------------------------------------

/** What the JSON says, evaluated independently of brig's converter. */
function dockerDecision(p: DockerProfile, name: string, args: bigint[]): number {
  const strength: Record<string, number> = { SCMP_ACT_KILL_PROCESS: 0, SCMP_ACT_KILL: 1, SCMP_ACT_TRAP: 2, SCMP_ACT_ERRNO: 3, SCMP_ACT_LOG: 6, SCMP_ACT_ALLOW: 7 };
  const value: Record<string, (e?: number) => number> = {
    SCMP_ACT_KILL_PROCESS: () => 0x80000000,
    SCMP_ACT_TRAP: (e) => (0x30000 | (e ?? 0)) >>> 0,
    SCMP_ACT_ERRNO: (e) => (0x50000 | (e ?? 1)) >>> 0,
    SCMP_ACT_ALLOW: () => 0x7fff0000,
  };
  let best: { s: number; v: number } | null = null;
  for (const e of p.syscalls ?? []) {
    if (!(e.names ?? []).includes(name)) continue;
    if (e.includes?.caps?.length || (e.includes?.arches && !e.includes.arches.includes('amd64')) || (e.includes?.minKernel && Number(e.includes.minKernel.split('.')[0]) > 6)) continue;
    const ok = (e.args ?? []).every((a) => {
      const x = args[a.index];
      const v = BigInt(a.value);
      if (a.op === 'SCMP_CMP_EQ') return x === v;
      if (a.op === 'SCMP_CMP_NE') return x !== v;
      if (a.op === 'SCMP_CMP_MASKED_EQ') return (x & v) === BigInt(a.valueTwo ?? 0);
      throw new Error(a.op);
    });
    if (!ok) continue;
    const s = strength[e.action];
    if (!best || s < best.s) best = { s, v: value[e.action](e.errnoRet) };
  }
  return best ? best.v : value[p.defaultAction](p.defaultErrnoRet);
}

describe('Docker seccomp profiles', () => {
  it('a 300+ syscall profile compiles within limits and decides like its JSON says', () => {
    const profile = dockerLikeProfile();
    const names = new Set((profile.syscalls ?? []).flatMap((s) => s.names ?? []));
    assert.ok(names.size >= 300, `${names.size} names`);
    const c = compile(fromDocker(profile, 'x86_64'), 'x86_64');
    assert.ok(c.prog.length <= 4096, `length ${c.prog.length}`);
    const argSets = [[0n], [BigInt(0x10000000)], [8n], [0x40000n], [16n], [17n], [2n], [4294967295n], [1n << 36n]].map((a) => [...a, 0n, 0n, 0n, 0n, 0n]);
    let n = 0;
    for (const [name, nr] of Object.entries(SYSCALLS.x86_64)) {
      for (const args of argSets) {
        assert.equal(interpret(c.prog, { arch: AUDIT_ARCH.x86_64, nr, args }).ret, dockerDecision(profile, name, args), `${name}(${args[0]})`);
        n++;
      }
    }
    assert.ok(n > 3000);
  });

  it('rejects what it cannot honour, naming the field', () => {
    assert.throws(() => fromDocker({ defaultAction: 'SCMP_ACT_TRACE' }, 'x86_64'), /profile.defaultAction: SCMP_ACT_TRACE needs a ptrace supervisor/);
    assert.throws(() => fromDocker({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 1, op: 'SCMP_CMP_SOMETIMES' }] }] }, 'x86_64'), /profile.syscalls\[0\].args\[0\].op/);
    assert.throws(() => fromDocker({ defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_MIPS'] }, 'x86_64'), /does not cover x86_64/);
  });
});

guardLeaks();
