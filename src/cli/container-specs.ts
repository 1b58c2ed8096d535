// The options `brig run` takes for a container (-d and what only a container has), and `brig create`;
// src/cli/run.ts puts them in place of sandboxSpecs' entries of the same names.
import { UsageError, type OptionSpec, type Parsed } from './args.js';

export const containerRunSpecs: OptionSpec[] = [
  { name: 'detach', short: 'd', help: 'run as a container in the background (a monitor keeps it): print its id and return' },
  { name: 'rm', help: 'remove the container when it exits (what a foreground run does unless --name keeps it)' },
  { name: 'restart', value: true, arg: 'POLICY', help: 'with -d: no (default), on-failure[:N], always, unless-stopped' },
  { name: 'stop-signal', value: true, arg: 'SIGNAL', help: 'with -d: the signal brig stop sends first (default SIGTERM)' },
  { name: 'stop-timeout', value: true, arg: 'SECONDS', help: 'with -d: how long brig stop waits before SIGKILL (default 10)' },
  { name: 'log-opt', value: true, repeat: true, arg: 'KEY=VAL', help: 'with -d: json-file log options max-size=SIZE, max-file=N' },
  { name: 'tty', short: 't', help: 'a terminal for the program (a new pty, its controlling terminal; with -i, relayed from yours in raw mode; with -d, held by the container\'s monitor for brig attach)' },
  { name: 'label', short: 'l', value: true, repeat: true, arg: 'KEY=VAL', help: 'a label on the container (brig ps --filter label=; with -d)' },
  // [i25 healthchecks] Docker's --health-* flags (src/container/health.ts)
  { name: 'health-cmd', value: true, arg: 'COMMAND', help: 'with -d: a command (run by sh -c in the container) whose exit 0 means healthy' },
  { name: 'health-interval', value: true, arg: 'DURATION', help: 'with -d: time between checks (e.g. 30s, 500ms; default 30s)' },
  { name: 'health-timeout', value: true, arg: 'DURATION', help: 'with -d: a check running longer fails (default 30s)' },
  { name: 'health-retries', value: true, arg: 'N', help: 'with -d: failures in a row that make it unhealthy (default 3)' },
  { name: 'health-start-period', value: true, arg: 'DURATION', help: 'with -d: failures in this time after the start do not count' },
  { name: 'no-healthcheck', help: "with -d: no healthcheck, not even the image's" },
];

const HEALTH_FLAGS = ['health-cmd', 'health-interval', 'health-timeout', 'health-retries', 'health-start-period'];

/** A Go duration as Docker takes it (1m30s, 500ms, 2h, 10s); ms. */
export function parseDuration(flag: string, v: string): number {
  const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  if (!/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(v)) throw new UsageError(`${flag}: expected a duration such as 30s, 1m30s or 500ms, got ${JSON.stringify(v)}`);
  let ms = 0;
  for (const m of v.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) ms += Number(m[1]) * unit[m[2]];
  return ms;
}

/** The healthcheck the --health-* flags give: undefined when none is given. */
export function healthFromFlags(p: Parsed): { test: string[]; intervalMs?: number; timeoutMs?: number; retries?: number; startPeriodMs?: number } | undefined {
  const get = (n: string) => p.opts.get(n)?.at(-1);
  if (p.flags.has('no-healthcheck')) {
    const also = HEALTH_FLAGS.find((f) => get(f) !== undefined);
    if (also) throw new UsageError(`--no-healthcheck conflicts with --${also}`);
    return { test: ['NONE'] };
  }
  const cmd = get('health-cmd');
  const any = HEALTH_FLAGS.some((f) => get(f) !== undefined);
  if (!any) return undefined;
  if (cmd === undefined) throw new UsageError('--health-interval, --health-timeout, --health-retries and --health-start-period need --health-cmd (the image has no HEALTHCHECK to change)');
  const h: { test: string[]; intervalMs?: number; timeoutMs?: number; retries?: number; startPeriodMs?: number } = { test: ['CMD-SHELL', cmd] };
  const d = (f: string) => {
    const v = get(f);
    return v === undefined ? undefined : parseDuration(`--${f}`, v);
  };
  h.intervalMs = d('health-interval');
  h.timeoutMs = d('health-timeout');
  h.startPeriodMs = d('health-start-period');
  const r = get('health-retries');
  if (r !== undefined) {
    if (!/^\d+$/.test(r)) throw new UsageError(`--health-retries: expected a whole number, got ${JSON.stringify(r)}`);
    h.retries = Number(r);
  }
  return h;
}

/**
 * Whether run's parse asked for a container (-d), checked here so that a
 * foreground run does not load the container code: the options only a
 * container takes are refused without -d.
 */
export function wantsContainer(p: Parsed): boolean {
  if (p.flags.has('detach')) return true;
  if (p.flags.has('no-healthcheck')) throw new UsageError('--no-healthcheck needs -d (brig run runs in the foreground otherwise)');
  for (const o of ['restart', 'stop-signal', 'stop-timeout', 'log-opt', ...HEALTH_FLAGS, 'network-alias', 'link']) if (p.opts.has(o)) throw new UsageError(`--${o} needs -d (brig run runs in the foreground otherwise)`);
  if (p.flags.has('publish-all')) throw new UsageError('--publish-all needs -d (brig run runs in the foreground otherwise; give each port with -p)');
  return false;
}
