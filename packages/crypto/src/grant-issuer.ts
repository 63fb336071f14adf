import { type Clock, type GrantDerivation, type MissionGrant, type WebCryptoKey, systemClock } from '@mana-ai/core';
import { encodeBase64 } from './base64.js';
import { GRANT_DERIVATION_VERSION, deriveMissionDataKeyRaw } from './derivation.js';
import { CryptoError } from './errors.js';
import { importRsaPublicKey } from './pem.js';
import { platformKey, subtle } from './subtle.js';

/** Default grant lifetime: 7 days. */
export const DEFAULT_GRANT_TTL_MS = 604_800_000;
/** Shortest grant lifetime: 1 hour. */
export const MIN_GRANT_TTL_MS = 3_600_000;
/** Longest grant lifetime: 30 days. */
export const MAX_GRANT_TTL_MS = 2_592_000_000;
/** Most record ids one grant may cover. */
export const MAX_GRANT_RECORD_IDS = 1000;

/** The body of a grant request (`POST /api/v1/me/ai-mission-grant` on the auth service). */
export interface GrantRequest {
  missionId: string;
  tables: string[];
  /** `"<table>:<id>"` entries. */
  recordIds: string[];
  /** Requested lifetime, clamped to 1 h … 30 d (default 7 d). */
  ttlMs?: number;
}

/** Collaborators of {@link createGrantIssuer}. */
export interface GrantIssuerDeps {
  /** Source of `issuedAt`/`expiresAt` (default: the system clock). */
  clock?: Clock;
}

/** Options of {@link createGrantIssuer}. */
export interface GrantIssuerOptions {
  /** The runner's RSA public key (SPKI PEM or imported key); absent = grants not configured. */
  publicKey?: WebCryptoKey | string | null;
}

/** Issues mission grants the way the auth service does. */
export interface GrantIssuer {
  /** True when a public key is configured. */
  readonly configured: boolean;
  /**
   * Validates `request`, derives the mission data key from `masterKey` and wraps it for the runner.
   * Takes ownership of `masterKey`: its bytes are zero-filled before this returns or throws.
   * Throws `CRYPTO_GRANT_NOT_CONFIGURED` (checked first), `CRYPTO_INVALID_GRANT_REQUEST`,
   * `CRYPTO_INVALID_MASTER_KEY`.
   */
  issue(masterKey: Uint8Array, request: GrantRequest): Promise<MissionGrant>;
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((entry) => typeof entry === 'string');
}

function invalid(message: string): CryptoError {
  return new CryptoError('CRYPTO_INVALID_GRANT_REQUEST', message);
}

/**
 * Checks a grant request with the auth service's rules and messages (`missionId is required`,
 * `tables must be a non-empty array`, `recordIds must be a non-empty array`,
 * `recordIds must not exceed 1000 entries`); throws `CRYPTO_INVALID_GRANT_REQUEST`.
 */
export function validateGrantRequest(input: unknown): GrantRequest {
  if (typeof input !== 'object' || input === null) throw invalid('missionId is required');
  const value = input as Record<string, unknown>;
  if (typeof value.missionId !== 'string' || value.missionId === '') throw invalid('missionId is required');
  if (!isStringArray(value.tables) || value.tables.length === 0) throw invalid('tables must be a non-empty array');
  if (!isStringArray(value.recordIds) || value.recordIds.length === 0) {
    throw invalid('recordIds must be a non-empty array');
  }
  if (value.recordIds.length > MAX_GRANT_RECORD_IDS) {
    throw invalid(`recordIds must not exceed ${MAX_GRANT_RECORD_IDS} entries`);
  }
  if (value.ttlMs !== undefined && (typeof value.ttlMs !== 'number' || !Number.isFinite(value.ttlMs))) {
    throw invalid('ttlMs must be a finite number');
  }
  return {
    missionId: value.missionId,
    tables: value.tables,
    recordIds: value.recordIds,
    ...(value.ttlMs === undefined ? {} : { ttlMs: value.ttlMs }),
  };
}

/** The lifetime a grant gets: `ttlMs` (default 7 d) clamped to 1 h … 30 d. */
export function clampGrantTtl(ttlMs: number | undefined): number {
  return Math.min(MAX_GRANT_TTL_MS, Math.max(MIN_GRANT_TTL_MS, ttlMs ?? DEFAULT_GRANT_TTL_MS));
}

/**
 * Creates a grant issuer. With a PEM, the key is imported lazily on first use (import errors
 * such as `CRYPTO_PKCS1_NOT_SUPPORTED` surface from `issue`).
 */
export function createGrantIssuer(deps: GrantIssuerDeps = {}, options: GrantIssuerOptions = {}): GrantIssuer {
  const clock = deps.clock ?? systemClock;
  const source = options.publicKey ?? null;
  let publicKey: Promise<WebCryptoKey> | null = null;
  const keyFor = (pemOrKey: WebCryptoKey | string): Promise<WebCryptoKey> => {
    publicKey ??= typeof pemOrKey === 'string' ? importRsaPublicKey(pemOrKey) : Promise.resolve(pemOrKey);
    return publicKey;
  };
  return {
    configured: source !== null && source !== '',
    async issue(masterKey, request) {
      let mdk: Uint8Array<ArrayBuffer> | undefined;
      try {
        if (source === null || source === '') {
          throw new CryptoError('CRYPTO_GRANT_NOT_CONFIGURED', 'mission grants are not configured on this server');
        }
        const valid = validateGrantRequest(request);
        const derivation: GrantDerivation = {
          version: GRANT_DERIVATION_VERSION,
          missionId: valid.missionId,
          tables: [...valid.tables].sort(),
          recordIds: [...valid.recordIds].sort(),
        };
        mdk = await deriveMissionDataKeyRaw(masterKey, derivation);
        const wrapped = await subtle().encrypt({ name: 'RSA-OAEP' }, platformKey(await keyFor(source)), mdk);
        const issuedAt = clock.now();
        return {
          wrappedKey: encodeBase64(new Uint8Array(wrapped)),
          derivation,
          issuedAt: new Date(issuedAt).toISOString(),
          expiresAt: new Date(issuedAt + clampGrantTtl(valid.ttlMs)).toISOString(),
        };
      } finally {
        mdk?.fill(0);
        if (masterKey instanceof Uint8Array) masterKey.fill(0);
      }
    },
  };
}
