// Networking: pasta outbound, published ports (pasta and brig's proxy),
// name files, what the program inside may not do to its network. Traffic
// goes only to 127.0.0.0/8 on the host and into the sandboxes' own
// namespaces: pasta's gateway address is mapped to the host's loopback
// (hostLoopback), and nothing connects to any other address.
import assert from 'node:assert/strict';
import { spawn as spawnChild } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { createSocket } from 'node:dgram';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { OptionsError, run, spawn } from '../src/index.js';
import { parsePublish } from '../src/net/ports.js';
import { hostGateway } from '../src/net/names.js';
import { findPasta } from '../src/net/pasta.js';
import { PortProxy } from '../src/net/proxy.js';
import { brigCli, descendants, guardLeaks, running } from './helpers.js';

const pasta = findPasta();
const noPasta = !pasta && "skipped: no pasta (Debian's passt package)";
const gateway = hostGateway();
const noGateway = !gateway && 'skipped: the host has no IPv4 default route for pasta to copy';
const PY = '/usr/bin/python3';

function pastaProcesses(): string[] {
  return descendants()
    .filter((p) => /^(passt|pasta)/.test(p.comm))
    .map((p) => `${p.pid} ${p.comm}`);
}

async function hostServer(reply: (peer: string) => string): Promise<{ server: Server; port: number; peers: string[] }> {
  const peers: string[] = [];
  const server = createServer((s) => {
    peers.push(s.remoteAddress ?? '?');
    s.end(reply(s.remoteAddress ?? '?'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port, peers };
}

function fetchLine(port: number, host = '127.0.0.1', send = ''): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = connect(port, host);
    let got = '';
    c.on('connect', () => c.end(send));
    c.on('data', (d) => (got += d));
    c.on('error', reject);
    c.on('close', () => resolve(got));
  });
}

// A TCP server inside: says who connected, then echoes one line.
const TCP_SERVER = `
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(16)
print("up", flush=True)
while True:
    c, a = s.accept()
    data = c.recv(4096)
    c.sendall(("peer=%s data=%s" % (a[0], data.decode())).encode()); c.close()
`;

async function untilUp(p: ReturnType<typeof spawn>): Promise<void> {
  let out = '';
  await new Promise<void>((resolve, reject) => {
    p.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('up')) resolve();
    });
    p.wait().then((r) => reject(new Error(`server ended: ${r.status} ${r.stderr} ${r.error?.message ?? ''}`)));
  });
}

describe('network pasta', { skip: noPasta || noGateway, timeout: 120_000 }, () => {
  it("reaches a server on the host's loopback through the gateway mapping, configured before the program runs", async () => {
    const { server, port, peers } = await hostServer(() => 'hello from the host\n');
    try {
      const script = `
import socket
print(open("/etc/resolv.conf").read().strip().splitlines()[-1])
print(socket.gethostbyname("host.brig.internal"))
s = socket.create_connection(("host.brig.internal", ${port}), timeout=5)
print(s.recv(100).decode().strip())
`;
      const r = await run([PY, '-c', script], { network: 'pasta', hostLoopback: true, wallTimeLimitMs: 20000 });
      assert.equal(r.status, 'ok', `${r.stderr} ${r.error?.message ?? ''}`);
      assert.equal(r.stdout.toString(), `nameserver 169.254.1.1\n${gateway}\nhello from the host\n`);
      // pasta connected from the host's loopback: the only address contacted.
      assert.deepEqual(peers, ['127.0.0.1']);
    } finally {
      server.close();
    }
    assert.deepEqual(pastaProcesses(), [], 'pasta ended with the sandbox');
  });

  it('gives the sandbox an address and a default route, and the program cannot change either', async () => {
    const script = `
ip -4 -o addr show dev eth0 | grep -q 'inet ' && echo addr
ip route | grep -q '^default' && echo route
ip addr add 10.99.0.1/32 dev eth0 2>&1 | grep -q 'Operation not permitted' && echo addr-denied
ip route add 10.98.0.0/16 dev eth0 2>&1 | grep -q 'Operation not permitted' && echo route-denied
ip link set eth0 down 2>&1 | grep -q 'Operation not permitted' && echo link-denied
ip -4 -o addr show dev eth0 | grep -c 10.99.0.1
grep -c CapEff:.0000000000000000 /proc/self/status
# nothing of pasta's is visible or listening inside
ls /proc | grep -c '^[0-9]'
awk 'NR>1 && $4=="0A"' /proc/net/tcp /proc/net/tcp6 | wc -l
`;
    const r = await run(['sh', '-c', script], { network: 'pasta', wallTimeLimitMs: 20000 });
    assert.equal(r.status, 'ok', `${r.stderr} ${r.error?.message ?? ''}`);
    const lines = r.stdout.toString().trim().split('\n');
    assert.deepEqual(lines.slice(0, 7), ['addr', 'route', 'addr-denied', 'route-denied', 'link-denied', '0', '1']);
    // /proc shows the shell, its children, nothing of the host's (pasta runs there).
    assert.ok(Number(lines[7]) <= 4, `processes seen: ${lines[7]}`);
    assert.equal(lines[8], '0', 'no socket listens inside');
    assert.deepEqual(pastaProcesses(), []);
  });

  it('ends pasta when the Node process that started it is SIGKILLed', async () => {
    const here = dirname(fileURLToPath(import.meta.url));
    const code = `
      import { spawn } from ${JSON.stringify(join(here, '../src/index.js'))};
      const p = spawn(['sleep', '60'], { network: 'pasta', stdout: 'ignore', stderr: 'ignore' });
      const info = await p.network;
      console.log(info.pastaPid);
      setInterval(() => {}, 1000);
    `;
    const child = spawnChild(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    const pid = Number(await new Promise<string>((resolve) => child.stdout!.once('data', (d) => resolve(String(d).trim()))));
    assert.ok(pid > 0 && running(pid), 'pasta runs');
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    for (let i = 0; i < 100 && running(pid); i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(running(pid), false, 'pasta died with its Node process');
  });

  it('fails as a setup error naming pasta when it cannot start', async () => {
    const saved = process.env.BRIG_PASTA;
    process.env.BRIG_PASTA = '/nonexistent/pasta';
    try {
      const r = await run(['true'], { network: 'pasta' });
      assert.equal(r.status, 'setup-error');
      assert.equal(r.error?.step, 'pasta');
      assert.match(r.error!.message, /ENOENT.*passt/);
    } finally {
      if (saved === undefined) delete process.env.BRIG_PASTA;
      else process.env.BRIG_PASTA = saved;
    }
  });
});

describe('published ports', { skip: noPasta, timeout: 120_000 }, () => {
  for (const via of ['pasta', 'proxy'] as const) {
    for (const network of ['loopback', 'pasta'] as const) {
      it(`reach a server inside (network ${network}, via ${via}); the host side is 127.0.0.1 by default`, { skip: network === 'pasta' && noGateway }, async () => {
        const p = spawn([PY, '-c', TCP_SERVER, '8000'], { network, publish: ['8000'], publishVia: via, wallTimeLimitMs: 30000 });
        try {
          const info = await p.network;
          assert.equal(info.ports.length, 1);
          const [port] = info.ports;
          assert.equal(port.hostIp, '127.0.0.1');
          assert.equal(port.containerPort, 8000);
          assert.ok(port.hostPort > 0);
          await untilUp(p);
          const got = await fetchLine(port.hostPort, '127.0.0.1', 'ping');
          // A loopback client arrives from the sandbox's loopback either way.
          assert.equal(got, 'peer=127.0.0.1 data=ping');
          assert.equal(info.pastaPid !== undefined, via === 'pasta' || network === 'pasta', 'pasta runs only where it is needed');
        } finally {
          p.kill();
          await p.wait();
        }
        assert.deepEqual(pastaProcesses(), []);
      });
    }
  }

  it('forwards a range of TCP ports and a UDP port at the given host address and ports', async () => {
    const py = `
import socket
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 9000))
ts = []
for port in (8100, 8101):
    t = socket.socket(); t.bind(("127.0.0.1", port)); t.listen(4); ts.append(t)
print("up", flush=True)
for t in ts:
    c, a = t.accept(); c.sendall(str(t.getsockname()[1]).encode()); c.close()
d, a = u.recvfrom(100); print("udp:" + d.decode(), flush=True)
`;
    const base = 20000 + (process.pid % 20000);
    const p = spawn([PY, '-c', py], { network: 'loopback', publish: [`127.0.0.1:${base}-${base + 1}:8100-8101`, { hostIp: '127.0.0.1', hostPort: base + 2, containerPort: 9000, protocol: 'udp' }], wallTimeLimitMs: 30000, stdout: 'capture' });
    const info = await p.network;
    assert.deepEqual(
      info.ports.map((x) => `${x.hostIp}:${x.hostPort}:${x.containerPort}/${x.protocol}`),
      [`127.0.0.1:${base}:8100/tcp`, `127.0.0.1:${base + 1}:8101/tcp`, `127.0.0.1:${base + 2}:9000/udp`],
    );
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(await fetchLine(base), '8100');
    assert.equal(await fetchLine(base + 1), '8101');
    const sock = createSocket('udp4');
    const t = setInterval(() => sock.send('hi', base + 2, '127.0.0.1'), 200);
    const r = await p.wait();
    clearInterval(t);
    sock.close();
    assert.equal(r.status, 'ok', `${r.stderr}`);
    assert.equal(r.stdout.toString(), 'up\nudp:hi\n');
  });

  it('fails as a setup error naming the port when the host port is taken', async () => {
    const { server, port } = await hostServer(() => '');
    try {
      for (const via of ['pasta', 'proxy'] as const) {
        const r = await run(['true'], { network: 'loopback', publish: [`${port}:80`], publishVia: via });
        assert.equal(r.status, 'setup-error', via);
        assert.match(r.error!.step, via === 'proxy' ? /^publish$/ : /^pasta$/);
        if (via === 'proxy') assert.match(r.error!.message, new RegExp(`127.0.0.1:${port}/tcp: EADDRINUSE`));
      }
    } finally {
      server.close();
    }
    assert.deepEqual(pastaProcesses(), []);
  });
});

describe('publish and network options', () => {
  it("parses Docker's -p forms, with 127.0.0.1 as the default host address", () => {
    assert.deepEqual(parsePublish('p', '80'), [{ hostIp: '127.0.0.1', hostPort: 0, containerPort: 80, protocol: 'tcp' }]);
    assert.deepEqual(parsePublish('p', '8080:80/udp'), [{ hostIp: '127.0.0.1', hostPort: 8080, containerPort: 80, protocol: 'udp' }]);
    assert.deepEqual(parsePublish('p', '0.0.0.0:8080:80'), [{ hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80, protocol: 'tcp' }]);
    assert.deepEqual(parsePublish('p', '[::1]:8080:80'), [{ hostIp: '::1', hostPort: 8080, containerPort: 80, protocol: 'tcp' }]);
    assert.deepEqual(parsePublish('p', '127.0.0.2::80'), [{ hostIp: '127.0.0.2', hostPort: 0, containerPort: 80, protocol: 'tcp' }]);
    assert.equal(parsePublish('p', '9000-9009:80-89').length, 10);
    assert.throws(() => parsePublish('p', '9000-9001:80-89'), /differ in length/);
    assert.throws(() => parsePublish('p', '80/sctp'), /tcp or udp/);
    assert.throws(() => parsePublish('p', '70000'), /out of range/);
    assert.throws(() => parsePublish('p', 'nope:80:80'), /IPv4 or IPv6/);
  });

  it('rejects what cannot work, naming the field', async () => {
    await assert.rejects(run(['true'], { publish: ['80'] }), (e: OptionsError) => e instanceof OptionsError && e.field === 'publish' && /network 'none'/.test(e.message));
    await assert.rejects(run(['true'], { network: 'host', publish: ['80'] }), (e: OptionsError) => e.field === 'publish');
    await assert.rejects(run(['true'], { network: 'loopback', hostLoopback: true }), (e: OptionsError) => e.field === 'hostLoopback');
    await assert.rejects(run(['true'], { network: 'loopback', publish: ['80', '127.0.0.1:8080:80', '8080:81'] }), /published twice/);
    await assert.rejects(run(['true'], { network: 'wifi' as never }), (e: OptionsError) => e.field === 'network');
    await assert.rejects(run(['true'], { network: 'loopback', publishVia: 'magic' as never }), (e: OptionsError) => e.field === 'publishVia');
    await assert.rejects(run(['true'], { extraHosts: ['nocolon'] }), (e: OptionsError) => e.field === 'extraHosts[0]');
    await assert.rejects(run(['true'], { dns: ['example.com'] }), (e: OptionsError) => e.field === 'dns[0]');
  });

  it('the CLI takes --publish (long form), --add-host, --dns, --dns-search and says what is wrong in one line', () => {
    const bad = brigCli(['run', '--network', 'loopback', '--publish', '1:2:3:4', '--', 'true']);
    assert.equal(bad.code, 125);
    assert.match(bad.err, /^brig run: --publish: expected \[IP:\]\[HOSTPORT:\]PORT/);
    assert.equal(bad.err.trim().split('\n').length, 1);
    const r = brigCli(['run', '--add-host', 'db:10.0.0.7', '--add-host', 'v6:fd00::7', '--dns', '127.0.0.53', '--dns-search', 'example.test', '--', 'sh', '-c', 'cat /etc/hosts /etc/resolv.conf']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^127\.0\.0\.1\tlocalhost brig\n/);
    assert.match(r.out, /\n10\.0\.0\.7\tdb\nfd00::7\tv6\n/);
    assert.match(r.out, /\nnameserver 127\.0\.0\.53\nsearch example\.test\n$/);
    const host = brigCli(['run', '--network', 'host', '--', 'sh', '-c', 'readlink /proc/self/ns/net']);
    assert.equal(host.code, 0, host.err);
    assert.match(host.err, /warning: --network host/);
    assert.equal(host.out.trim(), readlinkNs());
  });

  it('a sandbox without a network asked for has no resolv.conf and the plain hosts file', async () => {
    const r = await run(['sh', '-c', 'cat /etc/hosts; test -e /etc/resolv.conf && echo resolv']);
    assert.equal(r.stdout.toString(), '127.0.0.1\tlocalhost brig\n::1\tlocalhost ip6-localhost ip6-loopback\n');
  });
});

function readlinkNs(): string {
  return readlinkSync('/proc/self/ns/net');
}

describe("UDP through brig's proxy", { timeout: 60_000 }, () => {
  it('publishVia proxy: each client gets its own replies; an idle session is closed; nothing is left', async () => {
    const py = `import socket
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 9053))
print("up", flush=True)
while True:
    d, a = u.recvfrom(100); u.sendto(d.upper() + b" " + str(a[1]).encode(), a)
`;
    const p = spawn([PY, '-c', py], { network: 'loopback', publish: ['127.0.0.1::9053/udp'], publishVia: 'proxy', wallTimeLimitMs: 30000 });
    const ask = (sock: ReturnType<typeof createSocket>, hostPort: number, msg: string) =>
      new Promise<string[]>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no reply to ${msg}`)), 3000);
        sock.once('message', (m) => {
          clearTimeout(t);
          resolve(String(m).split(' '));
        });
        sock.send(msg, hostPort, '127.0.0.1');
      });
    try {
      const info = await p.network;
      assert.equal(info.pastaPid, undefined, 'no pasta: the proxy forwards UDP');
      const [port] = info.ports;
      assert.equal(port.protocol, 'udp');
      await untilUp(p);
      const a = createSocket('udp4');
      const b = createSocket('udp4');
      try {
        const [ra, fromA] = await ask(a, port.hostPort, 'hello');
        const [rb, fromB] = await ask(b, port.hostPort, 'world');
        const [ra2, fromA2] = await ask(a, port.hostPort, 'again');
        assert.deepEqual([ra, rb, ra2], ['HELLO', 'WORLD', 'AGAIN']);
        assert.equal(fromA, fromA2, "a client's datagrams go out on its own session");
        assert.notEqual(fromA, fromB, 'two clients, two sessions');
      } finally {
        a.close();
        b.close();
      }
      // A proxy of its own on the same sandbox, with a short idle time: the session goes after it.
      const proxy = await PortProxy.start(p.pid, [{ hostIp: '127.0.0.1', hostPort: 0, containerPort: 9053, protocol: 'udp' }], { udpIdleMs: 300 });
      const c = createSocket('udp4');
      try {
        assert.equal((await ask(c, proxy.bound()[0], 'x'))[0], 'X');
        assert.equal(proxy.udpSessions(), 1);
        await new Promise((r) => setTimeout(r, 900));
        assert.equal(proxy.udpSessions(), 0, 'the idle session was closed');
        assert.equal((await ask(c, proxy.bound()[0], 'y'))[0], 'Y', 'a new session for the next datagram');
      } finally {
        c.close();
        proxy.close();
      }
      assert.equal(proxy.udpSessions(), 0);
    } finally {
      p.kill();
      await p.wait();
    }
  });
});

guardLeaks();
