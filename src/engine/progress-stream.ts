// Docker's JSON progress stream (pull, push, build, load): one JSON object per
// line, sent as it happens. The 200 and its headers go out with the first
// line, so a failure before anything was said is still a plain error status
// (a 404 for an image that is not there); a failure after it is a line
// {"errorDetail":{"message":...},"error":...}, which the docker CLI prints
// and exits 1 on, as it does for Docker's own.
import { PassThrough } from 'node:stream';
import type { FastifyReply } from 'fastify';
import { BrigError } from '../errors.js';
import { EngineError } from './errors.js';

export class ProgressStream {
  private out: PassThrough | undefined;
  private closed = false;

  constructor(private readonly reply: FastifyReply) {
    // A client gone (docker pull ^C) ends the stream; the work finishes on its own.
    reply.raw.on('close', () => {
      this.closed = true;
    });
  }

  get started(): boolean {
    return this.out !== undefined;
  }

  write(message: object): void {
    if (this.closed && !this.out) return;
    if (!this.out) {
      this.out = new PassThrough();
      this.reply.header('content-type', 'application/json').send(this.out);
    }
    if (!this.out.writableEnded) this.out.write(JSON.stringify(message) + '\r\n');
  }

  /** Ends a stream that was started; a stream never started is started empty (a 200 with no lines). */
  end(): FastifyReply {
    if (!this.out) {
      this.out = new PassThrough();
      this.reply.header('content-type', 'application/json').send(this.out);
    }
    this.out.end();
    return this.reply;
  }

  /**
   * The failure as Docker says it: before the stream started, thrown (the
   * route's error status); after, as the stream's last line.
   */
  fail(e: unknown, status = 500): FastifyReply {
    if (!this.out) {
      if (e instanceof EngineError) throw e;
      throw new EngineError(status, oneLine(e));
    }
    const message = oneLine(e);
    this.write({ errorDetail: { message }, error: message });
    return this.end();
  }
}

/** An error's first line: brig's errors as they are, others by their message, never a stack. */
export function oneLine(e: unknown): string {
  if (e instanceof BrigError || e instanceof Error) return e.message.split('\n')[0];
  return String(e).split('\n')[0];
}
