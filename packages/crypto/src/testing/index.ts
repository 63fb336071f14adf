import { encodeBase64 } from '../base64.js';
import { type GrantRequest, MAX_GRANT_RECORD_IDS } from '../grant-issuer.js';
import { subtle } from '../subtle.js';

/** A PEM-encoded RSA key pair for tests. */
export interface TestKeyPair {
  /** SPKI PEM (`BEGIN PUBLIC KEY`), what the auth service is configured with. */
  publicKeyPem: string;
  /** PKCS#8 PEM (`BEGIN PRIVATE KEY`), what the runner is configured with. */
  privateKeyPem: string;
}

/** Wraps DER bytes into a PEM block with 64-character lines. */
export function derToPem(der: Uint8Array, label: string): string {
  const lines = encodeBase64(der).match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/** Generates a fresh RSA-OAEP-SHA-256 key pair (default 2048 bits) as PEM strings. */
export async function generateTestKeyPair(modulusLength = 2048): Promise<TestKeyPair> {
  const webCrypto = subtle();
  const pair = await webCrypto.generateKey(
    { name: 'RSA-OAEP', modulusLength, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
    true,
    ['encrypt', 'decrypt'],
  );
  const spki = new Uint8Array(await webCrypto.exportKey('spki', pair.publicKey));
  const pkcs8 = new Uint8Array(await webCrypto.exportKey('pkcs8', pair.privateKey));
  return { publicKeyPem: derToPem(spki, 'PUBLIC KEY'), privateKeyPem: derToPem(pkcs8, 'PRIVATE KEY') };
}

/** The master key of the upstream test vectors: bytes `01 02 … 20` (a fresh copy each call). */
export function testMasterKey(): Uint8Array {
  return new Uint8Array(32).map((_, index) => index + 1);
}

/**
 * A grant request at the record-id cap: mission `mission-abc`, table `notes`, 1,000 UUID record
 * ids (`notes:00000000-0000-4000-8000-<index as 12 hex digits>`). Its HKDF info is 43,041 bytes,
 * beyond the 1,024 bytes Node's native HKDF accepts. With {@link testMasterKey} it derives
 * {@link LARGE_GRANT_KEY_HEX}; browser tests reuse both.
 */
export function largeGrantRequest(): GrantRequest {
  const recordIds = Array.from(
    { length: MAX_GRANT_RECORD_IDS },
    (_, index) => `notes:00000000-0000-4000-8000-${index.toString(16).padStart(12, '0')}`,
  );
  return { missionId: 'mission-abc', tables: ['notes'], recordIds };
}

/**
 * The mission data key of {@link largeGrantRequest} under {@link testMasterKey}, as hex: computed
 * independently (RFC 5869 over HMAC-SHA-256, outside this package).
 */
export const LARGE_GRANT_KEY_HEX = 'a991b937b690aa400100c6c86ce24f7391e5a476d6b4dd3023d31ad19ea1f20a';
