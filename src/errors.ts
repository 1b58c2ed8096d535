// Error classes: every failure names the option or the launch step at fault.
import { constants } from 'node:os';

// Made when a message first needs a name, not at every CLI start.
let errnoNames: Map<number, string> | undefined;

export function errnoName(errno: number): string {
  if (!errnoNames) {
    errnoNames = new Map();
    for (const [name, num] of Object.entries(constants.errno)) if (!errnoNames.has(num)) errnoNames.set(num, name);
  }
  return errnoNames.get(errno) ?? `errno ${errno}`;
}

export class BrigError extends Error {
  override name = 'BrigError';
}

/** An option failed validation before anything started. `field` is its path, e.g. `mounts[1].target`. */
export class OptionsError extends BrigError {
  override name = 'OptionsError';
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

/**
 * The positive errno of a Node system error; else the one its `code` names
 * (a stream's error may carry only `code: 'ENOSPC'`); else `fallback`.
 */
/**
 * Out of fds, processes, memory or namespaces (the kernel's limit on them
 * is ENOSPC): these pass, and whatever failed on one may be tried again.
 */
export const TRANSIENT_ERRNOS: ReadonlySet<number> = new Set([constants.errno.EMFILE, constants.errno.ENFILE, constants.errno.EAGAIN, constants.errno.ENOMEM, constants.errno.ENOSPC]);

export function errnoOf(e: unknown, fallback: number = constants.errno.EIO): number {
  const err = e as NodeJS.ErrnoException | undefined;
  if (typeof err?.errno === 'number') return Math.abs(err.errno);
  const byCode = typeof err?.code === 'string' ? (constants.errno as Record<string, number>)[err.code] : undefined;
  return byCode ?? fallback;
}

/** What a failed setup step reports (RunResult.error and SetupError.detail). */
export interface SetupErrorInfo {
  /** The step's name, e.g. `bind-mount`, `chdir`, `exec`. */
  step: string;
  errno: number;
  /** errno's symbolic name, e.g. `ENOENT`. */
  code: string;
  /** The path the step worked on, where it has one. */
  path?: string;
  message: string;
}

export function setupErrorInfo(step: string, errno: number, path?: string, hint?: string): SetupErrorInfo {
  const code = errnoName(errno);
  if (errno === constants.errno.EMFILE) hint ??= 'the process is out of file descriptors: raise its limit (ulimit -n) or close some';
  else if (errno === constants.errno.ENFILE) hint ??= "the system's file table is full";
  let message = `${step} failed`;
  if (path !== undefined) message += ` for ${path}`;
  message += `: ${code}`;
  if (hint) message += ` (${hint})`;
  return path === undefined ? { step, errno, code, message } : { step, errno, code, path, message };
}

/** Thrown by spawn() when the sandbox could not be created at all (parent side). */
export class SetupError extends BrigError {
  override name = 'SetupError';
  constructor(readonly detail: SetupErrorInfo) {
    super(detail.message);
  }
}

/** One thing wrong with a profile: where (a JSON pointer into it) and what was expected. */
export interface ProfileProblem {
  /** JSON pointer of the field, e.g. `/mounts/0/target` (`` is the whole profile). */
  pointer: string;
  message: string;
}

/** A profile could not be loaded: unreadable, not JSON, invalid, or its `extends` could not be resolved. */
export class ProfileError extends BrigError {
  override name = 'ProfileError';
  constructor(
    /** The file or name of the profile at fault. */
    readonly source: string,
    readonly problems: ProfileProblem[],
  ) {
    super(
      problems.length === 1 && problems[0].pointer === ''
        ? `profile ${source}: ${problems[0].message}`
        : `profile ${source} is invalid:\n${problems.map((p) => `  ${p.pointer || '/'}: ${p.message}`).join('\n')}`,
    );
  }
}

/**
 * A value as an error message shows it. Anything may arrive from a caller
 * (objects without a prototype, BigInts, symbols, cycles): showing it must
 * not throw in its turn.
 */
export function shown(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'function') return 'a function';
  if (typeof v === 'symbol' || typeof v === 'bigint') return `a ${typeof v}`;
  if (typeof v === 'number') return String(v);
  const s = JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** A user network's problem (src/net/networks.ts), in Docker's words; `status` is the Engine API's HTTP status for it. */
export class NetworkError extends BrigError {
  override name = 'NetworkError';
  constructor(
    message: string,
    readonly status: 400 | 403 | 404 | 409 | 500 = 500,
  ) {
    super(message);
  }
}
