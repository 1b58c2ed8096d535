// Runtimes: one directory per language (runtimes/<name>/runtime.json,
// checked against runtimes/schema.json). A runtime is offered only when its
// toolchain answers its version command on this host; the version served is
// the one detected, never one written in the manifest, so what a client is
// told is what runs.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';

export const SHIPPED_RUNTIME_DIR = fileURLToPath(new URL('../../../runtimes/', import.meta.url));

export interface RuntimeManifest {
  language: string;
  aliases?: string[];
  runtime?: string;
  version: { command: string[]; pattern: string };
  source: string;
  compile?: string[];
  run: string[];
  profiles: { compile?: string[]; run: string[] };
  judge0: { id: number; name: string };
  limits?: { minProcesses?: number; minMemoryBytes?: number; extraCpuMs?: number };
}

export interface Runtime extends RuntimeManifest {
  /** The directory it came from. */
  dir: string;
  /** Detected from the toolchain. */
  detectedVersion: string;
  aliases: string[];
}

export interface UnavailableRuntime {
  dir: string;
  language: string;
  reason: string;
}

export class RuntimeError extends Error {
  override name = 'RuntimeError';
}

let validator: ReturnType<Ajv['compile']> | undefined;
function validateManifest(value: unknown, where: string): RuntimeManifest {
  if (!validator) {
    const schema = JSON.parse(readFileSync(join(SHIPPED_RUNTIME_DIR, 'schema.json'), 'utf8'));
    delete schema.$schema;
    validator = new Ajv({ allErrors: false, strict: false }).compile(schema);
  }
  if (!validator(value)) {
    const e = validator.errors![0];
    const field = e.instancePath.replace(/^\//, '').replace(/\//g, '.') || (e.params as { missingProperty?: string }).missingProperty || '(manifest)';
    throw new RuntimeError(`${where}: ${field}: ${e.message}${e.params && 'additionalProperty' in e.params ? ` (${(e.params as { additionalProperty: string }).additionalProperty})` : ''}`);
  }
  return value as RuntimeManifest;
}

/** The toolchain's version, or why there is none. */
function detectVersion(m: RuntimeManifest): { version: string } | { reason: string } {
  let out: string;
  try {
    // The host's own toolchain, trusted: asked for its version, nothing else.
    out = execFileSync(m.version.command[0], m.version.command.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10000 });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string; stdout?: string; status?: number };
    // EACCES: a directory on PATH this user may not search, and the command in none it may.
    if (err.code === 'ENOENT' || err.code === 'EACCES') return { reason: `${m.version.command[0]} not found on PATH (${err.code})` };
    // Some toolchains (javac -version before 9, bash) print to stderr or exit non-zero.
    out = `${err.stdout ?? ''}${err.stderr ?? ''}`;
    if (!out) return { reason: `${m.version.command.join(' ')} failed: ${err.code ?? `exit ${err.status}`}` };
  }
  const match = new RegExp(m.version.pattern, 'm').exec(out);
  if (!match?.[1]) return { reason: `${m.version.command.join(' ')} printed no version matching /${m.version.pattern}/` };
  return { version: match[1] };
}

export interface RuntimeSet {
  available: Runtime[];
  unavailable: UnavailableRuntime[];
}

/**
 * Every runtime under the directories, later directories overriding earlier
 * ones by language (a user's own replaces the shipped one). Throws
 * RuntimeError naming the file for a manifest that is not valid.
 */
export function loadRuntimes(dirs: string[] = [SHIPPED_RUNTIME_DIR]): RuntimeSet {
  const byLanguage = new Map<string, { dir: string; m: RuntimeManifest }>();
  for (const root of dirs) {
    let names: string[];
    try {
      names = readdirSync(root).sort();
    } catch (e) {
      throw new RuntimeError(`runtimes directory ${root}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
    for (const name of names) {
      const file = join(root, name, 'runtime.json');
      if (!existsSync(file)) continue;
      let value: unknown;
      try {
        value = JSON.parse(readFileSync(file, 'utf8'));
      } catch (e) {
        throw new RuntimeError(`${file}: ${(e as Error).message}`);
      }
      const m = validateManifest(value, file);
      byLanguage.set(m.language, { dir: join(root, name), m });
    }
  }
  const out: RuntimeSet = { available: [], unavailable: [] };
  const ids = new Map<number, string>();
  for (const { dir, m } of byLanguage.values()) {
    const v = detectVersion(m);
    if ('reason' in v) {
      out.unavailable.push({ dir, language: m.language, reason: v.reason });
      continue;
    }
    const clash = ids.get(m.judge0.id);
    if (clash) throw new RuntimeError(`${join(dir, 'runtime.json')}: judge0.id: ${m.judge0.id} is ${clash}'s already`);
    ids.set(m.judge0.id, m.language);
    out.available.push({ ...m, aliases: m.aliases ?? [], dir, detectedVersion: v.version });
  }
  out.available.sort((a, b) => a.language.localeCompare(b.language));
  return out;
}

function parts(v: string): number[] {
  return v.split('.').map((x) => Number(x));
}

function compare(a: number[], b: number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d) return d;
  }
  return 0;
}

/**
 * Piston's version selector, the subset its clients send: `*` or `x`, an
 * exact or partial version (`3`, `3.11`, `3.11.2`), `^v`, `~v`, `>=v`, `>v`,
 * `<=v`, `<v`, `=v`.
 */
export function versionMatches(selector: string, version: string): boolean {
  const s = selector.trim();
  if (s === '*' || s === 'x' || s === '' || s === 'latest') return true;
  const m = /^(\^|~|>=|<=|>|<|=)?v?(\d+(?:\.\d+){0,2})(?:\.[xX*])*$/.exec(s);
  if (!m) return false;
  const want = parts(m[2]);
  const have = parts(version);
  switch (m[1]) {
    case '^':
      return have[0] === want[0] && compare(have, want) >= 0;
    case '~':
      return have[0] === want[0] && (want.length < 2 || have[1] === want[1]) && compare(have, want) >= 0;
    case '>=':
      return compare(have, want) >= 0;
    case '>':
      return compare(have, want) > 0;
    case '<=':
      return compare(have, want) <= 0;
    case '<':
      return compare(have, want) < 0;
    default:
      return want.every((n, i) => have[i] === n);
  }
}

/** Piston's lookup: by language or alias, the version by selector. */
export function findRuntime(runtimes: Runtime[], language: string, selector: string): Runtime | undefined {
  const l = language.toLowerCase();
  return runtimes.find((r) => (r.language === l || r.aliases.includes(l)) && versionMatches(selector, r.detectedVersion));
}

export function judge0Name(r: Runtime): string {
  return r.judge0.name.replace('{version}', r.detectedVersion);
}
