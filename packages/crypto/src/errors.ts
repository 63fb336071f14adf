import { ManaAiError, type ManaAiErrorOptions } from '@mana-ai/core';

/** Every error code raised by `@mana-ai/crypto`. */
export type CryptoErrorCode =
  | 'CRYPTO_INVALID_MASTER_KEY'
  | 'CRYPTO_UNSUPPORTED_VERSION'
  | 'CRYPTO_INVALID_GRANT_REQUEST'
  | 'CRYPTO_GRANT_NOT_CONFIGURED'
  | 'CRYPTO_INVALID_PEM'
  | 'CRYPTO_PKCS1_NOT_SUPPORTED'
  | 'CRYPTO_KEY_IMPORT_FAILED'
  | 'CRYPTO_MALFORMED_VALUE'
  | 'CRYPTO_DECRYPT_FAILED'
  | 'CRYPTO_INVALID_ARGUMENT';

/** An error raised by `@mana-ai/crypto`. Messages never contain key bytes, ciphertext or plaintext. */
export class CryptoError extends ManaAiError<CryptoErrorCode> {
  constructor(code: CryptoErrorCode, message: string, options?: ManaAiErrorOptions) {
    super(code, message, options);
    this.name = 'CryptoError';
  }
}
