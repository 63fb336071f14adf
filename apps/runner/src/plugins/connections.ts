import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';

/** How long closing waits for requests in flight to answer before it closes their connections. */
export const REQUEST_DRAIN_MS = 5000;

async function connectionsPlugin(app: FastifyInstance): Promise<void> {
  let inFlight = 0;
  let drained: (() => void) | undefined;
  app.addHook('onRequest', async (_request, reply) => {
    inFlight++;
    reply.raw.once('close', () => {
      inFlight--;
      if (inFlight === 0) drained?.();
    });
  });
  // Node's server.close() waits for every open connection, and one that sent half a request is
  // never idle: without this, one such client holds shutdown until the hard limit.
  app.addHook('preClose', async () => {
    if (inFlight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, REQUEST_DRAIN_MS);
        drained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    app.server.closeAllConnections();
  });
}

/**
 * On close, lets the requests in flight answer (at most {@link REQUEST_DRAIN_MS}), then closes
 * every HTTP connection: idle keep-alive ones and half-sent requests alike.
 */
export default fp(connectionsPlugin, { name: 'mana-ai-connections', fastify: '5.x' });
