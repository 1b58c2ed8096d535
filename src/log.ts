// Structured logs (pino, JSON on stderr), off unless asked for: a sandbox's
// own output must never have ours mixed into it.
import { pino, type Logger, type Level } from 'pino';

let logger: Logger | undefined;

export function setLogLevel(level: Level | 'silent'): Logger {
  logger = pino({ name: 'brig', level }, pino.destination({ fd: 2, sync: true }));
  return logger;
}

export function log(): Logger {
  logger ??= setLogLevel((process.env.BRIG_LOG_LEVEL as Level | undefined) ?? 'silent');
  return logger;
}
