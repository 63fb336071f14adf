import type { FastifyInstance } from 'fastify';

/** `GET /metrics`: the Prometheus exposition of this app's registry. */
export default async function metricsRoute(app: FastifyInstance): Promise<void> {
  app.get('/metrics', { logLevel: 'warn' }, async (_request, reply) => {
    const body = await app.metrics.registry.metrics();
    return reply.type(app.metrics.registry.contentType).send(body);
  });
}
