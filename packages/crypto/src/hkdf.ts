import { CryptoError } from './errors.js';
import { bufferSource, subtle } from './subtle.js';

/** Output length of SHA-256, the HMAC block HKDF-SHA-256 expands in. */
const HASH_LENGTH_BYTES = 32;
/** RFC 5869 §2.3: at most 255 blocks of output. */
const MAX_OUTPUT_BYTES = 255 * HASH_LENGTH_BYTES;
const HMAC_SHA_256 = { name: 'HMAC', hash: 'SHA-256' } as const;

async function hmacKey(key: Uint8Array): Promise<CryptoKey> {
  return subtle().importKey('raw', bufferSource(key), HMAC_SHA_256, false, ['sign']);
}

/**
 * HKDF-SHA-256 (RFC 5869): Extract (`PRK = HMAC(salt, ikm)`, an empty salt meaning 32 zero bytes)
 * then Expand (`T(i) = HMAC(PRK, T(i-1) ‖ info ‖ i)`) to `length` bytes, written over WebCrypto
 * HMAC. Same output as WebCrypto's native `HKDF`, for any `info` length: Node's native HKDF refuses
 * an `info` over 1,024 bytes, which a grant with 23 or more UUID record ids exceeds. `length` is
 * 1 … 8,160 bytes (`CRYPTO_INVALID_ARGUMENT` otherwise). The caller owns (and should zero) the result.
 */
export async function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Promise<Uint8Array<ArrayBuffer>> {
  if (!Number.isInteger(length) || length < 1 || length > MAX_OUTPUT_BYTES) {
    throw new CryptoError('CRYPTO_INVALID_ARGUMENT', `HKDF output length must be 1 … ${MAX_OUTPUT_BYTES} bytes, got ${length}`);
  }
  const webCrypto = subtle();
  // HMAC pads its key with zeros to the block size, so 32 zero bytes equal the RFC's empty salt
  // (WebCrypto refuses a zero-length HMAC key).
  const extractKey = await hmacKey(salt.length > 0 ? salt : new Uint8Array(HASH_LENGTH_BYTES));
  const prk = new Uint8Array(await webCrypto.sign('HMAC', extractKey, bufferSource(ikm)));
  const expandKey = await hmacKey(prk).finally(() => prk.fill(0));
  const output = new Uint8Array(Math.ceil(length / HASH_LENGTH_BYTES) * HASH_LENGTH_BYTES);
  // block = T(i-1) ‖ info ‖ i; T(0) is empty, so the first round signs from the info on.
  const block = new Uint8Array(HASH_LENGTH_BYTES + info.length + 1);
  block.set(info, HASH_LENGTH_BYTES);
  let input = block.subarray(HASH_LENGTH_BYTES);
  try {
    for (let counter = 1; counter * HASH_LENGTH_BYTES <= output.length; counter += 1) {
      block[block.length - 1] = counter;
      const t = new Uint8Array(await webCrypto.sign('HMAC', expandKey, input));
      output.set(t, (counter - 1) * HASH_LENGTH_BYTES);
      block.set(t, 0);
      t.fill(0);
      input = block;
    }
    return output.slice(0, length);
  } finally {
    output.fill(0);
    block.fill(0);
  }
}
