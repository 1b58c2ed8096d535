// The agent process: node dist/src/agent/main.js, started by brig-client on
// first use (detached, its own session, stdio to /dev/null and agent.log) or
// by systemd from a socket unit (docs/agent.md).
//
// One per user: it holds the lock file's flock for its life; one that finds
// it taken leaves at once. It listens on <dir>/agent.sock (mode 0600) and
// leaves after BRIG_AGENT_IDLE seconds (default 300) with nothing to do,
// removing its socket first, so the next client starts a new one.
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { native } from '../native.js';
import { Agent } from './server.js';

const DEFAULT_IDLE_S = 300;

/** $XDG_RUNTIME_DIR/brig, else /tmp/brig-UID: as addon/client.c finds it. */
export function agentDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_RUNTIME_DIR;
  return xdg && xdg.startsWith('/') ? join(xdg, 'brig') : `/tmp/brig-${process.getuid!()}`;
}

function idleMs(): number {
  const v = process.env.BRIG_AGENT_IDLE;
  if (v === undefined || v === '') return DEFAULT_IDLE_S * 1000;
  if (!/^\d+(\.\d+)?$/.test(v)) {
    process.stderr.write(`brig agent: BRIG_AGENT_IDLE: expected seconds, got ${JSON.stringify(v)}; using ${DEFAULT_IDLE_S}\n`);
    return DEFAULT_IDLE_S * 1000;
  }
  return Number(v) * 1000;
}

function fail(step: string, e: unknown): never {
  const err = e as NodeJS.ErrnoException & { errno?: number };
  process.stderr.write(`brig agent: ${step}: ${err.code ?? ''} ${err.message}\n`);
  process.exit(1);
}

async function main(): Promise<void> {
  const log = (line: string) => process.stderr.write(line + '\n');
  // systemd socket activation: the listening socket is fd 3.
  const activated = process.env.LISTEN_PID === String(process.pid) && Number(process.env.LISTEN_FDS) >= 1;
  const dir = agentDir();
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = lstatSync(dir);
    // A directory someone else made or opened up is not ours to trust.
    if (!st.isDirectory() || st.uid !== process.getuid!() || (st.mode & 0o077) !== 0) throw Object.assign(new Error(`${dir} is not a private directory of this user`), { code: 'EACCES' });
  } catch (e) {
    fail(`directory ${dir}`, e);
  }
  const sockPath = join(dir, 'agent.sock');
  let lockFd: number;
  try {
    lockFd = native.lockExclusive(join(dir, 'agent.lock'));
  } catch (e) {
    if ((e as { errno?: number }).errno === 11) process.exit(0); // EWOULDBLOCK: another agent is up
    fail('lock', e);
  }
  void lockFd; // held, never closed: the lock lasts as long as this process
  const agent = new Agent({
    idleMs: idleMs(),
    log,
    onIdleExit: () => void leave('idle'),
  });
  let leaving = false;
  const leave = async (why: string) => {
    if (leaving) return;
    leaving = true;
    // The socket goes first, so a client from now on starts a new agent.
    if (!activated) try { unlinkSync(sockPath); } catch { /* already gone */ }
    log(`${new Date().toISOString()} brig agent ${process.pid}: leaving (${why})`);
    await agent.stop(why !== 'idle');
    process.exit(0);
  };
  process.on('SIGTERM', () => void leave('SIGTERM'));
  process.on('SIGINT', () => void leave('SIGINT'));
  process.on('SIGHUP', () => {}); // no terminal: nothing to hang up on
  agent.server.on('error', (e) => fail('listen', e));
  if (activated) {
    agent.server.listen({ fd: 3 });
  } else {
    // We hold the lock: any socket file here is a dead agent's.
    try { unlinkSync(sockPath); } catch { /* none */ }
    // 0600 from the start (umask), not after a chmod race.
    const old = process.umask(0o177);
    agent.server.listen(sockPath, () => {
      process.umask(old);
      chmodSync(sockPath, 0o600);
    });
  }
  agent.server.on('listening', () => log(`${new Date().toISOString()} brig agent ${process.pid}: listening on ${activated ? 'fd 3 (systemd)' : sockPath}`));
}

await main();
