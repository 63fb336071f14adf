import { type KeyObject, createHmac, generateKeyPairSync, sign } from 'node:crypto';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/** JWT parts as plain objects; signed by {@link signJwt}. */
export interface JwtParts {
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
}

function base64url(value: Buffer | string): string {
  return Buffer.from(value).toString('base64url');
}

/** The signing input `<header>.<payload>` of a JWT. */
export function signingInput(parts: JwtParts): string {
  return `${base64url(JSON.stringify(parts.header))}.${base64url(JSON.stringify(parts.payload))}`;
}

/** Signs with RS256 (`privateKey`), HS256 (`secret`) or not at all (`alg: none`), whatever the header says. */
export function signJwt(parts: JwtParts, key: { rsa: KeyObject } | { hmac: Buffer | string } | { none: true }): string {
  const input = signingInput(parts);
  if ('rsa' in key) return `${input}.${base64url(sign('sha256', Buffer.from(input), key.rsa))}`;
  if ('hmac' in key) return `${input}.${base64url(createHmac('sha256', key.hmac).update(input).digest())}`;
  return `${input}.`;
}

/** An RSA key pair with its public JWK (kid, alg, use set). */
export interface TestSigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** The SPKI PEM of the public key, as an attacker would find it. */
  publicPem: string;
  jwk: Record<string, unknown>;
}

/** Generates an RS256 key (2048 bits) with the given `kid`. */
export function generateSigningKey(kid: string): TestSigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    privateKey,
    publicKey,
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' },
  };
}

/** A local JWKS endpoint serving `keys`; counts its requests. */
export interface JwksServer {
  url: string;
  requests: number;
  close(): Promise<void>;
}

/** Serves `{ keys }` at `/api/v1/auth/jwks` on 127.0.0.1. */
export async function startJwksServer(keys: readonly Record<string, unknown>[]): Promise<JwksServer> {
  const state = { requests: 0 };
  const server: Server = createServer((_request, response) => {
    state.requests += 1;
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ keys }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1/auth/jwks`;
  return {
    url,
    get requests() {
      return state.requests;
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
