// The network holder: one per user (per store), a small process keeping a
// user namespace and a network namespace that hold the bridges of the user
// networks, made without any privilege (rootless Docker's and Podman's
// "rootless network namespace"). It is started when the first container
// joins a user network and ended when the last endpoint goes; its pid and
// start time are in the store (net/holder.json), so any brig process finds it.
//
// Each container on a network gets a user namespace that is a CHILD of the
// holder's, owning a new network namespace. Why a child:
// - the holder side (a process that entered the holder's user namespace,
//   holding every capability there) has CAP_NET_ADMIN over the container's
//   network namespace, so it can move the veth's end in and set its address
//   and routes;
// - the container's program has no capability in its own user namespace
//   and none at all in the holder's (a parent namespace): it cannot change
//   its address or routes, nor setns into the holder's namespaces, which
//   it cannot even see (its pid namespace holds only its own processes);
// - the maps compose: the holder maps the caller's ids (and the subordinate
//   range, where there is one) to itself, and the container's namespace maps
//   through it to exactly the host ids an ordinary launch would map.
//
// The namespaces are made and configured by util-linux's nsenter/unshare
// and iproute2's ip, run as the caller: brig's addon makes the container's
// other namespaces itself, joining this pair (LaunchExtras.netJoin).
import { execFile, spawn } from 'node:child_process';
import { accessSync, constants as fsConstants, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { NetworkError } from '../errors.js';
import { subIdRanges } from '../launch/idmap.js';
import { native } from '../native.js';
import { processStart } from '../container/state.js';
import { networksRoot, withNetLock, anyEndpointsLocked, type Lease } from './networks.js';

type MapLine = [number, number, number];

function tool(name: string): string {
  for (const dir of ['/usr/bin', '/bin', '/usr/sbin', '/sbin']) {
    try {
      accessSync(`${dir}/${name}`, fsConstants.X_OK);
      return `${dir}/${name}`;
    } catch {
      // not here
    }
  }
  throw new NetworkError(`user networks need ${name} (${name === 'ip' ? 'iproute2' : name.startsWith('new') ? 'uidmap' : 'util-linux'}): not found in /usr/bin, /bin, /usr/sbin or /sbin`, 500);
}

export interface HolderRecord {
  Pid: number;
  /** Start time (clock ticks after boot): a recycled pid is not taken for the holder. */
  Start: number;
  /** The holder's maps (inside, outside, count), to translate a container's maps through. */
  UidMap: MapLine[];
  GidMap: MapLine[];
  /** setgroups is denied in the holder (a single-id map written without newgidmap), hence in every child. */
  SetgroupsDeny: boolean;
}

function holderPath(): string {
  return join(networksRoot(), 'holder.json');
}

/** The live holder's record, or undefined. Call under withNetLock. */
function liveHolder(): HolderRecord | undefined {
  let h: HolderRecord;
  try {
    h = JSON.parse(readFileSync(holderPath(), 'utf8')) as HolderRecord;
  } catch {
    return undefined;
  }
  return processStart(h.Pid) === h.Start ? h : undefined;
}

/** The holder as it is, for tests and doctor: its pid, or undefined. */
export function holderPid(): number | undefined {
  return withNetLock(() => liveHolder()?.Pid);
}

function run(file: string, args: string[], what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: 10_000 }, (err, out, stderr) => {
      if (err) reject(new NetworkError(`${what}: ${String(stderr).trim().split('\n').pop() || err.message}`, 500));
      else resolve(String(out));
    });
  });
}

/** Starts `argv` and resolves with it once it printed its first line (it made its namespaces then). */
function startWaiting(argv: string[], detached: boolean): Promise<ReturnType<typeof spawn>> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: [detached ? 'ignore' : 'pipe', 'pipe', 'pipe'], detached });
    let err = '';
    let done = false;
    const timer = setTimeout(() => fail(new NetworkError(`${argv[0]}: no answer within 10 s`, 500)), 10_000);
    const fail = (e: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(e);
    };
    child.once('error', (e) => fail(new NetworkError(`${argv[0]}: ${e.message}`, 500)));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.once('exit', (code) => fail(new NetworkError(`${argv.slice(0, 3).join(' ')}: ${err.trim().split('\n').pop() || `exited with ${code}`}`, 500)));
    child.stdout!.once('data', () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      child.stdout!.destroy();
      child.stderr!.destroy();
      resolve(child);
    });
  });
}

/** Starts the holder: unshare's child in a new user and network namespace, mapped by us, then sleeping. */
async function startHolder(): Promise<HolderRecord> {
  const me = userInfo();
  const child = await startWaiting([tool('unshare'), '--user', '--net', '--', '/bin/sh', '-c', 'echo ready; exec sleep infinity'], true);
  child.unref();
  const pid = child.pid!;
  try {
    // With subordinate ids and newuidmap, the holder maps them too (a
    // container's multi-id map composes through it); else only our own ids.
    const subU = subIdRanges('/etc/subuid', me.username, me.uid)[0];
    const subG = subIdRanges('/etc/subgid', me.username, me.uid)[0];
    let uidMap: MapLine[] = [[0, me.uid, 1]];
    let gidMap: MapLine[] = [[0, me.gid, 1]];
    let deny = true;
    let multi = false;
    if (subU && subG) {
      try {
        const nu = tool('newuidmap');
        const ng = tool('newgidmap');
        const u: MapLine[] = [[0, me.uid, 1], [1, subU.start, subU.count]];
        const g: MapLine[] = [[0, me.gid, 1], [1, subG.start, subG.count]];
        await run(nu, [String(pid), ...u.flat().map(String)], 'newuidmap for the network holder');
        await run(ng, [String(pid), ...g.flat().map(String)], 'newgidmap for the network holder');
        uidMap = u;
        gidMap = g;
        deny = false;
        multi = true;
      } catch {
        // no helpers or refused: the single map below
      }
    }
    if (!multi) {
      writeFileSync(`/proc/${pid}/setgroups`, 'deny');
      writeFileSync(`/proc/${pid}/uid_map`, `0 ${me.uid} 1\n`);
      writeFileSync(`/proc/${pid}/gid_map`, `0 ${me.gid} 1\n`);
    }
    const start = processStart(pid);
    if (start === undefined) throw new NetworkError('the network holder exited as it started', 500);
    const rec: HolderRecord = { Pid: pid, Start: start, UidMap: uidMap, GidMap: gidMap, SetgroupsDeny: deny };
    // Loopback up; forwarding stays off: packets never pass between bridges (networks).
    await inHolder(rec, ['ip', 'link', 'set', 'lo', 'up'], 'network holder: loopback');
    writeFileSync(holderPath(), JSON.stringify(rec) + '\n', { mode: 0o600 });
    return rec;
  } catch (e) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
    throw e;
  }
}

/** Runs argv (ip, or sh) as root of the holder's user namespace, in its network namespace. */
function inHolder(h: HolderRecord, argv: string[], what: string): Promise<string> {
  const file = argv[0] === 'ip' ? tool('ip') : argv[0];
  return run(tool('nsenter'), [`--user=/proc/${h.Pid}/ns/user`, `--net=/proc/${h.Pid}/ns/net`, '--preserve-credentials', '--', file, ...argv.slice(1)], what);
}

/** The live holder, started if there is none (under the lock: one holder however many brig processes ask). */
let starting: Promise<HolderRecord> | undefined;
export async function ensureHolder(): Promise<HolderRecord> {
  const h = withNetLock(() => liveHolder());
  if (h) return h;
  if (starting) return starting;
  starting = (async () => {
    // The start happens outside the lock (it takes tens of ms); a lock file
    // of its own makes a second process wait for the first one's holder.
    const fd = openSync(join(networksRoot(), '.holder-start'), 'a', 0o600);
    try {
      for (let i = 0; native.flock(fd, true, false) < 0; i++) {
        if (i > 1000) throw new NetworkError('network holder: its start lock was held for 10 s', 500);
        await new Promise((r) => setTimeout(r, 10));
      }
      const again = withNetLock(() => liveHolder());
      return again ?? (await startHolder());
    } finally {
      native.close(fd);
    }
  })();
  try {
    return await starting;
  } finally {
    starting = undefined;
  }
}

/** Ends the holder (its namespaces, bridges and whatever veth ends were left go with it) when no endpoint needs it. */
export function stopHolderIfUnused(): boolean {
  return withNetLock(() => {
    if (anyEndpointsLocked()) return false;
    const h = liveHolder();
    if (h) {
      try {
        process.kill(h.Pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    rmSync(holderPath(), { force: true });
    return h !== undefined;
  });
}

/** Translates host ids (a launch's map lines) into the holder's, or throws naming the id. */
function through(lines: MapLine[], holder: MapLine[], kind: string): MapLine[] {
  const out: MapLine[] = [];
  for (const [inside, outside, count] of lines) {
    const h = holder.find(([, o, c]) => outside >= o && outside + count <= o + c);
    if (!h) throw new NetworkError(`user network: the container's ${kind} map (${outside}..${outside + count - 1}) is not within the network holder's; a multi-id map needs subordinate ids and newuidmap`, 500);
    out.push([inside, h[0] + (outside - h[1]), count]);
  }
  return out;
}

export interface LaunchMaps {
  uid: MapLine[];
  gid: MapLine[];
}

/** A container's namespaces on its networks: fds for the launch to join, and what to end once it has. */
export interface PreparedEndpoint {
  fds: [number, number];
  /** Closes the fds and ends the maker (the sandbox's init holds the namespaces now). */
  done(): void;
}

/**
 * Makes a user namespace (a child of the holder's, mapped as `maps` say)
 * owning a new network namespace, and one veth pair per lease: one end on
 * the lease's bridge, the other (eth0, eth1, ...) in the new namespace with
 * the leased address; a default route via the first lease's gateway unless
 * its network is internal.
 */
export async function prepareEndpoint(leases: Lease[], maps: LaunchMaps): Promise<PreparedEndpoint> {
  const h = await ensureHolder();
  const uid = through(maps.uid, h.UidMap, 'uid');
  const gid = through(maps.gid, h.GidMap, 'gid');
  // The maker: unshare's child, in the holder's user namespace, waiting on its stdin.
  const maker = await startWaiting([tool('nsenter'), `--user=/proc/${h.Pid}/ns/user`, '--preserve-credentials', '--', tool('unshare'), '--user', '--net', '--', '/bin/sh', '-c', 'echo ready; read x'], false);
  const pid = maker.pid!;
  const end = () => {
    maker.stdin?.destroy();
    try {
      maker.kill('SIGKILL');
    } catch {
      // gone
    }
  };
  try {
    // The maps are written from the holder's side (CAP_SETUID there): multi-line maps need it.
    const mapScript = 'if [ "$1" = deny ]; then echo deny > /proc/$2/setgroups; fi; printf "$3" > /proc/$2/uid_map && printf "$4" > /proc/$2/gid_map';
    const text = (l: MapLine[]) => l.map((x) => x.join(' ')).join('\\n') + '\\n';
    await inHolder(h, ['/bin/sh', '-c', mapScript, 'sh', h.SetgroupsDeny ? 'deny' : 'allow', String(pid), text(uid), text(gid)], 'user network: id maps');
    await plugVeths(pid, leases, { route: true });
    const userFd = openSync(`/proc/${pid}/ns/user`, 'r');
    let netFd: number;
    try {
      netFd = openSync(`/proc/${pid}/ns/net`, 'r');
    } catch (e) {
      native.close(userFd);
      throw e;
    }
    return {
      fds: [userFd, netFd],
      done: () => {
        native.close(userFd);
        native.close(netFd);
        end();
      },
    };
  } catch (e) {
    end();
    throw e;
  }
}

/**
 * Adds one veth pair per lease, from the holder's side: one end on the
 * lease's bridge, the other in the network namespace of `pid` (whose user
 * namespace is a child of the holder's, so root there has CAP_NET_ADMIN
 * over it) as the next free ethN, with the leased address and MAC; a
 * default route via the first lease's gateway when `o.route` and its network
 * is not internal. Bridges are made on first use (their address is the
 * gateway); a second caller racing for one finds it made. Used at a
 * container's start (prepareEndpoint) and to connect a running one.
 */
export async function plugVeths(pid: number, leases: Lease[], o: { route: boolean }): Promise<void> {
  const h = await ensureHolder();
  const ip = tool('ip');
  const script = [
    'set -e',
    'ip=$1; pid=$2; nsenter=$3; shift 3',
    'inns() { $nsenter --net=/proc/$pid/ns/net -- $ip "$@"; }',
    'i=0',
    'while [ $# -gt 0 ]; do',
    '  br=$1; gw=$2; pfx=$3; addr=$4; mac=$5; veth=$6; route=$7; shift 7',
    '  while inns link show "eth$i" >/dev/null 2>&1; do i=$((i+1)); done',
    '  if ! $ip link show "$br" >/dev/null 2>&1; then $ip link add "$br" type bridge 2>/dev/null || true; $ip addr add "$gw/$pfx" dev "$br" 2>/dev/null || true; fi',
    '  $ip link set "$br" up',
    '  $ip link add "$veth" type veth peer name "eth$i" address "$mac" netns "$pid"',
    '  $ip link set "$veth" master "$br" up',
    '  inns addr add "$addr/$pfx" dev "eth$i"',
    '  inns link set "eth$i" up',
    '  if [ "$route" = yes ]; then inns route add default via "$gw" dev "eth$i"; fi',
    'done',
    'inns link set lo up',
    // Docker's: a container's program may bind ports below 1024 in its own
    // namespace (a DNS server on 53); its namespace's sysctl, nobody else's.
    '$nsenter --net=/proc/$pid/ns/net -- /bin/sh -c "echo 0 > /proc/sys/net/ipv4/ip_unprivileged_port_start"',
  ].join('\n');
  const args: string[] = [];
  leases.forEach((l, i) => args.push(l.bridge, l.gateway, String(l.prefix), l.ip, l.mac, `ve${randomBytes(6).toString('hex')}`, o.route && i === 0 && !l.internal ? 'yes' : 'no'));
  await inHolder(h, ['/bin/sh', '-c', script, 'sh', ip, String(pid), tool('nsenter'), ...args], 'user network: interfaces');
}

/** Deletes, from the holder's side, the interface holding `address` in the network namespace of `pid` (its bridge end goes with it). */
export async function unplugVeth(pid: number, address: string): Promise<void> {
  const h = await ensureHolder();
  const script = [
    'set -e',
    'ip=$1; pid=$2; nsenter=$3; addr=$4',
    'dev=$($nsenter --net=/proc/$pid/ns/net -- $ip -o -4 addr show to "$addr/32" | while read -r n name rest; do echo "$name"; done)',
    '[ -n "$dev" ] || { echo "no interface has $addr" >&2; exit 1; }',
    '$nsenter --net=/proc/$pid/ns/net -- $ip link del "$dev"',
  ].join('\n');
  await inHolder(h, ['/bin/sh', '-c', script, 'sh', tool('ip'), String(pid), tool('nsenter'), address], 'user network: interface removal');
}

/** Deletes a network's bridge in the holder, if the holder runs (a removed network's). */
export async function removeBridge(bridge: string): Promise<void> {
  const h = withNetLock(() => liveHolder());
  if (!h) return;
  await inHolder(h, ['ip', 'link', 'del', bridge], 'network holder: bridge').catch(() => {});
}
