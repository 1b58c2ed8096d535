// brig network create | ls | inspect | rm | prune | connect | disconnect: user networks (src/net/networks.ts).
import { NetworkError } from '../errors.js';
import { connectNetwork, createNetwork, disconnectNetwork, getNetwork, listNetworks, pruneNetworks, removeNetwork, type NetworkRecord } from '../net/networks.js';
import { all, formatHelp, helpSpec, one, parseArgs, positionals, UsageError, type OptionSpec, type Parsed } from './args.js';
import { formatList } from './format.js';
import { printInspected } from './image.js';
import { confirm } from './volume.js';

function keyValues(p: Parsed, name: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of all(p, name)) {
    const eq = kv.indexOf('=');
    if (eq === 0) throw new UsageError(`--${name}: expected KEY=VALUE, got ${JSON.stringify(kv)}`);
    if (eq < 0) out[kv] = '';
    else out[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return out;
}

/** Docker's network ls filters: name= (substring), id= (prefix), label=KEY[=VAL], driver=, scope=, type=custom|builtin. */
function filtered(rows: NetworkRecord[], filters: string[]): NetworkRecord[] {
  for (const f of filters) {
    const eq = f.indexOf('=');
    const key = f.slice(0, eq);
    const v = f.slice(eq + 1);
    if (eq < 0 || !['name', 'id', 'label', 'driver', 'scope', 'type', 'dangling'].includes(key)) throw new UsageError(`--filter: expected name=, id=, label=, driver=, scope=, type= or dangling=, got ${JSON.stringify(f)}`);
    if (key === 'name') rows = rows.filter((r) => r.Name.includes(v));
    if (key === 'id') rows = rows.filter((r) => r.Id.startsWith(v));
    if (key === 'driver') rows = rows.filter((r) => r.Driver === v);
    if (key === 'scope') rows = rows.filter((r) => r.Scope === v);
    if (key === 'type') rows = v === 'custom' ? rows : [];
    if (key === 'dangling') rows = rows.filter((r) => (Object.keys(r.Containers).length === 0) === (v === 'true' || v === '1'));
    if (key === 'label') {
      const e = v.indexOf('=');
      rows = rows.filter((r) => (e < 0 ? v in r.Labels : r.Labels[v.slice(0, e)] === v.slice(e + 1)));
    }
  }
  return rows;
}

const subs: Record<string, { usage: string; specs: OptionSpec[]; run: (p: Parsed) => Promise<number> | number }> = {
  create: {
    usage: 'brig network create [--subnet CIDR] [--gateway IP] [--internal] [--label K=V] NAME',
    specs: [
      { name: 'subnet', value: true, arg: 'CIDR', help: 'IPv4 subnet, e.g. 10.90.0.0/24 (default: the first free 10.89.N.0/24)' },
      { name: 'gateway', value: true, arg: 'IP', help: "the bridge's address (default: the subnet's first)" },
      { name: 'internal', help: 'no route out of the network' },
      { name: 'label', value: true, repeat: true, arg: 'KEY=VAL', help: 'a label on the network' },
      { name: 'driver', short: 'd', value: true, arg: 'bridge', help: 'bridge (the only one)', check: (v, f) => { if (v !== 'bridge') throw new UsageError(`${f}: only the bridge driver exists, got ${JSON.stringify(v)}`); } },
      { name: 'opt', short: 'o', value: true, repeat: true, arg: 'KEY=VAL', help: 'driver options (kept, shown by inspect)' },
      { name: 'attachable', help: 'accepted (every brig network is)' },
      { name: 'ipv6', help: 'IPv6', unsupported: 'user networks are IPv4 only' },
      helpSpec,
    ],
    run(p) {
      const [name] = positionals(p, 'brig network create [OPTIONS] NAME', 1);
      const n = createNetwork({ name, subnet: one(p, 'subnet'), gateway: one(p, 'gateway'), internal: p.flags.has('internal'), labels: keyValues(p, 'label'), options: keyValues(p, 'opt'), attachable: p.flags.has('attachable') });
      process.stdout.write(`${n.Id}\n`);
      return 0;
    },
  },
  ls: {
    usage: 'brig network ls [-q] [--filter K=V] [--no-trunc] [--format table|json|TEMPLATE]',
    specs: [
      { name: 'quiet', short: 'q', help: 'only the ids' },
      { name: 'filter', short: 'f', value: true, repeat: true, arg: 'KEY=VALUE', help: 'name=, id=, label=KEY[=VAL], driver=, scope=, type=, dangling=' },
      { name: 'no-trunc', help: 'whole ids' },
      { name: 'format', value: true, arg: 'table|json|TEMPLATE', help: "output: table (default), json, or a Go template such as '{{.Name}}'" },
      helpSpec,
    ],
    run(p) {
      positionals(p, 'brig network ls [OPTIONS]', 0);
      const rows = filtered(listNetworks(), all(p, 'filter'));
      const id = (r: NetworkRecord) => (p.flags.has('no-trunc') ? r.Id : r.Id.slice(0, 12));
      if (p.flags.has('quiet')) process.stdout.write(rows.map((r) => id(r) + '\n').join(''));
      else
        process.stdout.write(
          formatList(
            rows.map((r) => ({ ID: id(r), Name: r.Name, Driver: r.Driver, Scope: r.Scope, IPv6: false, Internal: r.Internal, Labels: Object.entries(r.Labels).map(([k, v]) => `${k}=${v}`).join(','), CreatedAt: r.Created })),
            one(p, 'format'),
            [['NETWORK ID', 'ID'], ['NAME', 'Name'], ['DRIVER', 'Driver'], ['SCOPE', 'Scope']],
          ),
        );
      return 0;
    },
  },
  inspect: {
    usage: 'brig network inspect [-f TEMPLATE] NETWORK...',
    specs: [{ name: 'format', short: 'f', value: true, arg: 'TEMPLATE', help: "a Go template per network, e.g. '{{.IPAM.Config}}'" }, { name: 'verbose', short: 'v', help: 'accepted' }, helpSpec],
    run(p) {
      positionals(p, 'brig network inspect [-f TEMPLATE] NETWORK...', 1, Infinity);
      const items: NetworkRecord[] = [];
      let failed = 0;
      for (const ref of p.rest) {
        try {
          items.push(getNetwork(ref));
        } catch (e) {
          if (!(e instanceof NetworkError)) throw e;
          process.stderr.write(`brig network inspect: ${e.message}\n`);
          failed++;
        }
      }
      if (items.length || !failed) printInspected(items, one(p, 'format'));
      return failed ? 1 : 0;
    },
  },
  rm: {
    usage: 'brig network rm [-f] NETWORK...',
    specs: [{ name: 'force', short: 'f', help: 'no error for networks that are not there' }, helpSpec],
    async run(p) {
      positionals(p, 'brig network rm [-f] NETWORK...', 1, Infinity);
      let failed = 0;
      for (const ref of p.rest) {
        try {
          await removeNetwork(ref);
          process.stdout.write(`${ref}\n`);
        } catch (e) {
          if (!(e instanceof NetworkError)) throw e;
          if (p.flags.has('force') && e.status === 404) continue;
          process.stderr.write(`brig network rm: ${e.message}\n`);
          failed++;
        }
      }
      return failed ? 1 : 0;
    },
  },
  prune: {
    usage: 'brig network prune [-f]',
    specs: [{ name: 'force', short: 'f', help: 'do not ask' }, { name: 'filter', value: true, repeat: true, arg: 'KEY=VALUE', help: 'label=KEY[=VAL]', unsupported: 'prune filters are not built' }, helpSpec],
    async run(p) {
      positionals(p, 'brig network prune [-f]', 0);
      if (!(await confirm(p, 'This will remove all custom networks not used by at least one container.'))) return 1;
      const gone = await pruneNetworks();
      if (gone.length) process.stdout.write(`Deleted Networks:\n${gone.join('\n')}\n`);
      return 0;
    },
  },
  connect: {
    usage: 'brig network connect [--alias NAME] [--ip IP] NETWORK CONTAINER',
    specs: [{ name: 'alias', value: true, repeat: true, arg: 'NAME', help: 'another name the container has on this network' }, { name: 'ip', value: true, arg: 'IP', help: 'a fixed address on the network' }, helpSpec],
    async run(p) {
      const [net, ctr] = positionals(p, 'brig network connect [OPTIONS] NETWORK CONTAINER', 2);
      await connectNetwork(ctr, net, { aliases: all(p, 'alias'), ipv4Address: one(p, 'ip') });
      return 0;
    },
  },
  disconnect: {
    usage: 'brig network disconnect [-f] NETWORK CONTAINER',
    specs: [{ name: 'force', short: 'f', help: 'no error if the container is gone' }, helpSpec],
    async run(p) {
      const [net, ctr] = positionals(p, 'brig network disconnect [-f] NETWORK CONTAINER', 2);
      await disconnectNetwork(ctr, net, { force: p.flags.has('force') });
      return 0;
    },
  },
};

export const networkHelp = `Usage: brig network COMMAND

User networks: containers on one reach each other by name, alias and short
id; containers on different ones cannot. Rootless: the bridges live in a
network namespace of your own (docs/network.md).

Commands:
${Object.values(subs)
  .map((s) => `  ${s.usage}`)
  .join('\n')}
`;

export async function networkCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h') {
    process.stdout.write(networkHelp);
    return 0;
  }
  const name = sub === 'list' ? 'ls' : sub === 'remove' ? 'rm' : sub;
  const s = subs[name];
  if (!s) throw new UsageError(`unknown subcommand ${JSON.stringify(sub)} (create, ls, inspect, rm, prune, connect or disconnect)`);
  const p = parseArgs(rest, s.specs);
  if (p.flags.has('help')) {
    process.stdout.write(formatHelp(s.usage, `brig network ${name}`, s.specs));
    return 0;
  }
  try {
    return await s.run(p);
  } catch (e) {
    // Docker's daemon errors exit 1, as the CLI's "Error response from daemon".
    if (e instanceof NetworkError) {
      process.stderr.write(`brig network ${name}: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}
