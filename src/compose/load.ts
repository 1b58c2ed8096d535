// Loading a Compose project: which files (Docker's lookup, or each -f),
// the environment that feeds interpolation (.env or --env-file, then the
// process's own, which wins), each file parsed as YAML 1.2 with `<<` merge
// keys and anchors, interpolated value by value, and merged in order. Every
// value keeps where it came from (file and line) for the errors.
import { existsSync } from 'node:fs';
import { readFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import { BrigError } from '../errors.js';
import { interpolate, InterpolationError, readDotEnv } from './interpolate.js';

/** A Compose file's problem: `FILE:LINE: PATH: what`, one line. */
export class ComposeError extends BrigError {
  override name = 'ComposeError';
}

/** Where a value was written. */
export interface Origin {
  file: string;
  line: number;
}

/** Values by path (`services.web.ports[0]`), and where each came from. */
export class Positions {
  private map = new Map<string, Origin>();
  set(path: string, o: Origin): void {
    this.map.set(path, o);
  }
  /** The path's own line, else its nearest parent's. */
  of(path: string): Origin | undefined {
    for (let p = path; p; p = parentPath(p)) {
      const o = this.map.get(p);
      if (o) return o;
    }
    return undefined;
  }
  /** `compose.yaml:12: services.web.ports[0]: what` */
  error(path: string, what: string): ComposeError {
    const o = this.of(path);
    return new ComposeError(`${o ? `${o.file}:${o.line}: ` : ''}${path}: ${what}`);
  }
  where(path: string): string {
    const o = this.of(path);
    return o ? `${o.file}:${o.line}` : '';
  }
}

function parentPath(p: string): string {
  const i = Math.max(p.lastIndexOf('.'), p.lastIndexOf('['));
  return i <= 0 ? '' : p.slice(0, i);
}

export const DEFAULT_FILES = ['compose.yaml', 'compose.yml', 'docker-compose.yaml', 'docker-compose.yml'];

/** Docker's lookup: the first of the four names in the directory, else in its parents. */
export function findComposeFile(cwd: string): string {
  for (let d = resolve(cwd); ; d = dirname(d)) {
    for (const n of DEFAULT_FILES) if (existsSync(join(d, n))) return join(d, n);
    if (dirname(d) === d) break;
  }
  throw new ComposeError(`no configuration file provided: not found (looked for ${DEFAULT_FILES.join(', ')} in ${cwd} and its parents)`);
}

export interface LoadInput {
  /** -f files in order; none: Docker's lookup from cwd (COMPOSE_FILE too). */
  files?: string[];
  cwd?: string;
  /** --env-file (several allowed, in order); none: the project directory's .env if there. */
  envFiles?: string[];
  /** The caller's environment (process.env). */
  env?: Record<string, string | undefined>;
}

export interface Loaded {
  /** Absolute paths, in order. */
  files: string[];
  /** The first file's directory: relative paths are from here. */
  workingDir: string;
  /** What interpolation used (.env under the process's environment). */
  env: Record<string, string | undefined>;
  /** The merged, interpolated document as plain values. */
  raw: Record<string, unknown>;
  positions: Positions;
}

/** Reads, interpolates and merges the files. */
export function loadFiles(input: LoadInput): Loaded {
  const cwd = input.cwd ?? process.cwd();
  const hostEnv = input.env ?? process.env;
  let files = input.files?.length ? input.files : hostEnv.COMPOSE_FILE ? hostEnv.COMPOSE_FILE.split(hostEnv.COMPOSE_PATH_SEPARATOR ?? ':') : [findComposeFile(cwd)];
  files = files.map((f) => (f === '-' ? f : resolve(cwd, f)));
  const workingDir = files[0] === '-' ? cwd : dirname(files[0]);
  // .env, then the environment (which wins, as in Docker).
  let dotEnv: Record<string, string> = {};
  try {
    if (input.envFiles?.length) for (const f of input.envFiles) dotEnv = { ...dotEnv, ...readDotEnv(resolve(cwd, f), { ...hostEnv, ...dotEnv }) };
    else if (existsSync(join(workingDir, '.env'))) dotEnv = readDotEnv(join(workingDir, '.env'), hostEnv);
  } catch (e) {
    if (e instanceof InterpolationError) throw new ComposeError(e.message);
    throw e;
  }
  const env = { ...dotEnv, ...hostEnv };
  const positions = new Positions();
  let raw: Record<string, unknown> = {};
  for (const f of files) {
    const shown = relative(cwd, f) && !relative(cwd, f).startsWith('..') ? relative(cwd, f) : f;
    let text: string;
    try {
      text = readFileSync(f === '-' ? 0 : f, 'utf8');
    } catch (e) {
      throw new ComposeError(`${shown}: cannot read the file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    const doc = parseYaml(text, f === '-' ? 'stdin' : shown, env, positions);
    raw = mergeInto(raw, doc, '') as Record<string, unknown>;
  }
  return { files, workingDir, env, raw, positions };
}

/** One file: YAML 1.2, merge keys, anchors; every scalar interpolated; positions recorded. */
export function parseYaml(text: string, file: string, env: Record<string, string | undefined>, positions: Positions): Record<string, unknown> {
  const lc = new LineCounter();
  const doc = parseDocument(text, { merge: true, lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length) {
    const e = doc.errors[0];
    const line = lc.linePos(e.pos[0]).line;
    throw new ComposeError(`${file}:${line}: YAML: ${e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '')}`);
  }
  const lineOf = (n: Node | null | undefined) => (n?.range ? lc.linePos(n.range[0]).line : 0);
  const walk = (node: unknown, path: string): unknown => {
    if (node === null || node === undefined) return null;
    if (isAlias(node)) return walk(node.resolve(doc as Document), path);
    if (path) positions.set(path, { file, line: lineOf(node as Node) });
    if (isScalar(node)) {
      const v = node.value;
      if (typeof v !== 'string') return v;
      // Quoted or plain, a string is interpolated (Compose does not interpolate keys).
      try {
        return interpolate(v, env);
      } catch (e) {
        if (e instanceof InterpolationError) throw new ComposeError(`${file}:${lineOf(node as Node)}: ${path}: ${e.message}`);
        throw e;
      }
    }
    if (isSeq(node)) return node.items.map((it, i) => walk(it, `${path}[${i}]`));
    if (isMap(node)) {
      const out: Record<string, unknown> = {};
      const merged: Record<string, unknown>[] = [];
      for (const pair of node.items) {
        // With merge: true the parser gives `<<` as a symbol.
        const kv = isScalar(pair.key) ? pair.key.value : pair.key;
        const key = typeof kv === 'symbol' ? '<<' : String(kv);
        if (key === '<<' && (isAlias(pair.value) || isSeq(pair.value) || isMap(pair.value))) {
          // `<<: *base` or `<<: [*a, *b]`: the earlier source wins among them; the map's own keys win over all.
          const sources = isSeq(pair.value) ? pair.value.items : [pair.value];
          for (const s of sources) merged.push(walk(s, path) as Record<string, unknown>);
          continue;
        }
        const child = path ? `${path}.${key}` : key;
        out[key] = walk(pair.value, child);
        // A block mapping or list starts on the line after its key: errors point at the key.
        if (isScalar(pair.key) || isMap(pair.value) || isSeq(pair.value)) positions.set(child, { file, line: lineOf(pair.key as Node) || lineOf(pair.value as Node) });
      }
      if (!merged.length) return out;
      const base: Record<string, unknown> = {};
      for (const m of merged.reverse()) if (m && typeof m === 'object') Object.assign(base, m);
      return { ...base, ...out };
    }
    return (node as { toJSON?: () => unknown }).toJSON?.() ?? null;
  };
  const v = walk(doc.contents, '');
  if (v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new ComposeError(`${file}:1: the top level must be a mapping (services:, networks:, volumes:, ...)`);
  return v as Record<string, unknown>;
}

/** Keys whose value a later file replaces whole (Compose's merge rules). */
const REPLACED = new Set(['command', 'entrypoint', 'test', 'healthcheck.test']);
/** Sequences Compose turns into maps before merging (a later file's key wins). */
const AS_MAP = new Set(['environment', 'labels', 'extra_hosts', 'args']);

/** Merges b over a: maps key by key, sequences appended without duplicates, scalars replaced. */
function mergeInto(a: unknown, b: unknown, key: string): unknown {
  if (b === undefined) return a;
  if (a === undefined || a === null || b === null) return b;
  if (REPLACED.has(key)) return b;
  if (AS_MAP.has(key) && (Array.isArray(a) || Array.isArray(b))) return { ...listToMap(a), ...listToMap(b) };
  if (Array.isArray(a) && Array.isArray(b)) {
    const seen = new Set(a.map((x) => JSON.stringify(x)));
    return [...a, ...b.filter((x) => !seen.has(JSON.stringify(x)))];
  }
  if (typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const out: Record<string, unknown> = { ...(a as Record<string, unknown>) };
    for (const [k, v] of Object.entries(b as Record<string, unknown>)) out[k] = mergeInto(out[k], v, k);
    return out;
  }
  return b;
}

/** ["K=V", "K"] or {K: V} as a map (a bare K: null, filled from the host later). */
export function listToMap(v: unknown, sep = '='): Record<string, unknown> {
  if (v === null || v === undefined) return {};
  if (!Array.isArray(v)) return v as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const item of v) {
    const s = String(item);
    const i = s.indexOf(sep);
    if (i < 0) out[s] = null;
    else out[s.slice(0, i)] = s.slice(i + 1);
  }
  return out;
}

/** Compose's project name rule: lowercase letters, digits, - and _, starting with a letter or digit. */
export function normalizeProjectName(n: string): string {
  return n.toLowerCase().replace(/[^a-z0-9_-]/g, '');
}

export function projectNameFrom(o: { flag?: string; env: Record<string, string | undefined>; top?: unknown; workingDir: string }): string {
  const given = o.flag ?? o.env.COMPOSE_PROJECT_NAME ?? (typeof o.top === 'string' ? o.top : undefined);
  if (given !== undefined) {
    if (!/^[a-z0-9][a-z0-9_-]*$/.test(given)) throw new ComposeError(`project name ${JSON.stringify(given)}: must contain only lowercase letters, digits, dashes and underscores, and start with a letter or digit`);
    return given;
  }
  const n = normalizeProjectName(basename(o.workingDir)).replace(/^[-_]+/, '');
  if (!n) throw new ComposeError(`no project name: the directory ${o.workingDir} gives none; use -p NAME or a top-level name:`);
  return n;
}

void isAbsolute;
