// What brig worker's CLI loads lazily: the worker and the errors it maps to usage errors.
export { startWorker, type BrigWorker, type WorkerOptions } from './worker.js';
export { parseRedisUrl } from './redis-queue.js';
export { ConfigError } from './config.js';
export { RuntimeError } from './runtimes.js';
