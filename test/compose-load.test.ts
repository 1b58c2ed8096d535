// Compose files in, the model (or a one-line error naming file, line and path) out:
// lookup, merging, interpolation, anchors, profiles, validation, refused keys.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { interpolate, parseDotEnv } from '../src/compose/interpolate.js';
import { findComposeFile } from '../src/compose/load.js';
import { configHash, loadProject, startOrder } from '../src/compose/model.js';
import { renderConfig } from '../src/compose/config.js';
import { brigCli, guardLeaks } from './helpers.js';

const root = mkdtempSync(join(tmpdir(), 'composeload-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

/** A project directory with these files; its path. */
function project(files: Record<string, string>): string {
  const dir = join(root, `proj${n++}`);
  mkdirSync(dir);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

function load(dir: string, o: { files?: string[]; env?: Record<string, string>; profiles?: string[]; envFiles?: string[]; services?: string[] } = {}) {
  return loadProject({ cwd: dir, env: { ...o.env }, files: o.files, profiles: o.profiles, envFiles: o.envFiles, services: o.services });
}

function loadError(dir: string, o: Parameters<typeof load>[1] = {}): string {
  try {
    load(dir, o);
  } catch (e) {
    return (e as Error).message;
  }
  assert.fail('expected an error');
}

describe('interpolation', () => {
  const env = { SET: 'v', EMPTY: '' };
  it('every form, as compose-spec 12-interpolation.md says', () => {
    assert.equal(interpolate('$SET ${SET} x${SET}y', env), 'v v xvy');
    assert.equal(interpolate('${UNSET}|$UNSET', env), '|');
    assert.equal(interpolate('${UNSET:-d} ${EMPTY:-d} ${SET:-d}', env), 'd d v');
    assert.equal(interpolate('${UNSET-d} ${EMPTY-d} ${SET-d}', env), 'd  v');
    assert.equal(interpolate('${SET:+r} ${EMPTY:+r} ${EMPTY+r} ${UNSET+r}', env), 'r  r ');
    assert.equal(interpolate('$$HOME $${SET} a$$', env), '$HOME ${SET} a$');
    assert.equal(interpolate('${UNSET:-${SET}-x}', env), 'v-x');
    assert.equal(interpolate('${SET:?boom} ${EMPTY?ok}', env), 'v ');
    assert.throws(() => interpolate('${EMPTY:?needs a value}', env), /required variable EMPTY is missing a value: needs a value/);
    assert.throws(() => interpolate('${UNSET?gone}', env), /required variable UNSET is missing a value: gone/);
    assert.throws(() => interpolate('cost: $ 5', env), /write \$\$ for a literal \$/);
    assert.throws(() => interpolate('${SET', env), /no closing }/);
  });
  it('.env: comments, export, quotes, references to earlier lines', () => {
    const v = parseDotEnv("# c\nexport A=1\nB='$A literal'\nC=\"x\\ny\"\nD=${A}2 # comment\nE\n", '.env', { E: 'host' });
    assert.deepEqual(v, { A: '1', B: '$A literal', C: 'x\ny', D: '12', E: 'host' });
    assert.throws(() => parseDotEnv('1BAD=x\n', '.env'), /\.env:1: invalid variable name "1BAD"/);
  });
});

describe('loading', () => {
  it("finds the file as Docker does: compose.yaml first, then in parent directories", () => {
    const dir = project({ 'docker-compose.yml': 'services: {}\n', 'compose.yaml': 'services: {}\n', 'sub/x': '' });
    assert.equal(findComposeFile(dir), join(dir, 'compose.yaml'));
    assert.equal(findComposeFile(join(dir, 'sub')), join(dir, 'compose.yaml'));
    const other = project({ 'docker-compose.yml': 'services: {}\n' });
    assert.equal(findComposeFile(other), join(other, 'docker-compose.yml'));
  });

  it('interpolates from .env, the environment winning; $$ escapes; bare environment keys take the host value', () => {
    const dir = project({
      '.env': 'TAG=1.0\nPORT=8080\nGREETING=from-dotenv\n',
      'compose.yaml': 'services:\n  web:\n    image: "busybox:${TAG}"\n    command: echo $$HOME ${GREETING}\n    ports: ["127.0.0.1:${PORT}:80"]\n    environment:\n      - HOSTVAR\n      - FIXED=1\n',
    });
    const p = load(dir, { env: { GREETING: 'from-env', HOSTVAR: 'h' } });
    const web = p.services.web;
    assert.equal(web.image, 'busybox:1.0');
    assert.deepEqual(web.command, ['echo', '$HOME', 'from-env']);
    assert.deepEqual(web.ports, [{ containerPort: 80, protocol: 'tcp', hostPort: 8080, hostIp: '127.0.0.1' }]);
    assert.deepEqual(web.environment, { HOSTVAR: 'h', FIXED: '1' });
    // --env-file in place of .env
    writeFileSync(join(dir, 'other.env'), 'TAG=2.0\n');
    assert.equal(load(dir, { envFiles: ['other.env'] }).services.web.image, 'busybox:2.0');
  });

  it('a required variable missing: the file, line and path', () => {
    const dir = project({ 'compose.yaml': 'services:\n  db:\n    image: postgres\n    environment:\n      PASSWORD: ${DB_PASSWORD:?set DB_PASSWORD}\n' });
    assert.equal(loadError(dir), 'compose.yaml:5: services.db.environment.PASSWORD: required variable DB_PASSWORD is missing a value: set DB_PASSWORD');
  });

  it('x- extensions, anchors and << merge keys', () => {
    const dir = project({
      'compose.yaml': [
        'x-base: &base',
        '  image: busybox',
        '  restart: unless-stopped',
        '  environment: &env',
        '    A: "1"',
        'services:',
        '  a:',
        '    <<: *base',
        '  b:',
        '    <<: *base',
        '    restart: "no"',
        '    environment:',
        '      <<: *env',
        '      B: "2"',
        '',
      ].join('\n'),
    });
    const p = load(dir);
    assert.equal(p.services.a.restart, 'unless-stopped');
    assert.equal(p.services.b.restart, 'no');
    assert.deepEqual(p.services.b.environment, { A: '1', B: '2' });
    assert.deepEqual(p.warnings, []);
  });

  it('several -f files merge in order: maps by key, command replaced, ports appended', () => {
    const dir = project({
      'compose.yaml': 'services:\n  web:\n    image: busybox\n    command: ["a"]\n    environment: [A=1, B=1]\n    ports: ["80"]\n',
      'override.yaml': 'services:\n  web:\n    command: ["b", "c"]\n    environment: {B: "2"}\n    ports: ["81"]\n  extra:\n    image: busybox\n',
    });
    const p = load(dir, { files: ['compose.yaml', 'override.yaml'] });
    assert.deepEqual(p.services.web.command, ['b', 'c']);
    assert.deepEqual(p.services.web.environment, { A: '1', B: '2' });
    assert.deepEqual(
      p.services.web.ports.map((x) => x.containerPort),
      [80, 81],
    );
    assert.deepEqual(Object.keys(p.services).sort(), ['extra', 'web']);
  });

  it('profiles: off unless active (--profile, COMPOSE_PROFILES) or named', () => {
    const dir = project({ 'compose.yaml': 'services:\n  app:\n    image: busybox\n  debug:\n    image: busybox\n    profiles: [dev]\n' });
    assert.deepEqual(Object.keys(load(dir).services), ['app']);
    assert.deepEqual(Object.keys(load(dir, { profiles: ['dev'] }).services).sort(), ['app', 'debug']);
    assert.deepEqual(Object.keys(load(dir, { env: { COMPOSE_PROFILES: 'dev' } }).services).sort(), ['app', 'debug']);
    assert.deepEqual(Object.keys(load(dir, { services: ['debug'] }).services).sort(), ['app', 'debug']);
  });

  it('the project name: -p, COMPOSE_PROJECT_NAME, name:, else the directory', () => {
    const dir = project({ 'compose.yaml': 'name: shop\nservices:\n  a: {image: busybox}\n' });
    assert.equal(load(dir).name, 'shop');
    assert.equal(load(dir, { env: { COMPOSE_PROJECT_NAME: 'envname' } }).name, 'envname');
    const plain = project({ 'compose.yaml': 'services:\n  a: {image: busybox}\n' });
    assert.match(load(plain).name, /^proj\d+$/);
    assert.throws(() => loadProject({ cwd: plain, env: {}, projectName: 'Bad Name' }), /project name "Bad Name": must contain only lowercase/);
  });

  it('short and long forms: ports (ranges), volumes (relative binds from the file), depends_on, healthcheck, limits', () => {
    const dir = project({
      'compose.yaml': `services:
  web:
    image: busybox
    ports: ["8000-8001:80-81/udp", {target: 443, published: 8443, host_ip: 127.0.0.1}, 9000]
    volumes: ["./site:/www:ro", "data:/data", {type: tmpfs, target: /cache, tmpfs: {size: 1m}}, "~/x:/x"]
    tmpfs: /run:size=64k
    depends_on:
      db: {condition: service_healthy}
    healthcheck: {test: "wget -q -O- http://localhost/", interval: 1m30s, timeout: 500ms, retries: 5, start_period: 2s}
    deploy: {resources: {limits: {cpus: "0.5", memory: 256M, pids: 64}}}
    stop_grace_period: 1m
    user: "1000:1000"
    command: sh -c 'echo "a b"'
    entrypoint: []
  db:
    image: busybox
    healthcheck: {disable: true}
volumes:
  data:
`,
    });
    const p = load(dir, { env: { HOME: '/home/u' } });
    const w = p.services.web;
    assert.deepEqual(w.ports, [
      { containerPort: 80, protocol: 'udp', hostPort: 8000 },
      { containerPort: 81, protocol: 'udp', hostPort: 8001 },
      { containerPort: 443, protocol: 'tcp', hostPort: 8443, hostIp: '127.0.0.1' },
      { containerPort: 9000, protocol: 'tcp' },
    ]);
    assert.deepEqual(w.mounts, [
      { type: 'bind', source: join(dir, 'site'), target: '/www', readOnly: true },
      { type: 'volume', source: 'data', target: '/data', readOnly: false },
      { type: 'tmpfs', target: '/cache', readOnly: false, size: 1024 * 1024 },
      { type: 'bind', source: '/home/u/x', target: '/x', readOnly: false },
      { type: 'tmpfs', target: '/run', readOnly: false, size: 64 * 1024 },
    ]);
    assert.deepEqual(w.dependsOn, { db: { condition: 'service_healthy', required: true, restart: false } });
    assert.deepEqual(w.healthcheck, { test: ['CMD-SHELL', 'wget -q -O- http://localhost/'], intervalMs: 90_000, timeoutMs: 500, retries: 5, startPeriodMs: 2000 });
    assert.deepEqual(w.limits, { cpus: 0.5, memory: '256m', pids: 64 });
    assert.equal(w.stopGracePeriodS, 60);
    assert.deepEqual(w.user, { uid: 1000, gid: 1000 });
    assert.deepEqual(w.command, ['sh', '-c', 'echo "a b"']);
    assert.deepEqual(w.entrypoint, []);
    assert.deepEqual(p.services.db.healthcheck, { test: ['NONE'] });
    assert.deepEqual(startOrder(p.services), ['db', 'web']);
    assert.equal(p.volumes.data.name, `${p.name}_data`);
    assert.equal(p.networks.default.name, `${p.name}_default`);
  });

  it('config prints the resolved model, and a changed service changes only its own hash', () => {
    const dir = project({ 'compose.yaml': 'services:\n  a: {image: busybox, command: ["x"]}\n  b: {image: busybox}\n' });
    const p1 = load(dir);
    assert.match(renderConfig(p1), /^name: proj\d+\nservices:\n {2}a:\n {4}image: busybox\n {4}command:\n {6}- x\n/);
    writeFileSync(join(dir, 'compose.yaml'), 'services:\n  a: {image: busybox, command: ["y"]}\n  b: {image: busybox}\n');
    const p2 = load(dir);
    assert.notEqual(configHash(p1.services.a), configHash(p2.services.a));
    assert.equal(configHash(p1.services.b), configHash(p2.services.b));
  });
});

describe('bad files: one line, with the file, the line and the path', () => {
  it('YAML syntax', () => {
    const dir = project({ 'compose.yaml': 'services:\n  web:\n    image: busybox\n   ports: [80\n' });
    assert.match(loadError(dir), /^compose\.yaml:4: YAML: /);
    assert.doesNotMatch(loadError(dir), /\n/);
  });
  it('an unknown service in depends_on', () => {
    const dir = project({ 'compose.yaml': 'services:\n  web:\n    image: busybox\n    depends_on:\n      - db\n' });
    assert.equal(loadError(dir), 'compose.yaml:5: services.web.depends_on.db: service "web" depends on undefined service "db"');
  });
  it('a dependency cycle', () => {
    const dir = project({ 'compose.yaml': 'services:\n  a:\n    image: busybox\n    depends_on: [b]\n  b:\n    image: busybox\n    depends_on: [c]\n  c:\n    image: busybox\n    depends_on: [a]\n' });
    assert.match(loadError(dir), /^compose\.yaml:\d+: services\.\w\.depends_on\.\w: dependency cycle: (a -> b -> c -> a|b -> c -> a -> b|c -> a -> b -> c)$/);
  });
  it('a bad port', () => {
    const dir = project({ 'compose.yaml': 'services:\n  web:\n    image: busybox\n    ports:\n      - "8080:80"\n      - "70000:80"\n' });
    assert.equal(loadError(dir), 'compose.yaml:6: services.web.ports[1]: invalid host port 70000: ports are 1-65535');
    const d2 = project({ 'compose.yaml': 'services:\n  web:\n    image: busybox\n    ports: ["80/sctp"]\n' });
    assert.equal(loadError(d2), 'compose.yaml:4: services.web.ports[0]: invalid protocol "sctp" (tcp or udp)');
  });
  it('an unknown key, an undefined volume, a service with no image', () => {
    assert.equal(loadError(project({ 'compose.yaml': 'services:\n  web:\n    image: busybox\n    enviroment: {A: 1}\n' })), 'compose.yaml:4: services.web.enviroment: unknown service key');
    assert.equal(loadError(project({ 'compose.yaml': 'services:\n  web:\n    image: busybox\n    volumes: ["data:/data"]\n' })), 'compose.yaml:4: services.web.volumes[0]: service refers to undefined volume data: declare it under the top-level volumes:');
    assert.equal(loadError(project({ 'compose.yaml': 'services:\n  web:\n    restart: always\n' })), 'compose.yaml:2: services.web: service "web" has neither an image nor a build context specified');
  });
  it('security keys refused, with why', () => {
    const cases: [string, RegExp][] = [
      ['privileged: true', /^compose\.yaml:4: services\.web\.privileged: refused: brig runs every container without capabilities/],
      ['cap_add: [NET_ADMIN]', /^compose\.yaml:4: services\.web\.cap_add: refused: brig drops every capability/],
      ['devices: ["/dev/kvm:/dev/kvm"]', /^compose\.yaml:4: services\.web\.devices: refused: host devices/],
      ['pid: host', /^compose\.yaml:4: services\.web\.pid: refused: the host's pid namespace/],
      ['network_mode: host', /^compose\.yaml:4: services\.web\.network_mode: refused: the host's network namespace/],
      ['security_opt: ["seccomp:unconfined"]', /^compose\.yaml:4: services\.web\.security_opt: refused: "seccomp:unconfined" would lift/],
    ];
    for (const [line, re] of cases) assert.match(loadError(project({ 'compose.yaml': `services:\n  web:\n    image: busybox\n    ${line}\n` })), re);
    // What does not weaken the sandbox is fine.
    assert.doesNotThrow(() => load(project({ 'compose.yaml': 'services:\n  web:\n    image: busybox\n    privileged: false\n    cap_drop: [ALL]\n    security_opt: ["no-new-privileges:true"]\n' })));
  });
  it('unsupported keys: a warning each, once, with its line', () => {
    const dir = project({ 'compose.yaml': 'version: "3.8"\nservices:\n  web:\n    image: busybox\n    logging: {driver: json-file}\n    sysctls: {a: 1}\n' });
    assert.deepEqual(load(dir).warnings, ['compose.yaml:1: version: the attribute `version` is obsolete, it is ignored', 'compose.yaml:5: services.web.logging: not supported by brig yet, ignored', 'compose.yaml:6: services.web.sysctls: not supported by brig yet, ignored']);
  });
  it('the CLI: exit 1, one line on stderr, no stack', () => {
    const dir = project({ 'compose.yaml': 'services:\n  web:\n    image: busybox\n    ports: ["x:80"]\n' });
    const r = brigCli(['compose', '-f', join(dir, 'compose.yaml'), 'config'], { env: { ...process.env } });
    assert.equal(r.code, 1);
    assert.match(r.err, /^brig compose config: .*compose\.yaml:4: services\.web\.ports\[0\]: invalid host port "x": expected a number\n$/);
    const ok = brigCli(['compose', '-f', join(dir, '..', 'nope.yaml'), 'config'], { env: { ...process.env } });
    assert.equal(ok.code, 1);
    assert.match(ok.err, /cannot read the file \(ENOENT\)\n$/);
  });
});

guardLeaks();
