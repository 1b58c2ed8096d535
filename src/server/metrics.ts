// Prometheus metrics (prom-client), in a registry of the server's own so two
// servers in one process (tests, embedding) do not share counters.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface Metrics {
  registry: Registry;
  runs: Counter<'status' | 'language'>;
  runSeconds: Histogram<'language'>;
  requestSeconds: Histogram<'method' | 'route' | 'code'>;
  rejected: Counter<'reason'>;
}

export function createMetrics(queue: { depth: number; active: number }): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'brig_serve_' });
  new Gauge({ name: 'brig_queue_depth', help: 'Jobs waiting for a worker', registers: [registry], collect() { this.set(queue.depth); } });
  new Gauge({ name: 'brig_queue_active', help: 'Jobs a worker is running', registers: [registry], collect() { this.set(queue.active); } });
  return {
    registry,
    runs: new Counter({ name: 'brig_runs_total', help: "Finished jobs by brig's run status (compile-error for a failed compile stage)", labelNames: ['status', 'language'], registers: [registry] }),
    runSeconds: new Histogram({ name: 'brig_run_duration_seconds', help: 'Wall time of a job, compile and run, queue wait excluded', labelNames: ['language'], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [registry] }),
    requestSeconds: new Histogram({ name: 'brig_http_request_duration_seconds', help: 'HTTP request latency, queue wait included', labelNames: ['method', 'route', 'code'], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [registry] }),
    rejected: new Counter({ name: 'brig_rejected_total', help: 'Jobs refused before running (queue full, shutting down)', labelNames: ['reason'], registers: [registry] }),
  };
}
