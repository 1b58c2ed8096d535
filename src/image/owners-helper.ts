// Run by ownersHelper() (owners.ts) under Node as root of the multi-id map,
// never by hand. There, files a container's processes made as other users are
// readable and removable, and lstat shows the owners the image knows them by.
//   pack DIR OUT EXCLUDE_JSON   DIR as a layer tarball in OUT; {diffId, size} in OUT.json
//   rm DIR                      DIR and everything below it
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { packLayer, removeTree } from './layer.js';

const [verb, ...args] = process.argv.slice(2);
try {
  if (verb === 'pack' && args.length === 3) {
    const fd = openSync(args[1], 'w', 0o600);
    try {
      const r = packLayer(args[0], fd, new Set(JSON.parse(args[2]) as string[]), true);
      writeFileSync(`${args[1]}.json`, JSON.stringify(r));
    } finally {
      closeSync(fd);
    }
  } else if (verb === 'rm' && args.length === 1) {
    removeTree(args[0]);
  } else {
    throw new Error(`usage: owners-helper pack DIR OUT EXCLUDE_JSON | rm DIR (got ${JSON.stringify(process.argv.slice(2))})`);
  }
} catch (e) {
  process.stderr.write(`${(e as Error).message}\n`);
  process.exit(1);
}
