// brig box create | run | rm: persistent boxes for compile-then-run.
import { createBox, openBox } from '../launch/box.js';
import { parseSize } from '../launch/options.js';
import { OptionsError } from '../errors.js';
import { checks, formatHelp, one, parseArgs, positionals, UsageError, wholeNumber, type OptionSpec } from './args.js';
import { runSpecs, runWith } from './run.js';

const createSpecs: OptionSpec[] = [
  { name: 'id', value: true, arg: 'N', help: 'the box number (default: the lowest free one)', check: checks.whole() },
  { name: 'size', value: true, arg: 'SIZE', help: 'most the box may hold (default 256m)', check: (v, f) => void parseSize(f, v) },
  { name: 'help', short: 'h', help: 'show this help' },
];

export const boxHelp = `Usage: brig box create [--id N] [--size SIZE]    prints the box's directory
       brig box run ID [OPTIONS] -- COMMAND [ARGS...]   runs in a fresh sandbox, the box at /box
       brig box rm ID

Boxes live in $BRIG_BOX_ROOT, else $XDG_DATA_HOME/brig/boxes, private to their
user. Each run is a fresh set of namespaces with the box mounted read-write at
/box (the working directory); limits apply per run. Every file is capped at the
box's size, and a run is refused while the box holds more than its size.

${formatHelp('brig box create', 'Create options:', createSpecs)}
brig box run takes the options of brig run.
`;

/** The box, or a line saying there is none (the library names the field: id). */
function open(id: number) {
  try {
    return openBox(id);
  } catch (e) {
    if (e instanceof OptionsError && e.field === 'id') throw new UsageError(e.message.replace(/^id: /, ''));
    throw e;
  }
}

function boxId(v: string | undefined): number {
  if (v === undefined) throw new UsageError('which box? (an ID from brig box create)');
  if (!/^\d+$/.test(v)) throw new UsageError(`box ID: expected the number brig box create printed, got ${JSON.stringify(v)}`);
  return wholeNumber('box ID', v);
}

export async function boxCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h') {
    process.stdout.write(boxHelp);
    return 0;
  }
  if (sub === 'create') {
    const p = parseArgs(rest, createSpecs);
    if (p.flags.has('help')) {
      process.stdout.write(boxHelp);
      return 0;
    }
    positionals(p, 'brig box create [--id N] [--size SIZE]', 0);
    const id = one(p, 'id');
    const size = one(p, 'size');
    const box = await createBox({ ...(id !== undefined ? { id: wholeNumber('id', id) } : {}), ...(size ? { size: parseSize('--size', size) } : {}) });
    process.stdout.write(`${box.id} ${box.path}\n`);
    return 0;
  }
  if (sub === 'run') {
    const [id, ...more] = rest;
    if (id === '--help') {
      process.stdout.write(boxHelp);
      return 0;
    }
    const box = open(boxId(id));
    const p = parseArgs(more, runSpecs, { interspersed: false });
    if (!p.rest.length) throw new UsageError(`no command given (brig box run ${id} [OPTIONS] -- COMMAND [ARG...])`);
    return runWith(p, `box run`, async (cmd, opts) => {
      const r = await box.run(cmd, opts);
      if (r.boxOverLimit) process.stderr.write(`brig box run: warning: box ${box.id} holds ${r.boxBytes} bytes, over its ${box.sizeBytes}: the next run will be refused\n`);
      return r;
    }, { command: p.rest });
  }
  if (sub === 'rm') {
    const p = parseArgs(rest, createSpecs.slice(-1));
    if (p.flags.has('help')) {
      process.stdout.write(boxHelp);
      return 0;
    }
    open(boxId(positionals(p, 'brig box rm ID', 1)[0])).destroy();
    return 0;
  }
  throw new UsageError(`unknown subcommand ${JSON.stringify(sub)} (create, run or rm)`);
}
