// The job queue between the HTTP layer and the sandboxes. The service talks
// to it only through JobQueue, so a queue with workers in other processes (a
// BullMQ queue on Redis) can replace the embedded one without the routes
// changing: jobs are plain JSON, results come back through submit()'s promise.

export class QueueFullError extends Error {
  override name = 'QueueFullError';
  constructor(readonly limit: number) {
    super(`queue is full (${limit} jobs waiting)`);
  }
}

export class QueueClosedError extends Error {
  override name = 'QueueClosedError';
  constructor() {
    super('the service is shutting down');
  }
}

export interface SubmitHooks {
  /**
   * The queue has taken the job: it will run (in Redis: the add was
   * acknowledged, so the job survives this server). Before onStart.
   */
  onQueued?: () => void;
  /** The job left the queue and a worker started it. */
  onStart?: () => void;
  /** The job's id in a shared queue (Judge0's token), so that any server can look the job up. */
  jobId?: string;
}

export interface JobQueue<J, R> {
  /** Runs the job when a worker is free; rejects with QueueFullError at once when the queue is full, QueueClosedError once closing. */
  submit(job: J, hooks?: SubmitHooks): Promise<R>;
  /** Jobs waiting for a worker. */
  readonly depth: number;
  /** Jobs a worker is running. */
  readonly active: number;
  /** Most jobs that may wait. */
  readonly capacity: number;
  /** Refuses new jobs, lets waiting and running ones finish, then resolves. */
  close(): Promise<void>;
}

interface Waiting<J, R> {
  job: J;
  hooks?: SubmitHooks;
  resolve: (r: R) => void;
  reject: (e: unknown) => void;
}

/** The embedded queue: bounded, in this process, `concurrency` jobs at a time. */
export class MemoryQueue<J, R> implements JobQueue<J, R> {
  private readonly waiting: Waiting<J, R>[] = [];
  private running = 0;
  private closing = false;
  private idle: (() => void)[] = [];

  constructor(
    private readonly worker: (job: J) => Promise<R>,
    readonly concurrency: number,
    readonly capacity: number,
  ) {
    if (!Number.isSafeInteger(concurrency) || concurrency < 1) throw new RangeError(`concurrency: expected a whole number >= 1, got ${concurrency}`);
    if (!Number.isSafeInteger(capacity) || capacity < 0) throw new RangeError(`capacity: expected a whole number >= 0, got ${capacity}`);
  }

  get depth(): number {
    return this.waiting.length;
  }

  get active(): number {
    return this.running;
  }

  submit(job: J, hooks?: SubmitHooks): Promise<R> {
    if (this.closing) return Promise.reject(new QueueClosedError());
    // A job that can start now never counts against the waiting room.
    if (this.running >= this.concurrency && this.waiting.length >= this.capacity) return Promise.reject(new QueueFullError(this.capacity));
    return new Promise<R>((resolve, reject) => {
      this.waiting.push({ job, hooks, resolve, reject });
      hooks?.onQueued?.();
      this.pump();
    });
  }

  private pump(): void {
    while (this.running < this.concurrency && this.waiting.length) {
      const w = this.waiting.shift()!;
      this.running++;
      w.hooks?.onStart?.();
      // A worker that throws synchronously still settles its job.
      Promise.resolve()
        .then(() => this.worker(w.job))
        .then(w.resolve, w.reject)
        .finally(() => {
          this.running--;
          this.pump();
          if (!this.running && !this.waiting.length) for (const f of this.idle.splice(0)) f();
        });
    }
  }

  close(): Promise<void> {
    this.closing = true;
    if (!this.running && !this.waiting.length) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }
}
