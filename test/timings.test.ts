// RunResult.timings: where a launch's time goes, phase by phase, so that a
// regression can be located. Figures are checked for shape and consistency,
// never against a time budget (that is the benchmark's job).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createPool, run } from '../src/index.js';
import { setSkeletons } from '../src/launch/skeleton.js';
import { guardLeaks, heldSettled } from './helpers.js';

const finite = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v >= 0;

describe('timings', () => {
  it('are only there when asked for', async () => {
    assert.equal((await run(['/bin/true'])).timings, undefined);
  });

  // A plan's first run builds its root step by step and has its skeleton
  // made; the runs after it clone the skeleton.
  for (const skeleton of [true, false])
    it(`cover every phase of a fresh launch, with the steps inside the sandbox by name (${skeleton ? 'root from the skeleton' : 'root built'})`, async () => {
      setSkeletons(skeleton);
      try {
        await run(['/bin/true']);
        await heldSettled();
        const t0 = performance.now();
        const r = await run(['/bin/true'], { timings: true });
        const wall = performance.now() - t0;
        const t = r.timings!;
        for (const k of ['planMs', 'convertMs', 'cloneMs', 'mapsMs', 'releaseMs', 'sandboxSetupMs', 'programMs', 'runMs', 'resultMs', 'exitToResultMs'] as const) assert.ok(finite(t[k]), `${k}: ${t[k]}`);
        assert.equal(t.pooled, false);
        assert.equal(t.skeleton, skeleton);
        assert.ok(t.cloneMs > 0);
        const root = skeleton ? ['skeleton'] : ['root-tmpfs', 'host-bind', 'etc-copy', 'dev-tmpfs', 'dev-bind', 'dev-readonly'];
        for (const step of ['mount-private', 'scaffold-tmpfs', ...root, 'proc', 'devpts', 'tmp-tmpfs', 'hostname', 'pivot-root', 'root-readonly', 'fork', 'rlimit', 'drop-capabilities', 'chdir'])
          assert.ok(finite(t.steps[step]), `step ${step}: ${t.steps[step]}`);
        const absent = skeleton ? ['root-tmpfs', 'host-bind', 'etc-copy', 'dev-bind', 'symlink', 'mount-target'] : ['skeleton'];
        for (const step of absent) assert.equal(t.steps[step], undefined, `step ${step} is not run`);
        const stepSum = Object.values(t.steps).reduce((a, b) => a + b, 0);
        assert.ok(stepSum <= t.sandboxSetupMs + 0.05, `steps ${stepSum} within setup ${t.sandboxSetupMs}`);
        const parts = t.planMs + t.convertMs + t.cloneMs + t.mapsMs + t.releaseMs + t.runMs + t.resultMs;
        assert.ok(parts <= wall + 0.05, `phases ${parts} within the run's ${wall} ms`);
        assert.ok(t.exitToResultMs < t.runMs);
      } finally {
        setSkeletons(true);
      }
    });

  it('say when a sandbox came from a pool: no clone or maps on the run, setup ahead', async () => {
    const pool = createPool({ size: 1 });
    try {
      await new Promise((r) => setTimeout(r, 30));
      const r = await pool.run(['/bin/true'], { timings: true });
      const t = r.timings!;
      assert.equal(t.pooled, true);
      assert.equal(t.cloneMs, 0);
      assert.equal(t.mapsMs, 0);
      assert.equal(t.steps['mount-private'], undefined, 'mounts were done ahead');
      assert.ok(finite(t.steps['drop-capabilities']));
      assert.ok(finite(t.programMs) && finite(t.exitToResultMs));
    } finally {
      await pool.close();
    }
  });
});

guardLeaks();
