// --format as Docker reads it: `table`, `json`, or a Go text/template with the
// forms people use: `{{.Field}}`, `{{.A.B}}`, `{{json .}}`, `{{json .Field}}`,
// `{{index .Map "key"}}`, `{{upper .X}}`/`{{lower .X}}`, `{{.X | json}}`,
// and `\t`/`\n` escapes. Values print as Go prints them (`[a b]`, `map[k:v]`,
// `<no value>`), so scripts written for `docker --format` read the same text.
import { UsageError } from './args.js';

/** Go's %v of a decoded JSON value. */
export function goString(v: unknown): string {
  if (v === undefined) return '<no value>';
  if (v === null) return '<nil>';
  if (Array.isArray(v)) return `[${v.map(goString).join(' ')}]`;
  if (typeof v === 'object') return `map[${Object.keys(v as object).sort().map((k) => `${k}:${goString((v as Record<string, unknown>)[k])}`).join(' ')}]`;
  return String(v);
}

/** `.A.B` looked up in `data`: exact key first, then case-insensitively (Docker's fields are Capitalised; brig's JSON is not always). */
function lookup(data: unknown, path: string, template: string): unknown {
  if (path === '.') return data;
  let cur: unknown = data;
  for (const key of path.slice(1).split('.')) {
    if (!key) throw new UsageError(`--format: bad field ${JSON.stringify(path)} in ${JSON.stringify(template)}`);
    if (cur === null || typeof cur !== 'object') return undefined;
    const obj = cur as Record<string, unknown>;
    if (key in obj) cur = obj[key];
    else {
      const k = Object.keys(obj).find((x) => x.toLowerCase() === key.toLowerCase());
      cur = k === undefined ? undefined : obj[k];
    }
  }
  return cur;
}

type Fn = (args: unknown[]) => unknown;
const FUNCS: Record<string, Fn> = {
  json: (a) => JSON.stringify(a[0] ?? null),
  upper: (a) => goString(a[0]).toUpperCase(),
  lower: (a) => goString(a[0]).toLowerCase(),
  index: (a) => {
    let cur = a[0];
    for (const k of a.slice(1)) cur = cur && typeof cur === 'object' ? (cur as Record<string, unknown>)[String(k)] : undefined;
    return cur;
  },
  join: (a) => (Array.isArray(a[0]) ? a[0].map(goString).join(String(a[1] ?? '')) : goString(a[0])),
  len: (a) => (Array.isArray(a[0]) ? a[0].length : a[0] && typeof a[0] === 'object' ? Object.keys(a[0] as object).length : goString(a[0]).length),
};

function evalArg(tok: string, data: unknown, template: string): unknown {
  if (tok.startsWith('.')) return lookup(data, tok, template);
  if (/^"(?:[^"\\]|\\.)*"$/.test(tok)) return JSON.parse(tok);
  if (/^-?\d+$/.test(tok)) return Number(tok);
  throw new UsageError(`--format: cannot read ${JSON.stringify(tok)} in ${JSON.stringify(template)}`);
}

function evalPipeline(expr: string, data: unknown, template: string): unknown {
  let value: unknown;
  let first = true;
  for (const stage of expr.split('|').map((s) => s.trim())) {
    const toks = stage.match(/"(?:[^"\\]|\\.)*"|\S+/g) ?? [];
    if (!toks.length) throw new UsageError(`--format: empty action in ${JSON.stringify(template)}`);
    const head = toks[0]!;
    const args = toks.slice(1);
    if (FUNCS[head]) {
      const vals = args.map((a) => evalArg(a, data, template));
      if (!first) vals.push(value);
      value = FUNCS[head](vals);
    } else {
      if (!first || args.length) throw new UsageError(`--format: unknown function ${JSON.stringify(head)} in ${JSON.stringify(template)} (json, index, upper, lower, join, len)`);
      value = evalArg(head, data, template);
    }
    first = false;
  }
  return value;
}

/** Renders one value with a template; checks the template even when there is nothing to render. */
export function renderTemplate(template: string, data: unknown): string {
  const text = template.replace(/\\t/g, '\t').replace(/\\n/g, '\n');
  let out = '';
  let i = 0;
  while (i < text.length) {
    const open = text.indexOf('{{', i);
    if (open < 0) {
      out += text.slice(i);
      break;
    }
    out += text.slice(i, open);
    const close = text.indexOf('}}', open + 2);
    if (close < 0) throw new UsageError(`--format: unclosed {{ in ${JSON.stringify(template)}`);
    const expr = text.slice(open + 2, close).replace(/^-\s*/, '').replace(/\s*-$/, '').trim();
    const v = evalPipeline(expr, data, template);
    out += typeof v === 'string' ? v : goString(v);
    i = close + 2;
  }
  return out;
}

/**
 * Lines for a list: `table` (the default) as a padded table with a header,
 * `json` a JSON object per line, `table TEMPLATE` a table of the template's
 * columns, else the template per item.
 */
export function formatList<T extends Record<string, unknown>>(items: T[], format: string | undefined, columns: [header: string, key: keyof T & string][]): string {
  if (format === 'json') return items.map((x) => JSON.stringify(x) + '\n').join('');
  if (format === undefined || format === 'table' || format.startsWith('table ')) {
    const cols = format?.startsWith('table ') ? format.slice(6) : undefined;
    let rows: string[][];
    if (cols) {
      const cells = cols.replace(/\\t/g, '\t').split('\t');
      const header = cells.map((c) => (/\{\{\s*\.(\w+)\s*\}\}/.exec(c)?.[1] ?? c).replace(/([a-z])([A-Z])/g, '$1 $2').toUpperCase());
      rows = [header, ...items.map((x) => cells.map((c) => renderTemplate(c, x)))];
    } else rows = [columns.map(([h]) => h), ...items.map((x) => columns.map(([, k]) => goString(x[k] ?? '')))];
    const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
    return rows.map((r) => r.map((c, i) => c.padEnd(w[i])).join('   ').trimEnd() + '\n').join('');
  }
  renderTemplate(format, {});
  return items.map((x) => renderTemplate(format, x) + '\n').join('');
}

/** Docker's `--filter key=value` list, as a map of key to values. */
export function parseFilters(values: string[], allowed: string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const f of values) {
    const eq = f.indexOf('=');
    const key = eq < 0 ? f : f.slice(0, eq);
    if (eq < 0 || !allowed.includes(key)) throw new UsageError(`--filter: expected ${allowed.map((a) => `${a}=...`).join(' or ')}, got ${JSON.stringify(f)}`);
    out.set(key, [...(out.get(key) ?? []), f.slice(eq + 1)]);
  }
  return out;
}

/** Docker's reference filter: a glob over NAME[:TAG] (`busy*`, `*:1.35`). */
export function globMatch(pattern: string, text: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '.')}$`);
  return re.test(text);
}
