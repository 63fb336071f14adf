import { CIPHERTEXT_PREFIX, type WebCryptoKey, isCiphertext } from '@mana-ai/core';
import { decodeBase64, encodeBase64 } from './base64.js';
import { CryptoError } from './errors.js';
import { bufferSource, platformKey, randomBytes, subtle } from './subtle.js';

/** The prefix of an encrypted field value (core's one constant). */
export const ENC_PREFIX = CIPHERTEXT_PREFIX;
/** The value encryption format version. */
export const ENCRYPTION_VERSION = 1;
/** AES-GCM IV length of the `enc:1:` format, in bytes. */
export const IV_LENGTH_BYTES = 12;

const TAG_LENGTH_BYTES = 16;
const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** Options of {@link encryptValue}. */
export interface EncryptValueOptions {
  /** Fills the IV with random bytes (default `crypto.getRandomValues`); inject only for test vectors. */
  random?: (target: Uint8Array) => Uint8Array;
}

/** True for a string in the `enc:1:` format. */
export const isEncrypted: (value: unknown) => value is string = isCiphertext;

function malformed(message: string): CryptoError {
  return new CryptoError('CRYPTO_MALFORMED_VALUE', `malformed encrypted value: ${message}`);
}

/**
 * Encrypts a field value as `enc:1:<base64 iv>.<base64 ciphertext‖tag>`: AES-256-GCM over the UTF-8
 * JSON of the value, a fresh 12-byte IV, no additional data. `null` and `undefined` pass through.
 */
export async function encryptValue(key: WebCryptoKey, value: null, options?: EncryptValueOptions): Promise<null>;
export async function encryptValue(key: WebCryptoKey, value: undefined, options?: EncryptValueOptions): Promise<undefined>;
export async function encryptValue(key: WebCryptoKey, value: unknown, options?: EncryptValueOptions): Promise<string>;
export async function encryptValue(
  key: WebCryptoKey,
  value: unknown,
  options: EncryptValueOptions = {},
): Promise<string | null | undefined> {
  if (value === null || value === undefined) return value;
  const json = JSON.stringify(value);
  if (json === undefined) throw new CryptoError('CRYPTO_INVALID_ARGUMENT', 'the value cannot be represented as JSON');
  const iv = bufferSource((options.random ?? randomBytes)(new Uint8Array(IV_LENGTH_BYTES)));
  if (iv.length !== IV_LENGTH_BYTES) throw new CryptoError('CRYPTO_INVALID_ARGUMENT', 'the IV source must give 12 bytes');
  const plaintext = encoder.encode(json);
  try {
    const ciphertext = await subtle().encrypt({ name: 'AES-GCM', iv }, platformKey(key), plaintext);
    return `${ENC_PREFIX}${encodeBase64(iv)}.${encodeBase64(new Uint8Array(ciphertext))}`;
  } catch (cause) {
    throw new CryptoError('CRYPTO_INVALID_ARGUMENT', 'encryption failed (the key must be an AES-GCM encrypt key)', { cause });
  } finally {
    plaintext.fill(0);
  }
}

/**
 * Decrypts an `enc:1:` value back to the JSON value it was made from; anything that is not an
 * `enc:1:` string passes through unchanged. Throws `CRYPTO_MALFORMED_VALUE` (bad layout, IV not 12
 * bytes, payload not JSON) or `CRYPTO_DECRYPT_FAILED` (tampered ciphertext or wrong key).
 */
export async function decryptValue(key: WebCryptoKey, value: unknown): Promise<unknown> {
  if (!isEncrypted(value)) return value;
  const body = value.slice(ENC_PREFIX.length);
  const separator = body.indexOf('.');
  if (separator < 0) throw malformed('missing iv/ct separator');
  let iv: Uint8Array<ArrayBuffer>;
  let ciphertext: Uint8Array<ArrayBuffer>;
  try {
    iv = decodeBase64(body.slice(0, separator));
    ciphertext = decodeBase64(body.slice(separator + 1));
  } catch {
    throw malformed('invalid base64');
  }
  if (iv.length !== IV_LENGTH_BYTES) throw malformed(`expected ${IV_LENGTH_BYTES}-byte IV, got ${iv.length}`);
  if (ciphertext.length < TAG_LENGTH_BYTES) throw malformed('ciphertext shorter than the authentication tag');
  let plaintext: Uint8Array;
  try {
    plaintext = new Uint8Array(await subtle().decrypt({ name: 'AES-GCM', iv }, platformKey(key), ciphertext));
  } catch (cause) {
    throw new CryptoError('CRYPTO_DECRYPT_FAILED', 'decryption failed (tampered ciphertext or wrong key)', { cause });
  }
  try {
    // No `cause`: parser messages quote the plaintext.
    return JSON.parse(decoder.decode(plaintext));
  } catch {
    throw malformed('decrypted payload is not UTF-8 JSON');
  } finally {
    plaintext.fill(0);
  }
}

/** The result of {@link decryptRecordFields}. */
export interface DecryptedRecord<T extends Record<string, unknown>> {
  /** A shallow copy of the record with every `enc:1:` top-level field decrypted. */
  record: T;
  /** The names of the decrypted fields, sorted. */
  decryptedFields: string[];
}

/**
 * Decrypts every top-level `enc:1:` field of a record into a shallow copy (the input is not
 * modified). The first failure rejects with that field's error.
 */
export async function decryptRecordFields<T extends Record<string, unknown>>(
  record: T,
  key: WebCryptoKey,
): Promise<DecryptedRecord<T>> {
  const fields = Object.keys(record).filter((field) => isEncrypted(record[field]));
  const values = await Promise.all(fields.map((field) => decryptValue(key, record[field])));
  const copy: Record<string, unknown> = { ...record };
  fields.forEach((field, index) => {
    copy[field] = values[index];
  });
  return { record: copy as T, decryptedFields: fields.sort() };
}
