import type { FastifyInstance } from 'fastify';

export default async function containers(app: FastifyInstance): Promise<void> {
  void app;
}
