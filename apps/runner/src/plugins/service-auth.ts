import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';

/** Options of the service-auth plugin. */
export interface ServiceAuthOptions {
  /** The expected `X-Service-Key`. */
  serviceKey: string;
  /** A key being rotated out (`MANA_SERVICE_KEY_PREVIOUS`), accepted as well. */
  previousServiceKey?: string | undefined;
  /** Path prefix that requires the key (default `/internal`). */
  prefix?: string;
}

/** The exact 401 body of docs/wire-contract.md#routes. */
export const SERVICE_KEY_REJECTED = { error: 'invalid or missing service key' } as const;

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/**
 * Returns a checker comparing a provided key with each of `expected` in constant time: both sides
 * are hashed to equal-length digests first, and every expected key is compared, so neither length,
 * content nor which key matched leaks through timing.
 */
export function createServiceKeyCheck(...expected: readonly string[]): (provided: unknown) => boolean {
  const expectedDigests = expected.map(digest);
  return (provided) => {
    // A missing or repeated header is hashed like any other value so every path does the same work.
    const candidate = digest(typeof provided === 'string' ? provided : '');
    const matches = expectedDigests.map((expectedDigest) => timingSafeEqual(candidate, expectedDigest)).includes(true);
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
  const check = createServiceKeyCheck(options.serviceKey, ...(options.previousServiceKey === undefined ? [] : [options.previousServiceKey]));
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

/** Requires `X-Service-Key` (the current key, or the previous one during a rotation) on every request under `/internal` (matched or not). */
export default fp(serviceAuthPlugin, { name: 'mana-ai-service-auth', fastify: '5.x' });
