import type { FastifyInstance } from 'fastify';

/**
 * `POST /internal/tick` (service key, see the service-auth plugin): one pass now — refresh, claim
 * every due mission, plan — answered with its TickStats; `overlap-skipped` while another pass is open.
 */
export default async function internalTickRoute(app: FastifyInstance): Promise<void> {
  // The body is ignored, as upstream did; accept an empty JSON body instead of failing with 400.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, _body, done) => done(null, undefined));
  app.post('/internal/tick', async () => app.dispatcher.dispatcher.runPass());
}
