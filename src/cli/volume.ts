// brig volume create | ls | inspect | rm: named volumes, data that outlives runs.
import { ImageError, Store } from '../image/store.js';
import { UsageError } from './args.js';

export const volumeHelp = `Usage: brig volume create NAME | ls | inspect NAME... | rm NAME...

Named volumes live in your store ($BRIG_STORE, else ~/.local/share/brig) and
are bound into a sandbox with -v NAME:/path (read-write unless :ro); a volume
named in a run is made if it is not there yet.
`;

export async function volumeCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h') {
    process.stdout.write(volumeHelp);
    return sub === undefined ? 2 : 0;
  }
  const store = new Store();
  try {
    switch (sub) {
      case 'create':
        if (rest.length !== 1) throw new UsageError('brig volume create NAME');
        store.createVolume(rest[0]);
        process.stdout.write(`${rest[0]}\n`);
        return 0;
      case 'ls':
        for (const v of store.listVolumes()) process.stdout.write(`${v}\n`);
        return 0;
      case 'inspect':
        if (!rest.length) throw new UsageError('brig volume inspect NAME...');
        process.stdout.write(JSON.stringify(rest.map((n) => store.inspectVolume(n)), null, 2) + '\n');
        return 0;
      case 'rm':
        if (!rest.length) throw new UsageError('brig volume rm NAME...');
        for (const n of rest) {
          store.removeVolume(n);
          process.stdout.write(`${n}\n`);
        }
        return 0;
      default:
        throw new UsageError(`unknown subcommand ${JSON.stringify(sub)} (create, ls, inspect or rm)`);
    }
  } catch (e) {
    if (e instanceof ImageError) throw new UsageError(e.message);
    throw e;
  }
}
