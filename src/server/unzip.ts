// Judge0's additional_files: a zip archive whose files join the source in
// the job's directory. Only what a job needs: stored and deflated entries,
// names that stay inside the directory, and a cap on the extracted size
// checked before anything is inflated (a zip bomb is refused, not expanded).
import { inflateRawSync } from 'node:zlib';

export interface ZipEntry {
  name: string;
  data: Buffer;
}

export function unzip(zip: Buffer, maxBytes: number): ZipEntry[] {
  // End of central directory: 22 bytes plus a comment of up to 64 KiB, at the end.
  let eocd = -1;
  for (let i = zip.length - 22; i >= Math.max(0, zip.length - 22 - 65535); i--) {
    if (zip.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error('is not a zip archive (no end of central directory)');
  const count = zip.readUInt16LE(eocd + 10);
  let p = zip.readUInt32LE(eocd + 16);
  const out: ZipEntry[] = [];
  let total = 0;
  for (let n = 0; n < count; n++) {
    if (p + 46 > zip.length || zip.readUInt32LE(p) !== 0x02014b50) throw new Error('is not a valid zip archive (central directory)');
    const method = zip.readUInt16LE(p + 10);
    const compressed = zip.readUInt32LE(p + 20);
    const size = zip.readUInt32LE(p + 24);
    const nameLen = zip.readUInt16LE(p + 28);
    const extraLen = zip.readUInt16LE(p + 30);
    const commentLen = zip.readUInt16LE(p + 32);
    const local = zip.readUInt32LE(p + 42);
    const name = zip.subarray(p + 46, p + 46 + nameLen).toString('utf8');
    p += 46 + nameLen + extraLen + commentLen;
    if (name.endsWith('/')) continue; // a directory: made as its files need it
    if (name.includes('\0') || name.startsWith('/') || name.split('/').some((s) => s === '..' || s === '' || s === '.'))
      throw new Error(`entry ${JSON.stringify(name)} leaves the job's directory`);
    total += size;
    if (total > maxBytes) throw new Error(`extracts to more than ${maxBytes} bytes`);
    if (local + 30 > zip.length || zip.readUInt32LE(local) !== 0x04034b50) throw new Error(`entry ${JSON.stringify(name)}: bad local header`);
    const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
    const raw = zip.subarray(start, start + compressed);
    let data: Buffer;
    if (method === 0) data = Buffer.from(raw);
    else if (method === 8) data = inflateRawSync(raw, { maxOutputLength: Math.max(1, size) });
    else throw new Error(`entry ${JSON.stringify(name)}: compression method ${method} is not supported (stored or deflate)`);
    if (data.length !== size) throw new Error(`entry ${JSON.stringify(name)}: size does not match its header`);
    out.push({ name, data });
  }
  return out;
}
