import { CryptoError } from './errors.js';

const BASE64_PATTERN = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Standard (RFC 4648, padded) base64 of `bytes`, as `btoa` produces it. */
export function encodeBase64(bytes: Uint8Array): string {
  let binary = '';
  for (let index = 0; index < bytes.length; index += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(index, index + 0x8000));
  }
  return btoa(binary);
}

/**
 * Decodes standard padded base64. Throws `CRYPTO_MALFORMED_VALUE` for anything else (base64url,
 * missing padding, stray characters), so malformed blobs are reported instead of half-decoded.
 */
export function decodeBase64(text: string): Uint8Array<ArrayBuffer> {
  if (!BASE64_PATTERN.test(text)) {
    throw new CryptoError('CRYPTO_MALFORMED_VALUE', 'malformed base64');
  }
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let index = 0; index < binary.length; index++) bytes[index] = binary.charCodeAt(index);
  return bytes;
}
