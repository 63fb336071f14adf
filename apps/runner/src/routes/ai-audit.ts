import cors from '@fastify/cors';
import type { Clock } from '@mana-ai/core';
import { createDecryptAudit } from '@mana-ai/resolvers';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { type JWTPayload, createRemoteJWKSet, jwtVerify } from 'jose';
import type { Sql } from 'postgres';
import { RunnerError } from '../errors.js';

/** The only JWT algorithms accepted: asymmetric ones (never `none`, never HMAC). */
export const JWT_ALGORITHMS: readonly string[] = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];

/**
 * Longest a user token may still be valid: its `exp` must lie at most 24 hours after the app's
 * clock. A token without `exp` is refused, so a leaked token stops working within a day.
 */
export const MAX_JWT_LIFETIME_S = 86_400;

/** Longest accepted user id (`sub`). */
export const MAX_USER_ID_LENGTH = 255;

// A user id is printable: no control characters (NUL included: PostgreSQL text cannot hold it), no
// whitespace, no lone surrogates, 1 … 255 code points.
const PLAUSIBLE_USER_ID = new RegExp(`^[^\\p{Cc}\\p{Cs}\\s]{1,${MAX_USER_ID_LENGTH}}$`, 'u');

/** Whether `value` can be a user id (the JWT `sub`): see {@link MAX_USER_ID_LENGTH}. */
export function isPlausibleUserId(value: unknown): value is string {
  return typeof value === 'string' && PLAUSIBLE_USER_ID.test(value);
}

/** Options of the audit route. */
export interface AiAuditRouteOptions {
  /** The app's postgres.js client; reads run under the caller's RLS scope. */
  sql: Sql;
  /** Decides token expiry. */
  clock: Clock;
  /** URL of the JWKS that verifies user tokens. */
  jwksUrl: string;
  /** Accepted `iss` values. */
  issuers: readonly string[];
  /** Required `aud`. */
  audience: string;
  /** Browser origins allowed by CORS (none when empty). */
  corsOrigins: readonly string[];
  /** When set, no token is verified and every request is this user (development only). */
  bypassUserId?: string | undefined;
}

/** Path of the audit route (docs/wire-contract.md#routes). */
export const AI_AUDIT_PATH = '/api/v1/me/ai-audit';

const PREFIX = '/api/v1/me';

function unauthenticated(message: string): RunnerError {
  return new RunnerError('RUNNER_UNAUTHENTICATED', message);
}

function single(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

async function aiAuditScope(app: FastifyInstance, options: AiAuditRouteOptions): Promise<void> {
  const allowed = new Set(options.corsOrigins);
  // Registered inside this prefixed scope, its preflight route and headers cover /api/v1/me/* only.
  await app.register(cors, {
    origin: (origin, callback) => callback(null, origin !== undefined && allowed.has(origin)),
    methods: ['GET'],
    allowedHeaders: ['Authorization', 'Content-Type'],
    maxAge: 600,
  });
  const audit = createDecryptAudit({ sql: options.sql });
  // The remote set fetches lazily, caches keys and refetches on an unknown `kid`.
  const keys = createRemoteJWKSet(new URL(options.jwksUrl));

  const authenticate = async (request: FastifyRequest): Promise<string> => {
    if (options.bypassUserId !== undefined) return options.bypassUserId;
    const header = request.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!match?.[1]) throw unauthenticated('missing authorization header');
    // The reason (bad signature, issuer, JWKS unreachable, lifetime…) is logged by class only; never the token.
    const reject = (reason: string): RunnerError => {
      request.log.info({ error: reason }, 'jwt rejected');
      return unauthenticated('invalid or expired token');
    };
    const now = options.clock.now();
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(match[1], keys, {
        algorithms: [...JWT_ALGORITHMS],
        issuer: [...options.issuers],
        audience: options.audience,
        requiredClaims: ['exp', 'sub'],
        currentDate: new Date(now),
      }));
    } catch (error) {
      throw reject(error instanceof Error ? error.name : 'unknown');
    }
    if ((payload.exp ?? Number.POSITIVE_INFINITY) > now / 1000 + MAX_JWT_LIFETIME_S) throw reject('exp-too-far');
    if (!isPlausibleUserId(payload.sub)) throw reject('sub-malformed');
    return payload.sub;
  };

  app.get('/ai-audit', async (request) => {
    const userId = await authenticate(request);
    const query = (request.query ?? {}) as Record<string, unknown>;
    const missionId = single(query.missionId);
    const limitText = single(query.limit);
    // PostgreSQL text cannot hold NUL: no audit row can match such an id.
    if (missionId?.includes('\u0000')) return { rows: [] };
    const rows = await audit.read(userId, {
      missionId: missionId === undefined || missionId === '' ? undefined : missionId,
      limit: limitText === undefined ? undefined : Number.parseInt(limitText, 10),
    });
    return { rows };
  });
}

/**
 * `GET /api/v1/me/ai-audit?missionId=&limit=`: the caller's decrypt audit rows, newest first, as
 * `{rows}` (docs/wire-contract.md#routes). Requires a JWT verified against the JWKS; CORS for the configured origins.
 */
export default async function aiAuditRoute(app: FastifyInstance, options: AiAuditRouteOptions): Promise<void> {
  await app.register(aiAuditScope, { ...options, prefix: PREFIX });
}
