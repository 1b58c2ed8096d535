// A real suite as the yardstick: CPython's own regression tests (Debian's
// libpython3.11-testsuite) for the modules that touch the OS, run on the
// host as this (unprivileged) user and inside brig (profile python,
// loopback), with and without --writable-root. Every test that passes on the
// host must pass in brig, or be listed in DIFFERENCES with its reason.
//
//   npm run test:suites          (not part of npm test; .ci/run runs it once, unprivileged)
//
// Bounded in time: slow classes and tests that only wait or stress are left
// out (SKIPPED below says which and why); resources (network, cpu, ...) are
// denied, so nothing reaches beyond loopback.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { run, type SandboxOptions } from '../../src/index.js';
import { guardLeaks, isRoot } from '../helpers.js';

const here = dirname(fileURLToPath(import.meta.url));
const runner = join(here, '../../../test/suites/pytests.py');
const TESTS = '/usr/lib/python3.11/test/test_os.py';

/** Classes or tests left out to keep the whole check to a few minutes, and why. */
export const SKIPPED: Record<string, string> = {
  'test_signal: StressTest, ItimerTest': 'stress loops and busy-wait timers: tens of seconds of CPU on a 2-CPU machine, nothing a sandbox changes',
  'test_subprocess: ProcessTestCase, ProcessTestCaseNoPoll': 'the same checks as POSIXProcessTestCase and RunFuncTestCase through another API (kept), 3x the time',
  'test_multiprocessing_fork: all but the Process, Queue, Lock, Pool and SharedMemory classes; test_many_processes': 'the full module takes minutes; the kept classes start processes, share memory (/dev/shm) and pass data over pipes and semaphores',
  'test_socket: resource-gated tests': "the 'network' resource is denied: those tests would reach hosts beyond loopback",
};

const MODULES = [
  'test_os',
  'test_posix',
  'test_time',
  'test_signal!StressTest,ItimerTest',
  'test_subprocess!ProcessTestCase,ProcessTestCaseNoPoll',
  'test_socket',
  'test_resource',
  'test_mmap',
  'test_select',
  'test_threading',
  'test_pty',
  'test_tempfile',
  'test_shutil',
  ...['Process!test_many_processes', 'Queue', 'Lock', 'Pool', 'SharedMemory'].map((c) => `test_multiprocessing_fork.WithProcessesTest${c}`),
];

/**
 * Tests that pass on the host and not in brig, by configuration, with the
 * reason. A test id ending in '*' matches every test it prefixes.
 */
const SINGLE_MAP_CHOWN =
  "chown to a uid outside the sandbox's single-id map: the kernel answers EINVAL (the id has no mapping) where the host, and Docker's full map, answer EPERM; --id-map multi (65536 ids, newuidmap) gives EPERM";
const SINGLE_MAP_SETID =
  "the child's setuid/setgid(65534) with a single-id map: the kernel answers EINVAL (no mapping for 65534) and the test accepts only EPERM or EACCES; --id-map multi maps it";
const SINGLE_MAP: Record<string, string> = {
  'test.test_os.ChownFileTests.test_chown_without_permission': SINGLE_MAP_CHOWN,
  'test.test_subprocess.POSIXProcessTestCase.test_user': SINGLE_MAP_SETID,
  'test.test_subprocess.POSIXProcessTestCase.test_group': SINGLE_MAP_SETID,
};
export const DIFFERENCES: Record<'brig' | 'brig --writable-root', Record<string, string>> = {
  brig: { ...SINGLE_MAP },
  'brig --writable-root': { ...SINGLE_MAP },
};

interface ModuleResult {
  module: string;
  run: number;
  passed: string[];
  failed: string[];
  skipped: number;
  seconds: number;
  slow: [string, number][];
  detail?: [string, string][];
}

function parse(out: string): ModuleResult | undefined {
  const line = out.split('\n').find((l) => l.startsWith('PYTESTS '));
  return line ? (JSON.parse(line.slice(8)) as ModuleResult) : undefined;
}

const env = { LC_ALL: 'C.UTF-8', PYTHONDONTWRITEBYTECODE: '1', PYTHONIOENCODING: 'utf-8', PYTHONHASHSEED: '0', PATH: '/usr/local/bin:/usr/bin:/bin', PYTESTS_DETAIL: '1' };
const LIMIT_MS = 240_000;

function onHost(spec: string, cwd: string): Promise<{ result?: ModuleResult; raw: string }> {
  return new Promise((resolve) => {
    const p = spawn('python3', [runner, spec], { cwd, env: { ...env, HOME: cwd, TMPDIR: cwd }, stdio: ['ignore', 'pipe', 'pipe'], timeout: LIMIT_MS });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d));
    p.stderr.on('data', (d: Buffer) => (err += d));
    p.on('close', () => resolve({ result: parse(out), raw: out + err.slice(-2000) }));
  });
}

async function inBrig(spec: string, extra: SandboxOptions): Promise<{ result?: ModuleResult; raw: string }> {
  const r = await run(['python3', '/suite/pytests.py', spec], {
    profile: 'python',
    network: 'loopback',
    mounts: [{ source: dirname(runner), target: '/suite' }],
    env: { ...env, HOME: '/tmp' },
    cwd: '/tmp',
    tmpSize: '512m',
    wallTimeLimitMs: LIMIT_MS,
    ...extra,
  });
  const out = r.stdout.toString();
  return { result: parse(out), raw: `status ${r.status} ${r.error?.message ?? ''}\n${out}${r.stderr.toString().slice(-2000)}` };
}

/** One test, by id, run again alone in brig: twice at most. */
async function passesAlone(id: string, extra: SandboxOptions): Promise<boolean> {
  for (let attempt = 0; attempt < 2; attempt++) {
    const again = await inBrig(id.replace(/^test\./, ''), extra);
    if (again.result?.passed.includes(id)) return true;
  }
  return false;
}

const known = (table: Record<string, string>, id: string) => Object.entries(table).find(([k]) => (k.endsWith('*') ? id.startsWith(k.slice(0, -1)) : id === k))?.[1];

const skip = !existsSync(TESTS) ? 'skipped: no CPython test suite (apt-get install libpython3.11-testsuite)' : isRoot ? 'skipped: runs as an unprivileged user (the host half would run as root); .ci/run runs it so' : false;

describe('CPython 3.11 regression tests: host against brig', { skip }, () => {
  const work = skip ? '' : mkdtempSync(join(tmpdir(), 'brig-suites-'));
  after(() => work && rmSync(work, { recursive: true, force: true }));
  const rows: string[][] = [];
  const notes: string[] = [];

  for (const spec of MODULES) {
    it(spec, async () => {
      const cwd = mkdtempSync(join(work, 'host-'));
      chmodSync(cwd, 0o700);
      // The three at once: most of these tests wait (timeouts, sleeps,
      // children) more than they compute, and each has its own files and,
      // in brig, its own network namespace.
      const configs = [
        ['brig', {}],
        ['brig --writable-root', { writableRoot: true }],
      ] as const;
      const [host, ...inside] = await Promise.all([onHost(spec, cwd), ...configs.map(([, extra]) => inBrig(spec, extra))]);
      assert.ok(host.result, `${spec} on the host printed no result:\n${host.raw}`);
      const row = [spec.replace(/!.*/, ' (part)'), String(host.result.run), String(host.result.passed.length)];
      const problems: string[] = [];
      for (const [i, [config]] of configs.entries()) {
        const b = inside[i];
        assert.ok(b.result, `${spec} in ${config} printed no result:\n${b.raw}`);
        const passed = new Set(b.result.passed);
        row.push(String(b.result.passed.length));
        for (const id of host.result.passed.filter((t) => !passed.has(t))) {
          const why = known(DIFFERENCES[config], id);
          if (why) {
            notes.push(`${config}: ${id}: ${why}`);
            continue;
          }
          // As regrtest's own rerun of failed tests: a test that passes when run
          // again alone failed on timing under load (test_get's 0.1 s sleep on
          // a busy 2-CPU host), not on the sandbox; a real difference fails
          // every time. Said in the notes, never silently dropped.
          if (await passesAlone(id, configs[i][1])) {
            notes.push(`${config}: ${id}: failed in the module's run, passed run again alone (timing under load)`);
            continue;
          }
          problems.push(`${config}: ${id} passes on the host, not in brig\n${b.result.detail?.find(([t]) => t === id || t.startsWith(id + ' '))?.[1] ?? '(skipped or not run)'}`);
        }
        const gained = b.result.passed.filter((t) => !host.result!.passed.includes(t));
        if (gained.length) notes.push(`${config}: ${gained.length} passed only in brig (${gained.slice(0, 3).join(', ')}${gained.length > 3 ? ', ...' : ''})`);
        row.push(`${b.result.seconds}s`);
      }
      row.splice(3, 0, `${host.result.seconds}s`);
      rows.push(row);
      assert.deepEqual(problems, []);
    });
  }

  after(() => {
    if (!rows.length) return;
    const head = ['module', 'tests', 'passed on host', 'host time', 'passed in brig', 'brig time', 'passed, --writable-root', 'time'];
    const lines = [head, ...rows].map((r) => `| ${r.join(' | ')} |`);
    lines.splice(1, 0, `|${head.map(() => '---').join('|')}|`);
    const text = [...lines, '', ...notes.map((n) => `- ${n}`)].join('\n') + '\n';
    process.stdout.write('\n' + text);
    mkdirSync(join(here, '../../../bench/results'), { recursive: true });
    writeFileSync(join(here, '../../../bench/results/suites.md'), text);
  });
});

guardLeaks();
