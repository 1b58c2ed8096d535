// The Node CLI bundled at build time (docs/performance.md has the figures):
//
// - dist/cli-run.cjs: `brig run` alone, the verb a judge calls per test
//   case: every other verb's module is left out (a stub that says so; nothing
//   reaches one from `run`), half the bytes;
// - dist/cli.cjs: the whole CLI, for every other verb;
// - each with a V8 code cache, X.cjs.cache, made by running it.
//
// Node 20 has no compile cache of its own for ES modules
// (module.enableCompileCache came in 22.1); per `brig run` the ESM loader
// resolved, read and compiled some 30 files of dist/src one by one. One
// CommonJS file skips the ESM loader, and vm.Script takes a code cache, so
// V8 neither parses nor compiles what a run already compiled at build time.
// The files are minified (whitespace and syntax; names stay, for messages
// and BRIG_DEBUG's stack traces) and ASCII only, so bin/brig-node reads them
// as latin1, a plain copy: a single non-ASCII character (a `µs` in a regular
// expression) made V8 hold the whole text as two bytes per character.
//
// Without esbuild (an install without devDependencies) nothing is made and
// bin/brig-node loads dist/src/cli/main.js as before.
import { spawnSync } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('..', import.meta.url));
const dist = `${repo}dist`;
// bin/brig-node knows these names.
const outputs = [`${dist}/cli.cjs`, `${dist}/cli-run.cjs`];

let esbuild;
try {
  esbuild = await import('esbuild');
} catch {
  for (const out of outputs) {
    await rm(out, { force: true });
    await rm(`${out}.cache`, { force: true });
  }
  console.error('scripts/bundle-cli.mjs: esbuild is not installed; bin/brig-node loads dist/src (slower start)');
  process.exit(0);
}

// Each module of dist/src keeps what it knew of its own place: import.meta.url
// and import.meta.dirname become its file's path under dist/, found from the
// bundle's own __dirname at run time (the package may be moved or linked).
// A module's lazy load of another of brig's modules, written
// createRequire(import.meta.url)('./x.js'), becomes a plain require that
// esbuild bundles: loading the file from dist/src would make a second copy
// of brig's modules, with error classes that instanceof does not know.
const placed = {
  name: 'brig-module-places',
  setup(build) {
    build.onLoad({ filter: /[/\\]dist[/\\]src[/\\].*\.js$/ }, async (args) => {
      const rel = relative(dist, args.path).split('\\').join('/');
      const dir = dirname(rel);
      const text = (await readFile(args.path, 'utf8'))
        .replace(/createRequire\(import\.meta\.url\)\((['"]\.{1,2}\/[^'"]+['"])\)/g, 'require($1)')
        .replaceAll('import.meta.url', `__brigModuleUrl(${JSON.stringify(rel)})`)
        .replaceAll('import.meta.dirname', `__brigModuleDir(${JSON.stringify(dir)})`);
      return { contents: text, loader: 'js' };
    });
  },
};

// The run bundle: main.js's table of verbs imports each verb's module; all
// but run's become a stub here (run's own lazy imports, the image store for
// --image, container.js for -d, stay: they are run's).
const runOnly = {
  name: 'brig-run-only',
  setup(build) {
    build.onResolve({ filter: /^\.\/[\w-]+\.js$/ }, (args) =>
      /[/\\]dist[/\\]src[/\\]cli[/\\]main\.js$/.test(args.importer) && args.kind === 'dynamic-import' && args.path !== './run.js' ? { path: args.path, namespace: 'brig-not-run' } : undefined,
    );
    build.onLoad({ filter: /.*/, namespace: 'brig-not-run' }, (args) => ({
      contents: `throw new Error(${JSON.stringify(`internal error: dist/cli-run.cjs has only brig run, not ${args.path}`)});`,
      loader: 'js',
    }));
  },
};

for (const [out, plugins] of [
  [outputs[0], [placed]],
  [outputs[1], [placed, runOnly]],
]) {
  await esbuild.build({
    entryPoints: [`${dist}/src/cli/main.js`],
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    // Packages (ajv, pino, fastify, ...) stay in node_modules, loaded when a verb needs them.
    packages: 'external',
    outfile: out,
    plugins,
    minifyWhitespace: true,
    minifySyntax: true,
    // The helpers those become (a module's own `require` may be shadowed: native.js has one).
    banner: {
      js: [
        "const __brigModuleDir = (p) => require('node:path').join(__dirname, p);",
        "const __brigModuleUrl = (p) => require('node:url').pathToFileURL(__brigModuleDir(p)).href;",
      ].join('\n'),
    },
    logLevel: 'warning',
  });
  let text = await readFile(out, 'utf8');
  // A dynamic import() in the bundle fails when it runs from vm.Script here
  // (ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING, found with `system service`): the
  // source loads lazily with require (src/builtins.ts) or statically instead.
  const dynamic = /\bimport\((?!['"]esbuild['"])/.exec(text);
  if (dynamic) {
    console.error(`scripts/bundle-cli.mjs: ${out} has a dynamic import() (at offset ${dynamic.index}); use require or a static import in src/`);
    process.exit(1);
  }
  // ASCII only: esbuild escapes strings, not regular expressions. \uXXXX
  // means the same character in a string, a template, a regular expression
  // and an identifier (a character outside the BMP becomes its surrogate
  // pair, which a /u expression reads as the one character).
  text = text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  // CommonJS's function wrapper, written here rather than added by
  // bin/brig-node (Module.wrap): V8 would flatten the two into a second copy
  // of the text at every start. On the first line, so lines keep their numbers.
  await writeFile(out, `(function (exports, require, module, __filename, __dirname) {${text}\n})`);
}

// The code caches: made by a process that ran `brig run -- /bin/true` with
// the bundle (V8 caches what was compiled by then, the run's path included).
// Best effort: where a sandbox cannot start at build time, the cache holds
// what ran before the failure, and a missing cache only costs speed.
for (const out of outputs) {
  await rm(`${out}.cache`, { force: true });
  const made = spawnSync(process.execPath, ['--', `${repo}bin/brig-node`, 'run', '--', '/bin/true'], {
    env: { ...process.env, BRIG_BUILD_CODE_CACHE: out, BRIG_NO_AGENT: '1' },
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (made.status !== 0) console.error(`scripts/bundle-cli.mjs: the code cache's run (${out}) said (status ${made.status}): ${made.stderr.trim().split('\n')[0] ?? ''}`);
}
