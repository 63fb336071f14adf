import type { Clock } from '@mana-ai/core';
import { type CryptoKey, SignJWT, importPKCS8 } from 'jose';
import type { RunnerConfig } from './config.js';

/** Lifetime of one per-user JWT sent to mana-api. */
export const API_JWT_TTL_SECONDS = 300;

/** The settings {@link createApiJwtSigner} reads. */
export type ApiJwtConfig = Pick<RunnerConfig, 'apiJwtAlgorithm' | 'apiJwtKeyId' | 'apiJwtIssuer' | 'apiJwtTier' | 'jwtAudience'> & {
  /** `MANA_API_JWT_PRIVATE_KEY_PEM`, required here. */
  apiJwtPrivateKeyPem: string;
};

/**
 * Signs the short-lived JWTs of `MANA_API_AUTH=jwt`: `sub` is the mission's user, `aud` is
 * `JWT_AUDIENCE`, `iss` and `tier` come from the config, valid for {@link API_JWT_TTL_SECONDS} on
 * `clock`. These are the claims mana-api's news-research routes check (docs/wire-contract.md#shallow-research).
 * The key is imported once, on the first token.
 */
export function createApiJwtSigner(config: ApiJwtConfig, clock: Clock): (request: { userId: string }) => Promise<string> {
  let key: Promise<CryptoKey> | undefined;
  return async ({ userId }) => {
    key ??= importPKCS8(config.apiJwtPrivateKeyPem, config.apiJwtAlgorithm);
    const now = Math.floor(clock.now() / 1000);
    return new SignJWT({ tier: config.apiJwtTier })
      .setProtectedHeader({ alg: config.apiJwtAlgorithm, typ: 'JWT', ...(config.apiJwtKeyId ? { kid: config.apiJwtKeyId } : {}) })
      .setSubject(userId)
      .setIssuer(config.apiJwtIssuer)
      .setAudience(config.jwtAudience)
      .setIssuedAt(now)
      .setExpirationTime(now + API_JWT_TTL_SECONDS)
      .sign(await key);
  };
}
