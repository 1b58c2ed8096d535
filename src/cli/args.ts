// One argument parser for every verb, with the Docker CLI's rules (pflag's):
// flags anywhere among the positionals (unless a verb runs a command, where
// the first positional ends them), `--` ends them, `--flag=value`, `-f value`,
// `-fvalue`, `-f=value`, combined short flags (`-it`), booleans as `--rm` or
// `--rm=false`. Verbs declare their options; the parser checks what it can
// (unknown flags with a suggestion, values with a `check`, flags accepted but
// not built yet) so errors come before anything starts, in the user's terms.
export class UsageError extends Error {
  override name = 'UsageError';
}

export interface OptionSpec {
  /** Long name without dashes. */
  name: string;
  /** One letter, as Docker uses it. */
  short?: string;
  /** Takes a value. */
  value?: boolean;
  /** May repeat; values collect into an array (else the last one wins, as in Docker). */
  repeat?: boolean;
  help: string;
  /** Placeholder shown in help. */
  arg?: string;
  /** Other long spellings (brig's older names); they set this option. */
  aliases?: string[];
  /**
   * The flag is Docker's and brig does not do it yet: parsing it fails with
   * "FLAG: not supported yet (WHY)", never silently. Remove the field when the
   * feature lands.
   */
  unsupported?: string;
  /** Checked while parsing; throws UsageError. `flag` is the flag as typed. */
  check?: (value: string, flag: string) => void;
  /** Left out of --help (old spellings kept for scripts). */
  hidden?: boolean;
}

export interface ParseOptions {
  /**
   * false: the first positional ends the options, as Docker's run and exec
   * (`brig run [OPTIONS] IMAGE [COMMAND [ARG...]]`: the command's own flags
   * are left alone). Default true: flags anywhere.
   */
  interspersed?: boolean;
}

export interface Parsed {
  opts: Map<string, string[]>;
  flags: Set<string>;
  /** Positionals, in order; everything after `--` is here verbatim. */
  rest: string[];
  /** A `--` came before any positional (brig run -- COMMAND). */
  dashDash: boolean;
  /** Each option as the user spelled it (`-m`, `--memory`, `--pids`): errors name the flag as typed. */
  spelled: Map<string, string>;
}

/** Levenshtein distance, for "did you mean". */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) for (let j = 1; j <= b.length; j++) d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length][b.length];
}

export function didYouMean(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const dist = distance(word, c);
    if (dist < bestD) [best, bestD] = [c, dist];
  }
  return best !== undefined && bestD < word.length && bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function unknownFlag(typed: string, specs: OptionSpec[]): UsageError {
  const longs = specs.filter((s) => !s.hidden).flatMap((s) => [s.name, ...(s.aliases ?? [])]);
  const name = typed.replace(/^-+/, '').split('=')[0];
  const guess = typed.startsWith('--') ? didYouMean(name, longs) : undefined;
  return new UsageError(`unknown flag: ${typed.split('=')[0]}${guess ? ` (did you mean --${guess}?)` : ''}`);
}

/** Parses argv by the specs; see the file's comment for the rules. */
export function parseArgs(argv: string[], specs: OptionSpec[], options: ParseOptions = {}): Parsed {
  const interspersed = options.interspersed ?? true;
  const byLong = new Map<string, OptionSpec>();
  for (const s of specs) for (const n of [s.name, ...(s.aliases ?? [])]) byLong.set(n, s);
  const byShort = new Map(specs.filter((s) => s.short).map((s) => [s.short!, s]));
  const out: Parsed = { opts: new Map(), flags: new Set(), rest: [], dashDash: false, spelled: new Map() };

  const set = (spec: OptionSpec, typed: string, value: string | undefined) => {
    if (spec.unsupported) throw new UsageError(`${typed}: not supported yet (${spec.unsupported})`);
    out.spelled.set(spec.name, typed);
    if (!spec.value) {
      if (value === undefined || value === 'true') out.flags.add(spec.name);
      else if (value === 'false') out.flags.delete(spec.name);
      else throw new UsageError(`${typed}: takes no value, or true|false; got ${JSON.stringify(value)}`);
      return;
    }
    spec.check?.(value!, typed);
    const list = spec.repeat ? (out.opts.get(spec.name) ?? []) : [];
    list.push(value!);
    out.opts.set(spec.name, list);
  };
  const needValue = (typed: string, spec: OptionSpec, i: number): string => {
    if (i >= argv.length) throw new UsageError(`${typed} needs a value (${spec.arg ?? 'VALUE'})`);
    return argv[i];
  };

  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      if (out.rest.length === 0) out.dashDash = true;
      out.rest.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith('-') || a === '-') {
      out.rest.push(a);
      if (!interspersed) {
        out.rest.push(...argv.slice(i + 1));
        break;
      }
      continue;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      const spec = byLong.get(name);
      if (!spec) throw unknownFlag(a, specs);
      const typed = `--${name}`;
      if (eq >= 0) set(spec, typed, a.slice(eq + 1));
      else if (spec.value) set(spec, typed, needValue(typed, spec, ++i));
      else set(spec, typed, undefined);
      continue;
    }
    // Short flags, combined as pflag allows: -it, -e FOO=1, -eFOO=1, -e=FOO=1.
    for (let k = 1; k < a.length; k++) {
      const letter = a[k];
      const spec = byShort.get(letter);
      const typed = `-${letter}`;
      if (!spec) throw new UsageError(`unknown shorthand flag: '${letter}' in ${a}`);
      if (!spec.value) {
        if (a[k + 1] === '=') {
          set(spec, typed, a.slice(k + 2));
          break;
        }
        set(spec, typed, undefined);
        continue;
      }
      const restOfWord = a.slice(k + 1);
      if (restOfWord) set(spec, typed, restOfWord.startsWith('=') ? restOfWord.slice(1) : restOfWord);
      else set(spec, typed, needValue(typed, spec, ++i));
      break;
    }
  }
  return out;
}

/** Kept for verbs written before flags could go anywhere: the same as parseArgs. */
export function parseInterleaved(argv: string[], specs: OptionSpec[]): Parsed {
  return parseArgs(argv, specs);
}

export function formatHelp(usage: string, summary: string, specs: OptionSpec[], footer = ''): string {
  const rows = specs
    .filter((s) => !s.hidden)
    .map((s) => {
      const names = (s.short ? `-${s.short}, ` : '    ') + `--${s.name}` + (s.value ? ` ${s.arg ?? 'VALUE'}` : '');
      const also = s.aliases?.length ? ` (also --${s.aliases.join(', --')})` : '';
      return [names, s.unsupported ? `not supported yet: ${s.help}` : s.help + also] as const;
    });
  const width = Math.max(...rows.map(([n]) => n.length)) + 2;
  const lines = rows.map(([n, h]) => `  ${n.padEnd(width)}${h}`);
  return `Usage: ${usage}\n\n${summary}\n\nOptions:\n${lines.join('\n')}\n${footer ? '\n' + footer + '\n' : ''}`;
}

/** The option's value (the last given). */
export function one(p: Parsed, name: string): string | undefined {
  const list = p.opts.get(name);
  return list?.[list.length - 1];
}

export function all(p: Parsed, name: string): string[] {
  return p.opts.get(name) ?? [];
}

/** The flag as the user typed it, for messages (`--pids` or `--pids-limit`). */
export function flagName(p: Parsed, name: string): string {
  return p.spelled.get(name) ?? `--${name}`;
}

/** The positionals a verb takes: `count` exact, or [min, max]; the error shows the usage. */
export function positionals(p: Parsed, usage: string, min: number, max = min): string[] {
  if (p.rest.length < min || p.rest.length > max) {
    const want = min === max ? `exactly ${min}` : max === Infinity ? `at least ${min}` : `${min} to ${max}`;
    throw new UsageError(`expects ${want} argument${max === 1 && min === 1 ? '' : 's'}, got ${p.rest.length} (usage: ${usage})`);
  }
  return p.rest;
}

function strip(option: string): string {
  return option.startsWith('-') ? option : `--${option}`;
}

/** A number of seconds, e.g. `2` or `0.5`. */
export function seconds(option: string, v: string, allowZero = false): number {
  const n = Number(v);
  if (!/^\d+(\.\d+)?$/.test(v.trim()) || !Number.isFinite(n) || n < 0 || (!allowZero && n === 0) || n * 1000 > 2 ** 31 - 1)
    throw new UsageError(`${strip(option)}: expected a ${allowZero ? 'non-negative' : 'positive'} number of seconds below 2147483, got ${JSON.stringify(v)}`);
  return n;
}

export function wholeNumber(option: string, v: string, min = 0): number {
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) throw new UsageError(`${strip(option)}: expected a whole number, got ${JSON.stringify(v)}`);
  const n = Number(v);
  if (n < min) throw new UsageError(`${strip(option)}: must be at least ${min}, got ${n}`);
  return n;
}

/** `check` helpers for specs. */
export const checks = {
  seconds: (allowZero = false) => (v: string, flag: string) => void seconds(flag, v, allowZero),
  whole: (min = 0) => (v: string, flag: string) => void wholeNumber(flag, v, min),
  oneOf: (...words: string[]) => (v: string, flag: string) => {
    if (!words.includes(v)) throw new UsageError(`${flag}: expected ${words.slice(0, -1).join(', ')}${words.length > 1 ? ' or ' : ''}${words[words.length - 1]}, got ${JSON.stringify(v)}`);
  },
};

/** --help, everywhere; -h too where Docker has no other meaning for it. */
export const helpSpec: OptionSpec = { name: 'help', short: 'h', help: 'show this help' };
export const helpLongOnly: OptionSpec = { name: 'help', help: 'show this help' };
