// The network options every verb that runs something takes (run, listen,
// box run), kept apart from run.ts so the CLI parser's rewrite and the
// network work do not edit the same lines.
import { isBuiltinMode } from '../net/index.js';
import { parsePublish } from '../net/ports.js';
import { OptionsError } from '../errors.js';
import type { SandboxOptions } from '../launch/options.js';
import { all, one, UsageError, type OptionSpec, type Parsed } from './args.js';

export const netSpecs: OptionSpec[] = [
  { name: 'network', value: true, arg: 'none|loopback|pasta|host|NETWORK|container:NAME', aliases: ['net'], check: (v, f) => checkNetwork(v, f), help: "none: no working interface (default); loopback: 127.0.0.1 inside; pasta: outbound through pasta; host: the host's network (no isolation, warns); NETWORK: a user network (brig network create; without -d the program runs as a container, removed at its end); container:NAME: a running container's network" },
  { name: 'network-alias', value: true, repeat: true, arg: 'NAME', aliases: ['net-alias'], help: 'another name the container has on its user network' },
  { name: 'link', value: true, repeat: true, arg: 'NAME[:ALIAS]', help: "a running container's address in /etc/hosts as ALIAS, and its ALIAS_PORT_* / ALIAS_NAME variables (Docker's legacy links)" },
  { name: 'publish', short: 'p', value: true, repeat: true, arg: '[IP:][HOSTPORT:]PORT[/tcp|udp]', help: 'forward a host port into the sandbox (ranges: 8000-8009:80-89); the host address defaults to 127.0.0.1, not 0.0.0.0' },
  { name: 'publish-via', value: true, arg: 'pasta|proxy', help: "what forwards published TCP ports: pasta (default) or brig's own proxy" },
  { name: 'host-loopback', help: "with --network pasta: the gateway address (host.brig.internal) reaches the host's 127.0.0.1" },
  { name: 'add-host', value: true, repeat: true, arg: 'NAME:IP', help: "a line in the sandbox's /etc/hosts (IP host-gateway: the gateway)" },
  { name: 'dns', value: true, repeat: true, arg: 'IP', help: "a name server in the sandbox's /etc/resolv.conf" },
  { name: 'dns-search', value: true, repeat: true, arg: 'DOMAIN', help: "a search domain in the sandbox's /etc/resolv.conf" },
];

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

function checkNetwork(v: string, flag: string): void {
  if (isBuiltinMode(v)) return;
  const name = v.startsWith('container:') ? v.slice('container:'.length) : v;
  if (!NAME.test(name) || v === 'bridge' || v === 'default') throw new UsageError(`${flag}: expected none, loopback, pasta, host, a user network's name or container:NAME, got ${JSON.stringify(v)}`);
}

/** The network's SandboxOptions from the parsed netSpecs options. */
export function netSandboxOptions(p: Parsed): Partial<SandboxOptions> {
  const opts: Partial<SandboxOptions> = {};
  const network = one(p, 'network');
  if (network !== undefined) {
    checkNetwork(network, '--network');
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
