import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createManualClock } from '@mana-ai/core';
import fc from 'fast-check';
import type { Sql } from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../../apps/runner/src/app.js';
import { createLogger } from '../../../apps/runner/src/logger.js';
import { createPassDispatcher, emptyTickStats } from '../../../apps/runner/src/host-dispatcher.js';
import { type TestDatabase, connectAsRunner, createTestDatabase } from '../support/security-database.js';
import { type JwksServer, type JwtParts, type TestSigningKey, generateSigningKey, signJwt, startJwksServer } from '../support/security-jwt.js';

type App = ReturnType<typeof buildApp>;

const ISSUER = 'https://auth.system-test.example';
const AUDIENCE = 'mana';
const NOW = '2026-05-01T00:00:00.000Z';
const NOW_S = Date.parse(NOW) / 1000;
const clock = createManualClock(NOW);

let db: TestDatabase;
let runner: Sql;
let jwks: JwksServer;
let trusted: TestSigningKey;
let stranger: TestSigningKey;
let app: App;
const logLines: string[] = [];

function claims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { sub: 'u-jwt', iss: ISSUER, aud: AUDIENCE, iat: NOW_S - 60, exp: NOW_S + 3600, ...overrides };
}

function rs256(payload: Record<string, unknown>, header: Record<string, unknown> = {}, key: TestSigningKey = trusted): string {
  const parts: JwtParts = { header: { alg: 'RS256', typ: 'JWT', kid: 'trusted', ...header }, payload };
  return signJwt(parts, { rsa: key.privateKey });
}

async function audit(token: string): Promise<{ status: number; body: Record<string, unknown>; raw: string }> {
  const response = await app.inject({ method: 'GET', url: '/api/v1/me/ai-audit', headers: { authorization: `Bearer ${token}` } });
  return { status: response.statusCode, body: response.json(), raw: response.body };
}

beforeAll(async () => {
  db = await createTestDatabase();
  runner = await connectAsRunner(db);
  trusted = generateSigningKey('trusted');
  stranger = generateSigningKey('trusted');
  jwks = await startJwksServer([trusted.jwk]);
  app = buildApp(
    {
      sql: runner,
      logger: createLogger({ level: 'trace', destination: { write: (line: string) => void logLines.push(line) } }),
      clock,
      dispatcher: createPassDispatcher(async () => emptyTickStats(clock), clock),
    },
    {
      serviceKey: 'jwt-suite-service-key',
      tickIntervalMs: 60_000,
      tickEnabled: false,
      shutdownTimeoutMs: 1000,
      authUrl: 'http://127.0.0.1:1',
      authJwksUrl: jwks.url,
      jwtIssuer: ISSUER,
      jwtAudience: AUDIENCE,
      // Production: the development bypass must not apply even though it is switched on.
      nodeEnv: 'production',
      devBypassAuth: true,
      devUserId: 'u-jwt',
    },
  );
  await db.sql`
    INSERT INTO mana_ai.decrypt_audit (user_id, mission_id, table_name, record_id, status)
    VALUES ('u-jwt', 'm-1', 'notes', 'n-1', 'ok'), ('u-other', 'm-1', 'notes', 'n-secret', 'ok')`;
});
afterAll(async () => {
  await app?.close();
  await jwks?.close();
  await db.drop();
});

describe('GET /api/v1/me/ai-audit token verification', () => {
  it('answers 200 with the caller’s rows only when the token is valid', async () => {
    const { status, body } = await audit(rs256(claims()));
    expect(status).toBe(200);
    expect((body.rows as { recordId: string }[]).map((row) => row.recordId)).toEqual(['n-1']);
  });

  it('answers 401 for every forged, misdirected or stale token', async () => {
    const unsignedHeader = { alg: 'none', typ: 'JWT' };
    const cases: [string, string][] = [
      ['wrong issuer', rs256(claims({ iss: 'https://evil.example' }))],
      ['issuer with trailing slash', rs256(claims({ iss: `${ISSUER}/` }))],
      ['no issuer', rs256(claims({ iss: undefined }))],
      ['wrong audience', rs256(claims({ aud: 'mana-admin' }))],
      ['audience list without ours', rs256(claims({ aud: ['a', 'b'] }))],
      ['no audience', rs256(claims({ aud: undefined }))],
      ['expired', rs256(claims({ exp: NOW_S - 1 }))],
      ['expired long ago', rs256(claims({ exp: 1, iat: 0 }))],
      ['not yet valid', rs256(claims({ nbf: NOW_S + 600 }))],
      ['exp as a string', rs256(claims({ exp: String(NOW_S + 3600) }))],
      ['no sub', rs256(claims({ sub: undefined }))],
      ['empty sub', rs256(claims({ sub: '' }))],
      ['sub not a string', rs256(claims({ sub: 42 }))],
      ['alg none', signJwt({ header: unsignedHeader, payload: claims() }, { none: true })],
      ['alg NONE', signJwt({ header: { alg: 'NONE' }, payload: claims() }, { none: true })],
      ['alg none with a signature', `${signJwt({ header: unsignedHeader, payload: claims() }, { none: true })}c2ln`],
      ['HS256 with the public PEM', signJwt({ header: { alg: 'HS256', kid: 'trusted' }, payload: claims() }, { hmac: trusted.publicPem })],
      ['HS256 with the modulus', signJwt({ header: { alg: 'HS256', kid: 'trusted' }, payload: claims() }, { hmac: Buffer.from(String(trusted.jwk.n), 'base64url') })],
      ['HS256 with the JWK text', signJwt({ header: { alg: 'HS256', kid: 'trusted' }, payload: claims() }, { hmac: JSON.stringify(trusted.jwk) })],
      ['key not in the JWKS, same kid', rs256(claims(), {}, stranger)],
      ['key not in the JWKS, other kid', rs256(claims(), { kid: 'stranger' }, stranger)],
      ['embedded jwk of the signer', rs256(claims(), { jwk: stranger.jwk }, stranger)],
      ['jku pointing elsewhere', rs256(claims(), { jku: 'http://127.0.0.1:1/jwks', kid: 'stranger' }, stranger)],
      ['RS256 signature under an RS512 header', rs256(claims(), { alg: 'RS512' })],
      ['critical unknown extension', rs256(claims(), { crit: ['x-mana'], 'x-mana': true })],
      ['payload swapped after signing', (() => {
        const [header, , signature] = rs256(claims()).split('.');
        return `${header}.${Buffer.from(JSON.stringify(claims({ sub: 'u-other' }))).toString('base64url')}.${signature}`;
      })()],
      ['two tokens glued', `${rs256(claims())}.${rs256(claims())}`],
      ['not a JWT', 'garbage'],
      ['empty segments', '..'],
    ];
    for (const [label, token] of cases) {
      const { status, body, raw } = await audit(token);
      expect({ label, status, code: body.code }).toEqual({ label, status: 401, code: 'RUNNER_UNAUTHENTICATED' });
      expect(raw).not.toContain(token);
    }
  });

  it('answers 401 for malformed Authorization headers and never uses the development bypass in production', async () => {
    const token = rs256(claims());
    for (const authorization of ['', 'Bearer', 'Bearer ', `Basic ${token}`, `Token ${token}`, `Bearer ${token} extra`, `Bearer${token}`]) {
      const response = await app.inject({ method: 'GET', url: '/api/v1/me/ai-audit', headers: authorization === '' ? {} : { authorization } });
      expect({ authorization: authorization.slice(0, 12), status: response.statusCode }).toEqual({ authorization: authorization.slice(0, 12), status: 401 });
    }
  });

  it('answers 401, never 200 or 5xx, when any part of a valid token is mutated', async () => {
    const token = rs256(claims());
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: token.length - 1 }),
        fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.'),
        async (index, char) => {
          const mutated = `${token.slice(0, index)}${char}${token.slice(index + 1)}`;
          fc.pre(mutated !== token);
          const { status } = await audit(mutated);
          // A changed last character may only flip unused padding bits of the signature.
          if (index === token.length - 1 && status === 200) return;
          expect({ index, status }).toEqual({ index, status: 401 });
        },
      ),
      { seed: 5, numRuns: 120 },
    );
  });

  it('answers 401, never 5xx, when the JWKS is unreachable, failing or malformed', async () => {
    const bodies: [number, string][] = [
      [500, '{"error":"down"}'],
      [200, 'not json'],
      [200, '{"keys": "nope"}'],
      [200, JSON.stringify({ keys: [{ ...trusted.jwk, n: 'AAAA' }] })],
      [200, JSON.stringify({ keys: [{ kty: 'oct', k: Buffer.from(trusted.publicPem).toString('base64url'), kid: 'trusted', alg: 'HS256' }] })],
    ];
    let index = 0;
    const broken = createServer((_request, response) => {
      const [status, body] = bodies[index] ?? [500, ''];
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(body);
    });
    await new Promise<void>((resolve) => broken.listen(0, '127.0.0.1', resolve));
    const brokenUrl = `http://127.0.0.1:${(broken.address() as AddressInfo).port}/jwks`;
    const hmacToken = signJwt({ header: { alg: 'HS256', kid: 'trusted' }, payload: claims() }, { hmac: trusted.publicPem });
    try {
      for (const jwksUrl of [...bodies.map(() => brokenUrl), 'http://127.0.0.1:1/jwks']) {
        const instance = buildApp(
          { sql: runner, logger: createLogger({ level: 'silent' }), clock, dispatcher: createPassDispatcher(async () => emptyTickStats(clock), clock) },
          { serviceKey: 'k', tickIntervalMs: 60_000, tickEnabled: false, shutdownTimeoutMs: 1000, authJwksUrl: jwksUrl, jwtIssuer: ISSUER, jwtAudience: AUDIENCE },
        );
        try {
          for (const token of [rs256(claims()), hmacToken]) {
            const response = await instance.inject({ method: 'GET', url: '/api/v1/me/ai-audit', headers: { authorization: `Bearer ${token}` } });
            expect({ index, status: response.statusCode }).toEqual({ index, status: 401 });
          }
        } finally {
          await instance.close();
        }
        index += 1;
      }
    } finally {
      await new Promise((resolve) => broken.close(resolve));
    }
  });

  it('never logs a token, whether it was accepted or rejected', async () => {
    await audit(rs256(claims({ sub: 'u-logged' })));
    const logged = logLines.join('\n');
    expect(logged).toContain('jwt rejected');
    for (const line of logLines) expect(line).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}/);
  });
});
