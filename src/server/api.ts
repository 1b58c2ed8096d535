// The service's entry in brig's library API: fastify and its plugins load
// only when a server is made, so `import 'brig'` stays as quick as before.
import type { BrigServer, ServerOptions } from './index.js';

export type { BrigServer, ServerOptions, ServeConfig, JobQueue, ServiceJob, ServiceResult, ExecuteJob, ExecuteResult } from './index.js';

/** The execution service (Piston and Judge0 APIs, /v1/runs, metrics, playground) as a fastify server, not yet listening. */
export async function createServer(options: ServerOptions = {}): Promise<BrigServer> {
  const m = await import('./index.js');
  return m.createServer(options);
}
