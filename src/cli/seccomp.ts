// brig seccomp dump | test | learn: look at, question and write policies.
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { run } from '../launch/sandbox.js';
import {
  AUDIT_ARCH,
  compile,
  decideWhy,
  disassemble,
  hostArch,
  normalize,
  policyFor,
  retName,
  interpret,
  type Arch,
  type SeccompPolicy,
} from '../seccomp/index.js';
import { SYSCALLS } from '../seccomp/syscalls.js';
import { checks, formatHelp, one, parseArgs, UsageError, type OptionSpec } from './args.js';
import { EXIT_BRIG_ERROR, exitCodeFor, explainStatus, sandboxOptions, sandboxSpecs } from './run.js';

const policySpecs: OptionSpec[] = [
  { name: 'policy', value: true, arg: 'default|judge|FILE', help: "the policy: brig's default (the default), judge, or a JSON file (brig policy or Docker profile)" },
  { name: 'arch', value: true, arg: 'x86_64|aarch64', help: 'the architecture to compile for (default: this machine)' },
  { name: 'help', short: 'h', help: 'show this help' },
];
const dumpSpecs: OptionSpec[] = [...policySpecs, { name: 'report', help: 'as brig installs it: kill-process reported through a notification' }];
const learnSpecs: OptionSpec[] = [
  ...sandboxSpecs.filter((s) => s.name !== 'seccomp'),
  { name: 'output', short: 'o', value: true, arg: 'FILE', help: 'write the learned policy here (default: standard output)' },
  { name: 'format', value: true, arg: 'brig|docker', help: "the policy's format: brig's (default) or a Docker/OCI profile", check: checks.oneOf('brig', 'docker') },
];

export const seccompHelp = `Usage: brig seccomp dump|test|learn [OPTIONS]

  dump  [--policy P] [--arch A] [--report]        the compiled BPF program, disassembled
  test  [--policy P] [--arch A] SYSCALL [ARG...]  what the policy decides for one call, and why
  learn [OPTIONS] [-o FILE] [--format brig|docker] -- COMMAND [ARGS...]
        runs COMMAND with every call reported and allowed, then writes the
        smallest policy that lets it run (everything else: kill-process)

${formatHelp('brig seccomp dump|test', 'Policy options:', dumpSpecs)}
${formatHelp('brig seccomp learn', 'Learn takes the options of brig run:', learnSpecs)}`;

function arch(p: ReturnType<typeof parseArgs>): Arch {
  const a = one(p, 'arch') ?? hostArch();
  if (a !== 'x86_64' && a !== 'aarch64') throw new UsageError(`--arch: expected x86_64 or aarch64, got ${JSON.stringify(a)}`);
  return a;
}

function policy(p: ReturnType<typeof parseArgs>, a: Arch): { policy: SeccompPolicy; label: string } {
  const name = one(p, 'policy') ?? 'default';
  const pol = policyFor(name === 'default' || name === 'judge' ? name : resolve(name), a);
  if (!pol) throw new UsageError('--policy: none has nothing to show');
  return { policy: pol, label: name };
}

function dump(argv: string[]): number {
  const p = parseArgs(argv, dumpSpecs);
  if (p.flags.has('help')) return help();
  const a = arch(p);
  const { policy: pol, label } = policy(p, a);
  const c = compile(pol, a, { report: p.flags.has('report') });
  process.stdout.write(`; policy ${label}, ${a}: ${c.prog.length} instructions, worst-case decision depth ${c.maxDepth}\n`);
  if (c.unknown.length) process.stdout.write(`; names without a number on ${a}, skipped: ${c.unknown.join(' ')}\n`);
  process.stdout.write(disassemble(c.prog) + '\n');
  return 0;
}

function parseNumber(what: string, v: string): bigint {
  if (!/^(0x[0-9a-f]+|\d+)$/i.test(v)) throw new UsageError(`${what}: expected a number (decimal or 0x), got ${JSON.stringify(v)}`);
  return BigInt(v);
}

function test(argv: string[]): number {
  const p = parseArgs(argv, policySpecs);
  if (p.flags.has('help')) return help();
  const a = arch(p);
  const { policy: pol } = policy(p, a);
  const [call, ...rest] = p.rest;
  if (!call) throw new UsageError('which syscall? (a name or a number)');
  const table = SYSCALLS[a] as Record<string, number>;
  const nr = /^\d+$/.test(call) ? Number(call) : table[call];
  if (nr === undefined) throw new UsageError(`${a} has no syscall named ${JSON.stringify(call)}`);
  if (rest.length > 6) throw new UsageError('at most 6 arguments');
  const args = rest.map((v, i) => parseNumber(`argument ${i}`, v));
  while (args.length < 6) args.push(0n);
  const c = compile(pol, a);
  // The answer comes from running the compiled program; the model says which rule.
  const got = interpret(c.prog, { arch: AUDIT_ARCH[a], nr, args });
  const why = decideWhy(normalize(pol, a), AUDIT_ARCH[a], nr, args);
  const name = Object.entries(table).find(([, n]) => n === nr)?.[0] ?? `nr ${nr}`;
  const reason = typeof why.by === 'number' ? `rule ${why.by}${pol.rules[why.by].reason ? `: ${pol.rules[why.by].reason}` : ''}` : why.by === 'default' ? 'the default action' : 'architecture check';
  const reported = typeof why.by === 'number' && pol.rules[why.by].report ? ', reported' : '';
  process.stdout.write(`${name}(${args.map((x) => '0x' + x.toString(16)).join(', ')}) on ${a}: ${retName(got.ret)}${reported} after ${got.steps} instructions (${reason})\n`);
  if (got.ret !== why.ret) {
    process.stderr.write(`brig: internal error: the program says ${retName(got.ret)}, the model ${retName(why.ret)}\n`);
    return EXIT_BRIG_ERROR;
  }
  return 0;
}

/** The smallest policy that allows what was seen. */
export function learnedPolicy(calls: string[]): SeccompPolicy {
  return { defaultAction: 'kill-process', rules: [{ syscalls: [...calls].sort(), action: 'allow', reason: 'seen by brig seccomp learn' }] };
}

async function learn(argv: string[]): Promise<number> {
  const p = parseArgs(argv, learnSpecs, { interspersed: false });
  if (p.flags.has('help')) return help();
  if (!p.rest.length) throw new UsageError('no command given (brig seccomp learn [OPTIONS] -- COMMAND [ARG...])');
  const out = one(p, 'output');
  // Said before the program runs, not after.
  if (out) {
    const dir = dirname(resolve(out));
    if (!existsSync(dir)) throw new UsageError(`-o ${out}: the directory ${dir} does not exist`);
  }
  const format = one(p, 'format') ?? 'brig';
  if (format !== 'brig' && format !== 'docker') throw new UsageError(`--format: expected brig or docker, got ${JSON.stringify(format)}`);
  const opts = { ...sandboxOptions(p), seccomp: 'learn' as const };
  const result = await run(p.rest, opts);
  const why = explainStatus(result, opts.wallTimeLimitMs);
  if (why) process.stderr.write(`brig seccomp learn: ${why}\n`);
  if (result.status === 'setup-error') return exitCodeFor(result);
  const calls = result.seccompCalls ?? [];
  const names = calls.map((c) => c.syscall).filter((n) => !n.startsWith('nr '));
  const pol = learnedPolicy(names);
  const text =
    format === 'brig'
      ? JSON.stringify(pol, null, 2) + '\n'
      : JSON.stringify({ defaultAction: 'SCMP_ACT_KILL_PROCESS', architectures: [`SCMP_ARCH_${hostArch().toUpperCase()}`], syscalls: [{ names: pol.rules[0].syscalls, action: 'SCMP_ACT_ALLOW' }] }, null, 2) + '\n';
  if (out) {
    try {
      writeFileSync(out, text);
    } catch (e) {
      throw new UsageError(`-o ${out}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  else process.stdout.write(text);
  process.stderr.write(`brig seccomp learn: ${names.length} distinct syscalls seen (${calls.reduce((s, c) => s + c.count, 0)} calls); the program ${result.status === 'ok' ? 'exited 0' : `ended: ${result.status}`}${out ? `; policy written to ${out}` : ''}\n`);
  return exitCodeFor(result);
}

function help(): number {
  process.stdout.write(seccompHelp);
  return 0;
}

export async function seccompCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'dump') return dump(rest);
  if (sub === 'test') return test(rest);
  if (sub === 'learn') return learn(rest);
  if (sub === undefined || sub === '--help' || sub === '-h') return help();
  throw new UsageError(`unknown subcommand ${JSON.stringify(sub)} (dump, test or learn)`);
}
