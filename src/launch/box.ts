// Persistent boxes: a working directory that survives between runs, for
// compile-then-run. Each run is a fresh sandbox with the box mounted at
// /box; limits apply per run.
//
// Size: without root a directory cannot have a hard quota (that takes
// filesystem quotas or a loop mount). A box therefore caps every file at
// its size (RLIMIT_FSIZE), watches its usage while a run writes (every
// 50 ms; a run that overfills the box is killed as file-size-limit),
// refuses a run while the box is over its size, and reports the box's usage
// after every run (boxBytes, boxOverLimit).
import { closeSync, constants as fs, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { OptionsError, setupErrorInfo } from '../errors.js';
import { parseSize, type SandboxOptions } from './options.js';
import { setupFailure, spawn, type RunResult } from './sandbox.js';

export interface BoxOptions extends SandboxOptions {
  /** Box number; default the lowest free one. */
  id?: number;
  /** Most bytes the box may hold (bytes or `256m`). Default 256 MiB. */
  size?: number | string;
  /** Where boxes live: default $BRIG_BOX_ROOT, else $XDG_DATA_HOME/brig/boxes (~/.local/share/brig/boxes). */
  root?: string;
}

export interface BoxRunResult extends RunResult {
  /** Bytes in the box after the run. */
  boxBytes: number;
  boxOverLimit: boolean;
}

export function boxRoot(root?: string): string {
  if (root) return root;
  if (process.env.BRIG_BOX_ROOT) return process.env.BRIG_BOX_ROOT;
  return join(process.env.XDG_DATA_HOME || join(homedir(), '.local/share'), 'brig/boxes');
}

/** Bytes under dir, counting no further than `stopAt` (a million small files must not make this slow). */
export function bytesUnder(dir: string, stopAt = Infinity): number {
  let total = 0;
  const stack = [dir];
  while (stack.length && total <= stopAt) {
    const d = stack.pop()!;
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      continue; // removed while we looked
    }
    for (const name of names) {
      let st;
      try {
        st = lstatSync(join(d, name));
      } catch {
        continue;
      }
      total += st.isDirectory() ? st.size : st.blocks * 512;
      if (st.isDirectory()) stack.push(join(d, name));
      if (total > stopAt) break;
    }
  }
  return total;
}

const BOX_WATCH_MS = 50;

export class Box {
  /** @internal use createBox() or openBox() */
  constructor(
    readonly id: number,
    /** The box's directory on the host (what /box is in a run). */
    readonly path: string,
    readonly sizeBytes: number,
    private readonly defaults: SandboxOptions,
  ) {}

  /**
   * A path inside the box, refusing `..`, absolute paths and symlinks
   * anywhere on the way: what the sandboxed program left in the box must not
   * lead brig's own file access out of it.
   */
  private inside(name: string): string {
    if (typeof name !== 'string' || !name || name.includes('\0') || name.startsWith('/') || name.split('/').some((p) => p === '..' || p === ''))
      throw new OptionsError('name', `expected a relative path inside the box, got ${JSON.stringify(name)}`);
    let p = this.path;
    for (const part of name.split('/')) {
      p = join(p, part);
      let st;
      try {
        st = lstatSync(p);
      } catch {
        continue; // not there (yet): nothing below it can be a symlink
      }
      if (st.isSymbolicLink()) throw new OptionsError('name', `${name} goes through a symlink in the box`);
    }
    return join(this.path, name);
  }

  writeFile(name: string, data: string | Buffer, mode = 0o644): void {
    const p = this.inside(name);
    mkdirSync(join(p, '..'), { recursive: true });
    const fd = openSync(p, fs.O_WRONLY | fs.O_CREAT | fs.O_TRUNC | fs.O_NOFOLLOW, mode);
    try {
      writeFileSync(fd, data);
    } finally {
      closeSync(fd);
    }
  }

  readFile(name: string): Buffer {
    const fd = openSync(this.inside(name), fs.O_RDONLY | fs.O_NOFOLLOW);
    try {
      return readFileSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  /** Bytes the box holds now. */
  usage(): number {
    return bytesUnder(this.path);
  }

  /** Runs argv in a fresh sandbox with the box at /box (the working directory). */
  async run(argv: string[], options: SandboxOptions = {}): Promise<BoxRunResult> {
    const before = this.usage();
    if (before > this.sizeBytes) {
      const full = setupErrorInfo('box-full', 28 /* ENOSPC */, this.path, `the box holds ${before} bytes, over its ${this.sizeBytes}`);
      return { ...setupFailure(full), boxBytes: before, boxOverLimit: true };
    }
    const o: SandboxOptions = { ...this.defaults, ...options };
    o.mounts = [...(this.defaults.mounts ?? []), ...(options.mounts ?? []), { source: this.path, target: '/box', readonly: false }];
    o.cwd ??= '/box';
    o.rlimits = { fsize: this.sizeBytes, ...this.defaults.rlimits, ...options.rlimits };
    const p = spawn(argv, { stdout: 'capture', stderr: 'capture', ...o });
    let filled = false;
    const watch = setInterval(() => {
      if (bytesUnder(this.path, this.sizeBytes) > this.sizeBytes) {
        filled = p.kill() || filled;
        clearInterval(watch);
      }
    }, BOX_WATCH_MS);
    let r: RunResult;
    try {
      r = await p.wait();
    } finally {
      clearInterval(watch);
    }
    const after = this.usage();
    if (filled && r.status !== 'setup-error') {
      r.status = 'file-size-limit';
      r.killed = true;
    }
    return { ...r, boxBytes: after, boxOverLimit: after > this.sizeBytes };
  }

  destroy(): void {
    // rmSync does not follow symlinks the program may have left.
    rmSync(join(this.path, '..'), { recursive: true, force: true });
  }
}

function boxDir(root: string, id: number): string {
  return join(root, String(id), 'box');
}

/** Makes a box: a private directory (0700 above it), empty. */
export async function createBox(options: BoxOptions = {}): Promise<Box> {
  const { id, size, root, ...defaults } = options;
  const r = boxRoot(root);
  mkdirSync(r, { recursive: true, mode: 0o700 });
  const sizeBytes = size === undefined ? 256 << 20 : parseSize('size', size);
  let n = id;
  if (n !== undefined && (!Number.isSafeInteger(n) || n < 0)) throw new OptionsError('id', `expected a whole number, got ${String(n)}`);
  for (let tries = 0; ; tries++) {
    const candidate = n ?? tries;
    try {
      mkdirSync(join(r, String(candidate)), { mode: 0o700 });
      n = candidate;
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || id !== undefined) throw id !== undefined ? new OptionsError('id', `box ${id} exists already`) : e;
    }
  }
  const dir = boxDir(r, n);
  mkdirSync(dir, { mode: 0o755 });
  writeFileSync(join(r, String(n), 'size'), String(sizeBytes));
  return new Box(n, dir, sizeBytes, defaults);
}

/** A box made earlier, by this or another process of the same user. */
export function openBox(id: number, options: Omit<BoxOptions, 'id' | 'size'> = {}): Box {
  const { root, ...defaults } = options;
  const r = boxRoot(root);
  const dir = boxDir(r, id);
  try {
    lstatSync(dir);
  } catch {
    throw new OptionsError('id', `no box ${id} in ${r}`);
  }
  const size = Number(readFileSync(join(r, String(id), 'size'), 'utf8'));
  return new Box(id, dir, size, defaults);
}
