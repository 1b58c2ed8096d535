// Listen mode, as nsjail's -Ml: one TCP listener; each accepted connection
// gets a fresh sandbox whose stdin and stdout are the connection. Caps on
// connections overall and per client address; a connection past them is
// refused (closed at once) and logged. The sandbox is killed when its peer
// goes away (a reset, or a write that finds the peer closed).
import { EventEmitter } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { OptionsError, shown } from '../errors.js';
import { log } from '../log.js';
import { resolveOptions, type SandboxOptions } from '../launch/options.js';
import { applyProfile } from '../profile/index.js';
import { spawn, type RunResult, type SandboxProcess } from '../launch/sandbox.js';

export interface ListenOptions extends Omit<SandboxOptions, 'stdin' | 'stdout'> {
  port: number;
  /** Default 127.0.0.1 (nsjail's is ::, every address: say so to serve others). */
  address?: string;
  /** Sandboxes at once; connections past it are refused. Default unlimited. */
  maxConns?: number;
  /** Sandboxes at once per client address. Default unlimited. */
  maxConnsPerIp?: number;
}

export interface ConnectionEvent {
  peer: string;
  result?: RunResult;
  reason?: string;
}

/**
 * A listening sandbox server. Events: 'connection' {peer}, 'exit' {peer,
 * result}, 'refused' {peer, reason}.
 */
export class SandboxListener extends EventEmitter {
  private readonly live = new Set<SandboxProcess>();
  private readonly perIp = new Map<string, number>();
  private readonly waits = new Set<Promise<unknown>>();

  constructor(
    private readonly server: Server,
    private readonly argv: string[],
    private readonly opts: ListenOptions,
  ) {
    super();
    server.on('connection', (s) => this.accept(s));
  }

  address(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  /** Sandboxes running now. */
  get active(): number {
    return this.live.size;
  }

  private accept(socket: Socket): void {
    const peer = socket.remoteAddress ?? '?';
    const { maxConns, maxConnsPerIp } = this.opts;
    const reason = maxConns !== undefined && this.live.size >= maxConns ? `max-conns ${maxConns} reached` : maxConnsPerIp !== undefined && (this.perIp.get(peer) ?? 0) >= maxConnsPerIp ? `max-conns-per-ip ${maxConnsPerIp} reached for ${peer}` : undefined;
    if (reason) {
      log().warn({ peer, reason }, 'connection refused');
      this.emit('refused', { peer, reason } satisfies ConnectionEvent);
      socket.destroy();
      return;
    }
    const { port: _p, address: _a, maxConns: _m, maxConnsPerIp: _mi, ...run } = this.opts;
    let p: SandboxProcess;
    try {
      p = spawn(this.argv, { ...run, stdin: 'pipe', stdout: 'pipe', stderr: run.stderr ?? 'ignore' });
    } catch (e) {
      log().error({ peer, err: (e as Error).message }, 'sandbox not started');
      socket.destroy();
      return;
    }
    this.live.add(p);
    this.perIp.set(peer, (this.perIp.get(peer) ?? 0) + 1);
    this.emit('connection', { peer } satisfies ConnectionEvent);
    socket.setNoDelay(true);
    // The peer is gone: the sandbox goes too.
    const gone = () => p.kill();
    socket.on('error', gone);
    socket.on('close', gone);
    p.stdin?.on('error', () => {});
    socket.pipe(p.stdin!);
    p.stdout!.pipe(socket);
    const done = p.wait().then(
      (result) => {
        this.emit('exit', { peer, result } satisfies ConnectionEvent);
      },
      () => {},
    );
    const settled = done.finally(() => {
      this.live.delete(p);
      const n = (this.perIp.get(peer) ?? 1) - 1;
      if (n) this.perIp.set(peer, n);
      else this.perIp.delete(peer);
      this.waits.delete(settled);
      socket.unpipe(p.stdin!);
      p.stdin?.destroy();
      p.stdout?.destroy();
      socket.end();
      socket.destroySoon();
    });
    this.waits.add(settled);
  }

  /** Stops listening, kills every sandbox, and resolves once they are gone. */
  async close(): Promise<void> {
    await new Promise<void>((r) => this.server.close(() => r()));
    for (const p of this.live) p.kill();
    await Promise.all([...this.waits]);
  }
}

/** Listens on address:port; resolves once bound. */
export async function listen(argv: string[], opts: ListenOptions): Promise<SandboxListener> {
  if (!opts || typeof opts !== 'object') throw new OptionsError('options', 'expected an object');
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) throw new OptionsError('port', `expected a port number, got ${shown(opts.port)}`);
  for (const k of ['maxConns', 'maxConnsPerIp'] as const) {
    const v = opts[k];
    if (v !== undefined && (!Number.isInteger(v) || v < 1)) throw new OptionsError(k, `expected a whole number of at least 1, got ${shown(v)}`);
  }
  // Every connection's options are the same: checked once, here.
  const { port: _p, address: _a, maxConns: _m, maxConnsPerIp: _mi, ...run } = opts;
  resolveOptions(argv, applyProfile(run));
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: false });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: opts.port, host: opts.address ?? '127.0.0.1', exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return new SandboxListener(server, argv, opts);
}
