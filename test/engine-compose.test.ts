// Debian's docker-compose (1.29, /usr/bin/docker-compose, docker-py underneath),
// unmodified, against brig system service: a two-service file with a user
// network and a named volume comes up (the network and the volume made with
// compose's labels, both containers running, data written by one service
// read by the other through the volume and over the network, by the other's
// service name: busybox httpd in one, wget in the other) and goes down (containers and network
// gone, the volume kept until down -v).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { listContainers } from '../src/container/index.js';
import { Store } from '../src/image/store.js';
import { DOCKER, engineRoot, startService, type Service } from './engine-util.js';
import { brigBin, guardLeaks } from './helpers.js';

const COMPOSE = '/usr/bin/docker-compose';
const skip = (!existsSync(COMPOSE) && 'skipped: no /usr/bin/docker-compose (apt-get install docker-compose)') || (!existsSync(DOCKER) && 'skipped: no /usr/bin/docker') || (!['/usr/bin/busybox', '/bin/busybox'].some(existsSync) && 'skipped: no busybox');

const PROJECT = 'brigcompose';

/** A busybox image with the applets the services use (a web server, a client, a shell). */
function composeImage(env: NodeJS.ProcessEnv, dir: string, ref: string): void {
  const busybox = ['/usr/bin/busybox', '/bin/busybox'].find((p) => existsSync(p))!;
  mkdirSync(join(dir, 'bin'), { recursive: true });
  mkdirSync(join(dir, 'tmp'), { mode: 0o1777 });
  mkdirSync(join(dir, 'etc'));
  writeFileSync(join(dir, 'etc', 'passwd'), 'root:x:0:0:root:/:/bin/sh\n');
  writeFileSync(join(dir, 'bin', 'busybox'), readFileSync(busybox), { mode: 0o755 });
  for (const a of ['sh', 'cat', 'echo', 'sleep', 'seq', 'sed', 'httpd', 'wget', 'true']) symlinkSync('busybox', join(dir, 'bin', a));
  const r = spawnSync(process.execPath, [brigBin, 'import-rootfs', '--cmd', '["/bin/sh"]', dir, ref], { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`import-rootfs: ${r.stderr}`);
  rmSync(dir, { recursive: true, force: true });
}
const FILE = `version: "3.8"
services:
  web:
    image: brigtest/bb:1
    command: ["/bin/sh", "-c", "echo hello-from-web > /data/greeting; exec httpd -f -p 8080 -h /data"]
    volumes:
      - shared:/data
    networks:
      - back
    labels:
      role: server
  client:
    image: brigtest/bb:1
    command: ["/bin/sh", "-c", "while [ ! -s /data/greeting ]; do sleep 0.1; done; echo client read: $$(cat /data/greeting); for i in $$(seq 50); do wget -q -O- http://web:8080/greeting && break; sleep 0.2; done | sed 's/^/over the network: /'; exec sleep 600"]
    depends_on:
      - web
    volumes:
      - shared:/data
    networks:
      - back
networks:
  back:
    labels:
      purpose: test
volumes:
  shared:
`;


describe('Engine API: docker-compose 1.29 up and down', { skip }, () => {
  const { root: work, env } = engineRoot('brig-engine-compose-');
  let svc: Service;

  function compose(args: string[], timeoutMs = 120_000) {
    const r = spawnSync(COMPOSE, ['-p', PROJECT, '-f', join(work, 'docker-compose.yml'), ...args], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: work, LANG: 'C.UTF-8', DOCKER_HOST: `unix://${svc.socket}`, DOCKER_CONFIG: join(work, 'docker-config'), COMPOSE_INTERACTIVE_NO_CLI: '1' },
      cwd: work,
      encoding: 'utf8',
      timeout: timeoutMs,
    });
    return { code: r.status, out: r.stdout ?? '', err: r.stderr ?? '' };
  }
  const composeOk = (args: string[]) => {
    const r = compose(args);
    assert.equal(r.code, 0, `docker-compose ${args.join(' ')}: ${r.err}${r.out}`);
    return r.out + r.err;
  };
  const ours = () => listContainers({ all: true }).filter((c) => c.Config.Labels?.['com.docker.compose.project'] === PROJECT);

  before(async () => {
    chmodSync(work, 0o755);
    writeFileSync(join(work, 'docker-compose.yml'), FILE);
    composeImage(env, mkdtempSync(join(work, 'rootfs-')), 'brigtest/bb:1');
    svc = await startService(env);
    // This process reads the same store and container records as the service.
    process.env.BRIG_STORE = env.BRIG_STORE;
    process.env.XDG_RUNTIME_DIR = env.XDG_RUNTIME_DIR;
  });

  after(async () => {
    // Whatever a failed step left: compose down first, then the service.
    if (svc && ours().length) compose(['down', '-v', '--timeout', '1']);
    await svc?.stop();
    delete process.env.BRIG_STORE;
    delete process.env.XDG_RUNTIME_DIR;
    rmSync(work, { recursive: true, force: true });
  });

  it('up -d makes the network and the volume with compose labels and starts both services; the volume is shared', async () => {
    const out = composeOk(['up', '-d']);
    assert.match(out, new RegExp(`Creating network "${PROJECT}_back"`));
    assert.match(out, new RegExp(`Creating volume "${PROJECT}_shared"`));
    const { getNetwork } = await import('../src/net/networks.js');
    const net = getNetwork(`${PROJECT}_back`);
    assert.equal(net.Labels['com.docker.compose.project'], PROJECT);
    assert.equal(net.Labels.purpose, 'test');
    const store = new Store(env.BRIG_STORE);
    assert.ok(store.listVolumes().includes(`${PROJECT}_shared`));
    const running = ours().filter((c) => c.State.Running);
    assert.deepEqual(running.map((c) => c.Config.Labels['com.docker.compose.service']).sort(), ['client', 'web']);
    // The client read what the web service wrote, through the named volume.
    let logs = '';
    for (let i = 0; i < 100 && !/client read: hello-from-web/.test(logs); i++) {
      logs = composeOk(['logs', '--no-color', 'client']);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.match(logs, /client read: hello-from-web/);
    // And over the network: the client reached web by its service name (brig's hosts file on the network).
    for (let i = 0; i < 100 && !/over the network: hello-from-web/.test(logs); i++) {
      logs = composeOk(['logs', '--no-color', 'client']);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.match(logs, /over the network: hello-from-web/);
    assert.equal(store.inspectVolume(`${PROJECT}_shared`).bytes, 'hello-from-web\n'.length);
    // A second up finds everything as it is (compose checks the network's and volume's config).
    const again = composeOk(['up', '-d']);
    assert.match(again, /up-to-date/);
  });

  it('ps lists both; down removes the containers and the network and keeps the volume; down -v removes it', async () => {
    const ps = composeOk(['ps']);
    assert.match(ps, new RegExp(`${PROJECT}_web_1 .* Up`));
    assert.match(ps, new RegExp(`${PROJECT}_client_1 .* Up`));
    const down = composeOk(['down', '--timeout', '1']);
    assert.match(down, new RegExp(`Removing network ${PROJECT}_back`));
    assert.deepEqual(ours(), []);
    const { listNetworks } = await import('../src/net/networks.js');
    assert.ok(!listNetworks().some((n) => n.Name === `${PROJECT}_back`));
    const store = new Store(env.BRIG_STORE);
    assert.ok(store.listVolumes().includes(`${PROJECT}_shared`), 'down without -v keeps the volume');
    composeOk(['down', '-v']);
    assert.ok(!store.listVolumes().includes(`${PROJECT}_shared`));
  });
});

guardLeaks();
