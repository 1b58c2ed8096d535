// brig doctor [--json]
import { doctor } from '../doctor.js';
import { formatHelp, parseArgs, type OptionSpec } from './args.js';

const specs: OptionSpec[] = [
  { name: 'json', help: 'print the checks as JSON' },
  { name: 'help', short: 'h', help: 'show this help' },
];

export const doctorHelp = formatHelp('brig doctor [--json]', 'What this host gives a rootless user, and how to get what is missing.', specs);

export async function doctorCommand(argv: string[]): Promise<number> {
  const p = parseArgs(argv, specs);
  if (p.flags.has('help')) {
    process.stdout.write(doctorHelp);
    return 0;
  }
  const checks = await doctor();
  if (p.flags.has('json')) process.stdout.write(JSON.stringify({ uid: process.getuid!(), checks }, null, 2) + '\n');
  else {
    for (const c of checks) {
      process.stdout.write(`${c.state.padEnd(5)} ${c.name}: ${c.detail}\n`);
      if (c.fix && c.state !== 'ok') process.stdout.write(`      fix: ${c.fix}\n`);
    }
  }
  return checks.some((c) => c.state === 'fail') ? 1 : 0;
}
