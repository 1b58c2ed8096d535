// Docker's streams: hijacked connections (attach, exec start), the 8-byte
// multiplexed frames, and a container's output as it is written.
//
// A hijacked call is an HTTP request after which the connection carries raw
// bytes both ways. The docker CLI asks with `Connection: Upgrade` and
// `Upgrade: tcp` and expects `HTTP/1.1 101 UPGRADED`; Node hands such a
// request to the server's 'upgrade' event with the socket detached from the
// HTTP parser (so stdin is not parsed as HTTP). Without the Upgrade header
// (dockerode's non-hijack calls) the same handler answers `200 OK` and
// streams on the fastify route's socket until it closes.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { EngineError, messageOf, statusOf } from './errors.js';

export const RAW_STREAM = 'application/vnd.docker.raw-stream';

export interface Hijacked {
  params: Record<string, string>;
  query: Record<string, string>;
  body: unknown;
  socket: Duplex;
  /** Asked with Upgrade: tcp (answered 101), or a plain request (answered 200). */
  upgraded: boolean;
  /** Writes the response head; after it the socket is the stream. Call once, before any output. */
  begin(contentType?: string): void;
  /** The connection closed (a half-close, the client's end of input, is not this). */
  closed: Promise<void>;
}

type HijackHandler = (h: Hijacked) => Promise<void>;
interface HijackRoute {
  method: string;
  re: RegExp;
  names: string[];
  handler: HijackHandler;
}

/** The table of hijacked routes, on the root instance (plugins' instances see it through their prototype). */
export function initHijack(app: FastifyInstance): void {
  app.decorate('hijackRoutes', [] as HijackRoute[]);
}

function table(app: FastifyInstance): HijackRoute[] {
  const t = (app as unknown as { hijackRoutes?: HijackRoute[] }).hijackRoutes;
  if (!t) throw new Error('initHijack() was not called on the engine server');
  return t;
}

function reasonPhrase(status: number): string {
  return ({ 400: 'Bad Request', 404: 'Not Found', 409: 'Conflict', 500: 'Internal Server Error' } as Record<number, string>)[status] ?? 'Error';
}

function errorResponse(e: unknown): string {
  const status = statusOf(e);
  const body = JSON.stringify({ message: messageOf(e) }) + '\n';
  return `HTTP/1.1 ${status} ${reasonPhrase(status)}\r\nContent-Type: application/json\r\nApi-Version: 1.41\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

function makeHijacked(socket: Duplex, upgraded: boolean, params: Record<string, string>, query: Record<string, string>, body: unknown): Hijacked & { started: () => boolean } {
  let started = false;
  const closed = new Promise<void>((r) => {
    // Not 'end': a client with nothing to send half-closes at once (the docker CLI's CloseWrite) and still reads.
    socket.once('close', () => r());
    socket.once('error', () => r());
  });
  return {
    params,
    query,
    body,
    socket,
    upgraded,
    closed,
    started: () => started,
    begin(contentType = RAW_STREAM) {
      if (started) return;
      started = true;
      socket.write(
        upgraded
          ? `HTTP/1.1 101 UPGRADED\r\nContent-Type: ${contentType}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nApi-Version: 1.41\r\n\r\n`
          : `HTTP/1.1 200 OK\r\nContent-Type: ${contentType}\r\nApi-Version: 1.41\r\nConnection: close\r\n\r\n`,
      );
    },
  };
}

async function runHandler(h: Hijacked & { started: () => boolean }, handler: HijackHandler): Promise<void> {
  h.socket.on('error', () => {}); // a client that left: seen as 'closed'
  try {
    await handler(h);
  } catch (e) {
    if (!h.started() && !h.socket.destroyed) h.socket.write(errorResponse(e));
  }
  if (!h.socket.destroyed) h.socket.end();
}

/** A route answered on a hijacked connection (with Upgrade) or a streamed plain one (without). */
export function hijackRoute(app: FastifyInstance, method: 'POST' | 'GET', path: string, handler: HijackHandler): void {
  const names: string[] = [];
  const re = new RegExp('^' + path.replace(/:([a-zA-Z]+)/g, (_m, n: string) => (names.push(n), '([^/]+)')) + '/?$');
  table(app).push({ method, re, names, handler });
  app.route({
    method,
    url: path,
    handler: async (req, reply) => {
      reply.hijack();
      const socket = req.raw.socket;
      const h = makeHijacked(socket, false, req.params as Record<string, string>, flatQuery(req.query), req.body);
      await runHandler(h, handler);
    },
  });
}

function flatQuery(q: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries((q ?? {}) as Record<string, unknown>)) out[k] = Array.isArray(v) ? String(v[v.length - 1]) : String(v);
  return out;
}

/** An upgrade request: its body (Content-Length, from `head` and then the socket), the route, the handler. */
export async function dispatchUpgrade(app: FastifyInstance, req: IncomingMessage, pathAndQuery: string, socket: Duplex, head: Buffer): Promise<void> {
  socket.on('error', () => {});
  const [path, qs = ''] = pathAndQuery.split('?', 2);
  const route = table(app).find((r) => r.method === req.method && r.re.test(path));
  if (!route) {
    socket.end(errorResponse(new EngineError(404, `page not found: ${req.method} ${path} (no hijacked call there)`)));
    return;
  }
  const m = route.re.exec(path)!;
  const params: Record<string, string> = {};
  route.names.forEach((n, i) => (params[n] = decodeURIComponent(m[i + 1])));
  const query: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(qs)) query[k] = v;
  const length = Number(req.headers['content-length'] ?? 0);
  let buf = head;
  if (length > 0) {
    if (length > 1024 * 1024) return void socket.end(errorResponse(new EngineError(400, 'request body too large')));
    while (buf.length < length) {
      const more = await new Promise<Buffer | null>((r) => {
        const onData = (d: Buffer) => (cleanup(), r(d));
        const onEnd = () => (cleanup(), r(null));
        const cleanup = () => (socket.off('data', onData), socket.off('end', onEnd), socket.off('close', onEnd));
        socket.on('data', onData);
        socket.once('end', onEnd);
        socket.once('close', onEnd);
      });
      if (!more) return void socket.destroy();
      buf = Buffer.concat([buf, more]);
    }
    socket.pause();
  }
  let body: unknown;
  if (length > 0) {
    const text = buf.subarray(0, length).toString('utf8');
    try {
      body = text.trim() ? JSON.parse(text) : undefined;
    } catch (e) {
      return void socket.end(errorResponse(new EngineError(400, `the request body is not JSON: ${messageOf(e)}`)));
    }
  }
  // Bytes after the body are the stream's (stdin): put them back.
  const rest = buf.subarray(Math.max(0, length));
  if (rest.length) socket.unshift(rest);
  await runHandler(makeHijacked(socket, true, params, query, body), route.handler);
}

/** Docker's multiplexed frame: stream (0 stdin, 1 stdout, 2 stderr), three zero bytes, the length (big-endian), the bytes. */
export function frame(stream: 0 | 1 | 2, data: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h[0] = stream;
  h.writeUInt32BE(data.length, 4);
  return Buffer.concat([h, data]);
}

/** Writes with backpressure: resolves once the socket took it (or is gone). */
export function send(socket: Duplex | NodeJS.WritableStream, data: Buffer | string): Promise<void> {
  const s = socket as Duplex;
  if (s.destroyed || s.writableEnded) return Promise.resolve();
  if (s.write(data)) return Promise.resolve();
  return new Promise((r) => {
    const done = () => (s.off('drain', done), s.off('close', done), r());
    s.once('drain', done);
    s.once('close', done);
  });
}

export interface LogLine {
  stream: 'stdout' | 'stderr';
  log: string;
  time: string;
}

/**
 * A json-file log followed from an open fd: the container's output as the
 * monitor writes it. The fd stays valid when an --rm container's files are
 * removed at its end, so nothing written before that is lost.
 */
export class LogFollower {
  private fd: number;
  private offset: number;
  private rest = '';

  /** Opens (making it empty if the container never ran) the log; from its end, or from its start with `fromStart`. */
  constructor(path: string, fromStart = false) {
    closeSync(openSync(path, 'a', 0o600));
    this.fd = openSync(path, 'r');
    this.offset = fromStart ? 0 : fstatSync(this.fd).size;
  }

  /** Whatever complete entries were written since the last call. */
  read(): LogLine[] {
    if (this.fd < 0) return [];
    const size = fstatSync(this.fd).size;
    if (size <= this.offset) return [];
    const buf = Buffer.alloc(size - this.offset);
    const n = readSync(this.fd, buf, 0, buf.length, this.offset);
    this.offset += n;
    const text = this.rest + buf.subarray(0, n).toString('utf8');
    const cut = text.lastIndexOf('\n') + 1;
    this.rest = text.slice(cut);
    const out: LogLine[] = [];
    for (const l of text.slice(0, cut).split('\n')) {
      if (!l) continue;
      try {
        out.push(JSON.parse(l) as LogLine);
      } catch {
        // a line cut by a crash
      }
    }
    return out;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
