// The Engine API's errors: Docker's `{"message": ...}` body and its status
// codes, so that clients (the docker CLI, dockerode, compose) show brig's
// reason as they would show Docker's.
import { BrigError, OptionsError } from '../errors.js';

export class EngineError extends BrigError {
  override name = 'EngineError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** 404 when a thing is missing, 409 when its state forbids the call, 400 for bad input, else 500. */
export function statusOf(e: unknown): number {
  if (e instanceof EngineError) return e.status;
  if (e instanceof OptionsError) return 400;
  const err = e as { name?: string; message?: string; statusCode?: number } | undefined;
  const msg = typeof err?.message === 'string' ? err.message : '';
  // fastify's own (a body that is not JSON, too large, an unknown content type)
  if (typeof err?.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) return err.statusCode;
  if (/^No such (container|image|exec instance|volume|network)|^no image |not found$/.test(msg)) return 404;
  if (err?.name === 'ContainerError' || err?.name === 'ImageError' || err?.name === 'NetworkError') {
    if (/^Conflict|already in use|is not running|is already paused|is not paused|is paused|cannot remove|being removed|started again|active endpoints|already exists|^multiple containers match/.test(msg)) return 409;
    if (/^a container name|: a container name|expected|invalid|^exec: no command/.test(msg)) return 400;
  }
  if (err?.name === 'UsageError') return 400;
  return 500;
}

export function messageOf(e: unknown): string {
  if (e instanceof Error && typeof e.message === 'string' && e.message) return e.message.split('\n')[0];
  return String(e);
}
