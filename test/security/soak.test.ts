// 500 runs of the soak's mix (test/security/soak.ts; `npm run soak` does 10,000).
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { guardLeaks } from '../helpers.js';
import { KINDS, soak, summary } from './soak.js';

it('soak: 500 runs of a random mix, 4 at a time: every verdict right, nothing left', { timeout: 300_000 }, async (t) => {
  const seed = Number(process.env.BRIG_SOAK_SEED) || Date.now() % 2 ** 31;
  const r = await soak({ runs: 500, concurrency: 4, seed });
  t.diagnostic(summary(r));
  assert.deepEqual(r.wrong, [], `wrong verdicts (BRIG_SOAK_SEED=${seed} repeats the mix)`);
  for (const [name, k] of Object.entries(r.kinds)) assert.ok(k.runs > 0 && k.pooled > 0 && k.pooled < k.runs, `${name}: ${k.runs} runs, ${k.pooled} pooled`);
  assert.equal(Object.keys(r.kinds).length, Object.keys(KINDS).length);
  assert.deepEqual(r.leaks, { processes: [], fds: [], mountsChanged: false, cgroups: [], temp: [] });
});

guardLeaks();
