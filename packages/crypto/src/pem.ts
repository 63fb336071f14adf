import type { WebCryptoKey } from '@mana-ai/core';
import { decodeBase64 } from './base64.js';
import { CryptoError } from './errors.js';
import { subtle } from './subtle.js';

const RSA_OAEP_SHA256: RsaHashedImportParams = { name: 'RSA-OAEP', hash: 'SHA-256' };
const BOUNDARY_PATTERN = /-----(BEGIN|END) ([A-Z0-9 ]+)-----/g;

/** The PEM labels this package accepts. */
export type PemLabel = 'PUBLIC KEY' | 'PRIVATE KEY';

/**
 * Decodes a PEM block to DER bytes after checking its label. A PKCS#1 key
 * (`BEGIN RSA PRIVATE KEY` / `BEGIN RSA PUBLIC KEY`) is refused with `CRYPTO_PKCS1_NOT_SUPPORTED`
 * and a hint how to convert it; other problems raise `CRYPTO_INVALID_PEM`.
 */
export function pemToDer(pem: string, expected: PemLabel): Uint8Array<ArrayBuffer> {
  if (typeof pem !== 'string' || pem.trim() === '') {
    throw new CryptoError('CRYPTO_INVALID_PEM', `expected a PEM "${expected}" block, got nothing`);
  }
  const labels = Array.from(pem.matchAll(BOUNDARY_PATTERN), (match) => match[2]);
  if (labels.some((label) => label === 'RSA PRIVATE KEY' || label === 'RSA PUBLIC KEY')) {
    throw new CryptoError(
      'CRYPTO_PKCS1_NOT_SUPPORTED',
      expected === 'PRIVATE KEY'
        ? 'PKCS#1 "RSA PRIVATE KEY" is not supported; convert it to PKCS#8 with `openssl pkcs8 -topk8 -nocrypt -in key.pem`'
        : 'PKCS#1 "RSA PUBLIC KEY" is not supported; convert it to SPKI with `openssl rsa -RSAPublicKey_in -pubout -in key.pem`',
    );
  }
  if (labels.length > 0 && !labels.every((label) => label === expected)) {
    throw new CryptoError('CRYPTO_INVALID_PEM', `expected a PEM "${expected}" block, got "${labels[0]}"`);
  }
  const body = pem.replace(BOUNDARY_PATTERN, '').replace(/\s+/g, '');
  try {
    const der = decodeBase64(body);
    if (der.length === 0) throw new CryptoError('CRYPTO_INVALID_PEM', 'empty PEM body');
    return der;
  } catch (cause) {
    throw new CryptoError('CRYPTO_INVALID_PEM', `the PEM "${expected}" body is not valid base64`, { cause });
  }
}

/** Imports an SPKI PEM (`BEGIN PUBLIC KEY`) as an RSA-OAEP-SHA-256 encryption key. */
export async function importRsaPublicKey(pem: string): Promise<WebCryptoKey> {
  const der = pemToDer(pem, 'PUBLIC KEY');
  try {
    return await subtle().importKey('spki', der, RSA_OAEP_SHA256, false, ['encrypt']);
  } catch (cause) {
    throw new CryptoError('CRYPTO_KEY_IMPORT_FAILED', 'the public key is not an RSA SPKI key', { cause });
  } finally {
    der.fill(0);
  }
}

/**
 * Imports a PKCS#8 PEM (`BEGIN PRIVATE KEY`) as a non-extractable RSA-OAEP-SHA-256 decryption
 * key; the decoded DER bytes are zeroed afterwards.
 */
export async function importRsaPrivateKey(pem: string): Promise<WebCryptoKey> {
  const der = pemToDer(pem, 'PRIVATE KEY');
  try {
    return await subtle().importKey('pkcs8', der, RSA_OAEP_SHA256, false, ['decrypt']);
  } catch (cause) {
    throw new CryptoError('CRYPTO_KEY_IMPORT_FAILED', 'the private key is not an RSA PKCS#8 key', { cause });
  } finally {
    der.fill(0);
  }
}
