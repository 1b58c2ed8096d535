// brig's own port proxy (publishVia 'proxy'), as rootlesskit's builtin
// driver does it: a listener on the host; for each connection, a socket
// made inside the sandbox's network namespace (addon/netns.cc) and
// connected to the port there, and the two relayed. The program sees the
// connection come from 127.0.0.1: a relay cannot keep the client's address.
import { closeSync, openSync } from 'node:fs';
import type { Server, Socket } from 'node:net';
import { net } from '../builtins.js';
import { errnoOf, SetupError, setupErrorInfo } from '../errors.js';
import { log } from '../log.js';
import { native } from '../native.js';
import type { PublishedPort } from './ports.js';

export class PortProxy {
  private readonly servers: Server[] = [];
  private readonly live = new Set<Socket>();
  private userFd = -1;
  private netFd = -1;
  private closed = false;

  /** Listens on every port given (TCP only); rejects with a SetupError naming the port that could not be bound. */
  static async start(pid: number, ports: PublishedPort[]): Promise<PortProxy> {
    const p = new PortProxy();
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
    for (const s of this.servers) s.close();
    for (const c of this.live) c.destroy();
    this.live.clear();
    for (const fd of [this.userFd, this.netFd]) if (fd >= 0) closeSync(fd);
    this.userFd = this.netFd = -1;
  }
}
