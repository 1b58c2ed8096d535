// The engine service for tests: brig system service started as a child
// (bin/brig-node), HTTP on its unix socket, the Debian docker CLI against it.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brigBin, brigRoot } from './helpers.js';

/** Debian's docker.io client (20.10), never /usr/local/bin/docker. */
export const DOCKER = '/usr/bin/docker';

export interface Service {
  proc: ChildProcess;
  socket: string;
  env: NodeJS.ProcessEnv;
  stderr: () => string;
  stop(): Promise<void>;
}

export function engineRoot(prefix: string): { root: string; env: NodeJS.ProcessEnv } {
  const { root, env } = brigRoot(prefix);
  return { root, env };
}

export async function startService(env: NodeJS.ProcessEnv, socket = join(env.XDG_RUNTIME_DIR!, 'brig', 'docker.sock'), args: string[] = []): Promise<Service> {
  const proc = spawn(process.execPath, [brigBin, 'system', 'service', '--socket', socket, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const until = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`brig system service exited ${proc.exitCode}: ${err}`);
    if (existsSync(socket)) {
      try {
        const r = await http(socket, 'GET', '/_ping');
        if (r.status === 200) break;
      } catch {
        // not yet
      }
    }
    if (Date.now() > until) throw new Error(`brig system service did not answer within 30 s: ${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    proc,
    socket,
    env,
    stderr: () => err,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      await exited;
    },
  };
}

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  json: () => any;
}

export function http(socket: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
    const req = request({ socketPath: socket, method, path, headers: { ...(data && !Buffer.isBuffer(body) ? { 'Content-Type': 'application/json' } : {}), ...(data ? { 'Content-Length': String(data.length) } : {}), ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const b = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: b, json: () => JSON.parse(b.toString()) });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(60_000, () => req.destroy(new Error(`${method} ${path}: no answer in 60 s`)));
    if (data) req.write(data);
    req.end();
  });
}

/** The docker CLI against the service: its exit code, stdout, stderr. */
export function docker(svc: Service, args: string[], o: { input?: string; timeoutMs?: number } = {}): { code: number | null; out: string; err: string } {
  const r = spawnSync(DOCKER, args, { env: { ...svc.env, DOCKER_HOST: `unix://${svc.socket}`, DOCKER_CONFIG: join(svc.env.XDG_RUNTIME_DIR!, 'docker-config') }, input: o.input ?? '', timeout: o.timeoutMs ?? 60_000, encoding: 'utf8' });
  return { code: r.status, out: r.stdout ?? '', err: r.stderr ?? '' };
}

export function dockerAsync(svc: Service, args: string[]): { proc: ChildProcess; done: Promise<{ code: number | null; out: string; err: string }> } {
  const proc = spawn(DOCKER, args, { env: { ...svc.env, DOCKER_HOST: `unix://${svc.socket}`, DOCKER_CONFIG: join(svc.env.XDG_RUNTIME_DIR!, 'docker-config') }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (err += d));
  const done = new Promise<{ code: number | null; out: string; err: string }>((r) => proc.on('close', (code) => r({ code, out, err })));
  return { proc, done };
}

/** A test file's after(): force-removes whatever containers a failed test left, stops the service, removes the file's root. */
export async function endService(svc: Service | undefined, root: string): Promise<void> {
  if (svc) {
    const ids = docker(svc, ['ps', '-aq']).out.trim().split('\n').filter(Boolean);
    if (ids.length) docker(svc, ['rm', '-f', ...ids]);
    await svc.stop();
  }
  rmSync(root, { recursive: true, force: true });
}

/** A busybox image (the host's busybox binary and its applets) in the store, as test/container.test.ts makes one. */
export function busyboxImage(env: NodeJS.ProcessEnv, ref = 'bb:1'): boolean {
  const busybox = ['/usr/bin/busybox', '/bin/busybox'].find((p) => existsSync(p));
  if (!busybox) return false;
  const dir = mkdtempSync(join(tmpdir(), 'engine-rootfs-'));
  try {
    mkdirSync(join(dir, 'bin'));
    mkdirSync(join(dir, 'tmp'), { mode: 0o1777 });
    mkdirSync(join(dir, 'etc'));
    writeFileSync(join(dir, 'bin', 'busybox'), readFileSync(busybox), { mode: 0o755 });
    for (const a of ['sh', 'cat', 'echo', 'sleep', 'tar', 'test', 'ls', 'true', 'false', 'stat', 'id', 'wc', 'head', 'tty', 'stty', 'ps', 'mkdir', 'rm', 'env', 'yes']) symlinkSync('busybox', join(dir, 'bin', a));
    const r = spawnSync(process.execPath, [brigBin, 'import-rootfs', '--cmd', '["/bin/sh"]', dir, ref], { env, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`import-rootfs: ${r.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return true;
}
