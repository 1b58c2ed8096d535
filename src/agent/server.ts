// The brig agent: one per user, serving `brig run` and `brig box run` for
// brig-client (addon/client.c) without a Node start per run.
//
// A request is parsed with the CLI's own code (src/cli/run.ts) against the
// client's cwd and environment, and run by the same runWith() the CLI uses,
// in this process, so warm namespace pairs and skeletons carry over from run
// to run. The client's stdin, stdout and stderr are the sandbox's. What the
// agent cannot give exactly as the CLI would (help, logging, relative
// profile or rootfs paths, a different umask, rlimits or brig-relevant
// environment) it answers "not served", and the client runs the Node CLI.
import { closeSync, readFileSync, writeSync } from 'node:fs';
import net from 'node:net';
import { constants as osConstants } from 'node:os';
import { isAbsolute } from 'node:path';
import { openBox } from '../launch/box.js';
import { OptionsError } from '../errors.js';
import { native } from '../native.js';
import type { SandboxOptions } from '../launch/options.js';
import { run } from '../launch/sandbox.js';
import { one, all, parseArgs, UsageError, type Parsed } from '../cli/args.js';
import { describeError, EXIT_BRIG_ERROR } from '../cli/main.js';
import { runSpecs, runWith, type CliIo } from '../cli/run.js';
import { decodeRequest, MAX_REQUEST, message, ProtocolError, type AgentRequest } from './protocol.js';

/** How long a client has to send its request once connected. */
const REQUEST_TIMEOUT_MS = 5000;
const RLIMIT_NOFILE = 7;
const PROFILE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/**
 * Variables brig reads at run time (stores, profiles, cgroup parent, the
 * warm and skeleton switches, logging): a client must have the agent's
 * values, or it would get a run other than the CLI's.
 */
function brigRelevant(name: string): boolean {
  if (name.startsWith('BRIG_')) return !name.startsWith('BRIG_AGENT_') && name !== 'BRIG_NO_AGENT';
  return name === 'HOME' || name === 'XDG_CONFIG_HOME' || name === 'XDG_DATA_HOME' || name === 'DOCKER_CONFIG' || name === 'TMPDIR';
}

function ownUmask(): number {
  const m = /^Umask:\s*([0-7]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? parseInt(m[1], 8) : -1;
}

export interface AgentOptions {
  /** Leave after this long with no run and no connection. */
  idleMs: number;
  /** Called once the agent has stopped listening and every run has ended. */
  onIdleExit?: () => void;
  log?: (line: string) => void;
}

export class Agent {
  readonly server: net.Server;
  private active = 0;
  private closing = false;
  private idleTimer: NodeJS.Timeout | undefined;
  private readonly umask = ownUmask();
  private readonly rlimits = new Map(native.rlimits().map(([r, soft, hard]) => [r, [soft, hard] as [number, number]]));
  private readonly uid = process.getuid!();
  private readonly aborts = new Set<AbortController>();

  constructor(private readonly options: AgentOptions) {
    this.server = net.createServer({ pauseOnConnect: true }, (sock) => void this.serve(sock));
    this.armIdle();
  }

  private log(line: string): void {
    this.options.log?.(`${new Date().toISOString()} brig agent ${process.pid}: ${line}`);
  }

  private armIdle(): void {
    clearTimeout(this.idleTimer);
    if (this.active === 0 && !this.closing) this.idleTimer = setTimeout(() => this.options.onIdleExit?.(), this.options.idleMs);
  }

  /** Stops taking requests; connections that come after get "not served". Runs in progress are aborted when abortRuns. */
  stop(abortRuns: boolean): Promise<void> {
    this.closing = true;
    clearTimeout(this.idleTimer);
    if (abortRuns) for (const a of this.aborts) a.abort(new Error('the brig agent was stopped'));
    return new Promise((done) => this.server.close(() => done()));
  }

  private async serve(sock: net.Socket): Promise<void> {
    this.active++;
    clearTimeout(this.idleTimer);
    const fds: number[] = [];
    // A client that went away shows up here (EPIPE, ECONNRESET) and in the
    // run's own handlers; never as an uncaught error that ends the agent.
    sock.on('error', () => {});
    try {
      const fd = (sock as unknown as { _handle: { fd: number } })._handle.fd;
      // Security: only this user's own processes; the socket's mode (0600)
      // already says so, and this holds even if the directory is opened up.
      const [pid, uid] = native.peerCred(fd);
      if (uid !== this.uid) {
        this.log(`refused a connection from pid ${pid} uid ${uid}`);
        sock.destroy();
        return;
      }
      let req: AgentRequest;
      try {
        req = decodeRequest(await readRequest(fd, fds));
        if (fds.length) throw new ProtocolError('fds with the request');
      } catch (e) {
        this.log(`bad request from pid ${pid}: ${(e as Error).message}`);
        sock.destroy();
        return;
      }
      const why = this.closing ? 'the agent is leaving' : this.notServed(req);
      if (why) {
        sock.end(message('N', why));
        return;
      }
      // The acknowledgement, written before the run starts and checked: if
      // the client gave up (it shut the socket down), this fails and the run
      // never happens here; the client runs it itself.
      try {
        writeSync(fd, message('A'));
      } catch {
        sock.destroy();
        return;
      }
      // Only now the client sends its stdio (one byte, F, with the fds), so
      // an agent that never acknowledged never held the caller's pipes.
      try {
        await readFds(fd, fds, req.open.filter(Boolean).length);
      } catch (e) {
        this.log(`no fds from pid ${pid}: ${(e as Error).message}`);
        sock.destroy();
        return;
      }
      const code = await this.runRequest(req, fds, sock);
      sock.end(message('X', String(code)));
    } catch (e) {
      this.log(`connection failed: ${(e as Error).message}`);
      sock.destroy();
    } finally {
      for (const f of fds) closeSync(f);
      this.active--;
      this.armIdle();
    }
  }

  /** Why this request should go to the Node CLI, or null to serve it. */
  private notServed(req: AgentRequest): string | null {
    const [verb, sub] = req.argv;
    if (verb !== 'run' && !(verb === 'box' && sub === 'run')) return `verb ${verb ?? '(none)'}`;
    if (!isAbsolute(req.cwd)) return 'no working directory';
    if (req.umask !== this.umask) return 'umask differs';
    for (const [r, [soft, hard]] of this.rlimits) {
      const theirs = req.rlimits.get(r);
      if (!theirs) return `rlimit ${r} missing`;
      // Node raises its open-files soft limit to the hard one at start, so
      // the CLI's sandboxes see the hard limit there as well.
      if (theirs[1] !== hard || (r !== RLIMIT_NOFILE && theirs[0] !== soft)) return `rlimit ${r} differs`;
    }
    const names = new Set([...Object.keys(req.env), ...Object.keys(process.env)].filter(brigRelevant));
    for (const n of names) if (req.env[n] !== process.env[n]) return `${n} differs`;
    let p: Parsed;
    try {
      if (verb === 'box' && req.argv[2] === '--help') return '--help';
      p = parseArgs(req.argv.slice(verb === 'run' ? 1 : 3), runSpecs, { interspersed: false });
    } catch {
      return null; // a usage error: served, with the CLI's message
    }
    return this.unservedOptions(p);
  }

  private async runRequest(req: AgentRequest, fds: number[], sock: net.Socket): Promise<number> {
    // The client's fds 0-2 in order; a closed one is what Node makes of a
    // closed stdio fd at start: /dev/null, i.e. 'ignore'.
    const clientFd: (number | null)[] = [];
    let k = 0;
    for (const open of req.open) clientFd.push(open ? fds[k++] ?? null : null);
    const io: CliIo = {
      env: req.env,
      cwd: req.cwd,
      write: (fd, data) => {
        const to = clientFd[fd];
        if (to !== null && to !== undefined) writeAll(to, typeof data === 'string' ? Buffer.from(data) : data);
      },
      // The client writes it, relative to its cwd, and says a failure itself.
      writeReport: (file, text, prefix) => {
        sock.write(message('R', Buffer.concat([Buffer.from(prefix), Buffer.from([0]), Buffer.from(file), Buffer.from([0]), Buffer.from(text)])));
      },
    };
    const abort = new AbortController();
    this.aborts.add(abort);
    let signalled = 0;
    // S: a signal the client got (SIGINT at its terminal, SIGTERM from a
    // supervisor): the run ends, as the CLI's would with the CLI. End of
    // file: the client is gone, and so is the point of the run.
    let pending = Buffer.alloc(0);
    sock.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 6 && pending[0] === 0x53) {
        signalled = pending[5];
        pending = pending.subarray(6);
        abort.abort(new Error(`signal ${signalled}`));
      }
    });
    sock.on('end', () => abort.abort(new Error('client gone')));
    sock.on('error', () => abort.abort(new Error('client gone')));
    sock.resume();
    const stdio = (v: SandboxOptions['stdout'], fd: 0 | 1 | 2): SandboxOptions['stdout'] => {
      if (v !== 'inherit') return v;
      const to = clientFd[fd];
      return to === null || to === undefined ? 'ignore' : { fd: to };
    };
    const runner = (verb: string) => async (argv: string[], opts: SandboxOptions) => {
      const mapped: SandboxOptions = { ...opts, signal: abort.signal, stdin: opts.stdin === 'inherit' ? (stdio('inherit', 0) as SandboxOptions['stdin']) : opts.stdin, stdout: stdio(opts.stdout, 1), stderr: stdio(opts.stderr, 2) };
      if (verb === 'run') return run(argv, mapped);
      const box = openBoxAsCli(req.argv[2]);
      const r = await box.run(argv, mapped);
      if (r.boxOverLimit) io.write(2, `brig box run: warning: box ${box.id} holds ${r.boxBytes} bytes, over its ${box.sizeBytes}: the next run will be refused\n`);
      return r;
    };
    const verb = req.argv[0];
    try {
      if (verb === 'run') {
        const p = parseArgs(req.argv.slice(1), runSpecs, { interspersed: false });
        return await runWith(p, 'run', runner('run'), undefined, io);
      }
      // As src/cli/box.ts does it, in its order.
      const id = req.argv[2];
      openBoxAsCli(id);
      const p = parseArgs(req.argv.slice(3), runSpecs, { interspersed: false });
      if (!p.rest.length) throw new UsageError(`no command given (brig box run ${id} [OPTIONS] -- COMMAND [ARG...])`);
      return await runWith(p, 'box run', runner('box'), { command: p.rest }, io);
    } catch (e) {
      if (abort.signal.aborted && signalled) return 128 + signalled;
      if (abort.signal.aborted && this.closing) {
        io.write(2, `brig: the brig agent (pid ${process.pid}) was stopped during the run; the run was ended\n`);
        return EXIT_BRIG_ERROR;
      }
      if (abort.signal.aborted) return 128 + osConstants.signals.SIGKILL; // the client is gone: nobody reads this
      // As src/cli/main.ts says it: one line, the stack only with BRIG_DEBUG=1.
      io.write(2, describeError(verb, e).line + '\n');
      if (req.env.BRIG_DEBUG === '1' && e instanceof Error && e.stack) io.write(2, e.stack + '\n');
      return EXIT_BRIG_ERROR;
    } finally {
      this.aborts.delete(abort);
      sock.removeAllListeners('data');
    }
  }

  /** Options whose effect depends on more than the request carries. */
  private unservedOptions(p: Parsed): string | null {
    if (p.flags.has('help')) return '--help';
    if (one(p, 'log-level') !== undefined) return '--log-level';
    // Containers and terminals belong to the CLI: -d starts a monitor that
    // must not be the agent's child, -t relays the caller's own terminal.
    if (p.flags.has('detach')) return '-d';
    if (p.flags.has('tty')) return '-t';
    for (const o of ['restart', 'stop-signal', 'stop-timeout', 'log-opt']) if (p.opts.has(o)) return `--${o}`;
    const rootfs = one(p, 'rootfs');
    if (rootfs && rootfs !== 'host' && !isAbsolute(rootfs)) return 'a relative --rootfs';
    for (const prof of all(p, 'profile')) if (!PROFILE_NAME.test(prof) && !isAbsolute(prof)) return 'a relative --profile file';
    return null;
  }
}

/** brig box run's box, with src/cli/box.ts's messages. */
function openBoxAsCli(v: string | undefined) {
  if (v === undefined) throw new UsageError('which box? (an ID from brig box create)');
  if (!/^\d+$/.test(v)) throw new UsageError(`box ID: expected the number brig box create printed, got ${JSON.stringify(v)}`);
  try {
    return openBox(Number(v));
  } catch (e) {
    if (e instanceof OptionsError && e.field === 'id') throw new UsageError(e.message.replace(/^id: /, ''));
    throw e;
  }
}

/** Writes all of data to a client's fd, which may be non-blocking (a pipe it set so). */
function writeAll(fd: number, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) {
    try {
      off += writeSync(fd, data, off);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
        continue;
      }
      return; // EPIPE and the like: the reader is gone, as for the CLI's own writes
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Exactly n bytes, without waiting on libuv (the socket is paused); fds that came with them go into fds. */
async function exactly(fd: number, n: number, fds: number[], deadline: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let got = 0;
  let pause = 0;
  while (got < n) {
    // The first try may wait a little on the JS thread: the client's
    // answer to the acknowledgement is one round trip (tens of µs) away,
    // and a timer would cost a millisecond or more.
    const r = native.recvWithFds(fd, n - got, pause === 0 ? 2 : 0);
    if (r === null) {
      if (Date.now() > deadline) throw new ProtocolError('request timed out');
      await sleep(pause);
      pause = Math.min(pause + 1, 10);
      continue;
    }
    fds.push(...r.fds);
    if (r.truncated) throw new ProtocolError('too many fds');
    if (r.data.length === 0) throw new ProtocolError('end of file inside the request');
    parts.push(r.data);
    got += r.data.length;
  }
  return Buffer.concat(parts);
}

/** The request's bytes (header excluded). */
async function readRequest(fd: number, fds: number[]): Promise<Buffer> {
  const deadline = Date.now() + REQUEST_TIMEOUT_MS;
  const len = (await exactly(fd, 4, fds, deadline)).readUInt32LE(0);
  if (len > MAX_REQUEST) throw new ProtocolError(`request of ${len} bytes`);
  return exactly(fd, len, fds, deadline);
}

/** The client's stdio fds: one byte, F, carrying as many as its open mask said. */
async function readFds(fd: number, fds: number[], count: number): Promise<void> {
  const byte = await exactly(fd, 1, fds, Date.now() + REQUEST_TIMEOUT_MS);
  if (byte[0] !== 0x46) throw new ProtocolError('expected F');
  if (fds.length !== count) throw new ProtocolError(`expected ${count} fds, got ${fds.length}`);
}
