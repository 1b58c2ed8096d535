// Compose's variable interpolation (compose-spec 12-interpolation.md):
// $V, ${V}, ${V:-default}, ${V-default}, ${V:?error}, ${V?error},
// ${V:+replacement}, ${V+replacement}, and $$ for a literal $. Defaults may
// themselves hold variables (nested once, as Compose allows).
import { readFileSync } from 'node:fs';

export class InterpolationError extends Error {}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*/;

/** The text with its variables replaced from env; throws InterpolationError with Compose's wording. */
export function interpolate(text: string, env: Record<string, string | undefined>): string {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c !== '$') {
      out += c;
      i++;
      continue;
    }
    const next = text[i + 1];
    if (next === '$') {
      out += '$';
      i += 2;
      continue;
    }
    if (next === '{') {
      // Find the matching brace (defaults may nest ${...}).
      let depth = 1;
      let j = i + 2;
      for (; j < text.length && depth; j++) {
        if (text[j] === '{') depth++;
        else if (text[j] === '}') depth--;
      }
      if (depth) throw new InterpolationError(`invalid interpolation format in ${JSON.stringify(text)}: no closing }`);
      out += substitute(text.slice(i + 2, j - 1), env, text);
      i = j;
      continue;
    }
    const m = NAME.exec(text.slice(i + 1));
    if (m) {
      out += env[m[0]] ?? '';
      i += 1 + m[0].length;
      continue;
    }
    // A lone $ (before a space, a digit, the end): Compose refuses it.
    throw new InterpolationError(`invalid interpolation format in ${JSON.stringify(text)}: a $ not followed by a name or {; write $$ for a literal $`);
  }
  return out;
}

function substitute(expr: string, env: Record<string, string | undefined>, whole: string): string {
  const m = NAME.exec(expr);
  if (!m) throw new InterpolationError(`invalid interpolation format in ${JSON.stringify(whole)}: \${${expr}} does not start with a variable name`);
  const name = m[0];
  const rest = expr.slice(name.length);
  const v = env[name];
  if (rest === '') return v ?? '';
  const op = /^(:?[-?+])/.exec(rest)?.[1];
  if (!op) throw new InterpolationError(`invalid interpolation format in ${JSON.stringify(whole)}: unknown operator in \${${expr}}`);
  const arg = () => interpolate(rest.slice(op.length), env);
  const unsetOrEmpty = v === undefined || v === '';
  switch (op) {
    case ':-':
      return unsetOrEmpty ? arg() : v;
    case '-':
      return v === undefined ? arg() : v;
    case ':?':
      if (unsetOrEmpty) throw new InterpolationError(`required variable ${name} is missing a value: ${arg() || `${name} is unset or empty`}`);
      return v;
    case '?':
      if (v === undefined) throw new InterpolationError(`required variable ${name} is missing a value: ${arg() || `${name} is unset`}`);
      return v;
    case ':+':
      return unsetOrEmpty ? '' : arg();
    default: // '+'
      return v === undefined ? '' : arg();
  }
}

/**
 * A .env file as Compose reads it: KEY=VALUE lines, # comments, `export `
 * prefixes, single quotes literal, double quotes with \n escapes; unquoted
 * values end at " #". Values may refer to earlier ones and to env.
 */
export function parseDotEnv(text: string, file: string, env: Record<string, string | undefined> = {}): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, n) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const body = line.startsWith('export ') ? line.slice(7).trim() : line;
    const eq = body.indexOf('=');
    const key = (eq < 0 ? body : body.slice(0, eq)).trim();
    if (!/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(key)) throw new InterpolationError(`${file}:${n + 1}: invalid variable name ${JSON.stringify(key)}`);
    if (eq < 0) {
      // A bare name takes the caller's value, if it has one.
      const host = env[key];
      if (host !== undefined) out[key] = host;
      return;
    }
    let v = body.slice(eq + 1).trim();
    if (v.startsWith("'")) {
      const end = v.indexOf("'", 1);
      if (end < 0) throw new InterpolationError(`${file}:${n + 1}: ${key}: no closing '`);
      v = v.slice(1, end);
    } else if (v.startsWith('"')) {
      const end = v.slice(1).search(/(?<!\\)"/);
      if (end < 0) throw new InterpolationError(`${file}:${n + 1}: ${key}: no closing "`);
      v = v
        .slice(1, end + 1)
        .replace(/\\n/g, '\n')
        .replace(/\\t/g, '\t')
        .replace(/\\"/g, '"')
        .replace(/\\\\/g, '\\');
      v = expand(v, file, n, { ...env, ...out });
    } else {
      const hash = v.search(/\s#/);
      if (hash >= 0) v = v.slice(0, hash).trim();
      v = expand(v, file, n, { ...env, ...out });
    }
    out[key] = v;
  });
  return out;
}

function expand(v: string, file: string, n: number, env: Record<string, string | undefined>): string {
  try {
    return interpolate(v, env);
  } catch (e) {
    throw new InterpolationError(`${file}:${n + 1}: ${(e as Error).message}`);
  }
}

export function readDotEnv(path: string, env: Record<string, string | undefined> = {}): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new InterpolationError(`${path}: cannot read the env file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return parseDotEnv(text, path, env);
}
