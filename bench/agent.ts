// `brig run` from a shell: through the agent (`brig` as installed: a symlink
// to the native client; and the checkout's bin/brig script), the Node CLI
// (BRIG_NO_AGENT=1), bubblewrap's CLI, isolate's init + run + cleanup cycle
// (when BRIG_BENCH_ISOLATE names an isolate binary built from its source:
// docs/agent.md says how) and a plain exec, each driven by a bash loop and
// timed around the loop, in the same run; then a judge loop: 100 runs of a C
// program that reads two numbers on stdin and prints their sum, driven from
// bash, answers checked.
//
// Per-run time = (loop time - the same loop with no command) / runs. Rounds
// alternate between the commands and the median round counts, as the other
// engineers' work moves this 2-CPU machine's timings. Figures: ratios.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { probe } from '../test/probe.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '../..');
const binBrig = join(repo, 'bin/brig');
const client = join(repo, 'build/Release/brig-client');
const brigNode = join(repo, 'bin/brig-node');
// isolate, built from its source (docs/agent.md), with a box of the bench's own.
const isolate = process.env.BRIG_BENCH_ISOLATE;
const isolateBox = Number(process.env.BRIG_BENCH_ISOLATE_BOX ?? 91);
const runs = Number(process.env.BRIG_BENCH_AGENT_RUNS ?? 50);
const judgeRuns = Number(process.env.BRIG_BENCH_JUDGE_RUNS ?? 100);
const rounds = 3;
const hasBwrap = spawnSync('sh', ['-c', 'command -v bwrap']).status === 0;
const bwrapArgs = ['--unshare-all', '--die-with-parent', '--new-session', '--ro-bind', '/usr', '/usr', '--symlink', 'usr/lib', '/lib', '--symlink', 'usr/lib64', '/lib64', '--symlink', 'usr/bin', '/bin', '--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp'];

const runtime = mkdtempSync(join(tmpdir(), 'bench-agent-'));
// `brig` as installed (npm's bin link, or ~/.local/bin/brig): a symlink to the client.
mkdirSync(join(runtime, 'bin'));
symlinkSync(client, join(runtime, 'bin/brig'));
const brig = join(runtime, 'bin/brig');
const env: NodeJS.ProcessEnv = { ...process.env, XDG_RUNTIME_DIR: runtime, BRIG_AGENT_IDLE: '60' };
delete env.BRIG_NO_AGENT;

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** ms for `n` iterations of `body` in one bash, `$i` the iteration. */
function loop(body: string, n: number, extraEnv: NodeJS.ProcessEnv = {}): number {
  const script = `for i in $(seq ${n}); do ${body}; done`;
  const t0 = performance.now();
  const r = spawnSync('/bin/bash', ['-c', script], { env: { ...env, ...extraEnv }, stdio: ['ignore', 'ignore', 'inherit'] });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`loop failed (${r.status}): ${script}`);
  return ms;
}

interface Row {
  name: string;
  body: string;
  n: number;
  env?: NodeJS.ProcessEnv;
  perRunMs?: number;
}

function measure(rows: Row[]): void {
  const samples = new Map<string, number[]>(rows.map((r) => [r.name, []]));
  for (let round = 0; round < rounds; round++) {
    for (const r of rows) {
      const empty = loop(':', r.n);
      samples.get(r.name)!.push((loop(r.body, r.n, r.env) - empty) / r.n);
    }
  }
  for (const r of rows) {
    const s = samples.get(r.name)!.sort((a, b) => a - b);
    r.perRunMs = s[Math.floor(s.length / 2)];
  }
}

function print(rows: Row[], base: string): void {
  const b = rows.find((r) => r.name === base)!.perRunMs!;
  const w = Math.max(...rows.map((r) => r.name.length));
  for (const r of rows) console.log(`${r.name.padEnd(w)}  ${r.perRunMs!.toFixed(2).padStart(8)} ms/run  ${(r.perRunMs! / b).toFixed(2).padStart(7)}x ${base}`);
}

/** Whether isolate's cycle works here; if not, exactly why (its own error). */
function isolateWorks(): string | null {
  if (!isolate) return 'BRIG_BENCH_ISOLATE not set';
  const r = spawnSync('/bin/bash', ['-c', `${isolateCycle('/bin/true')}`], { env, encoding: 'utf8' });
  return r.status === 0 ? null : `isolate's cycle failed (exit ${r.status}): ${(r.stderr || r.stdout).trim().split('\n').pop()}`;
}

/** isolate --init, --run (silent, with the given options and command), --cleanup: the cycle a judge runs per test. */
function isolateCycle(command: string, run: { options?: string; stdinFrom?: string; appendTo?: string } = {}): string {
  const i = `${q(isolate!)} --box-id=${isolateBox}`;
  const stdin = run.stdinFrom ? `${run.stdinFrom} | ` : '';
  const stdout = run.appendTo ? ` >> ${q(run.appendTo)}` : '';
  return `${i} --init >/dev/null && ${stdin}${i} --silent ${run.options ?? ''} --run -- ${command}${stdout} && ${i} --cleanup`;
}

function main(): void {
  // Start the agent and let its warm pools fill.
  for (let i = 0; i < 10; i++) spawnSync(brig, ['run', '--', '/bin/true'], { env });
  const isolateWhyNot = isolateWorks();
  const hasIsolate = isolateWhyNot === null;

  const start: Row[] = [
    { name: 'plain /bin/true', body: '/bin/true', n: runs },
    { name: 'node -e 0', body: `${q(process.execPath)} -e 0`, n: Math.max(5, runs / 5) },
    ...(hasBwrap ? [{ name: 'bwrap --unshare-all /bin/true', body: `bwrap ${bwrapArgs.join(' ')} /bin/true`, n: runs }] : []),
    ...(hasIsolate ? [{ name: 'isolate init+run+cleanup', body: isolateCycle('/bin/true'), n: runs }] : []),
    { name: 'brig run (agent, brig)', body: `brig run -- /bin/true`, n: runs, env: { PATH: `${join(runtime, 'bin')}:${env.PATH}` } },
    { name: 'brig run (agent, bin/brig sh)', body: `${q(binBrig)} run -- /bin/true`, n: runs },
    { name: 'brig run (Node CLI)', body: `${q(brig)} run -- /bin/true`, n: Math.max(5, runs / 5), env: { BRIG_NO_AGENT: '1' } },
    { name: 'node bin/brig-node run', body: `${q(process.execPath)} -- ${q(brigNode)} run -- /bin/true`, n: Math.max(5, runs / 5) },
  ];
  measure(start);
  console.log(`\nbrig run -- /bin/true from bash: per run, median of ${rounds} rounds (${runs} runs each; node rows fewer)\n`);
  print(start, 'plain /bin/true');
  const per = (name: string) => start.find((r) => r.name === name)?.perRunMs;
  const agent = per('brig run (agent, brig)')!;
  const bwrap = per('bwrap --unshare-all /bin/true');
  const isolateRun = per('isolate init+run+cleanup');
  const nodeStart = per('node -e 0')!;
  console.log(`\nNode CLI start vs node -e 0 (issue 20's goal: 1.3x): node bin/brig-node run ${(per('node bin/brig-node run')! / nodeStart).toFixed(2)}x, through bin/brig with BRIG_NO_AGENT=1 ${(per('brig run (Node CLI)')! / nodeStart).toFixed(2)}x`);
  console.log(`agent vs Node CLI: ${(per('brig run (Node CLI)')! / agent).toFixed(1)}x faster; agent vs plain exec: ${(agent / per('plain /bin/true')!).toFixed(2)}x (goal 3x)${bwrap ? `; agent vs bwrap: ${(agent / bwrap).toFixed(2)}x` : '; bubblewrap not installed'}`);
  console.log(isolateRun ? `agent vs isolate's init+run+cleanup: ${(agent / isolateRun).toFixed(2)}x (goal 0.5x)` : `isolate: not measured (${isolateWhyNot})`);

  // The judge loop: a C program reading stdin, 100 runs, answers checked.
  const bin = probe();
  const outFile = join(runtime, 'answers');
  const judgeBody = (cmd: string) => `echo "$i $((i+1))" | ${cmd} >> ${q(outFile)}`;
  const limits = '--time 1 --wall-time 3 --fsize 1m';
  const judge: Row[] = [
    { name: 'plain exec', body: judgeBody(`${q(bin)} sum`), n: judgeRuns },
    ...(hasBwrap ? [{ name: 'bwrap --unshare-all', body: judgeBody(`bwrap ${bwrapArgs.join(' ')} --ro-bind ${q(bin)} /probe /probe sum`), n: judgeRuns }] : []),
    // The same limits as brig's: 1 s CPU, 3 s wall, 1 MiB files (isolate's -f is in KiB).
    ...(hasIsolate ? [{ name: 'isolate init+run+cleanup', body: isolateCycle(`/probe/${basename(bin)} sum`, { options: `--time=1 --wall-time=3 --fsize=1024 --dir=/probe=${q(dirname(bin))}`, stdinFrom: 'echo "$i $((i+1))"', appendTo: outFile }), n: judgeRuns }] : []),
    { name: 'brig run (agent)', body: judgeBody(`${q(brig)} run ${limits} -v ${q(bin)}:/probe -- /probe sum`), n: judgeRuns },
    { name: 'brig run (Node CLI)', body: judgeBody(`${q(brig)} run ${limits} -v ${q(bin)}:/probe -- /probe sum`), n: Math.max(5, judgeRuns / 5), env: { BRIG_NO_AGENT: '1' } },
  ];
  const samples = new Map<string, number[]>(judge.map((r) => [r.name, []]));
  for (let round = 0; round < rounds; round++) {
    for (const r of judge) {
      rmSync(outFile, { force: true });
      const empty = loop(':', r.n);
      samples.get(r.name)!.push(loop(r.body, r.n, r.env) - empty);
      const got = readFileSync(outFile, 'utf8');
      const want = Array.from({ length: r.n }, (_, k) => `${2 * (k + 1) + 1}\n`).join('');
      if (got !== want) throw new Error(`${r.name}: wrong answers`);
    }
  }
  for (const r of judge) {
    const s = samples.get(r.name)!.sort((a, b) => a - b);
    r.perRunMs = s[Math.floor(s.length / 2)] / r.n;
  }
  console.log(`\njudge loop from bash: ${judgeRuns} runs of a C program reading stdin (answers checked), per run; brig with ${limits}\n`);
  print(judge, 'plain exec');
  const jAgent = judge.find((r) => r.name === 'brig run (agent)')!.perRunMs!;
  const jIsolate = judge.find((r) => r.name === 'isolate init+run+cleanup')?.perRunMs;
  if (jIsolate) console.log(`agent vs isolate's cycle: ${(jAgent / jIsolate).toFixed(2)}x`);
  console.log(`\n${judgeRuns} runs: agent ${((jAgent * judgeRuns) / 1000).toFixed(2)} s, Node CLI ${((judge.find((r) => r.name === 'brig run (Node CLI)')!.perRunMs! * judgeRuns) / 1000).toFixed(2)} s`);

  const out = join(repo, 'bench/results');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'agent.json'), JSON.stringify({ date: new Date().toISOString(), uid: process.getuid!(), isolate: isolateWhyNot ?? isolate, runs, judgeRuns, rounds, start: start.map(({ name, perRunMs }) => ({ name, perRunMs })), judge: judge.map(({ name, perRunMs }) => ({ name, perRunMs })) }, null, 2) + '\n');
  console.log('written: bench/results/agent.json');
}

try {
  main();
} finally {
  // Stop the bench's own agent (pid from its log) and remove its runtime dir.
  try {
    for (const m of readFileSync(join(runtime, 'brig/agent.log'), 'utf8').matchAll(/brig agent (\d+): listening/g)) {
      try {
        process.kill(Number(m[1]), 'SIGTERM');
      } catch {
        // already gone
      }
    }
  } catch {
    // no agent was started
  }
  setTimeout(() => rmSync(runtime, { recursive: true, force: true }), 500);
}
