// The service's configuration: a JSON file (brig serve --config), flags on
// top. Every limit a request may set has a server-side ceiling here; the
// names and defaults are Piston's (config.js) and Judge0's (config.rb), so
// an operator moving from either keeps their numbers.
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { Ajv } from 'ajv';

export interface PistonConfig {
  /** Defaults, and the most a request may ask for (Piston's rule). ms; bytes, -1 = no limit of its own. */
  compile_timeout: number;
  run_timeout: number;
  compile_cpu_time: number;
  run_cpu_time: number;
  compile_memory_limit: number;
  run_memory_limit: number;
  /** Bytes of stdout plus stderr kept before the run is ended (OL/EL). */
  output_max_size: number;
  max_process_count: number;
  max_open_files: number;
  max_file_size: number;
}

export interface Judge0Config {
  cpu_time_limit: number;
  max_cpu_time_limit: number;
  cpu_extra_time: number;
  max_cpu_extra_time: number;
  wall_time_limit: number;
  max_wall_time_limit: number;
  memory_limit: number;
  max_memory_limit: number;
  stack_limit: number;
  max_stack_limit: number;
  max_processes_and_or_threads: number;
  max_max_processes_and_or_threads: number;
  max_file_size: number;
  max_max_file_size: number;
  number_of_runs: number;
  max_number_of_runs: number;
  redirect_stderr_to_stdout: boolean;
  enable_wait_result: boolean;
  enable_compiler_options: boolean;
  enable_command_line_arguments: boolean;
  enable_callbacks: boolean;
  callbacks_max_tries: number;
  callbacks_timeout: number;
  enable_additional_files: boolean;
  max_extract_size: number;
  allow_enable_network: boolean;
  enable_batched_submissions: boolean;
  max_submission_batch_size: number;
  /** Seconds a finished submission is kept. */
  submission_cache_duration: number;
  /** Hosts (name or address, optionally :port) callback_url may name. Default none: no callbacks at all. */
  callback_allowlist: string[];
}

export interface ServeConfig {
  listen: string;
  concurrency: number;
  /** Jobs that may wait for a worker before requests get 503. */
  max_queue_size: number;
  api_keys: string[];
  /** Largest request body. */
  body_limit: number;
  /** Most files in one Piston request. */
  max_files: number;
  /** Extra runtime directories (a user's own), after the shipped ones. */
  runtimes: string[];
  /** Profiles /v1/runs may name; default all but none given means: default, judge, strict. */
  run_profiles: string[];
  /** Sandboxes kept ready per stage and sandbox shape (0: every job's sandboxes start cold). */
  pool_size: number;
  piston: PistonConfig;
  judge0: Judge0Config;
}

export const PISTON_DEFAULTS: PistonConfig = {
  compile_timeout: 10000,
  run_timeout: 3000,
  compile_cpu_time: 10000,
  run_cpu_time: 3000,
  compile_memory_limit: -1,
  run_memory_limit: -1,
  output_max_size: 1024,
  max_process_count: 64,
  max_open_files: 2048,
  max_file_size: 10000000,
};

export const JUDGE0_DEFAULTS: Judge0Config = {
  cpu_time_limit: 5,
  max_cpu_time_limit: 15,
  cpu_extra_time: 1,
  max_cpu_extra_time: 5,
  wall_time_limit: 10,
  max_wall_time_limit: 20,
  memory_limit: 128000,
  max_memory_limit: 512000,
  stack_limit: 64000,
  max_stack_limit: 128000,
  max_processes_and_or_threads: 60,
  max_max_processes_and_or_threads: 120,
  max_file_size: 1024,
  max_max_file_size: 4096,
  number_of_runs: 1,
  max_number_of_runs: 20,
  redirect_stderr_to_stdout: false,
  enable_wait_result: true,
  enable_compiler_options: true,
  enable_command_line_arguments: true,
  enable_callbacks: true,
  callbacks_max_tries: 3,
  callbacks_timeout: 5,
  enable_additional_files: true,
  max_extract_size: 10240,
  allow_enable_network: false,
  enable_batched_submissions: true,
  max_submission_batch_size: 20,
  submission_cache_duration: 3600,
  callback_allowlist: [],
};

export function defaultConfig(): ServeConfig {
  return {
    listen: '127.0.0.1:2358',
    concurrency: Math.max(1, cpus().length),
    max_queue_size: 100,
    api_keys: [],
    body_limit: 1 << 20,
    max_files: 32,
    runtimes: [],
    run_profiles: ['default', 'judge', 'strict', 'c', 'cpp', 'python', 'node', 'java'],
    pool_size: 2,
    piston: { ...PISTON_DEFAULTS },
    judge0: { ...JUDGE0_DEFAULTS, callback_allowlist: [] },
  };
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const num = { type: 'number' };
const int = { type: 'integer', minimum: 0 };
const bool = { type: 'boolean' };
const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    $schema: { type: 'string' },
    listen: { type: 'string' },
    concurrency: { type: 'integer', minimum: 1 },
    max_queue_size: int,
    api_keys: { type: 'array', items: { type: 'string', minLength: 8 } },
    body_limit: { type: 'integer', minimum: 1024 },
    max_files: { type: 'integer', minimum: 1 },
    runtimes: { type: 'array', items: { type: 'string' } },
    run_profiles: { type: 'array', items: { type: 'string' } },
    pool_size: { type: 'integer', minimum: 0, maximum: 64 },
    piston: {
      type: 'object',
      additionalProperties: false,
      properties: Object.fromEntries(Object.keys(PISTON_DEFAULTS).map((k) => [k, k.includes('memory') ? { type: 'integer', minimum: -1 } : { type: 'integer', minimum: 1 }])),
    },
    judge0: {
      type: 'object',
      additionalProperties: false,
      properties: Object.fromEntries(
        Object.entries(JUDGE0_DEFAULTS).map(([k, v]) => [k, Array.isArray(v) ? { type: 'array', items: { type: 'string' } } : typeof v === 'boolean' ? bool : Number.isInteger(v) && !k.includes('time') ? int : { ...num, minimum: 0 }]),
      ),
    },
  },
};

let validate: ReturnType<Ajv['compile']> | undefined;

/** The defaults with a config object on top; throws ConfigError naming the field. */
export function mergeConfig(value: unknown, where = 'config'): ServeConfig {
  validate ??= new Ajv({ strict: false }).compile(schema);
  if (!validate(value)) {
    const e = validate.errors![0];
    const field = e.instancePath.replace(/^\//, '').replace(/\//g, '.') || (e.params as { additionalProperty?: string }).additionalProperty || '(top level)';
    const extra = 'additionalProperty' in (e.params ?? {}) ? `: unknown field ${(e.params as { additionalProperty: string }).additionalProperty}` : '';
    throw new ConfigError(`${where}: ${field}: ${e.message}${extra}`);
  }
  const v = value as Partial<ServeConfig> & { piston?: Partial<PistonConfig>; judge0?: Partial<Judge0Config> };
  const d = defaultConfig();
  return { ...d, ...v, piston: { ...d.piston, ...v.piston }, judge0: { ...d.judge0, ...v.judge0 } };
}

export function loadConfigFile(path: string): ServeConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`--config ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`--config ${path}: not JSON: ${(e as Error).message}`);
  }
  return mergeConfig(value, path);
}

/** HOST:PORT, [V6]:PORT, or :PORT / PORT (loopback). */
export function parseListen(v: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*))?:?(\d+)$/.exec(v.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || !Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(`listen: expected HOST:PORT, got ${JSON.stringify(v)}`);
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}
