// Property-based fuzzing (fast-check) of everything that reads untrusted
// input before a sandbox starts: the profile validator, the option resolver
// with profiles applied, and the CLI's argument parser. Whatever comes in,
// the answer is a value or one of brig's own errors with a message; never a
// TypeError, a hang, or a sandbox started on bad input.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { BrigError } from '../../src/errors.js';
import { resolveOptions } from '../../src/launch/options.js';
import { applyProfile, validateProfile } from '../../src/profile/index.js';
import { parseArgs, UsageError } from '../../src/cli/args.js';
import { runSpecs, runTarget, sandboxOptions, sandboxSpecs } from '../../src/cli/run.js';
import { renderTemplate, parseFilters } from '../../src/cli/format.js';
import { describeError } from '../../src/cli/main.js';
import { run } from '../../src/index.js';
import { guardLeaks } from '../helpers.js';

// Image names the fuzzer makes up are looked up in an empty store of its own.
const store = mkdtempSync(join(tmpdir(), 'brig-fuzz-'));
process.env.BRIG_STORE = join(store, 'store');
after(() => rmSync(store, { recursive: true, force: true }));

const schema = JSON.parse(readFileSync(new URL('../../../profiles/schema.json', import.meta.url), 'utf8')) as { properties: Record<string, unknown> };
const KEYS = [...Object.keys(schema.properties), 'profile', 'stdin', 'timings', 'argv', 'memroy', '__proto__', 'constructor'];

// Values that are nearly right are where validators slip: wrong units, signs,
// sizes past 2^53, NUL bytes, relative paths, targets over /proc and /dev.
const tricky = fc.oneof(
  fc.constantFrom(-1, 0, 1, 0.5, 2 ** 53, 2 ** 64, Number.NaN, Infinity, -Infinity, '64m', '-1m', '1e999', '0x10', '', ' ', '\0', 'a\0b', '/proc', '/dev/x', 'rel/path', '../..', '/', null, true, [], {}),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.integer(),
  fc.double(),
  fc.array(fc.record({ source: fc.constantFrom('/etc', 'etc', '/nonexistent', '/\0'), target: fc.constantFrom('/x', 'x', '/proc/self', '/dev/sda', '/a/../b', '/'), readonly: fc.anything() }, { requiredKeys: [] }), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.constantFrom('unlimited', [1, 2], [-1, 'x'])), { maxKeys: 3 }),
  fc.anything(),
);
const options = fc.dictionary(fc.constantFrom(...KEYS), tricky, { maxKeys: 6 });

/** Runs fn: a value, or brig's own error with a message; anything else fails the property. */
function brigOrValue(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof BrigError) && !(e instanceof UsageError)) throw new Error(`not a brig error: ${(e as Error)?.stack ?? String(e)}`);
    assert.match(e.message, /\S/);
  }
}

describe('fuzzing what comes in before a sandbox starts', () => {
  it('the profile validator: any JSON value', () => {
    fc.assert(fc.property(fc.oneof(options, fc.jsonValue()), (v) => brigOrValue(() => validateProfile(v, 'fuzz'))), { numRuns: 2000 });
  });

  it('options with profiles applied: argv and every field', () => {
    const argv = fc.oneof(fc.constant(['/bin/true']), fc.array(fc.oneof(fc.string({ maxLength: 10 }), fc.constant('a\0b')), { maxLength: 3 }), fc.anything());
    fc.assert(
      fc.property(argv, options, (a, o) => brigOrValue(() => resolveOptions(a, applyProfile(o as never)))),
      { numRuns: 3000 },
    );
  });

  it('the CLI: any argv for brig run', () => {
    const word = fc.oneof(
      fc.constantFrom('--memory', '--time', '-p', '--profile', '-v', '--mount', '--tmpfs', '--rlimit', '--env', '-e', '--uid', '--cwd', '--network', '--', '-', '--x', '--memory=', '--rlimit=nofile=1:2', 'judge', 'nofile=-1', '64m', 'x:y:z'),
      fc.string({ maxLength: 12 }),
    );
    fc.assert(
      fc.property(fc.array(word, { maxLength: 8 }), (argv) =>
        brigOrValue(() => {
          const p = parseArgs(argv, sandboxSpecs);
          const o = sandboxOptions(p);
          if (p.rest.length) resolveOptions(p.rest, applyProfile(o));
        }),
      ),
      { numRuns: 3000 },
    );
  });

  it("the CLI's grammar: Docker's rules for any argv (combined short flags, --flag=value, flags anywhere, --)", () => {
    const word = fc.oneof(
      fc.constantFrom('-it', '-i', '-t', '-d', '-p', '-P', '-h', '-u', '-e', '-v', '-w', '-m', '-a', '-l', '-ie', '-eK=1', '-e=K', '-m=1m', '-hx', '--rm', '--rm=false', '--rm=maybe', '--name', '--name=', '--pids', '--pids-limit=0', '--cpuset', '--ulimit', 'nofile=0', 'nofile=8:4', '--mount', 'type=tmpfs,target=/x', 'type=bind', 'type=volume,source=v,target=/v,ro', '--tmpfs', '/x:size=1m,mode=1777', '/x:mode=9', '--security-opt', 'seccomp=unconfined', 'label=x', '--user', 'root:0', 'a:b', '--entrypoint', '', '--platform', 'linux/amd64', '--network=host', '--env-file', '/nonexistent', '--nofile', '--time', '1e3', '--extra-time', '--', '-', 'busybox:1', '/bin/true', 'x'.repeat(200)),
      fc.string({ maxLength: 12 }),
    );
    fc.assert(
      fc.property(fc.array(word, { maxLength: 10 }), fc.boolean(), (argv, interspersed) =>
        brigOrValue(() => {
          const p = parseArgs(argv, runSpecs, { interspersed });
          // Every value the parser keeps is one the user typed, in order.
          for (const values of p.opts.values()) for (const v of values) assert.ok(argv.some((a) => a === v || a.endsWith(v)), v);
          if (p.dashDash) assert.ok(argv.includes('--'));
          const t = runTarget(p, 'run');
          const o = sandboxOptions(p);
          if (t.image) o.image = t.image;
          if (t.command.length && !o.image) resolveOptions(t.command, applyProfile(o));
        }),
      ),
      { numRuns: 3000 },
    );
  });

  it('--format templates and --filter values: a string or a usage error, never a crash', () => {
    const tpl = fc.oneof(fc.string({ maxLength: 30 }), fc.array(fc.constantFrom('{{', '}}', '.', 'Id', 'json', ' ', '|', 'index', '"k"', 'upper', '.Config.Cmd', '\\t', 'range', '-'), { maxLength: 12 }).map((a) => a.join('')));
    const data = fc.oneof(fc.jsonValue(), fc.constant({ Id: 'x', Config: { Cmd: ['a'], Labels: { k: 'v' } } }));
    fc.assert(fc.property(tpl, data, (t, d) => brigOrValue(() => assert.equal(typeof renderTemplate(t, d), 'string'))), { numRuns: 3000 });
    fc.assert(fc.property(fc.array(fc.string({ maxLength: 12 }), { maxLength: 3 }), (f) => brigOrValue(() => parseFilters(f, ['reference', 'dangling']))), { numRuns: 500 });
  });

  it('any error becomes one line with one prefix', () => {
    const err = fc.oneof(fc.string(), fc.constant('brig run: brig run: doubled'), fc.string().map((m) => new Error(m)), fc.string().map((m) => new UsageError(`brig run: ${m}\nsecond line`)), fc.anything());
    fc.assert(
      fc.property(err, (e) => {
        const { line } = describeError('run', e);
        assert.ok(!line.includes('\n'), line);
        assert.ok(line.startsWith('brig run: ') && !line.startsWith('brig run: brig run:'), line);
      }),
      { numRuns: 1000 },
    );
  });

  it('run() refuses bad input before anything starts, naming the field', async () => {
    await assert.rejects(run(['/bin/true\0x']), /argv\[0\]: must not contain a NUL byte/);
    await assert.rejects(run(['/bin/true'], { env: { A: 'x\0y' } }), /env\.A: must not contain a NUL byte/);
    await assert.rejects(run(['/bin/true'], { memory: -1 }), /^OptionsError: memory: /);
    await assert.rejects(run(['/bin/true'], { uid: 2 ** 33 }), /uid: expected a whole number/);
    await assert.rejects(run(['/bin/true'], { mounts: [{ source: '/etc', target: '/proc/x' }] }), /mounts\[0\]\.target: must not be under \/proc or \/dev/);
    await assert.rejects(run(['/bin/true'], { cwd: 'tmp' }), /cwd: must be an absolute path/);
    const long = await run(['/bin/true', ...Array(300000).fill('0123456789')]);
    assert.equal(long.status, 'setup-error');
    assert.match(long.error!.message, /exec failed for \/bin\/true: E2BIG.*too large for execve/);
  });
});

guardLeaks();
