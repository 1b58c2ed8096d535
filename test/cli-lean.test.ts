// `brig run` loads only what the run needs (issue 20): not pino without a log
// level, not the ajv profile validator for a shipped profile, not the image
// store without an image, not Node's net, child_process or crypto modules,
// and the default seccomp policy comes compiled from the build. Each check has
// its positive twin, so the trace is known to see what it is asked about.
// The module graph is checked on dist/src as ES modules (where each module is
// a file the trace sees); bin/brig-node runs the same graph bundled in one file
// (dist/cli.cjs, scripts/bundle-cli.mjs), checked to load nothing of dist/src;
// `brig run` from dist/cli-run.cjs, with a code cache only when it is newer
// than its bundle, and dist/src when the bundles are missing or stale.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { brigBin, guardLeaks } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'brig-lean-'));
after(() => rmSync(work, { recursive: true, force: true }));
const env: NodeJS.ProcessEnv = { ...process.env, BRIG_STORE: join(work, 'store'), BRIG_NO_AGENT: '1', BRIG_DEBUG: '' };
delete env.BRIG_LOG_LEVEL;

// Every module file the process loads: static imports through a loader hook,
// require() (pino, the lazily required brig modules, what they require)
// through Module._load; and at exit Node's own modules it loaded (builtin:NAME).
const hooks = join(work, 'hooks.mjs');
const trace = join(work, 'trace.cjs');
writeFileSync(hooks, `import { appendFileSync } from 'node:fs';\nexport async function load(url, ctx, next) { if (url.startsWith('file:')) appendFileSync(process.env.LEAN_LOG, new URL(url).pathname + '\\n'); return next(url, ctx); }\n`);
writeFileSync(join(work, 'register.mjs'), `import { register } from 'node:module';\nregister(${JSON.stringify('file://' + hooks)});\n`);
writeFileSync(
  trace,
  `const Module = require('node:module'); const { appendFileSync } = require('node:fs'); const load = Module._load;\n` +
    `Module._load = function (request, parent, isMain) { try { appendFileSync(process.env.LEAN_LOG, Module._resolveFilename(request, parent, isMain) + '\\n'); } catch {} return load.apply(this, arguments); };\n` +
    `process.on('exit', () => appendFileSync(process.env.LEAN_LOG, process.moduleLoadList.filter((m) => m.startsWith('NativeModule ')).map((m) => 'builtin:' + m.slice(13) + '\\n').join('')));\n`,
);

// The CLI from dist/src's ES modules, as bin/brig-node runs it without a bundle.
const unbundled = join(work, 'brig-src.mjs');
writeFileSync(unbundled, `import { main } from ${JSON.stringify(new URL('../src/cli/main.js', import.meta.url).href)};\nprocess.exitCode = await main(process.argv.slice(2));\n`);

let n = 0;
// esmHook: off to see which of Node's own modules a run loads (the hook's
// loader thread loads node:net itself).
function loadedBy(args: string[], entry = unbundled, esmHook = true): { status: number | null; stderr: string; loaded: string[] } {
  const log = join(work, `loaded-${n++}.txt`);
  writeFileSync(log, '');
  const r = spawnSync(process.execPath, ['--require', trace, ...(esmHook ? ['--import', join(work, 'register.mjs')] : []), '--', entry, ...args], { env: { ...env, LEAN_LOG: log }, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stderr: r.stderr, loaded: readFileSync(log, 'utf8').split('\n').filter(Boolean) };
}
const has = (loaded: string[], part: string) => loaded.some((f) => f.includes(part));
const HEAVY = ['/node_modules/pino/', '/node_modules/ajv/', 'profile/validate.generated.js', 'image/store.js', 'image/tar.js', 'image/layer.js', '/node_modules/fzstd/'];
const HEAVY_BUILTINS = ['builtin:net', 'builtin:child_process', 'builtin:crypto', 'builtin:perf_hooks', 'builtin:dgram'];

describe('brig run: a lean start', () => {
  it('a plain run loads none of pino, ajv, the image store; the default policy comes precompiled', () => {
    const r = loadedBy(['run', '--', '/bin/true']);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(has(r.loaded, 'dist/src/launch/sandbox.js'), r.loaded.join(' '));
    for (const m of HEAVY) assert.ok(!has(r.loaded, m), `brig run loaded ${m}`);
    const own = loadedBy(['run', '--', '/bin/true'], unbundled, false);
    assert.equal(own.status, 0, own.stderr);
    for (const m of HEAVY_BUILTINS) assert.ok(!own.loaded.includes(m), `brig run loaded ${m}`);
    assert.ok(own.loaded.includes('builtin:fs'), 'the trace sees builtins');
  });

  it("Node's net and crypto modules are loaded when the run asks for them: --add-host, a seccomp policy of its own", () => {
    const named = loadedBy(['run', '--add-host', 'judge:127.0.0.1', '--', '/bin/true'], unbundled, false);
    assert.equal(named.status, 0, named.stderr);
    assert.ok(named.loaded.includes('builtin:net'), 'node:net not loaded to check --add-host');
    const policy = join(work, 'policy.json');
    writeFileSync(policy, JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW' }));
    const compiled = loadedBy(['run', '--seccomp', policy, '--', '/bin/true'], unbundled, false);
    assert.equal(compiled.status, 0, compiled.stderr);
    assert.ok(compiled.loaded.includes('builtin:crypto'), 'node:crypto not loaded to compile a policy');
  });

  it('bin/brig-node runs the bundle: nothing of dist/src is loaded, pino only with --log-level', () => {
    const r = loadedBy(['run', '--', '/bin/true'], brigBin);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(!has(r.loaded, '/dist/src/'), r.loaded.filter((f) => f.includes('/dist/src/')).join(' '));
    for (const m of HEAVY) assert.ok(!has(r.loaded, m), `bin/brig-node run loaded ${m}`);
    const own = loadedBy(['run', '--', '/bin/true'], brigBin, false);
    for (const m of HEAVY_BUILTINS) assert.ok(!own.loaded.includes(m), `bin/brig-node run loaded ${m}`);
    const logged = loadedBy(['run', '--log-level', 'debug', '--', '/bin/true'], brigBin);
    assert.equal(logged.status, 0, logged.stderr);
    assert.ok(has(logged.loaded, '/node_modules/pino/'), 'pino not loaded with --log-level');
    const imaged = loadedBy(['run', '--image', 'nosuch:1', '--', '/bin/true'], brigBin);
    assert.equal(imaged.status, 125);
    assert.match(imaged.stderr, /nosuch/);
    assert.ok(!has(imaged.loaded, '/dist/src/'), 'the store loaded from dist/src, not from the bundle');
  });

  it('each is loaded when the run asks for it: --log-level, a profile file of its own, --image', () => {
    const logged = loadedBy(['run', '--log-level', 'debug', '--', '/bin/true']);
    assert.equal(logged.status, 0, logged.stderr);
    assert.ok(has(logged.loaded, '/node_modules/pino/'), 'pino not loaded with --log-level');
    assert.match(logged.stderr, /"name":"brig"/);

    const profile = join(work, 'mine.json');
    writeFileSync(profile, JSON.stringify({ extends: 'default', env: { MINE: '1' } }));
    const checked = loadedBy(['run', '--profile', profile, '--', '/bin/true']);
    assert.equal(checked.status, 0, checked.stderr);
    assert.ok(has(checked.loaded, 'profile/validate.generated.js'), 'a profile file of its own is not validated');

    const bad = join(work, 'bad.json');
    writeFileSync(bad, JSON.stringify({ extends: 'default', memry: '1m' }));
    const refused = loadedBy(['run', '--profile', bad, '--', '/bin/true']);
    assert.equal(refused.status, 125);
    assert.match(refused.stderr, /memry/);

    const imaged = loadedBy(['run', '--image', 'nosuch:1', '--', '/bin/true']);
    assert.equal(imaged.status, 125);
    assert.match(imaged.stderr, /nosuch/);
    assert.ok(has(imaged.loaded, 'image/store.js'), 'the store not loaded with --image');
  });
});

// What bin/brig-node compiles: each vm.Script's file, whether a code cache
// was given, and whether V8 took it.
const scripts = join(work, 'scripts.cjs');
writeFileSync(
  scripts,
  `const vm = require('node:vm'); const { appendFileSync } = require('node:fs'); const Script = vm.Script;\n` +
    `vm.Script = class extends Script { constructor(source, o) { super(source, o); appendFileSync(process.env.LEAN_LOG, JSON.stringify({ file: o.filename, cache: o.cachedData !== undefined, rejected: this.cachedDataRejected === true }) + '\\n'); } };\n`,
);
function compiledBy(brigNode: string, args: string[]): { status: number | null; stderr: string; scripts: { file: string; cache: boolean; rejected: boolean }[]; loaded: string[] } {
  const log = join(work, `scripts-${n++}.txt`);
  writeFileSync(log, '');
  const r = spawnSync(process.execPath, ['--require', trace, '--require', scripts, '--import', join(work, 'register.mjs'), '--', brigNode, ...args], { env: { ...env, LEAN_LOG: log }, encoding: 'utf8', timeout: 60_000 });
  const lines = readFileSync(log, 'utf8').split('\n').filter(Boolean);
  return { status: r.status, stderr: r.stderr, scripts: lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)), loaded: lines.filter((l) => !l.startsWith('{')) };
}

describe('bin/brig-node: the bundles and their code caches', () => {
  it('brig run compiles dist/cli-run.cjs with its cache, which V8 takes; other verbs dist/cli.cjs', () => {
    const r = compiledBy(brigBin, ['run', '--', '/bin/sh', '-c', 'exit 3']);
    assert.equal(r.status, 3, r.stderr);
    assert.deepEqual(r.scripts.map((s) => [s.file.split('/').slice(-2).join('/'), s.cache, s.rejected]), [['dist/cli-run.cjs', true, false]]);
    const v = compiledBy(brigBin, ['--version']);
    assert.equal(v.status, 0, v.stderr);
    assert.deepEqual(v.scripts.map((s) => [s.file.split('/').slice(-2).join('/'), s.cache, s.rejected]), [['dist/cli.cjs', true, false]]);
    // Both are ASCII: read as latin1, one byte a character.
    for (const f of ['cli.cjs', 'cli-run.cjs']) assert.ok(!/[^\x00-\x7f]/.test(readFileSync(join(dirname(brigBin), '../dist', f), 'latin1')), `dist/${f} is not ASCII`);
  });

  // A copy of the package's start: bin/ and the bundles copied, the rest linked.
  function fixture(): string {
    const repo = join(dirname(brigBin), '..');
    const root = mkdtempSync(join(work, 'pkg-'));
    mkdirSync(join(root, 'bin'));
    mkdirSync(join(root, 'dist'));
    for (const f of ['brig-node', 'package.json']) copyFileSync(join(repo, 'bin', f), join(root, 'bin', f));
    for (const f of ['build', 'profiles', 'node_modules', 'package.json']) symlinkSync(join(repo, f), join(root, f));
    symlinkSync(join(repo, 'dist/src'), join(root, 'dist/src'));
    for (const f of ['cli.cjs', 'cli.cjs.cache', 'cli-run.cjs', 'cli-run.cjs.cache']) copyFileSync(join(repo, 'dist', f), join(root, 'dist', f));
    return root;
  }
  const older = (file: string, than: string) => {
    const t = statSync(than).mtime.getTime() / 1000 - 60;
    utimesSync(file, t, t);
  };

  it('a cache older than its bundle is not given to V8 (it checks the length of the text, not the text)', () => {
    const root = fixture();
    const fresh = compiledBy(join(root, 'bin/brig-node'), ['run', '--', '/bin/true']);
    assert.equal(fresh.status, 0, fresh.stderr);
    assert.deepEqual(fresh.scripts.map((s) => s.cache), [true]);
    older(join(root, 'dist/cli-run.cjs.cache'), join(root, 'dist/cli-run.cjs'));
    const stale = compiledBy(join(root, 'bin/brig-node'), ['run', '--', '/bin/sh', '-c', 'exit 5']);
    assert.equal(stale.status, 5, stale.stderr);
    assert.deepEqual(stale.scripts.map((s) => [s.file.endsWith('/dist/cli-run.cjs'), s.cache]), [[true, false]]);
  });

  it('a bundle older than dist/src, or none, leaves bin/brig-node to dist/src: same exit codes and messages', () => {
    const root = fixture();
    const main = join(root, 'dist/src/cli/main.js');
    older(join(root, 'dist/cli-run.cjs'), main);
    const stale = compiledBy(join(root, 'bin/brig-node'), ['run', '--', '/bin/sh', '-c', 'exit 6']);
    assert.equal(stale.status, 6, stale.stderr);
    assert.deepEqual(stale.scripts, []);
    assert.ok(has(stale.loaded, '/dist/src/launch/sandbox.js') || has(stale.loaded, '/dist/src/cli/run.js'), stale.loaded.join(' '));
    for (const f of ['cli.cjs', 'cli.cjs.cache', 'cli-run.cjs', 'cli-run.cjs.cache']) rmSync(join(root, 'dist', f));
    const none = compiledBy(join(root, 'bin/brig-node'), ['run', '--bogus', '--', '/bin/true']);
    assert.equal(none.status, 125);
    assert.match(none.stderr, /^brig run: unknown flag: --bogus/);
    assert.deepEqual(none.scripts, []);
    const version = compiledBy(join(root, 'bin/brig-node'), ['--version']);
    assert.equal(version.status, 0, version.stderr);
    assert.deepEqual(version.scripts, []);
  });
});

guardLeaks();
