// brig worker: runs the jobs brig serve --redis puts on a BullMQ queue, on
// this machine. Stops on SIGINT or SIGTERM after its running jobs finish.
import { all, formatHelp, one, parseArgs, UsageError, wholeNumber, type OptionSpec } from './args.js';

export const workerSpecs: OptionSpec[] = [
  { name: 'redis', value: true, arg: 'URL', help: 'the Redis brig serve --redis queues on (redis://HOST:PORT[/DB]); required' },
  { name: 'concurrency', value: true, arg: 'N', help: 'jobs run at once (default: the number of CPUs)' },
  { name: 'config', short: 'c', value: true, arg: 'FILE', help: 'JSON config file: the ceilings every job is re-checked against (docs/service.md)' },
  { name: 'runtimes', value: true, repeat: true, arg: 'DIR', help: 'also load runtimes from DIR (repeatable)' },
  { name: 'name', value: true, arg: 'NAME', help: 'this worker in logs and in Redis (default HOST:PID)' },
  { name: 'metrics', value: true, arg: 'HOST:PORT', help: 'serve /metrics (Prometheus) and /healthz there' },
  { name: 'lock-duration', value: true, arg: 'MS', help: 'a job whose worker is silent this long goes to another worker (default 30000)' },
  { name: 'quiet', short: 'q', help: 'log warnings and errors only' },
  { name: 'help', short: 'h', help: 'show this help' },
];

export const workerHelp = formatHelp(
  'brig worker --redis URL [OPTIONS]',
  'Run jobs from the queue brig serve --redis fills, with this machine\'s runtimes and ceilings. A worker killed\nmid-job loses nothing: another worker runs the job from the start. SIGTERM finishes running jobs, takes no new ones.',
  workerSpecs,
);

export async function workerCommand(argv: string[]): Promise<number> {
  const p = parseArgs(argv, workerSpecs);
  if (p.flags.has('help')) {
    process.stdout.write(workerHelp);
    return 0;
  }
  if (p.rest.length) throw new UsageError(`unexpected argument ${JSON.stringify(p.rest[0])}`);
  const redis = one(p, 'redis');
  if (redis === undefined) throw new UsageError('--redis: required (redis://HOST:PORT[/DB])');
  const c = one(p, 'concurrency');
  const concurrency = c === undefined ? undefined : wholeNumber('concurrency', c);
  if (concurrency === 0) throw new UsageError('--concurrency: expected at least 1');
  const l = one(p, 'lock-duration');
  const lockDurationMs = l === undefined ? undefined : wholeNumber('lock-duration', l);
  if (lockDurationMs !== undefined && lockDurationMs < 200) throw new UsageError('--lock-duration: expected at least 200 (ms)');
  const { startWorker, parseRedisUrl, ConfigError, RuntimeError } = await import('../server/worker-exports.js');
  try {
    parseRedisUrl(redis);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  let worker;
  try {
    worker = await startWorker({
      redis,
      ...(concurrency !== undefined ? { concurrency } : {}),
      ...(one(p, 'config') ? { configFile: one(p, 'config') } : {}),
      runtimeDirs: all(p, 'runtimes'),
      ...(one(p, 'name') ? { name: one(p, 'name') } : {}),
      ...(one(p, 'metrics') !== undefined ? { metricsListen: one(p, 'metrics') } : {}),
      ...(lockDurationMs !== undefined ? { tuning: { lockDurationMs } } : {}),
      logger: { level: p.flags.has('quiet') ? 'warn' : 'info' },
    });
  } catch (e) {
    if (e instanceof ConfigError || e instanceof RuntimeError) throw new UsageError(e.message);
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'EADDRINUSE' || err.code === 'EACCES' || err.code === 'EADDRNOTAVAIL') throw new UsageError(`--metrics ${one(p, 'metrics')}: ${err.code} ${err.message}`);
    throw e;
  }
  for (const u of worker.unavailable) process.stderr.write(`brig worker: not offering ${u.language}: ${u.reason}\n`);
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await worker.close();
  return 0;
}
