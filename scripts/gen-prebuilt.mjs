// What a `brig run` would otherwise work out on every start, done at build time:
//
// 1. dist/src/profile/valid.json: the text of each shipped profile file,
//    checked against the schema here. A profile file with the same text is
//    known valid without loading the ajv validator (an edited file misses
//    and is checked as before).
// 2. Compiles the shipped seccomp policies (default, judge, learn) at build time,
// for each architecture, into dist/src/seccomp/precompiled/: a `brig run`
// then loads the default policy's BPF instead of compiling it (most of the
// seccomp share of a CLI start). Each program is stored with the same key
// compile() caches by (the policy's content and the variant, in full), in a
// file named by its variant and the key's length (prebuiltFile()), so a
// policy changed without a rebuild simply misses and is compiled as before.
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';

const seccomp = await import(new URL('../dist/src/seccomp/index.js', import.meta.url));
const { compile, compileKey, prebuiltFile, DEFAULT_POLICY, JUDGE_POLICY, LEARN_POLICY, NOTIFY_HANDOFF_FD } = seccomp;
const files = new Map();
for (const policy of [DEFAULT_POLICY, JUDGE_POLICY, LEARN_POLICY])
  for (const arch of ['x86_64', 'aarch64']) {
    const opts = { report: true, handoffFd: NOTIFY_HANDOFF_FD };
    const c = compile(policy, arch, opts);
    const { variant, key } = compileKey(policy, arch, opts);
    const file = prebuiltFile(variant, key);
    files.set(file, [...(files.get(file) ?? []), { ...c, key, bytes: c.bytes.toString('base64') }]);
  }
const seccompDir = new URL('../dist/src/seccomp/', import.meta.url);
rmSync(new URL('precompiled.json', seccompDir), { force: true }); // the earlier builds' single table
rmSync(new URL('precompiled/', seccompDir), { recursive: true, force: true });
mkdirSync(new URL('precompiled/', seccompDir));
for (const [file, stored] of files) writeFileSync(new URL(file, seccompDir), JSON.stringify(stored));

const { validateProfile } = await import(new URL('../dist/src/profile/index.js', import.meta.url));
const dir = new URL('../profiles/', import.meta.url);
const valid = [];
for (const name of readdirSync(dir).filter((n) => n.endsWith('.json') && n !== 'schema.json').sort()) {
  const text = readFileSync(new URL(name, dir), 'utf8');
  validateProfile(JSON.parse(text), `profiles/${name}`); // throws: a shipped profile must be valid
  valid.push(text);
}
writeFileSync(new URL('../dist/src/profile/valid.json', import.meta.url), JSON.stringify(valid));
