import type { WebCryptoKey } from '@mana-ai/core';
import { CryptoError } from './errors.js';

/** The WebCrypto implementation of the running platform (Node ≥ 20 and browsers). */
export function subtle(): SubtleCrypto {
  const implementation = globalThis.crypto?.subtle;
  if (!implementation) {
    throw new CryptoError('CRYPTO_INVALID_ARGUMENT', 'WebCrypto (globalThis.crypto.subtle) is not available');
  }
  return implementation;
}

/**
 * The platform key behind a {@link WebCryptoKey}: the public API takes keys by shape (so its types
 * need no DOM lib), WebCrypto calls take the platform type; every key we are given came from one.
 */
export function platformKey(key: WebCryptoKey): CryptoKey {
  return key as CryptoKey;
}

/** Fills `target` with cryptographically strong random bytes. */
export function randomBytes(target: Uint8Array): Uint8Array {
  return globalThis.crypto.getRandomValues(target);
}

/**
 * The bytes as a `BufferSource` WebCrypto accepts: the same view when it is backed by an
 * `ArrayBuffer` (so zeroing it later still wipes what was used), a copy otherwise.
 */
export function bufferSource(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes.buffer instanceof ArrayBuffer ? (bytes as Uint8Array<ArrayBuffer>) : new Uint8Array(bytes);
}
