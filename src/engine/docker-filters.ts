// Docker's `filters` query parameter, and the small query values every route reads.
import { EngineError } from './errors.js';

/**
 * A `filters` value: JSON of map[string][]string, or the older
 * map[string]map[string]bool that docker-py and early CLIs send. Filters
 * outside `allowed` are a 400 naming the filter, as Docker answers.
 */
export function parseDockerFilters(raw: unknown, allowed: readonly string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  if (raw === undefined || raw === '') return out;
  let v: unknown;
  try {
    v = JSON.parse(String(raw));
  } catch {
    throw new EngineError(400, `filters: invalid JSON: ${JSON.stringify(String(raw)).slice(0, 80)}`);
  }
  if (v === null) return out;
  if (typeof v !== 'object' || Array.isArray(v)) throw new EngineError(400, 'filters: expected a JSON object of filter name to values');
  for (const [k, vals] of Object.entries(v as Record<string, unknown>)) {
    if (!allowed.includes(k)) throw new EngineError(400, `invalid filter '${k}'`);
    let list: string[];
    if (Array.isArray(vals)) list = vals.map(String);
    else if (vals && typeof vals === 'object') list = Object.entries(vals as Record<string, unknown>).filter(([, on]) => on === true).map(([x]) => x);
    else list = [String(vals)];
    out.set(k, list);
  }
  return out;
}

/** Docker's booleans in a query: 1, true, True (anything else is false). */
export function queryFlag(v: unknown): boolean {
  const s = Array.isArray(v) ? v[v.length - 1] : v;
  return s === true || s === '1' || (typeof s === 'string' && s.toLowerCase() === 'true');
}

/** A query value that may be repeated (t=a&t=b); the list of them. */
export function queryList(v: unknown): string[] {
  if (v === undefined || v === null || v === '') return [];
  return (Array.isArray(v) ? v : [v]).map(String).filter((s) => s !== '');
}

/** The last value of a query parameter that should be given once. */
export function queryOne(v: unknown): string | undefined {
  const l = queryList(v);
  return l.length ? l[l.length - 1] : undefined;
}

/** A JSON map of strings in a query (buildargs, labels), checked. */
export function queryStringMap(name: string, v: unknown): Record<string, string> {
  const s = queryOne(v);
  if (s === undefined) return {};
  let m: unknown;
  try {
    m = JSON.parse(s);
  } catch {
    throw new EngineError(400, `${name}: invalid JSON`);
  }
  if (m === null) return {};
  if (typeof m !== 'object' || Array.isArray(m)) throw new EngineError(400, `${name}: expected a JSON map of strings`);
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(m as Record<string, unknown>)) {
    // Docker's buildargs may carry null (an ARG taken from the client's environment, unset there): skipped.
    if (val === null) continue;
    if (typeof val !== 'string') throw new EngineError(400, `${name}: ${k}: expected a string value`);
    out[k] = val;
  }
  return out;
}

/** Docker's label filter values: `key` or `key=value`, against a label map. */
export function labelsMatch(labels: Record<string, string> | undefined, wanted: string[] | undefined): boolean {
  if (!wanted?.length) return true;
  const l = labels ?? {};
  return wanted.every((w) => {
    const eq = w.indexOf('=');
    return eq < 0 ? w in l : l[w.slice(0, eq)] === w.slice(eq + 1);
  });
}
