// brig pull | push | login | logout: images to and from registries.
import { readFileSync } from 'node:fs';
import { RegistryError, login, pull, push, removeCredentials, saveCredentials, type LayerProgress } from '../image/registry.js';
import { formatHelp, positionals, UsageError, type OptionSpec, type Parsed } from './args.js';
import { helpSpec, human, verb } from './image.js';

const insecureSpec: OptionSpec = { name: 'insecure-registry', help: 'speak plain HTTP to this registry (a loopback test registry); never by default' };

function opts(p: Parsed) {
  return { insecure: p.flags.has('insecure-registry') };
}

/** Registry errors are the user's to fix: usage errors (exit 125 with the message). */
function registryVerb(help: string, specs: OptionSpec[], fn: (p: Parsed) => Promise<number>) {
  return verb(help, specs, async (p) => {
    try {
      return await fn(p);
    } catch (e) {
      if (e instanceof RegistryError) throw new UsageError(e.message);
      throw e;
    }
  });
}

/** One line per layer, redrawn in place on a terminal; elsewhere a line as each layer finishes. */
function progressPrinter() {
  const tty = process.stderr.isTTY === true;
  const layers: LayerProgress[] = [];
  let drawn = 0;
  let last = 0;
  const line = (p: LayerProgress) => {
    const id = p.digest.slice(7, 19);
    if (p.state === 'downloading') {
      const width = 30;
      const filled = p.total ? Math.round((p.bytes / p.total) * width) : 0;
      return `${id}: [${'='.repeat(filled)}${' '.repeat(width - filled)}] ${human(p.bytes)}/${human(p.total)}`;
    }
    return `${id}: ${{ waiting: 'waiting', verifying: 'verifying', unpacking: 'unpacking', done: 'pull complete', exists: 'already exists' }[p.state]}`;
  };
  const draw = (force = false) => {
    const now = Date.now();
    if (!force && now - last < 100) return;
    last = now;
    if (drawn) process.stderr.write(`\x1b[${drawn}A`);
    for (const p of layers) process.stderr.write(`\x1b[2K${line(p)}\n`);
    drawn = layers.length;
  };
  return {
    onProgress(p: LayerProgress) {
      const before = layers[p.index]?.state;
      layers[p.index] = p;
      // Every change of state is drawn; bytes at most ten times a second.
      if (tty) draw(before !== p.state);
      else if (before !== p.state && (p.state === 'done' || p.state === 'exists')) process.stderr.write(`${line(p)}\n`);
    },
    finish() {
      if (tty) draw(true);
    },
  };
}

const pullSpecs: OptionSpec[] = [{ name: 'platform', value: true, arg: 'OS/ARCH', help: 'the image to take from a multi-platform index (default linux and this machine)' }, insecureSpec, { name: 'quiet', short: 'q', help: 'print only the name' }, helpSpec];
export const pullHelp = formatHelp('brig pull [OPTIONS] [registry/]NAME[:TAG|@DIGEST]', 'Pulls an image from a registry into your store: every blob verified against its digest, layers you have skipped, several downloaded at once.', pullSpecs);
export const pullCommand = registryVerb(pullHelp, pullSpecs, async (p) => {
  positionals(p, 'brig pull [OPTIONS] [registry/]NAME[:TAG|@DIGEST]', 1);
  const quiet = p.flags.has('quiet');
  const bars = progressPrinter();
  const r = await pull(p.rest[0], { ...opts(p), platform: p.opts.get('platform')?.[0], onProgress: quiet ? undefined : bars.onProgress });
  if (!quiet) {
    bars.finish();
    process.stderr.write(`Digest: ${r.digest}\n`);
  }
  process.stdout.write(`${r.ref}\n`);
  return 0;
});

const pushSpecs: OptionSpec[] = [insecureSpec, { name: 'chunk-size', value: true, arg: 'BYTES', help: 'upload blobs above this size in chunks of it (default 16 MiB)' }, helpSpec];
export const pushHelp = formatHelp('brig push [OPTIONS] [registry/]NAME[:TAG] [DEST]', 'Pushes an image from your store to a registry under its own name (as Docker), or to DEST: blobs it has are skipped, then the manifest, byte for byte (the digest stays).', pushSpecs);
export const pushCommand = registryVerb(pushHelp, pushSpecs, async (p) => {
  const [source, dest] = positionals(p, 'brig push [OPTIONS] [registry/]NAME[:TAG] [DEST]', 1, 2);
  const chunk = p.opts.get('chunk-size')?.[0];
  const chunkSize = chunk === undefined ? undefined : Number(chunk);
  if (chunkSize !== undefined && (!Number.isSafeInteger(chunkSize) || chunkSize < 1)) throw new UsageError(`--chunk-size: expected a whole number of bytes, got ${JSON.stringify(chunk)}`);
  const r = await push(source, dest ?? source, {
    ...opts(p),
    chunkSize,
    onProgress: (e) => {
      if (e.state !== 'uploading') process.stderr.write(`${e.digest.slice(7, 19)}: ${e.state === 'exists' ? 'layer already exists' : 'pushed'}\n`);
    },
  });
  process.stdout.write(`${r.target}@${r.digest}\n`);
  return 0;
});

const loginSpecs: OptionSpec[] = [
  { name: 'username', short: 'u', value: true, arg: 'USER', help: 'the user name' },
  { name: 'password', short: 'p', value: true, arg: 'PASSWORD', help: 'the password (seen by other users in ps: prefer --password-stdin)' },
  { name: 'password-stdin', help: 'read the password from standard input' },
  insecureSpec,
  helpSpec,
];
export const loginHelp = formatHelp('brig login [-u USER] [-p PASSWORD | --password-stdin] REGISTRY', "Checks credentials with the registry and stores them in ~/.config/brig/auth.json (mode 0600). Docker's ~/.docker/config.json is read too.", loginSpecs);
export const loginCommand = registryVerb(loginHelp, loginSpecs, async (p) => {
  const [server] = positionals(p, 'brig login [-u USER] [-p PASSWORD | --password-stdin] REGISTRY', 1);
  let user = p.opts.get('username')?.[0];
  const given = p.opts.get('password')?.[0];
  if (given !== undefined && p.flags.has('password-stdin')) throw new UsageError('--password and --password-stdin: give one');
  const tty = process.stdin.isTTY === true;
  if (!user) {
    if (!tty) throw new UsageError('which user? give -u USER (standard input is not a terminal to ask on)');
    user = await prompt('Username: ', false);
  }
  let password: string;
  if (given !== undefined) {
    process.stderr.write('WARNING! Using --password via the command line is insecure: other users see it in ps. Use --password-stdin.\n');
    password = given;
  } else if (p.flags.has('password-stdin') || !tty) password = readFileSync(0, 'utf8').replace(/\r?\n$/, '');
  else password = await prompt('Password: ', true);
  if (!password) throw new UsageError(p.flags.has('password-stdin') || !tty ? 'no password on standard input' : 'no password given');
  const registry = server.replace(/^https?:\/\//, '').replace(/\/+$/, '');
  await login(registry, { username: user, password }, opts(p));
  const file = saveCredentials(registry, { username: user, password });
  process.stderr.write(`Login succeeded; credentials stored in ${file}\n`);
  return 0;
});

export const logoutHelp = formatHelp('brig logout REGISTRY', "Removes brig's stored credentials for the registry.", [helpSpec]);
export const logoutCommand = registryVerb(logoutHelp, [helpSpec], async (p) => {
  positionals(p, 'brig logout REGISTRY', 1);
  process.stderr.write(removeCredentials(p.rest[0]) ? `Removed credentials for ${p.rest[0]}\n` : `No credentials stored for ${p.rest[0]}\n`);
  return 0;
});

/** A line read from the terminal; the password without echo. */
async function prompt(question: string, secret: boolean): Promise<string> {
  process.stderr.write(question);
  const stdin = process.stdin;
  if (secret) stdin.setRawMode(true);
  stdin.resume();
  let line = '';
  try {
    return await new Promise<string>((resolve, reject) => {
      const onData = (d: Buffer) => {
        for (const ch of d.toString('utf8')) {
          if (ch === '\r' || ch === '\n') {
            stdin.off('data', onData);
            return resolve(line);
          }
          if (ch === '\u0003') {
            stdin.off('data', onData);
            return reject(new UsageError('interrupted'));
          }
          if (ch === '\u007f') line = line.slice(0, -1);
          else line += ch;
        }
      };
      stdin.on('data', onData);
    });
  } finally {
    if (secret) {
      stdin.setRawMode(false);
      process.stderr.write('\n');
    }
    stdin.pause();
  }
}
