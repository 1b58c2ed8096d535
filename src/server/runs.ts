// brig's own API: POST /v1/runs takes argv and the run options a profile may
// hold, by profile name only (the configured run_profiles), and returns the
// whole RunResult. Nothing here can name a host path: mounts, rootfs, image
// and seccomp files are profile matters, and only configured profiles apply.
import type { FastifyInstance } from 'fastify';
import { OptionsError, ProfileError } from '../errors.js';
import type { RunResult } from '../launch/sandbox.js';
import { RequestError, type ServiceContext } from './context.js';
import { sendQueueError } from './piston.js';

/** Options a request may set: limits and the program's environment, none naming a host path. */
const ALLOWED = new Set(['cpuTimeLimitMs', 'wallTimeLimitMs', 'extraTimeMs', 'memory', 'pids', 'outputLimitBytes', 'env', 'cwd', 'hostname']);

/**
 * The service's ceilings (Judge0's maximums, in brig's units) on a run's
 * limits; time limits absent from the request get Judge0's defaults, so no
 * run is unbounded whatever profile it names.
 */
function withCeilings(o: Record<string, unknown>, ctx: ServiceContext): Record<string, unknown> {
  const j = ctx.config.judge0;
  const out = { ...o };
  const cap = (field: string, max: number, fallback?: number) => {
    const v = out[field];
    if (v === undefined) {
      if (fallback !== undefined) out[field] = fallback;
      return;
    }
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new RequestError(400, `options.${field}`, `options.${field}: expected a number`);
    if (v > max) throw new RequestError(400, `options.${field}`, `options.${field}: ${v} is over the service's ceiling of ${max}`);
  };
  cap('cpuTimeLimitMs', j.max_cpu_time_limit * 1000, j.cpu_time_limit * 1000);
  cap('wallTimeLimitMs', j.max_wall_time_limit * 1000, j.wall_time_limit * 1000);
  cap('extraTimeMs', j.max_cpu_extra_time * 1000);
  cap('pids', j.max_max_processes_and_or_threads, j.max_processes_and_or_threads);
  cap('outputLimitBytes', 64 << 20, 64 << 20);
  if (out.memory === undefined) out.memory = j.memory_limit * 1024;
  else if (typeof out.memory === 'number' && out.memory > j.max_memory_limit * 1024)
    throw new RequestError(400, 'options.memory', `options.memory: ${out.memory} is over the service's ceiling of ${j.max_memory_limit * 1024}`);
  else if (typeof out.memory === 'string') {
    const m = /^(\d+)([kmg]?)$/i.exec(out.memory.trim());
    const bytes = m ? Number(m[1]) * ({ '': 1, k: 1024, m: 1 << 20, g: 1 << 30 } as Record<string, number>)[m[2].toLowerCase()] : NaN;
    if (!(bytes <= j.max_memory_limit * 1024)) throw new RequestError(400, 'options.memory', `options.memory: ${out.memory} is not a size within the service's ceiling of ${j.max_memory_limit * 1024} bytes`);
  }
  if (out.rlimits !== undefined) throw new RequestError(400, 'options.rlimits', 'options.rlimits: set by the profile, not a request');
  return out;
}

export function runResultJson(r: RunResult): Record<string, unknown> {
  const { stdout, stderr, ...rest } = r;
  return JSON.parse(
    JSON.stringify({ ...rest, stdout: stdout.toString('utf8'), stderr: stderr.toString('utf8') }, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)),
  );
}

export async function runsRoutes(app: FastifyInstance, opts: { ctx: ServiceContext }): Promise<void> {
  const { ctx } = opts;
  app.post('/v1/runs', async (req, reply) => {
    try {
      const b = req.body as Record<string, unknown> | null;
      if (!b || typeof b !== 'object' || Array.isArray(b)) throw new RequestError(400, 'body', 'body: expected a JSON object');
      if (!Array.isArray(b.argv) || !b.argv.length || b.argv.some((a) => typeof a !== 'string')) throw new RequestError(400, 'argv', 'argv: expected a non-empty array of strings');
      const profiles = b.profile === undefined ? ['judge'] : Array.isArray(b.profile) ? b.profile : [b.profile];
      for (const p of profiles)
        if (typeof p !== 'string' || !ctx.config.run_profiles.includes(p)) throw new RequestError(400, 'profile', `profile: ${JSON.stringify(p)} is not one this service offers (${ctx.config.run_profiles.join(', ')})`);
      if (b.stdin !== undefined && typeof b.stdin !== 'string') throw new RequestError(400, 'stdin', 'stdin: expected a string');
      const options = (b.options ?? {}) as Record<string, unknown>;
      if (typeof options !== 'object' || Array.isArray(options)) throw new RequestError(400, 'options', 'options: expected an object');
      for (const k of Object.keys(options)) if (!ALLOWED.has(k)) throw new RequestError(400, `options.${k}`, `options.${k}: not an option a request may set (${[...ALLOWED].join(', ')})`);
      const limited = withCeilings(options, ctx);
      const r = (await ctx.queue.submit({ kind: 'run', argv: b.argv as string[], options: { ...limited, profile: profiles }, stdin: (b.stdin as string) ?? '' })) as RunResult;
      ctx.metrics.runs.inc({ status: r.status, language: 'v1' });
      return runResultJson(r);
    } catch (e) {
      if (e instanceof RequestError) return reply.code(e.statusCode).send({ message: e.message, field: e.field });
      if (e instanceof OptionsError) return reply.code(400).send({ message: e.message, field: e.field });
      if (e instanceof ProfileError) return reply.code(400).send({ message: e.message, field: 'profile' });
      return sendQueueError(reply, e, (message) => ({ message }));
    }
  });
}
