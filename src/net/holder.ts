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
//
// Outbound: the holder's network namespace is made by pasta (Debian's
// passt), run inside the holder's user namespace with --netns-only and the
// holder's sleep as its command, so pasta's tap (pasta0) is the holder's way
// out and the two live and die together: pasta exits when its command does,
// and the command has PDEATHSIG (setpriv) for pasta's death. nftables in the
// holder forwards only from non-internal bridges to pasta0 (masqueraded) and
// the replies; nothing between bridges, nothing from internal ones, and
// nothing to the gateway pasta maps to the host's loopback unless the
// network asked for it (HOST_LOOPBACK_OPTION).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants as fsConstants, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { NetworkError } from '../errors.js';
import { subIdRanges } from '../launch/idmap.js';
import { native } from '../native.js';
import { processStart } from '../container/state.js';
import { networksRoot, withNetLock, anyEndpointsLocked, readNetworksLocked, type Lease } from './networks.js';
import { findPasta } from './pasta.js';
import { PASTA_DNS } from './names.js';

type MapLine = [number, number, number];

function findTool(name: string): string | undefined {
  for (const dir of ['/usr/bin', '/bin', '/usr/sbin', '/sbin']) {
    try {
      accessSync(`${dir}/${name}`, fsConstants.X_OK);
      return `${dir}/${name}`;
    } catch {
      // not here
    }
  }
  return undefined;
}

function tool(name: string): string {
  const found = findTool(name);
  if (found) return found;
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
  /** pasta, the holder's way out, when it has one. */
  Outbound?: OutboundRecord;
  /** Why the holder has no way out (no pasta, no nft, pasta failed): then no network reaches anything outside its own bridge. */
  NoOutbound?: string;
}

export interface OutboundRecord {
  /** pasta's pid and start time (it is the holder's parent). */
  Pid: number;
  Start: number;
  /** pasta's tap in the holder's network namespace. */
  Interface: string;
  /** The holder's default gateway: pasta answers for it, and maps it to the host's loopback. */
  Gateway: string;
}

/** pasta's tap in the holder: not eth0, so it never clashes with a name brig gives. */
const OUT_IF = 'pasta0';

/**
 * The network option (`brig network create -o brig.host-loopback=true`)
 * that lets a network's containers reach the host's loopback through the
 * gateway pasta maps to it. Off by default, as for --network pasta (and
 * rootless Docker's --disable-host-loopback): the host's loopback services
 * are not the containers' business unless asked.
 */
export const HOST_LOOPBACK_OPTION = 'brig.host-loopback';

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
  if (processStart(h.Pid) === h.Start) return h;
  // The holder died (SIGKILL): pasta exits with its command, but make sure.
  killRecorded(h.Outbound);
  return undefined;
}

function killRecorded(p: { Pid: number; Start: number } | undefined): void {
  if (!p || processStart(p.Pid) !== p.Start) return;
  try {
    process.kill(p.Pid, 'SIGKILL');
  } catch {
    // gone
  }
}

/** The holder as it is, for tests and doctor: its pid, or undefined. */
export function holderPid(): number | undefined {
  return withNetLock(() => liveHolder()?.Pid);
}

/** The running holder's record (pasta's pid and the gateway that leads to the host's loopback), or undefined. */
export function holderInfo(): HolderRecord | undefined {
  return withNetLock(() => liveHolder());
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

interface Maps {
  uidMap: MapLine[];
  gidMap: MapLine[];
  deny: boolean;
}

/**
 * Maps a fresh user namespace (of `pid`, still unmapped): with subordinate
 * ids and newuidmap, those too (a container's multi-id map composes through
 * it); else only our own ids, setgroups denied.
 */
async function mapHolder(pid: number): Promise<Maps> {
  const me = userInfo();
  const subU = subIdRanges('/etc/subuid', me.username, me.uid)[0];
  const subG = subIdRanges('/etc/subgid', me.username, me.uid)[0];
  if (subU && subG) {
    try {
      const nu = tool('newuidmap');
      const ng = tool('newgidmap');
      const u: MapLine[] = [[0, me.uid, 1], [1, subU.start, subU.count]];
      const g: MapLine[] = [[0, me.gid, 1], [1, subG.start, subG.count]];
      await run(nu, [String(pid), ...u.flat().map(String)], 'newuidmap for the network holder');
      await run(ng, [String(pid), ...g.flat().map(String)], 'newgidmap for the network holder');
      return { uidMap: u, gidMap: g, deny: false };
    } catch {
      // no helpers or refused: the single map below
    }
  }
  writeFileSync(`/proc/${pid}/setgroups`, 'deny');
  writeFileSync(`/proc/${pid}/uid_map`, `0 ${me.uid} 1\n`);
  writeFileSync(`/proc/${pid}/gid_map`, `0 ${me.gid} 1\n`);
  return { uidMap: [[0, me.uid, 1]], gidMap: [[0, me.gid, 1]], deny: true };
}

function kill(pid: number | undefined): void {
  if (!pid) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone
  }
}

/** A holder without a way out: unshare's child in a new user and network namespace, mapped by us, then sleeping. */
async function startPlainHolder(): Promise<HolderRecord> {
  const child = await startWaiting([tool('unshare'), '--user', '--net', '--', '/bin/sh', '-c', 'echo ready; exec sleep infinity'], true);
  child.unref();
  const pid = child.pid!;
  try {
    const m = await mapHolder(pid);
    const start = processStart(pid);
    if (start === undefined) throw new NetworkError('the network holder exited as it started', 500);
    const rec: HolderRecord = { Pid: pid, Start: start, UidMap: m.uidMap, GidMap: m.gidMap, SetgroupsDeny: m.deny };
    // Loopback up; forwarding stays off: packets never pass between bridges (networks).
    await inHolder(rec, ['ip', 'link', 'set', 'lo', 'up'], 'network holder: loopback');
    return rec;
  } catch (e) {
    kill(pid);
    throw e;
  }
}

/** Resolves with the first line `child` prints on stdout; rejects (with `log()`'s last line) on exit or after 10 s. */
function firstLine(child: ChildProcess, what: string, log: () => string): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (e?: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      child.off('exit', onExit);
      if (e) reject(e);
      else resolve();
    };
    const onExit = (code: number | null, sig: string | null) => finish(new NetworkError(`${what}: ${log() || `exited (${sig ?? `code ${code}`})`}`, 500));
    const timer = setTimeout(() => finish(new NetworkError(`${what}: no answer within 10 s`, 500)), 10_000);
    child.once('exit', onExit);
    child.stdout!.once('data', () => finish());
  });
}

/** The ruleset of the holder's namespace: what leaves, what comes back, what never passes. */
function rules(gateway: string): string {
  return `table ip brig {
  # the bridges of networks that are not --internal: only these go out
  set outbound { type ifname; }
  # the bridges of networks with ${HOST_LOOPBACK_OPTION}=true: only these reach the gateway pasta maps to the host's loopback
  set hostloopback { type ifname; }
  chain forward {
    type filter hook forward priority 0; policy drop;
    iifname != @hostloopback ip daddr ${gateway} drop
    iifname @outbound oifname "${OUT_IF}" accept
    iifname "${OUT_IF}" oifname @outbound ct state established,related accept
  }
  chain postrouting {
    type nat hook postrouting priority 100;
    oifname "${OUT_IF}" masquerade
  }
  chain input {
    type filter hook input priority 0; policy accept;
    # from a bridge, only that bridge's own gateway address answers (not another network's, not pasta0's)
    iifname != { "lo", "${OUT_IF}" } fib daddr . iif type != local drop
  }
}
`;
}

/**
 * A holder with a way out: unshare makes the user namespace (mapped by us),
 * pasta in it makes the network namespace (--netns-only) with its tap as
 * default route, and its command is the holder's sleep (PDEATHSIG for
 * pasta's death; pasta exits with its command). Then nftables in the
 * holder, and forwarding on.
 */
async function startHolderWithPasta(pasta: string, setpriv: string, nft: string, logPath = join(networksRoot(), 'holder.log')): Promise<HolderRecord> {
  const log = () =>
    (() => {
      try {
        return readFileSync(logPath, 'utf8');
      } catch {
        return '';
      }
    })()
      .split('\n')
      .filter((l) => l && !/syslog|uid_map|user mappings/.test(l))
      .pop() ?? '';
  const [r, w] = native.pipe();
  const logFd = openSync(logPath, 'w', 0o600);
  let child: ChildProcess;
  try {
    const args = [
      '-f', '-q', '--config-net', '-I', OUT_IF,
      // no port forwarding either way: the holder only goes out
      '-t', 'none', '-u', 'none', '-T', 'none', '-U', 'none',
      '--dns-forward', PASTA_DNS,
      // root of the holder's user namespace, not nobody (which a single-id map does not have)
      '--runas', '0:0', '--netns-only',
      // readiness: pasta writes its pid once the namespace is configured
      '-P', '/proc/self/fd/3',
    ];
    child = spawn(tool('unshare'), ['--user', '--', '/bin/sh', '-c', 'echo ready; read go && exec "$@" </dev/null >/dev/null', 'sh', pasta, ...args, '--', setpriv, '--pdeathsig', 'KILL', '--', 'sleep', 'infinity'], { stdio: ['pipe', 'pipe', logFd, w], detached: true });
  } catch (e) {
    closeSync(r);
    throw new NetworkError(`network holder: unshare: ${(e as Error).message}`, 500);
  } finally {
    closeSync(w);
    closeSync(logFd);
  }
  child.on('error', () => {});
  child.unref();
  const pastaPid = child.pid!;
  const ready = new Socket({ fd: r, readable: true, writable: false });
  ready.on('error', () => {});
  try {
    await firstLine(child, 'network holder: unshare', log);
    child.stdout!.destroy();
    const m = await mapHolder(pastaPid);
    child.stdin!.end('go\n');
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new NetworkError('network holder: pasta not ready within 10 s', 500)), 10_000);
      const onExit = () => {
        clearTimeout(timer);
        reject(new NetworkError(`network holder: pasta: ${log() || 'exited before it was ready'}`, 500));
      };
      child.once('exit', onExit);
      ready.once('data', () => {
        clearTimeout(timer);
        child.off('exit', onExit);
        resolve();
      });
    });
    let holder = 0;
    for (let i = 0; i < 100 && !holder; i++) {
      holder = Number(readFileSync(`/proc/${pastaPid}/task/${pastaPid}/children`, 'utf8').trim().split(/\s+/)[0]) || 0;
      if (!holder) await new Promise((res) => setTimeout(res, 10));
    }
    const start = holder ? processStart(holder) : undefined;
    const pastaStart = processStart(pastaPid);
    if (start === undefined || pastaStart === undefined) throw new NetworkError(`network holder: pasta's command is not running: ${log()}`, 500);
    const rec: HolderRecord = { Pid: holder, Start: start, UidMap: m.uidMap, GidMap: m.gidMap, SetgroupsDeny: m.deny, Outbound: { Pid: pastaPid, Start: pastaStart, Interface: OUT_IF, Gateway: '' } };
    // Bridged packets skip netfilter (br_netfilter would pass them through
    // the forward chain, whose policy drops): a network's own traffic stays
    // on its bridge. The rules before forwarding: nothing passes unruled.
    const route = await inHolder(rec, ['ip', '-4', 'route', 'show', 'default'], 'network holder: routes');
    const gw = /^default via (\d+\.\d+\.\d+\.\d+) dev /m.exec(route);
    if (!gw) throw new NetworkError(`network holder: pasta gave no default route (${route.trim() || 'none'})`, 500);
    rec.Outbound!.Gateway = gw[1];
    const script = [
      'set -e',
      'if [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]; then echo 0 > /proc/sys/net/bridge/bridge-nf-call-iptables; fi',
      'printf "%s" "$2" | "$1" -f -',
      'echo 1 > /proc/sys/net/ipv4/ip_forward',
      '"$3" link set lo up',
    ].join('\n');
    await inHolder(rec, ['/bin/sh', '-c', script, 'sh', nft, rules(gw[1]), tool('ip')], 'network holder: forwarding rules');
    return rec;
  } catch (e) {
    kill(pastaPid);
    throw e;
  } finally {
    ready.destroy();
  }
}

/** What is missing for a holder with a way out, or undefined. */
function outboundMissing(): string | undefined {
  if (!findPasta()) return 'pasta not found (package passt)';
  if (!findTool('setpriv')) return 'setpriv not found (package util-linux)';
  if (!findTool('nft')) return 'nft not found (package nftables)';
  return undefined;
}

/**
 * For brig doctor: starts a throwaway holder with pasta (not recorded,
 * ended before this returns) and says whether it got its way out: pasta
 * configured, the rules loaded, a default route whose gateway pasta maps to
 * the host's loopback.
 */
export async function probeOutbound(): Promise<{ ok: boolean; detail: string }> {
  const missing = outboundMissing();
  if (missing) return { ok: false, detail: missing };
  const dir = mkdtempSync(join(tmpdir(), 'brig-doctor-net-'));
  try {
    const rec = await startHolderWithPasta(findPasta()!, findTool('setpriv')!, findTool('nft')!, join(dir, 'holder.log'));
    kill(rec.Pid);
    killRecorded(rec.Outbound);
    return { ok: true, detail: `pasta on the network holder (${OUT_IF}, default via ${rec.Outbound!.Gateway}, which leads to the host's loopback for networks made with -o ${HOST_LOOPBACK_OPTION}=true), nftables forwarding and masquerade loaded` };
  } catch (e) {
    return { ok: false, detail: (e as Error).message };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Starts the holder, with pasta as its way out when pasta, setpriv and nft
 * are there and pasta starts; else without (as before: networks reach only
 * themselves), saying why in the record.
 */
async function startHolder(): Promise<HolderRecord> {
  let why = outboundMissing();
  let rec: HolderRecord | undefined;
  if (!why) {
    try {
      rec = await startHolderWithPasta(findPasta()!, findTool('setpriv')!, findTool('nft')!);
    } catch (e) {
      why = (e as Error).message;
    }
  }
  if (!rec) {
    rec = await startPlainHolder();
    rec.NoOutbound = why;
  }
  writeFileSync(holderPath(), JSON.stringify(rec) + '\n', { mode: 0o600 });
  return rec;
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
      kill(h.Pid);
      // pasta exits with its command; this one is for certainty
      killRecorded(h.Outbound);
    }
    rmSync(holderPath(), { force: true });
    rmSync(join(networksRoot(), 'holder.log'), { force: true });
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
  /** The holder the namespaces were made under (a running container is connected from its side); none when they are another container's. */
  holder?: { Pid: number; Start: number };
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
    await plugVeths(pid, leases, { route: true }, h);
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
      holder: { Pid: h.Pid, Start: h.Start },
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
 * A shell function for scripts run in the holder (with $ip, and $nft empty
 * when the holder has no rules): deletes a bridge and takes it out of the
 * forward rule's sets, so no later bridge of that name inherits its rights.
 * Nothing to delete is not an error.
 */
const DELETE_BRIDGE = [
  'delete_bridge() {',
  '  $ip link del "$1" 2>/dev/null || true',
  '  if [ -n "$nft" ]; then for set in outbound hostloopback; do $nft delete element ip brig $set "{ \\"$1\\" }" 2>/dev/null || true; done; fi',
  '}',
].join('\n');

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
export async function plugVeths(pid: number, leases: Lease[], o: { route: boolean }, holder?: HolderRecord): Promise<void> {
  const h = holder ?? (await ensureHolder());
  const ip = tool('ip');
  const script = [
    'set -e',
    'ip=$1; pid=$2; nsenter=$3; nft=$4; shift 4',
    DELETE_BRIDGE,
    'inns() { $nsenter --net=/proc/$pid/ns/net -- $ip "$@"; }',
    'i=0',
    'while [ $# -gt 0 ]; do',
    '  br=$1; gw=$2; pfx=$3; addr=$4; mac=$5; veth=$6; route=$7; out=$8; lo=$9; shift 9',
    '  while inns link show "eth$i" >/dev/null 2>&1; do i=$((i+1)); done',
    '  if ! $ip link show "$br" >/dev/null 2>&1; then',
    // A removed network's bridge stays while the holder lives; a network made since may have its subnet:
    // two routes to one subnet, and replies would go to the first (the dead bridge). No live network
    // shares a subnet, so a br- holding this gateway is a dead one.
    '    $ip -o -4 addr show to "$gw/32" | while read -r _ old _; do',
    // (not this bridge: another brig process may have made it since the check above)
    '      case $old in "$br") continue ;; br-*) ;; *) continue ;; esac',
    '      delete_bridge "$old"',
    '    done',
    '    $ip link add "$br" type bridge 2>/dev/null || true; $ip addr add "$gw/$pfx" dev "$br" 2>/dev/null || true',
    // a bridge made here for a non-internal network may go out (the holder's forward rule names the set)
    '    if [ "$out" = yes ] && [ -n "$nft" ]; then $nft add element ip brig outbound "{ \\"$br\\" }"; fi',
    '    if [ "$out" = yes ] && [ "$lo" = yes ] && [ -n "$nft" ]; then $nft add element ip brig hostloopback "{ \\"$br\\" }"; fi',
    '  fi',
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
  const hostLoopback = new Set(withNetLock(() => readNetworksLocked()).filter((n) => n.Options?.[HOST_LOOPBACK_OPTION] === 'true').map((n) => n.Id));
  leases.forEach((l, i) =>
    args.push(l.bridge, l.gateway, String(l.prefix), l.ip, l.mac, `ve${randomBytes(6).toString('hex')}`, o.route && i === 0 && !l.internal ? 'yes' : 'no', l.internal ? 'no' : 'yes', hostLoopback.has(l.networkId) ? 'yes' : 'no'),
  );
  await inHolder(h, ['/bin/sh', '-c', script, 'sh', ip, String(pid), tool('nsenter'), h.Outbound ? tool('nft') : '', ...args], 'user network: interfaces');
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
  await inHolder(h, ['/bin/sh', '-c', `ip=$1; nft=$2\n${DELETE_BRIDGE}\ndelete_bridge "$3"`, 'sh', tool('ip'), h.Outbound ? tool('nft') : '', bridge], 'network holder: bridge');
}
