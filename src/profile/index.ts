// Policy profiles: JSON files (profiles/schema.json) that say everything
// about a sandbox that is policy rather than per-run input, layered with
// `extends`. Loading validates with ajv (compiled ahead of time into
// validate.generated.ts) and reports every wrong field by JSON pointer with a
// sentence saying what is expected; resolving linearises `extends` and merges
// the layers by the rules below; applyProfile() puts per-run options on top.
//
// Merge rules, applied from the first layer to the last (per-run options are
// the last layer of all):
//   - scalars (and whole objects such as an inline seccomp policy): the later
//     layer's value replaces the earlier one;
//   - maps (env, rlimits): merged key by key, the later layer winning a key;
//   - lists (mounts, volumes, tmpfs): the later layer's items are appended; an item
//     with the target of an earlier one takes that one's place;
//   - a layer that names a list or map in its `replace` drops what it
//     inherited for that field;
//   - description is the topmost profile's own.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { errnoName, errnoOf, ProfileError, shown, type ProfileProblem } from '../errors.js';
import type { Profile } from './types.js';
import { createRequire } from 'node:module';

export type { Profile, BindMount, TmpfsMount, Rlimit, RlimitAmount, Size, ProfileRef } from './types.js';

/** What profiles say: a Profile without the fields about layering itself. */
export type SandboxPolicy = Omit<Profile, '$schema' | 'extends' | 'replace'>;

/** A profile by name or path, a profile object, or a list of them applied in order. */
export type ProfileOption = string | Profile | (string | Profile)[];

/** brig's own profiles, shipped in the package. */
// import.meta.dirname where Node has it (20.11): no URL parsed at every start.
const HERE = import.meta.dirname ?? dirname(fileURLToPath(import.meta.url));
export const SHIPPED_PROFILE_DIR = join(HERE, '../../../profiles/');
export const SCHEMA_PATH = join(SHIPPED_PROFILE_DIR, 'schema.json');

const LIST_FIELDS = new Set(['mounts', 'volumes', 'tmpfs']);
const MAP_FIELDS = new Set(['env', 'rlimits']);
const LAYERING_FIELDS = new Set(['$schema', 'extends', 'replace']);
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** Directories searched for a profile by name, first match wins. */
export function profileSearchPath(): string[] {
  const dirs = (process.env.BRIG_PROFILE_PATH ?? '').split(':').filter((d) => d && isAbsolute(d));
  const config = process.env.XDG_CONFIG_HOME && isAbsolute(process.env.XDG_CONFIG_HOME) ? process.env.XDG_CONFIG_HOME : join(homedir(), '.config');
  dirs.push(join(config, 'brig', 'profiles'), SHIPPED_PROFILE_DIR);
  return dirs;
}

// ---------------------------------------------------------------------------
// Validation and its messages

interface AjvError {
  instancePath: string;
  keyword: string;
  params: Record<string, unknown>;
  message?: string;
}

let schemaJson: Record<string, unknown> | undefined;
function schema(): Record<string, unknown> {
  // Read only when there is an error to explain.
  return (schemaJson ??= JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')) as Record<string, unknown>);
}

type SchemaNode = Record<string, unknown>;

function deref(s: SchemaNode | undefined): SchemaNode | undefined {
  let n = s;
  for (let i = 0; n && typeof n.$ref === 'string' && i < 8; i++) {
    const name = /^#\/\$defs\/(\w+)$/.exec(n.$ref as string)?.[1];
    n = name ? ((schema().$defs as Record<string, SchemaNode>)[name] ?? undefined) : undefined;
  }
  return n;
}

/** The schema nodes that describe the value at `pointer`, outermost first ($refs followed). */
function schemasAt(pointer: string): SchemaNode[] {
  let nodes: SchemaNode[] = [schema()];
  for (const raw of pointer.split('/').slice(1)) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    const next: SchemaNode[] = [];
    const visit = (s: SchemaNode | undefined) => {
      if (!s) return;
      for (const alt of [s, deref(s)]) {
        if (!alt) continue;
        for (const branch of ((alt.anyOf ?? alt.oneOf) as SchemaNode[] | undefined) ?? []) visit(branch);
        const props = alt.properties as Record<string, SchemaNode> | undefined;
        if (props?.[part]) next.push(props[part]);
        else if (alt.additionalProperties && typeof alt.additionalProperties === 'object') next.push(alt.additionalProperties as SchemaNode);
        const prefix = alt.prefixItems as SchemaNode[] | undefined;
        if (/^\d+$/.test(part) && prefix?.[Number(part)]) next.push(prefix[Number(part)]);
        else if (/^\d+$/.test(part) && alt.items && typeof alt.items === 'object') next.push(alt.items as SchemaNode);
      }
    };
    for (const n of nodes) visit(n);
    nodes = next;
  }
  return nodes.flatMap((n) => [n, deref(n)].filter((x): x is SchemaNode => !!x));
}

function expectedAt(pointer: string): string | undefined {
  for (const n of schemasAt(pointer)) if (typeof n.expected === 'string') return n.expected;
  return undefined;
}

function valueAt(root: unknown, pointer: string): unknown {
  let v = root;
  for (const raw of pointer.split('/').slice(1)) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[raw.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  return v;
}


function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length][b.length];
}

function unknownField(pointer: string, name: string): string {
  const known = [...new Set(schemasAt(pointer).flatMap((n) => Object.keys((n.properties as object | undefined) ?? {})))];
  const near = known.filter((k) => editDistance(k.toLowerCase(), name.toLowerCase()) <= Math.max(1, Math.floor(name.length / 3)));
  return near.length ? `unknown field; did you mean ${near.map((k) => JSON.stringify(k)).join(' or ')}?` : `unknown field; expected one of ${known.join(', ')}`;
}

/** What a schema keyword wanted, for fields whose schema has no `expected` sentence. */
function fallbackExpectation(e: AjvError): string {
  const p = e.params;
  switch (e.keyword) {
    case 'type': {
      const t = String(p.type);
      return t === 'integer' ? 'a whole number' : t === 'array' ? 'a list' : t === 'object' ? 'an object' : `a ${t}`;
    }
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return `a number ${String(p.comparison)} ${String(p.limit)}`;
    case 'minLength':
      return 'a non-empty string';
    case 'const':
      return JSON.stringify(p.allowedValue);
    case 'pattern':
      return `a string of the form ${String(p.pattern)}`;
    case 'minItems':
    case 'maxItems':
      return `a list of ${e.keyword === 'minItems' ? 'at least' : 'at most'} ${String(p.limit)} items`;
    default:
      return `a value that ${e.message ?? 'fits the schema'}`;
  }
}

const escapePointer = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');

/** Every problem the schema finds in `value`, one per field, in document order; [] when valid. */
/**
 * A copy of `v` made of plain objects and arrays. Callers may hand in
 * objects without a prototype (or with a "__proto__" key), which the
 * compiled validator's equality checks cannot compare; cycles throw.
 */
function plainData(v: unknown, seen: Set<object>): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (seen.has(v)) throw new Error('cycle');
  seen.add(v);
  let out: unknown;
  if (Array.isArray(v)) out = v.map((x) => plainData(x, seen));
  else {
    const o: Record<string, unknown> = {};
    for (const k of Object.keys(v)) Object.defineProperty(o, k, { value: plainData((v as Record<string, unknown>)[k], seen), enumerable: true, writable: true, configurable: true });
    out = o;
  }
  seen.delete(v);
  return out;
}

/** The generated ajv validator, loaded the first time a profile is checked (it is most of this module's load time). */
let validator: typeof import('./validate.generated.js').validate | undefined;
function validate(value: unknown): boolean {
  validator ??= (createRequire(import.meta.url)('./validate.generated.js') as typeof import('./validate.generated.js')).validate;
  return validator(value) as boolean;
}

export function schemaProblems(input: unknown): ProfileProblem[] {
  let value: unknown;
  try {
    value = plainData(input, new Set());
  } catch {
    return [{ pointer: '', message: 'expected JSON data, got an object that contains itself' }];
  }
  if (validate(value)) return [];
  const errors = (validator as unknown as { errors: AjvError[] }).errors;
  const fieldOf = (e: AjvError) => {
    if (e.keyword === 'additionalProperties') return `${e.instancePath}/${escapePointer(String(e.params.additionalProperty))}`;
    if (e.keyword === 'required') return `${e.instancePath}/${escapePointer(String(e.params.missingProperty))}`;
    if (e.params.propertyName !== undefined) return `${e.instancePath}/${escapePointer(String(e.params.propertyName))}`;
    return e.instancePath;
  };
  // A value that matches none of a field's forms gets one sentence for the
  // field, not one per form tried (and none for its parts) -- unless it is a
  // list or object with errors inside: then those say more, and the
  // complaints of the forms it is not (a string, a number) are left out.
  const pointers = errors.map(fieldOf);
  const within = (p: string, q: string) => p === q || p.startsWith(q + '/');
  const alternatives = new Set(errors.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf').map(fieldOf));
  const container = (p: string) => {
    const v = valueAt(value, p);
    return v !== null && typeof v === 'object';
  };
  const collapsed = [...alternatives].filter((a) => !(container(a) && pointers.some((p) => p.startsWith(a + '/'))));
  const opened = [...alternatives].filter((a) => !collapsed.includes(a));
  const patternOfName = new Set(errors.filter((e) => e.keyword === 'propertyNames').map((e) => e.instancePath));
  const problems = new Map<string, string>();
  for (const [i, e] of errors.entries()) {
    const pointer = pointers[i];
    if (opened.includes(pointer) && e.params.propertyName === undefined) continue;
    if (e.keyword === 'pattern' && patternOfName.has(e.instancePath) && e.params.propertyName === undefined && pointer === e.instancePath) continue;
    const outer = collapsed.filter((a) => within(pointer, a)).sort((a, b) => a.length - b.length)[0];
    const at = outer ?? pointer;
    if (problems.has(at)) continue;
    const got = shown(valueAt(value, at));
    let message: string;
    if (outer !== undefined) message = `expected ${expectedAt(at) ?? 'another kind of value'}, got ${got}`;
    else if (e.keyword === 'additionalProperties') message = unknownField(e.instancePath, String(e.params.additionalProperty));
    else if (e.keyword === 'required') message = 'is required';
    else if (e.params.propertyName !== undefined) message = 'is not a valid name here (it must be non-empty, without "=" or NUL bytes)';
    else if (e.keyword === 'enum') message = `expected one of ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}, got ${got}`;
    else if (e.keyword === 'uniqueItems') message = `must not list the same item twice (items ${e.params.j} and ${e.params.i})`;
    else message = `expected ${expectedAt(at) ?? fallbackExpectation(e)}, got ${got}`;
    problems.set(at, message);
  }
  const keys = value && typeof value === 'object' ? Object.keys(value) : [];
  const rank = (p: string) => keys.indexOf(p.split('/')[1]?.replace(/~1/g, '/').replace(/~0/g, '~') ?? '');
  return [...problems].map(([pointer, message]) => ({ pointer, message })).sort((a, b) => rank(a.pointer) - rank(b.pointer));
}

/** Throws ProfileError unless `value` is a valid profile. */
export function validateProfile(value: unknown, source = 'profile'): Profile {
  const problems = schemaProblems(value);
  if (problems.length) throw new ProfileError(source, problems);
  return value as Profile;
}

function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

/**
 * A profile from code, checked against the same schema as the JSON files
 * (its type is generated from it): an invalid one throws ProfileError here,
 * not at the first run. The result is frozen and can be passed as
 * `profile`, alone or in a list.
 */
export function defineProfile<const P extends Profile>(profile: P): P {
  validateProfile(profile, 'defineProfile()');
  return deepFreeze(profile);
}

// ---------------------------------------------------------------------------
// Loading and resolving

interface Layer {
  /** The file, or a label for a profile object. */
  source: string;
  /** Where relative paths in the profile are resolved. */
  dir: string;
  profile: Profile;
}

const RECHECK_MS = 1000;
/** Loaded files and name lookups, dropped together when any of the files seen has changed. */
let fileCache = new Map<string, { layer: Layer; stamp: string }>();
let nameCache = new Map<string, string>();
let resolvedCache = new Map<string, ResolvedProfile>();
const objectCache = new WeakMap<object, ResolvedProfile>();
let checkedAt = 0;

function stampOf(path: string): string {
  try {
    const st = statSync(path);
    return `${st.ino}:${st.size}:${st.mtimeMs}`;
  } catch {
    return 'missing';
  }
}

/** At most once a second: if any profile file we read or any name we looked up changed, forget everything. */
function revalidate(): void {
  const now = Date.now();
  if (now - checkedAt < RECHECK_MS) return;
  checkedAt = now;
  let changed = false;
  for (const [path, e] of fileCache) if (stampOf(path) !== e.stamp) changed = true;
  for (const [name, path] of nameCache) if (findByName(name) !== path) changed = true;
  if (changed) {
    fileCache = new Map();
    nameCache = new Map();
    resolvedCache = new Map();
  }
}

function findByName(name: string): string | undefined {
  for (const dir of profileSearchPath()) {
    const p = join(dir, `${name}.json`);
    if (stampOf(p) !== 'missing') return p;
  }
  return undefined;
}

const isPathRef = (ref: string) => ref.includes('/') || ref.endsWith('.json');

function problem(source: string, message: string, pointer = ''): ProfileError {
  return new ProfileError(source, [{ pointer, message }]);
}

function locate(ref: string, dir: string): string {
  if (isPathRef(ref)) return resolve(dir, ref);
  if (!NAME.test(ref)) throw problem(ref, 'a profile name is letters, digits, ".", "_" and "-" (a path needs a "/" or ".json")');
  let path = nameCache.get(ref);
  if (path === undefined) {
    path = findByName(ref);
    if (path === undefined) throw problem(ref, `no profile of that name in ${profileSearchPath().join(', ')} (brig profile list shows the known ones)`);
    nameCache.set(ref, path);
  }
  return path;
}

/** JSON.parse's complaint, with a line and column instead of an offset. */
function jsonError(text: string, e: Error): string {
  const m = /position (\d+)/.exec(e.message);
  if (!m) return `not valid JSON: ${e.message}`;
  const before = text.slice(0, Number(m[1]));
  const line = before.split('\n').length;
  const col = before.length - before.lastIndexOf('\n');
  return `not valid JSON at line ${line}, column ${col}: ${e.message.replace(/ in JSON at position \d+.*$/, '').replace(/\s*\(line \d+ column \d+\)$/, '')}`;
}

let validTexts: Set<string> | undefined;
/**
 * The text is a shipped profile's, checked at build time (scripts/gen-prebuilt.mjs):
 * no need to load the validator for it. Compared in full (the shipped
 * profiles are small), not by a hash, which would load node:crypto.
 */
function knownValid(text: string): boolean {
  if (validTexts === undefined) {
    try {
      validTexts = new Set(JSON.parse(readFileSync(join(HERE, 'valid.json'), 'utf8')) as string[]);
    } catch {
      validTexts = new Set();
    }
  }
  return validTexts.has(text);
}

function loadFile(path: string): Layer {
  const cached = fileCache.get(path);
  if (cached) return cached.layer;
  const stamp = stampOf(path);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw problem(path, `cannot read it: ${errnoName(errnoOf(e))}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw problem(path, jsonError(text, e as Error));
  }
  const profile = knownValid(text) ? (value as Profile) : validateProfile(value, path);
  const dir = dirname(path);
  // A seccomp file named in a profile is relative to the profile.
  if (typeof profile.seccomp === 'string' && !['default', 'judge', 'none', 'learn'].includes(profile.seccomp) && !isAbsolute(profile.seccomp))
    profile.seccomp = resolve(dir, profile.seccomp);
  const layer = { source: path, dir, profile: deepFreeze(profile) };
  fileCache.set(path, { layer, stamp });
  return layer;
}

/** A profile after `extends` is resolved: the merged policy and where it came from. */
export interface ResolvedProfile {
  policy: SandboxPolicy;
  /** The profiles merged, first to last: file paths, or a label for profile objects. */
  chain: string[];
}

let objectLabels = 0;
const labels = new WeakMap<object, string>();
function labelOf(p: Profile): string {
  let l = labels.get(p);
  if (!l) labels.set(p, (l = `<profile object ${++objectLabels}>`));
  return l;
}

function toLayer(item: string | Profile, dir: string, field: string): Layer {
  if (typeof item === 'string') return loadFile(locate(item, dir));
  if (!item || typeof item !== 'object' || Array.isArray(item)) throw problem(field, `expected a profile name, a path or a profile object, got ${shown(item)}`);
  return { source: labelOf(item), dir: process.cwd(), profile: validateProfile(item, field) };
}

/** Depth-first, parents before children, each profile once (a diamond's base is merged once, first). */
function linearize(layer: Layer, out: Layer[], seen: Set<string>, stack: string[]): void {
  if (stack.includes(layer.source)) throw problem(layer.source, `extends itself: ${[...stack.slice(stack.indexOf(layer.source)), layer.source].join(' -> ')}`, '/extends');
  if (seen.has(layer.source)) return;
  stack.push(layer.source);
  const ext = layer.profile.extends;
  for (const ref of ext === undefined ? [] : Array.isArray(ext) ? ext : [ext]) {
    let parent: Layer;
    try {
      parent = toLayer(ref, layer.dir, layer.source);
    } catch (e) {
      if (e instanceof ProfileError && e.source === ref && e.problems.length === 1)
        throw problem(layer.source, `extends ${JSON.stringify(ref)}: ${e.problems[0].message}`, '/extends');
      throw e;
    }
    linearize(parent, out, seen, stack);
  }
  stack.pop();
  seen.add(layer.source);
  out.push(layer);
}

const canonical = (t: string) => normalize(t).replace(/(.)\/+$/, '$1');
const sameTarget = (a: { target: string }, b: { target: string }) => canonical(a.target) === canonical(b.target);

/**
 * Merges `layer` onto `into` (which it changes) by the rules at the top of
 * this file. Undefined values are not set. Used for profiles and for per-run
 * options alike.
 */
export function mergeLayer<T extends Record<string, unknown>>(into: T, layer: Record<string, unknown>, replace: readonly string[] = []): T {
  const acc = into as Record<string, unknown>;
  for (const [k, v] of Object.entries(layer)) {
    if (v === undefined || LAYERING_FIELDS.has(k)) continue;
    if (LIST_FIELDS.has(k) && Array.isArray(v) && Array.isArray(acc[k]) && !replace.includes(k)) {
      const list = [...(acc[k] as { target: string }[])];
      for (const item of v as { target: string }[]) {
        const i = item && typeof item.target === 'string' ? list.findIndex((x) => x && typeof x.target === 'string' && sameTarget(x, item)) : -1;
        if (i >= 0) list[i] = item;
        else list.push(item);
      }
      acc[k] = list;
    } else if (MAP_FIELDS.has(k) && v && typeof v === 'object' && !Array.isArray(v) && acc[k] && typeof acc[k] === 'object' && !replace.includes(k)) {
      acc[k] = { ...(acc[k] as object), ...(v as object) };
    } else acc[k] = LIST_FIELDS.has(k) && Array.isArray(v) ? [...v] : MAP_FIELDS.has(k) && v && typeof v === 'object' ? { ...v } : v;
  }
  return into;
}

/** Where each mounts/volumes/tmpfs item of a profile was written: errors name it so, not by its merged index. */
const itemSources = new WeakMap<object, string>();

/** `/path/p.json: mounts[0]` for an item a profile gave (its index in that profile), else undefined. */
export function profileItemSource(item: object): string | undefined {
  return itemSources.get(item);
}

function recordItemSources(l: Layer): void {
  for (const k of LIST_FIELDS) {
    const list = (l.profile as Record<string, unknown>)[k];
    if (!Array.isArray(list)) continue;
    list.forEach((item, i) => {
      if (item && typeof item === 'object' && !itemSources.has(item)) itemSources.set(item, `${l.source}: ${k}[${i}]`);
    });
  }
}

function resolveLayers(items: (string | Profile)[]): ResolvedProfile {
  const order: Layer[] = [];
  const seen = new Set<string>();
  for (const [i, item] of items.entries()) linearize(toLayer(item, process.cwd(), items.length > 1 ? `profile[${i}]` : 'profile'), order, seen, []);
  const policy: Record<string, unknown> = {};
  for (const l of order) {
    recordItemSources(l);
    mergeLayer(policy, l.profile as Record<string, unknown>, l.profile.replace);
  }
  // The description is the topmost profile's own: a base's does not describe its children.
  const top = order[order.length - 1]?.profile.description;
  if (top === undefined) delete policy.description;
  else policy.description = top;
  return { policy: deepFreeze(policy) as SandboxPolicy, chain: order.map((l) => l.source) };
}

/**
 * Resolves a profile option: loads names and paths, follows `extends`, merges
 * the layers. Cached: a judge resolves the same profile thousands of times,
 * and files are re-read only when they change (checked once a second).
 */
export function resolveProfile(option: ProfileOption): ResolvedProfile {
  revalidate();
  const items = Array.isArray(option) ? option : [option];
  if (items.length === 0) throw problem('profile', 'expected a profile name, a path, a profile object, or a non-empty list of them');
  const allStrings = items.every((x) => typeof x === 'string');
  const key = allStrings ? `${process.cwd()}\0${items.join('\0')}` : undefined;
  if (key !== undefined) {
    const hit = resolvedCache.get(key);
    if (hit) return hit;
  } else if (!Array.isArray(option) && Object.isFrozen(option)) {
    const hit = objectCache.get(option as object);
    if (hit && hit.chain.every((s) => !s.startsWith('/') || fileCache.has(s))) return hit;
  }
  const r = resolveLayers(items);
  if (key !== undefined) resolvedCache.set(key, r);
  else if (!Array.isArray(option) && Object.isFrozen(option)) objectCache.set(option as object, r);
  return r;
}

/** The profile every run gets when it names none. */
export const DEFAULT_PROFILE = 'default';

/**
 * Options with their profile applied: the profile's policy first, the
 * per-run options on top by the same merge rules (so a run's env adds to the
 * profile's, its mounts add to the profile's, its scalars win).
 */
export function applyProfile<T extends { profile?: ProfileOption }>(options: T): Omit<T, 'profile'> {
  const { profile, ...rest } = options;
  const base = resolveProfile(profile ?? DEFAULT_PROFILE).policy;
  const merged = mergeLayer({ ...base } as Record<string, unknown>, rest);
  delete merged.description;
  return merged as Omit<T, 'profile'>;
}

/** Profiles found by name, first of each name in the search path. */
export function listProfiles(): { name: string; path: string; description?: string; error?: string }[] {
  const out = new Map<string, { name: string; path: string; description?: string; error?: string }>();
  for (const dir of profileSearchPath()) {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    for (const f of names) {
      const name = f.slice(0, -'.json'.length);
      if (!f.endsWith('.json') || f === 'schema.json' || !NAME.test(name) || out.has(name)) continue;
      const path = join(dir, f);
      try {
        out.set(name, { name, path, description: loadFile(path).profile.description });
      } catch (e) {
        out.set(name, { name, path, error: (e as Error).message });
      }
    }
  }
  return [...out.values()].sort((a, b) => a.name.localeCompare(b.name));
}
