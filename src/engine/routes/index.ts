// The Engine API's routes: one fastify plugin per family. i26b's images,
// volumes and networks plug in here the same way.
import type { FastifyInstance } from 'fastify';
import containers from './containers.js';
import exec from './exec.js';
import auth from './auth.js';
import images from './images.js';
import networks from './networks.js';
import system from './system.js';
import volumes from './volumes.js';

export default async function registerRoutes(app: FastifyInstance): Promise<void> {
  await app.register(system);
  await app.register(containers);
  await app.register(exec);
  await app.register(images);
  await app.register(volumes);
  await app.register(networks);
  await app.register(auth);
}
