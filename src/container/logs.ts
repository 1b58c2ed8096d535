// Logs in Docker's json-file format: one JSON object a line,
// {"log":"text\n","stream":"stdout","time":"RFC 3339 with ns"}, in
// <id>-json.log, rotated at max-size into .1 ... .(max-file - 1).
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';

export interface LogEntry {
  log: string;
  stream: 'stdout' | 'stderr';
  time: string;
}

/** A time with nanoseconds, as Docker writes it. */
function now(): string {
  const ns = process.hrtime.bigint() % 1_000_000n;
  const iso = new Date().toISOString(); // ms
  return iso.replace(/\.(\d{3})Z$/, (_m, ms: string) => `.${ms}${ns.toString().padStart(6, '0')}Z`);
}

export class JsonLogWriter {
  private fd: number;
  private size: number;
  private partial: Record<'stdout' | 'stderr', string> = { stdout: '', stderr: '' };

  constructor(
    readonly path: string,
    private readonly maxSize: number, // 0: no cap
    private readonly maxFiles: number,
  ) {
    this.fd = openSync(path, 'a', 0o600);
    this.size = fstatSync(this.fd).size;
  }

  write(stream: 'stdout' | 'stderr', chunk: Buffer): void {
    const text = this.partial[stream] + chunk.toString('utf8');
    const lines = text.split('\n');
    this.partial[stream] = lines.pop()!;
    for (const l of lines) this.entry(stream, l + '\n');
    // Docker cuts a line without an end at 16 KiB.
    if (this.partial[stream].length >= 16384) {
      this.entry(stream, this.partial[stream]);
      this.partial[stream] = '';
    }
  }

  /** What is left without a newline, written as it is (the program has ended). */
  flush(): void {
    for (const s of ['stdout', 'stderr'] as const) {
      if (this.partial[s]) this.entry(s, this.partial[s]);
      this.partial[s] = '';
    }
  }

  private entry(stream: 'stdout' | 'stderr', log: string): void {
    if (this.fd < 0) return;
    const line = Buffer.from(JSON.stringify({ log, stream, time: now() }) + '\n');
    if (this.maxSize > 0 && this.size > 0 && this.size + line.length > this.maxSize) this.rotate();
    writeSync(this.fd, line);
    this.size += line.length;
  }

  private rotate(): void {
    closeSync(this.fd);
    if (this.maxFiles <= 1) rmSync(this.path, { force: true });
    else {
      rmSync(`${this.path}.${this.maxFiles - 1}`, { force: true });
      for (let i = this.maxFiles - 2; i >= 1; i--) if (existsSync(`${this.path}.${i}`)) renameSync(`${this.path}.${i}`, `${this.path}.${i + 1}`);
      renameSync(this.path, `${this.path}.1`);
    }
    this.fd = openSync(this.path, 'a', 0o600);
    this.size = 0;
  }

  close(): void {
    this.flush();
    closeSync(this.fd);
    this.fd = -1;
  }
}

function parse(text: string): LogEntry[] {
  const out: LogEntry[] = [];
  for (const l of text.split('\n')) {
    if (!l) continue;
    try {
      out.push(JSON.parse(l) as LogEntry);
    } catch {
      // a line cut by a crash: skipped
    }
  }
  return out;
}

export interface ReadLogOptions {
  follow?: boolean;
  /** The last N entries only. */
  tail?: number;
  /** Entries at or after this time (ms since the epoch). */
  since?: number;
  /** While following: whether more may come (the container runs). */
  live?: () => boolean;
  signal?: AbortSignal;
}

/** The entries, oldest first; with follow, new ones as they are written, until live() says the container ended. */
export async function* readLogs(path: string, o: ReadLogOptions = {}): AsyncGenerator<LogEntry> {
  const files: string[] = [];
  for (let i = 20; i >= 1; i--) if (existsSync(`${path}.${i}`)) files.push(`${path}.${i}`);
  let entries: LogEntry[] = [];
  // concat, not push(...): a spread passes every entry as an argument, and a few 100,000 lines overflow the stack
  for (const f of files) entries = entries.concat(parse(readFileSync(f, 'utf8')));
  let ino = 0;
  let offset = 0;
  let rest = '';
  if (existsSync(path)) {
    const buf = readFileSync(path);
    ino = statSync(path).ino;
    offset = buf.length;
    const text = buf.toString('utf8');
    const cut = text.lastIndexOf('\n') + 1;
    entries = entries.concat(parse(text.slice(0, cut)));
    rest = text.slice(cut);
  }
  if (o.since !== undefined) entries = entries.filter((e) => Date.parse(e.time) >= o.since!);
  if (o.tail !== undefined) entries = o.tail === 0 ? [] : entries.slice(-o.tail);
  yield* entries;
  if (!o.follow) return;
  for (;;) {
    if (o.signal?.aborted) return;
    let st;
    try {
      st = statSync(path);
    } catch {
      st = undefined;
    }
    if (st && st.ino !== ino) {
      // Rotated: the rest of the old file is in .1, then the new file from its start.
      if (ino && existsSync(`${path}.1`)) {
        const old = readFileSync(`${path}.1`);
        const more = rest + old.subarray(offset).toString('utf8');
        yield* parse(more);
      }
      ino = st.ino;
      offset = 0;
      rest = '';
    }
    if (st && st.size > offset) {
      const fd = openSync(path, 'r');
      const buf = Buffer.alloc(st.size - offset);
      readSync(fd, buf, 0, buf.length, offset);
      closeSync(fd);
      offset = st.size;
      const text = rest + buf.toString('utf8');
      const cut = text.lastIndexOf('\n') + 1;
      rest = text.slice(cut);
      yield* parse(text.slice(0, cut));
      continue;
    }
    if (o.live && !o.live()) {
      // One more look: the last lines may have come just before the end.
      const s2 = existsSync(path) ? statSync(path) : undefined;
      if (!s2 || (s2.size <= offset && s2.ino === ino)) return;
      continue;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
