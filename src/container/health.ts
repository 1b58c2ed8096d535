// Healthchecks (Docker's HEALTHCHECK / --health-*): the container's monitor
// runs the test command inside the running container, through the same exec
// path `brig exec` uses (its namespaces, cgroups, seccomp policy), and keeps
// Docker's State.Health in the record: Status starting|healthy|unhealthy,
// FailingStreak, and the last 5 results.
import { spawnWith } from '../launch/sandbox.js';
import { native } from '../native.js';
import { OptionsError } from '../errors.js';
import { execOptions } from './common.js';
import { readRecord, update, type ContainerRecord } from './state.js';

/** The option: Docker's test forms, durations in ms. */
export interface HealthcheckOptions {
  /** ['NONE'] | ['CMD', prog, ...args] | ['CMD-SHELL', command] */
  test: string[];
  intervalMs?: number;
  timeoutMs?: number;
  retries?: number;
  startPeriodMs?: number;
}

/** As the record keeps it (Docker's Config.Healthcheck: durations in ns). */
export interface HealthConfig {
  Test: string[];
  Interval?: number;
  Timeout?: number;
  Retries?: number;
  StartPeriod?: number;
}

export interface HealthLogEntry {
  Start: string;
  End: string;
  ExitCode: number;
  Output: string;
}

export interface HealthState {
  Status: 'starting' | 'healthy' | 'unhealthy';
  FailingStreak: number;
  Log: HealthLogEntry[];
}

// Docker's defaults.
const DEFAULT_INTERVAL_MS = 30_000;
const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_RETRIES = 3;
/** Docker keeps the last 5 results, and 4096 bytes of each one's output. */
const LOG_ENTRIES = 5;
const OUTPUT_BYTES = 4096;

/** Checks the option and gives the record's form (undefined: none given). */
export function healthConfig(o: HealthcheckOptions | undefined): HealthConfig | undefined {
  if (o === undefined) return undefined;
  if (!o || !Array.isArray(o.test) || o.test.length === 0 || !o.test.every((t) => typeof t === 'string')) throw new OptionsError('healthcheck.test', "expected ['NONE'], ['CMD', PROG, ARG...] or ['CMD-SHELL', COMMAND]");
  const kind = o.test[0];
  if (kind === 'NONE') return { Test: ['NONE'] };
  if (kind === 'CMD' && o.test.length < 2) throw new OptionsError('healthcheck.test', 'CMD needs a program');
  if (kind === 'CMD-SHELL' && (o.test.length !== 2 || o.test[1] === '')) throw new OptionsError('healthcheck.test', 'CMD-SHELL takes one command string');
  if (kind !== 'CMD' && kind !== 'CMD-SHELL') throw new OptionsError('healthcheck.test', `the first word is NONE, CMD or CMD-SHELL, got ${JSON.stringify(kind)}`);
  const ms = (field: string, v: number | undefined, min: number) => {
    if (v === undefined) return undefined;
    if (!Number.isFinite(v) || v < min) throw new OptionsError(`healthcheck.${field}`, `expected at least ${min} ms, got ${v}`);
    return Math.round(v * 1e6);
  };
  // Docker refuses intervals and timeouts under 1 ms; 0 means the default.
  const c: HealthConfig = { Test: [...o.test] };
  const interval = ms('intervalMs', o.intervalMs, 0);
  if (interval) c.Interval = interval;
  const timeout = ms('timeoutMs', o.timeoutMs, 0);
  if (timeout) c.Timeout = timeout;
  const start = ms('startPeriodMs', o.startPeriodMs, 0);
  if (start) c.StartPeriod = start;
  if (o.retries !== undefined) {
    if (!Number.isInteger(o.retries) || o.retries < 0) throw new OptionsError('healthcheck.retries', `expected a whole number, got ${o.retries}`);
    if (o.retries) c.Retries = o.retries;
  }
  return c;
}

/** The healthcheck in effect: the container's own, else its image's HEALTHCHECK; none for NONE. */
export function effectiveHealth(rec: ContainerRecord): HealthConfig | undefined {
  const own = (rec.Config as { Healthcheck?: HealthConfig }).Healthcheck;
  const fromImage = (rec.Options as { image?: { config?: { Healthcheck?: HealthConfig } } }).image;
  const h = own ?? (typeof fromImage === 'object' ? fromImage?.config?.Healthcheck : undefined);
  if (!h || !Array.isArray(h.Test) || h.Test.length === 0 || h.Test[0] === 'NONE') return undefined;
  return h;
}

/** The argv a test runs. */
function testArgv(test: string[]): string[] {
  return test[0] === 'CMD-SHELL' ? ['/bin/sh', '-c', test[1]] : test.slice(1);
}

/**
 * Runs a container's healthcheck while its program runs: the monitor makes
 * one per start and stops it at the program's exit.
 */
export class HealthRunner {
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private readonly startedAt = Date.now();

  constructor(
    private readonly id: string,
    private readonly cfg: HealthConfig,
    /** The container's init pid now (0: not running). */
    private readonly initPid: () => number,
  ) {}

  private get intervalMs(): number {
    return this.cfg.Interval ? this.cfg.Interval / 1e6 : DEFAULT_INTERVAL_MS;
  }

  start(): void {
    update(this.id, (r) => {
      (r.State as { Health?: HealthState }).Health = { Status: 'starting', FailingStreak: 0, Log: [] };
    });
    // The first check comes one interval after the start, as Docker's.
    this.schedule(this.intervalMs);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.probe().finally(() => this.schedule(this.intervalMs)), ms);
    this.timer.unref();
  }

  /** One check: the test in the container, its result in the record. */
  async probe(): Promise<void> {
    const pid = this.initPid();
    if (!pid || this.stopped) return;
    const rec = readRecord(this.id);
    if (!rec || rec.State.Paused) return;
    const start = new Date();
    let exitCode: number;
    let output = '';
    const timeoutMs = this.cfg.Timeout ? this.cfg.Timeout / 1e6 : DEFAULT_TIMEOUT_MS;
    try {
      const argv = testArgv(this.cfg.Test);
      const { options, extras } = execOptions(rec, pid, argv);
      let proc;
      try {
        proc = spawnWith(argv, { ...options, stdin: 'ignore', stdout: 'capture', stderr: 'capture', maxOutputBytes: OUTPUT_BYTES } as typeof options, extras);
      } finally {
        native.close(extras.joinPidfd!);
      }
      let timedOut = false;
      const t = setTimeout(() => {
        timedOut = true;
        proc.kill();
      }, timeoutMs);
      const res = await proc.wait();
      clearTimeout(t);
      output = Buffer.concat([res.stdout ?? Buffer.alloc(0), res.stderr ?? Buffer.alloc(0)]).subarray(0, OUTPUT_BYTES).toString();
      if (timedOut) {
        // Docker: -1 and this text when the check outlived its timeout.
        exitCode = -1;
        output = `Health check exceeded timeout (${timeoutMs / 1000}s)`;
      } else exitCode = res.exitCode ?? (res.signal ? 128 + 9 : 1);
      if (res.status === 'setup-error') {
        exitCode = res.error?.code === 'ENOENT' ? 127 : 126;
        output = res.error?.message ?? 'the check could not be run';
      }
    } catch (e) {
      exitCode = -1;
      output = (e as Error).message;
    }
    if (this.stopped) return;
    const end = new Date();
    const inStartPeriod = Date.now() - this.startedAt < (this.cfg.StartPeriod ?? 0) / 1e6;
    try {
      update(this.id, (r) => {
        const s = r.State as { Health?: HealthState };
        const h: HealthState = s.Health ?? { Status: 'starting', FailingStreak: 0, Log: [] };
        h.Log = [...h.Log, { Start: start.toISOString(), End: end.toISOString(), ExitCode: exitCode, Output: output }].slice(-LOG_ENTRIES);
        if (exitCode === 0) {
          h.Status = 'healthy';
          h.FailingStreak = 0;
        } else if (!(inStartPeriod && h.Status === 'starting')) {
          // A failure during the start period does not count (Docker's rule), until a first success.
          h.FailingStreak++;
          if (h.FailingStreak >= (this.cfg.Retries ?? DEFAULT_RETRIES)) h.Status = 'unhealthy';
        }
        s.Health = h;
      });
    } catch {
      this.stop(); // removed meanwhile
    }
  }
}

/** "Up 3 minutes (healthy)" as docker ps shows it. */
export function healthSuffix(rec: ContainerRecord): string {
  const h = (rec.State as { Health?: HealthState }).Health;
  if (!h || !rec.State.Running) return '';
  return h.Status === 'starting' ? ' (health: starting)' : ` (${h.Status})`;
}
