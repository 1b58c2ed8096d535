// The Engine API's routes: one fastify plugin per family. i26b's images,
// volumes and networks plug in here the same way.
import type { FastifyInstance } from 'fastify';
import containers from './containers.js';
import exec from './exec.js';
import system from './system.js';

export default async function registerRoutes(app: FastifyInstance): Promise<void> {
  await app.register(system);
  await app.register(containers);
  await app.register(exec);
}
