// brig's own port proxy (publishVia 'proxy'), as rootlesskit's builtin
// driver does it: a listener on the host; for each connection, a socket
// made inside the sandbox's network namespace (addon/netns.cc) and
// connected to the port there, and the two relayed. The program sees the
// connection come from 127.0.0.1: a relay cannot keep the client's address.
//
// UDP has no connections, so the proxy keeps a session per client address
// (as Docker's userland proxy does): the client's first datagram gets a UDP
// socket made inside the namespace with its peer set to the port there; what
// the client sends goes out on it, what comes back on it goes to that client
// alone. A session idle for udpIdleMs (either way) is closed; past
// UDP_MAX_SESSIONS per port a new client's datagrams are dropped.
import { closeSync, openSync } from 'node:fs';
import type { Socket as UdpSocket, RemoteInfo } from 'node:dgram';
import type { Server, Socket } from 'node:net';
import { dgram, net } from '../builtins.js';
import { errnoOf, SetupError, setupErrorInfo } from '../errors.js';
import { log } from '../log.js';
import { native } from '../native.js';
import type { PublishedPort } from './ports.js';

/** How long a UDP session lives without a datagram either way (Docker's proxy: 90 s). */
export const UDP_IDLE_MS = 60_000;
/** UDP sessions per published port: each holds a socket (an fd) inside the namespace. */
export const UDP_MAX_SESSIONS = 512;

interface UdpSession {
  inner: UdpSocket;
  timer: NodeJS.Timeout;
  /** Datagrams that came before its connect completed. */
  queue?: Buffer[];
}

export class PortProxy {
  /** One listener per port, in the order given (TCP servers, UDP sockets). */
  private readonly servers: (Server | UdpSocket)[] = [];
  private readonly live = new Set<Socket>();
  private readonly sessions = new Set<Map<string, UdpSession>>();
  private userFd = -1;
  private netFd = -1;
  private closed = false;
  private udpIdleMs = UDP_IDLE_MS;

  /** Listens on every port given (TCP and UDP); rejects with a SetupError naming the port that could not be bound. */
  static async start(pid: number, ports: PublishedPort[], o: { udpIdleMs?: number } = {}): Promise<PortProxy> {
    const p = new PortProxy();
    if (o.udpIdleMs !== undefined) p.udpIdleMs = o.udpIdleMs;
    try {
      // Held for the proxy's life: a pid could be reused, these cannot.
      p.userFd = openSync(`/proc/${pid}/ns/user`, 'r');
      p.netFd = openSync(`/proc/${pid}/ns/net`, 'r');
      for (const port of ports) await p.listen(port);
    } catch (e) {
      p.close();
      if (e instanceof SetupError) throw e;
      throw new SetupError(setupErrorInfo('proxy', errnoOf(e), `/proc/${pid}/ns`));
    }
    return p;
  }

  private listen(port: PublishedPort): Promise<void> {
    if (port.protocol === 'udp') return this.listenUdp(port);
    const server = net().createServer({ noDelay: true, allowHalfOpen: true }, (client) => this.relay(client, port));
    this.servers.push(server);
    return new Promise((resolve, reject) => {
      server.once('error', (e) => reject(new SetupError(setupErrorInfo('publish', errnoOf(e), `${port.hostIp}:${port.hostPort}/tcp`))));
      server.listen({ host: port.hostIp, port: port.hostPort, exclusive: true }, () => resolve());
    });
  }

  private relay(client: Socket, port: PublishedPort): void {
    if (this.closed) return void client.destroy();
    let fd: number;
    try {
      fd = native.netnsConnect(this.userFd, this.netFd, 4, '127.0.0.1', port.containerPort);
    } catch (e) {
      // Nothing listens inside (yet): the client sees its connection reset, as with Docker's proxy.
      log().debug({ port: port.containerPort, err: (e as Error).message }, 'proxy connect failed');
      client.resetAndDestroy();
      return;
    }
    const inner = new (net().Socket)({ fd, readable: true, writable: true, allowHalfOpen: true });
    inner.setNoDelay(true);
    this.live.add(client);
    this.live.add(inner);
    const end = () => {
      this.live.delete(client);
      this.live.delete(inner);
      client.destroy();
      inner.destroy();
    };
    client.on('error', end).on('close', end);
    inner.on('error', end).on('close', end);
    client.pipe(inner);
    inner.pipe(client);
  }

  private listenUdp(port: PublishedPort): Promise<void> {
    const outer = dgram().createSocket({ type: port.hostIp.includes(':') ? 'udp6' : 'udp4' });
    this.servers.push(outer);
    const sessions = new Map<string, UdpSession>();
    this.sessions.add(sessions);
    const end = (key: string) => {
      const s = sessions.get(key);
      if (!s) return;
      sessions.delete(key);
      clearTimeout(s.timer);
      s.inner.close();
    };
    const touch = (key: string, s: UdpSession) => {
      clearTimeout(s.timer);
      s.timer = setTimeout(() => end(key), this.udpIdleMs);
      s.timer.unref();
    };
    outer.on('message', (msg: Buffer, from: RemoteInfo) => {
      if (this.closed) return;
      const key = `${from.address}|${from.port}`;
      let s = sessions.get(key);
      if (!s) {
        if (sessions.size >= UDP_MAX_SESSIONS) {
          log().debug({ port: port.containerPort, from: key }, 'proxy: too many UDP sessions, datagram dropped');
          return;
        }
        let fd: number;
        try {
          fd = native.netnsConnect(this.userFd, this.netFd, 4, '127.0.0.1', port.containerPort, undefined, true);
        } catch (e) {
          log().debug({ port: port.containerPort, err: (e as Error).message }, 'proxy: UDP session socket failed');
          return;
        }
        const inner = dgram().createSocket('udp4');
        try {
          inner.bind({ fd });
        } catch (e) {
          closeSync(fd);
          log().debug({ port: port.containerPort, err: (e as Error).message }, 'proxy: UDP session socket failed');
          return;
        }
        const made: UdpSession = { inner, timer: setTimeout(() => {}, 0), queue: [] };
        s = made;
        sessions.set(key, made);
        // Its peer is the port inside: replies come from there only, and go to this client only.
        inner.connect(port.containerPort, '127.0.0.1', (err?: Error) => {
          if (err) return end(key);
          const queued = made.queue!;
          made.queue = undefined;
          for (const m of queued) inner.send(m);
        });
        inner.on('message', (reply: Buffer) => {
          if (this.closed) return;
          touch(key, made);
          outer.send(reply, from.port, from.address);
        });
        // ECONNREFUSED (nothing listens inside, an ICMP error came back): the session ends; the next datagram makes another.
        inner.on('error', () => end(key));
      }
      touch(key, s);
      if (s.queue) {
        // Still connecting: kept for the connect (a few datagrams at most).
        if (s.queue.length < 64) s.queue.push(msg);
        return;
      }
      try {
        s.inner.send(msg);
      } catch {
        end(key); // closed by an error meanwhile: the client's next datagram makes a new session
      }
    });
    return new Promise((resolve, reject) => {
      outer.once('error', (e) => reject(new SetupError(setupErrorInfo('publish', errnoOf(e), `${port.hostIp}:${port.hostPort}/udp`))));
      outer.bind({ address: port.hostIp, port: port.hostPort, exclusive: true }, () => {
        outer.removeAllListeners('error');
        outer.on('error', (e) => log().debug({ err: e.message }, 'proxy: UDP listener error'));
        resolve();
      });
    });
  }

  /** Live UDP sessions (all ports): for tests. */
  udpSessions(): number {
    let n = 0;
    for (const m of this.sessions) n += m.size;
    return n;
  }

  /** The host ports actually bound (a port asked as 0 gets one here). */
  bound(): number[] {
    return this.servers.map((s) => {
      const a = s.address();
      return a && typeof a === 'object' ? a.port : 0;
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.servers) {
      try {
        s.close();
      } catch {
        // a UDP socket that never bound
      }
    }
    for (const c of this.live) c.destroy();
    this.live.clear();
    for (const m of this.sessions)
      for (const s of m.values()) {
        clearTimeout(s.timer);
        s.inner.close();
      }
    this.sessions.clear();
    for (const fd of [this.userFd, this.netFd]) if (fd >= 0) closeSync(fd);
    this.userFd = this.netFd = -1;
  }
}
