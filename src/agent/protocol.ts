// The wire format between brig-client (addon/client.c) and the agent.
//
// Request (client -> agent), once: a 4-byte little-endian length, then that
// many bytes of NUL-terminated strings:
//   protocol, open mask ("101": fd 1 was closed), cwd, umask (decimal),
//   argc, argv..., envc, env..., rlimit count, "resource:soft:hard"...
// Once the agent has accepted (A), the client sends one byte, F, with its
// open fds among 0, 1 and 2 as SCM_RIGHTS: an agent that never accepted
// never holds the caller's stdio.
// Messages after it, both ways: a type byte, a 4-byte little-endian length,
// the payload.
//   agent -> client: N not served (the client runs the Node CLI), A accepted
//   (sent before the run starts; the client never falls back after it),
//   R report (file NUL text), X exit status (decimal).
//   client -> agent: S a signal the client got (one byte, its number).

export const PROTOCOL = 'brig-agent-1';
export const MAX_REQUEST = 4 << 20;

export interface AgentRequest {
  /** For fds 0, 1, 2: whether the client had it open (then it came as an fd). */
  open: [boolean, boolean, boolean];
  cwd: string;
  umask: number;
  argv: string[];
  env: Record<string, string>;
  /** resource -> [soft, hard], -1 for unlimited. */
  rlimits: Map<number, [number, number]>;
}

export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

export function decodeRequest(body: Buffer): AgentRequest {
  const parts = body.toString('utf8').split('\0');
  // The body ends with a NUL, so the last part is empty.
  if (parts.pop() !== '') throw new ProtocolError('request does not end with NUL');
  let i = 0;
  const next = (what: string): string => {
    if (i >= parts.length) throw new ProtocolError(`request ends before its ${what}`);
    return parts[i++];
  };
  const count = (what: string): number => {
    const v = next(what);
    if (!/^\d+$/.test(v)) throw new ProtocolError(`request's ${what} is not a count: ${JSON.stringify(v)}`);
    return Number(v);
  };
  const protocol = next('protocol');
  if (protocol !== PROTOCOL) throw new ProtocolError(`unknown protocol ${JSON.stringify(protocol)}`);
  const mask = next('open mask');
  if (!/^[01]{3}$/.test(mask)) throw new ProtocolError(`bad open mask ${JSON.stringify(mask)}`);
  const open = [mask[0] === '1', mask[1] === '1', mask[2] === '1'] as [boolean, boolean, boolean];
  const cwd = next('cwd');
  const umask = count('umask');
  const argv: string[] = [];
  for (let n = count('argc'); n > 0; n--) argv.push(next('argv'));
  const env: Record<string, string> = {};
  for (let n = count('envc'); n > 0; n--) {
    const kv = next('env');
    const eq = kv.indexOf('=');
    if (eq > 0 && !(kv.slice(0, eq) in env)) env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  const rlimits = new Map<number, [number, number]>();
  for (let n = count('rlimit count'); n > 0; n--) {
    const m = /^(\d+):(-1|\d+):(-1|\d+)$/.exec(next('rlimit'));
    if (!m) throw new ProtocolError('bad rlimit row');
    rlimits.set(Number(m[1]), [Number(m[2]), Number(m[3])]);
  }
  return { open, cwd, umask, argv, env, rlimits };
}

export function message(type: 'N' | 'A' | 'R' | 'X', payload: string | Buffer = ''): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeUInt32LE(body.length, 1);
  return Buffer.concat([head, body]);
}
