export { decodeBase64, encodeBase64 } from './base64.js';
export {
  GRANT_DERIVATION_VERSION,
  KEY_LENGTH_BYTES,
  canonicalInfoString,
  deriveMissionDataKey,
  deriveMissionDataKeyRaw,
  importAesKey,
} from './derivation.js';
export { CryptoError, type CryptoErrorCode } from './errors.js';
export { hkdfSha256 } from './hkdf.js';
export {
  DEFAULT_GRANT_TTL_MS,
  type GrantIssuer,
  type GrantIssuerDeps,
  type GrantIssuerOptions,
  type GrantRequest,
  MAX_GRANT_RECORD_IDS,
  MAX_GRANT_TTL_MS,
  MIN_GRANT_TTL_MS,
  clampGrantTtl,
  createGrantIssuer,
  validateGrantRequest,
} from './grant-issuer.js';
export {
  type GrantBinding,
  type GrantBindingFailureReason,
  type GrantScope,
  type GrantUnwrapFailureReason,
  type GrantUnwrapReason,
  type GrantUnwrapResult,
  type GrantUnwrapper,
  type GrantUnwrapperDeps,
  type GrantUnwrapperOptions,
  type GrantUnwrapperPemOptions,
  checkGrantScope,
  createGrantUnwrapper,
  createGrantUnwrapperFromPem,
} from './grant-unwrapper.js';
export { type PemLabel, importRsaPrivateKey, importRsaPublicKey, pemToDer } from './pem.js';
export {
  type DecryptedRecord,
  ENCRYPTION_VERSION,
  ENC_PREFIX,
  type EncryptValueOptions,
  IV_LENGTH_BYTES,
  decryptRecordFields,
  decryptValue,
  encryptValue,
  isEncrypted,
} from './value.js';
