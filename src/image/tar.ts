// Tar, as image layers use it: POSIX ustar with pax extended headers (long
// paths, large sizes, xattrs), GNU long names read too, gzip and zstd told by their
// magic. Reading is streaming, one entry's data in memory at a time; layers
// come from registries and users, so every header is checked and a bad one is
// an error naming the entry, never a crash or a silent skip.
import { Decompress } from 'fzstd';
import { createReadStream, writeSync } from 'node:fs';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';

export type TarType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

export interface TarEntry {
  path: string;
  type: TarType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Seconds since the epoch (fractional with pax). */
  mtime: number;
  /** symlink target, or the path a hardlink refers to. */
  linkname: string;
  devmajor: number;
  devminor: number;
  /** From pax SCHILY.xattr.* records. */
  xattrs: Record<string, Buffer>;
  /** The content of a file. */
  data: Buffer;
}

export class TarError extends Error {
  override name = 'TarError';
}

const BLOCK = 512;
const TYPES: Record<string, TarType> = { '0': 'file', '\0': 'file', '7': 'file', '1': 'hardlink', '2': 'symlink', '3': 'char', '4': 'block', '5': 'dir', '6': 'fifo' };

function cstr(b: Buffer, off: number, len: number): string {
  const end = b.indexOf(0, off);
  return b.toString('utf8', off, end < 0 || end > off + len ? off + len : end);
}

function num(b: Buffer, off: number, len: number, what: string): number {
  if (b[off] & 0x80) {
    // base-256, big-endian, for values octal cannot hold
    let v = 0;
    for (let i = off + 1; i < off + len; i++) v = v * 256 + b[i];
    v += (b[off] & 0x3f) * 256 ** (len - 1);
    if (!Number.isSafeInteger(v)) throw new TarError(`${what} out of range`);
    return v;
  }
  const s = b.toString('latin1', off, off + len).replace(/\0.*$/s, '').trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new TarError(`${what} is not an octal number: ${JSON.stringify(s)}`);
  return parseInt(s, 8);
}

function checksumOk(h: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i];
  return sum === num(h, 148, 8, 'checksum');
}

/** pax records: "LEN key=value\n", LEN counting the whole record. */
function parsePax(b: Buffer, where: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let i = 0;
  while (i < b.length) {
    const sp = b.indexOf(0x20, i);
    if (sp < 0) break;
    const len = Number(b.toString('latin1', i, sp));
    if (!Number.isSafeInteger(len) || len <= 0 || i + len > b.length) throw new TarError(`${where}: bad pax record length`);
    const rec = b.subarray(sp + 1, i + len - 1); // without the newline
    const eq = rec.indexOf(0x3d);
    if (eq < 0) throw new TarError(`${where}: pax record without "="`);
    out.set(rec.toString('utf8', 0, eq), rec.subarray(eq + 1));
    i += len;
  }
  return out;
}

/** A byte source that can be read block by block: the (gunzipped) stream. */
class Blocks {
  private chunks: Buffer[] = [];
  private have = 0;
  private done = false;
  constructor(
    private readonly it: AsyncIterator<Buffer>,
    private readonly onBytes?: (chunk: Buffer) => void,
  ) {}

  /** Reads (and passes on) whatever follows the end marker. */
  async drain(): Promise<void> {
    while (!this.done) {
      const r = await this.it.next();
      if (r.done) this.done = true;
      else this.onBytes?.(r.value);
    }
  }

  async read(n: number): Promise<Buffer | null> {
    while (this.have < n && !this.done) {
      const r = await this.it.next();
      if (r.done) this.done = true;
      else {
        const c = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
        this.onBytes?.(c);
        this.chunks.push(c);
        this.have += c.length;
      }
    }
    if (this.have < n) return null;
    const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.have = rest.length;
    return out;
  }
}

export interface ReadTarOptions {
  /** Largest entry accepted (default 4 GiB). */
  maxEntryBytes?: number;
  /** Given every byte of the uncompressed archive, end padding included (for the diff ID, or to keep the archive). */
  onBytes?: (chunk: Buffer) => void;
}

const ZSTD_MAGIC = 0xfd2fb528;

/** zstd frames decompressed as they come (fzstd: Node 20's zlib has no zstd). */
async function* unzstd(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const out: Buffer[] = [];
  const d = new Decompress((chunk) => out.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)));
  try {
    for await (const c of source) {
      d.push(c);
      while (out.length) yield out.shift()!;
    }
    d.push(new Uint8Array(0), true);
  } catch (e) {
    throw new TarError(`zstd: ${(e as Error).message}`);
  }
  while (out.length) yield out.shift()!;
}

/** Opens a tar, tar.gz or tar.zst: a path, a Buffer or a stream. */
export async function* readTar(source: string | Buffer | Readable, options: ReadTarOptions = {}): AsyncGenerator<TarEntry> {
  const maxEntryBytes = options.maxEntryBytes ?? 4 * 2 ** 30;
  let stream: Readable = typeof source === 'string' ? createReadStream(source) : Buffer.isBuffer(source) ? Readable.from([source]) : source;
  // gzip is told by its first two bytes.
  const it0 = stream[Symbol.asyncIterator]();
  const first = await it0.next();
  const head: Buffer | undefined = first.done ? undefined : Buffer.isBuffer(first.value) ? first.value : Buffer.from(first.value);
  async function* rest(): AsyncGenerator<Buffer> {
    if (head) yield head;
    for (;;) {
      const r = await it0.next();
      if (r.done) return;
      yield r.value as Buffer;
    }
  }
  let bytes: AsyncIterable<Buffer> = rest();
  if (head && head[0] === 0x1f && head[1] === 0x8b) {
    const gz = createGunzip();
    stream = Readable.from(rest()).pipe(gz);
    bytes = stream;
  } else if (head && head.length >= 4 && head.readUInt32LE(0) === ZSTD_MAGIC) {
    bytes = unzstd(rest());
  }
  const blocks = new Blocks(bytes[Symbol.asyncIterator](), options.onBytes);
  let pax = new Map<string, Buffer>();
  const globalPax = new Map<string, Buffer>();
  let longName: string | undefined;
  let longLink: string | undefined;
  let index = 0;
  for (;;) {
    const h = await blocks.read(BLOCK);
    if (!h) throw new TarError(`truncated archive: no end marker after ${index} entries`);
    if (h.every((x) => x === 0)) {
      // End of archive; a second zero block and padding may follow.
      await blocks.drain();
      return;
    }
    const where = `entry ${index} (${cstr(h, 0, 100)})`;
    if (!checksumOk(h)) throw new TarError(`${where}: bad header checksum`);
    const flag = String.fromCharCode(h[156] || 0x30);
    let size = num(h, 124, 12, `${where}: size`);
    const paxSize = pax.get('size') ?? globalPax.get('size');
    if (paxSize) size = Number(paxSize.toString());
    if (!Number.isSafeInteger(size) || size < 0 || size > maxEntryBytes) throw new TarError(`${where}: size ${size} out of range`);
    const padded = Math.ceil(size / BLOCK) * BLOCK;
    const body = size ? await blocks.read(padded) : Buffer.alloc(0);
    if (!body) throw new TarError(`${where}: truncated data`);
    const data = body.subarray(0, size);
    if (flag === 'x') {
      pax = parsePax(data, where);
      continue;
    }
    if (flag === 'g') {
      for (const [k, v] of parsePax(data, where)) globalPax.set(k, v);
      continue;
    }
    if (flag === 'L') {
      longName = data.toString('utf8').replace(/\0+$/, '');
      continue;
    }
    if (flag === 'K') {
      longLink = data.toString('utf8').replace(/\0+$/, '');
      continue;
    }
    const type = TYPES[flag];
    if (!type) throw new TarError(`${where}: unsupported entry type ${JSON.stringify(flag)}`);
    const magic = h.toString('latin1', 257, 262);
    const prefix = magic === 'ustar' ? cstr(h, 345, 155) : '';
    let path = longName ?? (prefix ? `${prefix}/${cstr(h, 0, 100)}` : cstr(h, 0, 100));
    let linkname = longLink ?? cstr(h, 157, 100);
    const pv = (k: string) => pax.get(k) ?? globalPax.get(k);
    if (pv('path')) path = pv('path')!.toString('utf8');
    if (pv('linkpath')) linkname = pv('linkpath')!.toString('utf8');
    const xattrs: Record<string, Buffer> = {};
    for (const [k, v] of [...globalPax, ...pax]) if (k.startsWith('SCHILY.xattr.')) xattrs[k.slice('SCHILY.xattr.'.length)] = v;
    const mtimePax = pv('mtime');
    yield {
      path,
      type,
      mode: num(h, 100, 8, `${where}: mode`) & 0o7777,
      uid: pv('uid') ? Number(pv('uid')!.toString()) : num(h, 108, 8, `${where}: uid`),
      gid: pv('gid') ? Number(pv('gid')!.toString()) : num(h, 116, 8, `${where}: gid`),
      size: type === 'file' ? size : 0,
      mtime: mtimePax ? Number(mtimePax.toString()) : num(h, 136, 12, `${where}: mtime`),
      linkname,
      devmajor: num(h, 329, 8, `${where}: devmajor`),
      devminor: num(h, 337, 8, `${where}: devminor`),
      xattrs,
      data: type === 'file' ? data : Buffer.alloc(0),
    };
    pax = new Map();
    longName = longLink = undefined;
    index++;
  }
}

// ---------------------------------------------------------------------------
// Writing

export interface TarWriteEntry {
  path: string;
  type: TarType;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  xattrs?: Record<string, Buffer>;
  data?: Buffer;
}

const FLAG: Record<TarType, string> = { file: '0', hardlink: '1', symlink: '2', char: '3', block: '4', dir: '5', fifo: '6' };

function octal(v: number, len: number): string {
  return v.toString(8).padStart(len - 1, '0') + '\0';
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

function header(name: string, flag: string, size: number, e: TarWriteEntry, linkname: string): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 100, 'utf8');
  h.write(octal((e.mode ?? (flag === '5' ? 0o755 : 0o644)) & 0o7777, 8), 100, 'latin1');
  h.write(octal(Math.min(e.uid ?? 0, 0o7777777), 8), 108, 'latin1');
  h.write(octal(Math.min(e.gid ?? 0, 0o7777777), 8), 116, 'latin1');
  h.write(octal(Math.min(size, 0o77777777777), 12), 124, 'latin1');
  h.write(octal(Math.max(0, Math.min(Math.floor(e.mtime ?? 0), 0o77777777777)), 12), 136, 'latin1');
  h.write('        ', 148, 'latin1');
  h.write(flag, 156, 'latin1');
  h.write(linkname, 157, 100, 'utf8');
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  h.write(octal(e.devmajor ?? 0, 8), 329, 'latin1');
  h.write(octal(e.devminor ?? 0, 8), 337, 'latin1');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += h[i];
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return h;
}

const pad = (n: number) => Buffer.alloc((BLOCK - (n % BLOCK)) % BLOCK);
const fitsUstar = (s: string) => Buffer.byteLength(s) < 100 && /^[\x20-\x7e]*$/.test(s);

/**
 * The blocks of one entry: a pax header first when the path or link name is
 * long or not plain ASCII, an id or size does not fit, or there are xattrs.
 */
export function tarEntryBlocks(e: TarWriteEntry): Buffer[] {
  const data = e.type === 'file' ? (e.data ?? Buffer.alloc(0)) : Buffer.alloc(0);
  const records: Buffer[] = [];
  const path = e.type === 'dir' && !e.path.endsWith('/') ? `${e.path}/` : e.path;
  const link = e.linkname ?? '';
  if (!fitsUstar(path)) records.push(paxRecord('path', Buffer.from(path)));
  if (!fitsUstar(link)) records.push(paxRecord('linkpath', Buffer.from(link)));
  if ((e.uid ?? 0) > 0o7777777) records.push(paxRecord('uid', Buffer.from(String(e.uid))));
  if ((e.gid ?? 0) > 0o7777777) records.push(paxRecord('gid', Buffer.from(String(e.gid))));
  if (data.length > 0o77777777777) records.push(paxRecord('size', Buffer.from(String(data.length))));
  for (const [k, v] of Object.entries(e.xattrs ?? {}).sort(([a], [b]) => (a < b ? -1 : 1))) records.push(paxRecord(`SCHILY.xattr.${k}`, v));
  const out: Buffer[] = [];
  if (records.length) {
    const body = Buffer.concat(records);
    out.push(header('PaxHeader', 'x', body.length, {} as TarWriteEntry, ''), body, pad(body.length));
  }
  const shortName = fitsUstar(path) ? path : path.slice(0, 99).replace(/[^\x20-\x7e]/g, '_');
  const shortLink = fitsUstar(link) ? link : '';
  out.push(header(shortName, FLAG[e.type], data.length, e, shortLink));
  if (data.length) out.push(data, pad(data.length));
  return out;
}

/** The two zero blocks that end an archive. */
export const TAR_END = Buffer.alloc(2 * BLOCK);

/** Writes an archive to a file descriptor, entry by entry; `onBytes` sees every byte written. */
export class TarFileWriter {
  /** Bytes written so far. */
  size = 0;
  constructor(
    private readonly fd: number,
    private readonly onBytes?: (chunk: Buffer) => void,
  ) {}

  add(e: TarWriteEntry): void {
    for (const b of tarEntryBlocks(e)) this.write(b);
  }

  /** A regular file (0644) with `data`, or a directory (0755) without. */
  addPath(path: string, data?: Buffer): void {
    this.add(data ? { path, type: 'file', data, mode: 0o644 } : { path, type: 'dir', mode: 0o755 });
  }

  end(): void {
    this.write(TAR_END);
  }

  private write(b: Buffer): void {
    this.onBytes?.(b);
    for (let off = 0; off < b.length; ) off += writeSync(this.fd, b, off, b.length - off);
    this.size += b.length;
  }
}
