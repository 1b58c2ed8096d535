// Request bodies that are tars (build contexts, docker load archives): taken
// as streams, never buffered whole, and written to a file in the store's
// tmp/ (the same filesystem the store renames into).
import { execFile } from 'node:child_process';
import { createWriteStream, mkdirSync, rmSync, statSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { FastifyInstance } from 'fastify';
import type { Store } from '../image/store.js';
import { EngineError } from './errors.js';

/** Docker clients send tars as application/x-tar (the CLI) or application/tar (docker-py). */
export const TAR_TYPES = ['application/x-tar', 'application/tar', 'application/octet-stream'];

/** Lets the plugin's routes read tar bodies as streams (a parser fastify has already is left alone). */
export function acceptTarBodies(app: FastifyInstance): void {
  for (const t of TAR_TYPES) if (!app.hasContentTypeParser(t)) app.addContentTypeParser(t, (_req, payload, done) => done(null, payload));
}

/** A fresh directory in the store's tmp/, removed by the returned function. */
export function tempDir(store: Store, kind: string): { dir: string; remove: () => void } {
  const dir = store.tmp(kind);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The request body written to `file`; its size. An empty or missing body is a 400 naming `what`. */
export async function saveBody(body: unknown, file: string, what: string): Promise<number> {
  if (!(body instanceof Readable)) throw new EngineError(400, `${what}: expected a tar as the request body (Content-Type application/x-tar)`);
  await pipeline(body, createWriteStream(file, { mode: 0o600 }));
  const size = statSync(file).size;
  if (size === 0) throw new EngineError(400, `${what}: the request body is empty`);
  return size;
}

/**
 * Unpacks a build context (plain, gzip, bzip2 or xz: GNU tar tells) into
 * `dir`, as the user's own files: owners and odd modes from the archive are
 * not kept, and nothing is written outside `dir`.
 */
export function unpackContext(tarFile: string, dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return new Promise((resolve, reject) =>
    execFile('tar', ['-xf', tarFile, '-C', dir, '--no-same-owner', '--no-same-permissions', '--no-overwrite-dir'], { maxBuffer: 1 << 20 }, (err, _out, stderr) => {
      if (err) reject(new EngineError(400, `build context: not a tar archive (${String(stderr).trim().split('\n')[0] || err.message})`));
      else resolve();
    }),
  );
}
