import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';

/** Options of the service-auth plugin. */
export interface ServiceAuthOptions {
  /** The expected `X-Service-Key`. */
  serviceKey: string;
  /** Path prefix that requires the key (default `/internal`). */
  prefix?: string;
}

/** The exact 401 body of docs/wire-contract.md#routes. */
export const SERVICE_KEY_REJECTED = { error: 'invalid or missing service key' } as const;

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/**
 * Returns a checker comparing a provided key with `expected` in constant time: both sides are
 * hashed to equal-length digests first, so neither length nor content leaks through timing.
 */
export function createServiceKeyCheck(expected: string): (provided: unknown) => boolean {
  const expectedDigest = digest(expected);
  return (provided) => {
    // A missing or repeated header is hashed like any other value so every path does the same work.
    const candidate = typeof provided === 'string' ? provided : '';
    const matches = timingSafeEqual(digest(candidate), expectedDigest);
    return matches && typeof provided === 'string' && provided.length > 0;
  };
}

function pathOf(url: string): string {
  const path = url.split('?', 1)[0] ?? '';
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

function isUnder(path: string, prefix: string): boolean {
  return path === prefix || path.startsWith(`${prefix}/`);
}

async function serviceAuthPlugin(app: FastifyInstance, options: ServiceAuthOptions): Promise<void> {
  const prefix = options.prefix ?? '/internal';
  const check = createServiceKeyCheck(options.serviceKey);
  const protectedRequest = (request: FastifyRequest): boolean => {
    const route = request.routeOptions.url;
    // The matched route decides; unmatched URLs are judged by their decoded path so that unknown
    // internal paths answer 401 without a key and 404 with one.
    if (route !== undefined) return isUnder(route, prefix);
    return isUnder(pathOf(request.url).replace(/\/{2,}/g, '/').toLowerCase(), prefix.toLowerCase());
  };
  app.addHook('onRequest', async (request, reply) => {
    if (!protectedRequest(request)) return;
    if (check(request.headers['x-service-key'])) return;
    return reply.code(401).send(SERVICE_KEY_REJECTED);
  });
}

/** Requires `X-Service-Key` on every request under `/internal` (matched or not). */
export default fp(serviceAuthPlugin, { name: 'mana-ai-service-auth', fastify: '5.x' });
