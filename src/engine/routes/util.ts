// What the routes share: Docker's query conventions.
import { lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { EngineError } from '../errors.js';

/** Docker's `filters` query: JSON {"key": ["v", ...]} (or the old {"key": {"v": true}}). */
export function filtersOf(raw: unknown): Record<string, string[]> {
  if (raw === undefined || raw === '') return {};
  let v: unknown;
  try {
    v = JSON.parse(String(raw));
  } catch {
    throw new EngineError(400, `filters: not JSON: ${String(raw).slice(0, 60)}`);
  }
  const out: Record<string, string[]> = {};
  if (!v || typeof v !== 'object') throw new EngineError(400, 'filters: expected a JSON object');
  for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
    if (Array.isArray(val)) out[k] = val.map(String);
    else if (val && typeof val === 'object') out[k] = Object.keys(val).filter((x) => (val as Record<string, unknown>)[x]);
    else throw new EngineError(400, `filters: ${k}: expected a list`);
  }
  return out;
}

/** Docker's booleans in a query: 1/true/True (and an empty value for a bare flag). */
export function bool(v: unknown, dflt = false): boolean {
  if (v === undefined) return dflt;
  const s = String(v).toLowerCase();
  if (s === '1' || s === 'true' || s === '') return true;
  if (s === '0' || s === 'false') return false;
  throw new EngineError(400, `expected a boolean (1, true, 0, false), got ${JSON.stringify(v)}`);
}

export function int(name: string, v: unknown): number | undefined {
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new EngineError(400, `${name}: expected an integer, got ${JSON.stringify(v)}`);
  return n;
}

/** Bytes under a directory (not following links); 0 if it is not there. */
export function dirBytes(dir: string): number {
  let total = 0;
  const walk = (d: string) => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const n of names) {
      try {
        const st = lstatSync(join(d, n));
        if (st.isDirectory()) walk(join(d, n));
        else total += st.size;
      } catch {
        // gone meanwhile
      }
    }
  };
  walk(dir);
  return total;
}
