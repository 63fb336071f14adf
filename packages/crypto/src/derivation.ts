import type { GrantDerivation, WebCryptoKey, WebCryptoKeyUsage } from '@mana-ai/core';
import { CryptoError } from './errors.js';
import { hkdfSha256 } from './hkdf.js';
import { bufferSource, subtle } from './subtle.js';

/** The only grant derivation version: `v1`. */
export const GRANT_DERIVATION_VERSION = 'v1';

/** Length of the user master key and of a mission data key, in bytes. */
export const KEY_LENGTH_BYTES = 32;

const INFO_PREFIX = 'mana-ai-mission-grant:';
const encoder = new TextEncoder();

/**
 * The HKDF info string of a derivation:
 * `mana-ai-mission-grant:<version>:tables=<sorted tables>:ids=<sorted record ids>`. Sorting uses
 * the default (UTF-16 code unit) order on copies, so input order never changes the key.
 */
export function canonicalInfoString(derivation: GrantDerivation): string {
  const tables = [...derivation.tables].sort().join(',');
  const recordIds = [...derivation.recordIds].sort().join(',');
  return `${INFO_PREFIX}${derivation.version}:tables=${tables}:ids=${recordIds}`;
}

function assertDerivable(masterKey: Uint8Array, derivation: GrantDerivation): void {
  if (!(masterKey instanceof Uint8Array) || masterKey.length !== KEY_LENGTH_BYTES) {
    throw new CryptoError(
      'CRYPTO_INVALID_MASTER_KEY',
      `expected ${KEY_LENGTH_BYTES}-byte master key, got ${masterKey instanceof Uint8Array ? masterKey.length : 'none'}`,
    );
  }
  if (derivation.version !== GRANT_DERIVATION_VERSION) {
    throw new CryptoError(
      'CRYPTO_UNSUPPORTED_VERSION',
      `unsupported derivation version ${String(derivation.version)}, expected ${GRANT_DERIVATION_VERSION}`,
    );
  }
}

/**
 * Derives the 32 raw bytes of a mission data key: HKDF-SHA-256 over the master key, salt = UTF-8
 * mission id, info = {@link canonicalInfoString} (any length: up to 1,000 record ids), via
 * {@link hkdfSha256}. The caller owns (and should zero) the result.
 */
export async function deriveMissionDataKeyRaw(masterKey: Uint8Array, derivation: GrantDerivation): Promise<Uint8Array<ArrayBuffer>> {
  assertDerivable(masterKey, derivation);
  return hkdfSha256(
    masterKey,
    encoder.encode(derivation.missionId),
    encoder.encode(canonicalInfoString(derivation)),
    KEY_LENGTH_BYTES,
  );
}

/**
 * Imports 32 raw bytes as a non-extractable AES-GCM-256 key and zero-fills them afterwards
 * (also when the import fails). Default usages: `['decrypt']`.
 */
export async function importAesKey(raw: Uint8Array, usages: readonly WebCryptoKeyUsage[] = ['decrypt']): Promise<WebCryptoKey> {
  try {
    if (raw.length !== KEY_LENGTH_BYTES) {
      throw new CryptoError('CRYPTO_INVALID_ARGUMENT', `expected ${KEY_LENGTH_BYTES}-byte AES key, got ${raw.length}`);
    }
    return await subtle().importKey('raw', bufferSource(raw), { name: 'AES-GCM', length: 256 }, false, [...usages]);
  } finally {
    raw.fill(0);
  }
}

/**
 * Derives a mission data key as a non-extractable AES-GCM-256 `CryptoKey` (default usages
 * `['decrypt']`); the intermediate raw bytes are zeroed.
 */
export async function deriveMissionDataKey(
  masterKey: Uint8Array,
  derivation: GrantDerivation,
  usages: readonly WebCryptoKeyUsage[] = ['decrypt'],
): Promise<WebCryptoKey> {
  return importAesKey(await deriveMissionDataKeyRaw(masterKey, derivation), usages);
}
