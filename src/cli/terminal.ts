// A sandboxed program on a pseudo-terminal, relayed to ours: exec -t and run -t.
import { writeSync } from 'node:fs';
import { ReadStream } from 'node:tty';
import { native } from '../native.js';
import type { RunResult, SandboxProcess } from '../launch/sandbox.js';

/** A new pty pair: the master stays here, the slave becomes the program's stdio (closed here after the launch). */
export function openTerminal(): { master: number; slave: number } {
  const [master, slave] = native.openPty();
  const out = process.stdout;
  if (out.isTTY && out.columns && out.rows) native.setWinsize(master, out.columns, out.rows);
  return { master, slave };
}

/**
 * Relays the program's terminal to ours until it ends: its output to our
 * stdout; with `interactive`, our stdin to it (ours in raw mode, so ^C and
 * the like reach its line discipline); our size on every SIGWINCH.
 */
export async function relayTerminal(proc: SandboxProcess, master: number, interactive: boolean): Promise<RunResult> {
  const out = process.stdout;
  const input = new ReadStream(master);
  const ended = new Promise<void>((r) => {
    input.once('close', r);
    input.once('error', () => r()); // EIO: every holder of the other side has gone
  });
  input.on('data', (d: Buffer) => out.write(d));
  const onResize = () => {
    if (out.columns && out.rows) native.setWinsize(master, out.columns, out.rows);
  };
  out.on('resize', onResize);
  const stdin = process.stdin;
  const raw = interactive && stdin.isTTY;
  const onInput = (d: Buffer) => {
    try {
      writeSync(master, d);
    } catch {
      // it has gone
    }
  };
  if (interactive) {
    if (raw) stdin.setRawMode(true);
    stdin.on('data', onInput);
  }
  try {
    const r = await proc.wait();
    await Promise.race([ended, new Promise((res) => setTimeout(res, 1000))]);
    return r;
  } finally {
    out.off('resize', onResize);
    if (interactive) {
      stdin.off('data', onInput);
      if (raw) stdin.setRawMode(false);
      stdin.pause();
    }
    input.destroy();
  }
}
