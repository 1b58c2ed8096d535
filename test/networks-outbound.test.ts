// Outbound from user networks (issue 24): one pasta on the network holder,
// nftables in it. Traffic goes only to a server this test runs on the host's
// loopback, reached through pasta's gateway mapping (the holder's default
// gateway is mapped to the host's 127.0.0.1: pasta runs without --no-map-gw),
// and between namespaces the test made. No other address is ever contacted:
// the --internal network has no route at all, and the cross-network attempts
// go to the other network's container and gateway addresses inside the holder.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { brigRoot, brigCliAsync, guardLeaks, running, until } from './helpers.js';

const pasta = ['/usr/bin/pasta', '/usr/local/bin/pasta'].some((p) => existsSync(p));
const nft = ['/usr/sbin/nft', '/sbin/nft'].some((p) => existsSync(p));
const skip = (!pasta && 'no pasta (package passt)') || (!nft && 'no nft (package nftables)') || false;

const { root, env, brig, ok } = brigRoot('nettest-out-');

interface Holder {
  Pid: number;
  Outbound?: { Pid: number; Gateway: string; Interface: string };
  NoOutbound?: string;
}

function holder(): Holder | undefined {
  try {
    const h = JSON.parse(readFileSync(join(env.BRIG_STORE, 'net', 'holder.json'), 'utf8')) as Holder;
    return running(h.Pid) ? h : undefined;
  } catch {
    return undefined;
  }
}

function ipOn(container: string, network: string): string {
  return JSON.parse(ok('inspect', '--type', 'container', container))[0].NetworkSettings.Networks[network].IPAddress;
}

function leases(): number {
  const dir = join(env.BRIG_STORE, 'net');
  if (!existsSync(dir)) return 0;
  return readdirSync(dir)
    .filter((n) => /^[0-9a-f]{64}\.json$/.test(n))
    .reduce((s, n) => s + Object.keys(JSON.parse(readFileSync(join(dir, n), 'utf8')).Containers).length, 0);
}

/** A client in a container: connects (1 s) and prints the first line it gets, or the errno's name. */
const CLIENT = `import socket, sys, errno
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)
    print(c.recv(100).decode().strip())
except socket.timeout:
    print('timeout'); sys.exit(3)
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e))); sys.exit(4)
`;

const SERVE = (name: string) => `import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('0.0.0.0', 8080))\ns.listen(4)\nwhile True:\n    c, a = s.accept(); c.sendall(b'${name} here\\n'); c.close()\n`;

const client = (container: string, host: string, port: number) => brigCliAsync(['exec', container, 'python3', '-c', CLIENT, host, String(port)], { env });

/** The host's server, on 127.0.0.1 only: greets each connection with the peer's address, and logs it. */
const SERVER = `import socket, sys
s = socket.socket()
s.bind(('127.0.0.1', 0))
s.listen(16)
print(s.getsockname()[1], flush=True)
while True:
    c, a = s.accept()
    print('peer', a[0], flush=True)
    c.sendall(('hello host, you are %s\\n' % a[0]).encode())
    c.close()
`;
let server: ReturnType<typeof spawn> | undefined;
let port = 0;
const peers: string[] = [];

before(async () => {
  if (skip) return;
  server = spawn('python3', ['-c', SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  let buf = '';
  server.stdout!.setEncoding('utf8');
  server.stdout!.on('data', (d: string) => {
    buf += d;
    const lines = buf.split('\n');
    buf = lines.pop()!;
    for (const l of lines) {
      if (!port) port = Number(l);
      else peers.push(l);
    }
  });
  await until('the host server listening', () => port > 0);
});

after(async () => {
  for (const n of ['o1', 'o2', 'o3', 'o4', 'o5', 'o6', 'o7']) brig('rm', '-f', n);
  brig('network', 'prune', '-f');
  if (server) {
    server.kill('SIGKILL');
    await new Promise((r) => (server!.exitCode !== null || server!.signalCode !== null ? r(null) : server!.once('exit', r)));
  }
  rmSync(root, { recursive: true, force: true });
});

describe('outbound from user networks', { skip }, () => {
  it('a container reaches the host\'s loopback through pasta\'s gateway (network option brig.host-loopback); --internal has no route; a default network reaches neither the host\'s loopback nor the first network\'s containers or gateway', async () => {
    // out1 opts in to the host's loopback (off by default, as for --network pasta)
    ok('network', 'create', '-o', 'brig.host-loopback=true', 'out1');
    ok('network', 'create', '--internal', 'in1');
    ok('network', 'create', 'out2');
    ok('run', '-d', '--name', 'o1', '--network', 'out1', '--', 'python3', '-c', SERVE('o1'));
    const h = holder();
    assert.ok(h?.Outbound, `the holder has pasta: ${h?.NoOutbound}`);
    assert.ok(running(h.Outbound.Pid));
    const gw = h.Outbound.Gateway;
    assert.match(gw, /^\d+\.\d+\.\d+\.\d+$/);
    // out1: through the holder (masqueraded) and pasta to the host's 127.0.0.1
    let r = await client('o1', gw, port);
    assert.equal(r.code, 0, r.out + r.err);
    assert.equal(r.out.trim(), 'hello host, you are 127.0.0.1');
    assert.deepEqual(peers, ['peer 127.0.0.1']);
    // --internal: no default route, so the packet never leaves the container
    ok('run', '-d', '--name', 'o2', '--network', 'in1', '--', 'sleep', '1000');
    assert.doesNotMatch(ok('exec', 'o2', 'ip', 'route'), /default/);
    r = await client('o2', gw, port);
    assert.notEqual(r.code, 0);
    assert.equal(r.out.trim(), 'ENETUNREACH');
    // out2 (default options): has a default route out, but the holder drops what it sends to the
    // host's loopback gateway, to out1's container and to out1's gateway
    ok('run', '-d', '--name', 'o3', '--network', 'out2', '--', 'python3', '-c', SERVE('o3'));
    assert.match(ok('exec', 'o3', 'ip', 'route'), /^default via /m);
    r = await client('o3', gw, port);
    assert.equal(r.out.trim(), 'timeout', "out2 reached the host's loopback without brig.host-loopback");
    const ip1 = ipOn('o1', 'out1');
    ok('run', '-d', '--name', 'o4', '--network', 'out1', '--', 'sleep', '1000');
    await until('o1 served on its own network', () => brig('exec', 'o4', 'python3', '-c', CLIENT, 'o1', '8080').out.trim() === 'o1 here');
    r = await client('o3', ip1, 8080);
    assert.equal(r.out.trim(), 'timeout', 'out2 reached a container of out1');
    r = await client('o3', ip1.replace(/\.\d+$/, '.1'), port);
    assert.equal(r.out.trim(), 'timeout', "out2 reached out1's gateway address in the holder");
    // and the other way: out1 does not reach out2's container
    r = await client('o1', ipOn('o3', 'out2'), 8080);
    assert.equal(r.out.trim(), 'timeout', 'out1 reached a container of out2');
    // the program cannot touch the holder's rules: its nft would act on its own namespace, and netfilter's
    // netlink is refused to it anyway (seccomp: 'Address family not supported'; else no CAP_NET_ADMIN)
    r = brig('exec', 'o1', 'sh', '-c', 'PATH=$PATH:/usr/sbin:/sbin; nft flush ruleset');
    assert.notEqual(r.code, 0);
    assert.match(r.err, /Address family not supported|Operation not permitted|not found/);
    r = await client('o1', gw, port);
    assert.equal(r.out.trim(), 'hello host, you are 127.0.0.1');
    assert.equal(peers.length, 2, "exactly out1's two connections reached the host");
  });

  it("a network made after another's removal, with its subnet, goes out while the holder lives (the dead network's bridge does not take its replies)", async () => {
    const subnet = (n: string) => JSON.parse(ok('network', 'inspect', n))[0].IPAM.Config[0].Subnet;
    // A container on another network keeps the holder alive throughout.
    ok('network', 'create', 'keep1');
    ok('run', '-d', '--name', 'o7', '--network', 'keep1', '--', 'sleep', '1000');
    ok('network', 'create', '-o', 'brig.host-loopback=true', 'gone1');
    ok('run', '-d', '--name', 'o6', '--network', 'gone1', '--', 'sleep', '1000');
    const was = subnet('gone1');
    const goneBridge = `br-${JSON.parse(ok('network', 'inspect', 'gone1'))[0].Id.slice(0, 12)}`;
    ok('rm', '-f', 'o6');
    ok('network', 'rm', 'gone1');
    // The holder lives on (o7): network rm took the bridge out of it.
    const h = holder();
    assert.ok(h, 'the holder lives on for the other networks');
    const links = () => spawnSync('nsenter', [`--user=/proc/${h.Pid}/ns/user`, `--net=/proc/${h.Pid}/ns/net`, '--preserve-credentials', '--', 'ip', '-o', 'link', 'show'], { encoding: 'utf8' }).stdout;
    await until(`${goneBridge} gone from the holder`, () => !links().includes(goneBridge), 5000).catch((e) => assert.fail(`${e.message}: ${links()}`));
    ok('network', 'create', '-o', 'brig.host-loopback=true', 'again1');
    assert.equal(subnet('again1'), was, 'the new network has the removed one\'s subnet');
    ok('run', '-d', '--name', 'o6', '--network', 'again1', '--', 'sleep', '1000');
    const r = await client('o6', holder()!.Outbound!.Gateway, port);
    assert.equal(r.out.trim(), 'hello host, you are 127.0.0.1');
    ok('rm', '-f', 'o6', 'o7');
    ok('network', 'rm', 'again1', 'keep1');
  });

  it('pasta goes with the holder: after the last container, after a monitor\'s SIGKILL, and a SIGKILLed holder is replaced by a fresh one', async () => {
    const h = holder()!;
    assert.ok(h?.Outbound);
    // SIGKILL the holder itself: pasta exits with it
    process.kill(h.Pid, 'SIGKILL');
    await until('pasta gone with the holder', () => !running(h.Outbound!.Pid), 5000);
    // the next brig process starts a fresh holder and pasta; a container started now goes out and reaches its network
    ok('run', '-d', '--name', 'o5', '--network', 'out1', '--', 'sleep', '1000');
    const h2 = holder()!;
    assert.ok(h2?.Outbound);
    assert.notEqual(h2.Pid, h.Pid);
    let r = await client('o5', h2.Outbound.Gateway, port);
    assert.equal(r.out.trim(), 'hello host, you are 127.0.0.1');
    ok('rm', '-f', 'o1', 'o4');
    ok('run', '-d', '--name', 'o1', '--network', 'out1', '--', 'python3', '-c', SERVE('o1'));
    await until('o1 reached by name from o5', () => brig('exec', 'o5', 'python3', '-c', CLIENT, 'o1', '8080').out.trim() === 'o1 here');
    // the containers of the dead holder (o2, o3) lost their interfaces with it; remove them and o5: o1 keeps the holder
    ok('rm', '-f', 'o2', 'o3', 'o5');
    assert.equal(holder()?.Pid, h2.Pid);
    // SIGKILL o1's monitor: the container dies with it; the next brig process sweeps its lease, ends holder and pasta
    const mon = JSON.parse(ok('inspect', '--type', 'container', 'o1'))[0].Brig.MonitorPid;
    process.kill(mon, 'SIGKILL');
    await until('the monitor gone', () => !running(mon));
    await until('o1 seen exited', () => JSON.parse(ok('inspect', '--type', 'container', 'o1'))[0].State.Status === 'exited');
    await until('the holder gone', () => !running(h2.Pid), 5000);
    await until('its pasta gone', () => !running(h2.Outbound!.Pid), 5000);
    assert.equal(leases(), 0);
    assert.deepEqual(readdirSync(join(env.BRIG_STORE, 'net')).filter((n) => /^holder/.test(n)), []);
    ok('rm', 'o1');
    ok('network', 'rm', 'out1', 'in1', 'out2');
  });

  it('brig doctor says user networks have outbound, from a throwaway holder it ends', () => {
    const r = brig('doctor', '--json');
    const c = JSON.parse(r.out).checks.find((x: { name: string }) => x.name === 'user networks: outbound');
    assert.ok(c, r.out);
    assert.equal(c.state, 'ok', c.detail);
    assert.match(c.detail, /pasta on the network holder \(pasta0, default via \d+\.\d+\.\d+\.\d+/);
    assert.match(c.detail, /brig\.host-loopback=true/);
    assert.equal(holder(), undefined, 'the probe is not the store\'s holder');
  });
});

guardLeaks();
