// Exec instances: made by POST /containers/{id}/exec, run by
// /exec/{id}/start on a hijacked connection (a terminal with Tty, else
// Docker's multiplexed frames), sized by /exec/{id}/resize, read by
// /exec/{id}/json for the exit code. They live in this process, as
// Docker's do in the daemon; the container itself does not depend on them.
import { randomBytes } from 'node:crypto';
import { writeSync } from 'node:fs';
import { ReadStream } from 'node:tty';
import type { FastifyInstance } from 'fastify';
import { getContainer } from '../../container/index.js';
import { exitCodeOf } from '../../container/common.js';
import { native } from '../../native.js';
import type { SandboxProcess } from '../../launch/sandbox.js';
import { EngineError } from '../errors.js';
import { frame, hijackRoute, send } from '../stream.js';
import { setExecIds } from './containers.js';
import { int } from './util.js';

interface ExecInstance {
  id: string;
  containerId: string;
  argv: string[];
  tty: boolean;
  attachStdin: boolean;
  attachStdout: boolean;
  attachStderr: boolean;
  env: string[];
  user: string;
  workdir?: string;
  running: boolean;
  started: boolean;
  exitCode: number | null;
  pid: number;
  master?: number;
  /** Asked for before the terminal existed (the CLI sizes it right after start). */
  size?: { cols: number; rows: number };
  ended: number;
}

const execs = new Map<string, ExecInstance>();
// Finished instances are forgotten after a while (Docker's daemon keeps them until the container goes).
const KEEP_MS = 10 * 60_000;

function forgetOld(): void {
  const now = Date.now();
  for (const [id, e] of execs) if (!e.running && e.ended && now - e.ended > KEEP_MS) execs.delete(id);
}

function instance(id: string): ExecInstance {
  const e = execs.get(id);
  if (!e) throw new EngineError(404, `No such exec instance: ${id}`);
  return e;
}

export default async function exec(app: FastifyInstance): Promise<void> {
  setExecIds((cid) => {
    const ids = [...execs.values()].filter((e) => e.containerId === cid && e.running).map((e) => e.id);
    return ids.length ? ids : null;
  });

  app.post('/containers/:id/exec', async (req, reply) => {
    forgetOld();
    const b = (req.body ?? {}) as Record<string, unknown>;
    const c = getContainer((req.params as { id: string }).id);
    const r = c.inspect();
    if (!r.State.Running) throw new EngineError(409, `Container ${r.Id} is not running`);
    if (r.State.Paused) throw new EngineError(409, `Container ${r.Id} is paused, unpause the container before exec`);
    if (b.Privileged === true) throw new EngineError(400, 'Privileged: refused: an exec runs under the container\'s own policy, never with more');
    if (!Array.isArray(b.Cmd) || b.Cmd.length === 0 || !b.Cmd.every((x) => typeof x === 'string')) throw new EngineError(400, 'Cmd: no command given (a list of strings)');
    if (b.Env !== undefined && b.Env !== null && (!Array.isArray(b.Env) || !b.Env.every((x) => typeof x === 'string'))) throw new EngineError(400, 'Env: expected a list of KEY=VALUE strings');
    const user = typeof b.User === 'string' ? b.User : '';
    if (user && !/^\d+(:\d+)?$/.test(user)) throw new EngineError(400, `User ${JSON.stringify(user)}: brig takes a numeric UID[:GID]`);
    const id = randomBytes(32).toString('hex');
    execs.set(id, {
      id,
      containerId: r.Id,
      argv: b.Cmd as string[],
      tty: b.Tty === true,
      attachStdin: b.AttachStdin === true,
      attachStdout: b.AttachStdout !== false,
      attachStderr: b.AttachStderr !== false,
      env: (b.Env as string[] | undefined) ?? [],
      user,
      workdir: typeof b.WorkingDir === 'string' && b.WorkingDir ? b.WorkingDir : undefined,
      running: false,
      started: false,
      exitCode: null,
      pid: 0,
      ended: 0,
    });
    return reply.code(201).send({ Id: id });
  });

  app.get('/exec/:id/json', async (req) => {
    const e = instance((req.params as { id: string }).id);
    return {
      CanRemove: !e.running,
      ContainerID: e.containerId,
      DetachKeys: '',
      ExitCode: e.exitCode,
      ID: e.id,
      OpenStderr: e.attachStderr,
      OpenStdin: e.attachStdin,
      OpenStdout: e.attachStdout,
      ProcessConfig: { arguments: e.argv.slice(1), entrypoint: e.argv[0], privileged: false, tty: e.tty, user: e.user },
      Running: e.running,
      Pid: e.pid,
    };
  });

  app.post('/exec/:id/resize', async (req, reply) => {
    const e = instance((req.params as { id: string }).id);
    const q = req.query as Record<string, string>;
    const rows = int('h', q.h) ?? 0;
    const cols = int('w', q.w) ?? 0;
    if (rows <= 0 || cols <= 0) throw new EngineError(400, 'h and w: expected positive numbers');
    if (!e.tty) return reply.code(200).send();
    if (e.master !== undefined && e.running) native.setWinsize(e.master, cols, rows);
    else e.size = { cols, rows };
    return reply.code(200).send();
  });

  hijackRoute(app, 'POST', '/exec/:id/start', async (h) => {
    const e = instance(h.params.id);
    const b = (h.body ?? {}) as Record<string, unknown>;
    if (e.started) throw new EngineError(409, `exec ${e.id} has already been started`);
    const c = getContainer(e.containerId);
    const o = { env: e.env, workdir: e.workdir, user: e.user || undefined };
    if (b.Detach === true) {
      e.started = true;
      e.running = true;
      e.pid = await c.execDetached(e.argv, o);
      // Detached: the monitor runs it; its end is not reported here.
      h.begin('application/json');
      return;
    }
    const tty = b.Tty === true || e.tty;
    let proc: SandboxProcess;
    let master: number | undefined;
    if (tty) {
      const t = await c.spawnExecTty(e.argv, { ...o, cols: e.size?.cols ?? 80, rows: e.size?.rows ?? 24 });
      proc = t.proc;
      master = t.master;
      e.master = master;
    } else {
      proc = c.spawnExec(e.argv, { ...o, stdin: e.attachStdin ? 'pipe' : 'ignore', stdout: 'pipe', stderr: 'pipe' });
    }
    e.started = true;
    e.running = true;
    e.pid = proc.pid;
    h.begin();
    const sock = h.socket;
    let output: Promise<void>;
    // The terminal's master, read through a tty stream that owns the fd (destroying it closes the fd).
    let input: ReadStream | undefined;
    if (master !== undefined) {
      const m = master;
      input = new ReadStream(m);
      output = new Promise<void>((r) => {
        input!.once('close', () => r());
        input!.once('error', () => r()); // EIO: the program and everything holding its terminal are gone
      });
      input.on('data', (d: Buffer) => {
        if (!sock.write(d)) {
          input!.pause();
          sock.once('drain', () => input!.resume());
        }
      });
      if (e.attachStdin)
        sock.on('data', (d: Buffer) => {
          try {
            writeSync(m, d);
          } catch {
            // the terminal is gone
          }
        });
    } else {
      const streams: Promise<void>[] = [];
      for (const [s, n] of [[proc.stdout, 1], [proc.stderr, 2]] as const) {
        if (!s) continue;
        const want = n === 1 ? e.attachStdout : e.attachStderr;
        streams.push(
          new Promise<void>((r) => {
            s.on('data', (d: Buffer) => {
              if (!want) return;
              if (!sock.write(frame(n, d))) {
                s.pause();
                sock.once('drain', () => s.resume());
              }
            });
            s.once('end', () => r());
            s.once('close', () => r());
            s.once('error', () => r());
          }),
        );
      }
      output = Promise.all(streams).then(() => undefined);
      if (e.attachStdin && proc.stdin) {
        const stdin = proc.stdin;
        stdin.on('error', () => {});
        sock.pipe(stdin);
      }
    }
    // The client leaving ends the exec's program (Docker leaves it running; brig keeps nothing unattended).
    let finished = false;
    void h.closed.then(() => {
      if (!finished && !sock.writableEnded) proc.kill();
    });
    const result = await proc.wait();
    await Promise.race([output, new Promise((r) => setTimeout(r, 1000))]);
    finished = true;
    e.exitCode = exitCodeOf(result);
    e.running = false;
    e.ended = Date.now();
    if (result.status === 'setup-error' && result.error) await send(sock, tty ? `${result.error.message}\r\n` : frame(2, Buffer.from(`brig: exec failed: ${result.error.message}\n`)));
    e.master = undefined;
    input?.destroy();
  });
}
