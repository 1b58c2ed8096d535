// brig volume create | ls | inspect | rm | prune: named volumes, data that outlives runs.
import { createInterface } from 'node:readline/promises';
import { ImageError, Store } from '../image/store.js';
import { formatHelp, helpSpec, one, parseArgs, positionals, UsageError, type OptionSpec, type Parsed } from './args.js';
import { formatList } from './format.js';
import { human, printInspected } from './image.js';

const subs: Record<string, { usage: string; specs: OptionSpec[]; run: (store: Store, p: Parsed) => Promise<number> | number }> = {
  create: {
    usage: 'brig volume create NAME',
    specs: [helpSpec],
    run(store, p) {
      const [name] = positionals(p, 'brig volume create NAME', 1);
      store.createVolume(name);
      process.stdout.write(`${name}\n`);
      return 0;
    },
  },
  ls: {
    usage: 'brig volume ls [-q] [--format table|json|TEMPLATE]',
    specs: [{ name: 'quiet', short: 'q', help: 'only the names' }, { name: 'format', value: true, arg: 'table|json|TEMPLATE', help: "output: table (default), json, or a Go template such as '{{.Name}}'" }, helpSpec],
    run(store, p) {
      positionals(p, 'brig volume ls [OPTIONS]', 0);
      const names = store.listVolumes();
      if (p.flags.has('quiet')) process.stdout.write(names.map((n) => n + '\n').join(''));
      else process.stdout.write(formatList(names.map((n) => ({ Driver: 'local', Name: n, Mountpoint: store.volumePath(n) })), one(p, 'format'), [['DRIVER', 'Driver'], ['VOLUME NAME', 'Name']]));
      return 0;
    },
  },
  inspect: {
    usage: 'brig volume inspect [-f TEMPLATE] NAME...',
    specs: [{ name: 'format', short: 'f', value: true, arg: 'TEMPLATE', help: "a Go template per volume, e.g. '{{.Mountpoint}}'" }, helpSpec],
    run(store, p) {
      positionals(p, 'brig volume inspect [-f TEMPLATE] NAME...', 1, Infinity);
      const items = p.rest.map((n) => {
        const v = store.inspectVolume(n);
        return { Name: v.name, Driver: 'local', Mountpoint: v.path, CreatedAt: v.created, ...v };
      });
      printInspected(items, one(p, 'format'));
      return 0;
    },
  },
  rm: {
    usage: 'brig volume rm [-f] NAME...',
    specs: [{ name: 'force', short: 'f', help: 'no error for volumes that are not there' }, helpSpec],
    run(store, p) {
      positionals(p, 'brig volume rm [-f] NAME...', 1, Infinity);
      let failed = 0;
      for (const n of p.rest) {
        try {
          store.removeVolume(n);
          process.stdout.write(`${n}\n`);
        } catch (e) {
          if (!(e instanceof ImageError)) throw e;
          if (p.flags.has('force') && /^no volume/.test(e.message)) continue;
          process.stderr.write(`brig volume rm: ${e.message}\n`);
          failed++;
        }
      }
      return failed ? 1 : 0;
    },
  },
  prune: {
    usage: 'brig volume prune [-f]',
    specs: [{ name: 'force', short: 'f', help: 'do not ask' }, { name: 'all', short: 'a', help: 'accepted (every volume is unused between runs)' }, helpSpec],
    async run(store, p) {
      positionals(p, 'brig volume prune [-f]', 0);
      if (!(await confirm(p, 'This removes every named volume (no run is using one between runs).'))) return 1;
      let bytes = 0;
      const gone: string[] = [];
      for (const n of store.listVolumes()) {
        bytes += store.inspectVolume(n).bytes;
        store.removeVolume(n);
        gone.push(n);
      }
      process.stdout.write(`${gone.length ? `Deleted Volumes:\n${gone.join('\n')}\n\n` : ''}Total reclaimed space: ${human(bytes)}\n`);
      return 0;
    },
  },
};

/** Docker's "Are you sure you want to continue? [y/N]", or -f; without a terminal to ask on, -f is needed. */
export async function confirm(p: Parsed, what: string): Promise<boolean> {
  if (p.flags.has('force')) return true;
  if (!process.stdin.isTTY) throw new UsageError(`${what} Give -f to go on (standard input is not a terminal to ask on)`);
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(`WARNING! ${what}\nAre you sure you want to continue? [y/N] `)).trim());
  } finally {
    rl.close();
  }
}

export const volumeHelp = `Usage: brig volume COMMAND

Named volumes live in your store ($BRIG_STORE, else ~/.local/share/brig) and
are bound into a sandbox with -v NAME:/path (read-write unless :ro); a volume
named in a run is made if it is not there yet.

Commands:
${Object.values(subs)
  .map((s) => `  ${s.usage}`)
  .join('\n')}
`;

export async function volumeCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h') {
    process.stdout.write(volumeHelp);
    return 0;
  }
  const name = sub === 'list' ? 'ls' : sub === 'remove' ? 'rm' : sub;
  const s = subs[name];
  if (!s) throw new UsageError(`unknown subcommand ${JSON.stringify(sub)} (create, ls, inspect, rm or prune)`);
  const p = parseArgs(rest, s.specs);
  if (p.flags.has('help')) {
    process.stdout.write(formatHelp(s.usage, `brig volume ${name}`, s.specs));
    return 0;
  }
  try {
    return await s.run(new Store(), p);
  } catch (e) {
    if (e instanceof ImageError) throw new UsageError(e.message);
    throw e;
  }
}
