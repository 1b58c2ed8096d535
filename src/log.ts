// Structured logs (pino, JSON on stderr), off unless asked for: a sandbox's
// own output must never have ours mixed into it.
// pino is loaded only when a level is asked for (--log-level, BRIG_LOG_LEVEL):
// a `brig run` from a shell should not pay for loading it.
import { createRequire } from 'node:module';
import type { Logger, Level } from 'pino';

let logger: Logger | undefined;

const noop = () => {};
/** What log() gives when logging is off: the levels brig calls, doing nothing. */
const SILENT = { level: 'silent', trace: noop, debug: noop, info: noop, warn: noop, error: noop, fatal: noop, isLevelEnabled: () => false } as unknown as Logger;

export function setLogLevel(level: Level | 'silent'): Logger {
  if (level === 'silent') return (logger = SILENT);
  const { pino } = createRequire(import.meta.url)('pino') as typeof import('pino');
  logger = pino({ name: 'brig', level }, pino.destination({ fd: 2, sync: true }));
  return logger;
}

export function log(): Logger {
  logger ??= setLogLevel((process.env.BRIG_LOG_LEVEL as Level | undefined) ?? 'silent');
  return logger;
}
