// User networks (issue 24): records, leases, and containers on them, made
// and used by separate brig processes (bin/brig) as users do. Traffic only
// inside namespaces this test made (the network holder's bridges and the
// containers'), never any other address.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { brigRoot, guardLeaks, running, until } from './helpers.js';
import { http, startService } from './engine-util.js';

const { root, env, brig, ok } = brigRoot('nettest-');

function inspect(name: string) {
  return JSON.parse(ok('inspect', '--type', 'container', name))[0];
}

function holderFile(): string {
  return join(env.BRIG_STORE, 'net', 'holder.json');
}

function holderPid(): number | undefined {
  try {
    const h = JSON.parse(readFileSync(holderFile(), 'utf8'));
    return running(h.Pid) ? h.Pid : undefined;
  } catch {
    return undefined;
  }
}

function leases(): number {
  const dir = join(env.BRIG_STORE, 'net');
  if (!existsSync(dir)) return 0;
  return readdirSync(dir)
    .filter((n) => /^[0-9a-f]{64}\.json$/.test(n))
    .reduce((s, n) => s + Object.keys(JSON.parse(readFileSync(join(dir, n), 'utf8')).Containers).length, 0);
}

/** A TCP server in the container: answers each connection with a line naming it. */
const SERVER = `import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', 8080))
s.listen(8)
while True:
    c, a = s.accept()
    c.sendall(b'hello from server\\n')
    c.close()
`;

/** A client: connects to argv[1]:argv[2] (1 s), prints what it got or the error's errno name. */
const CLIENT = `import socket, sys, errno
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)
    print(c.recv(100).decode().strip())
except socket.timeout:
    print('timeout'); sys.exit(3)
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e))); sys.exit(4)
`;

function client(container: string, host: string, port = 8080) {
  return brig('exec', container, 'python3', '-c', CLIENT, host, String(port));
}

after(() => {
  for (const n of ['a1', 'a2', 'a3', 'a4', 'b1', 'l1', 'k1', 'k2', 'p1', 'h1', 'u1']) brig('rm', '-f', n);
  brig('network', 'prune', '-f');
  rmSync(root, { recursive: true, force: true });
});

describe('network records', () => {
  it('create, ls, inspect, rm: Docker shapes, subnets from 10.89.N.0/24, Docker errors', () => {
    const id = ok('network', 'create', '--label', 'team=x', 'r1').trim();
    assert.match(id, /^[0-9a-f]{64}$/);
    const [n] = JSON.parse(ok('network', 'inspect', 'r1'));
    assert.equal(n.Id, id);
    assert.equal(n.Driver, 'bridge');
    assert.equal(n.Scope, 'local');
    assert.equal(n.Internal, false);
    assert.deepEqual(n.Labels, { team: 'x' });
    assert.match(n.IPAM.Config[0].Subnet, /^10\.89\.\d+\.0\/24$/);
    ok('network', 'create', '--subnet', '10.77.0.0/16', '--internal', 'r2');
    assert.equal(JSON.parse(ok('network', 'inspect', 'r2'))[0].IPAM.Config[0].Gateway, '10.77.0.1');
    assert.equal(ok('network', 'ls', '-q', '--filter', 'label=team=x').trim(), id.slice(0, 12));
    assert.match(ok('network', 'ls'), /NETWORK ID\s+NAME\s+DRIVER\s+SCOPE\n[0-9a-f]{12}\s+r1\s+bridge\s+local/);
    let r = brig('network', 'create', 'r1');
    assert.equal(r.code, 1);
    assert.match(r.err, /network with name r1 already exists/);
    r = brig('network', 'create', '--subnet', '10.77.5.0/24', 'r3');
    assert.match(r.err, /Pool overlaps/);
    r = brig('network', 'create', '--subnet', '10.77.5.1/24', 'r3');
    assert.match(r.err, /host bits are set/);
    r = brig('network', 'inspect', 'nope');
    assert.equal(r.code, 1);
    assert.match(r.err, /network nope not found/);
    r = brig('network', 'create', 'host');
    assert.notEqual(r.code, 0);
    ok('network', 'rm', 'r1', 'r2');
    assert.equal(ok('network', 'ls', '-q'), '');
  });

  it('leases: concurrent brig processes never hand out one address twice', () => {
    ok('network', 'create', '--subnet', '10.78.0.0/28', 'lease');
    const script = `import('${join(process.cwd(), 'dist/src/net/networks.js')}').then((m) => { const out = []; for (let i = 0; i < 3; i++) out.push(m.leaseAddress('lease', process.argv[1] + i, 'c').ip); console.log(out.join(' ')); })`;
    const procs = [0, 1, 2, 3].map((k) => spawnSync(process.execPath, ['-e', script, `${k}`.repeat(63)], { env, encoding: 'utf8' }));
    const ips = procs.flatMap((p) => {
      assert.equal(p.status, 0, p.stderr);
      return p.stdout.trim().split(' ');
    });
    assert.equal(ips.length, 12);
    assert.equal(new Set(ips).size, 12, `duplicates among ${ips.join(', ')}`);
    // a /28 has 13 addresses for containers: one more, then it is full
    const more = spawnSync(process.execPath, ['-e', script, 'f'.repeat(63)], { env, encoding: 'utf8' });
    assert.match(more.stderr, /no available IPv4 addresses on network lease/);
    const r = brig('network', 'rm', 'lease');
    // the leases' containers do not exist: the sweep drops them, and rm goes through
    assert.equal(r.code, 0, r.err);
  });
});

describe('containers on user networks', () => {
  it('two containers on one network talk by name and alias; a third on another network cannot; the program cannot reconfigure or reach the holder', async () => {
    ok('network', 'create', 'front');
    ok('network', 'create', '--internal', 'back');
    ok('run', '-d', '--name', 'a1', '--network', 'front', '--network-alias', 'web', '--', 'python3', '-c', SERVER);
    const a1 = inspect('a1');
    const ip1 = a1.NetworkSettings.Networks.front.IPAddress;
    assert.match(ip1, /^10\.89\.\d+\.2$/);
    assert.equal(a1.NetworkSettings.Networks.front.Gateway, ip1.replace(/\.2$/, '.1'));
    assert.deepEqual(a1.NetworkSettings.Networks.front.Aliases, ['web']);
    ok('run', '-d', '--name', 'a2', '--network', 'front', '--', 'sleep', '1000');
    // a1 started first: the file it sees as /etc/hosts (bound from the runtime directory) names a2
    // once a2's start has returned, rewritten in place before a2's program ran
    const a1Hosts = join(env.XDG_RUNTIME_DIR, 'brig', a1.Id.slice(0, 12), 'hosts');
    assert.match(readFileSync(a1Hosts, 'utf8'), /\ta2 [0-9a-f]{12}\n/);
    assert.match(brig('exec', 'a1', 'cat', '/etc/hosts').out, /\ta2 [0-9a-f]{12}\n/);
    await until('the server listening', () => client('a2', 'a1').out.trim() === 'hello from server');
    assert.equal(client('a2', 'web').out.trim(), 'hello from server');
    assert.equal(client('a2', a1.Id.slice(0, 12)).out.trim(), 'hello from server');
    // another network: no name, and no path to the address
    ok('run', '-d', '--name', 'a3', '--network', 'back', '--', 'sleep', '1000');
    let r = client('a3', 'a1');
    assert.notEqual(r.code, 0);
    r = client('a3', ip1);
    assert.notEqual(r.code, 0, r.out);
    assert.match(r.out, /ENETUNREACH|timeout|EHOSTUNREACH/);
    // --internal: no route out
    r = brig('exec', 'a3', 'ip', 'route');
    assert.doesNotMatch(r.out, /default/);
    r = brig('exec', 'a3', 'ip', 'route', 'get', '192.0.2.1');
    assert.notEqual(r.code, 0);
    assert.match(r.err, /unreachable/i);
    // front is not internal: a default route via its gateway
    assert.match(brig('exec', 'a2', 'ip', 'route').out, /^default via 10\.89\.\d+\.1 dev eth0/m);
    // the program: no address change, no route, no link down, no way into the holder's namespaces
    for (const cmd of [
      ['ip', 'addr', 'add', '10.89.250.9/24', 'dev', 'eth0'],
      ['ip', 'route', 'add', '10.99.0.0/16', 'dev', 'eth0'],
      ['ip', 'link', 'set', 'eth0', 'down'],
    ]) {
      r = brig('exec', 'a2', ...cmd);
      assert.notEqual(r.code, 0, cmd.join(' '));
      assert.match(r.err, /Operation not permitted/, cmd.join(' '));
    }
    assert.match(brig('exec', 'a2', 'ip', '-o', 'link', 'show', 'eth0').out, /state UP/);
    const holder = holderPid();
    assert.ok(holder, 'a network holder runs');
    // its pid is not in the container's pid namespace; the parent user namespace cannot be had (NS_GET_PARENT)
    const probe = `import os, fcntl, errno
print(os.path.exists('/proc/${holder}'))
fd = os.open('/proc/self/ns/user', os.O_RDONLY)
try:
    p = fcntl.ioctl(fd, 0xb702)
    try:
        os.setns(p, os.CLONE_NEWUSER); print('joined')
    except OSError as e: print('setns', errno.errorcode[e.errno])
except OSError as e:
    print('parent', errno.errorcode[e.errno])
`;
    r = brig('exec', 'a2', 'python3', '-c', probe);
    assert.equal(r.code, 0, r.err);
    const [seen, got] = r.out.trim().split('\n');
    assert.equal(seen, 'False');
    assert.match(got, /^(parent|setns) EPERM$/);
    // the id map is the ordinary one: the container's uid is the caller's own
    assert.equal(brig('exec', 'a2', 'cat', '/proc/self/uid_map').out.trim().split(/\s+/)[0], '1000');
    // network rm refuses while containers are on it
    r = brig('network', 'rm', 'front');
    assert.equal(r.code, 1);
    assert.match(r.err, /has active endpoints/);
  });

  it('container:NAME shares the network namespace (loopback); --link gives hosts entry and variables', async () => {
    ok('run', '-d', '--name', 'a4', '--network', 'container:a1', '--', 'sleep', '1000');
    // a1's server listens on 0.0.0.0 in the namespace a4 joined: reached on a4's own loopback
    await until('a1 reached on a4\'s loopback', () => client('a4', '127.0.0.1').out.trim() === 'hello from server');
    assert.match(brig('exec', 'a4', 'ip', '-o', 'link', 'show', 'eth0').out, new RegExp(`link/ether ${inspect('a1').NetworkSettings.Networks.front.MacAddress}`));
    ok('run', '-d', '--name', 'l1', '--network', 'front', '--link', 'a1:db', '--', 'sleep', '1000');
    const r = brig('exec', 'l1', 'sh', '-c', 'echo $DB_NAME; grep -w db /etc/hosts');
    assert.equal(r.code, 0, r.err);
    const [name, hosts] = r.out.trim().split('\n');
    assert.equal(name, '/l1/db');
    assert.match(hosts, new RegExp(`^${inspect('a1').NetworkSettings.Networks.front.IPAddress.replace(/\./g, '\\.')}\\tdb( a1)?$`));
    assert.equal(client('l1', 'db').out.trim(), 'hello from server');
  });

  it('-p on a user network (brig port), -P with the image\'s EXPOSE', { skip: !['/usr/bin/busybox', '/bin/busybox'].some((p) => existsSync(p)) && 'no busybox' }, async () => {
    ok('run', '-d', '--name', 'p1', '--network', 'front', '-p', '127.0.0.1::8080', '--', 'python3', '-c', SERVER);
    const line = ok('port', 'p1').trim();
    const m = /^8080\/tcp -> 127\.0\.0\.1:(\d+)$/.exec(line);
    assert.ok(m, line);
    assert.equal(ok('port', 'p1', '8080').trim(), `127.0.0.1:${m![1]}`);
    assert.equal(brig('port', 'p1', '9999').code, 1);
    await until('the published server', () => spawnSync('python3', ['-c', CLIENT, '127.0.0.1', m![1]], { encoding: 'utf8' }).stdout.trim() === 'hello from server');
    ok('rm', '-f', 'p1');
    // -P: an image that EXPOSEs 8080/tcp, 9090/tcp and 53/udp: all three published
    const busybox = ['/usr/bin/busybox', '/bin/busybox'].find((p) => existsSync(p))!;
    const dir = join(root, 'rootfs');
    mkdirSync(join(dir, 'bin'), { recursive: true });
    writeFileSync(join(dir, 'bin', 'busybox'), readFileSync(busybox), { mode: 0o755 });
    for (const a of ['sh', 'sleep']) symlinkSync('busybox', join(dir, 'bin', a));
    chmodSync(root, 0o755);
    ok('import-rootfs', '--cmd', '["/bin/sleep","1000"]', dir, 'netbb:1');
    const ctx = join(root, 'ctx');
    mkdirSync(ctx);
    writeFileSync(join(ctx, 'Dockerfile'), 'FROM netbb:1\nEXPOSE 8080 9090 53/udp\n');
    ok('build', '-t', 'netbb:2', ctx);
    ok('run', '-d', '--name', 'p1', '--network', 'front', '-P', 'netbb:2');
    const lines = ok('port', 'p1').trim().split('\n').sort();
    assert.equal(lines.length, 3, lines.join('|'));
    assert.match(lines[0], /^53\/udp -> 127\.0\.0\.1:\d+$/);
    assert.match(lines[1], /^8080\/tcp -> 127\.0\.0\.1:\d+$/);
    assert.match(lines[2], /^9090\/tcp -> 127\.0\.0\.1:\d+$/);
    ok('rm', '-f', 'p1');
  });

  it('UDP published from a user network: an echo server on port 53 answers clients on the host\'s loopback, each client its own replies', async () => {
    // The server answers with what came and the address and port it came from (the proxy's session socket).
    const echo = `import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('0.0.0.0', 53))
while True:
    d, a = s.recvfrom(2048)
    s.sendto(d + b' ' + ('%s:%d' % a).encode(), a)
`;
    ok('run', '-d', '--name', 'u1', '--network', 'front', '-p', '127.0.0.1::53/udp', '--', 'python3', '-c', echo);
    const m = /^127\.0\.0\.1:(\d+)$/.exec(ok('port', 'u1', '53/udp').trim());
    assert.ok(m, 'a host port for 53/udp');
    // Two clients, interleaved: each gets its own datagrams back, and only those; each is a session of its own inside.
    const clients = `import socket, sys, json
port = int(sys.argv[1])
a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
a.settimeout(1); b.settimeout(1)
got = {'a': [], 'b': []}
try:
    for i in range(3):
        a.sendto(b'a%d' % i, ('127.0.0.1', port)); b.sendto(b'b%d' % i, ('127.0.0.1', port))
    for i in range(3):
        got['a'].append(a.recv(100).decode()); got['b'].append(b.recv(100).decode())
except socket.timeout:
    pass
print(json.dumps(got))
`;
    let got: { a: string[]; b: string[] } = { a: [], b: [] };
    await until('the echo server answering', () => {
      got = JSON.parse(spawnSync('python3', ['-c', clients, m![1]], { encoding: 'utf8' }).stdout);
      return got.a.length === 3 && got.b.length === 3;
    });
    assert.deepEqual(got.a.map((x) => x.split(' ')[0]), ['a0', 'a1', 'a2']);
    assert.deepEqual(got.b.map((x) => x.split(' ')[0]), ['b0', 'b1', 'b2']);
    const from = (xs: string[]) => new Set(xs.map((x) => x.split(' ')[1]));
    assert.equal(from(got.a).size, 1, 'one session per client');
    assert.equal(from(got.b).size, 1);
    assert.notDeepEqual([...from(got.a)], [...from(got.b)], 'two clients, two sessions');
    assert.match([...from(got.a)][0], /^127\.0\.0\.1:\d+$/);
    // 53 is below 1024: the program bound it in its own namespace (Docker's ip_unprivileged_port_start=0 there), which it cannot change
    const r = brig('exec', 'u1', 'sh', '-c', 'echo 1024 > /proc/sys/net/ipv4/ip_unprivileged_port_start');
    assert.notEqual(r.code, 0);
    ok('rm', '-f', 'u1');
  });

  it('network connect and disconnect of a running container (CLI and Engine API): names both ways, then none; the program cannot touch its new interface', async () => {
    ok('network', 'create', 'side');
    ok('run', '-d', '--name', 'h1', '--network', 'side', '--', 'python3', '-c', SERVER);
    const sideLeases = () => Object.keys(JSON.parse(ok('network', 'inspect', 'side'))[0].Containers).length;
    await until('h1 listening', () => brig('exec', 'h1', 'python3', '-c', CLIENT, '127.0.0.1', '8080').out.trim() === 'hello from server');
    // a1 (on front, serving) is not on side: neither reaches the other
    assert.notEqual(client('a1', 'h1').code, 0);
    assert.notEqual(client('h1', 'a1').code, 0);
    const a1 = inspect('a1').Id as string;
    const linksBefore = brig('exec', 'a1', 'ip', '-o', 'link').out.trim().split('\n').length;
    const reachable = async () => {
      // within a second, as names are rewritten before connect returns
      assert.equal(client('a1', 'h1').out.trim(), 'hello from server');
      assert.equal(client('h1', 'a1').out.trim(), 'hello from server');
    };
    const unreachable = (alias: string) => {
      for (const [from, to] of [['a1', 'h1'], ['h1', 'a1'], ['h1', alias]]) {
        const r = client(from, to);
        assert.notEqual(r.code, 0, `${from} -> ${to}: ${r.out}`);
      }
      assert.equal(brig('exec', 'a1', 'ip', '-o', 'link').out.trim().split('\n').length, linksBefore, 'the interface is gone');
      assert.doesNotMatch(brig('exec', 'h1', 'cat', '/etc/hosts').out, new RegExp(`\\b(a1|${alias})\\b`));
      assert.doesNotMatch(brig('exec', 'a1', 'cat', '/etc/hosts').out, /\bh1\b/);
      assert.equal(inspect('a1').NetworkSettings.Networks.side, undefined);
      assert.equal(sideLeases(), 1);
    };
    // the CLI
    ok('network', 'connect', '--alias', 'sidekick', 'side', 'a1');
    const ep = inspect('a1').NetworkSettings.Networks.side;
    assert.match(ep.IPAddress, /^10\.89\.\d+\.3$/);
    assert.deepEqual(ep.Aliases, ['sidekick']);
    assert.equal(sideLeases(), 2);
    await reachable();
    assert.equal(client('h1', 'sidekick').out.trim(), 'hello from server');
    // the new interface is eth1, plugged from the holder's side: the program cannot change it
    const ifs = brig('exec', 'a1', 'ip', '-o', '-4', 'addr', 'show', 'dev', 'eth1');
    assert.match(ifs.out, new RegExp(`inet ${ep.IPAddress.replace(/\./g, '\\.')}/24`));
    for (const cmd of [['ip', 'link', 'set', 'eth1', 'down'], ['ip', 'addr', 'add', '10.89.250.9/24', 'dev', 'eth1'], ['ip', 'link', 'del', 'eth1']]) {
      const r = brig('exec', 'a1', ...cmd);
      assert.match(r.err, /Operation not permitted/, cmd.join(' '));
    }
    let r = brig('network', 'connect', 'side', 'a1');
    assert.equal(r.code, 1);
    assert.match(r.err, /endpoint with name a1 already exists in network side/);
    ok('network', 'disconnect', 'side', 'a1');
    unreachable('sidekick');
    r = brig('network', 'disconnect', 'side', 'a1');
    assert.match(r.err, /is not connected to network side/);
    // the Engine API, as docker network connect/disconnect and compose send them
    const svc = await startService(env);
    try {
      let res = await http(svc.socket, 'POST', '/v1.41/networks/side/connect', { Container: a1.slice(0, 12), EndpointConfig: { Aliases: ['apiname'] } });
      assert.equal(res.status, 200, String(res.body));
      await reachable();
      assert.equal(client('h1', 'apiname').out.trim(), 'hello from server');
      res = await http(svc.socket, 'POST', '/v1.41/networks/side/disconnect', { Container: 'a1', Force: false });
      assert.equal(res.status, 200, String(res.body));
      unreachable('apiname');
    } finally {
      await svc.stop();
    }
    // a running container not on a user network: its namespace is its own, so it cannot be plugged into; one line says so
    ok('run', '-d', '--name', 'k1', '--', 'sleep', '1000');
    r = brig('network', 'connect', 'side', 'k1');
    assert.equal(r.code, 1);
    assert.match(r.err, /^brig network connect: container k1 is running on network mode none, not on a user network: its interfaces are its own \(stop it, connect, start it\)\n$/);
    ok('rm', '-f', 'k1', 'h1');
    ok('network', 'rm', 'side');
  });

  it('a foreground brig run --network NET joins as a container: reaches others by name, exits with its code; its lease, names and container go at its exit; run() is refused in one line', async () => {
    const before = leases();
    const containers = ok('ps', '-a', '-q');
    // a1 serves on front; the foreground run fetches from it by name, shows it is in a2's hosts file, and exits 3
    const script = `python3 -c "${CLIENT.replace(/"/g, '\\"')}" a1 8080 && cat /proc/self/net/dev | grep -c eth0 && sleep 1; exit 3`;
    const fg = spawnSync(process.execPath, [join(process.cwd(), 'bin/brig-node'), 'run', '--network', 'front', '--hostname', 'fgrun', '--', 'sh', '-c', script], { env, encoding: 'utf8', timeout: 60_000 });
    assert.equal(fg.status, 3, fg.stderr);
    assert.deepEqual(fg.stdout.trim().split('\n'), ['hello from server', '1']);
    assert.equal(leases(), before, 'its lease went at its exit');
    assert.doesNotMatch(brig('exec', 'a2', 'cat', '/etc/hosts').out, /fgrun/);
    assert.equal(ok('ps', '-a', '-q'), containers, 'the container it ran as is removed');
    // stdin (-i) ends with ours; an unknown network is one line naming it
    const cat = spawnSync(process.execPath, [join(process.cwd(), 'bin/brig-node'), 'run', '-i', '--network', 'front', '--', 'cat'], { env, input: 'piped\n', encoding: 'utf8', timeout: 60_000 });
    assert.equal(cat.status, 0, cat.stderr);
    assert.equal(cat.stdout, 'piped\n');
    const r = brig('run', '--network', 'nope', '--', 'true');
    assert.equal(r.code, 125);
    assert.equal(r.err, 'brig run: --network: network nope not found\n');
    const rep = brig('run', '--network', 'front', '--report', join(root, 'report.json'), '--', 'true');
    assert.notEqual(rep.code, 0);
    assert.match(rep.err, /^brig run: --report: not with --network front \(the program runs as a container there/);
    assert.equal(leases(), before);
    // the API's run(): refused in one line naming the field and what to use
    const api = spawnSync(process.execPath, ['--input-type=module', '-e', `import { run } from '${join(process.cwd(), 'dist/src/index.js')}'; const r = await run(['true'], { network: 'front' }); console.log(r.status, r.error.step, r.error.message)`], { env, encoding: 'utf8' });
    assert.match(api.stdout, /^setup-error network .*network front: a run\(\)\/spawn\(\) sandbox cannot join a user network .*use createContainer\(argv, \{ network \}\)/);
    assert.equal(api.stdout.trim().split('\n').length, 1);
    // ^C to brig run is passed on to the program (Docker's sig-proxy): it ends of SIGINT (130), and is removed
    const long = spawn(process.execPath, [join(process.cwd(), 'bin/brig-node'), 'run', '--network', 'front', '--', 'sleep', '1000'], { env, stdio: 'ignore' });
    const code = new Promise<number | null>((r) => long.once('exit', (c) => r(c)));
    await until('the foreground container started', () => leases() > before, 20_000);
    // (its program running: a ^C in the instant between its lease and its exec is not what this checks)
    await until('the foreground container running', () => /\bUp\b/.test(ok('ps')), 20_000);
    long.kill('SIGINT');
    assert.equal(await code, 130);
    assert.equal(ok('ps', '-a', '-q'), containers);
    assert.equal(leases(), before);
  });

  it('everything goes with the last container: leases, holder, namespaces; also after a monitor was SIGKILLed', async () => {
    const holder = holderPid();
    assert.ok(holder);
    for (const n of ['a4', 'l1', 'a3', 'a2']) ok('rm', '-f', n);
    assert.ok(holderPid(), 'a1 is still on front: the holder stays');
    // SIGKILL a1's monitor: its container dies with it; the next brig process sweeps its lease and ends the holder
    const mon = inspect('a1').Brig.MonitorPid;
    process.kill(mon, 'SIGKILL');
    await until('the monitor gone', () => !running(mon));
    await until('a1 seen exited', () => inspect('a1').State.Status === 'exited');
    assert.equal(leases(), 0);
    await until('the holder gone', () => !running(holder!), 5000);
    assert.equal(existsSync(holderFile()), false);
    ok('rm', 'a1');
    ok('network', 'rm', 'front', 'back');
    // no maker or holder left: nothing of ours runs nsenter, unshare or sleep infinity
    const ps = spawnSync('ps', ['-u', String(process.getuid!()), '-o', 'pid=,args='], { encoding: 'utf8' }).stdout;
    assert.doesNotMatch(ps, /unshare --user --net/);
  });
});

guardLeaks();
