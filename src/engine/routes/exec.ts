import type { FastifyInstance } from 'fastify';

export default async function exec(app: FastifyInstance): Promise<void> {
  void app;
}
