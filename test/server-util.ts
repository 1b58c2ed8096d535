// Shared by the server tests: a service on a random loopback port, JSON over real HTTP.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type BrigServer, type ServerOptions } from '../src/index.js';

export interface Running {
  server: BrigServer;
  url: string;
  get(path: string, headers?: Record<string, string>): Promise<{ status: number; body: any; headers: Headers }>;
  post(path: string, body: unknown, headers?: Record<string, string>): Promise<{ status: number; body: any; headers: Headers }>;
  close(): Promise<void>;
}

/**
 * BRIG_TEST_REDIS=redis://...: every server here queues on that Redis (BullMQ) with its local
 * worker, so the same suites run in both modes (test/server-redis.test.ts re-runs them so).
 */
const REDIS = process.env.BRIG_TEST_REDIS;

export async function startServer(options: ServerOptions = {}): Promise<Running> {
  const mode = REDIS && !options.queue && options.redis === undefined ? { redis: REDIS } : {};
  const server = await createServer({ listen: '127.0.0.1:0', ...mode, ...options });
  const url = await server.listen();
  const call = async (method: string, path: string, body: unknown, headers: Record<string, string> = {}) => {
    const init: RequestInit = { method, headers: { ...headers } };
    if (body !== undefined) {
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
      (init.headers as Record<string, string>)['content-type'] ??= 'application/json';
    }
    const res = await fetch(url + path, init);
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON (metrics, the page)
    }
    return { status: res.status, body: parsed as any, headers: res.headers };
  };
  return {
    server,
    url,
    get: (p, h) => call('GET', p, undefined, h),
    post: (p, b, h) => call('POST', p, b, h),
    close: () => server.close(),
  };
}

/** A runtimes directory with test-only runtimes: one whose program is missing (brig's own failure), one that is not a valid executable. */
export function testRuntimes(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'brig-test-runtimes-'));
  const add = (name: string, manifest: object) => {
    mkdirSync(join(dir, name));
    writeFileSync(join(dir, name, 'runtime.json'), JSON.stringify(manifest));
  };
  add('missing', {
    language: 'missing',
    version: { command: ['sh', '-c', 'echo 1.0.0'], pattern: '^(\\S+)' },
    source: 'main.txt',
    run: ['/nonexistent/interpreter', '{source}'],
    profiles: { run: ['judge'] },
    judge0: { id: 9001, name: 'Missing ({version})' },
  });
  add('rawexec', {
    language: 'rawexec',
    version: { command: ['sh', '-c', 'echo 2.0.0'], pattern: '^(\\S+)' },
    source: 'prog.bin',
    compile: ['chmod', '755', '{source}'],
    run: ['/box/{source}'],
    profiles: { compile: ['default'], run: ['judge'] },
    judge0: { id: 9002, name: 'Raw executable ({version})' },
  });
  add('nochain', {
    language: 'nochain',
    version: { command: ['no-such-toolchain-brig', '--version'], pattern: '(\\S+)' },
    source: 'x',
    run: ['x'],
    profiles: { run: ['judge'] },
    judge0: { id: 9003, name: 'Nothing' },
  });
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The ws package (@fastify/websocket's own client and server), for the WebSocket tests. */
export const WebSocket: any = createRequire(import.meta.url)('ws');
