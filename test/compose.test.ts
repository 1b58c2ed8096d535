// brig compose on real files, as users write them: a web server built from a
// context, with a healthcheck and a published port; a client that waits for
// it; a named volume; .env; profiles; an edit; down. Everything through
// bin/brig, as separate processes. Healthchecks (the contract) through
// brig run -d --health-cmd and inspect.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { brigCli, brigRoot, freePort, guardLeaks, until as waitUntil } from './helpers.js';

const { root, env, brig } = brigRoot('composetest-', 120_000);
chmodSync(root, 0o755);
const busybox = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p));

function inspect(name: string) {
  const r = brig('inspect', '--type', 'container', name);
  assert.equal(r.code, 0, r.err);
  return JSON.parse(r.out)[0];
}

// Compose waits on whole containers: longer, and looked at less often.
const until = (what: string, fn: () => boolean) => waitUntil(what, fn, 20_000, 100);

/** A page over HTTP from 127.0.0.1 (the test's only network traffic: loopback). */
async function get(port: number): Promise<string> {
  const r = await fetch(`http://127.0.0.1:${port}/`);
  return r.text();
}

/** Processes brig started for this test's store (monitors, containers, network holders) still running. */
function processesLeft(): string[] {
  const out: string[] = [];
  for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
      const environ = readFileSync(`/proc/${p}/environ`, 'utf8');
      if (environ.split('\0').includes(`BRIG_STORE=${env.BRIG_STORE}`)) out.push(`${p} ${cmd.replace(/\0/g, ' ')}`);
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}

before(() => {
  if (!busybox) return;
  // A busybox image, as the other image tests make one: busybox-static and its applets.
  const dir = join(root, 'rootfs');
  mkdirSync(join(dir, 'bin'), { recursive: true });
  mkdirSync(join(dir, 'etc'));
  writeFileSync(join(dir, 'bin', 'busybox'), readFileSync(busybox), { mode: 0o755 });
  for (const a of ['sh', 'cat', 'echo', 'sleep', 'test', 'ls', 'wget', 'httpd', 'touch', 'date', 'mkdir', 'wc', 'rm']) symlinkSync('busybox', join(dir, 'bin', a));
  writeFileSync(join(dir, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  const r = brig('import-rootfs', '--cmd', '["/bin/sh"]', dir, 'busybox:test');
  assert.equal(r.code, 0, r.err);
});

after(() => {
  rmSync(root, { recursive: true, force: true });
});

describe('healthchecks (brig run -d --health-*)', { skip: !busybox && 'no busybox' }, () => {
  it('starting (failures in the start period do not count), healthy once the check passes, unhealthy after a failing streak; the log keeps 5', async () => {
    const r = brig('run', '-d', '--name', 'hc', '--health-cmd', 'test -e /tmp/ready', '--health-interval', '100ms', '--health-retries', '3', '--health-start-period', '60s', 'busybox:test', 'sleep', '100');
    assert.equal(r.code, 0, r.err);
    try {
      assert.deepEqual(inspect('hc').Config.Healthcheck, { Test: ['CMD-SHELL', 'test -e /tmp/ready'], Interval: 100e6, Retries: 3, StartPeriod: 60e9 });
      await until('four failed checks', () => (inspect('hc').State.Health?.Log ?? []).filter((l: { ExitCode: number }) => l.ExitCode === 1).length >= 4);
      const h0 = inspect('hc').State.Health;
      assert.equal(h0.Status, 'starting');
      assert.equal(h0.FailingStreak, 0);
      assert.equal(brig('exec', 'hc', 'touch', '/tmp/ready').code, 0);
      await until('healthy', () => inspect('hc').State.Health.Status === 'healthy');
      const h = inspect('hc').State.Health;
      assert.equal(h.FailingStreak, 0);
      assert.equal(h.Log.at(-1).ExitCode, 0);
      assert.equal(h.Log.length, 5);
      assert.match(brig('ps').out, /Up .* \(healthy\)/);
      // After a success the start period no longer shields: three failures in a row make it unhealthy.
      assert.equal(brig('exec', 'hc', 'rm', '/tmp/ready').code, 0);
      await until('unhealthy', () => inspect('hc').State.Health.Status === 'unhealthy');
      const u = inspect('hc').State.Health;
      assert.ok(u.FailingStreak >= 3);
      assert.equal(u.Log.at(-1).ExitCode, 1);
    } finally {
      assert.equal(brig('rm', '-f', 'hc').code, 0);
    }
  });

  it('a check runs inside the container (its files, its output) and a timeout fails it', async () => {
    const r = brig('run', '-d', '--name', 'hc2', '--health-cmd', 'cat /etc/passwd; sleep 5', '--health-interval', '200ms', '--health-timeout', '300ms', '--health-retries', '1', 'busybox:test', 'sleep', '100');
    assert.equal(r.code, 0, r.err);
    await until('unhealthy', () => inspect('hc2').State.Health?.Status === 'unhealthy');
    const last = inspect('hc2').State.Health.Log.at(-1);
    assert.equal(last.ExitCode, -1);
    assert.match(last.Output, /exceeded timeout/);
    assert.equal(brig('rm', '-f', 'hc2').code, 0);
    const r3 = brig('run', '-d', '--name', 'hc3', '--health-cmd', 'cat /etc/passwd', '--health-interval', '100ms', 'busybox:test', 'sleep', '100');
    assert.equal(r3.code, 0, r3.err);
    await until('a result', () => (inspect('hc3').State.Health?.Log.length ?? 0) > 0);
    // The image's /etc/passwd, not the host's.
    assert.equal(inspect('hc3').State.Health.Log[0].Output, 'root:x:0:0:root:/root:/bin/sh\n');
    assert.equal(brig('rm', '-f', 'hc3').code, 0);
  });

  it('flags are checked: --health-* need -d and --health-cmd; --no-healthcheck conflicts with them', () => {
    let r = brig('run', '--health-cmd', 'true', 'busybox:test', 'true');
    assert.equal(r.code, 125);
    assert.match(r.err, /--health-cmd needs -d/);
    r = brig('run', '-d', '--health-interval', '1s', 'busybox:test', 'true');
    assert.equal(r.code, 125);
    assert.match(r.err, /need --health-cmd/);
    r = brig('run', '-d', '--no-healthcheck', '--health-cmd', 'true', 'busybox:test', 'true');
    assert.match(r.err, /--no-healthcheck conflicts with --health-cmd/);
    r = brig('run', '-d', '--health-cmd', 'true', '--health-interval', 'soon', 'busybox:test', 'true');
    assert.match(r.err, /--health-interval: expected a duration/);
    assert.equal(brig('ps', '-a', '-q').out, '');
  });
});

describe('a project: web server, client, volume, .env, profile, edit, down', { skip: !busybox && 'no busybox' }, () => {
  const dir = join(root, 'shop');
  let port = 0;
  const compose = (...args: string[]) => brigCli(['compose', '-f', join(dir, 'compose.yaml'), ...args], { env, timeoutMs: 120_000 });

  before(async () => {
    port = await freePort();
    mkdirSync(join(dir, 'web'), { recursive: true });
    writeFileSync(join(dir, 'web', 'Dockerfile'), 'FROM busybox:test\nRUN mkdir -p /www\nCOPY index.html /www/index.html\nCMD ["httpd", "-f", "-p", "8080", "-h", "/www"]\n');
    writeFileSync(join(dir, 'web', 'index.html'), 'hello from web\n');
    writeFileSync(join(dir, '.env'), `WEB_PORT=${port}\nGREETING=hi-from-dotenv\n`);
    writeFileSync(
      join(dir, 'compose.yaml'),
      `name: shop
x-restart: &restart
  restart: "no"

services:
  web:
    <<: *restart
    build: ./web
    ports:
      - "127.0.0.1:\${WEB_PORT}:8080"
    environment:
      GREETING: \${GREETING}
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
      interval: 200ms
      timeout: 2s
      retries: 20

  counter:
    image: busybox:test
    command: ["sh", "-c", "echo run >> /data/runs; sleep 1000"]
    stop_grace_period: 1s
    volumes:
      - counts:/data

  client:
    image: busybox:test
    depends_on:
      web:
        condition: service_healthy
    command: ["sh", "-c", "wget -q -O- http://web:8080/ && sleep 1000"]
    stop_grace_period: 1s

  debug:
    image: busybox:test
    profiles: [tools]
    command: ["sleep", "1000"]

volumes:
  counts:
`,
    );
  });

  it('up -d --wait: built, started in order, healthy; the page over the published port; .env interpolated', async () => {
    const r = compose('up', '-d', '--wait', 'web', 'counter');
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /Building web/);
    assert.equal(await get(port), 'hello from web\n');
    const web = inspect('shop-web-1');
    assert.equal(web.State.Health.Status, 'healthy');
    assert.ok(web.Config.Env.includes('GREETING=hi-from-dotenv'));
    const labels = web.Config.Labels;
    assert.equal(labels['com.docker.compose.project'], 'shop');
    assert.equal(labels['com.docker.compose.service'], 'web');
    assert.equal(labels['com.docker.compose.container-number'], '1');
    assert.equal(labels['com.docker.compose.oneoff'], 'False');
    assert.match(labels['com.docker.compose.config-hash'], /^[0-9a-f]{64}$/);
    const ps = compose('ps');
    assert.match(ps.out, /^NAME +IMAGE +COMMAND +SERVICE +CREATED +STATUS +PORTS\n/);
    assert.match(ps.out, /shop-web-1 .* web .* Up .*\(healthy\) .*127\.0\.0\.1:\d+->8080\/tcp/);
    assert.match(ps.out, /shop-counter-1 /);
    assert.doesNotMatch(ps.out, /debug/);
    assert.equal(compose('exec', '-T', 'web', 'cat', '/www/index.html').out, 'hello from web\n');
    assert.match(compose('logs', 'counter').out, /^$|counter/);
    assert.match(compose('images').out, /shop-web-1 +shop-web +latest/);
  });

  it('a client waiting for the healthy web server, fetching from it by service name', async () => {
    const r = compose('up', '-d', 'client');
    assert.equal(r.code, 0, r.err);
    await until('the page in the client log', () => /hello from web/.test(compose('logs', 'client').out));
  });

  it('up after an edit recreates only the edited service', async () => {
    const before = { web: inspect('shop-web-1').Id, counter: inspect('shop-counter-1').Id };
    const text = readFileSync(join(dir, 'compose.yaml'), 'utf8');
    writeFileSync(join(dir, 'compose.yaml'), text.replace('echo run >> /data/runs; sleep 1000', 'echo run >> /data/runs; echo edited; sleep 1000'));
    const r = compose('up', '-d', 'web', 'counter');
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /Container shop-counter-1 {2}Recreate/);
    assert.doesNotMatch(r.err, /shop-web-1 {2}Recreate/);
    assert.equal(inspect('shop-web-1').Id, before.web);
    assert.notEqual(inspect('shop-counter-1').Id, before.counter);
    await until('the new command ran', () => /edited/.test(compose('logs', 'counter').out));
    // The named volume outlived the old container: two runs counted.
    assert.equal(compose('exec', '-T', 'counter', 'cat', '/data/runs').out, 'run\nrun\n');
  });

  it('--profile brings in the profile\'s service; run --rm a one-off', () => {
    const r = compose('--profile', 'tools', 'up', '-d', 'debug');
    assert.equal(r.code, 0, r.err);
    assert.match(compose('--profile', 'tools', 'ps', '--services').out, /debug/);
    const one = compose('run', '--rm', '--no-deps', 'counter', 'cat', '/data/runs');
    assert.equal(one.code, 0, one.err);
    assert.equal(one.out, 'run\nrun\n');
    assert.equal(
      brig('ps', '-a', '--filter', 'label=com.docker.compose.oneoff=True', '-q').out,
      '',
    );
  });

  it('down keeps the named volume; up again sees its data; down -v removes it and leaves nothing', async () => {
    let r = compose('--profile', 'tools', 'down');
    assert.equal(r.code, 0, r.err);
    assert.equal(brig('ps', '-a', '-q').out, '');
    assert.match(brig('volume', 'ls', '-q').out, /^shop_counts$/m);
    r = compose('up', '-d', 'counter');
    assert.equal(r.code, 0, r.err);
    await until('a third run counted', () => compose('exec', '-T', 'counter', 'cat', '/data/runs').out === 'run\nrun\nrun\n');
    r = compose('down', '-v');
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /Volume shop_counts {2}Removed/);
    // Nothing left: containers, volumes, networks, monitors, runtime directories.
    assert.equal(brig('ps', '-a', '-q').out, '');
    assert.equal(brig('volume', 'ls', '-q').out, '');
    const nets = brig('network', 'ls', '-q');
    if (nets.code === 0) assert.equal(nets.out, '');
    // Processes (monitors, containers, the network's holder) and with them their namespaces.
    await until('the processes gone', () => processesLeft().length === 0);
    const rt = join(env.XDG_RUNTIME_DIR, 'brig');
    assert.deepEqual(existsSync(rt) ? readdirSync(rt) : [], []);
  });
});

guardLeaks();
