// Judge verdicts: small C programs under judge-style limits, every verdict
// and the figures it reports checked within stated tolerances.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { run, type SandboxOptions } from '../src/index.js';
import { RunCgroups } from '../src/cgroup/run.js';
import { isolateMeta } from '../src/launch/report.js';
import { descendantsSettled, guardLeaks } from './helpers.js';
import { probeMount } from './probe.js';

const mounts = [probeMount()];
const judge = (argv: string[], o: SandboxOptions = {}) => run(['/probe', ...argv], { mounts, cpuTimeLimitMs: 1000, wallTimeLimitMs: 5000, ...o });
const cpu = (r: { cpuTimeMs: { user: number; system: number } }) => r.cpuTimeMs.user + r.cpuTimeMs.system;
const cg = RunCgroups.create({ memoryBytes: 1 << 30, pids: 100 }, process.env.BRIG_CGROUP_PARENT || undefined);
const noCgroup = cg instanceof RunCgroups ? false : `skipped: ${cg.unavailable}`;
if (cg instanceof RunCgroups) await cg.remove();

describe('judge verdicts', () => {
  it('a correct submission: ok, with its answer', async () => {
    const r = await judge(['sum'], { stdin: '2 40\n' });
    assert.equal(r.status, 'ok');
    assert.equal(r.stdout.toString(), '42\n');
    assert.equal(r.killed, false);
  });

  it('an infinite loop: cpu-time-limit, killed within 50 ms of limit + extra', async () => {
    const r = await judge(['spin'], { cpuTimeLimitMs: 500 });
    assert.equal(r.status, 'cpu-time-limit');
    assert.equal(r.killed, true);
    assert.ok(cpu(r) >= 500 && cpu(r) < 550, `cpu ${cpu(r)} ms`);
    const x = await judge(['spin'], { cpuTimeLimitMs: 300, extraTimeMs: 200 });
    assert.equal(x.status, 'cpu-time-limit');
    assert.ok(cpu(x) >= 500 && cpu(x) < 550, `cpu ${cpu(x)} ms with 200 ms extra`);
  });

  it('sleeping forever: wall-time-limit, using no CPU', async () => {
    const r = await judge(['sleep'], { wallTimeLimitMs: 300 });
    assert.equal(r.status, 'wall-time-limit');
    assert.ok(cpu(r) < 50);
    assert.ok(r.wallTimeMs >= 300 && r.wallTimeMs < 1000, `wall ${r.wallTimeMs}`);
  });

  it('a memory bomb: memory-limit', { skip: noCgroup }, async () => {
    const r = await judge(['membomb'], { memory: '64m' });
    assert.equal(r.status, 'memory-limit');
    assert.ok(r.memoryPeakBytes! > 56 << 20 && r.memoryPeakBytes! <= 64 << 20, `peak ${r.memoryPeakBytes}`);
  });

  it('an output flood: output-limit, output cut at the cap', async () => {
    const r = await judge(['flood'], { outputLimitBytes: 1 << 20 });
    assert.equal(r.status, 'output-limit');
    assert.equal(r.stdout.length, 1 << 20);
    assert.ok(r.outputBytes > 1 << 20);
    assert.equal(r.killed, true);
  });

  it('a fork bomb: contained at the pids limit, nothing left', { skip: noCgroup }, async () => {
    const r = await judge(['forkbomb', '300'], { pids: 20 });
    assert.equal(r.status, 'ok');
    assert.equal(r.pidsLimitHit, true);
    assert.ok(r.pidsPeak! <= 20);
    assert.deepEqual(await descendantsSettled(), []);
  });

  it('a segfault: signaled SIGSEGV; exit 3: exit-nonzero', async () => {
    const s = await judge(['segv']);
    assert.equal(s.status, 'signaled');
    assert.equal(s.signal, 'SIGSEGV');
    assert.equal(s.killed, false);
    const e = await judge(['exit', '3']);
    assert.equal(e.status, 'exit-nonzero');
    assert.equal(e.exitCode, 3);
  });

  it('a two-thread CPU burner: both threads count toward the limit', async () => {
    const r = await judge(['burn', '2', '2000'], { cpuTimeLimitMs: 400 });
    assert.equal(r.status, 'cpu-time-limit');
    assert.ok(cpu(r) >= 400 && cpu(r) < 450, `cpu ${cpu(r)} ms`);
    assert.ok(r.wallTimeMs < cpu(r), 'two threads burn faster than the wall clock');
  });

  it('an orphan-leaver: nothing outlives the run', async () => {
    const r = await judge(['orphan']);
    assert.equal(r.status, 'ok');
    assert.equal(r.stdout.toString(), 'left one\n');
    assert.deepEqual(await descendantsSettled(), []);
  });

  it('a file-size bomb: file-size-limit', async () => {
    const r = await judge(['fsize'], { rlimits: { fsize: 1 << 20 } });
    assert.equal(r.status, 'file-size-limit');
    assert.equal(r.signal, 'SIGXFSZ');
  });

  it('writes the isolate meta format', async () => {
    const tle = isolateMeta(await judge(['spin'], { cpuTimeLimitMs: 200 }));
    assert.match(tle, /^time:0\.2\d\d$/m);
    assert.match(tle, /^status:TO$/m);
    assert.match(tle, /^message:Time limit exceeded$/m);
    assert.match(tle, /^killed:1$/m);
    assert.match(tle, /^exitsig:9$/m);
    const ok = isolateMeta(await judge(['sum'], { stdin: '1 2' }));
    assert.match(ok, /^exitcode:0$/m);
    assert.doesNotMatch(ok, /^status:/m);
    assert.match(ok, /^time-wall:\d+\.\d{3}$/m);
    assert.match(ok, /^csw-voluntary:\d+$/m);
    const re = isolateMeta(await judge(['exit', '3']));
    assert.match(re, /^status:RE\nmessage:Exited with error status 3$/m);
  });
});

guardLeaks();
