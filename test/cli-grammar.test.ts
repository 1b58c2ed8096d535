// The CLI as a Docker user types it: a table of command lines (the cases of
// issue 19 and their Docker spellings), each with its expected output, exit
// code and stderr, and never a stack trace or a doubled prefix; then the
// parser's rules on their own. Runs as root and as an unprivileged user.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseArgs, UsageError, type OptionSpec } from '../src/cli/args.js';
import { renderTemplate } from '../src/cli/format.js';
import { runSpecs } from '../src/cli/run.js';
import { brigBin, guardLeaks, isRoot } from './helpers.js';

const busybox = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p));
const skip = !busybox && 'skipped: no busybox (apt-get install busybox-static)';
const work = mkdtempSync(join(tmpdir(), 'brig-grammar-'));
chmodSync(work, 0o755);
const env = { ...process.env, BRIG_STORE: join(work, 'store'), BRIG_DEBUG: '' };
after(() => rmSync(work, { recursive: true, force: true }));

function brig(args: string[], opts: { input?: string | Buffer; env?: NodeJS.ProcessEnv } = {}) {
  // "node --", as bin/brig's shebang: Node 20 would read `--env-file` from brig's own arguments.
  const r = spawnSync(process.execPath, ['--', brigBin, ...args], { env: opts.env ?? env, input: opts.input ?? '', timeout: 60000, maxBuffer: 256 * 1024 * 1024 });
  return { code: r.status, out: r.stdout.toString(), err: r.stderr.toString(), raw: r.stdout };
}

/** What every command line must hold to: no stack trace, one prefix, errors in one line. */
function checkHygiene(args: string[], r: { code: number | null; err: string }, lines = 1): void {
  const label = `brig ${args.join(' ')}`;
  assert.doesNotMatch(r.err, /\n\s+at .+:\d+:\d+\)?$/m, `${label}: a stack trace\n${r.err}`);
  assert.doesNotMatch(r.err, /internal error/, `${label}: an internal error\n${r.err}`);
  assert.doesNotMatch(r.err, /^brig( [\w-]+)*: brig[ :]/m, `${label}: a doubled prefix\n${r.err}`);
  if (r.code === 125) assert.equal(r.err.trimEnd().split('\n').length, lines, `${label}: the error is more than one line\n${r.err}`);
}

interface Case {
  args: string[];
  code: number;
  out?: string | RegExp;
  err?: RegExp;
  input?: string;
  /** Lines on stderr for an error (a warning may come first). */
  lines?: number;
  /** Docker's spelling of the same thing, where it differs from args: checked to give the same. */
  docker?: string[];
}

const IMG = 'busybox:t';

const cases: Case[] = [
  // run: Docker's grammar and brig's -- form.
  { args: ['run', IMG, 'echo', 'hi'], code: 0, out: 'hi\n' },
  { args: ['run', '--rm', IMG, 'echo', '-n', 'hi'], code: 0, out: 'hi' }, // flags after IMAGE are the command's
  { args: ['run', '-e', 'A=1', '-w', '/etc', IMG, 'sh', '-c', 'echo $A $(pwd)'], code: 0, out: '1 /etc\n', docker: ['run', '--env=A=1', '--workdir=/etc', IMG, 'sh', '-c', 'echo $A $(pwd)'] },
  { args: ['run', '-ie', 'A=2', IMG, 'sh', '-c', 'echo $A'], code: 0, out: '2\n' },
  { args: ['run', '-h', 'box7', IMG, 'hostname'], code: 0, out: 'box7\n', docker: ['run', '--hostname', 'box7', IMG, 'hostname'] },
  { args: ['run', '-u', '1234:99', IMG, 'sh', '-c', 'echo $(id -u) $(id -g)'], code: 0, out: '1234 99\n', docker: ['run', '--user=1234:99', IMG, 'sh', '-c', 'echo $(id -u) $(id -g)'] },
  { args: ['run', '--entrypoint', '/bin/echo', IMG, 'from', 'entrypoint'], code: 0, out: 'from entrypoint\n' },
  { args: ['run', '-i', IMG, 'cat'], input: 'kept open', code: 0, out: 'kept open' },
  { args: ['run', IMG, 'cat'], input: 'not read', code: 0, out: '' }, // Docker: without -i, no stdin
  { args: ['run', '-it', IMG, 'sh'], input: 'echo piped', code: 125, err: /^brig run: the input device is not a TTY: -it needs a terminal/ }, // Docker's refusal; it used to wait for ever
  { args: ['run', '-t', IMG, 'sh', '-c', 'test -t 0 && test -t 1 && echo on-a-tty'], code: 0, out: 'on-a-tty\r\n' }, // -t alone: a terminal without input, as Docker
  { args: ['run', '--', '/bin/cat'], input: 'piped', code: 0, out: 'piped' }, // brig's -- form keeps stdin
  { args: ['run', '--image', IMG, '--', '/bin/echo', 'old'], code: 0, out: 'old\n' },
  { args: ['run', '--memory=64m', '--pids-limit', '64', '--cpus', '1', '--', '/bin/echo', 'x'], code: 0, out: 'x\n', docker: ['run', '-m', '64m', '--pids=64', '--cpus=1', '--', '/bin/echo', 'x'] },
  { args: ['run', '--ulimit', 'nofile=100:200', '--', '/bin/sh', '-c', 'ulimit -n'], code: 0, out: '100\n', docker: ['run', '--rlimit', 'nofile=100:200', '--', '/bin/sh', '-c', 'ulimit -n'] },
  { args: ['run', '--tmpfs', '/scratch:size=1m,mode=1777', '--', '/bin/sh', '-c', 'stat -c %a /scratch'], code: 0, out: '1777\n' },
  { args: ['run', '--mount', 'type=tmpfs,target=/x,tmpfs-size=1m', '--', '/bin/sh', '-c', 'echo a > /x/f && cat /x/f'], code: 0, out: 'a\n' },
  { args: ['run', '--security-opt', 'seccomp=unconfined', '--', '/bin/sh', '-c', 'mount -t tmpfs x /mnt 2>/dev/null; echo after'], code: 0, out: 'after\n' },
  { args: ['run', '--security-opt', 'no-new-privileges', '--read-only', '--init', '-l', 'a=b', '--rm=true', '--platform', `linux/${process.arch === 'x64' ? 'amd64' : process.arch}`, '--', '/bin/true'], code: 0, out: '' },
  // Exit codes: the program's, 128+N, and one for each verdict; never 0 for a limit.
  { args: ['run', '--', '/bin/sh', '-c', 'exit 7'], code: 7 },
  { args: ['run', '--', '/bin/sh', '-c', 'kill -TERM $$'], code: 143 },
  { args: ['run', '--', 'no-such-command'], code: 127, err: /^brig run: exec failed for no-such-command: ENOENT/ },
  { args: ['run', '--', '/etc/passwd'], code: 126, err: /^brig run: exec failed for \/etc\/passwd: EACCES/ },
  { args: ['run', '--wall-time', '0.3', '--', '/bin/sleep', '5'], code: 137, err: /wall-time limit of 0.3s/ },
  { args: ['run', '--time', '0.2', '--', '/bin/sh', '-c', 'while :; do :; done'], code: 152, err: /CPU time limit exceeded/ },
  { args: ['run', '--fsize', '1k', '--', '/bin/dd', 'if=/dev/zero', 'of=/tmp/f', 'bs=5000', 'count=1'], code: 153, err: /file size limit exceeded/ },
  { args: ['run', '--output-limit', '10', '--', '/bin/echo', 'a line longer than ten bytes'], code: 141, out: 'a line lon', err: /output limit exceeded/ },
  { args: ['run', '--seccomp', 'judge', '--', '/bin/sh', '-c', 'mount -t tmpfs x /mnt'], code: 159, err: /^brig run: seccomp violation: the program called mount/ },
  // Flags not built yet: refused, never ignored.
  { args: ['run', '-d'], code: 125, err: /^brig run: requires an image or a command/ },
  { args: ['create', '--name', 'x'], code: 125, err: /^brig create: requires an image or a command/ },
  { args: ['run', '-P', IMG], code: 125, err: /^brig run: --publish-all needs -d/ },
  { args: ['run', '--restart=always', IMG], code: 125, err: /^brig run: --restart needs -d/ },
  { args: ['start', 'nosuch'], code: 125, err: /^Error: No such container: nosuch$/m },
  { args: ['exec', 'nosuch', 'true'], code: 125, err: /^Error: No such container: nosuch$/m },
  { args: ['run', '-p', '8080:80', '--', 'true'], code: 125, err: /^brig run: -p: network 'none' has nothing to publish on/ },
  { args: ['run', '--network', 'wifi', '--', 'true'], code: 125, err: /--network: network wifi not found/ },
  { args: ['run', '--env-file', '/nonexistent-env', '--', 'true'], code: 125, err: /^brig run: --env-file \/nonexistent-env: ENOENT$/m },
  { args: ['run', '--profile', 'judge', '-v', '/etc:/proc/x', '--', 'true'], code: 125, err: /^brig run: -v \/etc:\/proc\/x: target: must not be under \/proc or \/dev/ },
  { args: ['run', '--mount', 'type=bind,source=/usr,target=/dev/y', '--', 'true'], code: 125, err: /^brig run: --mount type=bind,source=\/usr,target=\/dev\/y: target: must not be under/ },
  { args: ['run', '-v', '/nonexistent-src:/x', '--profile', 'python', '--', 'true'], code: 125, err: /^brig run: -v \/nonexistent-src:\/x: source: bind-mount failed for \/nonexistent-src: ENOENT$/m },
  { args: ['run', '-w', 'rel', '--', 'true'], code: 125, err: /^brig run: (-w|--workdir): must be an absolute path inside the sandbox, got "rel"$/m, docker: ['run', '--workdir=rel', '--', 'true'] },
  { args: ['run', '-h', 'bad name!', '--', 'true'], code: 125, err: /^brig run: -h: expected/ },
  { args: ['box', 'rm', '99999'], code: 125, err: /^brig box: no box 99999 in / },
  { args: ['build', '-t', 'x:1', '/nonexistent-ctx'], code: 125, err: /^brig build: the context \/nonexistent-ctx is not a directory$/m },
  { args: ['run', '--security-opt', 'apparmor=x', '--', 'true'], code: 125, err: /--security-opt apparmor=x: not supported yet/ },
  // Errors in the user's terms, found while parsing.
  { args: ['run'], code: 125, err: /^brig run: requires an image or a command/ },
  { args: ['run', 'busybox:1.35', 'echo', 'hi'], code: 125, err: /^brig run: no image "busybox:1.35" .*brig pull busybox:1.35/ },
  { args: ['run', '/bin/echo', 'hi'], code: 125, err: /put it after --: brig run \[OPTIONS\] -- \/bin\/echo/ },
  { args: ['run', '--nofile', '0', '--', 'true'], code: 125, err: /^brig run: --nofile: must be at least 8, got 0$/m },
  { args: ['run', '--ulimit', 'nofile=2', '--', 'true'], code: 125, err: /--ulimit nofile: must be at least 8/ },
  { args: ['run', '--extra-time', 'x', '--', 'true'], code: 125, err: /^brig run: --extra-time: expected a non-negative number of seconds/ },
  { args: ['run', '--pids', '0', '--', 'true'], code: 125, err: /^brig run: --pids: must be at least 1/ },
  { args: ['run', '--memroy', '1m', '--', 'true'], code: 125, err: /unknown flag: --memroy \(did you mean --memory\?\)/ },
  { args: ['run', '-e'], code: 125, err: /-e needs a value/ },
  { args: ['run', '--rm', '--name', 'c1', IMG, 'true'], code: 125, err: /--rm and --name/ },
  { args: ['run', '--platform', 'linux/s390x', IMG, 'true'], code: 125, err: /--platform: brig runs linux\// },
  { args: ['run', '--read-only', IMG, 'true'], code: 125, err: /--read-only: not supported yet with an image/ },
  { args: ['run', '--entrypoint', 'x', '--', 'true'], code: 125, err: /--entrypoint: only with an image/ },
  { args: ['run', '--user', 'nobody', IMG, 'true'], code: 125, err: /--user: give the user as numbers/ },
  { args: ['run', '--report', '/no/dir/r.json', '--', '/bin/echo', 'ran'], code: 125, out: 'ran\n', err: /^brig run: --report \/no\/dir\/r.json: ENOENT/ },
  // The image verbs: flags anywhere, Docker's outputs.
  { args: ['images', '-q'], code: 0, out: /^[0-9a-f]{12}\n$/ },
  { args: ['images', '--format', '{{.Repository}}:{{.Tag}}'], code: 0, out: 'busybox:t\n' },
  { args: ['images', '--filter', 'reference=busy*', '--format', '{{.Tag}}'], code: 0, out: 't\n', docker: ['images', '-f', 'reference=busy*', '--format={{.Tag}}'] },
  { args: ['images', '--filter', 'reference=nomatch*', '-q'], code: 0, out: '' },
  { args: ['images'], code: 0, out: /^REPOSITORY +TAG +IMAGE ID +CREATED +SIZE\nbusybox +t +[0-9a-f]{12} / },
  { args: ['images', '--format', 'json'], code: 0, out: /^\{"Repository":"busybox","Tag":"t",/ },
  { args: ['inspect', IMG, '--format', '{{.Id}}'], code: 0, out: /^sha256:[0-9a-f]{64}\n$/, docker: ['inspect', '-f', '{{.Id}}', IMG] },
  { args: ['inspect', '-f', '{{json .Config.Cmd}} {{.RepoTags}} {{.Os}}', IMG], code: 0, out: '["/bin/sh"] [busybox:t] linux\n' },
  { args: ['inspect', '--format', '{{.Nope', IMG], code: 125, err: /--format: unclosed \{\{/ },
  { args: ['inspect', '--type', 'volume', 'nosuch'], code: 125, err: /no volume "nosuch"/ },
  { args: ['inspect', 'nosuch'], code: 125, err: /no image, container or volume named "nosuch"/ },
  { args: ['image', 'inspect', '--format', '{{.Architecture}}', IMG], code: 0, out: /^(amd64|arm64)\n$/ },
  { args: ['image', 'ls', '-q'], code: 0, out: /^[0-9a-f]{12}\n$/ },
  { args: ['ps'], code: 0, out: 'CONTAINER ID   IMAGE   COMMAND   CREATED   STATUS   NAMES\n' },
  { args: ['container', 'ls', '-q'], code: 0, out: '' },
  { args: ['rmi', '-f', 'nosuch:1'], code: 0, out: '' },
  { args: ['rmi', 'nosuch:1'], code: 1, err: /^brig rmi: no image "nosuch:1"/ },
  { args: ['rm', '-f', 'nosuch'], code: 0 },
  { args: ['volume', 'rm', '-f', 'x'], code: 0, out: '' },
  { args: ['volume', 'rm', 'x'], code: 1, err: /^brig volume rm: no volume "x"/ },
  { args: ['volume', 'prune'], code: 125, err: /Give -f to go on/ },
  { args: ['save', '-o', '/no/dir/x.tar', IMG], code: 125, err: /^brig save: -o \/no\/dir\/x.tar: the directory \/no\/dir does not exist$/m, docker: ['save', IMG, '-o', '/no/dir/x.tar'] },
  { args: ['save', 'nosuch:1', '-o', '/dev/null'], code: 125, err: /no image "nosuch:1"/ },
  { args: ['load', '-i', '/missing.tar'], code: 125, err: /^brig load: -i \/missing.tar: no such file or directory$/m },
  { args: ['load', '/missing.tar'], code: 125, err: /^brig load: \/missing.tar: no such file or directory$/m },
  { args: ['load', '--input=/missing.tar'], code: 125, err: /^brig load: --input \/missing.tar: no such file or directory$/m },
  { args: ['load'], code: 125, err: /standard input is empty/ },
  { args: ['import-rootfs', '/missing-dir', 'x:1'], code: 125, err: /\/missing-dir: no such file or directory/ },
  { args: ['tag', IMG], code: 125, err: /^brig tag: expects exactly 2 arguments, got 1/ },
  { args: ['push'], code: 125, err: /^brig push: expects 1 to 2 arguments, got 0/ },
  { args: ['pull', '--platform', 'linux/amd64'], code: 125, err: /^brig pull: expects exactly 1 argument, got 0/ },
  { args: ['login', '-p', 'pw', '-u', 'me', '--insecure-registry', '127.0.0.1:1'], code: 125, lines: 2, err: /^WARNING! Using --password via the command line is insecure.*\nbrig login: GET http:\/\/127.0.0.1:1\/v2\/: / },
  { args: ['build', '.'], code: 125, err: /give the image a name: -t NAME/ },
  // The rest of the CLI.
  { args: ['version', '--format', '{{.Client.Version}}'], code: 0, out: /^\d+\.\d+\.\d+\n$/ },
  { args: ['--version'], code: 0, out: /^brig \d+\.\d+\.\d+\n/ },
  { args: ['info', '--format', '{{.Images}} {{.Containers}}'], code: 0, out: /^\d+ 0\n$/ },
  { args: ['system', 'prune', '-f'], code: 0 },
  { args: ['completion', 'bash'], code: 0, out: /run\) opts=".*--memory[\s\S]*complete -F _brig brig/ },
  { args: ['completion', 'fish'], code: 0, out: /complete -c brig -n '__fish_seen_subcommand_from run' -l memory -s m -r/ },
  { args: ['completion', 'zsh'], code: 0, out: /bashcompinit/ },
  { args: ['completion', 'tcsh'], code: 125, err: /no completion for "tcsh"/ },
  { args: ['rnu'], code: 125, err: /^brig: "rnu" is not a brig command \(did you mean run\?\)/ },
  { args: ['-x'], code: 125, err: /^brig: unknown flag: -x/ },
  { args: ['seccomp', 'learn', '-o', '/no/dir/x', '--', '/bin/true'], code: 125, err: /-o \/no\/dir\/x: the directory \/no\/dir does not exist/ },
  { args: ['box', 'run', 'abc', '--', 'true'], code: 125, err: /^brig box: box ID: expected the number/ },
  { args: ['run', '--help'], code: 0, out: /^ {2}-i, --interactive {2,}keep standard input open[\s\S]*^ {2}-h, --hostname NAME /m },
  { args: ['images', '--help'], code: 0, out: /-q, --quiet/ },
  { args: ['box', 'rm', '--help'], code: 0, out: /^Usage: brig box create/ },
];

describe('the CLI as a Docker user types it', { skip }, () => {
  before(() => {
    const root = join(work, 'rootfs');
    mkdirSync(join(root, 'bin'), { recursive: true });
    mkdirSync(join(root, 'etc'));
    execFileSync('cp', [busybox!, join(root, 'bin', 'busybox')]);
    for (const a of ['sh', 'echo', 'cat', 'id', 'hostname', 'true', 'pwd']) symlinkSync('busybox', join(root, 'bin', a));
    writeFileSync(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
    execFileSync('chmod', ['-R', 'a+rX', root]);
    const r = brig(['import-rootfs', root, IMG, '--cmd', '["/bin/sh"]']);
    assert.equal(r.code, 0, r.err);
  });

  for (const c of cases) {
    it(`brig ${c.args.join(' ')}${c.docker ? `  (Docker: ${c.docker.join(' ')})` : ''}`, () => {
      for (const args of [c.args, ...(c.docker ? [c.docker] : [])]) {
        const r = brig(args, { input: c.input });
        checkHygiene(args, r, c.lines);
        assert.equal(r.code, c.code, `brig ${args.join(' ')}: exit ${r.code}\n${r.err}`);
        if (typeof c.out === 'string') assert.equal(r.out, c.out, r.err);
        else if (c.out) assert.match(r.out, c.out, r.err);
        if (c.err) assert.match(r.err, c.err);
      }
    });
  }

  it('a limit without a delegated cgroup: one warning line naming brig doctor, or none', () => {
    const r = brig(['run', '--memory', '64m', '--profile', 'judge', '--', '/bin/true']);
    assert.equal(r.code, 0, r.err);
    const lines = r.err.split('\n').filter(Boolean);
    assert.ok(lines.length <= 1, r.err);
    if (lines.length) assert.match(lines[0], /^brig run: warning: no delegated cgroup: .{0,80}; brig doctor says how to get one$/);
    if (!isRoot) {
      const d = brig(['doctor', '--json']);
      const cg = (JSON.parse(d.out) as { checks: { name: string; state: string; fix?: string }[] }).checks.find((x) => x.name === 'cgroups')!;
      if (cg.state !== 'ok') assert.match(cg.fix!, /systemd-run --user|BRIG_CGROUP_PARENT=brig-/);
      // A v1 cpuset cgroup made empty admits no task: the admin's command seeds its CPUs and memory nodes.
      const cpuset = /(\/\S+\/cpuset)\/(brig-[\w.-]+)/.exec(cg.fix ?? '');
      if (cpuset) assert.ok(cg.fix!.includes(`for f in cpuset.cpus cpuset.mems; do cat ${cpuset[1]}/$f > ${cpuset[1]}/${cpuset[2]}/$f; done`), cg.fix);
    }
  });

  it('brig run loads only what a run needs: not the archive, build or registry code, nor the other verbs', () => {
    const hooks = join(work, 'hooks.mjs');
    const log = join(work, 'loaded.txt');
    writeFileSync(hooks, `import { appendFileSync } from 'node:fs';\nexport async function load(url, ctx, next) { if (url.includes('/dist/src/')) appendFileSync(${JSON.stringify(log)}, url.replace(/.*\\/dist\\/src\\//, '') + '\\n'); return next(url, ctx); }\n`);
    writeFileSync(join(work, 'register.mjs'), `import { register } from 'node:module';\nregister(${JSON.stringify('file://' + hooks)});\n`);
    // The module graph of dist/src, which bin/brig-node runs bundled into one
    // file (dist/cli.cjs, where no module is a file to see; cli-lean.test.ts
    // checks the bundle loads nothing of dist/src).
    const entry = join(work, 'brig-src.mjs');
    writeFileSync(entry, `import { main } from ${JSON.stringify(new URL('../src/cli/main.js', import.meta.url).href)};\nprocess.exitCode = await main(process.argv.slice(2));\n`);
    const r = spawnSync(process.execPath, ['--import', join(work, 'register.mjs'), '--', entry, 'run', '--', '/bin/true'], { env, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const loaded = readFileSync(log, 'utf8').split('\n').filter(Boolean);
    assert.ok(loaded.includes('cli/run.js'), loaded.join(' '));
    for (const m of ['image/archive.js', 'image/build.js', 'image/registry.js', 'cli/image.js', 'cli/registry.js', 'cli/system.js', 'doctor.js']) assert.ok(!loaded.includes(m), `brig run loaded ${m}`);
  });

  it('a store that cannot be made: one line; BRIG_DEBUG=1 adds the stack for a bug report', () => {
    const bad = { ...env, BRIG_STORE: '/dev/null/store' };
    const r = brig(['images'], { env: bad });
    checkHygiene(['images'], r);
    assert.equal(r.code, 125);
    assert.equal(r.err, 'brig images: mkdir /dev/null/store: ENOTDIR (not a directory)\n');
    const d = brig(['images'], { env: { ...bad, BRIG_DEBUG: '1' } });
    assert.match(d.err, /^brig images: mkdir \/dev\/null\/store: ENOTDIR \(not a directory\)\nError: ENOTDIR[^\n]*\n\s+at /);
  });

  it('--env-file: KEY=VAL lines, comments, -e after it wins', () => {
    const f = join(work, 'env.list');
    writeFileSync(f, '# a comment\nA=from-file\n\nB=b\n');
    const r = brig(['run', '--env-file', f, '-e', 'B=flag', IMG, 'sh', '-c', 'echo $A $B']);
    assert.equal(r.out, 'from-file flag\n', r.err);
  });

  it('save to standard output and load from standard input, as docker save | docker load', () => {
    const saved = brig(['save', IMG]);
    assert.equal(saved.code, 0, saved.err);
    assert.equal(saved.raw.subarray(257, 262).toString(), 'ustar');
    const other = { ...env, BRIG_STORE: join(work, 'store2') };
    const loaded = brig(['load'], { input: saved.raw, env: other });
    assert.equal(loaded.code, 0, loaded.err);
    assert.equal(loaded.out, `Loaded image: ${IMG}\n`);
    const dash = brig(['save', '-o', '-', IMG]);
    assert.deepEqual(dash.raw, saved.raw);
    const file = join(work, 'saved.tar');
    assert.equal(brig(['save', IMG, '-o', file]).code, 0);
    assert.equal(brig(['load', file, '-q'], { env: { ...env, BRIG_STORE: join(work, 'store3') } }).out, `${IMG}\n`);
    writeFileSync(join(work, 'bad.json'), '{"a":1}');
    for (const args of [['load', '-i', join(work, 'bad.json')], ['import-rootfs', join(work, 'bad.json'), 'x:1']]) {
      const r = brig(args);
      checkHygiene(args, r);
      assert.equal(r.code, 125);
      assert.match(r.err, /bad\.json/);
    }
  });

  it('build: repeated -t, --target, --label, -q, and a Dockerfile on standard input', () => {
    const ctx = join(work, 'ctx');
    mkdirSync(ctx, { recursive: true });
    writeFileSync(join(ctx, 'Dockerfile'), `FROM ${IMG} AS first\nRUN echo one > /one\nFROM first\nRUN echo two > /two\n`);
    const b = brig(['build', ctx, '-t', 'built:1', '-t', 'built:2', '--target', 'first', '--label', 'team=judges', '-q']);
    assert.equal(b.code, 0, b.err);
    assert.match(b.out, /^sha256:[0-9a-f]{64}\n$/);
    assert.equal(brig(['run', 'built:2', 'sh', '-c', 'cat /one; test -e /two || echo no-two']).out, 'one\nno-two\n');
    assert.equal(brig(['inspect', '-f', '{{index .Config.Labels "team"}}', 'built:1']).out, 'judges\n');
    const piped = brig(['build', '-t', 'piped:1', '-'], { input: `FROM ${IMG}\nRUN echo piped > /p\n` });
    assert.equal(piped.code, 0, piped.err);
    assert.equal(brig(['run', 'piped:1', 'cat', '/p']).out, 'piped\n');
    const bad = brig(['build', '-t', 'x:1', '--target', 'nosuch', ctx]);
    checkHygiene(['build'], bad);
    assert.match(bad.err, /--target nosuch: no stage of that name/);
  });

  it('named volumes: ls -q, inspect --format, prune -f', () => {
    assert.equal(brig(['volume', 'create', 'v1']).code, 0);
    assert.equal(brig(['volume', 'ls', '-q']).out, 'v1\n');
    assert.match(brig(['volume', 'ls']).out, /^DRIVER +VOLUME NAME\nlocal +v1\n$/);
    assert.equal(brig(['volume', 'inspect', '-f', '{{.Name}} {{.Driver}}', 'v1']).out, 'v1 local\n');
    const p = brig(['volume', 'prune', '-f']);
    assert.equal(p.code, 0, p.err);
    assert.match(p.out, /Deleted Volumes:\nv1\n/);
    assert.equal(brig(['volume', 'ls', '-q']).out, '');
  });
});

describe('a profile file named on the command line', () => {
  it("its errors name the file and the item's own index in it, not the merged list's (python's mounts come first)", () => {
    const bad = join(work, 'bad-profile.json');
    writeFileSync(bad, JSON.stringify({ extends: 'python', mounts: [{ source: '/etc', target: '/etc2' }, { source: '/etc', target: '/proc/x' }] }));
    const r = brig(['run', '--profile', bad, '--', '/bin/true']);
    checkHygiene(['run'], r);
    assert.equal(r.code, 125);
    assert.equal(r.err, `brig run: ${bad}: mounts[1].target: must not be under /proc or /dev (/proc/x)\n`);
    const missing = join(work, 'missing-src.json');
    writeFileSync(missing, JSON.stringify({ extends: 'python', mounts: [{ source: '/nonexistent-src', target: '/x' }] }));
    const m = brig(['run', '--profile', missing, '--', '/bin/true']);
    checkHygiene(['run'], m);
    assert.equal(m.code, 125);
    assert.equal(m.err, `brig run: ${missing}: mounts[0].source: bind-mount failed for /nonexistent-src: ENOENT\n`);
  });
});

describe("the parser's rules (Docker's, pflag's)", () => {
  const specs: OptionSpec[] = [
    { name: 'interactive', short: 'i', help: '' },
    { name: 'tty', short: 't', help: '', unsupported: 'later' },
    { name: 'env', short: 'e', value: true, repeat: true, help: '' },
    { name: 'name', value: true, help: '' },
    { name: 'pids-limit', value: true, aliases: ['pids'], help: '' },
    { name: 'rm', help: '' },
  ];
  it('flags anywhere, -- ends them, the last of a single-valued flag wins', () => {
    const p = parseArgs(['a', '--name', 'x', 'b', '-e', 'K=1', '--', '-e', 'c'], specs);
    assert.deepEqual(p.rest, ['a', 'b', '-e', 'c']);
    assert.deepEqual(p.opts.get('env'), ['K=1']);
    assert.equal(p.dashDash, false);
    assert.equal(parseArgs(['--name', 'a', '--name=b'], specs).opts.get('name')?.at(-1), 'b');
    assert.equal(parseArgs(['--', 'x'], specs).dashDash, true);
  });
  it('run and exec: the first positional ends the options', () => {
    const p = parseArgs(['-i', 'img', 'sh', '-e', 'x', '--rm'], specs, { interspersed: false });
    assert.deepEqual(p.rest, ['img', 'sh', '-e', 'x', '--rm']);
    assert.ok(p.flags.has('interactive'));
    assert.ok(!p.flags.has('rm'));
  });
  it('short flags combined and with values: -ie K, -eK=1, -e=K=1; booleans as --rm=false', () => {
    assert.deepEqual(parseArgs(['-ie', 'K=1'], specs).opts.get('env'), ['K=1']);
    assert.deepEqual(parseArgs(['-eK=1'], specs).opts.get('env'), ['K=1']);
    assert.deepEqual(parseArgs(['-e=K=1'], specs).opts.get('env'), ['K=1']);
    assert.ok(!parseArgs(['--rm', '--rm=false'], specs).flags.has('rm'));
    assert.throws(() => parseArgs(['--rm=maybe'], specs), /--rm: takes no value, or true\|false/);
  });
  it('aliases set the option and errors name the flag as typed', () => {
    const p = parseArgs(['--pids', '5'], specs);
    assert.deepEqual(p.opts.get('pids-limit'), ['5']);
    assert.equal(p.spelled.get('pids-limit'), '--pids');
  });
  it('unsupported flags fail, even combined; unknown ones say so with a guess', () => {
    assert.throws(() => parseArgs(['-it'], specs), (e: unknown) => e instanceof UsageError && /^-t: not supported yet \(later\)$/.test(e.message));
    assert.throws(() => parseArgs(['--nmae', 'x'], specs), /unknown flag: --nmae \(did you mean --name\?\)/);
    assert.throws(() => parseArgs(['-z'], specs), /unknown shorthand flag: 'z' in -z/);
    assert.throws(() => parseArgs(['--name'], specs), /--name needs a value/);
  });
  it("brig run's own table: Docker letters", () => {
    const p = parseArgs(['-i', '-h', 'hn', '-u', '1', '-m', '1m', '-w', '/w', '-v', '/a:/b', 'img'], runSpecs, { interspersed: false });
    assert.deepEqual([...p.flags], ['interactive']);
    assert.deepEqual(Object.fromEntries([...p.opts].map(([k, v]) => [k, v[0]])), { hostname: 'hn', user: '1', memory: '1m', workdir: '/w', volume: '/a:/b' });
  });
  it("--format: Go template forms", () => {
    const d = { Id: 'x', Config: { Cmd: ['a', 'b'], Labels: { k: 'v' }, Env: null }, n: 3 };
    assert.equal(renderTemplate('{{.Id}}', d), 'x');
    assert.equal(renderTemplate('{{.Config.Cmd}}', d), '[a b]');
    assert.equal(renderTemplate('{{json .Config.Cmd}}', d), '["a","b"]');
    assert.equal(renderTemplate('{{json .}}', { a: 1 }), '{"a":1}');
    assert.equal(renderTemplate('{{.Config.Labels}}', d), 'map[k:v]');
    assert.equal(renderTemplate('{{index .Config.Labels "k"}}', d), 'v');
    assert.equal(renderTemplate('{{.Config.Cmd | json}}', d), '["a","b"]');
    assert.equal(renderTemplate('{{.id}}\\t{{.Missing}}', d), 'x\t<no value>');
    assert.equal(renderTemplate('{{upper .Id}} {{len .Config.Cmd}}', d), 'X 2');
    assert.throws(() => renderTemplate('{{range .X}}', d), /--format: unknown function "range"/);
  });
});

guardLeaks();
