// Jobs from warm pools: each pooled sandbox has a slot directory of its
// own, so a job sees its own files at /box and nobody else's (from inside
// the sandbox), a run's /box is read-only, compiled output reaches the run,
// and every slot is removed: after each job, and at close.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createPool } from '../src/launch/pool.js';
import type { ServiceContext } from '../src/server/context.js';
import { mergeConfig } from '../src/server/config.js';
import { executeJob, JobPools, type ExecuteJob } from '../src/server/execute.js';
import { parsePistonRequest } from '../src/server/piston.js';
import { loadRuntimes, SHIPPED_RUNTIME_DIR } from '../src/server/runtimes.js';
import { guardLeaks } from './helpers.js';

const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('slot pools (createPool with slot)', () => {
  it('each sandbox has its own directory at the slot; the holder fills it before the run; release removes it', async () => {
    const root = mkdtempSync(join(tmpdir(), 'brig-slot-test-'));
    const pool = createPool({ profile: 'judge', size: 2, cwd: '/box', slot: { target: '/box', readonly: true, root } });
    try {
      await settle(300);
      await assert.rejects(pool.run(['/bin/true']), /slot/);
      const a = pool.lease();
      const b = pool.lease();
      assert.ok(a.warm && b.warm, 'both leases got sandboxes made ahead');
      assert.notEqual(a.dir, b.dir);
      writeFileSync(join(a.dir, 'mine-a'), 'A\n');
      writeFileSync(join(b.dir, 'mine-b'), 'B');
      const [ra, rb] = await Promise.all([
        a.run(['/bin/sh', '-c', 'ls /box; cat /box/mine-a; echo x > /box/w 2>/dev/null && echo WROTE || echo readonly']),
        b.run(['/bin/sh', '-c', 'ls /box']),
      ]);
      assert.equal(ra.stdout.toString(), 'mine-a\nA\nreadonly\n');
      assert.equal(rb.stdout.toString(), 'mine-b\n');
      await assert.rejects(a.run(['/bin/true']), /one command/);
      a.release();
      b.release();
      assert.ok(!existsSync(a.dir) && !existsSync(b.dir));
      // A lease that never ran: its sandbox is ended and its directory removed.
      await settle(300);
      const unused = pool.lease();
      unused.release();
      assert.ok(!existsSync(unused.dir));
    } finally {
      await pool.close();
    }
    // close() removed the slots of the sandboxes still waiting.
    assert.deepEqual(readdirSync(root), []);
    rmSync(root, { recursive: true });
  });

  it('a lease with no sandbox ready starts one cold with its directory bound the same way', async () => {
    const root = mkdtempSync(join(tmpdir(), 'brig-slot-test-'));
    const pool = createPool({ profile: 'judge', size: 0, slot: { target: '/box', root } });
    try {
      const l = pool.lease();
      assert.equal(l.warm, false);
      const r = await l.run(['/bin/sh', '-c', 'echo hi > /box/out']);
      assert.equal(r.status, 'ok', r.stderr.toString());
      assert.equal(readdirSync(l.dir).join(), 'out');
      l.release();
    } finally {
      await pool.close();
    }
    assert.deepEqual(readdirSync(root), []);
    rmSync(root, { recursive: true });
  });

  it('refuses a bad slot, naming the field', () => {
    assert.throws(() => createPool({ size: 0, slot: { target: 'box' } }), /slot\.target/);
    assert.throws(() => createPool({ size: 0, slot: { target: '/box', root: 'rel' } }), /slot\.root/);
  });
});

describe('service jobs from warm pools', () => {
  const set = loadRuntimes([SHIPPED_RUNTIME_DIR]);
  const ctx = { config: mergeConfig({}), runtimes: set.available } as unknown as ServiceContext;
  let root: string;
  let pools: JobPools;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'brig-jobpools-test-'));
    pools = new JobPools(root, 2);
  });
  after(async () => {
    await pools.close();
    // Every slot, waiting or used, is gone.
    assert.deepEqual(readdirSync(root), []);
    rmSync(root, { recursive: true });
  });
  const job = (body: object) => parsePistonRequest({ version: '*', ...body }, ctx);
  const exec = (p: { runtime: ReturnType<typeof job>['runtime']; job: ExecuteJob }) => executeJob(p.runtime, p.job, pools);

  it('jobs at once each see only their own files at /box, read-only, and leave no slot behind', async () => {
    const lister = 'import os\nprint(sorted(os.listdir("/box")))\ntry:\n  open("/box/x", "w")\n  print("wrote")\nexcept OSError as e:\n  print("refused", e.errno)\n';
    await exec(job({ language: 'python', files: [{ content: 'print(1)' }] })); // the pools for this shape exist now
    await settle(300);
    const jobs = [1, 2, 3, 4].map((i) => job({ language: 'python', files: [{ name: 'main.py', content: lister }, { name: `secret-${i}.txt`, content: String(i) }] }));
    const rs = await Promise.all(jobs.map(exec));
    rs.forEach((r, i) => assert.equal(r.run?.stdout.toString(), `['main.py', 'secret-${i + 1}.txt']\nrefused 30\n`, r.run?.stderr.toString()));
    assert.ok(pools.stats.taken >= 2, `some jobs took warm sandboxes: ${JSON.stringify(pools.stats)}`);
    // Only the slots of sandboxes waiting in the pools remain (at most 2 per pool), all empty.
    await settle(300);
    const left = readdirSync(root);
    assert.ok(left.length <= 2 * pools.stats.pools, left.join());
    for (const d of left) assert.deepEqual(readdirSync(join(root, d)), [], `a waiting sandbox's slot is empty: ${d}`);
  });

  it('C: the compile stage writes into its slot; the run gets the output read-only and not the compile slot', async () => {
    const src = '#include <stdio.h>\n#include <dirent.h>\nint main(void){DIR*d=opendir("/box");struct dirent*e;int n=0;while((e=readdir(d)))if(e->d_name[0]!=\'.\')n++;printf("%d %s\\n",n,fopen("/box/new","w")?"wrote":"refused");return 0;}\n';
    const rs = await Promise.all([1, 2].map(() => exec(job({ language: 'c', files: [{ name: 'main.c', content: src }] }))));
    for (const r of rs) {
      assert.equal(r.compile?.status, 'ok', r.compile?.stderr.toString());
      // main.c and the compiled program: the other job's are not there.
      assert.equal(r.run?.stdout.toString(), '2 refused\n');
    }
  });

  it('number_of_runs: every run gets its own copy of the compiled program', async () => {
    const p = job({ language: 'c', files: [{ name: 'main.c', content: '#include <stdio.h>\nint main(void){puts("again");return 0;}\n' }] });
    const r = await executeJob(p.runtime, { ...p.job, runs: 3 }, pools);
    assert.equal(r.allRuns?.length, 3);
    for (const x of r.allRuns!) assert.equal(x.stdout.toString(), 'again\n');
  });

  it('a job with limits of its own gets a pool of its own; cold pools (size 0) give the same results', async () => {
    const before = pools.stats.pools;
    const p = job({ language: 'python', files: [{ content: 'print("mem")' }], run_memory_limit: 200_000_000 });
    assert.equal((await exec(p)).run?.stdout.toString(), 'mem\n');
    assert.equal(pools.stats.pools, before + 1);
    const cold = new JobPools(root, 0);
    const r = await executeJob(p.runtime, p.job, cold);
    assert.equal(r.run?.stdout.toString(), 'mem\n');
    assert.equal(cold.stats.made, 0);
    await cold.close();
  });
});

guardLeaks();
