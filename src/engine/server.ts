// `brig system service`: the Docker Engine API (v1.41 shapes) over HTTP on a
// unix socket, so the docker CLI, docker-compose and dockerode drive brig.
//
// The service holds no container state of its own: containers are records
// in the store and monitor processes (src/container), so the service may
// exit and come back without losing any. Only exec instances (as Docker's,
// short-lived) live in this process.
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { dirname, join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { native } from '../native.js';
import { EngineError, messageOf, statusOf } from './errors.js';
import registerRoutes from './routes/index.js';
import { dispatchUpgrade, initHijack } from './stream.js';
import { net } from '../builtins.js';

/** The newest API version answered (Docker 20.10's); older prefixes are accepted, newer refused. */
export const API_VERSION = '1.41';
export const MIN_API_VERSION = '1.12';

export interface EngineServerOptions {
  /** The unix socket to listen on (made mode 0600, in a directory made 0700). */
  socket: string;
  /** Also listen on host:port (TCP): anyone who can reach it drives this user's containers. */
  listen?: string;
  /** One line per request, to this function. */
  log?: (line: string) => void;
}

export interface EngineServer {
  socket: string;
  /** The TCP address, when listening on one. */
  address?: string;
  app: FastifyInstance;
  close(): Promise<void>;
}

/** $XDG_RUNTIME_DIR/brig/docker.sock, else /tmp/brig-UID/docker.sock: the directory brig's agent uses. */
export function defaultSocket(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_RUNTIME_DIR;
  const dir = xdg && xdg.startsWith('/') ? join(xdg, 'brig') : `/tmp/brig-${process.getuid!()}`;
  return join(dir, 'docker.sock');
}

/** 1.41 from /v1.41/..., undefined without a prefix. */
function versionOf(req: IncomingMessage): string | undefined {
  return (req as IncomingMessage & { apiVersion?: string }).apiVersion;
}

function compareVersions(a: string, b: string): number {
  const [a1, a2] = a.split('.').map(Number);
  const [b1, b2] = b.split('.').map(Number);
  return a1 - b1 || a2 - b2;
}

/** The path without its /v1.NN prefix, the version kept on the request. */
export function stripVersion(req: IncomingMessage): string {
  const url = req.url ?? '/';
  const m = /^\/v(\d+\.\d+)(\/.*)?$/.exec(url.split('?')[0]);
  if (!m) return url;
  (req as IncomingMessage & { apiVersion?: string }).apiVersion = m[1];
  return (m[2] ?? '/') + url.slice(url.split('?')[0].length);
}

/** Docker's answer to a client newer than the server. */
export function versionProblem(req: IncomingMessage): EngineError | undefined {
  const v = versionOf(req);
  if (v === undefined) return undefined;
  if (compareVersions(v, API_VERSION) > 0) return new EngineError(400, `client version ${v} is too new. Maximum supported API version is ${API_VERSION}`);
  if (compareVersions(v, MIN_API_VERSION) < 0) return new EngineError(400, `client version ${v} is too old. Minimum supported API version is ${MIN_API_VERSION}, please upgrade your client to a newer version`);
  return undefined;
}

/** A private directory of this user for the socket: made 0700, refused if someone else's or opened up. */
function privateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  if (!st.isDirectory() || st.uid !== process.getuid!() || (st.mode & 0o077) !== 0) {
    throw new EngineError(500, `socket directory ${dir}: not a private directory of this user (owner uid ${st.uid}, mode ${(st.mode & 0o777).toString(8)}); make it 0700 or pick another --socket`);
  }
}

export async function createEngineServer(o: EngineServerOptions): Promise<EngineServer> {
  if (Buffer.byteLength(o.socket) > 107) throw new EngineError(500, `--socket: the path is too long for a unix socket (${Buffer.byteLength(o.socket)} bytes, at most 107): ${o.socket}`);
  const uid = process.getuid!();
  const app = Fastify({
    logger: false,
    // Large create bodies are rare; archives and tars stream (not parsed).
    bodyLimit: 8 * 1024 * 1024,
    rewriteUrl: (req) => stripVersion(req),
    // Docker's clients keep connections for streams (logs -f, events, wait): no request timeout.
    requestTimeout: 0,
    connectionTimeout: 0,
    keepAliveTimeout: 60_000,
    forceCloseConnections: true,
    routerOptions: { ignoreTrailingSlash: true },
    // HEAD is answered where Docker answers it (_ping, archive), not on every GET.
    exposeHeadRoutes: false,
  });
  initHijack(app);
  // Bodies: JSON (an empty one is "no body", as Docker's clients send it on
  // start or stop), anything else as the raw stream (tar for archive PUT).
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    const text = String(body);
    if (text.trim() === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch (e) {
      done(new EngineError(400, `the request body is not JSON: ${messageOf(e)}`), undefined);
    }
  });
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser('*', (_req, payload, done) => done(null, payload));
  app.addHook('onRequest', async (req) => {
    const problem = versionProblem(req.raw);
    if (problem) throw problem;
  });
  app.addHook('onSend', async (_req, reply, payload) => {
    reply.header('Api-Version', API_VERSION);
    reply.header('Docker-Experimental', 'false');
    reply.header('Ostype', 'linux');
    reply.header('Server', `brig/${API_VERSION} (linux)`);
    // Exactly application/json, as Docker sends it: the docker CLI reads an error's message only then (fastify adds a charset).
    if (String(reply.getHeader('content-type') ?? '').startsWith('application/json')) reply.header('content-type', 'application/json');
    return payload;
  });
  if (o.log) {
    const log = o.log;
    app.addHook('onResponse', async (req, reply) => log(`${req.method} ${req.url} ${reply.statusCode}`));
  }
  app.setErrorHandler((e, _req, reply) => {
    const status = statusOf(e);
    if (status >= 500 && o.log) o.log(`error: ${messageOf(e)}`);
    // Exactly application/json (no charset): the docker CLI reads an error's message only then.
    void reply.code(status).header('content-type', 'application/json').send(JSON.stringify({ message: messageOf(e) }) + '\n');
  });
  app.setNotFoundHandler((req, reply) => void reply.code(404).header('content-type', 'application/json').send(JSON.stringify({ message: `page not found: ${req.method} ${req.url.split('?')[0]}` }) + '\n'));
  await app.register(registerRoutes);
  await app.ready();

  // Security: only this user's own processes. The socket's mode (0600) and
  // its directory's (0700) already say so; SO_PEERCRED holds even if
  // someone opens them up (or a process of another uid was handed an fd).
  const checkPeer = (sock: Socket): boolean => {
    const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (typeof fd !== 'number' || fd < 0) return true; // TCP (--listen): no peer credentials
    if (sock.remoteAddress !== undefined) return true;
    const [pid, peerUid] = native.peerCred(fd);
    if (peerUid === uid) return true;
    o.log?.(`refused a connection from pid ${pid} uid ${peerUid} (the service serves uid ${uid} only)`);
    sock.destroy();
    return false;
  };
  app.server.on('connection', (sock: Socket) => void checkPeer(sock));
  // Docker's hijacked calls (attach, exec start) ask for `Upgrade: tcp`.
  app.server.on('upgrade', (req: IncomingMessage, sock: Socket, head: Buffer) => {
    if (sock.destroyed) return;
    const problem = versionProblem(req);
    const path = stripVersion(req);
    o.log?.(`${req.method} ${path} (upgrade: ${req.headers.upgrade})`);
    if (problem) {
      sock.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${JSON.stringify({ message: problem.message })}\n`);
      return;
    }
    void dispatchUpgrade(app, req, path, sock, head);
  });

  privateDir(dirname(o.socket));
  try {
    // A socket file here is a dead service's (or one still running: then EADDRINUSE below would be wrong, so ask first).
    if (lstatSync(o.socket).isSocket()) await refuseIfServing(o.socket);
    unlinkSync(o.socket);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  // 0600 from the start (umask), not after a chmod race.
  const old = process.umask(0o177);
  try {
    await app.listen({ path: o.socket });
  } finally {
    process.umask(old);
  }
  chmodSync(o.socket, 0o600);
  let address: string | undefined;
  let closeTcp = async () => {};
  if (o.listen) {
    const m = /^(?:tcp:\/\/)?(\[[^\]]+\]|[^:]+):(\d+)$/.exec(o.listen);
    if (!m) {
      await app.close();
      throw new EngineError(400, `--listen: expected HOST:PORT, got ${JSON.stringify(o.listen)}`);
    }
    const host = m[1].replace(/^\[|\]$/g, '');
    // A second listener on the same fastify instance: its own http server.
    const tcp = createServer((req, res) => app.routing(req, res));
    tcp.on('upgrade', (req: IncomingMessage, sock: Socket, head: Buffer) => {
      const problem = versionProblem(req);
      const path = stripVersion(req);
      if (problem) return void sock.end(`HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n`);
      void dispatchUpgrade(app, req, path, sock, head);
    });
    await new Promise<void>((res, rej) => {
      tcp.once('error', rej);
      tcp.listen(Number(m[2]), host, () => res());
    });
    const a = tcp.address();
    address = typeof a === 'object' && a ? `${a.address}:${a.port}` : o.listen;
    closeTcp = async () => {
      tcp.closeAllConnections();
      await new Promise<void>((r) => tcp.close(() => r()));
    };
  }
  return {
    socket: o.socket,
    address,
    app,
    close: async () => {
      await closeTcp();
      await app.close();
      try {
        unlinkSync(o.socket);
      } catch {
        // already gone
      }
    },
  };
}

/** Another service answering on this socket: refuse to take it over. */
async function refuseIfServing(path: string): Promise<void> {
  const { connect } = net();
  const alive = await new Promise<boolean>((res) => {
    const c = connect(path);
    c.once('connect', () => (c.destroy(), res(true)));
    c.once('error', () => res(false));
  });
  if (alive) throw new EngineError(500, `${path}: another service is listening there (stop it, or pick another --socket)`);
}
