// brig profile list | show | check: the policy profiles, resolved and checked.
import { checkProfile } from '../profile/check.js';
import { listProfiles, profileSearchPath, resolveProfile } from '../profile/index.js';
import { formatHelp, parseArgs, UsageError, type OptionSpec } from './args.js';

const specs: OptionSpec[] = [{ name: 'help', short: 'h', help: 'show this help' }];

export const profileHelp = `Usage: brig profile list|show|check ...

  list                 the profiles known by name, and what each is for
  show NAME|FILE...    the profile with everything it extends merged in, as JSON
                       (itself a valid profile); the layers go to standard error
  check NAME|FILE...   validate: every wrong field by JSON pointer, then what
                       only resolving finds (mounts over /proc, a seccomp policy
                       that does not compile, mount sources missing here)

Names are looked up in: BRIG_PROFILE_PATH, ~/.config/brig/profiles, brig's own
profiles. Anything with a "/" or ending in .json is a path. Several profiles
are layered in order, as with brig run --profile A --profile B.

${formatHelp('brig profile list|show|check [NAME|FILE...]', 'Profiles: JSON policy files, layered with extends (see the README).', specs)}`;

function show(refs: string[]): number {
  const r = resolveProfile(refs.length === 1 ? refs[0] : refs);
  process.stderr.write(`brig profile show: layers, first to last: ${r.chain.join(' -> ')}\n`);
  process.stdout.write(JSON.stringify(r.policy, null, 2) + '\n');
  return 0;
}

function check(refs: string[]): number {
  let bad = 0;
  for (const ref of refs) {
    const c = checkProfile(ref);
    if (c.problems.length === 0) {
      process.stdout.write(`${ref}: ok (layers: ${c.resolved!.chain.join(' -> ')})\n`);
      continue;
    }
    bad++;
    process.stdout.write(`${c.source}: invalid\n`);
    for (const p of c.problems) process.stdout.write(`  ${p.pointer || '/'}: ${p.message}\n`);
  }
  return bad ? 1 : 0;
}

function list(): number {
  const found = listProfiles();
  const width = Math.max(8, ...found.map((f) => f.name.length)) + 2;
  for (const f of found) process.stdout.write(`${f.name.padEnd(width)}${f.error ? `INVALID: ${f.error.split('\n').join(' ')}` : (f.description ?? '').split(/[:.] /)[0]}\n${''.padEnd(width)}${f.path}\n`);
  if (!found.length) process.stdout.write(`no profiles in ${profileSearchPath().join(', ')}\n`);
  return 0;
}

export async function profileCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const p = parseArgs(rest, specs);
  if (sub === undefined || sub === '--help' || sub === '-h' || p.flags.has('help')) {
    process.stdout.write(profileHelp);
    return sub === undefined ? 2 : 0;
  }
  if (sub === 'list') return list();
  if (sub !== 'show' && sub !== 'check') throw new UsageError(`unknown subcommand ${JSON.stringify(sub)} (list, show or check)`);
  if (p.rest.length === 0) throw new UsageError(`${sub}: name a profile (brig profile list shows them) or a file`);
  return sub === 'show' ? show(p.rest) : check(p.rest);
}
