// pasta (Debian's passt package): a user-mode network stack brig starts for
// one sandbox's network namespace and ends with it.
import type { ChildProcess } from 'node:child_process';
import { childProcess, net } from '../builtins.js';
import { accessSync, closeSync, constants as fsConstants } from 'node:fs';
import { errnoOf, SetupError, setupErrorInfo } from '../errors.js';
import { native } from '../native.js';
import type { PublishedPort } from './ports.js';
import { PASTA_DNS } from './names.js';

const READY_TIMEOUT_MS = 10_000;

function executable(path: string): boolean {
  try {
    accessSync(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** pasta's path: BRIG_PASTA, else the first `pasta` in PATH, else /usr/bin/pasta; undefined if none. */
export function findPasta(): string | undefined {
  const given = process.env.BRIG_PASTA;
  if (given) return executable(given) ? given : undefined;
  for (const dir of [...(process.env.PATH ?? '').split(':').filter(Boolean), '/usr/bin', '/usr/sbin']) {
    const p = `${dir}/pasta`;
    if (executable(p)) return p;
  }
  return undefined;
}

let setprivPath: string | null | undefined;
/**
 * util-linux's setpriv sets PR_SET_PDEATHSIG before it execs pasta, so pasta
 * dies with the Node process even when that is SIGKILLed. pasta holds the
 * sandbox's network namespace open itself, so it would never notice the
 * sandbox going: this signal is what ends it then.
 */
function setpriv(): string | null {
  if (setprivPath === undefined) setprivPath = ['/usr/bin/setpriv', '/bin/setpriv'].find(executable) ?? null;
  return setprivPath;
}

/** pasta's version line (Debian's 2023 builds say 'unknown version': the package's then). */
export function pastaVersion(path: string): string {
  const r = childProcess().spawnSync(path, ['--version'], { encoding: 'utf8', timeout: 5000 });
  const line = (r.stdout || r.stderr || '').split('\n')[0].trim();
  if (line && !/unknown version/.test(line)) return line;
  const dpkg = childProcess().spawnSync('dpkg-query', ['-W', '-f', '${Version}', 'passt'], { encoding: 'utf8', timeout: 5000 });
  return dpkg.status === 0 && dpkg.stdout ? `passt ${dpkg.stdout.trim()} (Debian package)` : line || 'unknown';
}

export interface PastaConfig {
  /** Give the namespace an address, routes and outbound traffic (network 'pasta'); else ports only. */
  outbound: boolean;
  /** Map the gateway address to the host's loopback (hostLoopback). */
  hostLoopback: boolean;
  /** Ports pasta forwards (host ports already chosen). */
  ports: PublishedPort[];
}

/** The command line, everything off that was not asked for. */
export function pastaArgs(pid: number, c: PastaConfig): string[] {
  const args = ['-f', '-q', '--runas', `${process.getuid!()}:${process.getgid!()}`];
  // pasta forwards every bound port both ways by default ('auto'): the
  // sandbox would reach every service on the host's loopback through its own.
  const spec = (proto: 'tcp' | 'udp') => c.ports.filter((p) => p.protocol === proto).map((p) => `${p.hostIp}/${p.hostPort}:${p.containerPort}`);
  const tcp = spec('tcp');
  const udp = spec('udp');
  for (const s of tcp.length ? tcp : ['none']) args.push('-t', s);
  for (const s of udp.length ? udp : ['none']) args.push('-u', s);
  args.push('-T', 'none', '-U', 'none');
  if (c.outbound) {
    args.push('--config-net', '--dns-forward', PASTA_DNS);
    if (!c.hostLoopback) args.push('--no-map-gw');
  }
  // Readiness: in the foreground pasta writes its pid file once the
  // namespace is configured and its ports bound. The file is a pipe brig reads.
  args.push('-P', '/proc/self/fd/3', String(pid));
  return args;
}

/** A running pasta for one sandbox. */
export class Pasta {
  private exited: Promise<void>;
  private constructor(private readonly child: ChildProcess) {
    this.exited = new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  /**
   * Starts pasta for the network namespace of `pid` (the sandbox's init,
   * held before its first step) and resolves once pasta has configured it;
   * a SetupError naming step 'pasta' otherwise.
   */
  static start(path: string, pid: number, config: PastaConfig): Promise<Pasta> {
    let r: number, w: number;
    try {
      [r, w] = native.pipe();
    } catch (e) {
      return Promise.reject(new SetupError(setupErrorInfo('pasta-pipe', errnoOf(e))));
    }
    const args = pastaArgs(pid, config);
    const wrapper = setpriv();
    let child: ChildProcess;
    try {
      child = wrapper
        ? childProcess().spawn(wrapper, ['--pdeathsig', 'KILL', '--', path, ...args], { stdio: ['ignore', 'ignore', 'pipe', w] })
        : childProcess().spawn(path, args, { stdio: ['ignore', 'ignore', 'pipe', w] });
    } catch (e) {
      closeSync(w);
      closeSync(r);
      return Promise.reject(new SetupError(setupErrorInfo('pasta', errnoOf(e), path)));
    }
    closeSync(w);
    const pasta = new Pasta(child);
    let stderr = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      if (stderr.length < 4096) stderr += d;
    });
    const ready = new (net().Socket)({ fd: r, readable: true, writable: false });
    return new Promise<Pasta>((resolve, reject) => {
      let settled = false;
      const finish = (err?: SetupError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        ready.destroy();
        if (err) pasta.stop().then(() => reject(err));
        else resolve(pasta);
      };
      const timer = setTimeout(() => finish(new SetupError(setupErrorInfo('pasta', 110 /* ETIMEDOUT */, path, `not ready after ${READY_TIMEOUT_MS / 1000} s`))), READY_TIMEOUT_MS);
      ready.on('data', () => finish());
      ready.on('error', () => {});
      child.on('error', (e) => finish(new SetupError(setupErrorInfo('pasta', errnoOf(e), path))));
      child.on('exit', (code, signal) => {
        const said = stderr
          .split('\n')
          .filter((l) => l && !/syslog/.test(l))
          .join('; ')
          .slice(0, 300);
        const info = setupErrorInfo('pasta', 5 /* EIO */, path, `it exited (${signal ?? `code ${code}`}) before the network was ready${said ? `: ${said}` : ''}`);
        finish(new SetupError(info));
      });
    });
  }

  /** Ends pasta (SIGKILL: it holds nothing that needs a goodbye) and waits for it. */
  stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    return this.exited;
  }
}
