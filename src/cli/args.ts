// A small argument parser shared by the verbs: options are declared with
// their value kind; errors name the option.
export class UsageError extends Error {
  override name = 'UsageError';
}

export interface OptionSpec {
  /** Long name without dashes. */
  name: string;
  short?: string;
  /** Takes a value. */
  value?: boolean;
  /** May repeat; values collect into an array. */
  repeat?: boolean;
  help: string;
  /** Placeholder shown in help. */
  arg?: string;
}

export interface Parsed {
  opts: Map<string, string[]>;
  flags: Set<string>;
  rest: string[];
}

/**
 * Parses options up to `--` or the first operand; everything after that is
 * the command and its arguments, never interpreted.
 */
export function parseArgs(argv: string[], specs: OptionSpec[]): Parsed {
  const byLong = new Map(specs.map((s) => [s.name, s]));
  const byShort = new Map(specs.filter((s) => s.short).map((s) => [s.short!, s]));
  const out: Parsed = { opts: new Map(), flags: new Set(), rest: [] };
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      i++;
      break;
    }
    if (!a.startsWith('-') || a === '-') break;
    let spec: OptionSpec | undefined;
    let inline: string | undefined;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      if (eq >= 0) inline = a.slice(eq + 1);
      spec = byLong.get(name);
    } else {
      spec = byShort.get(a.slice(1, 2));
      if (a.length > 2) inline = a.slice(2);
    }
    if (!spec) throw new UsageError(`unknown option ${a}`);
    const label = `--${spec.name}`;
    if (!spec.value) {
      if (inline !== undefined) throw new UsageError(`${label} takes no value`);
      out.flags.add(spec.name);
      continue;
    }
    let v = inline;
    if (v === undefined) {
      if (i + 1 >= argv.length) throw new UsageError(`${label} needs a value (${spec.arg ?? 'VALUE'})`);
      v = argv[++i];
    }
    const list = out.opts.get(spec.name) ?? [];
    if (list.length && !spec.repeat) throw new UsageError(`${label} given more than once`);
    list.push(v);
    out.opts.set(spec.name, list);
  }
  out.rest = argv.slice(i);
  return out;
}

/**
 * As parseArgs, but options may also come after the operands, for verbs
 * that run no command whose arguments must be left alone (import-rootfs,
 * build). `--` still ends the options.
 */
export function parseInterleaved(argv: string[], specs: OptionSpec[]): Parsed {
  const operands: string[] = [];
  const options: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      operands.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith('-') || a === '-') {
      operands.push(a);
      continue;
    }
    options.push(a);
    const spec = specs.find((s) => `--${s.name}` === a || (s.short && `-${s.short}` === a));
    if (spec?.value && i + 1 < argv.length) options.push(argv[++i]);
  }
  return parseArgs([...options, '--', ...operands], specs);
}

export function formatHelp(usage: string, summary: string, specs: OptionSpec[], footer = ''): string {
  const rows = specs.map((s) => {
    const names = (s.short ? `-${s.short}, ` : '    ') + `--${s.name}` + (s.value ? ` ${s.arg ?? 'VALUE'}` : '');
    return [names, s.help] as const;
  });
  const width = Math.max(...rows.map(([n]) => n.length)) + 2;
  const lines = rows.map(([n, h]) => `  ${n.padEnd(width)}${h}`);
  return `Usage: ${usage}\n\n${summary}\n\nOptions:\n${lines.join('\n')}\n${footer ? '\n' + footer + '\n' : ''}`;
}

export function one(p: Parsed, name: string): string | undefined {
  return p.opts.get(name)?.[0];
}

export function all(p: Parsed, name: string): string[] {
  return p.opts.get(name) ?? [];
}

/** A number of seconds, e.g. `2` or `0.5`. */
export function seconds(option: string, v: string): number {
  const n = Number(v);
  if (!/^\d+(\.\d+)?$/.test(v.trim()) || !Number.isFinite(n) || n <= 0) throw new UsageError(`--${option}: expected a positive number of seconds, got ${JSON.stringify(v)}`);
  return n;
}

export function wholeNumber(option: string, v: string): number {
  if (!/^\d+$/.test(v)) throw new UsageError(`--${option}: expected a whole number, got ${JSON.stringify(v)}`);
  return Number(v);
}
