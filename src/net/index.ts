// A sandbox's network: which mode, what is published, what the name files
// say (resolved with the other options), and what runs beside the sandbox
// for it (pasta, brig's port proxy), started while its init waits and
// ended with it.
//
// User networks and `container:NAME` (NetAttach) are joined, not made: a
// container's monitor prepares the namespaces (src/net/attach.ts,
// src/net/holder.ts) and the launch joins them.
import { dgram, net } from '../builtins.js';
import { OptionsError, SetupError, setupErrorInfo, shown } from '../errors.js';
import { log } from '../log.js';
import { nameOptions, type NameOptions } from './names.js';
import { findPasta, Pasta } from './pasta.js';
import { publishOption, type PublishedPort } from './ports.js';
import { PortProxy } from './proxy.js';

export type { PublishedPort, PublishOption } from './ports.js';
export { parsePublish, DEFAULT_HOST_IP } from './ports.js';

export type NetworkMode = 'none' | 'loopback' | 'pasta' | 'host';

/** The modes a sandbox makes for itself, as opposed to joining a user network or another container's namespace. */
export function isBuiltinMode(v: unknown): v is NetworkMode {
  return v === 'none' || v === 'loopback' || v === 'pasta' || v === 'host';
}

/**
 * A network the sandbox joins rather than makes: a user network by name
 * (src/net/networks.ts; its namespace is made on the network holder's side,
 * src/net/holder.ts) or a running container's (`container:NAME`). Only a
 * container's launch can join one (its monitor prepares the namespaces:
 * LaunchExtras.netJoin); the plan treats it as 'loopback'.
 */
export type NetAttach = { kind: 'network'; name: string } | { kind: 'container'; ref: string };

const ATTACH_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

/** What `network` joins, if it names a user network or container:NAME. */
export function networkAttach(v: unknown): NetAttach | undefined {
  if (typeof v !== 'string' || isBuiltinMode(v)) return undefined;
  if (v.startsWith('container:')) {
    const ref = v.slice('container:'.length);
    if (!ATTACH_NAME.test(ref)) throw new OptionsError('network', `container:NAME: expected a container name or id, got ${shown(v)}`);
    return { kind: 'container', ref };
  }
  if (!ATTACH_NAME.test(v) || v === 'bridge' || v === 'default') throw new OptionsError('network', `expected 'none', 'loopback', 'pasta', 'host', a user network's name or container:NAME, got ${shown(v)}`);
  return { kind: 'network', name: v };
}

export interface NetOptions {
  publish: PublishedPort[];
  publishVia: 'pasta' | 'proxy';
  hostLoopback: boolean;
  names: NameOptions;
}

/** What a started sandbox's network is: its published ports with the host ports chosen. */
export interface NetworkInfo {
  ports: PublishedPort[];
  /** pasta's pid, while it runs. */
  pastaPid?: number;
}

let hostWarned = false;

export function networkMode(v: unknown): NetworkMode {
  if (v === undefined) return 'none';
  if (networkAttach(v)) return 'loopback';
  if (!isBuiltinMode(v)) throw new OptionsError('network', `expected 'none', 'loopback', 'pasta' or 'host', got ${shown(v)}`);
  if (v === 'host' && !hostWarned) {
    hostWarned = true;
    log().warn("network 'host': the sandbox shares the host's network namespace; it can reach, and listen on, everything the host can");
  }
  return v;
}

export function netOptions(mode: NetworkMode, o: { publish?: unknown; publishVia?: unknown; hostLoopback?: unknown; extraHosts?: unknown; dns?: unknown; dnsSearch?: unknown }): NetOptions {
  const publish = publishOption(o.publish);
  if (publish.length && mode === 'none') throw new OptionsError('publish', "network 'none' has nothing to publish on: use network 'loopback' or 'pasta'");
  if (publish.length && mode === 'host') throw new OptionsError('publish', "network 'host' uses the host's ports themselves: nothing to publish");
  const publishVia = o.publishVia ?? 'pasta';
  if (publishVia !== 'pasta' && publishVia !== 'proxy') throw new OptionsError('publishVia', `expected 'pasta' or 'proxy', got ${shown(publishVia)}`);
  if (o.hostLoopback !== undefined && typeof o.hostLoopback !== 'boolean') throw new OptionsError('hostLoopback', 'expected a boolean');
  if (o.hostLoopback && mode !== 'pasta') throw new OptionsError('hostLoopback', "only network 'pasta' has a gateway to map to the host's loopback");
  return { publish, publishVia, hostLoopback: o.hostLoopback === true, names: nameOptions(o) };
}

/** Whether the sandbox needs something started beside it before its program runs. */
export function needsNetworkHelper(mode: NetworkMode, n: NetOptions): boolean {
  return mode === 'pasta' || n.publish.length > 0;
}

/** A free port on the host (for a published port asked without one, forwarded by pasta). */
function freePort(ip: string, protocol: 'tcp' | 'udp'): Promise<number> {
  return new Promise((resolve, reject) => {
    if (protocol === 'udp') {
      const s = dgram().createSocket(ip.includes(':') ? 'udp6' : 'udp4');
      s.once('error', reject);
      s.bind(0, ip, () => {
        const port = s.address().port;
        s.close(() => resolve(port));
      });
      return;
    }
    const s = net().createServer();
    s.once('error', reject);
    s.listen(0, ip, () => {
      const a = s.address();
      s.close(() => resolve(a && typeof a === 'object' ? a.port : 0));
    });
  });
}

/** What runs beside one sandbox for its network. */
export class SandboxNetwork {
  private constructor(
    readonly info: NetworkInfo,
    private readonly pasta?: Pasta,
    private readonly proxy?: PortProxy,
  ) {}

  /** Starts what the sandbox whose init is `pid` (waiting before its first step) needs; rejects with a SetupError. */
  static async start(mode: NetworkMode, n: NetOptions, pid: number): Promise<SandboxNetwork> {
    const viaProxy = n.publishVia === 'proxy' ? n.publish : [];
    const viaPasta = n.publish.filter((p) => !viaProxy.includes(p));
    let pasta: Pasta | undefined;
    let proxy: PortProxy | undefined;
    const ports: PublishedPort[] = [];
    try {
      if (mode === 'pasta' || viaPasta.length) {
        const path = findPasta();
        if (!path) throw new SetupError(setupErrorInfo('pasta', 2 /* ENOENT */, process.env.BRIG_PASTA || undefined, `no pasta ${process.env.BRIG_PASTA ? 'there' : 'in PATH or /usr/bin'}: install Debian's passt package (or set BRIG_PASTA)`));
        const chosen: PublishedPort[] = [];
        for (const p of viaPasta) {
          try {
            chosen.push(p.hostPort ? p : { ...p, hostPort: await freePort(p.hostIp, p.protocol) });
          } catch (e) {
            throw new SetupError(setupErrorInfo('publish', (e as NodeJS.ErrnoException).errno ? Math.abs((e as NodeJS.ErrnoException).errno!) : 5, `${p.hostIp}:0/${p.protocol}`));
          }
        }
        pasta = await Pasta.start(path, pid, { outbound: mode === 'pasta', hostLoopback: n.hostLoopback, ports: chosen });
        ports.push(...chosen);
      }
      if (viaProxy.length) {
        proxy = await PortProxy.start(pid, viaProxy);
        const bound = proxy.bound();
        viaProxy.forEach((p, i) => ports.push({ ...p, hostPort: bound[i] }));
      }
    } catch (e) {
      proxy?.close();
      await pasta?.stop();
      throw e;
    }
    return new SandboxNetwork({ ports, pastaPid: pasta?.pid }, pasta, proxy);
  }

  /** Ends what start() started and waits for pasta to be gone. */
  async stop(): Promise<void> {
    this.proxy?.close();
    await this.pasta?.stop();
    delete this.info.pastaPid;
  }
}
