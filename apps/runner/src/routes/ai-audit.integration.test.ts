import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createManualClock } from '@mana-ai/core';
import { type TestDatabase, type TestLoginRole, createTestDatabase } from '@mana-ai/test-postgres';
import type { FastifyInstance } from 'fastify';
import { type CryptoKey, type JWK, SignJWT, exportJWK, generateKeyPair } from 'jose';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type AppConfig, buildApp } from '../app.js';
import { createPassDispatcher, emptyTickStats } from '../host-dispatcher.js';

const ISSUER = 'https://auth.test.example';
const AUDIENCE = 'mana';
const ORIGIN = 'https://app.test.example';
const ROLE = `runner_audit_${Math.random().toString(36).slice(2, 10)}`;
const NOW_SECONDS = Date.parse('2025-10-26T01:30:00.000Z') / 1000;
const clock = createManualClock('2025-10-26T01:30:00.000Z');

let db: TestDatabase;
let role: TestLoginRole;
let jwks: Server;
let jwksUrl: string;
let signingKey: CryptoKey;
let otherKey: CryptoKey;
const apps: FastifyInstance[] = [];

const logLines: string[] = [];
// Everything the app logs, at the most verbose level, to check no token ever reaches the log.
const logger = pino({ level: 'trace' }, { write: (line: string) => void logLines.push(line) });

function app(overrides: Partial<AppConfig> = {}): FastifyInstance {
  const instance = buildApp(
    { sql: role.sql, logger, clock, dispatcher: createPassDispatcher(async () => emptyTickStats(clock), clock) },
    {
      serviceKey: 'test-service-key',
      tickIntervalMs: 60_000,
      tickEnabled: false,
      shutdownTimeoutMs: 1000,
      authUrl: 'http://127.0.0.1:1',
      authJwksUrl: jwksUrl,
      jwtIssuer: ISSUER,
      jwtAudience: AUDIENCE,
      corsOrigins: [ORIGIN],
      ...overrides,
    },
  );
  apps.push(instance);
  return instance;
}

interface TokenOptions {
  sub?: string | undefined;
  issuer?: string;
  audience?: string;
  /** Seconds since the epoch; `null` = no `exp` claim. */
  expiresAt?: number | null;
  key?: CryptoKey;
}

function token(options: TokenOptions = {}): Promise<string> {
  const payload = options.sub === undefined && 'sub' in options ? {} : { sub: options.sub ?? 'user-a' };
  const jwt = new SignJWT({ ...payload, email: 'a@test.example' })
    .setProtectedHeader({ alg: 'RS256', kid: 'test-key' })
    .setIssuer(options.issuer ?? ISSUER)
    .setAudience(options.audience ?? AUDIENCE)
    .setIssuedAt(NOW_SECONDS - 60);
  if (options.expiresAt !== null) jwt.setExpirationTime(options.expiresAt ?? NOW_SECONDS + 3600);
  return jwt.sign(options.key ?? signingKey);
}

async function audit(bearer: string | undefined, query = ''): Promise<{ statusCode: number; body: { rows?: Record<string, unknown>[]; error?: string; code?: string } }> {
  const response = await app().inject({
    method: 'GET',
    url: `/api/v1/me/ai-audit${query}`,
    headers: bearer === undefined ? {} : { authorization: `Bearer ${bearer}` },
  });
  return { statusCode: response.statusCode, body: response.json() };
}

beforeAll(async () => {
  db = await createTestDatabase();
  role = await db.loginRole(ROLE, ['USAGE ON SCHEMA mana_ai', 'SELECT ON mana_ai.decrypt_audit']);

  const pair = await generateKeyPair('RS256');
  signingKey = pair.privateKey;
  otherKey = (await generateKeyPair('RS256')).privateKey;
  const publicJwk: JWK = { ...(await exportJWK(pair.publicKey)), kid: 'test-key', alg: 'RS256', use: 'sig' };
  jwks = createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ keys: [publicJwk] }));
  });
  await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
  jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/api/v1/auth/jwks`;

  // Rows of two users, inserted as superuser with explicit timestamps (newest = highest n).
  await db.sql`
    INSERT INTO mana_ai.decrypt_audit (user_id, mission_id, iteration_id, table_name, record_id, status, reason, ts)
    SELECT 'user-a', CASE WHEN n % 2 = 0 THEN 'm-even' ELSE 'm-odd' END, 'it-' || n, 'notes', 'a' || n,
           CASE WHEN n = 3 THEN 'failed' ELSE 'ok' END, CASE WHEN n = 3 THEN 'ciphertext-malformed' END,
           timestamptz '2025-10-25T00:00:00Z' + n * interval '1 minute'
    FROM generate_series(1, 1005) AS n`;
  await db.sql`
    INSERT INTO mana_ai.decrypt_audit (user_id, mission_id, table_name, record_id, status, reason, ts)
    VALUES ('user-b', 'm-even', 'tasks', 'b1', 'scope-violation', 'table-not-in-grant', timestamptz '2025-10-26T00:00:00Z')`;
});

afterEach(async () => {
  await Promise.all(apps.splice(0).map((instance) => instance.close()));
});

afterAll(async () => {
  await new Promise((resolve) => jwks?.close(resolve));
  await role?.drop();
  await db.drop();
});

describe('GET /api/v1/me/ai-audit', () => {
  it('returns only the caller’s rows newest first in the docs/wire-contract.md#routes shape when the token is valid', async () => {
    const { statusCode, body } = await audit(await token());
    expect(statusCode).toBe(200);
    const rows = body.rows ?? [];
    expect(rows).toHaveLength(200);
    expect(rows.every((row) => String(row.recordId).startsWith('a'))).toBe(true);
    expect(rows.slice(0, 3).map((row) => row.recordId)).toEqual(['a1005', 'a1004', 'a1003']);
    expect(rows[0]).toEqual({
      id: expect.stringMatching(/^\d+$/),
      missionId: 'm-odd',
      iterationId: 'it-1005',
      tableName: 'notes',
      recordId: 'a1005',
      status: 'ok',
      reason: null,
      ts: new Date(Date.parse('2025-10-25T00:00:00Z') + 1005 * 60_000).toISOString(),
    });
  });

  it('filters by mission and clamps the limit when missionId and limit are given', async () => {
    const bearer = await token();
    const even = (await audit(bearer, '?missionId=m-even&limit=5')).body.rows ?? [];
    expect(even.map((row) => row.recordId)).toEqual(['a1004', 'a1002', 'a1000', 'a998', 'a996']);
    expect((await audit(bearer, '?limit=5000')).body.rows).toHaveLength(1000);
    expect((await audit(bearer, '?limit=0')).body.rows).toHaveLength(1);
    expect((await audit(bearer, '?limit=-3')).body.rows).toHaveLength(1);
    expect((await audit(bearer, '?limit=abc')).body.rows).toHaveLength(200);
    const failed = (await audit(bearer, '?missionId=m-odd&limit=1000')).body.rows ?? [];
    expect(failed).toHaveLength(503);
    expect(failed.find((row) => row.recordId === 'a3')).toMatchObject({ status: 'failed', reason: 'ciphertext-malformed' });
    // A NUL byte cannot be in any stored id: no rows, not a database error.
    expect(await audit(bearer, '?missionId=m-even%00')).toMatchObject({ statusCode: 200, body: { rows: [] } });
  });

  it('shows another user none of the first user’s rows when their token is used', async () => {
    const rows = (await audit(await token({ sub: 'user-b' }), '?limit=1000')).body.rows ?? [];
    expect(rows.map((row) => row.recordId)).toEqual(['b1']);
    expect((await audit(await token({ sub: 'user-c' }))).body.rows).toEqual([]);
  });

  it('answers 401 when the token is missing, malformed, or fails verification', async () => {
    const unsigned = (claims: Record<string, unknown>) =>
      `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.`;
    const rejected: [string, string | undefined][] = [
      ['missing header', undefined],
      ['not a jwt', 'garbage'],
      ['wrong issuer', await token({ issuer: 'https://evil.example' })],
      ['wrong audience', await token({ audience: 'someone-else' })],
      ['expired', await token({ expiresAt: NOW_SECONDS - 1 })],
      ['alg none', unsigned({ sub: 'user-a', iss: ISSUER, aud: AUDIENCE, exp: NOW_SECONDS + 3600 })],
      ['other key', await token({ key: otherKey })],
      ['no sub', await token({ sub: undefined })],
    ];
    for (const [label, bearer] of rejected) {
      const { statusCode, body } = await audit(bearer);
      expect({ label, statusCode, code: body.code, rows: body.rows }).toEqual({ label, statusCode: 401, code: 'RUNNER_UNAUTHENTICATED', rows: undefined });
    }
    expect((await audit(undefined)).body.error).toBe('missing authorization header');
    expect((await audit('garbage')).body.error).toBe('invalid or expired token');
    const logged = logLines.join('');
    expect(logged).toContain('jwt rejected');
    for (const [, bearer] of rejected) if (bearer !== undefined) expect(logged).not.toContain(bearer.split('.')[1] ?? bearer);
  });

  it('answers 401 over HTTP when the token has no exp, an exp beyond 24 hours, or a malformed sub', async () => {
    const server = app();
    const base = await server.listen({ host: '127.0.0.1', port: 0 });
    const get = async (bearer: string) => {
      const response = await fetch(`${base}/api/v1/me/ai-audit?limit=1`, { headers: { authorization: `Bearer ${bearer}` } });
      return { status: response.status, body: (await response.json()) as { code?: string; rows?: unknown[] } };
    };
    const rejected: [string, string][] = [
      ['no exp', await token({ expiresAt: null })],
      ['exp 24 h + 1 s ahead', await token({ expiresAt: NOW_SECONDS + 86_401 })],
      ['sub with NUL', await token({ sub: 'user-a\u0000' })],
      ['sub empty', await token({ sub: '' })],
      ['sub with a newline', await token({ sub: 'user-a\nuser-b' })],
      ['sub with a space', await token({ sub: 'user a' })],
      ['sub of 256 characters', await token({ sub: 'u'.repeat(256) })],
    ];
    for (const [label, bearer] of rejected) {
      const { status, body } = await get(bearer);
      expect({ label, status, code: body.code, rows: body.rows }).toEqual({ label, status: 401, code: 'RUNNER_UNAUTHENTICATED', rows: undefined });
    }
    for (const bearer of [await token({ expiresAt: NOW_SECONDS + 86_400 }), await token({ sub: 'u'.repeat(255) }), await token({ sub: 'usér-ä' })]) {
      expect((await get(bearer)).status).toBe(200);
    }
    expect((await get(await token())).body.rows).toHaveLength(1);
    const logged = logLines.join('');
    expect(logged).toContain('exp-too-far');
    expect(logged).toContain('sub-malformed');
  });

  it('rejects an HS256 token when it is signed with a symmetric secret', async () => {
    const secret = new TextEncoder().encode('a-shared-secret-that-is-long-enough-for-hs256');
    const hs = await new SignJWT({ sub: 'user-a' })
      .setProtectedHeader({ alg: 'HS256', kid: 'test-key' })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setExpirationTime(NOW_SECONDS + 3600)
      .sign(secret);
    expect((await audit(hs)).statusCode).toBe(401);
  });

  it('answers as the dev user without a token only when NODE_ENV is development and the bypass is on', async () => {
    const bypass = { nodeEnv: 'development', devBypassAuth: true, devUserId: 'user-b' };
    const dev = await app(bypass).inject({ method: 'GET', url: '/api/v1/me/ai-audit' });
    expect(dev.json().rows.map((row: { recordId: string }) => row.recordId)).toEqual(['b1']);
    const production = await app({ ...bypass, nodeEnv: 'production' }).inject({ method: 'GET', url: '/api/v1/me/ai-audit' });
    expect(production.statusCode).toBe(401);
  });

  it('allows a CORS preflight from a configured origin and not from another one', async () => {
    const preflight = (origin: string) =>
      app().inject({
        method: 'OPTIONS',
        url: '/api/v1/me/ai-audit',
        headers: { origin, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' },
      });
    const allowed = await preflight(ORIGIN);
    expect(allowed.statusCode).toBe(204);
    expect(allowed.headers['access-control-allow-origin']).toBe(ORIGIN);
    expect(String(allowed.headers['access-control-allow-headers']).toLowerCase()).toContain('authorization');
    const other = await preflight('https://evil.example');
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
    const actual = await app().inject({ method: 'GET', url: '/api/v1/me/ai-audit', headers: { origin: ORIGIN, authorization: `Bearer ${await token()}` } });
    expect(actual.headers['access-control-allow-origin']).toBe(ORIGIN);
  });

  it('adds no CORS headers outside /api/v1/me when an allowed origin calls', async () => {
    const health = await app().inject({ method: 'GET', url: '/health', headers: { origin: ORIGIN } });
    expect(health.headers['access-control-allow-origin']).toBeUndefined();
  });
});
