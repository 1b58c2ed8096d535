// brig listen: nsjail's listen mode (-Ml). Each TCP connection gets a fresh
// sandbox whose stdin and stdout are the connection.
import { listen } from '../net/listen.js';
import { formatHelp, one, parseArgs, UsageError, wholeNumber, type OptionSpec } from './args.js';
import { sandboxSpecs, sandboxOptions } from './run.js';

const specs: OptionSpec[] = [
  { name: 'port', value: true, arg: 'N', help: 'TCP port to listen on (required)' },
  { name: 'address', value: true, arg: 'ADDR', help: 'address to listen on (default 127.0.0.1; :: or 0.0.0.0 to serve other machines)' },
  { name: 'max-conns', value: true, arg: 'N', help: 'sandboxes at once; connections past it are refused and logged' },
  { name: 'max-conns-per-ip', value: true, arg: 'N', help: 'sandboxes at once per client address' },
  ...sandboxSpecs,
];

export const listenHelp = formatHelp(
  'brig listen --port N [OPTIONS] -- COMMAND [ARGS...]',
  "Serve COMMAND on a TCP port, as nsjail's listen mode: each connection gets a\nfresh sandbox whose stdin and stdout are the connection; it is killed when the\npeer goes away. The sandbox options are brig run's. Ends on SIGINT or SIGTERM.",
  specs,
);

export async function listenCommand(argv: string[]): Promise<number> {
  const p = parseArgs(argv, specs);
  if (p.flags.has('help')) {
    process.stdout.write(listenHelp);
    return 0;
  }
  const port = one(p, 'port');
  if (port === undefined) throw new UsageError('--port: required (brig listen --port N -- COMMAND)');
  if (p.rest.length === 0) throw new UsageError('no command given (brig listen --port N -- COMMAND [ARGS...])');
  const { stdin: _i, stdout: _o, ...opts } = sandboxOptions(p);
  const n = (name: string) => {
    const v = one(p, name);
    return v === undefined ? undefined : wholeNumber(name, v);
  };
  const l = await listen(p.rest, { ...opts, stderr: 'inherit', port: wholeNumber('port', port), address: one(p, 'address'), maxConns: n('max-conns'), maxConnsPerIp: n('max-conns-per-ip') });
  const a = l.address();
  process.stderr.write(`brig listen: listening on ${a.address}:${a.port}\n`);
  l.on('refused', (e: { peer: string; reason: string }) => process.stderr.write(`brig listen: refused ${e.peer}: ${e.reason}\n`));
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await l.close();
  return 0;
}
