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
  { name: 'tty', short: 't', help: 'a terminal for the program (a new pty, its controlling terminal; with -i, relayed from yours in raw mode); not yet with -d' },
  { name: 'label', short: 'l', value: true, repeat: true, arg: 'KEY=VAL', help: 'a label on the container (brig ps --filter label=; with -d)' },
];

/**
 * Whether run's parse asked for a container (-d), checked here so that a
 * foreground run does not load the container code: the options only a
 * container takes are refused without -d.
 */
export function wantsContainer(p: Parsed): boolean {
  if (p.flags.has('detach')) {
    if (p.flags.has('tty')) throw new UsageError('-t with -d: not supported yet (a detached container has no terminal yet; brig exec -it gives one)');
    return true;
  }
  for (const o of ['restart', 'stop-signal', 'stop-timeout', 'log-opt', 'network-alias', 'link', 'publish-all']) if (p.opts.has(o)) throw new UsageError(`--${o} needs -d (brig run runs in the foreground otherwise)`);
  return false;
}
