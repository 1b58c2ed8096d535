// The network options every verb that runs something takes (run, listen,
// box run), kept apart from run.ts so the CLI parser's rewrite and the
// network work do not edit the same lines.
import { parsePublish } from '../net/ports.js';
import { OptionsError } from '../errors.js';
import type { SandboxOptions } from '../options.js';
import { all, checks, one, UsageError, type OptionSpec, type Parsed } from './args.js';

export const netSpecs: OptionSpec[] = [
  { name: 'network', value: true, arg: 'none|loopback|pasta|host', aliases: ['net'], check: (v, f) => checks.oneOf('none', 'loopback', 'pasta', 'host')(v, f), help: "none: no working interface (default); loopback: 127.0.0.1 inside; pasta: outbound through pasta; host: the host's network (no isolation, warns)" },
  { name: 'publish', short: 'p', value: true, repeat: true, arg: '[IP:][HOSTPORT:]PORT[/tcp|udp]', help: 'forward a host port into the sandbox (ranges: 8000-8009:80-89); the host address defaults to 127.0.0.1, not 0.0.0.0' },
  { name: 'publish-via', value: true, arg: 'pasta|proxy', help: "what forwards published TCP ports: pasta (default) or brig's own proxy" },
  { name: 'host-loopback', help: "with --network pasta: the gateway address (host.brig.internal) reaches the host's 127.0.0.1" },
  { name: 'add-host', value: true, repeat: true, arg: 'NAME:IP', help: "a line in the sandbox's /etc/hosts (IP host-gateway: the gateway)" },
  { name: 'dns', value: true, repeat: true, arg: 'IP', help: "a name server in the sandbox's /etc/resolv.conf" },
  { name: 'dns-search', value: true, repeat: true, arg: 'DOMAIN', help: "a search domain in the sandbox's /etc/resolv.conf" },
];

/** The network's SandboxOptions from the parsed netSpecs options. */
export function netSandboxOptions(p: Parsed): Partial<SandboxOptions> {
  const opts: Partial<SandboxOptions> = {};
  const network = one(p, 'network');
  if (network !== undefined) {
    if (!['none', 'loopback', 'pasta', 'host'].includes(network)) throw new UsageError(`--network: expected none, loopback, pasta or host, got ${JSON.stringify(network)}`);
    opts.network = network as SandboxOptions['network'];
    if (network === 'host') process.stderr.write("brig: warning: --network host shares the host's network: no network isolation\n");
  }
  const publish = all(p, 'publish');
  if (publish.length) {
    // Checked here so the error names the flag rather than publish[i].
    for (const v of publish)
      try {
        parsePublish('--publish', v);
      } catch (e) {
        if (e instanceof OptionsError) throw new UsageError(e.message);
        throw e;
      }
    opts.publish = publish;
  }
  const via = one(p, 'publish-via');
  if (via !== undefined) {
    if (via !== 'pasta' && via !== 'proxy') throw new UsageError(`--publish-via: expected pasta or proxy, got ${JSON.stringify(via)}`);
    opts.publishVia = via;
  }
  if (p.flags.has('host-loopback')) opts.hostLoopback = true;
  const hosts = all(p, 'add-host');
  if (hosts.length) opts.extraHosts = hosts;
  const dns = all(p, 'dns');
  if (dns.length) opts.dns = dns;
  const search = all(p, 'dns-search');
  if (search.length) opts.dnsSearch = search;
  return opts;
}
