// The options `brig run -d` and `brig create` add to run's (src/cli/container.ts uses them).
import type { OptionSpec } from './args.js';

export const containerRunSpecs: OptionSpec[] = [
  { name: 'detach', short: 'd', help: 'run as a container in the background (a monitor keeps it): print its id and return' },
  { name: 'rm', help: 'with -d: remove the container when it exits' },
  { name: 'restart', value: true, arg: 'POLICY', help: 'with -d: no (default), on-failure[:N], always, unless-stopped' },
  { name: 'stop-signal', value: true, arg: 'SIGNAL', help: 'with -d: the signal brig stop sends first (default SIGTERM)' },
  { name: 'stop-timeout', value: true, arg: 'SECONDS', help: 'with -d: how long brig stop waits before SIGKILL (default 10)' },
  { name: 'log-opt', value: true, repeat: true, arg: 'KEY=VAL', help: 'with -d: json-file log options max-size=SIZE, max-file=N' },
  { name: 'label', short: 'l', value: true, repeat: true, arg: 'KEY=VAL', help: 'with -d: a label on the container (brig ps --filter label=)' },
];
