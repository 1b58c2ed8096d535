// brig serve: the execution service (Piston- and Judge0-compatible HTTP
// APIs, /v1/runs, /metrics, a playground page). brig runtimes: what it
// would offer on this host, and why a runtime is missing.
import { formatHelp, all, one, parseArgs, UsageError, wholeNumber, type OptionSpec } from './args.js';

export const serveSpecs: OptionSpec[] = [
  { name: 'listen', short: 'l', value: true, arg: 'HOST:PORT', help: 'address to listen on (default 127.0.0.1:2358, Judge0\'s port; loopback unless given)' },
  { name: 'config', short: 'c', value: true, arg: 'FILE', help: 'JSON config file: ceilings, queue size, callback allowlist (docs/service.md)' },
  { name: 'runtimes', value: true, repeat: true, arg: 'DIR', help: 'also load runtimes from DIR (repeatable; a language there replaces the shipped one)' },
  { name: 'concurrency', value: true, arg: 'N', help: 'jobs run at once (default: the number of CPUs; with --redis, 0 only queues)' },
  { name: 'redis', value: true, arg: 'URL', help: 'put jobs on a BullMQ queue in Redis (redis://HOST:PORT[/DB]) for brig worker on any machine (docs/scaling.md)' },
  { name: 'queue-size', value: true, arg: 'N', help: 'jobs that may wait before requests get 503 (default 100, Judge0\'s)' },
  { name: 'rate-limit', value: true, arg: 'N', help: 'at most N job submissions a minute per API key (429 + Retry-After); with --redis, across all servers' },
  { name: 'api-key', value: true, repeat: true, arg: 'KEY', help: 'require X-Auth-Token: KEY on every request but /healthz (repeatable)' },
  { name: 'quiet', short: 'q', help: 'no request log' },
  { name: 'help', short: 'h', help: 'show this help' },
];

export const serveHelp = formatHelp(
  'brig serve [OPTIONS]',
  'Run the execution service: Piston API v2 (/api/v2/...), Judge0 CE API (/submissions, /languages, ...),\nbrig\'s own /v1/runs, /healthz, /metrics, and a playground page at /. Stops on SIGINT or SIGTERM,\nletting running jobs finish.',
  serveSpecs,
);

export const runtimesSpecs: OptionSpec[] = [
  { name: 'runtimes', value: true, repeat: true, arg: 'DIR', help: 'also load runtimes from DIR' },
  { name: 'format', value: true, arg: 'FORMAT', help: "'table' (default) or 'json'" },
  { name: 'help', short: 'h', help: 'show this help' },
];

export const runtimesHelp = formatHelp('brig runtimes [OPTIONS]', 'List the runtimes brig serve offers on this host (versions detected from the toolchains), and those it cannot, with the reason.', runtimesSpecs);

export async function runtimesCommand(argv: string[]): Promise<number> {
  const p = parseArgs(argv, runtimesSpecs);
  if (p.flags.has('help')) {
    process.stdout.write(runtimesHelp);
    return 0;
  }
  if (p.rest.length) throw new UsageError(`unexpected argument ${JSON.stringify(p.rest[0])}`);
  const format = one(p, 'format') ?? 'table';
  if (format !== 'table' && format !== 'json') throw new UsageError(`--format: expected table or json, got ${JSON.stringify(format)}`);
  const { loadRuntimes, SHIPPED_RUNTIME_DIR, judge0Name, RuntimeError } = await import('../server/runtimes.js');
  let set;
  try {
    set = loadRuntimes([SHIPPED_RUNTIME_DIR, ...all(p, 'runtimes')]);
  } catch (e) {
    throw e instanceof RuntimeError ? new UsageError(e.message) : e;
  }
  if (format === 'json') {
    const rows = [
      ...set.available.map((r) => ({ language: r.language, version: r.detectedVersion, aliases: r.aliases, judge0_id: r.judge0.id, judge0_name: judge0Name(r), available: true, dir: r.dir })),
      ...set.unavailable.map((u) => ({ language: u.language, available: false, reason: u.reason, dir: u.dir })),
    ];
    process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
    return 0;
  }
  const rows = [['LANGUAGE', 'VERSION', 'JUDGE0', 'ALIASES'], ...set.available.map((r) => [r.language, r.detectedVersion, String(r.judge0.id), r.aliases.join(',')])];
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)) + 2);
  for (const r of rows) process.stdout.write(r.map((c, i) => (i < r.length - 1 ? c.padEnd(w[i]) : c)).join('').trimEnd() + '\n');
  for (const u of set.unavailable) process.stdout.write(`not offered: ${u.language}: ${u.reason}\n`);
  return 0;
}

export async function serveCommand(argv: string[]): Promise<number> {
  const p = parseArgs(argv, serveSpecs);
  if (p.flags.has('help')) {
    process.stdout.write(serveHelp);
    return 0;
  }
  if (p.rest.length) throw new UsageError(`unexpected argument ${JSON.stringify(p.rest[0])}`);
  const concurrency = one(p, 'concurrency');
  const queueSize = one(p, 'queue-size');
  const config: Record<string, unknown> = {};
  if (queueSize !== undefined) config.max_queue_size = wholeNumber('queue-size', queueSize);
  const n = concurrency === undefined ? undefined : wholeNumber('concurrency', concurrency);
  const redis = one(p, 'redis');
  if (n === 0 && redis === undefined) throw new UsageError('--concurrency: expected at least 1 (0, queue only, needs --redis)');
  if (redis !== undefined) {
    const { parseRedisUrl } = await import('../server/redis-queue.js');
    try {
      parseRedisUrl(redis);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  }
  const { createServer, ConfigError, RuntimeError } = await import('../server/index.js');
  let server;
  try {
    server = await createServer({
      ...(one(p, 'config') ? { configFile: one(p, 'config') } : {}),
      ...(one(p, 'listen') ? { listen: one(p, 'listen') } : {}),
      ...(n !== undefined ? { concurrency: n } : {}),
      ...(redis !== undefined ? { redis } : {}),
      apiKeys: all(p, 'api-key'),
      ...(one(p, 'rate-limit') !== undefined ? { rateLimitPerMinute: wholeNumber('rate-limit', one(p, 'rate-limit')!) } : {}),
      runtimeDirs: all(p, 'runtimes'),
      config,
      logger: p.flags.has('quiet') ? false : { level: 'info' },
    });
  } catch (e) {
    if (e instanceof ConfigError || e instanceof RuntimeError) throw new UsageError(e.message);
    throw e;
  }
  for (const u of server.unavailable) process.stderr.write(`brig serve: not offering ${u.language}: ${u.reason}\n`);
  let url: string;
  try {
    url = await server.listen();
  } catch (e) {
    await server.close();
    const err = e as NodeJS.ErrnoException;
    throw new UsageError(`--listen ${server.config.listen}: ${err.code ?? ''} ${err.message}`.trim());
  }
  const { host } = new URL(url);
  if (!server.config.api_keys.length && !/^(127\.|\[::1\]$|localhost$)/.test(host))
    process.stderr.write(`brig serve: warning: listening on ${host}, beyond loopback, with no --api-key: anyone who can reach it can run code\n`);
  process.stderr.write(`brig serve: listening on ${url} (${server.runtimes.map((r) => r.language).join(', ')}; ${server.config.concurrency} at a time${redis ? `; queue in Redis ${new URL(redis).host}` : ''}${server.config.api_keys.length ? '; X-Auth-Token required' : ''})\n`);
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      process.stderr.write(`brig serve: ${sig}: draining\n`);
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await server.close();
  process.stderr.write('brig serve: stopped\n');
  return 0;
}
